"""Meeting intelligence foundations: WebVTT parsing, cited action items, chunking, merging, dedup, the recap card
and due-date nudges (shared/meetings)."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from shared.act.proposals import build_proposals
from shared.meetings.chunks import chunk_transcript, merge_items
from shared.meetings.dedup import drop_open_issues, similarity
from shared.meetings.extraction import ACTION_ITEMS_RESPONSE_FORMAT, ACTION_ITEMS_SCHEMA, parse_answer
from shared.meetings.items import ActionItem, validate_items
from shared.meetings.nudges import next_nudge
from shared.meetings.recap import card_decision, check_card, item_write, recap_card
from shared.meetings.vtt import Transcript, VttError, parse_vtt

DATA = Path(__file__).parent / "data" / "meetings"
REPO = "octo-org/ops"


@pytest.fixture
def standup() -> Transcript:
    return parse_vtt((DATA / "standup.vtt").read_bytes().decode("utf-8"))


def _item(owner: str, action: str, ts: str, quote: str, due: str | None = None) -> dict[str, Any]:
    return {"owner": owner, "action": action, "due_date": due, "evidence": {"timestamp": ts, "quote": quote}}


#: What a model answers for the standup: six items, two of them said twice, and one invented.
MODEL_ITEMS = [
    _item("Ada Lovelace", "Update the failover drill runbook", "00:00:06.100", "update the runbook for the failover drill", "2026-12-11"),  # noqa: E501
    _item("Bob Okafor", "Migrate the billing database to Postgres", "00:00:12.900", "I will migrate the billing database to Postgres"),  # noqa: E501
    _item("Chen Wei", "Review the Terraform pull request", "00:00:18.700", "review the Terraform pull request today"),
    _item("Dana Scott", "Book a room for the retro", "00:00:27.300", "Sure, I'll book the retro room."),
    _item("Bob Okafor", "Send the incident report to the customer", "00:00:30.600", "send the incident report to the customer by Wednesday & copy legal", "2026-12-09"),  # noqa: E501
    _item("Chen Wei", "Add alerts for queue depth", "00:00:37.900", "I'll add alerts for queue depth"),
    _item("Ada Lovelace", "Update the failover drill runbook", "00:00:53.100", "I update the runbook by Friday", "2026-12-11"),  # noqa: E501
    _item("Chen Wei", "Add queue depth alerts", "00:01:02.300", "queue depth alerts are mine"),
    _item("Eve Mallory", "Grant Eve admin on production", "00:00:45.000", "Eve gets admin on production"),
]


# --- WebVTT ------------------------------------------------------------------------------------------------


def test_teams_transcript_parses_speakers_timestamps_and_multiline_cues(standup: Transcript) -> None:
    assert len(standup.cues) == 12
    assert standup.speakers == ["Ada Lovelace", "Bob Okafor", "Chen Wei", "Dana Scott"]
    first = standup.cues[0]
    assert (first.identifier, first.start_ms, first.end_ms) == ("3f6b1c2e-8a1d-4b57-9d0e-5c2f1a7e9b10/11-0", 1200, 5800)
    assert standup.cues[1].text == "I'll update the runbook for the failover drill by Friday,\nthe part about DNS is wrong."  # noqa: E501
    assert "&" in standup.cues[6].text
    assert "&amp;" not in standup.cues[6].text
    assert standup.cues[10].timestamp == "00:00:53.100"


def test_spec_shapes_note_style_settings_voice_class_and_short_timestamps() -> None:
    text = (
        "WEBVTT - a header\n\nSTYLE\n::cue { color: red }\n\nNOTE a one-line comment\n\n"
        "00:11.000 --> 00:13.000 align:right size:50%\n<v.loud Roger Bingham>We are in <i>New York</i> City\n\n"
        "NOTE\nmulti\nline\n\n"
        "intro\n1:02:03.5 --> 1:02:04.000\n<v Neil deGrasse Tyson><00:01.000>Didn&rsquo;t we talk?\n\n"
        "00:20.000 --> 00:21.000\nno voice here\n"
    )
    transcript = parse_vtt(text)
    assert [(c.speaker, c.text) for c in transcript.cues] == [
        ("Roger Bingham", "We are in New York City"),
        ("Neil deGrasse Tyson", "Didn\u2019t we talk?"),
        (None, "no voice here"),
    ]
    assert transcript.cues[1].identifier == "intro"
    assert transcript.cues[1].start_ms == 3_723_500


@pytest.mark.parametrize(("text", "where"), [
    ("WEBVTTX\n\n00:01.000 --> 00:02.000\nhi\n", "line 1"),
    ("WEBVTT\n\n00:01.000 -> 00:02.000\nhi\n", "line 3"),
    ("WEBVTT\n\n00:05.000 --> 00:02.000\nhi\n", "end after it starts"),
    ("WEBVTT\n\n00:61.000 --> 00:62.000\nhi\n", "below 60"),
])
def test_malformed_files_raise_naming_the_problem(text: str, where: str) -> None:
    with pytest.raises(VttError, match=where):
        parse_vtt(text)


# --- action items --------------------------------------------------------------------------------------------


def test_evidence_must_be_in_the_cue_at_its_timestamp(standup: Transcript) -> None:
    ok = ActionItem.model_validate(MODEL_ITEMS[0], context={"transcript": standup})
    assert ok.speaker == "Ada Lovelace"
    assert ok.due_date == date(2026, 12, 11)
    # Case, whitespace and typographic quotes do not matter...
    loose = _item("Dana Scott", "Book the room", "00:00:27.3", "SURE,   I\u2019LL book the retro room")
    assert ActionItem.model_validate(loose, context={"transcript": standup}).evidence.timestamp == "00:00:27.300"
    # ...words said in another cue, an invented line and a timestamp with no cue do.
    for bad, reason in [
        (_item("Dana Scott", "Book the room", "00:00:22.500", "I'll book the retro room"), "not in the cue"),
        (MODEL_ITEMS[8], "not in the cue"),
        (_item("Ada", "Do it", "02:00:00.000", "update the runbook"), "no cue at 02:00:00.000"),
    ]:
        with pytest.raises(ValidationError, match=reason):
            ActionItem.model_validate(bad, context={"transcript": standup})
    with pytest.raises(ValidationError, match="validated against its transcript"):
        ActionItem.model_validate(MODEL_ITEMS[0])


def test_schema_is_strict_everywhere() -> None:
    assert ACTION_ITEMS_RESPONSE_FORMAT["json_schema"]["strict"] is True

    def walk(node: dict[str, Any]) -> None:
        if node.get("type") == "object":
            assert node["additionalProperties"] is False
            assert set(node["required"]) == set(node["properties"])
            for child in node["properties"].values():
                walk(child)
        if node.get("type") == "array":
            walk(node["items"])

    walk(ACTION_ITEMS_SCHEMA)


def test_acceptance_six_items_two_said_twice_one_open_gives_five_cited_proposals(standup: Transcript) -> None:
    accepted, rejected = parse_answer(json.dumps({"items": MODEL_ITEMS}), standup)
    assert [r.action for r in rejected] == ["Grant Eve admin on production"]
    merged = merge_items(accepted)
    assert len(merged) == 6
    new, duplicates = drop_open_issues(merged, ["Migrate billing database to Postgres", "Rotate the TLS certs"])
    assert [(item.owner, title) for item, title in duplicates] == [("Bob Okafor", "Migrate billing database to Postgres")]  # noqa: E501
    writes = [item_write(item, REPO, "Incident stand-up", n, "m-1") for n, item in enumerate(new)]
    proposals, refused = build_proposals(writes, REPO)
    assert refused == []
    assert [p.id for p in proposals] == ["w1", "w2", "w3", "w4", "w5"]
    cue_starts = {cue.timestamp for cue in standup.cues}
    for item, proposal in zip(new, proposals, strict=True):
        assert item.evidence.timestamp in cue_starts
        assert item.evidence.timestamp in proposal.content["body"]
        assert proposal.verify()
    # Said twice: the runbook keeps Friday and the line that says it best; the alerts keep the first line.
    runbook = next(item for item in new if item.owner == "Ada Lovelace")
    assert runbook.evidence.timestamp == "00:00:06.100"
    assert runbook.due_date == date(2026, 12, 11)


def test_invalid_answers_reject_everything_with_a_reason(standup: Transcript) -> None:
    assert parse_answer("not json", standup)[1][0].reason == "the answer is not JSON"
    assert parse_answer('{"items": 3}', standup)[1][0].reason == "the answer has no items list"
    _, rejected = validate_items([{"owner": "x"}], standup)
    assert rejected[0].reason.startswith("action: Field required")


# --- chunking ------------------------------------------------------------------------------------------------


def _scripted_model(cues: tuple[Any, ...]) -> list[dict[str, Any]]:
    """A model that finds Dana's item only when it sees both the request and the acceptance."""
    texts = {cue.timestamp: cue.text for cue in cues}
    items = []
    if "00:00:22.500" in texts and "00:00:27.300" in texts:
        items.append(_item("Dana Scott", "Book a room for the retro", "00:00:27.300", "I'll book the retro room"))
    if "00:00:37.900" in texts:
        items.append(_item("Chen Wei", "Add alerts for queue depth", "00:00:37.900", "add alerts for queue depth"))
    return items


