"""The Service Bus message contract: a structured-mode CloudEvent with lineage also in application properties.

Producers read the contract in ``docs/servicebus.md``; this docstring says how the code implements it.

Body: CloudEvents 1.0 structured JSON (``specversion, id, source, type, subject, time, datacontenttype,
data``) whose extension attributes carry the rest of the envelope (``platform``, ``event``, ``action``,
``actor*``, ``target*``, ``resourceid``, ``chainid``, ``parentid``, ``depth``); the visible text travels as
``data.text``. ``content_type`` is ``application/cloudevents+json; charset=utf-8`` — the CloudEvents AMQP
binding's marker of structured mode, so any CloudEvents SDK reading the queue knows the body *is* the event;
``parse_servicebus_body`` also accepts ``application/json`` or no content type from other producers.

Broker properties: ``message_id`` is the event id (duplicate detection drops a re-sent event inside the
window), ``subject`` the CloudEvent type, and ``session_id`` the chain id when the caller asks for ordering
(session-enabled queues only). Application properties repeat the lineage (``reynolds-chain-id``,
``reynolds-parent-id``, ``reynolds-depth``, ``reynolds-event-id``) and carry the signed ``reynolds-marker``,
so a consumer (or a filter rule) sees them without parsing the body. They are evidence only: the loop guard
decides whether to trust them.

Invalid input raises ``PoisonMessage(reason, description)``; see ``triggers/servicebus_mapping.py`` for how
the trigger gets such a message dead-lettered.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Collection, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from azure.core.credentials import TokenCredential
from azure.core.credentials_async import AsyncTokenCredential
from azure.servicebus import ServiceBusMessage
from pydantic import ValidationError

from shared.errors import ReynoldsError
from shared.loop.envelope import Actor, ActorKind, EventEnvelope, Lineage, Platform, Target, truncate
from shared.platforms.limits import MAX_JSON_DEPTH, json_depth
from shared.work.tasks import TaskRequest

if TYPE_CHECKING:
    from azure.servicebus.aio import ServiceBusClient, ServiceBusSender

    from shared.settings import Settings

logger = logging.getLogger(__name__)

CLOUDEVENTS_CONTENT_TYPE = "application/cloudevents+json; charset=utf-8"
ACCEPTED_CONTENT_TYPES = frozenset({"application/cloudevents+json", "application/json", "text/json"})
#: Standard tier's message size limit (Premium allows more; design for the stricter one).
MAX_MESSAGE_BYTES = 256 * 1024
#: The outbound queues' duplicate-detection window (``infra/app/servicebus.bicep`` ``duplicateDetectionWindow``,
#: the broker's maximum of 7 days): a message re-sent with the same ``MessageId`` within it is dropped by the
#: broker ("Duplicate detection", learn.microsoft.com/azure/service-bus-messaging/duplicate-detection).
DUPLICATE_DETECTION_WINDOW = timedelta(days=7)
#: Re-sending an answer is safe only this long after its first attempt (margin for clocks and the send itself).
RESEND_SAFE_FOR = DUPLICATE_DETECTION_WINDOW - timedelta(hours=1)
#: Dead-letter reason and description are limited to 4096 characters by the broker.
MAX_DEADLETTER_TEXT = 4096

PROP_CHAIN_ID = "reynolds-chain-id"
PROP_PARENT_ID = "reynolds-parent-id"
PROP_DEPTH = "reynolds-depth"
PROP_EVENT_ID = "reynolds-event-id"
PROP_MARKER = "reynolds-marker"

_REQUIRED = ("specversion", "id", "source", "type")
_CE_CORE = frozenset({"specversion", "id", "source", "type", "subject", "time", "datacontenttype", "data"})


class PoisonReason(StrEnum):
    """Why a message can never be processed (the dead-letter reason)."""

    OVERSIZED = "oversized"
    INVALID_JSON = "invalid-json"
    NOT_CLOUDEVENT = "not-cloudevent"
    SCHEMA_INVALID = "schema-invalid"
    UNSUPPORTED_CONTENT_TYPE = "unsupported-content-type"
    NESTING_TOO_DEEP = "nesting-too-deep"


class PoisonMessage(ReynoldsError):
    """A message that will fail the same way on every delivery: dead-letter it, do not retry it."""

    def __init__(self, reason: PoisonReason, description: str) -> None:
        super().__init__(f"{reason.value}: {description}")
        self.reason = reason
        self.description = description[:MAX_DEADLETTER_TEXT]

    def deadletter_kwargs(self) -> dict[str, str]:
        """Arguments for a settlement API's ``dead_letter_message(reason=…, error_description=…)``."""
        return {"reason": self.reason.value, "error_description": self.description}


