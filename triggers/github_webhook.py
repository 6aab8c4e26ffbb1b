"""``POST /api/github/webhook``: GitHub deliveries in, a decision and maybe an orchestration out.

Anonymous at the Functions level: the HMAC signature is the authentication, and it fails closed (no
configured secret answers 503, never "accept"). A verified delivery that cannot be decided and started
inline (store or Durable down, slow) goes to the inbox (``triggers/ingress.py``) and is answered 202
``queued``; ``triggers/inbox.py`` decides it with ``parse_github``/``admit_github``, the same code.
"""

from __future__ import annotations

import logging
from typing import Any

import azure.durable_functions as df
import azure.functions as func

from shared import names
from shared.loop.envelope import EventEnvelope
from shared.platforms.github.events import Delivery, header, read_delivery, to_envelope, typed_check
from shared.services import Services, get_services
from triggers.github_commands import apply_command
from triggers.ingress import (
    INLINE_BUDGET_SECONDS,
    Admission,
    InboxItem,
    admit,
    error_response,
    goes_to_inbox,
    hand_to_inbox,
    json_response,
    within,
)

logger = logging.getLogger(__name__)

bp = df.Blueprint()


def parse_github(headers: dict[str, str], body: bytes, services: Services) -> tuple[Delivery, EventEnvelope | None]:
    """Verify and decode a delivery (the door and the inbox run the same checks); no envelope for a ping."""
    secret = services.settings.require("github_webhook_secret")
    delivery = read_delivery(secret, body, headers)
    if delivery.event == "ping":
        return delivery, None
    typed_check(delivery.event, delivery.payload)
    return delivery, to_envelope(delivery, received_at=services.clock(), bot_login=services.settings.bot_login,
                                 bot_app_id=services.settings.bot_app_id)


async def admit_github(event: EventEnvelope, client: df.DurableOrchestrationClient, services: Services) -> Admission:
    """Decide and start; a ``/reynolds`` command is applied only when its orchestration is about to start."""
    async def command_reply() -> dict[str, Any]:
        reply = await apply_command(event, client, services)
        return reply.as_input() if reply else {}

    return await admit(event, client, services, prepare=command_reply)


@bp.function_name("github_webhook")
@bp.route(route="github/webhook", methods=["POST"], auth_level=func.AuthLevel.ANONYMOUS)
@bp.queue_output(arg_name="inbox", queue_name=names.INBOX_QUEUE, connection="AzureWebJobsStorage")
@bp.durable_client_input(client_name="client")
async def github_webhook(req: func.HttpRequest, client: df.DurableOrchestrationClient,
                         inbox: func.Out[str]) -> func.HttpResponse:
    """Verify, decode, decide and start; answer within GitHub's 10 s (the inbox takes over when that fails)."""
    headers, body = dict(req.headers), req.get_body()
    delivery_id = header(headers, "X-GitHub-Delivery")
    try:
        services = get_services()
        delivery, event = parse_github(headers, body, services)
    except Exception as exc:  # translated to 4xx/503; never a stack trace to the caller
        return error_response(exc, delivery_id)
    if event is None:
        return json_response(200, {"delivery": delivery.delivery_id, "verdict": "ignored", "reason": "pong"})
    try:
        admission = await within(INLINE_BUDGET_SECONDS["github"], admit_github(event, client, services))
    except Exception as exc:
        if not goes_to_inbox(exc):
            return error_response(exc, delivery.delivery_id)
        item = InboxItem.of("github", headers, body, received_at=services.clock(), delivery=delivery.delivery_id,
                            event_id=event.id)
        return hand_to_inbox(inbox, item, exc)
    accepted = admission.decision.verdict.value == "accepted" and admission.instance_id is not None
    return json_response(202 if accepted else 200, admission.body(delivery.delivery_id))
