"""``POST /api/github/webhook`` through the registered function, with real ``func.HttpRequest`` objects.

One world per module (``build_world``): the real app, the fake GitHub on loopback, the durable replay. The
fixture sweep reads GitHub's published example payloads from ``../shared/fixtures/github-webhooks`` (octokit's
collection; every folder, the event name is the folder name) and delivers each one signed and tampered.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import logging
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest

from shared.platforms.github.events import MAX_BODY_BYTES, signature_for, verify_signature
from shared.services import set_services
from shared.settings import override_settings
from shared.store.memory import MemoryStore
from tools.simulate import raw_body
from tools.world import REYNOLDS_LOGIN, World, build_world

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = ROOT.parent / "shared" / "fixtures" / "github-webhooks"
SAMPLE = json.loads((ROOT / "samples" / "issues-opened.json").read_text(encoding="utf-8"))

# GitHub names events with digits too (projects_v2, projects_v2_item, projects_v2_status_update).


# ----------------------------------------------------------------------------------------------- fixtures
@pytest.fixture(scope="module")
def module_world() -> Iterator[World]:
    with build_world() as world:
        yield world


@pytest.fixture
def world(module_world: World) -> World:
    """The module's world, (re)installed as the process services (a test may build a second world).

    Each test starts a couple of hours after the previous one: the sweep replays hundreds of look-alike
    deliveries by the same senders within simulated seconds, a machine's pace that the rate breakers
    answer; a test about something else should not inherit that.
    """
    set_services(module_world.services)
    override_settings(module_world.settings)
    module_world.clock.advance(2 * 86400)
    return module_world


def memory(world: World) -> MemoryStore:
    assert isinstance(world.store, MemoryStore)
    return world.store


def secret(world: World) -> str:
    return world.settings.require("github_webhook_secret")


def headers(event: str, delivery: str | None = None, *, signature: str | None = "auto",
            content_type: str | None = "application/json") -> dict[str, str]:
    """Headers as GitHub sends them (``signature="auto"`` lets the world sign with its secret)."""
    values = {"X-GitHub-Event": event, "X-GitHub-Delivery": delivery or str(uuid.uuid4()),
              "X-GitHub-Hook-ID": "424242", "User-Agent": "GitHub-Hookshot/abc1234"}
    if signature is not None:
        values["X-Hub-Signature-256"] = signature
    if content_type is not None:
        values["Content-Type"] = content_type
    return values


def snapshot(world: World) -> tuple[int, int, int, int]:
    """Everything a rejected delivery must leave untouched: store traffic and docs, starts, GitHub writes."""
    store = memory(world)
    return store.requests, len(store._docs), world.client.starts, len(world.github.writes())


def sample_payload(number: int, *, action: str = "opened") -> dict[str, Any]:
    """The sample ``issues.opened`` payload about a fresh issue ``number`` (seeded by the caller)."""
    payload = json.loads(json.dumps(SAMPLE["body"]))
    payload["action"] = action
    payload["issue"]["number"] = number
    payload["issue"]["id"] = 5_000_000 + number  # distinct issues have distinct ids (the event's identity)
    payload["issue"]["title"] = f"Issue {number}: app crashes on start"
    return payload


def reynolds_comments(world: World, repo: str, number: int) -> list[dict[str, Any]]:
    return [c for c in world.github.comments(repo, number) if c["user"]["login"] == REYNOLDS_LOGIN]


# ------------------------------------------------------------------------------------------- signatures
def test_githubs_published_test_vector() -> None:
    body = b"Hello, World!"
    expected = "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"
    assert signature_for("It's a Secret to Everybody", body) == expected
    verify_signature("It's a Secret to Everybody", body, {"X-Hub-Signature-256": expected})
    # Header names are case-insensitive on the wire.
    verify_signature("It's a Secret to Everybody", body, {"x-hub-signature-256": expected})


# --------------------------------------------------------------------------------------- fixture sweep
def _payload_files() -> list[Any]:
    if not FIXTURES.is_dir():
        return [pytest.param(None, id="fixtures-absent",
                             marks=pytest.mark.skip(reason=f"{FIXTURES} is absent (GitHub webhook examples)"))]
    params = []
    for path in sorted(FIXTURES.glob("*/*/*.json")):
        params.append(pytest.param(path, id=str(path.relative_to(FIXTURES))))
    return params


PAYLOAD_FILES = _payload_files()


def read_bytes(path: Path) -> bytes:
    """A fixture file's raw bytes, exactly as GitHub would send them (small local files)."""
    return path.read_bytes()


