"""``make bench``: loop-guard cost against the local Cosmos DB server, and the fan-out engine's wall time.

Prints the figures; ``--write`` (``make bench WRITE=1``) also writes them into ``docs/benchmarks.md``, between
its markers only (``tools.bench_doc``), so a run leaves tracked files alone unless asked. Numbers are from the
machine it runs on: the local server is an in-memory Node process, so latencies are a floor-relative comparison,
not Azure figures.

``python -m tools.bench --scale [--chains 100 300] [--cycles 3]`` measures the loop guard at scale instead and
writes nothing: for each chain count and each layout (``one-org``: every chain in its own repository of one
organisation; ``many-orgs``: every chain in its own organisation), that many chains at once, each a bot whose
events are decided and each decision followed by Reynolds' effect (ledger, index, evidence). It prints one JSON
line per run, ``{"layout", "chains", "decisions_effects_per_s", "lost_races_per_effect",
"evidence_writes_given_up", "requests_per_decision"}``, then ``{"latency": {"p50_ms", "floor_p50_ms"}}`` (a
decision alone vs one point read + one conditional write, in the same run). See ``scale_run``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import threading
import time
import uuid
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, cast

from shared.errors import Conflict, PreconditionFailed
from shared.loop.envelope import Actor, ActorKind, EventEnvelope, Platform, Target
from shared.loop.lineage import EffectRecord, LineageService
from shared.loop.marker import hidden_marker
from shared.loop.rules import GuardConfig
from shared.settings import load_settings
from shared.store.base import DocumentStore, Query
from shared.store.cosmos import CosmosStore, ensure_container, make_cosmos_store
from tools import bench_doc
from tools.harness.cosmos_server import start_cosmos_server

ROOT = Path(__file__).resolve().parents[1]
DEPTHS = (1, 10, 100)
SAMPLES = 200
CONCURRENCY = (1, 10, 100)
#: Decisions per concurrency level (split over its chains).
CONCURRENT_DECISIONS = 200
MARKER_KEY = "bench"


def _event(n: int, text: str, target: str = "octo/app#7", login: str = "ci[bot]") -> EventEnvelope:
    repo, _, number = target.partition("#")
    return EventEnvelope(
        id=f"bench:{uuid.uuid4()}", source=f"https://github.com/{repo}", type="com.github.issue_comment.created",
        time=datetime(2026, 1, 1, tzinfo=UTC), platform=Platform.GITHUB, event="issue_comment", action="created",
        actor=Actor(login=login, kind=ActorKind.BOT, account_type="Bot"),
        target=Target(platform=Platform.GITHUB, key=target, repo=repo, number=int(number or 7)),
        resource_id=f"comment:{n}", text=text)


class RaceCounter:
    """A ``DocumentStore`` proxy counting lost races: 412 on a replace, 409 on a create of an existing head."""

    def __init__(self, store: DocumentStore) -> None:
        self.store = store
        self.lost = 0
        self._lock = threading.Lock()

    def _lose(self) -> None:
        with self._lock:
            self.lost += 1

    def read(self, pk: str, doc_id: str) -> dict[str, Any]:
        """Point read."""
        return self.store.read(pk, doc_id)

    def create(self, doc: Mapping[str, Any]) -> dict[str, Any]:
        """Create; a 409 on anything but an event document (a duplicate delivery) is a lost race."""
        try:
            return self.store.create(doc)
        except Conflict:
            if not str(doc.get("id", "")).startswith("ev:"):
                self._lose()
            raise

    def replace(self, doc: Mapping[str, Any], etag: str | None) -> dict[str, Any]:
        """Conditional replace; a 412 is a lost race."""
        try:
            return self.store.replace(doc, etag)
        except PreconditionFailed:
            self._lose()
            raise

    def upsert(self, doc: Mapping[str, Any]) -> dict[str, Any]:
        """Upsert."""
        return self.store.upsert(doc)

    def delete(self, pk: str, doc_id: str) -> None:
        """Delete."""
        self.store.delete(pk, doc_id)

    def query(self, query: Query) -> list[dict[str, Any]]:
        """Query (cold paths)."""
        return self.store.query(query)


def concurrent_chains(store: CosmosStore) -> list[dict[str, Any]]:
    """Decisions per second with 1, 10 and 100 chains decided at once, all in one organisation (a hot scope).

    Each chain is a bot answering Reynolds on its own issue in its own repository of the ``octo`` organisation,
    so every decision reads the same organisation evidence document: the first phase measures decisions alone
    (requests and lost races per decision), the second interleaves Reynolds' effects, which update that
    shared document (lost races per effect).
    """
    config = GuardConfig(max_automated_depth=10_000, chain_budget=1_000_000, max_children=1_000_000,
                         max_exchanges=1_000_000)
    return [_chains_at_once(store, config, chains) for chains in CONCURRENCY]


def _chains_at_once(store: CosmosStore, config: GuardConfig, chains: int) -> dict[str, Any]:
    now = datetime(2026, 1, 1, tzinfo=UTC)
    counter = RaceCounter(store)
    lineage = LineageService(counter, config, marker_key=MARKER_KEY, clock=lambda: now)
    run = uuid.uuid4().hex[:8]
    targets = [f"octo/r-{run}-{c}#1" for c in range(chains)]
    for c, target in enumerate(targets):
        record, _ = lineage.begin_effect(EffectRecord(key=f"seed-{run}-{c}", platform="github", kind="comment",
                                                      target=target, chain_id=f"c-{run}-{c}",
                                                      event_id=f"root-{run}-{c}", depth=1))
        lineage.complete_effect(record, f"comment:seed-{run}-{c}", "seed")
    per = max(2, CONCURRENT_DECISIONS // chains)

    def decide_only(c: int) -> None:
        for n in range(per):
            lineage.decide(_event(n, f"build {uuid.uuid4().hex} finished", targets[c], f"bot{c}[bot]"), routed=True)

    def with_effects(c: int) -> None:
        for n in range(per):
            decision = lineage.decide(_event(n, f"deploy {uuid.uuid4().hex} done", targets[c], f"bot{c}[bot]"),
                                      routed=True)
            record, _ = lineage.begin_effect(EffectRecord(
                key=f"fx-{decision.event_id}", platform="github", kind="comment", target=targets[c],
                chain_id=decision.chain_id or "", event_id=decision.event_id, depth=decision.depth + 1))
            lineage.complete_effect(record, f"comment:{decision.event_id}", "Reynolds answered the deploy")

    before_requests, before_lost = store.requests, counter.lost
    started = time.perf_counter()
    with ThreadPoolExecutor(max_workers=chains) as pool:
        list(pool.map(decide_only, range(chains)))
    elapsed = time.perf_counter() - started
    decisions = chains * per
    row: dict[str, Any] = {"chains": chains, "decisions": decisions, "per_s": round(decisions / elapsed, 1),
                           "requests": round((store.requests - before_requests) / decisions, 2),
                           "lost": round((counter.lost - before_lost) / decisions, 3)}
    before_lost = counter.lost
    started = time.perf_counter()
    with ThreadPoolExecutor(max_workers=chains) as pool:
        list(pool.map(with_effects, range(chains)))
    row["mixed_per_s"] = round(decisions / (time.perf_counter() - started), 1)
    row["lost_per_effect"] = round((counter.lost - before_lost) / decisions, 3)
    return row


def hot_chain(store: CosmosStore, threads: int = 10, per: int = 10) -> dict[str, Any]:
    """Lost races per decision when ``threads`` deliveries decide in one chain at once (its head is hot)."""
    config = GuardConfig(max_automated_depth=10_000, chain_budget=1_000_000, max_children=1_000_000)
    counter = RaceCounter(store)
    lineage = LineageService(counter, config, marker_key=MARKER_KEY)
    chain = f"c-hot-{uuid.uuid4().hex[:8]}"
    text = f"again\n\n{hidden_marker(MARKER_KEY, chain, 'root', 1)}"

    def worker(t: int) -> None:
        for n in range(per):
            lineage.decide(_event(n, text, "octo/hot#1", f"bot{t}[bot]"), routed=True)

    before = store.requests
    with ThreadPoolExecutor(max_workers=threads) as pool:
        list(pool.map(worker, range(threads)))
    decisions = threads * per
    return {"threads": threads, "decisions": decisions, "lost": round(counter.lost / decisions, 2),
            "requests": round((store.requests - before) / decisions, 2)}


def guard_cost(store: CosmosStore) -> list[dict[str, Any]]:
    """Requests and latency of one decision when the chain already holds 1, 10 and 100 events."""
    now = [datetime(2026, 1, 1, tzinfo=UTC)]
    # Loose thresholds: the benchmark measures cost, not verdicts (every path costs the same requests).
    config = GuardConfig(max_automated_depth=10_000, chain_budget=1_000_000, max_children=1_000_000)
    lineage = LineageService(store, config, marker_key=MARKER_KEY, clock=lambda: now[0])
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


def loop_guard_section() -> list[str]:
    """Measure the loop guard on the local Cosmos DB server; its section of docs/benchmarks.md."""
    print("benchmark: starting the local Cosmos DB server", file=sys.stderr)
    with start_cosmos_server() as server:
        settings = load_settings(server.environment(container="bench"))
        ensure_container(settings)
        store = make_cosmos_store(settings)
        print("benchmark: loop-guard decisions at chain depths 1, 10, 100", file=sys.stderr)
        rows = guard_cost(store)
        base = floor(store)
        print("benchmark: 1, 10, 100 concurrent chains in one organisation", file=sys.stderr)
        concurrent = concurrent_chains(store)
        hot = hot_chain(store)
        store.close()
    lines = ["## Loop guard: Cosmos requests and latency per decision", "",
             "Requests are counted from the Cosmos SDK's HTTP requests (`CosmosStore.requests`). The decision path: "
             "one evidence read (the organisation's `sc:` document; none for an automation carrying a valid "
             "marker), the chain-head read (none for a new chain), the event create (409 = duplicate), the head "
             "replace (ETag). At most 4 whatever the chain's depth or the load.", "",
             "| chain depth | requests (max) | requests (median) | p50 ms | p99 ms |", "|---|---|---|---|---|"]
    lines += [f"| {r['depth']} | {r['requests_max']} | {r['requests_median']} | {r['p50_ms']} | {r['p99_ms']} |"
              for r in rows]
    lines += ["", f"Floor (one point read + one conditional write, same run): p50 {base['p50_ms']} ms, "
              f"p99 {base['p99_ms']} ms.", "",
              "### Concurrent chains in one organisation (a hot scope)", "",
              "N threads, each a bot answering Reynolds in its own repository of one organisation: every decision "
              "reads the same organisation evidence document, no decision writes it. *Decisions only*: "
              f"{CONCURRENT_DECISIONS} decisions split over the chains. *With effects*: each decision followed by "
              "Reynolds' effect, which updates the shared evidence document (one conditional write; a lost race "
              "re-reads and retries). Lost races are 412s on a replace and 409s on a create other than a "
              "duplicate event. The effects here are unpaced; in production Reynolds' GitHub writes are paced "
              "≥ 1 s apart per installation (`shared/platforms/github/pacer.py`), so an organisation's evidence "
              "document sees about one effect a second from GitHub.", "",
              "| concurrent chains | decisions/s | requests/decision | lost races/decision "
              "| decisions+effects/s | lost races/effect |", "|---:|---:|---:|---:|---:|---:|"]
    lines += [f"| {r['chains']} | {r['per_s']} | {r['requests']} | {r['lost']} | {r['mixed_per_s']} | "
              f"{r['lost_per_effect']} |" for r in concurrent]
    lines += ["", f"One hot chain ({hot['threads']} threads deciding {hot['decisions']} events in the same chain at "
              f"once, a worst case no organisation-wide loop produces): {hot['lost']} lost races and "
              f"{hot['requests']} requests per decision (each lost race re-reads the head and retries).", ""]
    return lines


def main(argv: list[str] | None = None) -> int:
    """Run the benchmarks and print them; ``--write`` (``make bench WRITE=1``) also puts them into
    docs/benchmarks.md, between its markers only (``tools.bench_doc``). ``--loop-guard``: only that section."""
    args = sys.argv[1:] if argv is None else argv
    if "--scale" in args:
        return scale_main(*parse_scale(args))
    measured = f"Measured {datetime.now(UTC):%Y-%m-%d} by `make bench` on this project's machine (2 cores)."
    section = loop_guard_section()
    blocks = {"loop-guard": "\n".join([*section[:2], measured, "", *section[2:]])}
    if "--loop-guard" not in args:
        from tools import bench_fanout

        print("benchmark: fan-out engine", file=sys.stderr)
        blocks["fan-out"] = f"{measured}\n\n{bench_fanout.markdown(bench_fanout.run())}"
    for body in blocks.values():
        print(body)
    if "--write" not in args:
        print("bench: nothing written (`make bench WRITE=1` updates docs/benchmarks.md between its markers)",
              file=sys.stderr)
        return 0
    try:
        bench_doc.write_blocks(ROOT / "docs" / "benchmarks.md", blocks)
    except bench_doc.MarkerError as exc:
        print(f"bench: {exc}", file=sys.stderr)
        return 2
    print(f"bench: docs/benchmarks.md updated ({', '.join(blocks)})", file=sys.stderr)
    return 0



# -- python -m tools.bench --scale: the loop guard with many chains at once, one organisation vs many ------------
#: Chain counts of a scale run (``--chains``) and cycles (a decision, then Reynolds' effect) per chain.
SCALE_CHAINS = (100, 300)
SCALE_CYCLES = 3
#: Sequential cycles per layout whose decisions are counted and timed alone (see ``scale_run``).
SCALE_SAMPLE = 60
SCALE_LAYOUTS = ("one-org", "many-orgs")


class ScaleCounter(RaceCounter):
    """:class:`RaceCounter` for the scale run: lost races and given-up evidence writes.

    A lost race is a conditional write the store refused because someone wrote first: a 412 on a replace
    (``If-Match``), or a 409 on a create of a document someone created meanwhile (an event document's 409 is a
    duplicate delivery, not a race). Any other operation (patch, batch, …) passes through and is counted the same
    way when it raises ``PreconditionFailed``.
    """

    def __getattr__(self, name: str) -> Any:
        inner = getattr(self.store, name)
        if not callable(inner):
            return inner

        def counted(*args: Any, **kwargs: Any) -> Any:
            try:
                return inner(*args, **kwargs)
            except PreconditionFailed:
                self._lose()
                raise

        return counted


def _loose_config() -> GuardConfig:
    """Thresholds no benchmark chain reaches (the run measures cost, not verdicts); only fields the guard has."""
    loose = {"max_automated_depth": 10_000, "chain_budget": 1_000_000, "max_children": 1_000_000,
             "max_exchanges": 1_000_000}
    return GuardConfig(**{k: v for k, v in loose.items() if k in GuardConfig.model_fields})


def _scale_target(layout: str, run: str, chain: int) -> str:
    """Chain ``chain``'s issue: its own repository of one organisation, or its own organisation."""
    if layout == "one-org":
        return f"octo/r-{run}-{chain}#1"
    return f"org-{run}-{chain}/r#1"


