"""Telemetry: nothing configured without a connection string, secrets masked in logs, metrics safe to call."""

from __future__ import annotations

import logging

import pytest

from shared import telemetry
from shared.settings import Settings


@pytest.fixture(autouse=True)
def _reset() -> None:
    telemetry.reset_for_tests()


def test_no_connection_string_configures_nothing() -> None:
    settings = Settings.model_validate({})
    assert telemetry.configure_telemetry(settings) is False
    assert telemetry.is_configured() is False


def test_empty_connection_string_configures_nothing() -> None:
    settings = Settings.model_validate({"APPLICATIONINSIGHTS_CONNECTION_STRING": ""})
    assert telemetry.configure_telemetry(settings) is False


def test_metric_facade_callable_without_provider() -> None:
    telemetry.record_verdict("accepted", "github")
    telemetry.record_loop_stopped("depth")
    telemetry.record_breaker_transition("chain", "open")
    telemetry.record_breaker_transition("chain", "closed")
    telemetry.record_orchestration("triage_orchestrator", "completed", 1.5)
    telemetry.record_llm_tokens(120, "planner")
    telemetry.record_github_write("comment")


def test_metric_names_match_workbook_and_alerts() -> None:
    from pathlib import Path

    infra = Path(__file__).resolve().parents[1] / "infra" / "app"
    text = (infra / "workbook.bicep").read_text() + (infra / "alerts.bicep").read_text()
    for name in (
        telemetry.VERDICTS,
        telemetry.LOOPS_STOPPED,
        telemetry.BREAKER_TRANSITIONS,
        telemetry.BREAKER_OPENED,
        telemetry.ORCHESTRATIONS,
        telemetry.INBOX_POISONED,
    ):
        assert f'"{name}"' in text, name


def test_log_extra_keeps_only_given_ids() -> None:
    assert telemetry.log_extra(event_id="e1", instance_id="i1") == {"event_id": "e1", "instance_id": "i1"}
    assert telemetry.log_extra() == {}


def test_secret_values_lists_configured_secrets() -> None:
    settings = Settings.model_validate(
        {"GITHUB_WEBHOOK_SECRET": "whsec-123456", "REYNOLDS_MARKER_KEY": "marker-abcdef", "GITHUB_APP_ID": "42"}
    )
    values = telemetry.secret_values(settings)
    assert set(values) == {"whsec-123456", "marker-abcdef"}


@pytest.mark.parametrize(
    ("text", "leak"),
    [
        ("sig sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17", "757107ea0eb2509fc2"),
        ("Authorization: Bearer eyJhbGciOiJSUzI1NiJ9.abc.def", "eyJhbGciOiJSUzI1NiJ9"),
        ("Authorization: HMAC c2VjcmV0LXNpZ25hdHVyZQ==", "c2VjcmV0LXNpZ25hdHVyZQ"),
        ("AccountEndpoint=https://x/;AccountKey=C2y6yDjf5/R+ob0N8A7Cgv30VRDJIWEHLM==", "C2y6yDjf5"),
        ("-----BEGIN RSA PRIVATE KEY-----\nMIIEabc\n-----END RSA PRIVATE KEY-----", "MIIEabc"),
    ],
)
def test_redact_masks_secret_shapes(text: str, leak: str) -> None:
    cleaned = telemetry.redact(text)
    assert leak not in cleaned
    assert telemetry.MASK in cleaned


def test_redaction_filter_masks_setting_values_in_args_and_extra(caplog: pytest.LogCaptureFixture) -> None:
    log = logging.getLogger("tests.telemetry.redaction")
    flt = telemetry.RedactingFilter(["whsec-123456"])
    caplog.handler.addFilter(flt)
    try:
        with caplog.at_level(logging.INFO, logger=log.name):
            log.info("verifying with %s", "whsec-123456", extra={"detail": "token whsec-123456 Bearer abc.def"})
    finally:
        caplog.handler.removeFilter(flt)
    record = caplog.records[-1]
    assert "whsec-123456" not in record.getMessage()
    assert "***" in record.getMessage()
    detail = str(getattr(record, "detail", ""))
    assert "whsec-123456" not in detail
    assert "abc.def" not in detail


