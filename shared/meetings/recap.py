"""The recap card: every action item as a proposal a person approves or rejects from the meeting chat.

An item becomes a ``create_issue`` write (:func:`item_write`) and then a proposal through
:func:`shared.act.proposals.build_proposals` (schema check, sanitising, hash), so the card shows exactly what will
be written and approving it names the proposal's id and hash as ``/reynolds approve w1@<hash>`` does.

The card is an Adaptive Card 1.5 (Universal Actions for Adaptive Cards need 1.4 or later; Teams asks for 1.5:
learn.microsoft.com/microsoftteams/platform/task-modules-and-cards/cards/universal-actions-for-adaptive-cards/
work-with-universal-actions-for-adaptive-cards). Each item carries two ``Action.Execute`` buttons, ``verb``
``approve``/``reject`` and ``data`` ``{"proposal": id, "hash": hash}``; Teams delivers the press to the bot as an
``adaptiveCard/action`` invoke whose ``value.action`` holds ``verb`` and ``data``. No Adaptive Card JSON schema
ships in this repository's node_modules, so :func:`check_card` is a pinned structural check of what the
Adaptive Cards schema explorer (adaptivecards.io/explorer: AdaptiveCard, TextBlock, Container, ActionSet,
Action.Execute) requires of the elements used here.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from shared.act.proposals import SHORT_HASH, Proposal
from shared.ai.specialists import ProposedWrite, Specialist
from shared.meetings.items import ActionItem

CARD_VERSION = "1.5"
CARD_SCHEMA = "http://adaptivecards.io/schemas/adaptive-card.json"
VERBS = ("approve", "reject")


def item_write(item: ActionItem, repo: str, meeting_title: str, index: int, meeting_id: str) -> ProposedWrite:
    """The ``create_issue`` call an item proposes: title = the action, body cites owner, due date and the line."""
    due = f"\n- Due: {item.due_date.isoformat()}" if item.due_date else ""
    body = (f"Action item from the meeting \"{meeting_title}\".\n\n- Owner: {item.owner}{due}\n"
            f"- Said at {item.evidence.timestamp} by {item.speaker or 'an unknown speaker'}:\n\n"
            f"> {item.evidence.quote}")
    return ProposedWrite(tool="create_issue", arguments={"repo": repo, "title": item.action, "body": body},
                         call_id=f"meeting:{meeting_id}:{index}", subtask_id=f"meeting:{meeting_id}",
                         specialist=Specialist.PLATFORM)


def recap_card(meeting_title: str, entries: Sequence[tuple[ActionItem, Proposal]], *,
               decided: Mapping[str, str] | None = None) -> dict[str, Any]:
    """The Adaptive Card for the meeting chat. ``decided`` maps a proposal id to what happened to it: an issue's
    URL once created (the card is updated in place and links it), or ``"rejected"``; a decided item has no
    buttons any more."""
    decided = decided or {}
    body: list[dict[str, Any]] = [
        {"type": "TextBlock", "text": f"Action items from {meeting_title}", "weight": "Bolder", "size": "Medium",
         "wrap": True},
        {"type": "TextBlock", "wrap": True, "isSubtle": True,
         "text": "Each item becomes an issue only when the organizer approves it."},
    ]
    for item, proposal in entries:
        due = f" · due {item.due_date.isoformat()}" if item.due_date else ""
        body.append({
            "type": "Container",
            "separator": True,
            "items": [
                {"type": "TextBlock", "wrap": True, "weight": "Bolder",
                 "text": f"{proposal.id} · {item.action}"},
                {"type": "TextBlock", "wrap": True, "text": f"Owner: {item.owner}{due}"},
                {"type": "TextBlock", "wrap": True, "isSubtle": True,
                 "text": f"[{item.evidence.timestamp}] {item.speaker or 'Unknown'}: \"{item.evidence.quote}\""},
                _decision_element(proposal, decided.get(proposal.id)),
            ],
        })
    if not entries:
        body.append({"type": "TextBlock", "wrap": True, "text": "No new action items."})
    return {"$schema": CARD_SCHEMA, "type": "AdaptiveCard", "version": CARD_VERSION, "body": body}


def _decision_element(proposal: Proposal, outcome: str | None) -> dict[str, Any]:
    if outcome == "rejected":
        return {"type": "TextBlock", "wrap": True, "isSubtle": True, "text": "Rejected: no issue will be created."}
    if outcome:
        return {"type": "TextBlock", "wrap": True, "text": f"Approved: [tracked as an issue]({outcome})"}
    return {"type": "ActionSet", "actions": [
        {"type": "Action.Execute", "title": f"{verb.capitalize()} {proposal.id}", "verb": verb,
         "data": {"proposal": proposal.id, "hash": proposal.hash[:SHORT_HASH]},
         **({"style": "positive"} if verb == "approve" else {})}
        for verb in VERBS
    ]}


_ELEMENTS = {"TextBlock": ("text",), "Container": ("items",), "ActionSet": ("actions",)}


def check_card(card: dict[str, Any]) -> list[str]:
    """Problems with ``card`` against the pinned structure (empty when it is well formed)."""
    problems: list[str] = []
    if card.get("type") != "AdaptiveCard":
        problems.append("type must be AdaptiveCard")
    if card.get("version", "0") < "1.4":
        problems.append("Action.Execute needs version 1.4 or later")
    if not isinstance(card.get("body"), list):
        problems.append("body must be an array")

    def walk(elements: Any, where: str) -> None:
        for n, element in enumerate(elements or []):
            kind = element.get("type") if isinstance(element, dict) else None
            path = f"{where}[{n}]"
            if kind == "Action.Execute":
                if not isinstance(element.get("verb"), str) or not element.get("title"):
                    problems.append(f"{path}: Action.Execute needs a verb and a title")
                if "data" in element and not isinstance(element["data"], dict | str):
                    problems.append(f"{path}: data must be an object or a string")
                continue
            if kind not in _ELEMENTS:
                problems.append(f"{path}: unknown element {kind!r}")
                continue
            for required in _ELEMENTS[kind]:
                if required not in element:
                    problems.append(f"{path}: {kind} needs {required}")
            if kind == "TextBlock" and not isinstance(element.get("text"), str):
                problems.append(f"{path}: TextBlock text must be a string")
            walk(element.get("items"), f"{path}.items")
            walk(element.get("actions"), f"{path}.actions")

    walk(card.get("body"), "body")
    return problems


def card_decision(invoke_value: dict[str, Any]) -> tuple[str, str, str] | None:
    """``(verb, proposal id, hash digits)`` of an ``adaptiveCard/action`` invoke's ``value``, or None when it is
    not one of this card's buttons."""
    action = invoke_value.get("action") if isinstance(invoke_value, dict) else None
    if not isinstance(action, dict) or action.get("type") != "Action.Execute" or action.get("verb") not in VERBS:
        return None
    data = action.get("data")
    if not isinstance(data, dict) or not isinstance(data.get("proposal"), str) or not isinstance(data.get("hash"), str):
        return None
    return str(action["verb"]), data["proposal"], data["hash"]
