"""The chain explorer: ``GET /api/chains/{chain_id}`` (JSON, Mermaid or a page) and ``GET /api/events/{event_id}``.

Function-key protected. Reads only (the explorer's query is cold-path: never on a decision).
``?format=html`` answers a self-contained page with the chain drawn as SVG on the server
(``shared.chain_view``): no script and no CDN, so it opens anywhere the key does.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable
from typing import Any

import azure.functions as func

from shared.chain_view import build_graph, render_mermaid, render_page
from shared.services import get_services
from triggers.ingress import error_response, json_response

bp = func.Blueprint()

_ID = re.compile(r"^[A-Za-z0-9_.:-]{1,200}$")
_FORMATS = ("json", "mermaid", "html")


@bp.function_name("get_chain")
@bp.route(route="chains/{chain_id}", methods=["GET"], auth_level=func.AuthLevel.FUNCTION)
async def get_chain(req: func.HttpRequest) -> func.HttpResponse:
    """A chain's head, events (with verdicts and reasons) and effects; ``?format=mermaid|html`` to see it."""
    fmt = req.params.get("format", "json")
    if fmt not in _FORMATS:
        return json_response(400, {"error": "format must be json, mermaid or html"})
    chain = await _lookup(req, "chain_id", "chain", lambda: get_services().lineage.explore)
    if not isinstance(chain, dict):
        return chain
    if fmt == "mermaid":
        return func.HttpResponse(render_mermaid(build_graph(chain)), status_code=200, mimetype="text/plain",
                                 headers={"X-Content-Type-Options": "nosniff"})
    if fmt == "html":
        page = func.HttpResponse(render_page(chain), status_code=200, mimetype="text/html", charset="utf-8")
        # The page is self-contained: nothing may load from elsewhere, and no script runs.
        page.headers["Content-Security-Policy"] = "default-src 'none'; style-src 'unsafe-inline'; img-src data:"
        page.headers["X-Content-Type-Options"] = "nosniff"
        return page
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
                               "chain_url": f"/api/chains/{chain}" if chain else None,
                               "page_url": f"/api/chains/{chain}?format=html" if chain else None})


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
