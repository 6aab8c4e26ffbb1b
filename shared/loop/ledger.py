"""The effect ledger: every write Reynolds makes, recorded before and after the external call.

* ``fx:<idempotency key>`` (own partition): an effect's intent, written before the external call, and its
  resource id after it. What makes a re-executed activity post nothing twice.
* ``fr:<platform>:<resource id>`` (own partition): effect index, resource → chain (Reynolds' own writes
  coming back as events join their chain).

Completing an effect also files it as causal evidence (``shared.loop.evidence``) through the ``on_done``
callback the lineage service installs.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from shared.errors import Conflict, NotFound, PreconditionFailed, RetryLater
from shared.loop.marker import find_markers
from shared.store.base import DocumentStore, safe_id


@dataclass(frozen=True)
class EffectRecord:
    """An effect in the ledger: its intent and, once written, the resource it produced."""

    key: str
    platform: str
    kind: str
    target: str
    chain_id: str
    event_id: str
    depth: int
    resource_id: str | None = None
    state: str = "intent"
    #: When the first attempt recorded the intent (ISO 8601); kept by every later attempt and by completion.
    first_at: str | None = None


def doc_id(prefix: str, key: str) -> str:
    """The id (and own partition key) of a ledger, index or event document."""
    return safe_id(f"{prefix}:{key}")


def public(doc: dict[str, Any]) -> dict[str, Any]:
    """A stored document without store keys."""
    return {k: v for k, v in doc.items() if k not in ("_etag", "pk", "ttl")}


def effect_from_doc(stored: dict[str, Any]) -> EffectRecord:
    """The ledger record of a stored effect document (its own ``kind`` is stored as ``effect_kind``)."""
    values = {k: stored[k] for k in EffectRecord.__dataclass_fields__ if k in stored and k != "kind"}
    return EffectRecord(kind=stored.get("effect_kind", ""), **values)


class EffectLedger:
    """Records effects (intent, claim, completion, suppression) and answers "did Reynolds write this?"."""

    def __init__(self, store: DocumentStore, *, marker_key: str | None, event_ttl: int, lineage_ttl: int,
                 now: Callable[[], str], on_done: Callable[[EffectRecord, str], None]) -> None:
        self.store = store
        self.marker_key = marker_key
        self.event_ttl = event_ttl
        self.lineage_ttl = lineage_ttl
        self._now = now
        self._on_done = on_done

    def begin(self, record: EffectRecord, attempt: int | None = None,
              run: str | None = None) -> tuple[EffectRecord, bool]:
        """Record the intent before the external call, claimed by ``attempt`` when one is given.

        Returns the record and whether it is new. An existing record in state ``intent`` means an earlier
        attempt may have written the resource and crashed before recording it: a later attempt takes the
        claim over and the caller reconciles (looks for what was written). The same or an older attempt
        finding a claim raises ``RetryLater``: that is a concurrent duplicate execution (activities run at
        least once), and only one of two may write. A claim of another ``run`` (an earlier execution of a
        restarted orchestration, which gave up) is taken over. Without ``attempt`` (writes that are idempotent
        by nature, such as edits to a fixed body) there is no claim.
        """
        if record.first_at is None:
            record = EffectRecord(**{**record.__dict__, "first_at": self._now()})
        doc = self._doc(record, attempt=attempt or 1, run=run)
        try:
            self.store.create(doc)
            return record, True
        except Conflict:
            stored = self.store.read(doc["pk"], doc["id"])
        existing = effect_from_doc(stored)
        if existing.state == "intent" and attempt is not None:
            claimed = int(stored.get("attempt") or 1)
            if stored.get("run") == run and claimed >= attempt:
                raise RetryLater(None, f"effect {record.key} is being written by attempt {claimed}")
            try:
                self.store.replace(self._doc(existing, attempt=attempt, run=run), stored["_etag"])
            except PreconditionFailed:
                raise RetryLater(None, f"effect {record.key} changed while attempt {attempt} took it over") from None
        return existing, False

    def _doc(self, record: EffectRecord, **extra: Any) -> dict[str, Any]:
        body = {k: v for k, v in record.__dict__.items() if k != "kind"}
        key = doc_id("fx", record.key)
        return {"id": key, "pk": key, "kind": "effect", "effect_kind": record.kind,
                **body, **extra, "created_at": self._now(), "ttl": self.event_ttl}

    def complete(self, record: EffectRecord, resource_id: str, text: str) -> EffectRecord:
        """Record the resource an effect produced, index it, and file it as causal evidence."""
        done = EffectRecord(**{**record.__dict__, "resource_id": resource_id, "state": "done"})
        self.store.upsert(self._doc(done))
        index_id = doc_id("fr", f"{record.platform}:{resource_id}")
        self.store.upsert({"id": index_id, "pk": index_id, "kind": "effect-index", "chain_id": record.chain_id,
                           "event_id": record.event_id, "depth": record.depth, "effect": record.key,
                           "ttl": self.lineage_ttl})
        self._on_done(done, text)
        return done

    def suppress(self, record: EffectRecord, reason: str) -> EffectRecord:
        """Record that an effect was not written because a breaker is open (a retry will not write it)."""
        suppressed = EffectRecord(**{**record.__dict__, "state": "suppressed"})
        self.store.upsert(self._doc(suppressed, reason=reason))
        return suppressed

    def own_effect(self, platform: str, resource_id: str | None) -> dict[str, Any] | None:
        """The effect index entry when ``resource_id`` on ``platform`` is something Reynolds wrote, else None.

        For doors whose author identity cannot tell Reynolds from a person (Graph names the delegated account
        Reynolds posts with as a human author), the ingress asks this one point read before the decision.
        """
        if not resource_id:
            return None
        index_id = doc_id("fr", f"{platform}:{resource_id}")
        try:
            return public(self.store.read(index_id, index_id))
        except NotFound:
            return None

    def answering(self, platform: str, target: str, marker_text: str,
                  key_of: Callable[[str], str]) -> EffectRecord | None:
        """Reynolds' own answer on ``target`` that a message carrying ``marker_text`` may *be*.

        A door that cannot tell Reynolds' author identity (Graph) and sees the message before the ledger has
        its resource id (the write is in flight) still finds the effect by the answered event the marker
        names: ``key_of(answered event id)`` is the effect's ledger key. One point read per valid marker.
        """
        for marker in find_markers(marker_text, self.marker_key):
            if not marker.valid:
                continue
            key = doc_id("fx", key_of(marker.event_id))
            try:
                stored = self.store.read(key, key)
            except NotFound:
                continue
            if stored.get("platform") == platform and stored.get("target") == target:
                return effect_from_doc(stored)
        return None
