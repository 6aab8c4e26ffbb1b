"""Proposals kept by content: small references in the orchestration, full text in the store, hash-checked."""

from __future__ import annotations

import pytest

from shared.act.book import ProposalMissing, ProposalRef, load_proposals, save_proposals
from shared.act.proposals import Proposal, build_proposals
from shared.ai.specialists import ProposedWrite
from shared.store.base import Query
from shared.store.memory import MemoryStore
from shared.work.tasks import Specialist


def _proposals(body: str = "x" * 60_000) -> list[Proposal]:
    writes = [ProposedWrite(tool="create_issue", arguments={"repo": "octo/app", "title": "Long", "body": body},
                            call_id="c", subtask_id="s", specialist=Specialist.DEVOPS)]
    return build_proposals(writes, "octo/app")[0]


def test_refs_are_small_and_load_back_verified_and_saving_twice_is_harmless() -> None:
    store = MemoryStore()
    proposals = _proposals()
    refs = save_proposals(store, "i1", proposals)
    assert refs == save_proposals(store, "i1", proposals)  # a re-executed activity
    assert len(refs[0].model_dump_json()) < 300
    assert load_proposals(store, "i1", refs) == proposals


def test_a_changed_proposal_is_a_new_document_and_the_old_one_still_loads() -> None:
    store = MemoryStore()
    old = save_proposals(store, "i1", _proposals("a"))
    new = save_proposals(store, "i1", _proposals("b"))
    assert old[0].id == new[0].id
    assert old[0].hash != new[0].hash
    assert load_proposals(store, "i1", old)[0].content["body"] == "a"
    assert load_proposals(store, "i1", new)[0].content["body"] == "b"


def test_missing_or_tampered_proposals_are_refused() -> None:
    store = MemoryStore()
    (ref,) = save_proposals(store, "i1", _proposals("a"))
    with pytest.raises(ProposalMissing):
        load_proposals(store, "other-task", [ref])
    forged = ProposalRef(id=ref.id, hash="0" * 64, tool=ref.tool, target=ref.target)
    with pytest.raises(ProposalMissing):
        load_proposals(store, "i1", [forged])
    (doc,) = store.query(Query(equals={"kind": "act-proposal"}))
    doc["proposal"]["content"]["body"] = "tampered"
    store.upsert({k: v for k, v in doc.items() if k != "_etag"})
    with pytest.raises(ProposalMissing, match="does not match"):
        load_proposals(store, "i1", [ref])
