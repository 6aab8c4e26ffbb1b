"""``python -m tools.whatif --from FILE [--set NAME=VALUE …]``: what would the loop guard have decided with other
settings? A shadow-mode replay of recorded decisions through the real guard.

The journal (FILE) is JSON lines, one record per line, in the order things happened::

    {"kind": "settings", "settings": {"LOOP_MAX_AUTOMATED_DEPTH": "4", …, "REYNOLDS_ROUTING_PROFILE": "reply-all"},
     "marker_key_sha256": "<first 16 hex of sha256(marker key)>" | null, "source": "arena:app-bot ping-pong"}
    {"kind": "decision", "seq": 1, "at": "2026-01-01T00:00:01+00:00", "event_id": "…", "chain_id": "…",
     "parent_id": "…" | null, "depth": 0, "verdict": "accepted", "rule": "…", "routed": true,
     "envelope": {…the EventEnvelope the guard judged, model_dump(mode="json")…}}
    {"kind": "effect", "seq": 2, "at": "…", "state": "done" | "suppressed", "resource_id": "…", "text": "…",
     "record": {"key", "platform", "kind", "target", "chain_id", "event_id", "depth"}}

* ``settings`` (first line, optional): the settings the run was decided with: every ``LOOP_*`` setting, the
  routing profile, the Service Bus namespace and the bot login; never a secret (the marker key is identified by
  a short SHA-256 prefix only).
* ``decision``: one per call of the guard's public entry (``LineageService.decide``/``hold``/``open_chain``,
  which ``shared.admission.judge`` calls; a later ``refuse``, e.g. a task quota, amends the verdict in place):
  the envelope as judged, the verdict and rule, the chain, the recorded parent (the event whose answer this
  event answers, ``Decision.parent_id``) and the clock at the decision.
* ``effect``: one per effect Reynolds completed (or suppressed) in the effect ledger: the ledger record, the
  resource id and the text written (markers included: the next decision reads them).

Replay (``replay``): a fresh memory store on a clock set to each record's ``at``; the recorded settings with the
``--set`` changes (validated by ``shared.settings.Settings``, so a bad value is refused naming the setting);
then, in recorded order, each decision goes through ``shared.admission.judge`` (routing + loop guard + quota, the
same entry point the doors call, so the replay survives a rebuild of the guard's internals) and each effect is
re-recorded through the lineage service's ledger, on the chain the replay gave its event. What the change
prevents is pruned, not judged:

* an effect whose event the replay does not accept (or pruned) is not written;
* a decision is **pruned** when it could not have happened: Reynolds' own write coming back (actor ``self``)
  whose effect was not written, or an event whose recorded parent's answer was not written (a bot answering an
  answer Reynolds never gave). Pruned events are counted and listed in the summary, never reported as refused.

Output: one JSON line per changed (not pruned) decision, ``{"event_id", "chain_id", "verdict": [old, new],
"rule": [old, new]}``, then ``{"summary": {"decisions", "changed", "newly_refused", "newly_accepted", "pruned",
"pruned_event_ids", "unrecorded_effects", "settings"}}``. ``unrecorded_effects`` counts newly accepted events:
what Reynolds would then have written was never recorded, so what follows from it is unknown to a replay (run
the chain as an arena scenario for that). Limits: a person's event is never pruned (a person is not assumed to
have been answering), and the writers' rate breakers are not re-judged (their suppressions replay as
recorded).

Recording: ``journal_to(services, path, source=…)`` is a context manager that records every decision and effect
of a run (``tools.simulate``/``tools.arena`` call it with ``--journal PATH``); ``python -m tools.whatif
--record-arena SCENARIO.json --journal PATH`` (or ``--record-simulate FILE… --journal PATH``) records one arena
scenario (or a simulate run) without changing those tools.

Exit codes: 0 done, 2 bad input (unreadable journal, bad setting, bad ``--set``).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import json
import sys
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from shared.admission import judge
from shared.errors import ConfigurationError
from shared.loop.envelope import ActorKind, EventEnvelope
from shared.loop.lineage import Decision, EffectRecord, LineageService
from shared.loop.rules import Verdict
from shared.services import Services
from shared.settings import Settings, alias_of, app_environment
from shared.store.memory import MemoryStore

#: Settings a journal records and a replay may change (besides every ``LOOP_*``).
RECORDED_EXTRA = ("REYNOLDS_ROUTING_PROFILE", "ServiceBusConnection__fullyQualifiedNamespace", "REYNOLDS_BOT_LOGIN")
#: Verdicts that let an orchestration run (a duplicate of an accepted event runs the same orchestration).
RUNS = {Verdict.ACCEPTED.value}


def recorded_settings(settings: Settings) -> dict[str, str]:
    """The replayable, non-secret settings of a run: every ``LOOP_*`` plus ``RECORDED_EXTRA``."""
    values = settings.model_dump(by_alias=True, mode="json")
    chosen: dict[str, str] = {}
    for name in sorted(values):
        if (name.startswith("LOOP_") or name in RECORDED_EXTRA) and values[name] is not None:
            value = values[name]
            chosen[name] = json.dumps(value) if isinstance(value, bool) else str(value)
    return chosen


def key_fingerprint(key: str | None) -> str | None:
    """A short identifier of the marker key (never the key)."""
    return hashlib.sha256(key.encode()).hexdigest()[:16] if key else None


# -- recording --------------------------------------------------------------------------------------------------
@dataclass
class Journal:
    """The records of one run, in order."""

    header: dict[str, Any]
    records: list[dict[str, Any]] = field(default_factory=list)

    def lines(self) -> list[str]:
        """The journal as JSON lines (header first)."""
        return [json.dumps(self.header, sort_keys=True)] + [json.dumps(r, sort_keys=True) for r in self.records]


def _decision_record(seq: int, at: datetime, event: EventEnvelope, decision: Decision,
                     routed: bool | None) -> dict[str, Any]:
    return {"kind": "decision", "seq": seq, "at": at.isoformat(), "event_id": event.id,
            "chain_id": decision.chain_id, "parent_id": decision.parent_id, "depth": decision.depth,
            "verdict": decision.verdict.value, "rule": decision.rule, "routed": routed,
            "envelope": event.model_dump(mode="json")}


@contextlib.contextmanager
def journal_to(services: Services, path: str | Path | None, *, source: str = "") -> Iterator[Journal]:
    """Record every decision and effect of ``services``' lineage service while the block runs; write the journal
    to ``path`` (JSON lines, see the module docstring) when it ends. ``path`` None records in memory only.

    The lineage instance's public methods are wrapped for the block and restored after it, so nothing else
    changes: decisions and effects are the same calls, in the same order, with the same results.
    """
    lineage: LineageService = services.lineage
    key = services.settings.marker_signing_key
    journal = Journal({"kind": "settings", "settings": recorded_settings(services.settings), "source": source,
                       "marker_key_sha256": key_fingerprint(key.get_secret_value() if key else None)})
    originals = {name: getattr(lineage, name) for name in
                 ("decide", "hold", "open_chain", "refuse", "complete_effect", "suppress_effect")}
    by_event: dict[str, dict[str, Any]] = {}

    def add(record: dict[str, Any]) -> None:
        record["seq"] = len(journal.records) + 1
        journal.records.append(record)

    def decided(event: EventEnvelope, decision: Decision, routed: bool | None) -> Decision:
        record = _decision_record(0, lineage.clock(), event, decision, routed)
        add(record)
        by_event[event.id] = record
        return decision

    def decide(event: EventEnvelope, *, routed: bool) -> Decision:
        return decided(event, originals["decide"](event, routed=routed), routed)

    def hold(event: EventEnvelope, problem: str) -> Decision:
        return decided(event, originals["hold"](event, problem), None)

    def open_chain(event: EventEnvelope, reason: str, rule: str) -> Decision:
        return decided(event, originals["open_chain"](event, reason, rule), None)

    def refuse(decision: Decision, reason: str, rule: str) -> Decision:
        refused: Decision = originals["refuse"](decision, reason, rule)
        record = by_event.get(decision.event_id)
        if record is not None and record["verdict"] == Verdict.ACCEPTED.value:
            record.update(verdict=refused.verdict.value, rule=refused.rule)
        return refused

    def effect(record: EffectRecord, state: str, resource_id: str | None, text: str) -> None:
        fields = {k: v for k, v in asdict(record).items() if k not in ("resource_id", "state")}
        add({"kind": "effect", "at": lineage.clock().isoformat(), "state": state, "resource_id": resource_id,
             "text": text, "record": fields})

    def complete_effect(record: EffectRecord, resource_id: str, text: str) -> EffectRecord:
        done: EffectRecord = originals["complete_effect"](record, resource_id, text)
        effect(record, "done", resource_id, text)
        return done

    def suppress_effect(record: EffectRecord, reason: str) -> EffectRecord:
        suppressed: EffectRecord = originals["suppress_effect"](record, reason)
        effect(record, "suppressed", None, reason)
        return suppressed

    wrappers = {"decide": decide, "hold": hold, "open_chain": open_chain, "refuse": refuse,
                "complete_effect": complete_effect, "suppress_effect": suppress_effect}
    for name, wrapper in wrappers.items():
        setattr(lineage, name, wrapper)
    try:
        yield journal
    finally:
        for name in wrappers:
            delattr(lineage, name)  # the instance attribute shadowed the method: removing it restores the class's
        if path is not None:
            Path(path).write_text("\n".join(journal.lines()) + "\n", encoding="utf-8")


# -- reading ----------------------------------------------------------------------------------------------------
class JournalError(ValueError):
    """A journal that cannot be replayed (the line number says where)."""


def read_journal(path: str | Path) -> Journal:
    """Parse a journal file; ``JournalError`` naming the first bad line."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise JournalError(f"{path}: cannot read ({exc})") from None
    journal = Journal({"kind": "settings", "settings": {}})
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            raise JournalError(f"{path}:{number}: not JSON ({exc.msg})") from None
        kind = record.get("kind") if isinstance(record, dict) else None
        if kind == "settings":
            journal.header = record
        elif kind == "decision":
            try:
                EventEnvelope.model_validate(record["envelope"])
                datetime.fromisoformat(record["at"])
                record["event_id"], record["verdict"]  # noqa: B018 - presence check
            except (KeyError, TypeError, ValueError, ValidationError) as exc:
                raise JournalError(f"{path}:{number}: not a decision record ({type(exc).__name__})") from None
            journal.records.append(record)
        elif kind == "effect":
            try:
                EffectRecord(**record["record"])
                datetime.fromisoformat(record["at"])
            except (KeyError, TypeError, ValueError) as exc:
                raise JournalError(f"{path}:{number}: not an effect record ({type(exc).__name__})") from None
            journal.records.append(record)
        else:
            raise JournalError(f"{path}:{number}: unknown record kind {kind!r}")
    return journal


