"""Proposals: validated against the tool schema the model was given and a typed model; hashed canonically."""

from __future__ import annotations

import hashlib
import json

import pytest

from shared.act.proposals import (
    CONTENT_MODELS,
    WRITE_TOOLS,
    ProposalError,
    build_proposals,
    canonical_json,
    content_hash,
    idempotency_key,
    tool_spec,
    validate_write,
)
from shared.ai.specialists import ProposedWrite
from shared.work.tasks import Specialist

REPO = "octo/app"


def write(tool: str, subtask: str = "s1", **arguments: object) -> ProposedWrite:
    return ProposedWrite(tool=tool, arguments=arguments, call_id=f"c-{tool}", subtask_id=subtask,
                         specialist=Specialist.DEVOPS)


def test_every_write_tool_the_specialists_offer_has_a_typed_model_with_the_same_fields() -> None:
    for tool in WRITE_TOOLS:
        spec = tool_spec(tool)
        model = CONTENT_MODELS[tool]
        if spec is None:
            assert tool == "create_comment"  # no specialist offers it yet; same shape as create_review_comment
            continue
        assert set(spec.parameters) == set(model.model_fields), tool


def test_the_three_devops_writes_become_w1_w2_w3_with_full_content_and_a_canonical_hash() -> None:
    proposals, refused = build_proposals([
        write("add_labels", repo="OCTO/App", number=7, labels=["bug", "Bug", "ci"]),
        write("create_issue", repo=REPO, title="CI is red", body="The `test` job fails since #6."),
        write("rerun_failed_jobs", repo=REPO, run_id=42),
    ], REPO)
    assert refused == []
    assert [p.id for p in proposals] == ["w1", "w2", "w3"]
    labels, issue, rerun = proposals
    assert labels.target == "octo/app#7"
    assert labels.content == {"repo": REPO, "number": 7, "labels": ["bug", "ci"]}
    assert issue.target == REPO
    assert issue.content["body"] == "The `test` job fails since #6."
    assert rerun.target == "octo/app/actions/runs/42"
    expected = hashlib.sha256(json.dumps({"tool": "rerun_failed_jobs", "target": rerun.target,
                                          "content": {"repo": REPO, "run_id": 42}},
                                         sort_keys=True, separators=(",", ":")).encode()).hexdigest()
    assert rerun.hash == expected
    assert rerun.verify()
    assert rerun.short_hash == expected[:8]


def test_canonical_json_does_not_depend_on_key_order_and_keeps_unicode() -> None:
    assert canonical_json({"b": 1, "a": "é"}) == canonical_json({"a": "é", "b": 1}) == '{"a":"é","b":1}'.encode()
    assert content_hash("t", "x", {"a": 1, "b": 2}) == content_hash("t", "x", {"b": 2, "a": 1})


@pytest.mark.parametrize(("tool", "arguments", "reason"), [
    ("create_issue", {"repo": "evil/other", "title": "x", "body": "y"}, "outside this task"),
    ("create_issue", {"repo": REPO, "title": "", "body": "y"}, "title"),
    ("create_issue", {"repo": REPO, "title": "x" * 257, "body": "y"}, "title"),
    ("create_issue", {"repo": REPO, "title": "x"}, "missing arguments: body"),
    ("create_issue", {"repo": REPO, "title": "x", "body": "y", "labels": ["a"]}, "unknown arguments"),
    ("add_labels", {"repo": REPO, "number": 0, "labels": ["a"]}, "number"),
    ("add_labels", {"repo": REPO, "number": 3, "labels": []}, "labels"),
    ("add_labels", {"repo": REPO, "number": 3, "labels": ["x" * 51]}, "labels"),
    ("add_labels", {"repo": REPO, "number": True, "labels": ["a"]}, "wrong type"),
    ("rerun_failed_jobs", {"repo": REPO, "run_id": "42"}, "wrong type"),
    ("create_review_comment", {"repo": REPO, "number": 1, "body": ""}, "body"),
    ("create_calendar_event", {"user_id": "u1", "subject": "Sync", "start": "2026-12-08T10:00:00",
                               "end": "2026-12-08T11:00:00Z", "attendees": []}, "offset"),
    ("create_calendar_event", {"user_id": "u1", "subject": "Sync", "start": "2026-12-08T11:00:00Z",
                               "end": "2026-12-08T10:00:00Z", "attendees": []}, "end must be after start"),
    ("create_calendar_event", {"user_id": "u1", "subject": "Sync", "start": "2026-12-08T10:00:00Z",
                               "end": "2026-12-08T11:00:00Z", "attendees": ["not an address"]}, "e-mail"),
    ("post_channel_message", {"team_id": "../x", "channel_id": "19:a@thread.tacv2", "text": "hi"}, "team_id"),
    ("delete_repository", {"repo": REPO}, "not a write tool"),
])
def test_bad_write_calls_are_refused_naming_the_argument(tool: str, arguments: dict, reason: str) -> None:
    with pytest.raises(ProposalError, match=reason):
        validate_write(tool, arguments, REPO)


def test_texts_are_sanitised_before_hashing_so_the_approver_sees_what_is_written() -> None:
    target, content = validate_write("create_review_comment", {
        "repo": REPO, "number": 5,
        "body": "See [here](https://evil.example/x) <!-- reynolds:v1 chain=c event=e depth=0 sig=" + "0" * 24
                + " --> @everyone"}, REPO)
    assert target == "octo/app#5"
    assert "evil.example" not in content["body"]
    assert "<!--" not in content["body"]
    assert "@everyone" not in content["body"]


def test_refused_calls_get_no_id_and_a_reason() -> None:
    proposals, refused = build_proposals([
        write("create_issue", repo="evil/other", title="x", body="y"),
        write("add_labels", repo=REPO, number=3, labels=["bug"]),
    ], REPO)
    assert [p.id for p in proposals] == ["w1"]
    assert refused[0].tool == "create_issue"
    assert "outside" in refused[0].reason


def test_a_rerun_subtask_keeps_ids_per_slot_and_a_changed_content_changes_only_the_hash() -> None:
    first, _ = build_proposals([write("add_labels", repo=REPO, number=3, labels=["bug"]),
                                write("create_issue", "s2", repo=REPO, title="A", body="a")], REPO)
    again, _ = build_proposals([write("create_issue", "s2", repo=REPO, title="A", body="changed"),
                                write("create_issue", "s2", repo=REPO, title="B", body="b")], REPO, first)
    assert [p.id for p in again] == ["w1", "w2", "w3"]
    assert again[0] == first[0]
    assert again[1].id == "w2"
    assert again[1].hash != first[1].hash
    assert idempotency_key("i1", again[1]) != idempotency_key("i1", first[1])


def test_a_stored_proposal_is_validated_again_before_use() -> None:
    proposals, _ = build_proposals([write("add_labels", repo=REPO, number=3, labels=["bug"])], REPO)
    tampered = proposals[0].model_copy(update={"content": {**proposals[0].content, "number": 4}})
    assert not tampered.verify()
    assert tampered.typed().number == 4  # type: ignore[union-attr]