def _cycle(lineage: LineageService, store: CosmosStore, target: str, login: str,
           n: int) -> tuple[float, int, str | None]:
    """One automation event on ``target`` decided, then Reynolds' effect answering it (ledger + evidence).

    Returns the decision's latency (ms), the Cosmos requests the store sent while it decided (exact only when
    nothing else runs) and, when the effect's evidence write gave up, why."""
    before = store.requests
    started = time.perf_counter()
    decision = lineage.decide(_event(n, f"deploy {uuid.uuid4().hex} done", target, login), routed=True)
    latency = (time.perf_counter() - started) * 1000
    requests = store.requests - before
    record, _ = lineage.begin_effect(EffectRecord(
        key=f"fx-{decision.event_id}", platform="github", kind="comment", target=target,
        chain_id=decision.chain_id or "", event_id=decision.event_id, depth=decision.depth + 1))
    try:
        lineage.complete_effect(record, f"comment:{decision.event_id}", "Reynolds answered the deploy")
    except PreconditionFailed as exc:  # the store's give-up path: update_document ran out of attempts
        return latency, requests, str(exc)
    return latency, requests, None


def scale_run(store: CosmosStore, layout: str, chains: int, cycles: int = SCALE_CYCLES,
              sample: int = SCALE_SAMPLE) -> tuple[dict[str, Any], list[float]]:
    """``chains`` chains at once in ``layout``, each ``cycles`` times a decision followed by Reynolds' effect.

    Throughput, lost races per effect and given-up evidence writes come from the concurrent phase. Requests per
    decision and decision latency come from ``sample`` cycles run one at a time on the same chains right after
    it: Cosmos requests are counted by the SDK's hook for the whole client, so only a decision running alone
    can be charged with exactly its own requests (including any the guard sends from helper threads).
    Returns the JSON line and the sample's decision latencies (ms).
    """
    now = datetime(2026, 1, 1, tzinfo=UTC)
    counter = ScaleCounter(store)
    lineage = LineageService(cast(DocumentStore, counter), _loose_config(), marker_key=MARKER_KEY,
                             clock=lambda: now)
    run = uuid.uuid4().hex[:8]
    targets = [_scale_target(layout, run, c) for c in range(chains)]

    def seed(c: int) -> None:  # Reynolds answered a person on each chain's issue: the bot answers that
        record, _ = lineage.begin_effect(EffectRecord(key=f"seed-{run}-{c}", platform="github", kind="comment",
                                                      target=targets[c], chain_id=f"c-{run}-{c}",
                                                      event_id=f"root-{run}-{c}", depth=1))
        lineage.complete_effect(record, f"comment:seed-{run}-{c}", "Reynolds triaged the deploy")

    given_up: list[str] = []
    errors: list[str] = []
    lock = threading.Lock()

    def chain(c: int) -> None:
        for n in range(cycles):
            try:
                _, _, gave_up = _cycle(lineage, store, targets[c], f"bot{c}-{run}[bot]", n)
            except Exception as exc:  # a timeout or a corrupt-state hold under load: reported, not hidden
                with lock:
                    errors.append(f"{type(exc).__name__}: {str(exc)[:120]}")
                continue
            if gave_up:
                with lock:
                    given_up.append(gave_up)

    for c in range(chains):  # one at a time: seeding is set-up, not measured, and must not lose races
        seed(c)
    lost_before = counter.lost
    started = time.perf_counter()
    with ThreadPoolExecutor(max_workers=chains) as pool:
        list(pool.map(chain, range(chains)))
    elapsed = time.perf_counter() - started
    effects = chains * cycles - len(errors)
    lost = counter.lost - lost_before
    latencies: list[float] = []
    requests: list[int] = []
    for k in range(sample):
        c = k % chains
        latency, count, gave_up = _cycle(lineage, store, targets[c], f"bot{c}-{run}[bot]", cycles + k)
        latencies.append(latency)
        requests.append(count)
        if gave_up:
            given_up.append(gave_up)
    if errors:
        print(f"benchmark: {layout} {chains}: {len(errors)} cycles failed, e.g. {errors[0]}", file=sys.stderr)
    line = {"layout": layout, "chains": chains,
            "decisions_effects_per_s": round(effects / elapsed, 1),
            "lost_races_per_effect": round(lost / max(effects, 1), 3),
            "evidence_writes_given_up": len(given_up),
            "requests_per_decision": round(statistics.mean(requests), 2)}
    return line, latencies