# --- outgoing ---------------------------------------------------------------------------------------------


def envelope_to_cloudevent(envelope: EventEnvelope) -> dict[str, Any]:
    """The structured-mode CloudEvent (a JSON-ready dict) for an envelope."""
    data = dict(envelope.data)
    if envelope.text:
        data["text"] = envelope.text
    event: dict[str, Any] = {
        "specversion": envelope.specversion,
        "id": envelope.id,
        "source": envelope.source,
        "type": envelope.type,
        "subject": envelope.subject,
        "time": envelope.time.isoformat(),
        "datacontenttype": envelope.datacontenttype,
        "data": data,
        "platform": envelope.platform.value,
        "event": envelope.event,
        "action": envelope.action,
        "actorlogin": envelope.actor.login,
        "actorid": envelope.actor.id,
        "actorkind": envelope.actor.kind.value,
        "actortype": envelope.actor.account_type,
        "resourceid": envelope.resource_id,
        "chainid": envelope.lineage.chain_id,
        "parentid": envelope.lineage.parent_id,
        "depth": envelope.lineage.depth,
    }
    if envelope.target is not None:
        event.update(
            targetplatform=envelope.target.platform.value,
            targetkey=envelope.target.key,
            targetrepo=envelope.target.repo,
            targetnumber=envelope.target.number,
            targetinstallation=envelope.target.installation_id,
        )
    # CloudEvents has no null attributes: absent means absent.
    return {key: value for key, value in event.items() if value is not None}


def lineage_properties(envelope: EventEnvelope, marker: str) -> dict[str, str | int]:
    """The application properties that repeat the lineage beside the body."""
    props: dict[str, str | int] = {PROP_EVENT_ID: envelope.id, PROP_DEPTH: envelope.lineage.depth}
    if envelope.lineage.chain_id:
        props[PROP_CHAIN_ID] = envelope.lineage.chain_id
    if envelope.lineage.parent_id:
        props[PROP_PARENT_ID] = envelope.lineage.parent_id
    if marker:
        props[PROP_MARKER] = marker
    return props


def to_servicebus_message(envelope: EventEnvelope, marker: str, *, ordered: bool = False) -> ServiceBusMessage:
    """Build the outgoing message: CloudEvent body, ``message_id`` = event id, lineage in properties.

    ``ordered=True`` sets ``session_id`` to the chain id (the event id for a chain's first event) so a
    session-enabled queue delivers one chain in order; leave it off for queues without sessions.
    Raises ``ValueError`` when the body would exceed the 256 KB Standard-tier limit.
    """
    body = json.dumps(envelope_to_cloudevent(envelope), ensure_ascii=False, separators=(",", ":")).encode()
    if len(body) > MAX_MESSAGE_BYTES:
        raise ValueError(f"event {envelope.id} is {len(body)} bytes, above the {MAX_MESSAGE_BYTES} byte limit")
    return ServiceBusMessage(
        body,
        message_id=envelope.id,
        session_id=(envelope.lineage.chain_id or envelope.id) if ordered else None,
        content_type=CLOUDEVENTS_CONTENT_TYPE,
        subject=envelope.type,
        correlation_id=envelope.lineage.chain_id,
        application_properties=lineage_properties(envelope, marker),  # type: ignore[arg-type]
    )


# --- incoming ---------------------------------------------------------------------------------------------


def _text(value: Any) -> str | None:
    if isinstance(value, bytes | bytearray):
        try:
            value = bytes(value).decode("utf-8")
        except UnicodeDecodeError:
            return None
    if isinstance(value, str):
        return value or None
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return None


def _normalize_properties(properties: Mapping[Any, Any] | None) -> dict[str, Any]:
    # azure-servicebus hands received properties over with bytes keys and values; the Functions host with str.
    normalized: dict[str, Any] = {}
    for key, value in (properties or {}).items():
        name = _text(key)
        if name is not None:
            normalized[name] = _text(value) if isinstance(value, bytes | bytearray) else value
    return normalized


