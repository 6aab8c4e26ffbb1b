"""``python -m tools.simulate [--store memory|cosmos] FILE...``: recorded deliveries through real Reynolds code.

Each FILE holds one JSON object, or JSON Lines of objects, each a recorded delivery::

    {"source": "github",
     "headers": {"X-GitHub-Event": "issues", "X-GitHub-Delivery": "…", "X-Hub-Signature-256": "sha256=…|auto",
                 "Content-Type": "application/json"},
     "body": "<raw body exactly as sent>"}      # or a JSON object, serialised compactly

``auto`` signs with the configured secret (``GITHUB_WEBHOOK_SECRET``, else the simulation's default
``reynolds-simulate-secret``). Teams outgoing-webhook calls and Service Bus messages go in the same files::

    {"source": "teams", "headers": {"Authorization": "HMAC <base64>" | "auto", "Content-Type": "application/json"},
     "body": "<raw activity JSON>"}
    {"source": "servicebus", "message": {"message_id": "…", "content_type": "application/json", "session_id": null,
     "application_properties": {…}, "delivery_count": 1, "reply_to": null}, "body": "<raw CloudEvent JSON>"}

Teams ``auto`` signs with ``TEAMS_OUTGOING_WEBHOOK_TOKEN``, else the simulation's default token
``cmV5bm9sZHMtc2ltdWxhdGUtdGVhbXMtdG9rZW4=``; the line is the GitHub one with ``delivery`` = the activity id.
A Service Bus message is a real ``ServiceBusMessage`` handed to the trigger as the worker's
``func.ServiceBusMessage``; its line has ``delivery`` = the message id, ``status`` null and ``settlement``
(``completed``, ``dead-lettered`` after MaxDeliveryCount deliveries of a poison message, with the reason in
``reason``, or ``abandoned``). All deliveries of one run share one store, one fake GitHub, one fake Graph and
one clock. A delivery a door hands to the inbox (``queued``) is decided by the inbox trigger in-process and its
line reports that decision, with the door's HTTP status. One JSON line per delivery on stdout; human-readable
progress on stderr. Every line carries ``chain_id``: the lineage chain the item joined (null when it joined
none), the id ``tools.explore`` and ``GET /api/chains/{id}?format=html`` draw. Exit 0 when every delivery was
processed (a rejection is a result), 2 when the tool itself cannot run: an unreadable file, bad JSON, input
with no item at all, or ``--store cosmos`` without the local Cosmos server installed (``npm ci``).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from azure.servicebus import ServiceBusMessage

from shared.errors import IncomingRequestError
from shared.loop.lineage import instance_id_for
from shared.platforms.github.events import decode_body, header
from tools.fakes.github.writes_log import record_writes
from tools.harness.cosmos_server import CosmosServerError
from tools.local_settings import tool_settings
from tools.scripted_model import ItemInputError, run_with_interfaces
from tools.whatif import journal_to
from tools.world import REYNOLDS_LOGIN, World, build_world, github_effects


class InputError(Exception):
    """A FILE the tool cannot read (exit 2)."""


def load_items(paths: list[str]) -> list[dict[str, Any]]:
    """Every item of every FILE, in order: a JSON object (or array of objects), or JSON Lines."""
    items: list[dict[str, Any]] = []
    for path in paths:
        try:
            text = Path(path).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise InputError(f"{path}: cannot read ({exc.__class__.__name__}: {exc})") from None
        try:
            whole = json.loads(text)
        except json.JSONDecodeError:
            whole = None
        if isinstance(whole, dict):
            items.append(whole)
            continue
        if isinstance(whole, list) and all(isinstance(x, dict) for x in whole):
            items.extend(whole)
            continue
        for number, line in enumerate(text.splitlines(), 1):
            if not line.strip():
                continue
            try:
                item = json.loads(line)
            except json.JSONDecodeError as exc:
                raise InputError(f"{path}:{number}: bad JSON ({exc.msg})") from None
            if not isinstance(item, dict):
                raise InputError(f"{path}:{number}: each line must be a JSON object")
            items.append(item)
    return items


def raw_body(body: Any) -> bytes:
    """The body exactly as sent: a string verbatim, an object serialised compactly."""
    if isinstance(body, str):
        return body.encode("utf-8")
    if body is None:
        return b""
    return json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


class MalformedItem(ValueError):
    """An item whose shape is not the documented one (a rejected line, not a tool failure)."""


def item_headers(item: dict[str, Any]) -> dict[str, str]:
    """The item's headers as strings; ``MalformedItem`` when they are not an object of strings."""
    headers = item.get("headers", {})
    if not isinstance(headers, dict) or not all(isinstance(v, str | int | float) for v in headers.values()):
        raise MalformedItem("'headers' must be an object of header names to strings")
    return {str(k): str(v) for k, v in headers.items()}


def _delivery_id(item: dict[str, Any]) -> str | None:
    headers = item.get("headers")
    if not isinstance(headers, dict):
        return None
    for key, value in headers.items():
        if key.lower() == "x-github-delivery" and isinstance(value, str):
            return value
    return None