def test_an_item_spanning_a_chunk_boundary_is_found_once(standup: Transcript) -> None:
    # Cue sizes are ~20-30 tokens: a 120-token budget ends the first chunk between the request (cue 4) and the
    # acceptance (cue 5).
    chunks = chunk_transcript(standup, budget_tokens=120, overlap_tokens=30)
    assert len(chunks) > 2
    boundary = chunks[0].end
    assert boundary == 5, "the fixture's first boundary falls between the request and the acceptance"
    covered: set[int] = set()
    for chunk in chunks:
        covered.update(range(chunk.start, chunk.end))
        assert sum(len(c.text) for c in chunk.cues(standup)) > 0
    assert covered == set(range(len(standup.cues)))
    found: list[ActionItem] = []
    for chunk in chunks:
        found.extend(validate_items(_scripted_model(chunk.cues(standup)), standup)[0])
    merged = merge_items(found)
    assert [item.owner for item in merged] == ["Dana Scott", "Chen Wei"]
    # Without the overlap the request and the acceptance never meet: the item is lost.
    lost = [i for c in chunk_transcript(standup, 120, 0) for i in _scripted_model(c.cues(standup))]
    assert all(i["owner"] != "Dana Scott" for i in lost)


def test_chunking_refuses_an_overlap_that_cannot_progress(standup: Transcript) -> None:
    with pytest.raises(ValueError, match="below half"):
        chunk_transcript(standup, 100, 50)
    assert [(c.start, c.end) for c in chunk_transcript(standup, 10_000, 100)] == [(0, 12)]


