"""The Dataverse Web API and the Power Platform admin (BAP) API, over httpx, with a token from azure-identity.

Sources:

* "Compose HTTP requests and handle errors" (learn.microsoft.com/power-apps/developer/data-platform/webapi/
  compose-http-requests-handle-errors): the base URL ``https://<org>.<region>.dynamics.com/api/data/v9.2/``,
  headers ``Accept: application/json``, ``OData-MaxVersion: 4.0``, ``OData-Version: 4.0``,
  ``Content-Type: application/json; charset=utf-8``; errors are ``{"error": {"code", "message"}}``.
* "Use OAuth with Dataverse" (…/data-platform/authenticate-oauth): the token's scope is the environment URL with
  ``/.default``; an app (here the Function App's managed identity) must exist as an *application user* in the
  environment with a security role ("Manage application users", learn.microsoft.com/power-platform/admin/
  manage-application-users): without it Dataverse answers 403.
* Actions: ``StageSolution`` (→ ``StageSolutionResults``: ``StageSolutionUploadId``, ``MissingDependencies`` of
  ``MissingDependency`` with ``RequiredComponentSchemaName``, ``RequiredComponentDisplayName``,
  ``RequiredComponentType``, ``DependentComponentSchemaName``, …), ``ImportSolutionAsync``
  (parameters ``OverwriteUnmanagedCustomizations``, ``PublishWorkflows`` required; ``CustomizationFile`` or
  ``SolutionParameters.StageSolutionUploadId``; → ``AsyncOperationId``, ``ImportJobKey``), ``PublishAllXml``;
  tables ``solutions``, ``asyncoperations``, ``importjobs`` (``data``: the import's XML log, a ``result`` element
  with ``result="failure"``, ``errorcode`` and ``errortext`` under each failing component) and ``flowruns`` (cloud
  flow run history: ``status`` Success/Failed/Cancelled, ``errorcode``, ``errormessage``; learn.microsoft.com/
  power-automate/dataverse/cloud-flow-run-metadata). Web API reference: learn.microsoft.com/power-apps/developer/
  data-platform/webapi/reference/{stagesolution,importsolutionasync,publishallxml,stagesolutionresults,
  missingdependency}.
* List environments (learn.microsoft.com/power-platform/admin/list-environments): ``GET https://api.bap.
  microsoft.com/providers/Microsoft.BusinessAppPlatform/scopes/admin/environments?api-version=2020-10-01``; each
  environment's ``properties.environmentSku`` (Production, Sandbox, Trial, Developer, Default) and
  ``properties.linkedEnvironmentMetadata.instanceApiUrl`` (its Dataverse URL). Token scope
  ``https://service.powerapps.com/.default`` ("Authentication - legacy").
"""

from __future__ import annotations

import base64
import functools
import ssl
import xml.etree.ElementTree as ET  # noqa: S405 - parses Dataverse's own import log, not untrusted input
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
from pydantic import BaseModel, ConfigDict

from shared.powerplatform.asyncops import AsyncOperation
from shared.powerplatform.deploy import MissingDependency

TokenProvider = Callable[[], Awaitable[str]]
API_PATH = "api/data/v9.2/"
BAP_URL = "https://api.bap.microsoft.com"
BAP_SCOPE = "https://service.powerapps.com/.default"
BAP_API_VERSION = "2020-10-01"
DEFAULT_TIMEOUT = 30.0
ODATA_HEADERS = {"Accept": "application/json", "OData-MaxVersion": "4.0", "OData-Version": "4.0"}


