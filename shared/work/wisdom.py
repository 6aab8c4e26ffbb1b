"""Reynolds' voice: a short, calm, wry line for status comments and Teams replies.

The line is chosen deterministically (SHA-256 of the normalised situation, not Python's per-process
randomised ``hash``) so a replayed orchestration or a re-run activity says the same thing twice.
"""

from __future__ import annotations

import hashlib

WISDOM: dict[str, tuple[str, ...]] = {
    "loop": (
        "Two bots replying to each other is not a conversation. It's an echo with a budget. I stopped it.",
        "I've seen this message before. About four times. Let's not make it five.",
        "Infinite loops are only impressive in theory. I prefer finishing things.",
        "Someone built a perpetual motion machine out of webhooks. I've unplugged it, gently.",
        "The chain got deeper than it should. Depth is for oceans and novels, not event chains.",
    ),
    "failure": (
        "That didn't go to plan. Plans are drafts; I'll write the next one.",
        "Something broke. Calmly: here's what, here's where, here's what I'd try next.",
        "Failure noted, logged and mildly judged. Retrying with better manners.",
        "The logs have opinions. I've translated the useful ones.",
        "Not every run gets a happy ending. This one gets a clear error message instead.",
    ),
    "approval": (
        "I could do this myself, but touching your things without asking is how trust dies. Approve?",
        "Write access is a privilege, not a reflex. Waiting for a human nod.",
        "Proposal ready. I'll hold the pen until someone says go.",
        "Big changes deserve a second pair of eyes. Preferably attached to a person.",
        "I've drafted it. You decide. That's the deal.",
    ),
    "success": (
        "Done. Everyone worked in parallel and nobody stepped on anybody's toes. Maximum coordination.",
        "All green. I'd take a bow, but the specialists did the heavy lifting.",
        "Finished ahead of schedule. Don't get used to it. Actually, do.",
        "Task complete. Quietly, efficiently, with only a little flair.",
        "Mission accomplished, and the audit trail is tidy enough to frame.",
    ),
    "default": (
        "On it. Calm hands, many threads.",
        "Splitting the work, lining up the specialists. Stand by for something tidy.",
        "Orchestration is mostly knowing who should do what, and when to wait.",
        "Let's do this properly: in parallel, on the record, with nothing on fire.",
        "I've read the request. Twice. Starting now.",
    ),
}

#: Situation keywords by group, checked in this order (a looping failure is a loop first).
KEYWORDS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("loop", ("loop", "recurs", "cycle", "echo", "ping-pong", "depth", "duplicate")),
    ("failure", ("fail", "error", "exception", "crash", "timeout", "throttl", "broken", "red")),
    ("approval", ("approv", "review", "consent", "permission", "write", "confirm")),
    ("success", ("success", "succeed", "done", "complete", "finish", "merged", "green", "pass")),
)


def _normalise(situation: str) -> str:
    return " ".join(situation.lower().split())


def wisdom_group(situation: str) -> str:
    """The group of lines a situation falls in: loop, failure, approval, success or default."""
    words = _normalise(situation).replace(",", " ").replace(".", " ").split()
    for group, keywords in KEYWORDS:
        # Short keywords ("red") must be whole words; longer ones may prefix ("failed", "approval").
        if any(word == key or (len(key) > 3 and word.startswith(key)) for word in words for key in keywords):
            return group
    return "default"


def get_reynolds_wisdom(situation: str) -> str:
    """A short line in Reynolds' voice for ``situation``, the same line every time for the same situation."""
    normalised = _normalise(situation)
    lines = WISDOM[wisdom_group(normalised)]
    digest = hashlib.sha256(normalised.encode("utf-8")).digest()
    return lines[int.from_bytes(digest[:8], "big") % len(lines)]