def test_install_redaction_is_idempotent() -> None:
    target = logging.getLogger("tests.telemetry.install")
    handler = logging.NullHandler()
    target.addHandler(handler)
    try:
        telemetry.install_redaction(["one-secret"], loggers={"t": target})
        telemetry.install_redaction(["two-secret"], loggers={"t": target})
        filters = [f for f in handler.filters if isinstance(f, telemetry.RedactingFilter)]
        assert len(filters) == 1
        assert set(filters[0].secrets) == {"one-secret", "two-secret"}
    finally:
        target.removeHandler(handler)


def test_hot_path_log_records_carry_the_correlation_ids_as_otel_attributes() -> None:
    """A delivery through the real webhook, loop guard, orchestration and report activity: every Reynolds log
    record after the decision is exported by OpenTelemetry's LoggingHandler with the ids as log attributes
    (what Azure Monitor stores as custom dimensions)."""
    import asyncio
    import json
    from pathlib import Path

    from opentelemetry.sdk._logs import LoggerProvider, LoggingHandler
    from opentelemetry.sdk._logs.export import InMemoryLogExporter, SimpleLogRecordProcessor

    from tools.world import build_world

    exporter = InMemoryLogExporter()
    provider = LoggerProvider()
    provider.add_log_record_processor(SimpleLogRecordProcessor(exporter))
    handler = LoggingHandler(level=logging.INFO, logger_provider=provider)
    root = logging.getLogger()
    old_level = root.level
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    item = json.loads((Path(__file__).resolve().parents[1] / "samples" / "issues-opened.json").read_text())
    try:
        with build_world() as world:  # services configure telemetry: the record factory is installed
            world.seed_from_payload(item["body"])
            status, answer = asyncio.run(world.post_github(item["headers"], json.dumps(item["body"]).encode()))
            asyncio.run(world.client.advance(None))
    finally:
        root.removeHandler(handler)
        root.setLevel(old_level)
    assert status == 202
    records = [r.log_record for r in exporter.get_finished_logs()]
    started = [r for r in records if "started" in str(r.body) and answer["event_id"] in str(r.body)]
    assert started, [str(r.body) for r in records]
    dims = dict(started[0].attributes or {})
    assert dims["event_id"] == answer["event_id"]
    assert dims["chain_id"] == answer["chain_id"]
    assert dims["instance_id"] == answer["instance_id"]
    assert (dims["verdict"], dims["rule"]) == ("accepted", "human")
    posted = [r for r in records if str(r.body).startswith("posted comment")]
    assert posted, [str(r.body) for r in records]
    activity_dims = dict(posted[0].attributes or {})
    assert activity_dims["event_id"] == answer["event_id"]
    assert activity_dims["chain_id"] == answer["chain_id"]
    assert activity_dims["instance_id"] == answer["instance_id"]


def test_log_context_is_scoped_and_explicit_extra_wins() -> None:
    seen: list[logging.LogRecord] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            seen.append(record)

    log = logging.getLogger("reynolds.test.context")
    keep = Keep()
    log.addHandler(keep)
    telemetry.install_log_context(log)
    log.setLevel(logging.INFO)
    try:
        with telemetry.log_context(event_id="e1", chain_id="c1", verdict=None):
            log.info("inside")
            log.info("explicit", extra={"chain_id": "c-explicit"})
            with telemetry.log_context(instance_id="i1"):
                log.info("nested")
        log.info("outside")
    finally:
        log.removeHandler(keep)
    inside, explicit, nested, outside = seen
    assert (inside.event_id, inside.chain_id) == ("e1", "c1")  # type: ignore[attr-defined]
    assert not hasattr(inside, "verdict")
    assert explicit.chain_id == "c-explicit"  # type: ignore[attr-defined]
    assert nested.instance_id == "i1"  # type: ignore[attr-defined]
    assert not hasattr(outside, "event_id")
    assert telemetry.current_log_context() == {}