class DataverseError(Exception):
    """A refused call: HTTP ``status``, Dataverse's ``code`` and ``message`` (never the request body)."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status = status
        self.code = code
        self.message = message


class Environment(BaseModel):
    """A Power Platform environment as Reynolds needs it."""

    model_config = ConfigDict(frozen=True)

    name: str
    display_name: str
    environment_sku: str
    instance_api_url: str | None

    @property
    def production(self) -> bool:
        """Whether imports into it need an approval."""
        return self.environment_sku == "Production"


class StageResult(BaseModel):
    """What ``StageSolution`` found."""

    model_config = ConfigDict(frozen=True)

    upload_id: str
    status: str | None
    missing: list[MissingDependency]
    validation_messages: list[str]


def scope_for(instance_url: str) -> str:
    """The token scope of a Dataverse environment: its URL with ``/.default``."""
    return instance_url.rstrip("/") + "/.default"


def credential_token_provider(scope: str, client_id: str | None = None) -> TokenProvider:
    """A provider asking the app's identity (DefaultAzureCredential, user-assigned when ``client_id``)."""

    async def token() -> str:
        from azure.identity.aio import DefaultAzureCredential

        async with DefaultAzureCredential(managed_identity_client_id=client_id) as credential:
            return (await credential.get_token(scope)).token

    return token


async def _raise_for(response: httpx.Response) -> None:
    if response.status_code < 400:
        return
    code, message = f"HTTP{response.status_code}", response.reason_phrase or "error"
    try:
        error = response.json().get("error") or {}
        code, message = str(error.get("code") or code), str(error.get("message") or message)
    except ValueError:
        pass
    raise DataverseError(response.status_code, code, message[:2000])


@functools.cache
def _tls() -> ssl.SSLContext:
    # Built once: httpx would build (and load certifi's bundle into) a new context for every client.
    import certifi

    return ssl.create_default_context(cafile=certifi.where())


class _Api:
    def __init__(self, base_url: str, token: TokenProvider, transport: httpx.AsyncBaseTransport | None,
                 timeout: float) -> None:
        self._base = base_url.rstrip("/") + "/"
        self._token = token
        self._transport = transport
        self._timeout = timeout

    async def request(self, method: str, path: str, *, params: dict[str, str] | None = None,
                      json: Any = None) -> Any:
        headers = {**ODATA_HEADERS, "Authorization": f"Bearer {await self._token()}"}
        if json is not None:
            headers["Content-Type"] = "application/json; charset=utf-8"
        async with httpx.AsyncClient(transport=self._transport, timeout=self._timeout, verify=_tls()) as client:
            response = await client.request(method, self._base + path, params=params, json=json, headers=headers)
        await _raise_for(response)
        return response.json() if response.content else None


class PowerPlatformAdmin:
    """The BAP admin API: environments."""

    def __init__(self, token: TokenProvider, *, base_url: str = BAP_URL,
                 transport: httpx.AsyncBaseTransport | None = None, timeout: float = DEFAULT_TIMEOUT) -> None:
        self._api = _Api(base_url, token, transport, timeout)

    async def list_environments(self) -> list[Environment]:
        """Every environment of the tenant."""
        data = await self._api.request("GET", "providers/Microsoft.BusinessAppPlatform/scopes/admin/environments",
                                       params={"api-version": BAP_API_VERSION})
        return [_environment(entry) for entry in data.get("value", [])]

    async def get_environment(self, name: str) -> Environment:
        """One environment (404 ``DataverseError`` when unknown)."""
        data = await self._api.request(
            "GET", f"providers/Microsoft.BusinessAppPlatform/scopes/admin/environments/{name}",
            params={"api-version": BAP_API_VERSION})
        return _environment(data)


def _environment(entry: dict[str, Any]) -> Environment:
    props = entry.get("properties") or {}
    linked = props.get("linkedEnvironmentMetadata") or {}
    return Environment(name=str(entry.get("name")), display_name=str(props.get("displayName") or entry.get("name")),
                       environment_sku=str(props.get("environmentSku") or "Unknown"),
                       instance_api_url=linked.get("instanceApiUrl"))