async def run_github(world: World, item: dict[str, Any]) -> dict[str, Any]:
    """One GitHub delivery: POST it, wait for its orchestration, report effects seen on the fake GitHub."""
    headers = item_headers(item)
    body = raw_body(item.get("body"))
    try:  # seed the issue the delivery talks about, whichever encoding it was sent in
        payload = decode_body(body, header(headers, "Content-Type"))
    except IncomingRequestError:
        payload = None
    if isinstance(payload, dict):
        world.seed_from_payload(payload)
    before = len(world.reynolds_writes)
    status, answer = await world.post_github(headers, body)
    answer = await world.settle(answer)  # a delivery handed to the inbox: decided there, reported the same way
    instance_id = answer.get("instance_id")
    await world.client.advance(None)  # let retries waiting on durable timers finish: report the end state
    runtime = await world.runtime_status(instance_id)
    effects = github_effects(world.reynolds_writes[before:])
    world.clock.advance(1)
    return {"delivery": answer.get("delivery") or _delivery_id(item), "status": status,
            "verdict": answer.get("verdict"), "reason": answer.get("reason", ""), "instance_id": instance_id,
            "runtime_status": runtime, "effects": effects,
            "chain_id": answer.get("chain_id") or _chain_of(world, answer.get("event_id"))}


def _chain_of(world: World, event_id: Any) -> str | None:
    """The chain the stored decision of ``event_id`` joined (None when unknown or unchained)."""
    if not isinstance(event_id, str) or not event_id:
        return None
    stored = world.services.lineage.get_event(event_id) or {}
    chain = stored.get("chain_id")
    return chain if isinstance(chain, str) else None


def _effects_since(world: World, github: int, teams: int, servicebus: int) -> list[dict[str, Any]]:
    effects = github_effects(world.reynolds_writes[github:])
    for message in world.teams_writes[teams:]:
        ident = message.get("channelIdentity") or {}
        target = f"teams:{ident['teamId']}/{ident['channelId']}" if ident else str(message.get("chatId"))
        effect = {"platform": "teams", "kind": "message", "target": target, "id": str(message["id"])}
        if ((message.get("from") or {}).get("application") or {}).get("applicationIdentityType") == "bot":
            effect["via"] = "bot"  # posted through the Bot Connector (Graph refuses app-only message posts)
        effects.append(effect)
    for queue, sent in world.publisher.sent[servicebus:]:
        effects.append({"platform": "servicebus", "kind": "message", "target": queue, "id": str(sent.message_id)})
    return effects


def _marks(world: World) -> tuple[int, int, int]:
    return len(world.reynolds_writes), len(world.teams_writes), len(world.publisher.sent)


async def run_teams(world: World, item: dict[str, Any]) -> dict[str, Any]:
    """One Teams outgoing-webhook call: POST it, report the decision and what Reynolds wrote."""
    headers = item_headers(item)
    body = raw_body(item.get("body"))
    before = _marks(world)
    status, answer, response_headers = await world.post_teams(headers, body)
    lowered = {k.lower(): v for k, v in response_headers.items()}
    if lowered.get("x-reynolds-verdict") == "queued":  # decided from the inbox: report that decision
        settled = await world.settle({"verdict": "queued", "event_id": lowered.get("x-reynolds-event-id")})
        lowered.update({"x-reynolds-verdict": str(settled.get("verdict")), "x-reynolds-reason": settled["reason"],
                        "x-reynolds-instance-id": settled.get("instance_id") or ""})
    instance_id = lowered.get("x-reynolds-instance-id") or None
    await world.client.advance(None)
    try:
        activity_id = json.loads(body).get("id")
    except (ValueError, AttributeError):
        activity_id = None
    world.clock.advance(1)
    return {"delivery": lowered.get("x-reynolds-delivery") or answer.get("delivery") or activity_id,
            "status": status, "verdict": lowered.get("x-reynolds-verdict") or answer.get("verdict"),
            "reason": lowered.get("x-reynolds-reason") or answer.get("reason", ""), "instance_id": instance_id,
            "runtime_status": await world.runtime_status(instance_id), "effects": _effects_since(world, *before),
            "chain_id": lowered.get("x-reynolds-chain-id") or _chain_of(world, lowered.get("x-reynolds-event-id"))}


def servicebus_message(item: dict[str, Any]) -> ServiceBusMessage:
    """The ``ServiceBusMessage`` a recorded item describes (body verbatim)."""
    spec: dict[str, Any] = item["message"] if isinstance(item.get("message"), dict) else {}
    properties = spec.get("application_properties") if isinstance(spec.get("application_properties"), dict) else None
    return ServiceBusMessage(raw_body(item.get("body")), message_id=spec.get("message_id"),
                             content_type=spec.get("content_type"), session_id=spec.get("session_id"),
                             reply_to=spec.get("reply_to"), application_properties=properties)


