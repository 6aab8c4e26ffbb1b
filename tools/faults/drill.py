"""``python -m tools.faults.drill``: people open issues while the store fails; count what was answered.

Each of ``--people`` people opens an issue (``--every`` seconds apart) on the fake GitHub; GitHub delivers it
to Reynolds' real webhook function; the lineage store fails on ``--store-faults`` of all calls (429/503/
timeouts, half the write timeouts after the write took effect) and is down entirely for ``--outage`` seconds
from ``--outage-at``; ``--github`` adds fake-GitHub fault modes (``tools/faults/spec.py``). The inbox, durable
retries and the late-commit check do the rest on the simulated clock. One JSON line: people, answered exactly
once, lost, duplicated, deliveries queued at the door, inbox deliveries and failures, injected faults, and
the delay from delivery to answer (simulated seconds). Exit 1 when anything was lost or duplicated.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import uuid
from datetime import datetime
from typing import Any

from tools.faults.spec import FaultSpec, install
from tools.simulate import raw_body
from tools.world import REYNOLDS_LOGIN, build_world

REPO = "octo/app"


async def drill(people: int, every: float, store_faults: float, outage_at: float, outage: float,
                github: list[dict[str, Any]], store: str = "memory", seed: int = 14) -> dict[str, Any]:
    """Run the drill; the result line."""
    spec = FaultSpec.model_validate({
        "store": {"fraction": store_faults, "seed": seed,
                  "outages": [{"at": outage_at, "seconds": outage}] if outage > 0 else []},
        "github": github})
    with build_world(store=store) as world:
        world.github.add_repo(REPO)
        installed = install(world, spec, start=world.clock())
        delivered_at: dict[int, datetime] = {}
        queued = 0
        for n in range(1, people + 1):
            login = f"person{n:03d}"
            world.github.add_user(login)
            writes: list[Any] = []
            world.github.on_write.append(writes.append)
            try:
                world.github.create_issue(REPO, f"Report {n}", "The export crashes with an error", login=login,
                                          number=n)
            finally:
                world.github.on_write.remove(writes.append)
            event, payload = world.github.webhook_for(writes[0]) or ("", {})
            headers = {"X-GitHub-Event": event, "X-GitHub-Delivery": str(uuid.uuid4()),
                       "X-Hub-Signature-256": "auto", "Content-Type": "application/json"}
            delivered_at[n] = world.clock()
            status, answer = await world.post_github(headers, raw_body(payload))
            queued += answer.get("verdict") == "queued"
            await world.drain_inbox()
            await world.client.advance(every)
            world.clock.advance(every)
        await world.drain_inbox()
        await world.client.advance(None)
        counts: dict[int, int] = {}
        delays: list[float] = []
        for n in range(1, people + 1):
            mine = [c for c in world.github.comments(REPO, n) if c["user"]["login"] == REYNOLDS_LOGIN]
            counts[n] = len(mine)
            if mine:
                first = datetime.fromisoformat(mine[0]["created_at"].replace("Z", "+00:00"))
                delays.append((first - delivered_at[n]).total_seconds())
        inbox = world.inbox_queue()
        return {"people": people, "store_faults": store_faults, "outage_seconds": outage, "store": store,
                "answered_once": sum(1 for c in counts.values() if c == 1),
                "lost": sum(1 for c in counts.values() if c == 0),
                "duplicated": sum(1 for c in counts.values() if c > 1),
                "queued_at_door": queued, "inbox_deliveries": inbox.processed + inbox.failures,
                "inbox_failures": inbox.failures, "poisoned": len(inbox.poison),
                "injected": dict(sorted((installed.store.injected if installed.store else {}).items())),
                "delay_p50_seconds": round(statistics.median(delays), 1) if delays else None,
                "delay_max_seconds": round(max(delays), 1) if delays else None}


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(prog="python -m tools.faults.drill", description=__doc__.split("\n")[0])
    parser.add_argument("--people", type=int, default=30)
    parser.add_argument("--every", type=float, default=20.0, help="seconds between two people")
    parser.add_argument("--store-faults", type=float, default=0.3, help="fraction of store calls that fail")
    parser.add_argument("--outage-at", type=float, default=120.0)
    parser.add_argument("--outage", type=float, default=600.0, help="seconds the store is down (0: none)")
    parser.add_argument("--github", default="[]", help="JSON list of fake-GitHub faults (tools/faults/spec.py)")
    parser.add_argument("--store", choices=("memory", "cosmos"), default="memory")
    parser.add_argument("--seed", type=int, default=14)
    args = parser.parse_args(argv)
    result = asyncio.run(drill(args.people, args.every, args.store_faults, args.outage_at, args.outage,
                               json.loads(args.github), args.store, args.seed))
    print(json.dumps(result), flush=True)
    return 0 if result["lost"] == 0 and result["duplicated"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
