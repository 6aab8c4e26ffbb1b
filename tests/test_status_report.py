"""The status comment: checklist, escaping of content, size limit, and the reynolds:* labels."""

from __future__ import annotations

from typing import Any

import pytest

from shared.work.status_report import (
    ALL_LABELS,
    MAX_COMMENT_CHARS,
    ReportPhase,
    escape_content,
    labels_for,
    render_status_comment,
)
from shared.work.tasks import SubtaskOutcome, SubtaskState


def test_checklist_shows_every_subtask_with_its_state() -> None:
    states = {
        "build": "succeeded",
        "deploy": "waiting",
        "scan": "failed",
        "notify": "skipped",
        "docs": "running",
        "later": "pending",
    }
    outcomes: list[SubtaskOutcome | dict[str, Any]] = [
        {"id": "build", "specialist": "devops", "status": "succeeded", "attempts": 2, "summary": "image built"},
        SubtaskOutcome(
            id="scan", specialist="code_intelligence", status=SubtaskState.FAILED, attempts=4, error="scanner crashed"
        ),
    ]
    body = render_status_comment(
        "rollout: new runner",
        "inst-1",
        states,
        outcomes,
        {"Chain": "https://reynolds.example/chains/c1"},
        phase="needs_approval",
    )
    assert body.startswith("<!-- reynolds:status instance=inst-1 -->")
    assert "### ✋ Waiting for approval — rollout: new runner" in body
    assert "- [x] ✅ **build** — succeeded after 2 attempts: image built" in body
    assert "- [ ] ✋ **deploy** — waiting for approval" in body
    assert "- [ ] ❌ **scan** — failed after 4 attempts: scanner crashed" in body
    assert "- [ ] ⏭️ **notify** — skipped" in body
    assert "- [ ] 🔄 **docs** — running" in body
    assert "- [ ] ⏸️ **later** — pending" in body
    assert "**3/6 done** · 1 succeeded · 1 running · 1 waiting for approval · 1 failed · 1 skipped" in body
    assert "Instance: `inst-1`" in body
    assert "[Chain](https://reynolds.example/chains/c1)" in body
    assert "/reynolds approve" in body
    order = [body.index(f"**{sid}**") for sid in states]
    assert order == sorted(order)


def test_content_cannot_mention_reference_or_inject_html() -> None:
    outcomes = [
        {
            "id": "a",
            "specialist": "devops",
            "status": "succeeded",
            "summary": "cc @octocat and @org/team, fixes #12\n\n<img src=x onerror=alert(1)> <!-- x -->",
        }
    ]
    body = render_status_comment("ping @admin about #3", "inst", {"a": "succeeded"}, outcomes, {})
    assert "@octocat" not in body
    assert "@org" not in body
    assert "@admin" not in body
    assert "@\u200boctocat" in body
    assert "#12" not in body
    assert "#3" not in body
    assert "<img" not in body
    assert "onerror" not in body  # the output sanitizer drops active HTML whole
    assert body.count("<!--") == 1  # only our own marker
    assert escape_content("email@") == "email@"  # a trailing @ mentions nobody
    assert escape_content("user@example.com") == "user@\u200bexample.com"


def test_only_https_links_are_rendered() -> None:
    body = render_status_comment(
        "t",
        "inst",
        {},
        None,
        {"ok": "https://github.com/o/r/issues/1", "bad": "javascript:alert(1)", "plain": "http://example.com"},
    )
    assert "[ok](https://github.com/o/r/issues/1)" in body
    assert "javascript" not in body
    assert "http://example.com" not in body


def test_instance_marker_survives_hostile_ids() -> None:
    body = render_status_comment("t", "a--> <b>", {}, None, None)
    first_line = body.splitlines()[0]
    assert first_line.startswith("<!-- reynolds:status instance=")
    assert first_line.endswith(" -->")
    assert first_line.count("-->") == 1


def test_huge_reports_are_truncated_safely() -> None:
    states = {f"s{i:03d}": "failed" for i in range(256)}
    outcomes = [{"id": sid, "specialist": "devops", "status": "failed", "error": "E" * 5000} for sid in states]
    body = render_status_comment("T" * 10_000, "inst", states, outcomes, {"x": "https://example.com"})
    assert len(body) <= MAX_COMMENT_CHARS
    assert "Instance: `inst`" in body  # the tail is kept


def test_truncation_announces_the_rest() -> None:
    states = {f"subtask-{i:05d}": "pending" for i in range(3000)}
    body = render_status_comment("t", "inst", states, None, None)
    assert len(body) <= MAX_COMMENT_CHARS
    assert "more subtasks" in body
    assert body.rstrip().endswith("Instance: `inst`")


@pytest.mark.parametrize(
    ("phase", "labels"),
    [
        (ReportPhase.STARTED, {"reynolds:running"}),
        ("needs_approval", {"reynolds:running", "reynolds:needs-approval"}),
        ("succeeded", {"reynolds:succeeded"}),
        ("partial", {"reynolds:failed"}),
        ("failed", {"reynolds:failed"}),
        ("cancelled", set()),
    ],
)
def test_labels_for(phase: ReportPhase | str, labels: set[str]) -> None:
    assert labels_for(phase) == labels
    assert labels_for(phase) <= ALL_LABELS


def test_labels_for_rejects_unknown_phases() -> None:
    with pytest.raises(ValueError, match="not a valid ReportPhase"):
        labels_for("exploded")