def _expected_to_run(event: str, payload: dict[str, Any]) -> bool:
    """Whether the default routing profile starts triage: a person opening an issue or commenting on one."""
    sender = payload.get("sender") or {}
    issue = payload.get("issue") or {}
    person = sender.get("type") == "User" and not str(sender.get("login", "")).endswith("[bot]")
    routed = (event, payload.get("action")) in {("issues", "opened"), ("issue_comment", "created")}
    return routed and person and isinstance(issue.get("number"), int)


#: Event ids the sweep has delivered so far (a later example with the same payload identity is a duplicate).
SWEPT_EVENTS: set[str] = set()


@pytest.mark.parametrize("path", PAYLOAD_FILES)
async def test_every_published_payload_is_answered_2xx(world: World, path: Path,
                                                      caplog: pytest.LogCaptureFixture) -> None:
    raw = read_bytes(path)
    payload = json.loads(raw)
    event = path.parent.name
    world.seed_from_payload(payload)
    starts = world.client.starts
    delivery = str(uuid.uuid4())
    with caplog.at_level(logging.WARNING):
        status, answer = await world.post_github(headers(event, delivery), raw)
    assert 200 <= status < 300, answer
    assert answer["delivery"] == delivery
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR], "the delivery logged an error"
    if event == "ping":
        assert (status, answer["verdict"], answer["reason"]) == (200, "ignored", "pong")
        return
    if answer["event_id"] in SWEPT_EVENTS or answer["verdict"] == "duplicate":
        # The same example published for another GitHub version (same ids, same updated_at) is the same event,
        # recognised by its payload identity whatever the delivery id: it never starts a second run (the sweep
        # moves the clock two days per test, so its first decision may have expired: the instance remains).
        assert answer["event_id"] in SWEPT_EVENTS, answer
        assert world.client.starts == starts
        return
    SWEPT_EVENTS.add(answer["event_id"])
    if _expected_to_run(event, payload):
        assert (status, answer["verdict"]) == (202, "accepted"), answer
        assert world.client.starts == starts + 1
        assert await world.runtime_status(answer["instance_id"]) == "Completed"
    else:
        assert status == 200, answer
        assert answer["verdict"] in {"ignored", "self"}, answer
        assert answer["instance_id"] is None
        assert world.client.starts == starts


@pytest.mark.parametrize("path", PAYLOAD_FILES)
async def test_every_published_payload_with_one_byte_changed_is_401(world: World, path: Path) -> None:
    raw = read_bytes(path)
    signature = signature_for(secret(world), raw)
    tampered = bytearray(raw)
    middle = len(tampered) // 2
    tampered[middle] ^= 0x01
    before = snapshot(world)
    status, answer = await world.post_github(headers(path.parent.name, signature=signature), bytes(tampered))
    assert (status, answer["verdict"]) == (401, "rejected"), answer
    assert snapshot(world) == before


# ------------------------------------------------------------------------------------------- bad input
def _sha1(key: str, body: bytes) -> str:
    return "sha1=" + hmac.new(key.encode(), body, hashlib.sha1).hexdigest()


GOOD_BODY = json.dumps({"action": "labeled", "sender": {"login": "alice", "type": "User"}}).encode()


