"""The write tool ``deploy_solution(environment, solution, source)`` as a typed proposal content, and what a
Dataverse refusal tells an operator.

``source`` names where the solution file comes from, never a URL the model makes up:
``release:<owner>/<repo>@<tag>/<asset>.zip`` (a GitHub release asset of the task's repository) or
``path:<owner>/<repo>/<path>.zip`` (a file in it). The environment is a BAP environment name (a GUID or
``Default-<tenant GUID>``, "List environments") and the solution a Dataverse unique name (publisher prefix,
letters, digits, underscores). The proposal's target is ``powerplatform:<environment>/<solution>``: the loop
guard's key and what a person approves.
"""

from __future__ import annotations

import re

from pydantic import BaseModel, ConfigDict, Field, field_validator

from shared.powerplatform.client import DataverseError

_GUID = r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}"
_ENV = rf"^(?:Default-)?{_GUID}$|^[a-z0-9][a-z0-9-]{{0,62}}$"
_SOLUTION = r"^[A-Za-z][A-Za-z0-9_]{0,64}$"
_SOURCE = re.compile(r"^(?:release:(?P<rrepo>[\w.-]+/[\w.-]+)@(?P<tag>[\w.+-]{1,100})/(?P<asset>[\w.+-]{1,200}\.zip)"
                     r"|path:(?P<prepo>[\w.-]+/[\w.-]+)/(?P<path>(?:[\w.+-]{1,100}/){0,10}[\w.+-]{1,200}\.zip))$")


class DeploySolution(BaseModel):
    """``deploy_solution``: import (stage, approve on production, import, publish) a solution into an environment."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    environment: str = Field(pattern=_ENV)
    solution: str = Field(pattern=_SOLUTION)
    source: str

    @field_validator("source")
    @classmethod
    def _source(cls, value: str) -> str:
        match = _SOURCE.match(value)
        if match is None or ".." in value:
            raise ValueError("source is release:<owner>/<repo>@<tag>/<asset>.zip or path:<owner>/<repo>/<path>.zip")
        return value

    @property
    def target(self) -> str:
        """``powerplatform:<environment>/<solution>``."""
        return f"powerplatform:{self.environment}/{self.solution}"

    def source_repo(self) -> str:
        """The repository the file comes from (it must be the task's)."""
        match = _SOURCE.match(self.source)
        assert match is not None
        return match["rrepo"] or match["prepo"]


#: Dataverse error codes an operator can act on, and what to do (Manage application users:
#: learn.microsoft.com/power-platform/admin/manage-application-users; security roles: …/admin/database-security).
_OPERATOR_HINTS = {
    "0x80072560": "the app is not an application user in this environment: add its managed identity as an "
                  "application user (Power Platform admin center → Environment → Settings → Application users)",
    "0x80040220": "the app's application user lacks a security role with this privilege: give it a role such as "
                  "System Customizer",
}


def explain(error: DataverseError, environment: str) -> str:
    """One sentence for the operator and the model: what Dataverse refused and, when known, what fixes it."""
    if error.status == 401:
        return (f"Dataverse in {environment} refused the app's token (401): the token's audience must be the "
                "environment URL")
    hint = _OPERATOR_HINTS.get(error.code)
    if hint:
        return f"Dataverse in {environment} refused ({error.code}): {hint}. Dataverse said: {error.message}"
    return f"Dataverse in {environment} refused ({error.status} {error.code}): {error.message}"
