"""Action items and the rule that makes them trustworthy: each cites a transcript line that really says it.

An :class:`ActionItem` is what the model extracted (owner, action, due date when one was said) plus its
:class:`Evidence`: the cited cue's start timestamp and a quoted line. Validated with the transcript in the
pydantic validation context (``ActionItem.model_validate(data, context={"transcript": t})``), an item is
*rejected* unless the quote appears in the text of the cue at that timestamp, compared after folding case,
typographic quotes and whitespace (:func:`shared.meetings.vtt.normalize`). Without a transcript in the context
the evidence cannot be checked and validation fails too: no code path accepts an unchecked item.
"""

from __future__ import annotations

from datetime import date
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator, model_validator

from shared.meetings.vtt import Transcript, VttError, format_timestamp, normalize, parse_timestamp

MAX_OWNER = 120
MAX_ACTION = 300
MAX_QUOTE = 500
#: Shorter quotes ("ok", "yes") would match almost any cue: evidence must say something.
MIN_QUOTE = 8


class EvidenceError(ValueError):
    """The cited evidence is not in the transcript."""


class Evidence(BaseModel):
    """Where the transcript says it: the cue's start (``hh:mm:ss.mmm``) and the quoted words."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    timestamp: str
    quote: str = Field(min_length=MIN_QUOTE, max_length=MAX_QUOTE)

    @field_validator("timestamp")
    @classmethod
    def _canonical(cls, value: str) -> str:
        try:
            return format_timestamp(parse_timestamp(value))
        except VttError as exc:
            raise ValueError(str(exc)) from None


class ActionItem(BaseModel):
    """One action item, cited. ``speaker`` is filled from the cue, not by the model."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    owner: str = Field(min_length=1, max_length=MAX_OWNER)
    action: str = Field(min_length=3, max_length=MAX_ACTION)
    due_date: date | None = None
    evidence: Evidence
    speaker: str | None = None

    @field_validator("owner", "action")
    @classmethod
    def _strip(cls, value: str) -> str:
        return " ".join(value.split())

    @model_validator(mode="after")
    def _cited(self, info: ValidationInfo) -> ActionItem:
        transcript = (info.context or {}).get("transcript") if isinstance(info.context, dict) else None
        if not isinstance(transcript, Transcript):
            raise ValueError("an action item is validated against its transcript (context={'transcript': ...})")
        cues = transcript.cues_at(self.evidence.timestamp)
        if not cues:
            raise ValueError(f"no cue at {self.evidence.timestamp}")
        quote = normalize(self.evidence.quote)
        for cue in cues:
            if quote in normalize(cue.text):
                if self.speaker is None and cue.speaker:
                    object.__setattr__(self, "speaker", cue.speaker)
                return self
        raise ValueError(f"the quoted line is not in the cue at {self.evidence.timestamp}")


class RejectedItem(BaseModel):
    """An item the model gave that Reynolds dropped, and why (shown to operators, never proposed)."""

    model_config = ConfigDict(frozen=True)

    action: str
    reason: str


def validate_items(raw: list[Any], transcript: Transcript) -> tuple[list[ActionItem], list[RejectedItem]]:
    """Split the model's items into cited ones and rejected ones (with pydantic's reason, never a stack)."""
    from pydantic import ValidationError

    accepted: list[ActionItem] = []
    rejected: list[RejectedItem] = []
    for entry in raw:
        action = str(entry.get("action", ""))[:MAX_ACTION] if isinstance(entry, dict) else ""
        try:
            accepted.append(ActionItem.model_validate(entry, context={"transcript": transcript}))
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(part) for part in first["loc"])
            reason = first["msg"].removeprefix("Value error, ")
            rejected.append(RejectedItem(action=action, reason=f"{where}: {reason}" if where else reason))
    return accepted, rejected
