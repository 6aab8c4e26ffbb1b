"""``python -m tools.simulate [--store memory|cosmos] FILE...``: recorded deliveries through real Reynolds code.

Each FILE holds one JSON object, or JSON Lines of objects, each a recorded delivery::

    {"source": "github",
     "headers": {"X-GitHub-Event": "issues", "X-GitHub-Delivery": "…", "X-Hub-Signature-256": "sha256=…|auto",
                 "Content-Type": "application/json"},
     "body": "<raw body exactly as sent>"}      # or a JSON object, serialised compactly

``auto`` signs with the configured secret (``GITHUB_WEBHOOK_SECRET``, else the simulation's default
``reynolds-simulate-secret``). All deliveries of one run share one store, one fake GitHub and one clock.
One JSON line per delivery on stdout; human-readable progress on stderr. Exit 0 when every delivery was
processed (a rejection is a result), 2 when the tool itself cannot run (unreadable file, bad JSON).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from pathlib import Path
from typing import Any

from tools.world import World, build_world


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
    headers = {str(k): str(v) for k, v in (item.get("headers") or {}).items()}
    body = raw_body(item.get("body"))
    try:
        payload = json.loads(body) if body else None
    except ValueError:
        payload = None
    if isinstance(payload, dict):
        world.seed_from_payload(payload)
    before = len(world.reynolds_writes)
    status, answer = await world.post_github(headers, body)
    instance_id = answer.get("instance_id")
    runtime = await world.runtime_status(instance_id)
    effects = [effect_of(w) for w in world.reynolds_writes[before:]]
    world.clock.advance(1)
    return {"delivery": answer.get("delivery") or _delivery_id(item), "status": status,
            "verdict": answer.get("verdict"), "reason": answer.get("reason", ""), "instance_id": instance_id,
            "runtime_status": runtime, "effects": effects}


def effect_of(write: Any) -> dict[str, Any]:
    """An effect line from a write Reynolds made on the fake GitHub."""
    kinds = {"comment": "comment", "comment_edit": "comment_edit", "issue": "issue", "label": "label",
             "issue_edit": "issue_edit"}
    target = f"{write.repo}#{write.number}"
    return {"platform": "github", "kind": kinds.get(write.kind, write.kind), "target": target,
            "id": str(write.resource_id)}


def rejected(item: dict[str, Any], reason: str) -> dict[str, Any]:
    """The line for an item this tool cannot deliver (a result, not a tool failure)."""
    return {"delivery": _delivery_id(item), "status": None, "verdict": "rejected", "reason": reason,
            "instance_id": None, "runtime_status": None, "effects": []}


async def simulate(items: list[dict[str, Any]], store: str) -> list[dict[str, Any]]:
    """Run every item through one world; the output lines."""
    lines = []
    with build_world(store=store, webhook_secret=os.environ.get("GITHUB_WEBHOOK_SECRET") or None) as world:
        for n, item in enumerate(items, 1):
            source = item.get("source")
            if source == "github":
                line = await run_github(world, item)
            elif source == "http" and "task" in item:
                from tools.simulate_tasks import run_task

                line = await run_task(world, item)
            else:
                line = rejected(item, f"unsupported source {source!r} (expected 'github')")
            print(f"[{n}/{len(items)}] {source}: {line['status']} {line['verdict']} — {line['reason']}",
                  file=sys.stderr)
            print(json.dumps(line), flush=True)
            lines.append(line)
        world.github.assert_no_unexpected()
    return lines


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(prog="python -m tools.simulate", description=__doc__.split("\n")[0])
    parser.add_argument("--store", choices=("memory", "cosmos"), default="memory")
    parser.add_argument("files", nargs="+", metavar="FILE")
    args = parser.parse_args(argv)
    try:
        items = load_items(args.files)
    except InputError as exc:
        print(f"simulate: {exc}", file=sys.stderr)
        return 2
    asyncio.run(simulate(items, args.store))
    return 0


if __name__ == "__main__":
    sys.exit(main())