# -- replay -----------------------------------------------------------------------------------------------------
class _Clock:
    def __init__(self) -> None:
        self.now = datetime(2000, 1, 1, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now


def replay_settings(journal: Journal, changes: dict[str, str], environ: dict[str, str] | None = None) -> Settings:
    """The recorded settings with ``changes``, validated as the app validates them (``ConfigurationError``).

    The marker key is not in a journal: a journal recorded by ``tools.simulate``/``tools.arena`` used the
    simulation's public key; any other needs ``REYNOLDS_MARKER_KEY`` in the environment (or
    ``local.settings.json``), checked against the recorded fingerprint.
    """
    from tools.world import SIMULATE_MARKER_KEY

    allowed = {alias_of(n) for n in Settings.model_fields}
    unknown = sorted(set(changes) - allowed)
    if unknown:
        raise ConfigurationError(unknown[0], "is not an app setting")
    values = {**{str(k): str(v) for k, v in (journal.header.get("settings") or {}).items()}, **changes}
    values["LINEAGE_STORE"] = "memory"
    wanted = journal.header.get("marker_key_sha256")
    if wanted:
        key = SIMULATE_MARKER_KEY if key_fingerprint(SIMULATE_MARKER_KEY) == wanted else \
            app_environment(environ).get("REYNOLDS_MARKER_KEY")
        if not key or key_fingerprint(key) != wanted:
            raise ConfigurationError("REYNOLDS_MARKER_KEY", "must be the key the journal was recorded with "
                                     f"(fingerprint {wanted}) so recorded markers verify as they did")
        values["REYNOLDS_MARKER_KEY"] = key
    try:
        return Settings.model_validate(values)
    except ValidationError as exc:
        first = exc.errors()[0]
        raise ConfigurationError(str(first["loc"][0]) if first["loc"] else "settings",
                                 f"is invalid: {first['msg']}") from None


@dataclass
class Outcome:
    """A replay's result: the changed decisions and the summary."""

    changes: list[dict[str, Any]]
    summary: dict[str, Any]


async def _replay(journal: Journal, settings: Settings) -> Outcome:
    clock = _Clock()
    services = Services(settings=settings, store=MemoryStore(clock=clock), clock=clock)
    lineage = services.lineage
    replayed: dict[str, Decision] = {}
    pruned: list[str] = []
    dropped: set[str] = set()  # events whose answers were not written in the replay
    written: dict[tuple[str, str], str] = {}  # (platform, resource id) of a recorded effect → its event
    changes: list[dict[str, Any]] = []
    recorded = {str(r["event_id"]): r for r in journal.records if r["kind"] == "decision"}
    decisions = newly_refused = newly_accepted = 0
    for record in sorted(journal.records, key=lambda r: int(r.get("seq") or 0)):
        clock.now = datetime.fromisoformat(record["at"])
        if record["kind"] == "effect":
            fields = record["record"]
            answered = str(fields["event_id"])
            if record.get("resource_id"):
                written[(str(fields["platform"]), str(record["resource_id"]))] = answered
            decision = replayed.get(answered)
            if decision is None or decision.verdict.value not in RUNS and not _dup_of_accepted(decision):
                dropped.add(answered)
                continue
            # The effect keeps its recorded offset from its event's depth (an answer sits one hop deeper), on
            # the chain and at the depth the replay gave that event.
            before = recorded.get(answered)
            shift = decision.depth - int(before["depth"] or 0) if before is not None else 0
            effect = EffectRecord(**{**fields, "chain_id": decision.chain_id or fields["chain_id"],
                                     "depth": int(fields["depth"]) + shift})
            lineage.begin_effect(effect)
            if record.get("state") == "suppressed":
                lineage.suppress_effect(effect, str(record.get("text") or ""))
            else:
                lineage.complete_effect(effect, str(record["resource_id"]), str(record.get("text") or ""))
            continue
        decisions += 1
        event = EventEnvelope.model_validate(record["envelope"])
        if _prunable(event, record, dropped, written):
            pruned.append(event.id)
            dropped.add(event.id)
            continue
        judged = await judge(event, services)
        decision = judged.decision
        replayed[event.id] = decision
        old = (record["verdict"], record.get("rule") or "")
        new = (decision.verdict.value, decision.rule or "")
        if old != new:
            changes.append({"event_id": event.id, "chain_id": record.get("chain_id"),
                            "verdict": [old[0], new[0]], "rule": [old[1], new[1]]})
            newly_refused += old[0] in RUNS and new[0] not in RUNS
            newly_accepted += old[0] not in RUNS and new[0] in RUNS
    summary = {"decisions": decisions, "changed": len(changes), "newly_refused": newly_refused,
               "newly_accepted": newly_accepted, "pruned": len(pruned), "pruned_event_ids": pruned,
               "unrecorded_effects": newly_accepted}
    return Outcome(changes, summary)


def _dup_of_accepted(decision: Decision) -> bool:
    return decision.verdict is Verdict.DUPLICATE and decision.original_verdict is Verdict.ACCEPTED


def _prunable(event: EventEnvelope, record: dict[str, Any], dropped: set[str],
              written: dict[tuple[str, str], str]) -> bool:
    """Whether ``event`` could not have happened in the replay (see the module docstring)."""
    if event.actor.kind is ActorKind.SELF:
        answered = written.get((event.platform.value, event.resource_id or ""))
        return answered is not None and answered in dropped
    # A person's event starts its own chain (no parent); one the guard judged an automation by behaviour
    # recorded the event it answered, so it is pruned like a bot's.
    parent = record.get("parent_id")
    return bool(parent) and parent in dropped


def replay(journal: Journal, changes: dict[str, str], environ: dict[str, str] | None = None) -> Outcome:
    """Replay ``journal`` with ``changes`` to its settings (see the module docstring)."""
    settings = replay_settings(journal, changes, environ)
    outcome = asyncio.run(_replay(journal, settings))
    outcome.summary["settings"] = changes
    return outcome


# -- recording a simulate or arena run -------------------------------------------------------------------------
@contextlib.contextmanager
def _recording(module: Any, journal_path: str | Path | None, source: str) -> Iterator[list[Journal]]:
    """Wrap ``module.build_world`` for the block so every world it builds is journalled (the tool's code and its
    output stay as they are)."""
    original = module.build_world
    holder: list[Journal] = []

    @contextlib.contextmanager
    def recording_world(**kwargs: Any) -> Iterator[Any]:
        with original(**kwargs) as world, journal_to(world.services, journal_path, source=source) as journal:
            holder.append(journal)
            yield world

    module.build_world = recording_world
    try:
        yield holder
    finally:
        module.build_world = original


def record_arena(scenario_path: str | Path, journal_path: str | Path | None) -> tuple[dict[str, Any], Journal]:
    """Run one arena scenario (memory store) with ``journal_to`` installed; its result line and journal."""
    import tools.arena as arena

    scenario = arena.Scenario.model_validate_json(Path(scenario_path).read_text(encoding="utf-8"))
    with _recording(arena, journal_path, f"arena:{scenario.name}") as holder:
        result = asyncio.run(arena.run_scenario(scenario, "memory"))
    return result, holder[0]


def record_simulate(files: list[str], journal_path: str | Path | None) -> tuple[list[dict[str, Any]], Journal]:
    """Run ``tools.simulate`` items (memory store) with ``journal_to`` installed; its output lines (printed on
    stderr here, stdout being the replay's) and journal."""
    import tools.simulate as simulate

    items = simulate.load_items(files)
    with _recording(simulate, journal_path, f"simulate:{','.join(files)}") as holder, \
            contextlib.redirect_stdout(sys.stderr):
        lines = asyncio.run(simulate.simulate(items, "memory"))
    return lines, holder[0]


def _parse_sets(pairs: list[str]) -> dict[str, str]:
    changes: dict[str, str] = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name:
            raise ConfigurationError(pair, "is not NAME=VALUE")
        changes[name] = value
    return changes


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(prog="python -m tools.whatif", description=__doc__.split("\n")[0])
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--from", dest="journal_file", metavar="FILE", help="a decisions journal (JSON lines)")
    source.add_argument("--record-arena", metavar="SCENARIO", help="run an arena scenario and write its journal")
    source.add_argument("--record-simulate", metavar="FILE", nargs="+", help="run simulate items, write the journal")
    parser.add_argument("--journal", metavar="PATH", help="where --record-arena/--record-simulate write the journal")
    parser.add_argument("--set", action="append", default=[], metavar="NAME=VALUE", help="a changed setting")
    args = parser.parse_args(argv)
    try:
        if args.record_arena or args.record_simulate:
            if not args.journal:
                print("whatif: recording needs --journal PATH", file=sys.stderr)
                return 2
            if args.record_arena:
                journal = record_arena(args.record_arena, args.journal)[1]
            else:
                journal = record_simulate(args.record_simulate, args.journal)[1]
            print(f"whatif: recorded {len(journal.records)} records to {args.journal}", file=sys.stderr)
            return 0
        outcome = replay(read_journal(args.journal_file), _parse_sets(args.set))
    except (JournalError, ConfigurationError, OSError) as exc:
        print(f"whatif: {exc}", file=sys.stderr)
        return 2
    except Exception as exc:  # a tool's own input error (simulate's InputError, an invalid arena scenario)
        if type(exc).__name__ not in ("InputError", "ValidationError"):
            raise
        print(f"whatif: {exc}", file=sys.stderr)
        return 2
    for change in outcome.changes:
        print(json.dumps(change), flush=True)
    print(json.dumps({"summary": outcome.summary}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