async def run_servicebus(world: World, item: dict[str, Any]) -> dict[str, Any]:
    """One Service Bus message through the trigger: decision, settlement and what Reynolds wrote."""
    spec: dict[str, Any] = item["message"] if isinstance(item.get("message"), dict) else {}
    try:
        delivery_count = int(spec.get("delivery_count") or 1)
    except (TypeError, ValueError):
        raise MalformedItem("'message.delivery_count' must be a whole number") from None
    message = servicebus_message(item)
    event_id = f"servicebus:{message.message_id}"
    seen = world.services.lineage.get_event(event_id) is not None
    before = _marks(world)
    settlement = await world.deliver_servicebus(message, delivery_count=delivery_count)
    await world.client.advance(None)
    stored = world.services.lineage.get_event(event_id) or {}
    if settlement.outcome != "completed":
        verdict, reason, instance_id = "rejected", settlement.reason, None
    else:
        verdict = "duplicate" if seen else str(stored.get("verdict"))
        reason = "this event was already received" if seen else "; ".join(stored.get("reasons") or [])
        instance_id = instance_id_for(event_id)
        if await world.runtime_status(instance_id) is None:
            instance_id = None
    world.clock.advance(1)
    return {"delivery": message.message_id, "status": None, "verdict": verdict, "reason": reason,
            "instance_id": instance_id, "runtime_status": await world.runtime_status(instance_id),
            "effects": _effects_since(world, *before), "settlement": settlement.outcome,
            "chain_id": stored.get("chain_id") if isinstance(stored.get("chain_id"), str) else None}


def rejected(item: dict[str, Any], reason: str) -> dict[str, Any]:
    """The line for an item this tool cannot deliver (a result, not a tool failure)."""
    return {"delivery": _delivery_id(item), "status": None, "verdict": "rejected", "reason": reason,
            "instance_id": None, "runtime_status": None, "effects": [], "chain_id": None}


async def run_item(world: World, item: dict[str, Any]) -> dict[str, Any]:
    """Dispatch one item by its ``source``."""
    source = item.get("source")
    if source == "github":
        return await run_github(world, item)
    if source == "teams":
        return await run_teams(world, item)
    if source == "servicebus":
        return await run_servicebus(world, item)
    if source == "bot":  # Bot Framework activities through POST /api/messages
        from tools.simulate_bot import run_bot

        return await run_bot(world, item)
    if source == "http" and "task" in item:
        from tools.simulate_tasks import run_task

        return await run_task(world, item)
    return rejected(item, f"unsupported source {source!r} (expected 'github', 'teams', 'servicebus' or 'http')")


async def simulate(items: list[dict[str, Any]], store: str,
                   inspect: Callable[[World], None] | None = None, journal: str | None = None,
                   journal_source: str = "") -> list[dict[str, Any]]:
    """Run every item through one world; the output lines. ``inspect`` sees the world before it closes;
    ``journal`` writes every decision and effect there in ``tools.whatif``'s format."""
    lines = []
    teams_token = os.environ.get("TEAMS_OUTGOING_WEBHOOK_TOKEN")
    extra = {**({"TEAMS_OUTGOING_WEBHOOK_TOKEN": teams_token} if teams_token else {}), **tool_settings("simulate")}
    with build_world(store=store, webhook_secret=os.environ.get("GITHUB_WEBHOOK_SECRET") or None,
                     extra_settings=extra) as world, (
            journal_to(world.services, journal, source=journal_source) if journal else contextlib.nullcontext()):
        writes = record_writes(world.github, REYNOLDS_LOGIN)
        for n, item in enumerate(items, 1):
            source = item.get("source")
            try:
                line = await run_with_interfaces(world, item, writes, run_item)
            except (MalformedItem, ItemInputError) as exc:
                line = rejected(item, f"malformed item: {exc}")
            line.setdefault("chain_id", None)
            print(f"[{n}/{len(items)}] {source}: {line['status']} {line['verdict']} — {line['reason']}"
                  f"{' (chain ' + line['chain_id'] + ')' if line['chain_id'] else ''}", file=sys.stderr)
            print(json.dumps(line), flush=True)
            lines.append(line)
        world.github.assert_no_unexpected()
        if inspect is not None:
            inspect(world)
    return lines


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(prog="python -m tools.simulate", description=__doc__.split("\n")[0])
    parser.add_argument("--store", choices=("memory", "cosmos"), default="memory")
    parser.add_argument("--journal", metavar="PATH",
                        help="record every decision and effect for `python -m tools.whatif --from PATH`")
    parser.add_argument("files", nargs="+", metavar="FILE")
    args = parser.parse_args(argv)
    try:
        items = load_items(args.files)
    except InputError as exc:
        print(f"simulate: {exc}", file=sys.stderr)
        return 2
    if not items:
        print(f"simulate: no delivery in {', '.join(args.files)}: each FILE must hold a JSON object, an array of "
              "objects, or JSON Lines (see `python -m tools.simulate --help`)", file=sys.stderr)
        return 2
    try:
        asyncio.run(simulate(items, args.store, journal=args.journal,
                             journal_source="simulate:" + ",".join(args.files)))
    except CosmosServerError as exc:
        print(f"simulate: --store cosmos cannot start the local Cosmos DB server: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
