"""``make bench``: loop-guard cost against the local Cosmos DB server, and the fan-out engine's wall time.

Writes the figures to ``docs/benchmarks.md`` (and prints them). Numbers are from the machine it runs on: the
local server is an in-memory Node process, so latencies are a floor-relative comparison, not Azure figures.
"""

from __future__ import annotations

import re
import statistics
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from shared.loop.envelope import Actor, ActorKind, EventEnvelope, Platform, Target
from shared.loop.lineage import EffectRecord, LineageService
from shared.loop.rules import GuardConfig
from shared.settings import load_settings
from shared.store.cosmos import CosmosStore, ensure_container, make_cosmos_store
from tools.harness.cosmos_server import start_cosmos_server

ROOT = Path(__file__).resolve().parents[1]
DEPTHS = (1, 10, 100)
SAMPLES = 200


def _event(n: int, text: str, target: str = "octo/app#7") -> EventEnvelope:
    return EventEnvelope(
        id=f"bench:{uuid.uuid4()}", source="https://github.com/octo/app", type="com.github.issue_comment.created",
        time=datetime(2026, 1, 1, tzinfo=UTC), platform=Platform.GITHUB, event="issue_comment", action="created",
        actor=Actor(login="ci[bot]", kind=ActorKind.BOT, account_type="Bot"),
        target=Target(platform=Platform.GITHUB, key=target, repo="octo/app", number=7),
        resource_id=f"comment:{n}", text=text)


def guard_cost(store: CosmosStore) -> list[dict[str, Any]]:
    """Requests and latency of one decision when the chain already holds 1, 10 and 100 events."""
    now = [datetime(2026, 1, 1, tzinfo=UTC)]
    # Loose thresholds: the benchmark measures cost, not verdicts (every path costs the same requests).
    config = GuardConfig(max_automated_depth=10_000, chain_budget=1_000_000, max_children=1_000_000)
    lineage = LineageService(store, config, marker_key="bench", clock=lambda: now[0])
    rows = []
    for depth in DEPTHS:
        target = f"octo/app#{depth}"
        chain = f"c-bench-{depth}"
        record, _ = lineage.begin_effect(EffectRecord(key=f"bench-{depth}", platform="github", kind="comment",
                                                      target=target, chain_id=chain, event_id="root", depth=1))
        lineage.complete_effect(record, f"comment:{depth}", "seed")
        for n in range(depth):  # grow the chain to `depth` events
            lineage.decide(_event(n, f"build {uuid.uuid4().hex} finished", target), routed=True)
        counts, latencies = [], []
        for n in range(SAMPLES // 4 if depth == 100 else SAMPLES):
            event = _event(10_000 + n, f"build {uuid.uuid4().hex} finished", target)
            now[0] += timedelta(seconds=1)
            before = store.requests
            started = time.perf_counter()
            lineage.decide(event, routed=True)
            latencies.append((time.perf_counter() - started) * 1000)
            counts.append(store.requests - before)
        rows.append({"depth": depth, "requests_max": max(counts), "requests_median": statistics.median(counts),
                     "p50_ms": _pct(latencies, 50), "p99_ms": _pct(latencies, 99)})
    return rows


def floor(store: CosmosStore) -> dict[str, float]:
    """One point read + one conditional write, measured the same way (the decision's floor)."""
    store.create({"id": "floor", "pk": "floor", "n": 0})
    latencies = []
    for n in range(SAMPLES):
        started = time.perf_counter()
        doc = store.read("floor", "floor")
        store.replace({"id": "floor", "pk": "floor", "n": n}, doc["_etag"])
        latencies.append((time.perf_counter() - started) * 1000)
    return {"p50_ms": _pct(latencies, 50), "p99_ms": _pct(latencies, 99)}


def _pct(values: list[float], pct: int) -> float:
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, round(pct / 100 * (len(ordered) - 1)))], 2)


def main() -> int:
    """Run the benchmarks and write docs/benchmarks.md."""
    print("benchmark: starting the local Cosmos DB server", file=sys.stderr)
    with start_cosmos_server() as server:
        settings = load_settings(server.environment(container="bench"))
        ensure_container(settings)
        store = make_cosmos_store(settings)
        print("benchmark: loop-guard decisions at chain depths 1, 10, 100", file=sys.stderr)
        rows = guard_cost(store)
        base = floor(store)
        store.close()
    lines = ["# Benchmarks", "", f"Measured {datetime.now(UTC):%Y-%m-%d} by `make bench` on this project's machine "
             "(2 cores); Cosmos DB is the local `@vercel/cosmosdb-server` over HTTPS on loopback.", "",
             "## Loop guard: Cosmos requests and latency per decision", "",
             "Requests are counted from the Cosmos SDK's HTTP requests (`CosmosStore.requests`). The decision path: "
             "one evidence read, the chain-head read, the event create (409 = duplicate), the head replace "
             "(ETag).", "",
             "| chain depth | requests (max) | requests (median) | p50 ms | p99 ms |", "|---|---|---|---|---|"]
    lines += [f"| {r['depth']} | {r['requests_max']} | {r['requests_median']} | {r['p50_ms']} | {r['p99_ms']} |"
              for r in rows]
    lines += ["", f"Floor (one point read + one conditional write, same run): p50 {base['p50_ms']} ms, "
              f"p99 {base['p99_ms']} ms.", ""]
    try:
        from tools import bench_fanout

        print("benchmark: fan-out engine", file=sys.stderr)
        fan = bench_fanout.run()
        lines += ["## Fan-out engine (orchestrate_task through the real durable replay)", "",
                  bench_fanout.markdown(fan) if hasattr(bench_fanout, "markdown") else f"```\n{fan}\n```", ""]
    except ImportError:
        lines += ["## Fan-out engine", "", "Not measured in this run (tools.bench_fanout is not available).", ""]
    text = "\n".join(lines)
    # The first-run section is measured by tools.first_run (a fresh clone), not here: keep it.
    previous = ROOT / "docs" / "benchmarks.md"
    kept = re.search(r"^## First run\n.*?(?=^## |\Z)", previous.read_text(encoding="utf-8"), re.S | re.M) \
        if previous.exists() else None
    if kept:
        text = text.rstrip("\n") + "\n\n" + kept.group(0).rstrip("\n") + "\n"
    (ROOT / "docs" / "benchmarks.md").write_text(text, encoding="utf-8")
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
