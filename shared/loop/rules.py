"""Loop rules: pure functions over an event, its causal evidence and its chain's state.

Nothing here does I/O or reads a clock: the lineage service gathers the inputs (a constant number of point
reads), calls ``judge`` and writes the result with conditional writes. Each rule returns a reason or None;
the first rule that fires decides the verdict. Human actions are never stopped by a loop rule: loops are
made by automations, and a person must always be able to talk to Reynolds.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from shared.loop.envelope import ActorKind, EventEnvelope
from shared.loop.marker import strip_markers


class Verdict(StrEnum):
    """What the loop guard decided for one event."""

    ACCEPTED = "accepted"
    DUPLICATE = "duplicate"
    SELF = "self"
    LOOP = "loop"
    IGNORED = "ignored"
    REJECTED = "rejected"


class GuardConfig(BaseModel):
    """Thresholds of the loop rules (all app settings; see the README's settings table)."""

    model_config = ConfigDict(frozen=True)

    max_automated_depth: int = Field(4, ge=1)
    causal_window_seconds: int = Field(86400, ge=60)
    #: An automation acting anywhere in a scope (repository, team, queue) where Reynolds wrote this recently
    #: continues that chain, even on a new target: a bot that hops to a new issue each time cannot escape.
    scope_window_seconds: int = Field(86400, ge=0)
    chain_budget: int = Field(2, ge=1)
    max_children: int = Field(2, ge=1)
    fingerprint_memory: int = Field(256, ge=8)
    #: A user account answering Reynolds (or acting where Reynolds just wrote) this fast acts at a machine's
    #: pace: judged as an automation.
    fast_reply_seconds: int = Field(20, ge=1)
    #: A counterpart whose answers to Reynolds repeat its previous answer (modulo numbers, ids, tokens) this
    #: many times in a row is a loop, whatever its account type.
    max_repeats: int = Field(2, ge=1)
    #: An automation that answered Reynolds this many times in a row within the window is a loop, whichever
    #: chains, targets or repositories the answers went to.
    max_exchanges: int = Field(3, ge=1)
    #: Answers to Reynolds on one target within this many seconds count toward the pace streak.
    pace_seconds: int = Field(45, ge=1)
    #: A user account answering Reynolds this many times in a row at that pace is judged an automation.
    max_fast_exchanges: int = Field(10, ge=2)


@dataclass(frozen=True)
class Evidence:
    """How an event was joined to a chain, and the depth that follows from it."""

    chain_id: str
    parent_id: str | None
    depth: int
    via: str  # "ledger" | "marker" | "causal" | "new"
    linked_chain: str | None = None
    notes: tuple[str, ...] = ()
    #: A human-typed actor judged an automation by its behaviour (machine pace, relaying Reynolds' words
    #: across platforms, a Service Bus producer whatever it claims): judged by the rules for automations.
    relay: bool = False
    #: This event answers Reynolds' previous answer to the same counterpart: the how-many-th in a row.
    exchanges: int = 0
    #: How many answers in a row (this one included) repeat the counterpart's previous answer.
    repeats: int = 0
    #: How many answers in a row (this one included) came within ``pace_seconds`` of Reynolds' answer.
    fast: int = 0
    #: The actor as the evidence names it (``<platform>:<login>``).
    actor: str | None = None
    #: Judged an automation because it relays Reynolds' words (stays with the actor's exchanges).
    relayed: bool = False
    #: One of Reynolds' effects in the scope preceded this event (its own timestamp) by at most
    #: ``fast_reply_seconds``: the event may be a first hop of an automation that reacts to Reynolds.
    prompted: bool = True

    def automated(self, event: EventEnvelope) -> bool:
        """Whether ``event`` counts as an automated hop (an automation, or judged one by its behaviour)."""
        return event.actor.automated or self.relay


@dataclass
class ChainHead:
    """The per-chain state every decision reads and updates (one document, bounded size)."""

    chain_id: str
    created_at: str
    root_event: str
    linked_from: str | None = None
    #: Who started the chain, and whether that first event counted as automated: a user account judged an
    #: automation later in its own chain spent one more of the budget than the counter shows.
    root_actor: str | None = None
    root_automated: bool = True
    #: The first event came within ``fast_reply_seconds`` after one of Reynolds' effects in its scope (by the
    #: event's own timestamp): if its actor is judged an automation later, that first hop is charged too.
    root_prompted: bool = True
    events: int = 0
    verdicts: dict[str, int] = field(default_factory=dict)
    automated_accepted: int = 0
    max_depth: int = 0
    fingerprints: dict[str, int] = field(default_factory=dict)
    children: dict[str, int] = field(default_factory=dict)
    updated_at: str = ""

    def to_doc(self) -> dict[str, Any]:
        """The head as a JSON document body (without store keys)."""
        return dict(self.__dict__)

    @classmethod
    def from_doc(cls, doc: dict[str, Any]) -> ChainHead:
        """Rebuild a head from its stored document; raises on a corrupt document."""
        names = cls.__dataclass_fields__
        head = cls(**{k: v for k, v in doc.items() if k in names})
        counters = (head.events, head.automated_accepted, head.max_depth)
        maps = (head.verdicts, head.fingerprints, head.children)
        if not all(isinstance(n, int) and not isinstance(n, bool) and n >= 0 for n in counters):
            raise ValueError("chain head has malformed counters")
        if not all(isinstance(m, dict) and all(isinstance(v, int) for v in m.values()) for m in maps):
            raise ValueError("chain head has malformed counters")
        if not isinstance(head.chain_id, str) or not isinstance(head.root_event, str):
            raise ValueError("chain head has malformed ids")
        return head


@dataclass(frozen=True)
class Judgement:
    """The verdict with its reasons and the fingerprint the event leaves in its chain."""

    verdict: Verdict
    reasons: tuple[str, ...]
    fingerprint: str
    #: The rule that decided (``self``, ``human``, ``repeat``, ``pace``, ``exchanges``, ``depth``, ``cycle``,
    #: ``amplification``, ``budget``, ``pass``).
    rule: str = "pass"


_QUOTE_LINE = re.compile(r"^\s*>.*$", re.MULTILINE)
_URL = re.compile(r"https?://\S+")
_HEXID = re.compile(r"\b[0-9a-f]{7,}\b", re.IGNORECASE)
_UUID = re.compile(r"\b[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\b", re.IGNORECASE)
_TIMESTAMP = re.compile(r"\d{4}-\d{2}-\d{2}[t ]\d{2}:\d{2}(:\d{2}(\.\d+)?)?(z|[+-]\d{2}:?\d{2})?", re.IGNORECASE)
_DIGITS = re.compile(r"\d+")
_MENTION = re.compile(r"@[A-Za-z0-9-_\[\]]+")
_SPACE = re.compile(r"\s+")


def normalise_text(text: str) -> str:
    """Fold what changes between two rounds of one loop: markers, quotes, links, ids, times, numbers."""
    folded = strip_markers(text)
    folded = _QUOTE_LINE.sub(" ", folded)
    folded = _URL.sub("<url>", folded)
    folded = _UUID.sub("<id>", folded)
    folded = _TIMESTAMP.sub("<time>", folded)
    folded = _HEXID.sub("<id>", folded)
    folded = _DIGITS.sub("#", folded)
    folded = _MENTION.sub("@", folded)
    return _SPACE.sub(" ", folded).strip().lower()


def fingerprint(event: EventEnvelope) -> str:
    """A short hash of (actor kind, action, target, normalised text): equal for rounds of one loop."""
    target = event.target.key if event.target else ""
    basis = "|".join((event.actor.kind.value, event.name, target, normalise_text(event.text)))
    return hashlib.sha256(basis.encode()).hexdigest()[:16]


def judge(event: EventEnvelope, evidence: Evidence, head: ChainHead | None, config: GuardConfig) -> Judgement:
    """Apply the rules in order: self; the exchange rules (repeat, pace); then, for automations only,
    exchanges, depth, cycle, amplification, budget.

    The exchange rules judge a counterpart by how it answers Reynolds, never by its unprompted messages:
    answering Reynolds with the same text again and again, or at a machine's pace again and again, is what
    automations do. A person's own messages (however many, however alike, on however many threads) are
    never counted: they do not answer one of Reynolds' answers to them.
    """
    fp = fingerprint(event)
    notes = evidence.notes
    if event.actor.kind is ActorKind.SELF:
        return Judgement(Verdict.SELF, ("authored by Reynolds' own identity", *notes), fp, "self")
    if evidence.repeats >= config.max_repeats:
        reason = (f"loop: answered Reynolds with the same text {evidence.repeats + 1} times in a row "
                  "(modulo numbers, ids and tokens)")
        return Judgement(Verdict.LOOP, (reason, *notes), fp, "repeat")
    if evidence.fast >= config.max_fast_exchanges:
        reason = (f"loop: answered Reynolds {evidence.fast} times in a row within {config.pace_seconds} s "
                  "of each answer (a machine's pace)")
        return Judgement(Verdict.LOOP, (reason, *notes), fp, "pace")
    if not evidence.automated(event):
        return Judgement(Verdict.ACCEPTED, ("human action", *notes), fp, "human")
    if evidence.exchanges >= config.max_exchanges:
        reason = f"loop: this automation answered Reynolds {evidence.exchanges} times in a row"
        return Judgement(Verdict.LOOP, (reason, *notes), fp, "exchanges")
    if evidence.depth > config.max_automated_depth:
        reason = f"loop: automated depth {evidence.depth} exceeds the cap of {config.max_automated_depth}"
        return Judgement(Verdict.LOOP, (reason, *notes), fp, "depth")
    if head is not None:
        if fp in head.fingerprints:
            reason = "loop: cycle, the same automated action was seen before in this chain"
            return Judgement(Verdict.LOOP, (reason, *notes), fp, "cycle")
        if evidence.parent_id and head.children.get(evidence.parent_id, 0) >= config.max_children:
            reason = f"loop: amplification, event {evidence.parent_id} already caused {config.max_children} events"
            return Judgement(Verdict.LOOP, (reason, *notes), fp, "amplification")
        spent = head.automated_accepted
        if (not head.root_automated and head.root_prompted and head.root_actor is not None
                and head.root_actor == evidence.actor):
            # Its first event, taken for a person's, came seconds after one of Reynolds' effects and its actor
            # is now judged an automation: that first hop was this automation's too. A chain a person started
            # unprompted (nothing of Reynolds' just before) is never charged for it.
            spent += 1
        if spent >= config.chain_budget:
            reason = f"loop: chain budget of {config.chain_budget} automated runs is spent"
            return Judgement(Verdict.LOOP, (reason, *notes), fp, "budget")
    return Judgement(Verdict.ACCEPTED, (f"automated action at depth {evidence.depth} via {evidence.via}", *notes), fp)


def apply(head: ChainHead, event: EventEnvelope, evidence: Evidence, judgement: Judgement, now: str,
          config: GuardConfig) -> ChainHead:
    """The chain head after recording this decision (counters exact; fingerprint memory bounded)."""
    head.events += 1
    head.verdicts[judgement.verdict.value] = head.verdicts.get(judgement.verdict.value, 0) + 1
    head.max_depth = max(head.max_depth, evidence.depth)
    head.updated_at = now
    if judgement.verdict is Verdict.ACCEPTED and evidence.automated(event):
        head.automated_accepted += 1
    if evidence.automated(event):
        head.fingerprints[judgement.fingerprint] = head.fingerprints.get(judgement.fingerprint, 0) + 1
        while len(head.fingerprints) > config.fingerprint_memory:
            head.fingerprints.pop(next(iter(head.fingerprints)))
        if evidence.parent_id:
            head.children[evidence.parent_id] = head.children.get(evidence.parent_id, 0) + 1
            while len(head.children) > config.fingerprint_memory:
                head.children.pop(next(iter(head.children)))
    return head


#: Shorter answers ("any update?", "thanks", "+1") are what people repeat: never judged as repeats.
MIN_REPEAT_CHARS = 24
#: A question up to this long ("any update on this issue?") is a person following up: never a repeat.
MAX_FOLLOW_UP_CHARS = 48
_MIN_REPEAT_WORDS = 4
_WORD = re.compile(r"[A-Za-z]+")
_PUNCT_SPLIT = re.compile(r"[^\s\W]+|[^\w\s]")
_CONSONANT_RUN = re.compile(r"[bcdfghjklmnpqrstvwxz]{4,}")


def _token_like(word: str) -> bool:
    """A letters-only word that reads as a generated token, not language: mixed case inside, few vowels, or
    a run of four consonants (``qZkVbT``, ``mwrplx``, ``hjtnsd``)."""
    if len(word) < 5:
        return False
    lower = word.lower()
    if word[1:] != word[1:].lower() and word[1:] != word[1:].upper():
        return True
    vowels = sum(c in "aeiouy" for c in lower)
    return vowels / len(lower) < 0.2 or bool(_CONSONANT_RUN.search(lower))


def repeat_key(text: str) -> str:
    """What two rounds of one template have in common: ``normalise_text`` with generated tokens folded too."""
    return normalise_text(_WORD.sub(lambda m: "<tok>" if _token_like(m.group()) else m.group(), strip_markers(text)))


#: A reaction this soon after Reynolds' answer to its actor is a reflex, not a follow-up: a short phrase
#: ("+1", "thanks") sent again and again this soon after each answer is a repeat; a person asking "any update?"
#: after Reynolds went quiet for longer is following up.
REFLEX_SECONDS = 600
#: Two texts of one actor sharing this share of their words, in order (and at least ``_MIN_REPEAT_WORDS - 1``
#: of them), with word counts within one, are one template with slots filled (service, environment, state).
TEMPLATE_SHARE = 0.5


def _common_in_order(a: list[str], b: list[str]) -> int:
    """The length of the longest common subsequence of two word lists (texts are short: O(len(a)·len(b)))."""
    row = [0] * (len(b) + 1)
    for x in a:
        prev = 0
        for j, y in enumerate(b, 1):
            prev, row[j] = row[j], prev + 1 if x == y else max(row[j], row[j - 1])
    return row[-1]


def repeats(previous: str, current: str, *, reflex: bool = False, shape: bool = True) -> bool:
    """Whether two answers (as ``repeat_key``) are one template filled twice.

    Equal, or equal but for one word in the same place (a generated token ``repeat_key`` did not recognise), or
    the same shape with slots filled (``TEMPLATE_SHARE`` of the words in order, word counts within one); and more
    than what people repeat: a short phrase ("thanks!") or a short question ("any update on this issue?": a
    person waiting for an answer) — unless it is a ``reflex`` (sent within ``REFLEX_SECONDS`` of Reynolds' answer
    to its actor): the same short phrase as a reflex to Reynolds' answers again and again is a repeat. ``shape``
    False (a text quoting Reynolds: the quote is Reynolds' words, not the actor's shape) skips the template test.
    """
    if reflex and previous and previous == current:
        return True
    if min(len(previous), len(current)) < MIN_REPEAT_CHARS:
        return False
    if len(current) <= MAX_FOLLOW_UP_CHARS and current.rstrip().endswith("?"):
        return False
    a, b = previous.split(), current.split()
    if abs(len(a) - len(b)) > 1 or min(len(a), len(b)) < _MIN_REPEAT_WORDS:
        return False
    if len(a) == len(b) and sum(x != y for x, y in zip(a, b, strict=True)) <= (1 if len(a) > _MIN_REPEAT_WORDS
                                                                                 else 0):
        return True
    if not shape:
        return False
    # Punctuation is part of a template's shape ("Deploy of <service> to <env>: <state>").
    a, b = _PUNCT_SPLIT.findall(previous), _PUNCT_SPLIT.findall(current)
    common = _common_in_order(a, b)
    return common >= _MIN_REPEAT_WORDS and common >= TEMPLATE_SHARE * min(len(a), len(b))
