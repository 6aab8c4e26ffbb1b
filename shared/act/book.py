"""Proposals kept durably, by content: the orchestration carries small references, the store the full text.

A proposal's text may be up to 65,000 characters and a task may have many; Durable payloads above ~45 KB slow
every replay (``../shared/REFERENCE.md``). So the engine keeps :class:`ProposalRef` (id, hash, tool, target) in
its state and the activity that builds proposals stores each one here under ``act-proposal:<instance>:<id>:<hash>``
(its own partition). The document is immutable: the id names the content (a changed proposal is a new hash,
hence a new document), so a re-executed activity creating it again gets ``Conflict`` and moves on — at least
once is harmless. Loading verifies the hash of what was stored before anyone executes it.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Sequence
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError

from shared.act.proposals import Proposal
from shared.errors import Conflict, NotFound
from shared.store.base import DocumentStore, safe_id

#: Proposals outlive the task a while (the explorer and the status comment may link to them).
TTL_SECONDS = 30 * 86400


class ProposalRef(BaseModel):
    """What the orchestration keeps of a proposal (a few hundred bytes)."""

    model_config = ConfigDict(frozen=True)

    id: str
    hash: str
    tool: str
    target: str

    @classmethod
    def of(cls, proposal: Proposal) -> ProposalRef:
        """The reference of ``proposal``."""
        return cls(id=proposal.id, hash=proposal.hash, tool=proposal.tool, target=proposal.target)


class ProposalMissing(LookupError):
    """A referenced proposal is not in the store, or what is stored does not match its hash."""


def _doc_id(instance_id: str, ref: ProposalRef | Proposal) -> str:
    return safe_id(f"act-proposal:{instance_id}:{ref.id}:{ref.hash[:32]}")


def save_proposals(store: DocumentStore, instance_id: str, proposals: Iterable[Proposal]) -> list[ProposalRef]:
    """Store each proposal once (create; an existing document is the same content) and return the references."""
    refs = []
    for proposal in proposals:
        ident = _doc_id(instance_id, proposal)
        doc: dict[str, Any] = {"id": ident, "pk": ident, "kind": "act-proposal", "instance_id": instance_id,
                               "proposal": proposal.model_dump(mode="json"), "ttl": TTL_SECONDS}
        # A Conflict: written by an earlier execution of this activity (the id names the content).
        with contextlib.suppress(Conflict):
            store.create(doc)
        refs.append(ProposalRef.of(proposal))
    return refs


def load_proposals(store: DocumentStore, instance_id: str, refs: Sequence[ProposalRef]) -> list[Proposal]:
    """The proposals ``refs`` name, verified against their hashes (``ProposalMissing`` otherwise)."""
    found = []
    for ref in refs:
        ident = _doc_id(instance_id, ref)
        try:
            stored = store.read(ident, ident)
            proposal = Proposal.model_validate(stored["proposal"])
        except (NotFound, KeyError, ValidationError):
            raise ProposalMissing(f"proposal {ref.id} of {instance_id} is not stored") from None
        if proposal.hash != ref.hash or proposal.id != ref.id or not proposal.verify():
            raise ProposalMissing(f"proposal {ref.id} of {instance_id} does not match its hash")
        found.append(proposal)
    return found