def _bad_inputs(key: str) -> list[tuple[str, dict[str, str], bytes, int, str]]:
    """(id, headers, body, expected status, a word the reason must contain). ``key`` is the world's secret."""
    def signed(body: bytes) -> str:
        return signature_for(key, body)

    form_not_json = urlencode({"payload": "{not json"}).encode()
    form_no_payload = urlencode({"other": GOOD_BODY.decode()}).encode()
    form_two_payloads = urlencode([("payload", GOOD_BODY.decode()), ("payload", GOOD_BODY.decode())]).encode()
    no_event = headers("issues", signature=signed(GOOD_BODY))
    del no_event["X-GitHub-Event"]
    no_delivery = headers("issues", signature=signed(GOOD_BODY))
    del no_delivery["X-GitHub-Delivery"]
    sha1_only = headers("issues", signature=None)
    sha1_only["X-Hub-Signature"] = _sha1(key, GOOD_BODY)
    huge = b" " * (MAX_BODY_BYTES + 1)
    return [
        ("missing-event", no_event, GOOD_BODY, 400, "X-GitHub-Event"),
        ("missing-delivery", no_delivery, GOOD_BODY, 400, "X-GitHub-Delivery"),
        ("malformed-event", headers("Issues; drop", signature=signed(GOOD_BODY)), GOOD_BODY, 400, "X-GitHub-Event"),
        ("malformed-delivery", headers("issues", "../../etc/passwd", signature=signed(GOOD_BODY)), GOOD_BODY, 400,
         "X-GitHub-Delivery"),
        ("missing-signature", headers("issues", signature=None), GOOD_BODY, 401, "X-Hub-Signature-256"),
        ("sha1-only", sha1_only, GOOD_BODY, 401, "SHA-1"),
        ("wrong-signature", headers("issues", signature="sha256=" + "0" * 64), GOOD_BODY, 401, "does not match"),
        ("other-secret", headers("issues", signature=signature_for("not-the-secret", GOOD_BODY)), GOOD_BODY, 401,
         "does not match"),
        ("malformed-signature", headers("issues", signature="sha256=xyz"), GOOD_BODY, 401, "malformed"),
        ("sha1-value-in-sha256-header", headers("issues", signature=_sha1(key, GOOD_BODY)), GOOD_BODY, 401,
         "malformed"),
        ("signature-of-other-body", headers("issues", signature=signed(GOOD_BODY + b" ")), GOOD_BODY, 401,
         "does not match"),
        ("malformed-json", headers("issues", signature=signed(b'{"action": ')), b'{"action": ', 400, "JSON"),
        ("empty-body", headers("issues", signature=signed(b"")), b"", 400, "JSON"),
        ("json-array", headers("issues", signature=signed(b"[1, 2]")), b"[1, 2]", 400, "object"),
        ("not-utf8", headers("issues", signature=signed(b"\xff\xfe{}")), b"\xff\xfe{}", 400, "JSON"),
        ("form-malformed", headers("issues", signature=signed(b"payload"),
                                   content_type="application/x-www-form-urlencoded"), b"payload", 400, "form"),
        ("form-not-json", headers("issues", signature=signed(form_not_json),
                                  content_type="application/x-www-form-urlencoded"), form_not_json, 400, "JSON"),
        ("form-without-payload", headers("issues", signature=signed(form_no_payload),
                                         content_type="application/x-www-form-urlencoded"), form_no_payload, 400,
         "payload"),
        ("form-two-payloads", headers("issues", signature=signed(form_two_payloads),
                                      content_type="application/x-www-form-urlencoded"), form_two_payloads, 400,
         "payload"),
        ("unsupported-content-type", headers("issues", signature=signed(GOOD_BODY), content_type="text/plain"),
         GOOD_BODY, 415, "content type"),
        ("xml-content-type", headers("issues", signature=signed(GOOD_BODY), content_type="application/xml"),
         GOOD_BODY, 415, "content type"),
        ("over-25mb-unsigned", headers("issues", signature=None), huge, 413, "25 MB"),
    ]


BAD_INPUT_IDS = [case[0] for case in _bad_inputs("placeholder")]


@pytest.mark.parametrize("case_id", BAD_INPUT_IDS)
async def test_bad_input_is_rejected_and_leaves_no_trace(world: World, case_id: str) -> None:
    cases = {case[0]: case for case in _bad_inputs(secret(world))}
    _, request_headers, body, expected, word = cases[case_id]
    before = snapshot(world)
    status, answer = await world.post_github(request_headers, body)
    assert status == expected, answer
    assert answer["verdict"] == "rejected"
    assert word.lower() in answer["reason"].lower(), answer
    assert secret(world) not in json.dumps(answer)
    assert snapshot(world) == before


async def test_body_of_exactly_25_mb_is_not_refused_for_size(world: World) -> None:
    body = GOOD_BODY + b" " * (MAX_BODY_BYTES - len(GOOD_BODY))
    assert len(body) == MAX_BODY_BYTES
    status, answer = await world.post_github(headers("issues"), body)
    assert (status, answer["verdict"]) == (200, "ignored"), answer


