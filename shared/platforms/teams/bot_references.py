"""Conversation references of the Teams bot: where Reynolds may speak proactively, kept in the document store.

Teams tells a bot where it lives through two activity types ("Conversation events in your Teams bot" and
"Installation update event", Microsoft Teams platform docs; the Agents SDK's ``ActivityHandler.on_installation_update``
and ``on_conversation_update_activity`` dispatch the same ones): ``installationUpdate`` with ``action`` ``add`` /
``remove`` (``add-upgrade`` / ``remove-upgrade`` for upgrades), and ``conversationUpdate`` with ``membersAdded`` /
``membersRemoved`` (the bot itself among them when it is added to or removed from a team or chat) or
``channelData.eventType`` ``teamDeleted``. A reference is what a proactive post needs: the service URL, the
conversation id, the bot's own account and the tenant ("Send proactive messages", Teams docs). One document per
conversation id in its own partition (``DocumentStore``: Cosmos in Azure, memory in tests).
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict

from shared.errors import IncomingRequestError, NotFound
from shared.store.base import DocumentStore, safe_id

#: Document id prefix (the lineage container holds every kind of document; the prefix keeps them apart).
PREFIX = "botref:"
INSTALL_ACTIONS = frozenset({"add", "add-upgrade"})
UNINSTALL_ACTIONS = frozenset({"remove", "remove-upgrade"})


class ConversationReference(BaseModel):
    """Where and as whom the bot can post into one conversation."""

    model_config = ConfigDict(extra="ignore")

    conversation_id: str
    service_url: str
    channel_id: str = "msteams"
    bot_id: str | None = None
    bot_name: str | None = None
    tenant_id: str | None = None
    team_id: str | None = None
    teams_channel_id: str | None = None
    conversation_type: str | None = None
    updated_at: str | None = None


def _obj(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _doc_id(conversation_id: str) -> str:
    return safe_id(PREFIX + conversation_id)


def reference_of(activity: dict[str, Any]) -> ConversationReference:
    """The conversation reference an activity carries; ``IncomingRequestError`` when it names no conversation."""
    conversation = _obj(activity.get("conversation"))
    recipient = _obj(activity.get("recipient"))
    channel_data = _obj(activity.get("channelData"))
    team = _obj(channel_data.get("team"))
    channel = _obj(channel_data.get("channel"))
    tenant = _obj(channel_data.get("tenant"))
    conversation_id, service_url = conversation.get("id"), activity.get("serviceUrl")
    if not isinstance(conversation_id, str) or not conversation_id or len(conversation_id) > 512:
        raise IncomingRequestError("activity has no usable conversation.id")
    if not isinstance(service_url, str) or not service_url.startswith(("https://", "http://127.0.0.1")):
        raise IncomingRequestError("activity has no usable serviceUrl")

    def text(value: Any) -> str | None:
        return value if isinstance(value, str) and value else None

    return ConversationReference(
        conversation_id=conversation_id, service_url=service_url,
        channel_id=text(activity.get("channelId")) or "msteams",
        bot_id=text(recipient.get("id")), bot_name=text(recipient.get("name")),
        tenant_id=text(conversation.get("tenantId")) or text(tenant.get("id")),
        team_id=text(team.get("aadGroupId")) or text(team.get("id")),
        teams_channel_id=text(channel.get("id")),
        conversation_type=text(conversation.get("conversationType")),
        updated_at=text(activity.get("timestamp")),
    )


def removes_bot(activity: dict[str, Any]) -> bool:
    """Whether an install/conversation activity takes the bot out of the conversation (uninstall, removal)."""
    kind = activity.get("type")
    if kind == "installationUpdate":
        return activity.get("action") in UNINSTALL_ACTIONS
    channel_data = _obj(activity.get("channelData"))
    if channel_data.get("eventType") == "teamDeleted":
        return True
    recipient = _obj(activity.get("recipient"))
    removed_value = activity.get("membersRemoved")
    removed: list[Any] = removed_value if isinstance(removed_value, list) else []
    return any(isinstance(m, dict) and m.get("id") and m.get("id") == recipient.get("id") for m in removed)


class BotReferences:
    """Stores, reads and removes conversation references."""

    def __init__(self, store: DocumentStore) -> None:
        self.store = store

    def save(self, reference: ConversationReference) -> None:
        """Create or refresh the reference of one conversation (an install seen twice writes the same)."""
        doc_id = _doc_id(reference.conversation_id)
        self.store.upsert({"id": doc_id, "pk": doc_id, "kind": "bot-reference", **reference.model_dump()})

    def get(self, conversation_id: str) -> ConversationReference | None:
        """The stored reference, or None when the bot is not (or no longer) in the conversation."""
        doc_id = _doc_id(conversation_id)
        try:
            return ConversationReference.model_validate(self.store.read(doc_id, doc_id))
        except NotFound:
            return None

    def remove(self, conversation_id: str) -> bool:
        """Forget a conversation (uninstall); False when nothing was stored."""
        doc_id = _doc_id(conversation_id)
        try:
            self.store.delete(doc_id, doc_id)
        except NotFound:
            return False
        return True

    def remember(self, activity: dict[str, Any]) -> bool:
        """Keep the reference of the conversation a message came from, once (a read, and a write only when new).

        Teams recommends taking the reference from any incoming activity: an app installed before the endpoint
        was live, or a channel other than the one the team install named, is reachable after its first message.
        A thread's conversation id (``…;messageid=<root>``) is kept as its channel's.
        """
        reference = reference_of(activity)
        channel_reference = reference.model_copy(
            update={"conversation_id": reference.conversation_id.split(";messageid=", 1)[0]})
        if self.get(channel_reference.conversation_id) is not None:
            return False
        self.save(channel_reference)
        return True

    def apply(self, activity: dict[str, Any]) -> str:
        """Store or remove the reference an install/conversation activity implies; returns what was done."""
        reference = reference_of(activity)
        if removes_bot(activity):
            return "removed" if self.remove(reference.conversation_id) else "absent"
        self.save(reference)
        return "stored"