def scale_floor(store: CosmosStore, samples: int = SCALE_SAMPLE) -> list[float]:
    """One point read + one conditional write (the decision's floor), timed like the sampled decisions."""
    doc_id = f"floor-{uuid.uuid4().hex[:8]}"
    store.create({"id": doc_id, "pk": doc_id, "n": 0})
    latencies = []
    for n in range(samples):
        started = time.perf_counter()
        doc = store.read(doc_id, doc_id)
        store.replace({"id": doc_id, "pk": doc_id, "n": n}, doc["_etag"])
        latencies.append((time.perf_counter() - started) * 1000)
    return latencies


def scale_main(chains: list[int], cycles: int = SCALE_CYCLES) -> int:
    """``--scale``: one JSON line per layout and chain count, then the latency line (see the docstring above)."""
    print("benchmark: starting the local Cosmos DB server", file=sys.stderr)
    with start_cosmos_server() as server:
        settings = load_settings(server.environment(container="scale"))
        ensure_container(settings)
        store = make_cosmos_store(settings)
        try:
            latencies: list[float] = []
            floors: list[float] = []
            for n in chains:
                for layout in SCALE_LAYOUTS:
                    print(f"benchmark: {n} chains, {layout}", file=sys.stderr)
                    line, sampled = scale_run(store, layout, n, cycles)
                    latencies += sampled
                    floors += scale_floor(store)  # interleaved, so both see the same server state
                    print(json.dumps(line), flush=True)
            print(json.dumps({"latency": {"p50_ms": _pct(latencies, 50), "floor_p50_ms": _pct(floors, 50)}}),
                  flush=True)
        finally:
            store.close()
    return 0


def parse_scale(args: list[str]) -> tuple[list[int], int]:
    """``--chains N [N …]`` and ``--cycles N`` of a ``--scale`` run (defaults ``SCALE_CHAINS``, ``SCALE_CYCLES``)."""
    parser = argparse.ArgumentParser(prog="python -m tools.bench --scale")
    parser.add_argument("--scale", action="store_true")
    parser.add_argument("--chains", type=int, nargs="+", default=list(SCALE_CHAINS))
    parser.add_argument("--cycles", type=int, default=SCALE_CYCLES)
    parsed = parser.parse_args(args)
    if any(n < 1 or n > 2000 for n in parsed.chains) or not 1 <= parsed.cycles <= 100:
        parser.error("--chains takes 1…2000 chains, --cycles 1…100")
    return parsed.chains, parsed.cycles


if __name__ == "__main__":
    sys.exit(main())
