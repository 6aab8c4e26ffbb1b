"""A Power Platform admin (BAP) API and Dataverse Web API fake on 127.0.0.1, with a clock tests advance.

Seeded by the ``tools.simulate`` interface ``"dataverse": {"environments": [...], "solutions": {...},
"import_outcome": ...}``:

* ``environments``: ``{"name", "displayName"?, "environmentSku", "application_user"?: "ok" | "missing" |
  "no_role"}`` — each gets a Dataverse URL ``{base}/env/<name>/`` as ``linkedEnvironmentMetadata.instanceApiUrl``;
* ``solutions``: environment name → installed solutions ``[{"uniquename", "version", "ismanaged"?}]``;
* ``import_outcome``: ``success`` (the async operation is Succeeded at its first read), ``missing_dependency``
  (staging reports every dependency the solution's manifest declares, or a default one when it declares none),
  ``failed_after_minutes:N`` / ``success_after_minutes:N`` (In Progress until N minutes of the fake's clock
  have passed since the import started).

Routes: BAP ``GET /providers/Microsoft.BusinessAppPlatform/scopes/admin/environments[/{name}]?api-version=…``
(learn.microsoft.com/power-platform/admin/list-environments); Dataverse under ``/env/{name}/api/data/v9.2/``:
``GET solutions``, ``POST StageSolution``, ``POST ImportSolutionAsync``, ``GET asyncoperations({id})``,
``GET importjobs({id})``, ``POST PublishAllXml``, ``GET flowruns`` (operation names and shapes from the Web API
reference, learn.microsoft.com/power-apps/developer/data-platform/webapi/reference/…; async operation states from
the asyncoperation table reference — see shared/powerplatform/asyncops.py). A solution file is a zip with a
``solution.xml`` whose ``ImportExportXml/SolutionManifest`` has ``UniqueName``, ``Version``, ``RootComponents``
and ``MissingDependencies/MissingDependency/{Required,Dependent}`` (the layout ``pac solution export`` writes);
a Required whose ``solution="<name> (<version>)"`` is not installed in the environment is a missing dependency.
Staging changes nothing; a successful import installs the solution.

Refusals (errors are ``{"error": {"code", "message"}}``, "Compose HTTP requests and handle errors"):

====  ==========================================================  ===================================================
401   no ``Authorization: Bearer <token>`` or the wrong token     Use OAuth with Dataverse (…/authenticate-oauth):
                                                                   a call without a valid token is 401 with
                                                                   ``WWW-Authenticate: Bearer authorization_uri=…``
403   the app has no application user in the environment          Manage application users (learn.microsoft.com/
      (code ``0x80072560``, "The user is not a member of the       power-platform/admin/manage-application-users):
      organization.") or it has no security role granting the     an app user needs a security role; a privilege
      privilege (``0x80040220``, "… is missing prvImportSolution   check failure names the missing privilege
      privilege")
400   ``StageSolution``/``ImportSolutionAsync`` without their      ImportSolutionAsync / StageSolution parameter
      required parameters, a ``CustomizationFile`` that is not     tables (``CustomizationFile`` non-nullable,
      base64 of a zip with a readable ``solution.xml``, an         ``OverwriteUnmanagedCustomizations`` and
      unknown ``StageSolutionUploadId``                            ``PublishWorkflows`` non-nullable). The fake's
                                                                   error codes for these are its own.
404   an unknown environment (BAP and Dataverse), an unknown      List environments; Web API retrieve of a missing
      async operation or import job, any route not listed          row answers 404
====  ==========================================================  ===================================================

Every request is recorded (``requests``); unknown routes also go to ``unexpected``. No sleeps: ``advance()``.
"""

from __future__ import annotations

import base64
import binascii
import io
import json
import re
import threading
import uuid
import xml.etree.ElementTree as ET  # noqa: S405 - test fake parsing test-built solution files
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

BAP_ENVIRONMENTS = "/providers/Microsoft.BusinessAppPlatform/scopes/admin/environments"
DEFAULT_MISSING = {"type": "1", "schemaName": "msdyn_basetable", "displayName": "Base table",
                   "solution": "msdyn_Base (1.0.0.0)"}