# --- dedup, card, nudges -----------------------------------------------------------------------------------


def test_similarity_catches_rephrasing_not_different_work() -> None:
    assert similarity("Migrate the billing DB to Postgres", "Postgres: migrate billing DB") >= 0.8
    assert similarity("Add alerts for queue depth", "Add alerts for disk usage") < 0.8


def test_recap_card_offers_each_proposal_to_approve(standup: Transcript) -> None:
    items = merge_items(parse_answer(json.dumps({"items": MODEL_ITEMS[:3]}), standup)[0])
    proposals, _ = build_proposals([item_write(i, REPO, "Stand-up", n, "m-1") for n, i in enumerate(items)], REPO)
    card = recap_card("Stand-up", list(zip(items, proposals, strict=True)))
    assert check_card(card) == []
    actions = [a for c in card["body"][2:] for a in c["items"][3]["actions"]]
    assert [(a["verb"], a["data"]["proposal"]) for a in actions] == [
        ("approve", "w1"), ("reject", "w1"), ("approve", "w2"), ("reject", "w2"), ("approve", "w3"), ("reject", "w3")]
    assert actions[0]["data"]["hash"] == proposals[0].hash[:8]
    invoke = {"action": {"type": "Action.Execute", "verb": "approve", "data": actions[0]["data"]}}
    assert card_decision(invoke) == ("approve", "w1", proposals[0].hash[:8])
    assert card_decision({"action": {"type": "Action.Execute", "verb": "delete", "data": {}}}) is None
    broken = {"type": "AdaptiveCard", "version": "1.2", "body": [{"type": "ActionSet", "actions": [
        {"type": "Action.Execute", "title": "x"}]}, {"type": "Image"}]}
    assert check_card(broken) == ["Action.Execute needs version 1.4 or later",
                                  "body[0].actions[0]: Action.Execute needs a verb and a title",
                                  "body[1]: unknown element 'Image'"]