class DataverseClient:
    """One environment's Dataverse Web API."""

    def __init__(self, instance_url: str, token: TokenProvider, *,
                 transport: httpx.AsyncBaseTransport | None = None, timeout: float = DEFAULT_TIMEOUT) -> None:
        self._api = _Api(instance_url.rstrip("/") + "/" + API_PATH, token, transport, timeout)

    async def list_solutions(self) -> list[dict[str, Any]]:
        """Visible solutions: unique name, friendly name, version, managed."""
        data = await self._api.request("GET", "solutions", params={
            "$select": "uniquename,friendlyname,version,ismanaged", "$filter": "isvisible eq true"})
        return list(data.get("value", []))

    async def stage_solution(self, customization_file: bytes) -> StageResult:
        """``StageSolution``: upload, validate, and list missing dependencies; changes nothing."""
        data = await self._api.request("POST", "StageSolution", json={
            "CustomizationFile": base64.b64encode(customization_file).decode("ascii")})
        results = data.get("StageSolutionResults") or {}
        missing = [MissingDependency(
            required_component=str(dep.get("RequiredComponentDisplayName") or dep.get("RequiredComponentSchemaName")),
            required_type=dep.get("RequiredComponentType"),
            dependent_component=dep.get("DependentComponentDisplayName") or dep.get("DependentComponentSchemaName"),
        ) for dep in results.get("MissingDependencies") or []]
        messages = [str(r.get("Message")) for r in results.get("SolutionValidationResults") or [] if r.get("Message")]
        return StageResult(upload_id=str(results.get("StageSolutionUploadId")),
                           status=results.get("StageSolutionStatus"), missing=missing, validation_messages=messages)

    async def import_solution_async(self, upload_id: str, import_job_id: str) -> str:
        """``ImportSolutionAsync`` of a staged solution; returns the ``AsyncOperationId``. ``import_job_id`` is
        chosen by the caller (derived from the orchestration) so the import log can be read after a crash."""
        data = await self._api.request("POST", "ImportSolutionAsync", json={
            "OverwriteUnmanagedCustomizations": False, "PublishWorkflows": True, "ImportJobId": import_job_id,
            "SolutionParameters": {"StageSolutionUploadId": upload_id}})
        return str(data["AsyncOperationId"])

    async def retrieve_async_operation(self, operation_id: str) -> AsyncOperation:
        """The async operation's state and messages."""
        data = await self._api.request("GET", f"asyncoperations({operation_id})", params={
            "$select": "asyncoperationid,statecode,statuscode,message,friendlymessage"})
        return AsyncOperation.model_validate(data, from_attributes=False)

    async def failing_component(self, import_job_id: str) -> tuple[str | None, str | None]:
        """``(component, error text)`` of the first failure in the import job's log (``(None, None)`` if none)."""
        data = await self._api.request("GET", f"importjobs({import_job_id})", params={"$select": "data,progress"})
        return failing_component_of(str(data.get("data") or ""))

    async def publish_all(self) -> None:
        """``PublishAllXml``."""
        await self._api.request("POST", "PublishAllXml", json={})

    async def failed_flow_runs(self, top: int = 20) -> list[dict[str, Any]]:
        """Recent failed cloud flow runs for diagnosis."""
        data = await self._api.request("GET", "flowruns", params={
            "$select": "name,workflowname,starttime,endtime,status,errorcode,errormessage",
            "$filter": "status eq 'Failed'", "$orderby": "starttime desc", "$top": str(top)})
        return list(data.get("value", []))


def failing_component_of(import_log_xml: str) -> tuple[str | None, str | None]:
    """The first component whose ``result`` is a failure in an import job's ``data`` XML."""
    if not import_log_xml.strip():
        return None, None
    try:
        root = ET.fromstring(import_log_xml)  # noqa: S314 - Dataverse's own log, read over an authenticated call
    except ET.ParseError:
        return None, None
    for element in root.iter():
        result = element.find("result")
        if result is not None and result.get("result") == "failure":
            name = element.get("LocalizedName") or element.get("name") or element.get("id") or element.tag
            return name, result.get("errortext")
    return None, None