async def test_missing_webhook_secret_is_503_naming_the_setting(world: World,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    key = secret(world)
    before = snapshot(world)
    for missing in (None, ""):
        monkeypatch.setattr(world.services, "settings",
                            world.settings.model_copy(update={"github_webhook_secret": missing}))
        # Fail closed whatever the request carries: signed with the old secret, or not signed at all.
        for signature in (signature_for(key, GOOD_BODY), None):
            status, answer = await world.post_github(headers("issues", signature=signature), GOOD_BODY)
            assert status == 503, answer
            assert answer["verdict"] == "rejected"
            assert answer["setting"] == "GITHUB_WEBHOOK_SECRET"
            assert "GITHUB_WEBHOOK_SECRET" in answer["reason"]
            assert key not in json.dumps(answer)
    assert snapshot(world) == before


# Signed payloads of a strange shape: only GitHub (or a holder of the secret) can send these, yet no input
# may produce a 500.
ODD_PAYLOADS = [
    pytest.param({}, id="empty-object"),
    pytest.param({"action": 7, "issue": "x", "repository": [], "sender": None}, id="wrong-types"),
    pytest.param({"action": "opened", "issue": {"number": "7"}, "repository": {"full_name": "o/r"},
                  "sender": {"login": "alice", "type": "User"}}, id="number-as-string"),
    pytest.param({"action": "opened", "issue": {"number": 7, "title": None, "body": None},
                  "repository": {"full_name": None}, "installation": {"id": "31337"},
                  "sender": {"login": "alice", "id": None}}, id="nulls"),
    pytest.param({"action": "opened", "issue": {"number": 7}, "repository": {"full_name": "o/r"},
                  "sender": {"login": 5}}, id="sender-login-not-a-string"),
    pytest.param({"action": "opened", "issue": {"number": 7}, "repository": {"full_name": "o/r"},
                  "sender": {"login": "alice", "type": 1}}, id="sender-type-not-a-string"),
]


@pytest.mark.parametrize("event", ["issues", "issue_comment"])
@pytest.mark.parametrize("payload", ODD_PAYLOADS)
async def test_signed_payload_of_odd_shape_never_500(world: World, payload: dict[str, Any], event: str) -> None:
    status, answer = await world.post_github(headers(event), json.dumps(payload).encode())
    assert status < 500, answer
    assert answer["verdict"] in {"ignored", "accepted", "rejected"}, answer


# ------------------------------------------------------------------------------------------- good input
async def test_ping_is_200_and_writes_nothing(world: World) -> None:
    body = json.dumps({"zen": "Keep it logically awesome.", "hook_id": 424242,
                       "hook": {"type": "App", "id": 424242, "events": ["issues"]}}).encode()
    before = snapshot(world)
    delivery = str(uuid.uuid4())
    status, answer = await world.post_github(headers("ping", delivery), body)
    assert (status, answer) == (200, {"delivery": delivery, "verdict": "ignored", "reason": "pong"})
    assert snapshot(world) == before


async def test_form_encoded_payload_is_accepted(world: World) -> None:
    payload = sample_payload(201)
    world.seed_from_payload(payload)
    body = urlencode({"payload": json.dumps(payload)}).encode()
    starts = world.client.starts
    status, answer = await world.post_github(
        headers("issues", content_type="application/x-www-form-urlencoded; charset=utf-8"), body)
    assert (status, answer["verdict"]) == (202, "accepted"), answer
    assert world.client.starts == starts + 1
    assert await world.runtime_status(answer["instance_id"]) == "Completed"
    assert len(reynolds_comments(world, "octo/app", 201)) == 1


async def test_form_encoded_unrouted_payload_is_200(world: World) -> None:
    body = urlencode({"payload": GOOD_BODY.decode()}).encode()
    status, answer = await world.post_github(headers("issues", content_type="application/x-www-form-urlencoded"),
                                             body)
    assert (status, answer["verdict"], answer["reason"]) == (200, "ignored", "no route for this event")


async def test_lower_case_header_names_are_read(world: World) -> None:
    payload = sample_payload(202)
    world.seed_from_payload(payload)
    body = raw_body(payload)
    lowered = {k.lower(): v for k, v in headers("issues").items()}
    status, answer = await world.post_github(lowered, body)
    assert (status, answer["verdict"]) == (202, "accepted"), answer


async def test_same_delivery_five_times_runs_once_and_comments_once(world: World) -> None:
    payload = sample_payload(203)
    world.seed_from_payload(payload)
    body = raw_body(payload)
    delivery = str(uuid.uuid4())
    starts = world.client.starts
    answers = [await world.post_github(headers("issues", delivery), body) for _ in range(5)]
    assert [status for status, _ in answers] == [202, 200, 200, 200, 200]
    assert [a["verdict"] for _, a in answers] == ["accepted"] + ["duplicate"] * 4
    assert {a["chain_id"] for _, a in answers} == {answers[0][1]["chain_id"]}
    assert {a["instance_id"] for _, a in answers} == {answers[0][1]["instance_id"]}
    assert world.client.starts == starts + 1
    assert len(reynolds_comments(world, "octo/app", 203)) == 1
    # The ledger kept the first decision.
    assert world.services.lineage.get_event(answers[0][1]["event_id"])["verdict"] == "accepted"  # type: ignore[index]


@pytest.fixture(params=["memory", pytest.param("cosmos", marks=pytest.mark.integration)])
def racing_world(request: pytest.FixtureRequest, module_world: World) -> Iterator[World]:
    """A fresh world on ``memory`` or on a local Cosmos DB server; the module's world is reinstalled after."""
    try:
        with build_world(store=request.param) as racing:
            yield racing
    finally:
        set_services(module_world.services)
        override_settings(module_world.settings)


async def _five_at_once(world: World, number: int) -> list[tuple[int, dict[str, Any]]]:
    """The same delivery five times concurrently: the decisions race in threads on the store."""
    payload = sample_payload(number)
    world.seed_from_payload(payload)
    body = raw_body(payload)
    delivery = str(uuid.uuid4())
    return list(await asyncio.gather(*[world.post_github(headers("issues", delivery), body) for _ in range(5)]))


async def test_same_delivery_five_times_concurrently_starts_once(racing_world: World) -> None:
    answers = await _five_at_once(racing_world, 204)
    assert sorted(a["verdict"] for _, a in answers) == ["accepted"] + ["duplicate"] * 4, answers
    assert sorted(status for status, _ in answers) == [200, 200, 200, 200, 202]
    assert len({a["instance_id"] for _, a in answers}) == 1
    assert len({a["chain_id"] for _, a in answers}) == 1
    assert racing_world.client.starts == 1


async def test_same_delivery_five_times_concurrently_comments_once(racing_world: World) -> None:
    answers = await _five_at_once(racing_world, 204)
    assert racing_world.client.starts == 1
    assert await racing_world.runtime_status(answers[0][1]["instance_id"]) == "Completed"
    assert len(reynolds_comments(racing_world, "octo/app", 204)) == 1
    assert len(racing_world.reynolds_writes) == 1


async def test_own_comment_is_self_and_starts_nothing(world: World) -> None:
    """A comment by Reynolds' identity (``reynolds[bot]``, a Bot) is ``self``: never answered."""
    payload = sample_payload(205)
    world.seed_from_payload(payload)
    comment_payload = {
        "action": "created", "issue": payload["issue"], "repository": payload["repository"],
        "installation": payload["installation"],
        "comment": {"id": 99_000_205, "body": "### Reynolds · triage\n\nThanks!", "author_association": "NONE",
                    "user": {"login": REYNOLDS_LOGIN, "id": 1000001, "type": "Bot"}},
        "sender": {"login": REYNOLDS_LOGIN, "id": 1000001, "type": "Bot"},
    }
    starts = world.client.starts
    status, answer = await world.post_github(headers("issue_comment"), raw_body(comment_payload))
    assert (status, answer["verdict"], answer["instance_id"]) == (200, "self", None), answer
    assert world.client.starts == starts
    assert reynolds_comments(world, "octo/app", 205) == []


async def test_reynolds_comment_echoed_by_github_is_self_in_its_chain(world: World) -> None:
    """The real loop: Reynolds' triage comment comes back as ``issue_comment.created`` from the fake GitHub."""
    payload = sample_payload(206)
    world.seed_from_payload(payload)
    status, first = await world.post_github(headers("issues"), raw_body(payload))
    assert status == 202
    # (Other tests' orchestrations waiting on a retry timer may write too: pick this issue's comment.)
    (write,) = [w for w in world.reynolds_writes if (w.kind, w.repo, w.number) == ("comment", "octo/app", 206)]
    delivery = world.github.webhook_for(write)
    assert delivery is not None
    event, echo = delivery
    starts = world.client.starts
    status, answer = await world.post_github(headers(event), raw_body(echo))
    assert (status, answer["verdict"]) == (200, "self"), answer
    assert answer["chain_id"] == first["chain_id"]
    assert world.client.starts == starts
    assert len(reynolds_comments(world, "octo/app", 206)) == 1


async def test_an_app_acting_through_a_users_token_is_an_automation(world: World) -> None:
    payload = sample_payload(208)
    payload["issue"]["performed_via_github_app"] = {"id": 4242, "slug": "helper-app", "name": "Helper"}
    world.seed_from_payload(payload)
    status, answer = await world.post_github(headers("issues"), raw_body(payload))
    # The default profile answers people only: an app's action is acknowledged and ignored, not run.
    assert (status, answer["verdict"]) == (200, "ignored")