def _depth(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value if value >= 0 else None
    if isinstance(value, str) and value.strip().isdigit():
        return int(value.strip())
    return None


def _media_type(content_type: str | None) -> str | None:
    if not content_type:
        return None
    return content_type.split(";", 1)[0].strip().lower()


def _enum(kind: type[Any], value: Any, default: Any) -> Any:
    try:
        return kind(value)
    except ValueError:
        return default


def parse_servicebus_body(
    body: bytes,
    *,
    message_id: str | None,
    application_properties: Mapping[Any, Any] | None = None,
    delivery_count: int | None = None,
    enqueued_time: datetime | None = None,
    content_type: str | None = None,
    session_id: str | None = None,
) -> EventEnvelope:
    """Parse a received message into an envelope, or raise ``PoisonMessage`` with a reason.

    The envelope's platform is ``servicebus`` (the door it came in by); the producer's own ``platform``
    extension is kept as ``data["origin_platform"]``. Lineage comes from the application properties when
    they are present and well-formed, else from the CloudEvent's extensions; the marker goes to
    ``data["markers"]``. Text is ``data.text`` or ``data.body``.
    """
    if len(body) > MAX_MESSAGE_BYTES:
        raise PoisonMessage(PoisonReason.OVERSIZED, f"body is {len(body)} bytes, limit {MAX_MESSAGE_BYTES}")
    media = _media_type(content_type)
    if media is not None and media not in ACCEPTED_CONTENT_TYPES:
        raise PoisonMessage(PoisonReason.UNSUPPORTED_CONTENT_TYPE, f"content type {media} is not a JSON CloudEvent")
    nesting = json_depth(body)
    if nesting > MAX_JSON_DEPTH:
        # json.loads would recurse until RecursionError: a transient-looking failure retried ten times.
        raise PoisonMessage(PoisonReason.NESTING_TOO_DEEP, f"body nests {nesting} levels, limit {MAX_JSON_DEPTH}")
    try:
        event = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise PoisonMessage(PoisonReason.INVALID_JSON, f"body is not JSON: {exc}"[:300]) from None
    if not isinstance(event, dict):
        raise PoisonMessage(PoisonReason.NOT_CLOUDEVENT, "body is not a JSON object")
    missing = [name for name in _REQUIRED if not isinstance(event.get(name), str) or not event.get(name)]
    if missing:
        raise PoisonMessage(PoisonReason.NOT_CLOUDEVENT, f"missing CloudEvents attribute(s): {', '.join(missing)}")
    if event["specversion"] != "1.0":
        raise PoisonMessage(PoisonReason.SCHEMA_INVALID, f"unsupported specversion {event['specversion']!r}")
    if "data_base64" in event:
        raise PoisonMessage(PoisonReason.SCHEMA_INVALID, "binary data (data_base64) is not supported")
    data = event.get("data", {})
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise PoisonMessage(PoisonReason.SCHEMA_INVALID, "data must be a JSON object")

    props = _normalize_properties(application_properties)
    chain_id = _text(props.get(PROP_CHAIN_ID)) or _text(event.get("chainid"))
    parent_id = _text(props.get(PROP_PARENT_ID)) or _text(event.get("parentid"))
    depth = _depth(props.get(PROP_DEPTH))
    if depth is None:
        depth = _depth(event.get("depth")) or 0
    if PROP_EVENT_ID in props and _text(props[PROP_EVENT_ID]) != event["id"]:
        logger.warning("servicebus message %s: %s property differs from the event id", message_id, PROP_EVENT_ID)

    if "task" in data:
        # A message asking for a task must be a valid one: dead-lettered with the reason, never guessed at.
        try:
            TaskRequest.model_validate({"task": data["task"], "strategy": data.get("strategy") or {}})
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(part) for part in first["loc"])
            raise PoisonMessage(PoisonReason.SCHEMA_INVALID, f"invalid task: {where}: {first['msg']}") from None
    text = data.get("text") if isinstance(data.get("text"), str) else data.get("body")
    projected = {key: value for key, value in data.items() if key not in ("text", "body")}
    marker = _text(props.get(PROP_MARKER))
    projected["markers"] = [marker] if marker else []
    origin = _text(event.get("platform"))
    if origin:
        projected["origin_platform"] = origin
    projected["servicebus"] = {
        k: v
        for k, v in {
            "message_id": message_id,
            "delivery_count": delivery_count,
            "session_id": session_id,
            "enqueued_time": enqueued_time.isoformat() if enqueued_time else None,
        }.items()
        if v is not None
    }

    target = None
    target_key = _text(event.get("targetkey"))
    if target_key:
        target = {
            "platform": _enum(Platform, event.get("targetplatform"), Platform.SERVICEBUS),
            "key": target_key,
            "repo": _text(event.get("targetrepo")),
            "number": event.get("targetnumber"),
            "installation_id": event.get("targetinstallation"),
        }
    try:
        return EventEnvelope(
            id=event["id"],
            source=event["source"],
            type=event["type"],
            subject=_text(event.get("subject")),
            time=event.get("time") or enqueued_time or datetime.now(UTC),
            # The broker's stamp, which no producer sets, is when the event happened for the loop guard.
            occurred_at=enqueued_time,
            datacontenttype=_text(event.get("datacontenttype")) or "application/json",
            data=projected,
            platform=Platform.SERVICEBUS,
            event=_text(event.get("event")) or event["type"],
            action=_text(event.get("action")),
            actor=Actor(
                login=_text(event.get("actorlogin")),
                id=_text(event.get("actorid")),
                # A message is written by software: absent a claim, its actor is a bot. A claim is carried as
                # the producer's word only: the loop guard judges every producer as an automation.
                kind=_enum(ActorKind, event.get("actorkind"), ActorKind.BOT),
                account_type=_text(event.get("actortype")),
            ),
            target=Target.model_validate(target) if target else None,
            resource_id=_text(event.get("resourceid")),
            text=truncate(text if isinstance(text, str) else None),
            lineage=Lineage(chain_id=chain_id, parent_id=parent_id, depth=depth),
        )
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"]) or "event"
        raise PoisonMessage(PoisonReason.SCHEMA_INVALID, f"{where}: {first['msg']}") from None


