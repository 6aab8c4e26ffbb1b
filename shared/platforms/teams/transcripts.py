"""Reading a meeting's transcript through Microsoft Graph (msgraph-sdk), and what a transcript notification names.

* List: ``GET /users/{organizer}/onlineMeetings/{meeting}/transcripts`` (graph/api/onlinemeeting-list-transcripts).
* Content: ``GET …/transcripts/{id}/content?$format=text/vtt`` (graph/api/calltranscript-get, example "Get a
  callTranscript content"). msgraph-sdk's ``content.get()`` sends ``Accept: application/octet-stream,
  application/json``, which Graph refuses with 400 "Invalid format …" (a known gap: microsoftgraph/msgraph-
  metadata#632, the ``$format`` parameter is missing from the metadata), so the request is built with the
  documented ``$format=text/vtt`` query through ``with_url``.
* Notifications of ``communications/onlineMeetings/getAllTranscripts`` name ``communications/onlineMeetings('{m}')/
  transcripts('{t}')`` (graph/teams-changenotifications-callrecording-and-calltranscript);
  :func:`transcript_resource_ids` reads them.

A 403 becomes :class:`TranscriptPermissionMissing` carrying :func:`shared.platforms.teams.read_permissions.
permission_refusal`'s answer ("the tenant has not granted …") for the model, the operator and the health endpoint.
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import quote

from msgraph import GraphServiceClient

from shared.platforms.teams.graph import GraphError, graph_call
from shared.platforms.teams.read_permissions import permission_refusal

_RESOURCE = re.compile(r"^/?communications/onlineMeetings\('([^']+)'\)/transcripts\('([^']+)'\)$", re.IGNORECASE)


class TranscriptPermissionMissing(GraphError):
    """Graph refused for lack of a permission or an access policy; ``refusal`` says which."""

    def __init__(self, refusal: dict[str, Any]) -> None:
        super().__init__(403, "Forbidden", str(refusal["message"]))
        self.refusal = refusal


def transcript_resource_ids(resource: str) -> tuple[str, str] | None:
    """``(meeting id, transcript id)`` of a transcript notification's ``resource`` (None if it is not one)."""
    match = _RESOURCE.match(resource.strip())
    return (match[1], match[2]) if match else None


async def _guarded(read: str, call: Any) -> Any:
    try:
        return await graph_call(call)
    except GraphError as exc:
        if exc.status_code == 403:
            refusal = permission_refusal(read, 403, {"error": {"code": exc.code or "", "message": str(exc)}})
            if refusal is not None:
                raise TranscriptPermissionMissing(refusal) from exc
        raise


async def list_transcripts(graph: GraphServiceClient, organizer: str, meeting_id: str) -> list[dict[str, Any]]:
    """The meeting's transcripts: ``id`` and ``createdDateTime`` of each, oldest first."""
    meeting = graph.users.by_user_id(organizer).online_meetings.by_online_meeting_id(meeting_id)
    page = await _guarded("list_transcripts", meeting.transcripts.get())
    found = [{"id": t.id, "createdDateTime": t.created_date_time} for t in (page.value if page else None) or []]
    return sorted(found, key=lambda t: str(t["createdDateTime"] or ""))


async def fetch_transcript(graph: GraphServiceClient, organizer: str, meeting_id: str, transcript_id: str) -> str:
    """The transcript's WebVTT text."""
    builder = (graph.users.by_user_id(organizer).online_meetings.by_online_meeting_id(meeting_id)
               .transcripts.by_call_transcript_id(transcript_id).content)
    base = str(graph.request_adapter.base_url).rstrip("/")
    url = (f"{base}/users/{quote(organizer, safe='')}/onlineMeetings/{quote(meeting_id, safe='')}/transcripts/"
           f"{quote(transcript_id, safe='')}/content?$format=text/vtt")
    data = await _guarded("get_transcript_content", builder.with_url(url).get())
    return (data or b"").decode("utf-8")
