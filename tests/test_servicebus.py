"""Service Bus contract: real azure-servicebus and azure-functions message objects, both ways; poison cases."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import azure.functions as func
import pytest
from azure.functions import meta
from azure.functions.servicebus import ServiceBusMessageInConverter
from azure.servicebus import ServiceBusMessage, ServiceBusMessageBatch

from shared.errors import ConfigurationError
from shared.loop.envelope import Actor, ActorKind, EventEnvelope, Lineage, Platform, Target
from shared.platforms.servicebus.contract import (
    CLOUDEVENTS_CONTENT_TYPE,
    MAX_MESSAGE_BYTES,
    PROP_CHAIN_ID,
    PROP_DEPTH,
    PROP_EVENT_ID,
    PROP_MARKER,
    PROP_PARENT_ID,
    PoisonMessage,
    PoisonReason,
    make_servicebus_client,
    parse_servicebus_body,
    publish,
    to_servicebus_message,
)
from shared.settings import Settings
from triggers.servicebus_mapping import from_function_message, is_last_delivery

ENQUEUED = datetime(2026, 3, 2, 9, 0, 1, tzinfo=UTC)
MARKER = "<!-- reynolds:v1 chain=chain-7 event=github:d-1 depth=2 sig=0123456789abcdef01234567 -->"


def _envelope(**overrides: Any) -> EventEnvelope:
    values: dict[str, Any] = {
        "id": "github:d-1",
        "source": "https://github.com/acme/widgets",
        "type": "com.github.issue_comment.created",
        "subject": "acme/widgets#7",
        "time": datetime(2026, 3, 2, 8, 59, tzinfo=UTC),
        "data": {"comment_id": 99, "url": "https://github.com/acme/widgets/issues/7#issuecomment-99"},
        "platform": Platform.GITHUB,
        "event": "issue_comment",
        "action": "created",
        "actor": Actor(login="ada", id="1", kind=ActorKind.HUMAN, account_type="User"),
        "target": Target(platform=Platform.GITHUB, key="acme/widgets#7", repo="acme/widgets", number=7),
        "resource_id": "99",
        "text": "please triage",
        "lineage": Lineage(chain_id="chain-7", parent_id="github:d-0", depth=2),
    }
    values.update(overrides)
    return EventEnvelope(**values)


def _body(message: ServiceBusMessage) -> bytes:
    return b"".join(message.body)


def _function_message(
    body: bytes,
    *,
    message_id: str = "github:d-1",
    properties: dict[str, Any] | None = None,
    delivery_count: int = 1,
    content_type: str | None = CLOUDEVENTS_CONTENT_TYPE,
    session_id: str | None = None,
) -> func.ServiceBusMessage:
    """Build the trigger argument the way the Python worker does: the converter over host metadata Datums."""
    metadata: dict[str, meta.Datum] = {
        "MessageId": meta.Datum(message_id, "string"),
        "DeliveryCount": meta.Datum(delivery_count, "int"),
        "EnqueuedTimeUtc": meta.Datum("2026-03-02T09:00:01.0000000Z", "string"),
        "SequenceNumber": meta.Datum(17, "int"),
        "LockToken": meta.Datum("7a7c7d5e-0000-4000-8000-000000000001", "string"),
        "ApplicationProperties": meta.Datum(json.dumps(properties or {}), "json"),
        "UserProperties": meta.Datum(json.dumps(properties or {}), "json"),
    }
    if content_type is not None:
        metadata["ContentType"] = meta.Datum(content_type, "string")
    if session_id is not None:
        metadata["SessionId"] = meta.Datum(session_id, "string")
    message = ServiceBusMessageInConverter.decode(meta.Datum(body, "bytes"), trigger_metadata=metadata)
    assert isinstance(message, func.ServiceBusMessage)
    return message


# --- outgoing: a real azure.servicebus.ServiceBusMessage ----------------------------------------------------


def test_outgoing_message_carries_id_properties_and_cloudevent_body() -> None:
    envelope = _envelope()
    message = to_servicebus_message(envelope, MARKER)

    assert message.message_id == "github:d-1"
    assert message.session_id is None
    assert message.content_type == CLOUDEVENTS_CONTENT_TYPE
    assert message.subject == "com.github.issue_comment.created"
    assert message.correlation_id == "chain-7"
    assert message.application_properties == {
        PROP_EVENT_ID: "github:d-1",
        PROP_CHAIN_ID: "chain-7",
        PROP_PARENT_ID: "github:d-0",
        PROP_DEPTH: 2,
        PROP_MARKER: MARKER,
    }
    event = json.loads(_body(message))
    assert {k: event[k] for k in ("specversion", "id", "source", "type", "subject", "datacontenttype")} == {
        "specversion": "1.0",
        "id": "github:d-1",
        "source": "https://github.com/acme/widgets",
        "type": "com.github.issue_comment.created",
        "subject": "acme/widgets#7",
        "datacontenttype": "application/json",
    }
    assert event["time"] == "2026-03-02T08:59:00+00:00"
    assert event["data"]["text"] == "please triage"
    assert (event["chainid"], event["parentid"], event["depth"]) == ("chain-7", "github:d-0", 2)


def test_ordered_message_uses_chain_as_session() -> None:
    assert to_servicebus_message(_envelope(), MARKER, ordered=True).session_id == "chain-7"
    first = _envelope(lineage=Lineage())
    assert to_servicebus_message(first, MARKER, ordered=True).session_id == "github:d-1"


def test_round_trip_through_real_message_object() -> None:
    envelope = _envelope()
    message = to_servicebus_message(envelope, MARKER, ordered=True)
    parsed = parse_servicebus_body(
        _body(message),
        message_id=message.message_id,
        application_properties=message.application_properties,
        delivery_count=1,
        enqueued_time=ENQUEUED,
        content_type=message.content_type,
        session_id=message.session_id,
    )
    assert parsed.id == envelope.id
    assert parsed.platform is Platform.SERVICEBUS
    assert parsed.data["origin_platform"] == "github"
    assert parsed.name == "issue_comment.created"
    assert parsed.actor == envelope.actor
    assert parsed.target == envelope.target
    assert parsed.lineage == envelope.lineage
    assert parsed.text == "please triage"
    assert parsed.time == envelope.time
    assert parsed.resource_id == "99"
    assert parsed.data["comment_id"] == 99
    assert parsed.data["markers"] == [MARKER]
    assert parsed.data["servicebus"] == {
        "message_id": "github:d-1",
        "delivery_count": 1,
        "session_id": "chain-7",
        "enqueued_time": ENQUEUED.isoformat(),
    }


def test_received_bytes_properties_are_decoded() -> None:
    # azure-servicebus hands received application properties over with bytes keys and values.
    body = _body(to_servicebus_message(_envelope(lineage=Lineage()), ""))
    props = {b"reynolds-chain-id": b"chain-x", b"reynolds-depth": 4, b"reynolds-marker": b"tok"}
    parsed = parse_servicebus_body(body, message_id="m", application_properties=props)
    assert parsed.lineage == Lineage(chain_id="chain-x", parent_id=None, depth=4)
    assert parsed.data["markers"] == ["tok"]


def test_bad_lineage_properties_fall_back_to_the_body() -> None:
    body = _body(to_servicebus_message(_envelope(), ""))
    parsed = parse_servicebus_body(body, message_id="m", application_properties={PROP_DEPTH: "-3"})
    assert parsed.lineage.depth == 2


def test_text_from_data_body_and_defaults_for_foreign_producers() -> None:
    event: dict[str, Any] = {"specversion": "1.0", "id": "ext-1", "source": "/erp", "type": "com.acme.order.shipped"}
    event["data"] = {"body": "order 42 shipped", "order": 42}
    parsed = parse_servicebus_body(
        json.dumps(event).encode(), message_id="ext-1", enqueued_time=ENQUEUED, content_type="application/json"
    )
    assert parsed.text == "order 42 shipped"
    assert parsed.event == "com.acme.order.shipped"
    assert parsed.actor.kind is ActorKind.BOT
    assert parsed.time == ENQUEUED
    assert parsed.lineage == Lineage()
    assert parsed.target is None
    assert parsed.data["order"] == 42


# --- incoming: real azure.functions.ServiceBusMessage through the trigger mapping ---------------------------


def test_function_message_maps_to_envelope() -> None:
    outgoing = to_servicebus_message(_envelope(), MARKER, ordered=True)
    msg = _function_message(
        _body(outgoing),
        properties=dict(outgoing.application_properties or {}),  # type: ignore[arg-type]
        delivery_count=3,
        session_id="chain-7",
    )
    body, metadata = from_function_message(msg)
    assert metadata == {
        "message_id": "github:d-1",
        "application_properties": {
            PROP_EVENT_ID: "github:d-1",
            PROP_CHAIN_ID: "chain-7",
            PROP_PARENT_ID: "github:d-0",
            PROP_DEPTH: 2,
            PROP_MARKER: MARKER,
        },
        "delivery_count": 3,
        "content_type": CLOUDEVENTS_CONTENT_TYPE,
        "session_id": "chain-7",
        "enqueued_time": ENQUEUED,
    }
    envelope = parse_servicebus_body(body, **metadata)
    assert envelope.id == "github:d-1"
    assert envelope.lineage == Lineage(chain_id="chain-7", parent_id="github:d-0", depth=2)
    assert envelope.data["servicebus"]["delivery_count"] == 3


def test_function_message_without_application_properties_uses_user_properties() -> None:
    metadata = {
        "MessageId": meta.Datum("m-1", "string"),
        "UserProperties": meta.Datum(json.dumps({PROP_CHAIN_ID: "c-u"}), "json"),
    }
    msg = ServiceBusMessageInConverter.decode(meta.Datum(b"{}", "bytes"), trigger_metadata=metadata)
    assert isinstance(msg, func.ServiceBusMessage)
    _, mapped = from_function_message(msg)
    assert mapped["application_properties"] == {PROP_CHAIN_ID: "c-u"}
    assert mapped["delivery_count"] is None


# --- poison ------------------------------------------------------------------------------------------------


def _poison(body: bytes, **kwargs: Any) -> PoisonMessage:
    msg = _function_message(body, **kwargs)
    data, metadata = from_function_message(msg)
    with pytest.raises(PoisonMessage) as err:
        parse_servicebus_body(data, **metadata)
    return err.value


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"{not json", PoisonReason.INVALID_JSON),
        (b"\xff\xfe\x00", PoisonReason.INVALID_JSON),
        (b"", PoisonReason.INVALID_JSON),
        (b"[1, 2, 3]", PoisonReason.NOT_CLOUDEVENT),
        (b'{"hello": "world"}', PoisonReason.NOT_CLOUDEVENT),
        (b'{"specversion": "1.0", "id": "x", "source": "/s"}', PoisonReason.NOT_CLOUDEVENT),
        (b'{"specversion": "0.3", "id": "x", "source": "/s", "type": "t"}', PoisonReason.SCHEMA_INVALID),
        (b'{"specversion": "1.0", "id": "x", "source": "/s", "type": "t", "data": [1]}', PoisonReason.SCHEMA_INVALID),
        (
            b'{"specversion": "1.0", "id": "x", "source": "/s", "type": "t", "data_base64": "AA=="}',
            PoisonReason.SCHEMA_INVALID,
        ),
        (
            b'{"specversion": "1.0", "id": "x", "source": "/s", "type": "t", "time": "yesterday"}',
            PoisonReason.SCHEMA_INVALID,
        ),
        (
            json.dumps({"specversion": "1.0", "id": "x" * 201, "source": "/s", "type": "t"}).encode(),
            PoisonReason.SCHEMA_INVALID,
        ),
    ],
)
def test_poison_messages_raise_with_reason(body: bytes, reason: PoisonReason) -> None:
    error = _poison(body)
    assert error.reason is reason
    assert error.description
    assert error.deadletter_kwargs()["reason"] == reason.value


def test_oversized_message_is_poison_before_parsing() -> None:
    event = {"specversion": "1.0", "id": "big", "source": "/s", "type": "t", "data": {"text": "x" * MAX_MESSAGE_BYTES}}
    error = _poison(json.dumps(event).encode())
    assert error.reason is PoisonReason.OVERSIZED


def test_non_json_content_type_is_poison() -> None:
    error = _poison(b"<xml/>", content_type="application/xml")
    assert error.reason is PoisonReason.UNSUPPORTED_CONTENT_TYPE


def test_outgoing_message_over_the_limit_is_refused() -> None:
    with pytest.raises(ValueError, match="limit"):
        to_servicebus_message(_envelope(data={"blob": "x" * MAX_MESSAGE_BYTES}), MARKER)


def test_last_delivery_is_recognised() -> None:
    assert not is_last_delivery(9)
    assert is_last_delivery(10)
    assert not is_last_delivery(None)


# --- client factory and publishing -------------------------------------------------------------------------


class RecordingSender:
    """A stand-in for ``azure.servicebus.aio.ServiceBusSender`` that hands out real message batches."""

    entity_name = "reynolds-out"

    def __init__(self, max_batch_bytes: int) -> None:
        self.max_batch_bytes = max_batch_bytes
        self.sent: list[ServiceBusMessageBatch] = []

    async def create_message_batch(self) -> ServiceBusMessageBatch:
        return ServiceBusMessageBatch(max_size_in_bytes=self.max_batch_bytes)

    async def send_messages(self, batch: ServiceBusMessageBatch) -> None:
        self.sent.append(batch)


async def test_publish_splits_batches_at_the_size_limit() -> None:
    messages = [to_servicebus_message(_envelope(id=f"github:d-{i}"), MARKER) for i in range(5)]
    sender = RecordingSender(max_batch_bytes=3000)
    sent = await publish(sender, messages)  # type: ignore[arg-type]
    assert sent == 5
    assert len(sender.sent) > 1
    assert sum(len(batch) for batch in sender.sent) == 5


async def test_publish_nothing_sends_nothing() -> None:
    sender = RecordingSender(max_batch_bytes=3000)
    assert await publish(sender, []) == 0  # type: ignore[arg-type]
    assert sender.sent == []


async def test_publish_refuses_a_message_larger_than_a_batch() -> None:
    sender = RecordingSender(max_batch_bytes=200)
    with pytest.raises(ValueError):
        await publish(sender, [to_servicebus_message(_envelope(), MARKER)])  # type: ignore[arg-type]


async def test_client_factory_needs_the_namespace_and_uses_it() -> None:
    with pytest.raises(ConfigurationError):
        make_servicebus_client(Settings())

    class NoToken:
        async def get_token(self, *scopes: str, **kwargs: Any) -> Any:
            raise AssertionError("no network in this test")

    settings = Settings.model_validate(
        {"ServiceBusConnection__fullyQualifiedNamespace": "sb-reynolds.servicebus.windows.net"}
    )
    client = make_servicebus_client(settings, credential=NoToken())  # type: ignore[arg-type]
    assert client.fully_qualified_namespace == "sb-reynolds.servicebus.windows.net"
    await client.close()