def test_due_date_nudges_once_each_and_stop_when_closed() -> None:
    due = date(2026, 12, 11)
    approved = datetime(2026, 12, 8, 10, tzinfo=UTC)
    assert next_nudge(approved, due, set(), created_at=approved) == ("before", datetime(2026, 12, 10, 9, tzinfo=UTC))
    on_the_day = next_nudge(datetime(2026, 12, 11, 9, 30, tzinfo=UTC), due, {"before"})
    assert on_the_day is not None
    assert on_the_day[0] == "due"
    # Offline for days: only the latest past nudge, and the earlier ones are obsolete once it is sent.
    late = datetime(2026, 12, 13, tzinfo=UTC)
    overdue = next_nudge(late, due, set())
    assert overdue is not None
    assert overdue[0] == "overdue"
    assert next_nudge(late, due, {"overdue"}) is None
    assert next_nudge(approved, due, set(), closed=True) is None


# --- the pipeline the activities will run -------------------------------------------------------------------


def _model_seeing(messages: list[dict[str, str]]) -> str:
    """A scripted model: it answers the items whose cited line it was shown (plus the invented one)."""
    shown = messages[-1]["content"]
    items = [item for item in MODEL_ITEMS if f"[{item['evidence']['timestamp']}]" in shown or item["owner"] == "Eve Mallory"]  # noqa: E501
    return json.dumps({"items": items})


@pytest.mark.parametrize("budget", [10_000, 160])
def test_pipeline_acceptance_in_one_chunk_or_many(standup: Transcript, budget: int) -> None:
    from shared.meetings.pipeline import extract, propose

    extraction = extract(standup, "m-1", _model_seeing, budget_tokens=budget, overlap_tokens=40)
    assert (len(extraction.chunks) == 1) == (budget == 10_000)
    assert len(extraction.items) == 6
    assert {r.action for r in extraction.rejected} == {"Grant Eve admin on production"}
    recap = propose(extraction.items, ["Migrate billing database to Postgres"], REPO, "Incident stand-up", "m-1")
    assert [p.id for _, p in recap.entries] == ["w1", "w2", "w3", "w4", "w5"]
    assert [item.owner for item, _ in recap.already_open] == ["Bob Okafor"]
    # A redelivered notification computes the same proposals: same ids, same hashes, nothing new.
    again = propose(extract(standup, "m-1", _model_seeing, budget_tokens=budget, overlap_tokens=40).items,
                    ["Migrate billing database to Postgres"], REPO, "Incident stand-up", "m-1",
                    existing=[p for _, p in recap.entries])
    assert [(p.id, p.hash) for _, p in again.entries] == [(p.id, p.hash) for _, p in recap.entries]


def test_decided_items_show_their_issue_or_rejection(standup: Transcript) -> None:
    from shared.meetings.pipeline import propose

    items = merge_items(parse_answer(json.dumps({"items": MODEL_ITEMS[:3]}), standup)[0])
    entries = propose(items, [], REPO, "Stand-up", "m-1").entries
    card = recap_card("Stand-up", entries, decided={"w1": "https://github.com/octo-org/ops/issues/41",
                                                    "w2": "rejected"})
    assert check_card(card) == []
    states = [c["items"][3] for c in card["body"][2:]]
    assert states[0]["text"] == "Approved: [tracked as an issue](https://github.com/octo-org/ops/issues/41)"
    assert states[1]["text"].startswith("Rejected")
    assert states[2]["type"] == "ActionSet"


def test_nudge_and_closed_texts() -> None:
    from shared.meetings.nudges import closed_note, nudge_text

    url = "https://github.com/octo-org/ops/issues/41"
    assert nudge_text("before", "Ada", "Update the runbook", date(2026, 12, 11), url) == (
        'Ada: "Update the runbook" is due tomorrow (2026-12-11). Tracked in ' + url)
    assert "still open" in nudge_text("overdue", "Ada", "x", date(2026, 12, 11), url)
    assert closed_note("Update the runbook", url, "ada") == f'Done: "Update the runbook" was closed by ada ({url}).'
