"""The chain explorer: ``GET /api/chains/{chain_id}`` (JSON or Mermaid) and ``GET /api/events/{event_id}``.

Function-key protected. Reads only (the explorer's query is cold-path: never on a decision).
"""

from __future__ import annotations

import asyncio
import html
import re
from collections.abc import Callable
from typing import Any

import azure.functions as func

from shared.loop.lineage import chain_mermaid
from shared.services import get_services
from triggers.ingress import error_response, json_response

bp = func.Blueprint()

_ID = re.compile(r"^[A-Za-z0-9_.:-]{1,200}$")


@bp.function_name("get_chain")
@bp.route(route="chains/{chain_id}", methods=["GET"], auth_level=func.AuthLevel.FUNCTION)
async def get_chain(req: func.HttpRequest) -> func.HttpResponse:
    """A chain's head, events (with verdicts and reasons) and effects; ``?format=mermaid`` for a flowchart."""
    fmt = req.params.get("format", "json")
    if fmt not in ("json", "mermaid"):
        return json_response(400, {"error": "format must be json or mermaid"})
    chain = await _lookup(req, "chain_id", "chain", lambda: get_services().lineage.explore)
    if not isinstance(chain, dict):
        return chain
    if fmt == "mermaid":
        return func.HttpResponse(chain_mermaid(mermaid_safe(chain)), status_code=200, mimetype="text/plain",
                                 headers={"X-Content-Type-Options": "nosniff"})
    return json_response(200, chain)


@bp.function_name("get_event")
@bp.route(route="events/{event_id}", methods=["GET"], auth_level=func.AuthLevel.FUNCTION)
async def get_event(req: func.HttpRequest) -> func.HttpResponse:
    """One event's decision and the chain it belongs to."""
    event = await _lookup(req, "event_id", "event", lambda: get_services().lineage.get_event)
    if not isinstance(event, dict):
        return event
    chain = event.get("chain_id")
    return json_response(200, {"event": event, "chain_id": chain,
                               "chain_url": f"/api/chains/{chain}" if chain else None})


def _label_text(value: Any) -> Any:
    # Mermaid renders labels as HTML and decodes its own "#name;" entities: "#" first, then <, > and &.
    if not isinstance(value, str):
        return value
    return html.escape(value.replace("#", "#35;"), quote=False).replace("`", "#96;")


def mermaid_safe(chain: dict[str, Any]) -> dict[str, Any]:
    """The chain with every text that reaches a Mermaid label escaped (actor logins, types, targets come from
    outside: a login or event type must never become markup in the explorer)."""
    def clean(item: Any) -> Any:
        if not isinstance(item, dict):
            return item
        return {key: ({k: _label_text(v) for k, v in value.items()} if isinstance(value, dict)
                      else _label_text(value) if key not in ("event_id", "parent_id") else value)
                for key, value in item.items()}

    return {**chain, "events": [clean(e) for e in chain.get("events", [])],
            "effects": [clean(e) for e in chain.get("effects", [])]}


async def _lookup(req: func.HttpRequest, param: str, noun: str,
                  reader: Callable[[], Callable[[str], dict[str, Any] | None]]) -> dict[str, Any] | func.HttpResponse:
    """Validate the route id and read it: the document, or the 400/404/503 answer."""
    ident = req.route_params.get(param, "")
    if not _ID.match(ident):
        return json_response(400, {"error": f"malformed {noun} id"})
    try:
        found = await asyncio.to_thread(reader(), ident)
    except Exception as exc:  # translated: 503 for a store outage, never a stack trace
        return error_response(exc)
    if found is None:
        return json_response(404, {"error": f"unknown {noun} {ident}"})
    return found