def extension_attributes(event: Mapping[str, Any]) -> dict[str, Any]:
    """The CloudEvent's extension attributes (everything but the core context attributes and data)."""
    return {key: value for key, value in event.items() if key not in _CE_CORE}


def reply_queue(requested: Any, configured: Collection[str], default: str) -> str:
    """The queue an answer goes to: ``requested`` (the message's ``ReplyTo``, or a ``reply_to`` a producer put in
    the CloudEvent data) only when it names a configured queue, else ``default``.

    ``ReplyTo`` is the sender's claim; honouring any queue would let a producer make Reynolds write into queues
    it has no business in (another team's, a dead-letter path), with Reynolds' identity.
    """
    if isinstance(requested, str) and requested in configured:
        return requested
    if requested:
        logger.warning("servicebus: reply queue %r is not configured; answering on %s", str(requested)[:100], default)
    return default


# --- client and publishing --------------------------------------------------------------------------------


def make_servicebus_client(
    settings: Settings, credential: AsyncTokenCredential | TokenCredential | None = None
) -> ServiceBusClient:
    """An async ``ServiceBusClient`` on ``ServiceBusConnection__fullyQualifiedNamespace`` with an Entra credential."""
    from azure.servicebus.aio import ServiceBusClient

    namespace = settings.require("servicebus_namespace")
    if credential is None:
        from azure.identity.aio import DefaultAzureCredential

        credential = DefaultAzureCredential(managed_identity_client_id=settings.azure_client_id)
    return ServiceBusClient(fully_qualified_namespace=namespace, credential=credential)  # type: ignore[arg-type]


async def publish(sender: ServiceBusSender, messages: Sequence[ServiceBusMessage]) -> int:
    """Send ``messages`` in as few batches as fit the link's size limit; return how many were sent.

    A message that does not fit even an empty batch raises (``MessageSizeExceededError``/``ValueError``):
    it would never be accepted, so the activity fails loudly instead of dropping it.
    """
    if not messages:
        return 0
    sent = 0
    batch = await sender.create_message_batch()
    for message in messages:
        try:
            batch.add_message(message)
        except ValueError:
            if len(batch) == 0:
                raise
            await sender.send_messages(batch)
            sent += len(batch)
            batch = await sender.create_message_batch()
            batch.add_message(message)
    if len(batch):
        await sender.send_messages(batch)
        sent += len(batch)
    logger.info("servicebus: published %d message(s) to %s", sent, getattr(sender, "entity_name", "?"))
    return sent
