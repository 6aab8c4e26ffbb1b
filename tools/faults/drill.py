"""``python -m tools.faults.drill``: people open issues while the store fails; count what was answered.

Each of ``--people`` people opens an issue (``--every`` seconds apart) on the fake GitHub; GitHub delivers it
to Reynolds' real webhook function; the lineage store fails on ``--store-faults`` of all calls (429/503/
timeouts, half the write timeouts after the write took effect) and is down entirely for ``--outage`` seconds
from ``--outage-at``; ``--github`` adds fake-GitHub fault modes (``tools/faults/spec.py``). The inbox, durable
retries and the late-commit check do the rest on the simulated clock. One JSON line: people, answered exactly
once, lost, duplicated, deliveries queued at the door, inbox deliveries and failures, injected faults, and
the delay from delivery to answer (simulated seconds). ``--store wire`` puts a local Cosmos DB server behind
``tools/faults/cosmos_proxy.py`` instead: the faults are HTTP answers the real SDK sees (and partly retries).
Exit 1 when anything was lost or duplicated.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import statistics
import sys
import uuid
from datetime import datetime, timedelta
from typing import Any

from tools.faults.cosmos_proxy import ProxyState
from tools.faults.spec import FaultSpec, install
from tools.faults.store import Outage
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
    with contextlib.ExitStack() as stack:
        world = stack.enter_context(build_world(store=store if store != "wire" else "memory"))
        world.github.add_repo(REPO)
        if store == "wire":  # faults on the wire, through the real Cosmos SDK: the proxy, not FaultyStore
            proxy = _wire(stack, world, spec, store_faults, seed)
            installed = install(world, spec.model_copy(update={"store": None}), start=world.clock())
        else:
            proxy = None
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
                delays.append(max(0.0, (first - delivered_at[n]).total_seconds()))  # created_at has whole seconds
        inbox = world.inbox_queue()
        return {"people": people, "store_faults": store_faults, "outage_seconds": outage, "store": store,
                "answered_once": sum(1 for c in counts.values() if c == 1),
                "lost": sum(1 for c in counts.values() if c == 0),
                "duplicated": sum(1 for c in counts.values() if c > 1),
                "queued_at_door": queued, "inbox_deliveries": inbox.processed + inbox.failures,
                "inbox_failures": inbox.failures, "poisoned": len(inbox.poison),
                "injected": dict(sorted((proxy.injected if proxy is not None else installed.store.injected
                                         if installed.store else {}).items())),
                "delay_p50_seconds": round(statistics.median(delays), 1) if delays else None,
                "delay_max_seconds": round(max(delays), 1) if delays else None}


def _wire(stack: contextlib.ExitStack, world: Any, spec: FaultSpec, fraction: float, seed: int) -> ProxyState:
    """Put the lineage store on a local Cosmos DB server behind the fault proxy (inspection goes direct)."""
    from shared.errors import StoreError
    from shared.platforms.github.pacer import GitHubPacer, set_pacer
    from shared.settings import Settings
    from shared.store.cosmos import ensure_container, make_cosmos_store
    from shared.store.resilient import ResilientStore
    from tools.faults.cosmos_proxy import fault_proxy
    from tools.harness.cosmos_server import start_cosmos_server

    cosmos = stack.enter_context(start_cosmos_server())
    settings = Settings.model_validate(cosmos.environment())
    ensure_container(settings)
    endpoint, proxy = stack.enter_context(fault_proxy(cosmos.endpoint, fraction=fraction, seed=seed))
    proxy.clock = world.clock
    assert spec.store is not None
    proxy.outages = [Outage(world.clock() + timedelta(seconds=o.at), o.seconds) for o in spec.store.outages]
    direct = make_cosmos_store(settings)
    stack.callback(direct.close)
    proxied_settings = settings.model_copy(update={"cosmos_endpoint": endpoint})
    for _ in range(20):  # the client's first account read goes through the proxy too
        try:
            proxied = make_cosmos_store(proxied_settings)
            break
        except StoreError:
            continue
    stack.callback(proxied.close)
    world.store = direct
    world.services.store = ResilientStore(proxied)
    world.services._lineage = None
    clock = world.clock
    set_pacer(GitHubPacer(clock=lambda: clock().timestamp(), sleep=clock.advance, store=world.services.store))
    return proxy


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(prog="python -m tools.faults.drill", description=__doc__.split("\n")[0])
    parser.add_argument("--people", type=int, default=30)
    parser.add_argument("--every", type=float, default=20.0, help="seconds between two people")
    parser.add_argument("--store-faults", type=float, default=0.3, help="fraction of store calls that fail")
    parser.add_argument("--outage-at", type=float, default=120.0)
    parser.add_argument("--outage", type=float, default=600.0, help="seconds the store is down (0: none)")
    parser.add_argument("--github", default="[]", help="JSON list of fake-GitHub faults (tools/faults/spec.py)")
    parser.add_argument("--store", choices=("memory", "cosmos", "wire"), default="memory",
                        help="wire: the local Cosmos DB server behind the fault proxy (faults on the wire)")
    parser.add_argument("--seed", type=int, default=14)
    args = parser.parse_args(argv)
    result = asyncio.run(drill(args.people, args.every, args.store_faults, args.outage_at, args.outage,
                               json.loads(args.github), args.store, args.seed))
    print(json.dumps(result), flush=True)
    return 0 if result["lost"] == 0 and result["duplicated"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
