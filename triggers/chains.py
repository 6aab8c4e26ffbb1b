"""The chain explorer: ``GET /api/chains/{chain_id}`` (JSON or Mermaid) and ``GET /api/events/{event_id}``.

Function-key protected. Reads only (the explorer's query is cold-path: never on a decision).
"""

from __future__ import annotations

import asyncio
import re

import azure.functions as func

from shared.lineage import chain_mermaid
from shared.services import get_services
from triggers.ingress import error_response, json_response

bp = func.Blueprint()

_ID = re.compile(r"^[A-Za-z0-9_.:-]{1,200}$")


@bp.function_name("get_chain")
@bp.route(route="chains/{chain_id}", methods=["GET"], auth_level=func.AuthLevel.FUNCTION)
async def get_chain(req: func.HttpRequest) -> func.HttpResponse:
    """A chain's head, events (with verdicts and reasons) and effects; ``?format=mermaid`` for a flowchart."""
    chain_id = req.route_params.get("chain_id", "")
    if not _ID.match(chain_id):
        return json_response(400, {"error": "malformed chain id"})
    fmt = req.params.get("format", "json")
    if fmt not in ("json", "mermaid"):
        return json_response(400, {"error": "format must be json or mermaid"})
    try:
        chain = await asyncio.to_thread(get_services().lineage.explore, chain_id)
    except Exception as exc:  # translated: 503 for a store outage, never a stack trace
        return error_response(exc)
    if chain is None:
        return json_response(404, {"error": f"unknown chain {chain_id}"})
    if fmt == "mermaid":
        return func.HttpResponse(chain_mermaid(chain), status_code=200, mimetype="text/plain")
    return json_response(200, chain)


@bp.function_name("get_event")
@bp.route(route="events/{event_id}", methods=["GET"], auth_level=func.AuthLevel.FUNCTION)
async def get_event(req: func.HttpRequest) -> func.HttpResponse:
    """One event's decision and the chain it belongs to."""
    event_id = req.route_params.get("event_id", "")
    if not _ID.match(event_id):
        return json_response(400, {"error": "malformed event id"})
    try:
        event = await asyncio.to_thread(get_services().lineage.get_event, event_id)
    except Exception as exc:  # translated: 503 for a store outage, never a stack trace
        return error_response(exc)
    if event is None:
        return json_response(404, {"error": f"unknown event {event_id}"})
    chain = event.get("chain_id")
    return json_response(200, {"event": event, "chain_id": chain,
                               "chain_url": f"/api/chains/{chain}" if chain else None})