FAILURE_TEXT = ("Solution manifest import: FAILURE: The attribute contoso_amount of entity contoso_invoice could "
                "not be created: an attribute with this name already exists.")


class DataverseFault(Exception):
    """Raised inside a route to answer with Dataverse's error shape."""

    def __init__(self, status: int, code: str, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.headers = status, code, message, headers or {}


@dataclass
class Recorded:
    """One request the fake received."""

    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: Any


@dataclass
class Manifest:
    """What the fake reads of a solution file."""

    unique_name: str
    version: str
    root_components: list[str]
    requires: list[dict[str, str]]


@dataclass
class _Import:
    environment: str
    manifest: Manifest
    started: datetime
    job_id: str
    missing: list[dict[str, str]] = field(default_factory=list)


def build_solution_zip(unique_name: str, version: str = "1.0.0.0", *, root_components: tuple[str, ...] = (
        "contoso_invoice",), requires: tuple[dict[str, str], ...] = ()) -> bytes:
    """A minimal solution file: ``solution.xml``, ``customizations.xml`` and ``[Content_Types].xml``."""
    missing = "".join(
        f'<MissingDependency><Required type="{r.get("type", "1")}" schemaName="{r["schemaName"]}" '
        f'displayName="{r.get("displayName", r["schemaName"])}" solution="{r["solution"]}" />'
        f'<Dependent type="{r.get("dependentType", "60")}" schemaName="{r.get("dependent", root_components[0])}" />'
        f"</MissingDependency>" for r in requires)
    roots = "".join(f'<RootComponent type="1" schemaName="{name}" behavior="0" />' for name in root_components)
    solution_xml = (
        '<ImportExportXml version="9.2.24.4" SolutionPackageVersion="9.2" languagecode="1033">'
        f"<SolutionManifest><UniqueName>{unique_name}</UniqueName><Version>{version}</Version><Managed>1</Managed>"
        f"<RootComponents>{roots}</RootComponents><MissingDependencies>{missing}</MissingDependencies>"
        "</SolutionManifest></ImportExportXml>")
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("solution.xml", solution_xml)
        archive.writestr("customizations.xml", "<ImportExportXml />")
        archive.writestr("[Content_Types].xml", "<Types />")
    return buffer.getvalue()


def read_manifest(raw: bytes) -> Manifest:
    """The manifest of a solution zip (``ValueError`` when it is not one)."""
    try:
        with zipfile.ZipFile(io.BytesIO(raw)) as archive:
            root = ET.fromstring(archive.read("solution.xml"))  # noqa: S314 - test data
    except (zipfile.BadZipFile, KeyError, ET.ParseError) as exc:
        raise ValueError("not a solution file") from exc
    manifest = root.find("SolutionManifest")
    if manifest is None or not manifest.findtext("UniqueName"):
        raise ValueError("solution.xml has no SolutionManifest/UniqueName")
    requires: list[dict[str, str]] = []
    for dep in manifest.iter("MissingDependency"):
        required, dependent = dep.find("Required"), dep.find("Dependent")
        if required is not None:
            schema = dependent.get("schemaName", "") if dependent is not None else ""
            requires.append(dict(required.attrib) | {"dependent": schema})
    return Manifest(unique_name=manifest.findtext("UniqueName") or "", version=manifest.findtext("Version") or "",
                    root_components=[c.get("schemaName", "") for c in manifest.iter("RootComponent")],
                    requires=requires)


class FakeDataverse:
    """BAP + Dataverse on loopback (use as a context manager)."""

    def __init__(self, seed: dict[str, Any] | None = None, *, token: str = "dataverse-token",  # noqa: S107 - the fake's own test token
                 clock: Callable[[], datetime] | None = None) -> None:
        seed = seed or {}
        self.token = token
        self._now = datetime(2026, 12, 8, 9, tzinfo=UTC)
        self.clock = clock or (lambda: self._now)
        self.environments: dict[str, dict[str, Any]] = {e["name"]: dict(e) for e in seed.get("environments", [])}
        self.solutions: dict[str, list[dict[str, Any]]] = {
            name: [dict(s) for s in items] for name, items in (seed.get("solutions") or {}).items()}
        self.import_outcome = str(seed.get("import_outcome", "success"))
        if not re.fullmatch(r"success|missing_dependency|(failed|success)_after_minutes:\d+", self.import_outcome):
            raise ValueError(f"unknown import_outcome {self.import_outcome!r}")
        self.flow_runs: list[dict[str, Any]] = list(seed.get("flow_runs", []))
        self.staged: dict[str, tuple[str, Manifest, list[dict[str, str]]]] = {}
        self.imports: dict[str, _Import] = {}
        self.published: list[str] = []
        self.requests: list[Recorded] = []
        self.unexpected: list[Recorded] = []
        self._lock = threading.RLock()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # --- lifecycle ---------------------------------------------------------------------------------------

    def __enter__(self) -> FakeDataverse:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - BaseHTTPRequestHandler's name
                return

            def _handle(self) -> None:
                fake._dispatch(self)

            do_GET = do_POST = do_PATCH = do_DELETE = _handle

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05},
                                        name="fake-dataverse", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:<port>``: the BAP base URL; environments live under ``/env/<name>/``."""
        assert self._server is not None, "use FakeDataverse as a context manager"
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def instance_url(self, environment: str) -> str:
        """The Dataverse URL of an environment (what BAP reports as ``instanceApiUrl``)."""
        return f"{self.base_url}/env/{environment}/"

    def advance(self, *, minutes: float = 0, hours: float = 0) -> None:
        """Move the fake's clock forward (only when it owns its clock)."""
        self._now += timedelta(minutes=minutes, hours=hours)

    # --- dispatch ----------------------------------------------------------------------------------------

    def _dispatch(self, handler: BaseHTTPRequestHandler) -> None:
        split = urlsplit(handler.path)
        length = int(handler.headers.get("Content-Length") or 0)
        raw = handler.rfile.read(length) if length else b""
        try:
            body: Any = json.loads(raw) if raw else None
        except json.JSONDecodeError:
            body = None
        record = Recorded(handler.command, unquote(split.path), parse_qs(split.query),
                          {k.lower(): v for k, v in handler.headers.items()}, body)
        with self._lock:
            self.requests.append(record)
        status, payload, headers = 500, None, {}
        try:
            with self._lock:
                status, payload = self._route(record)
        except DataverseFault as fault:
            status, headers = fault.status, fault.headers
            payload = None if status == 401 else {"error": {"code": fault.code, "message": fault.message}}
        data = b"" if payload is None else json.dumps(payload).encode()
        handler.send_response(status)
        for name, value in headers.items():
            handler.send_header(name, value)
        if data:
            handler.send_header("Content-Type", "application/json; odata.metadata=minimal")
            handler.send_header("OData-Version", "4.0")
        handler.send_header("Content-Length", str(len(data)))
        handler.end_headers()
        if data:
            handler.wfile.write(data)

    def _route(self, record: Recorded) -> tuple[int, Any]:
        if record.headers.get("authorization") != f"Bearer {self.token}":
            raise DataverseFault(401, "Unauthorized", "",
                                 {"WWW-Authenticate": "Bearer authorization_uri=https://login.microsoftonline.com/"
                                                      "common/oauth2/authorize"})
        if record.path.startswith(BAP_ENVIRONMENTS):
            return self._bap(record)
        match = re.fullmatch(r"/env/([^/]+)/api/data/v9\.2/(.+)", record.path)
        if match is None:
            return self._unexpected(record)
        env = self.environments.get(match[1])
        if env is None:
            raise DataverseFault(404, "0x80040217", f"Environment {match[1]} was not found.")
        user = env.get("application_user", "ok")
        if user == "missing":
            raise DataverseFault(403, "0x80072560", "The user is not a member of the organization.")
        return self._dataverse(match[1], match[2], record, user)

    def _unexpected(self, record: Recorded) -> tuple[int, Any]:
        self.unexpected.append(record)
        raise DataverseFault(404, "0x80060888", f"Resource not found for the segment '{record.path}'.")

    # --- BAP ---------------------------------------------------------------------------------------------

    def _bap_entry(self, env: dict[str, Any]) -> dict[str, Any]:
        return {
            "id": f"{BAP_ENVIRONMENTS}/{env['name']}", "type": "Microsoft.BusinessAppPlatform/scopes/environments",
            "location": env.get("location", "unitedstates"), "name": env["name"],
            "properties": {"displayName": env.get("displayName", env["name"]),
                           "environmentSku": env.get("environmentSku", "Sandbox"),
                           "provisioningState": "Succeeded",
                           "linkedEnvironmentMetadata": {"instanceApiUrl": self.instance_url(env["name"]),
                                                         "instanceUrl": self.instance_url(env["name"])}},
        }

    def _bap(self, record: Recorded) -> tuple[int, Any]:
        if record.method != "GET":
            return self._unexpected(record)
        if not record.query.get("api-version"):
            raise DataverseFault(400, "MissingApiVersionParameter", "The api-version query parameter is required.")
        rest = record.path[len(BAP_ENVIRONMENTS):].strip("/")
        if not rest:
            return 200, {"value": [self._bap_entry(env) for env in self.environments.values()]}
        env = self.environments.get(rest)
        if env is None:
            raise DataverseFault(404, "EnvironmentNotFound", f"The environment '{rest}' could not be found.")
        return 200, self._bap_entry(env)

    # --- Dataverse -----------------------------------------------------------------------------------------

    def _needs_role(self, user: str, privilege: str) -> None:
        if user == "no_role":
            raise DataverseFault(403, "0x80040220",
                                 f"Principal user (Id=00000000-0000-0000-0000-00000000a11e, type=8) is missing "
                                 f"{privilege} privilege.")

    def _dataverse(self, env: str, resource: str, record: Recorded, user: str) -> tuple[int, Any]:
        method, body = record.method, record.body if isinstance(record.body, dict) else {}
        if resource == "solutions" and method == "GET":
            self._needs_role(user, "prvReadSolution")
            return 200, {"value": [
                {"uniquename": s["uniquename"], "friendlyname": s.get("friendlyname", s["uniquename"]),
                 "version": s.get("version", "1.0.0.0"), "ismanaged": s.get("ismanaged", True)}
                for s in self.solutions.get(env, [])]}
        if resource == "StageSolution" and method == "POST":
            self._needs_role(user, "prvImportSolution")
            return 200, self._stage(env, body)
        if resource == "ImportSolutionAsync" and method == "POST":
            self._needs_role(user, "prvImportSolution")
            return 200, self._import(env, body)
        if resource == "PublishAllXml" and method == "POST":
            self._needs_role(user, "prvPublishCustomizations")
            self.published.append(env)
            return 204, None
        match = re.fullmatch(r"(asyncoperations|importjobs)\(([0-9a-fA-F-]{36})\)", resource)
        if match and method == "GET":
            self._needs_role(user, "prvReadAsyncOperation")
            job = self._find(env, match[1], match[2].lower())
            return 200, self._async_row(job) if match[1] == "asyncoperations" else self._job_row(job)
        if resource == "flowruns" and method == "GET":
            self._needs_role(user, "prvReadflowrun")
            wanted = (record.query.get("$filter") or [""])[0]
            status = re.fullmatch(r"status eq '(\w+)'", wanted)
            if wanted and status is None:
                raise DataverseFault(400, "0x80060888", "The fake supports only $filter=status eq '<status>'.")
            runs = [r for r in self.flow_runs if r.get("environment", env) == env
                    and (status is None or r.get("status") == status[1])]
            return 200, {"value": runs[: int((record.query.get("$top") or ["50"])[0])]}
        return self._unexpected(record)

    def _stage(self, env: str, body: dict[str, Any]) -> dict[str, Any]:
        encoded = body.get("CustomizationFile")
        if not isinstance(encoded, str) or not encoded:
            raise DataverseFault(400, "0x80040203", "CustomizationFile is required.")
        try:
            manifest = read_manifest(base64.b64decode(encoded, validate=True))
        except (binascii.Error, ValueError) as exc:
            raise DataverseFault(400, "0x80048060", f"The solution file is invalid: {exc}.") from None
        installed = {s["uniquename"].lower() for s in self.solutions.get(env, [])}
        if self.import_outcome == "missing_dependency":
            missing = manifest.requires or [dict(DEFAULT_MISSING, dependent=manifest.root_components[0]
                                                 if manifest.root_components else "")]
        else:
            missing = [r for r in manifest.requires if r.get("solution", "").split(" (")[0].lower() not in installed]
        upload_id = str(uuid.uuid4())
        self.staged[upload_id] = (env, manifest, missing)
        return {"@odata.context": "#Microsoft.Dynamics.CRM.StageSolutionResponse", "StageSolutionResults": {
            "StageSolutionUploadId": upload_id,
            "StageSolutionStatus": "Passed",
            "SolutionDetails": {"SolutionUniqueName": manifest.unique_name, "SolutionVersion": manifest.version},
            "SolutionValidationResults": [],
            "SolutionComponentsDetails": [],
            "MissingDependencies": [{
                "RequiredComponentSchemaName": r["schemaName"],
                "RequiredComponentDisplayName": r.get("displayName", r["schemaName"]),
                "RequiredComponentType": r.get("type", "1"),
                "DependentComponentSchemaName": r.get("dependent") or None,
                "DependentComponentDisplayName": r.get("dependent") or None,
                "CanResolveMissingDependency": False,
            } for r in missing],
        }}

    def _import(self, env: str, body: dict[str, Any]) -> dict[str, Any]:
        for name in ("OverwriteUnmanagedCustomizations", "PublishWorkflows"):
            if not isinstance(body.get(name), bool):
                raise DataverseFault(400, "0x80040203", f"{name} is required and must be a boolean.")
        upload = (body.get("SolutionParameters") or {}).get("StageSolutionUploadId")
        staged = self.staged.get(str(upload))
        if staged is None or staged[0] != env:
            raise DataverseFault(400, "0x80040203", "StageSolutionUploadId does not name a staged solution.")
        job_id = str(body.get("ImportJobId") or uuid.uuid4()).lower()
        operation = str(uuid.uuid4())
        self.imports[operation] = _Import(env, staged[1], self.clock(), job_id, staged[2])
        return {"@odata.context": "#Microsoft.Dynamics.CRM.ImportSolutionAsyncResponse",
                "AsyncOperationId": operation, "ImportJobKey": job_id}

    def _find(self, env: str, table: str, key: str) -> _Import:
        for operation, job in self.imports.items():
            if job.environment == env and (operation == key if table == "asyncoperations" else job.job_id == key):
                return job
        raise DataverseFault(404, "0x80040217", f"{table[:-1]} with id = {key} does not exist.")

    def _state(self, job: _Import) -> str:
        if job.missing:
            return "failed"
        kind, _, minutes = self.import_outcome.partition("_after_minutes:")
        if not minutes:
            return "succeeded"
        if self.clock() - job.started < timedelta(minutes=int(minutes)):
            return "running"
        return "failed" if kind == "failed" else "succeeded"

    def _async_row(self, job: _Import) -> dict[str, Any]:
        state = self._state(job)
        operation = next(op for op, j in self.imports.items() if j is job)
        if state == "succeeded":
            installed = self.solutions.setdefault(job.environment, [])
            if all(s["uniquename"] != job.manifest.unique_name for s in installed):
                installed.append({"uniquename": job.manifest.unique_name, "version": job.manifest.version})
        codes = {"running": (2, 20), "succeeded": (3, 30), "failed": (3, 31)}[state]
        message = None
        if state == "failed":
            message = (FAILURE_TEXT if not job.missing else "The import of solution " + job.manifest.unique_name
                       + " failed: missing dependencies " + ", ".join(r["schemaName"] for r in job.missing))
        return {"asyncoperationid": operation, "statecode": codes[0], "statuscode": codes[1], "message": message,
                "friendlymessage": "Solution import failed." if message else None}

    def _job_row(self, job: _Import) -> dict[str, Any]:
        state = self._state(job)
        component = job.manifest.root_components[0] if job.manifest.root_components else job.manifest.unique_name
        result = ('<result result="failure" errorcode="0x80044363" errortext="' + FAILURE_TEXT + '" />'
                  if state == "failed" else '<result result="success" errorcode="0" errortext="" />')
        data = (f'<importexportxml><entities><entity name="{component}" LocalizedName="{component}">{result}'
                f"</entity></entities></importexportxml>")
        return {"importjobid": job.job_id, "solutionname": job.manifest.unique_name, "data": data,
                "progress": 100.0 if state != "running" else 50.0}
