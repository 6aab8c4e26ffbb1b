"""Each Microsoft Graph read the Platform specialist makes, its least-privileged permission, and what a refusal
tells the model and the operator: "the tenant has not granted <permission>", never a fake "unavailable".

Permissions are those each API page marks *least privileged* for application access (the "Permissions" table of
every learn.microsoft.com/graph/api/… page); resource-specific consent (RSC) permissions are granted by a team or
chat owner when the app is installed there, instead of tenant-wide by an administrator
(learn.microsoft.com/microsoftteams/platform/graph-api/rsc/resource-specific-consent):

===========================  ====================================================  ================================
read                         call                                                  least privilege (source page)
===========================  ====================================================  ================================
list_channel_messages        GET /teams/{team}/channels/{channel}/messages         RSC ChannelMessage.Read.Group in
                                                                                   teams that installed the app;
                                                                                   else ChannelMessage.Read.All
                                                                                   (graph/api/channel-list-messages)
list_calendar_events         GET /users/{id}/calendarView?startDateTime&endDate…   Calendars.ReadBasic; Exchange
                                                                                   Online scopes it to chosen
                                                                                   mailboxes with an application
                                                                                   access policy / RBAC for
                                                                                   Applications (graph/api/user-
                                                                                   list-calendarview; graph/auth-
                                                                                   limit-mailbox-access)
get_presence                 GET /users/{id}/presence                              Presence.Read.All
                                                                                   (graph/api/presence-get)
search_sharepoint            GET /sites/{site}/drive/root/search(q='…')            Sites.Selected plus a per-site
                                                                                   grant (POST /sites/{id}/
                                                                                   permissions); graph/api/driveitem-
                                                                                   search, graph/permissions-selected-
                                                                                   overview. Not /search/query: the
                                                                                   Search API needs tenant-wide
                                                                                   Files.Read.All/Sites.Read.All
list_transcripts             GET /users/{organizer}/onlineMeetings/{id}/           RSC OnlineMeetingTranscript.Read.
                             transcripts                                           Chat (scheduled private chat
                                                                                   meetings); else OnlineMeeting
                                                                                   Transcript.Read.All; both need a
                                                                                   Teams application access policy
                                                                                   for the organizer (graph/api/
                                                                                   onlinemeeting-list-transcripts)
get_transcript_content       GET …/transcripts/{id}/content?$format=text/vtt       as list_transcripts (graph/api/
                                                                                   calltranscript-get)
list_all_transcripts         GET /users/{organizer}/onlineMeetings/                OnlineMeetingTranscript.Read.All
                             getAllTranscripts(meetingOrganizerUserId='…')         (graph/api/onlinemeeting-
                                                                                   getalltranscripts)
subscribe_all_transcripts    POST /subscriptions, resource communications/         OnlineMeetingTranscript.Read.All
                             onlineMeetings/getAllTranscripts                      (graph/teams-changenotifications-
                                                                                   callrecording-and-calltranscript)
===========================  ====================================================  ================================

Graph answers a missing permission with 403 (``Forbidden`` for Teams and communications APIs,
``Authorization_RequestDenied`` for directory-backed ones, ``accessDenied`` in places; learn.microsoft.com/graph/
errors); a missing Teams application access policy is a 403 too, with a message naming the policy.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class GraphRead:
    """One read: the call, its least-privileged application permission, the RSC alternative, the doc page."""

    name: str
    call: str
    permission: str
    rsc: str | None
    doc: str
    note: str = ""


_DOCS = "https://learn.microsoft.com/graph/"
GRAPH_READS: dict[str, GraphRead] = {read.name: read for read in (
    GraphRead("list_channel_messages", "GET /teams/{team}/channels/{channel}/messages", "ChannelMessage.Read.All",
              "ChannelMessage.Read.Group", _DOCS + "api/channel-list-messages"),
    GraphRead("list_calendar_events", "GET /users/{id}/calendarView", "Calendars.ReadBasic", None,
              _DOCS + "api/user-list-calendarview",
              "scope it to chosen mailboxes with an Exchange Online application access policy"),
    GraphRead("get_presence", "GET /users/{id}/presence", "Presence.Read.All", None, _DOCS + "api/presence-get"),
    GraphRead("search_sharepoint", "GET /sites/{site}/drive/root/search(q='...')", "Sites.Selected", None,
              _DOCS + "api/driveitem-search", "and a read grant on each site (POST /sites/{id}/permissions)"),
    GraphRead("list_transcripts", "GET /users/{organizer}/onlineMeetings/{id}/transcripts",
              "OnlineMeetingTranscript.Read.All", "OnlineMeetingTranscript.Read.Chat",
              _DOCS + "api/onlinemeeting-list-transcripts",
              "and a Teams application access policy granted to the organizer"),
    GraphRead("get_transcript_content", "GET /users/{organizer}/onlineMeetings/{id}/transcripts/{id}/content",
              "OnlineMeetingTranscript.Read.All", "OnlineMeetingTranscript.Read.Chat", _DOCS + "api/calltranscript-get",
              "and a Teams application access policy granted to the organizer"),
    GraphRead("list_all_transcripts", "GET /users/{organizer}/onlineMeetings/getAllTranscripts(...)",
              "OnlineMeetingTranscript.Read.All", None, _DOCS + "api/onlinemeeting-getalltranscripts"),
    GraphRead("subscribe_all_transcripts", "POST /subscriptions (communications/onlineMeetings/getAllTranscripts)",
              "OnlineMeetingTranscript.Read.All", None,
              _DOCS + "teams-changenotifications-callrecording-and-calltranscript"),
)}
_DENIED = {"Forbidden", "Authorization_RequestDenied", "accessDenied", "ErrorAccessDenied"}


def _grant_text(read: GraphRead) -> str:
    text = read.permission
    if read.rsc:
        text += f" (or resource-specific consent {read.rsc} where the app is installed)"
    return text


def permission_refusal(read_name: str, status: int, body: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """What the model (as the tool's result) and the health endpoint are told when Graph refused ``read_name``;
    ``None`` when the answer is not a permission refusal (the caller raises or retries as usual)."""
    read = GRAPH_READS.get(read_name)
    error = (body or {}).get("error") if isinstance(body, Mapping) else None
    code = str(error.get("code", "")) if isinstance(error, Mapping) else ""
    message = str(error.get("message", "")) if isinstance(error, Mapping) else ""
    if read is None or status != 403 or (code and code not in _DENIED):
        return None
    if "application access policy" in message.lower():
        missing = "a Teams application access policy for the meeting organizer"
        return {"status": "permission_missing", "read": read.name, "permission": "application access policy",
                "message": f"the tenant has not granted {missing}",
                "how": "New-CsApplicationAccessPolicy and Grant-CsApplicationAccessPolicy (Teams PowerShell)",
                "doc": read.doc}
    how = f"grant {read.permission}" + (f" {read.note}" if read.note else "")
    return {"status": "permission_missing", "read": read.name, "permission": read.permission,
            "message": f"the tenant has not granted {_grant_text(read)}", "how": how, "doc": read.doc}


def read_permission_status(granted: Collection[str]) -> dict[str, Any]:
    """The health endpoint's view of the Platform reads for the roles a token carries (``roles`` claim, see
    :func:`shared.platforms.teams.permissions.token_roles`): which reads work and which permission each missing
    one needs. RSC permissions never appear in a token's roles; reads that have one are ``rsc_only`` when only
    the tenant-wide permission is missing (they work in teams or chats that installed the app)."""
    have = set(granted)
    reads: dict[str, str] = {}
    missing: dict[str, str] = {}
    for read in GRAPH_READS.values():
        if read.permission in have:
            reads[read.name] = "ok"
        elif read.rsc:
            reads[read.name] = "rsc_only"
        else:
            reads[read.name] = "missing"
            missing[read.name] = f"the tenant has not granted {read.permission}"
    return {"status": "ok" if not missing else "missing_permissions", "reads": reads, "missing": missing}
