"""Dataverse asynchronous operations (the ``asyncoperation`` table) and what their state means to a deployment.

Source: the asyncoperation table reference (learn.microsoft.com/power-apps/developer/data-platform/reference/
entities/asyncoperation): ``statecode`` Ready 0, Suspended 1, Locked 2, Completed 3; ``statuscode`` Waiting For
Resources 0, Waiting 10 (both Ready), In Progress 20, Pausing 21, Canceling 22 (Locked), Succeeded 30, Failed 31,
Canceled 32 (Completed); also the SDK's ``AsyncStatusResponse_statuscode`` enum (Microsoft.PowerPlatform.Dataverse.
Client.Extensions), same values. ``message`` holds the error text of a failed operation and ``friendlymessage`` a
shorter one. Solution staging and async import: learn.microsoft.com/power-platform/alm/solution-async.
"""

from __future__ import annotations

from enum import IntEnum
from typing import Literal

from pydantic import BaseModel, ConfigDict


class StateCode(IntEnum):
    """``asyncoperation.statecode``."""

    READY = 0
    SUSPENDED = 1
    LOCKED = 2
    COMPLETED = 3


class StatusCode(IntEnum):
    """``asyncoperation.statuscode``."""

    WAITING_FOR_RESOURCES = 0
    WAITING = 10
    IN_PROGRESS = 20
    PAUSING = 21
    CANCELING = 22
    SUCCEEDED = 30
    FAILED = 31
    CANCELED = 32


Outcome = Literal["running", "succeeded", "failed", "canceled", "suspended"]


class AsyncOperation(BaseModel):
    """What a poll reads of an async operation."""

    model_config = ConfigDict(frozen=True)

    asyncoperationid: str
    statecode: int
    statuscode: int
    message: str | None = None
    friendlymessage: str | None = None

    @property
    def outcome(self) -> Outcome:
        """Where the operation stands (:func:`outcome_of`)."""
        return outcome_of(self.statecode, self.statuscode)


def outcome_of(statecode: int, statuscode: int) -> Outcome:
    """``running`` until Completed; Completed is ``succeeded``, ``failed`` or ``canceled`` by its status; a
    Suspended operation (waiting to be retried by the platform) is ``suspended``: still not finished."""
    if statecode == StateCode.COMPLETED:
        if statuscode == StatusCode.SUCCEEDED:
            return "succeeded"
        return "canceled" if statuscode == StatusCode.CANCELED else "failed"
    if statecode == StateCode.SUSPENDED:
        return "suspended"
    return "running"
