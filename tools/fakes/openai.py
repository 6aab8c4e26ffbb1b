"""An OpenAI-compatible chat-completions server on 127.0.0.1 for tests (the real openai SDK talks to it).

It serves ``POST /openai/v1/chat/completions`` (the Azure OpenAI v1 path) with the real response and error
shapes, answers from a script queue (``.script(...)``) or a default responder, validates every request
strictly and records it. Anything it did not expect (unknown path, malformed request, no scripted reply) is
answered with an error *and* recorded in ``unexpected`` so a test can assert ``fake.unexpected == []``.
"""

from __future__ import annotations

import itertools
import json
import re
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any

CHAT_PATH = "/openai/v1/chat/completions"
_TOOL_NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
_ROLES = {"system", "developer", "user", "assistant", "tool"}


@dataclass
class Reply:
    """One scripted answer: a 200 completion, or an error with a status, headers and a body."""

    status: int = 200
    content: str | None = None
    tool_calls: list[tuple[str, str]] = field(default_factory=list)
    finish_reason: str | None = None
    error: dict[str, Any] | None = None
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0
    usage: tuple[int, int] = (50, 20)
    refusal: str | None = None


def content(text: str, *, usage: tuple[int, int] = (50, 20), finish_reason: str = "stop") -> Reply:
    """A plain assistant message."""
    return Reply(content=text, usage=usage, finish_reason=finish_reason)


def structured(obj: Any, *, usage: tuple[int, int] = (50, 20)) -> Reply:
    """A structured-output answer (the JSON text of ``obj``)."""
    return Reply(content=json.dumps(obj), usage=usage)


def tool_call(name: str, arguments: dict[str, Any] | str, *, usage: tuple[int, int] = (50, 20)) -> Reply:
    """One function tool call; ``arguments`` may be a raw (possibly malformed) string."""
    return tool_calls([(name, arguments)], usage=usage)


def tool_calls(calls: list[tuple[str, dict[str, Any] | str]], *, usage: tuple[int, int] = (50, 20)) -> Reply:
    """Several function tool calls in one assistant message."""
    encoded = [(name, args if isinstance(args, str) else json.dumps(args)) for name, args in calls]
    return Reply(tool_calls=encoded, usage=usage, finish_reason="tool_calls")


def rate_limited(*, retry_after_ms: int | None = None, retry_after: str | None = None) -> Reply:
    """A 429 as Azure OpenAI sends it when a TPM/RPM window is exhausted."""
    headers: dict[str, str] = {}
    if retry_after_ms is not None:
        headers["retry-after-ms"] = str(retry_after_ms)
    if retry_after is not None:
        headers["retry-after"] = retry_after
    return Reply(
        status=429,
        headers=headers,
        error={
            "message": "Requests to the ChatCompletions_Create Operation have exceeded token rate limit.",
            "type": "requests",
            "param": None,
            "code": "429",
        },
    )


def content_filtered() -> Reply:
    """A 400 content-filter error (Azure's prompt shield / content management policy)."""
    return Reply(
        status=400,
        error={
            "message": "The response was filtered due to the prompt triggering content management policy.",
            "type": None,
            "param": "prompt",
            "code": "content_filter",
            "status": 400,
        },
    )


def delayed(seconds: float, then: Reply) -> Reply:
    """``then``, answered after ``seconds`` (for client timeout tests)."""
    then.delay = seconds
    return then


Responder = Callable[[dict[str, Any]], Reply]


class FakeOpenAI:
    """A threaded fake of the Azure OpenAI v1 chat-completions endpoint; use as a context manager."""

    def __init__(self, *, model: str | None = "gpt-test", responder: Responder | None = None) -> None:
        self.model = model
        self.responder = responder
        self.requests: list[dict[str, Any]] = []
        self.raw_bodies: list[str] = []
        self.headers: list[dict[str, str]] = []
        self.unexpected: list[str] = []
        self._queue: deque[Reply] = deque()
        self._lock = threading.Lock()
        self._ids = itertools.count(1)
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # --- lifecycle ------------------------------------------------------------------------------------
    def __enter__(self) -> FakeOpenAI:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                fake._handle(self)

            def do_GET(self) -> None:
                fake._handle(self)

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
                return

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.02}, name="fake-openai", daemon=True
        )
        self._thread.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        assert self._server is not None
        self._server.shutdown()
        self._server.server_close()

    @property
    def endpoint(self) -> str:
        """What ``AZURE_OPENAI_ENDPOINT`` would be (the client appends ``/openai/v1/``)."""
        assert self._server is not None
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    @property
    def base_url(self) -> str:
        """The OpenAI SDK ``base_url``."""
        return f"{self.endpoint}/openai/v1/"

    # --- scripting ------------------------------------------------------------------------------------
    def script(self, *replies: Reply) -> FakeOpenAI:
        """Queue replies, answered in order, before the default responder is consulted."""
        with self._lock:
            self._queue.extend(replies)
        return self

    @property
    def pending(self) -> int:
        """Scripted replies not consumed yet."""
        with self._lock:
            return len(self._queue)

    def bodies_text(self) -> str:
        """Every request body received, concatenated (to search for leaked values)."""
        with self._lock:
            return "\n".join(self.raw_bodies)

    # --- serving --------------------------------------------------------------------------------------
    def _handle(self, handler: BaseHTTPRequestHandler) -> None:
        length = int(handler.headers.get("Content-Length") or 0)
        raw = handler.rfile.read(length).decode("utf-8", "replace") if length else ""
        path = handler.path.split("?", 1)[0]
        with self._lock:
            self.raw_bodies.append(raw)
            self.headers.append({key.lower(): value for key, value in handler.headers.items()})
        if handler.command != "POST" or path != CHAT_PATH:
            self._unexpected(f"{handler.command} {handler.path}")
            self._send(handler, 404, {"error": _error("Resource not found", "invalid_request_error", None, "404")})
            return
        auth = handler.headers.get("Authorization", "")
        if not (auth.startswith("Bearer ") and len(auth) > len("Bearer ")) and not handler.headers.get("api-key"):
            self._unexpected("request without credentials")
            self._send(handler, 401, {"error": _error("Access denied: missing credentials", None, None, "401")})
            return
        try:
            body = json.loads(raw)
        except ValueError:
            self._unexpected("body is not JSON")
            self._send(handler, 400, {"error": _error("Invalid JSON body", "invalid_request_error", None, None)})
            return
        with self._lock:
            self.requests.append(body)
        problem = self._validate(body)
        if problem:
            self._unexpected(problem)
            self._send(handler, 400, {"error": _error(problem, "invalid_request_error", None, None)})
            return
        reply = self._next_reply(body)
        if reply is None:
            self._unexpected("no scripted reply left and no responder")
            self._send(handler, 500, {"error": _error("unscripted request", "server_error", None, None)})
            return
        if reply.delay:
            time.sleep(reply.delay)
        if reply.status != 200:
            self._send(
                handler, reply.status, {"error": reply.error or _error("error", None, None, None)}, reply.headers
            )
            return
        self._send(handler, 200, self._completion(body, reply), reply.headers)

    def _next_reply(self, body: dict[str, Any]) -> Reply | None:
        with self._lock:
            if self._queue:
                return self._queue.popleft()
        return self.responder(body) if self.responder else None

    def _unexpected(self, what: str) -> None:
        with self._lock:
            self.unexpected.append(what)

    def _completion(self, body: dict[str, Any], reply: Reply) -> dict[str, Any]:
        number = next(self._ids)
        message: dict[str, Any] = {"role": "assistant", "content": reply.content, "refusal": reply.refusal}
        if reply.tool_calls:
            message["tool_calls"] = [
                {"id": f"call_{number}_{index}", "type": "function", "function": {"name": name, "arguments": args}}
                for index, (name, args) in enumerate(reply.tool_calls)
            ]
        prompt, completion = reply.usage
        return {
            "id": f"chatcmpl-fake{number}",
            "object": "chat.completion",
            "created": 1_700_000_000 + number,
            "model": body.get("model"),
            "system_fingerprint": "fp_fake",
            "choices": [
                {
                    "index": 0,
                    "message": message,
                    "finish_reason": reply.finish_reason or ("tool_calls" if reply.tool_calls else "stop"),
                    "logprobs": None,
                }
            ],
            "usage": {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion},
        }

    @staticmethod
    def _send(
        handler: BaseHTTPRequestHandler, status: int, payload: dict[str, Any], headers: dict[str, str] | None = None
    ) -> None:
        data = json.dumps(payload).encode()
        try:
            handler.send_response(status)
            handler.send_header("Content-Type", "application/json")
            handler.send_header("Content-Length", str(len(data)))
            handler.send_header("x-request-id", "fake-request")
            for key, value in (headers or {}).items():
                handler.send_header(key, value)
            handler.end_headers()
            handler.wfile.write(data)
        except (BrokenPipeError, ConnectionResetError):
            # The client gave up (timeout test); nothing left to answer.
            return

    # --- request validation ---------------------------------------------------------------------------
    def _validate(self, body: Any) -> str | None:
        if not isinstance(body, dict):
            return "body must be an object"
        model = body.get("model")
        if not isinstance(model, str) or not model:
            return "'model' is required"
        if self.model is not None and model != self.model:
            return f"unknown deployment {model!r}"
        problem = _validate_messages(body.get("messages"))
        if problem:
            return problem
        if "tools" in body:
            problem = _validate_tools(body["tools"])
            if problem:
                return problem
        if "response_format" in body:
            return _validate_response_format(body["response_format"])
        return None


def _validate_messages(messages: Any) -> str | None:
    if not isinstance(messages, list) or not messages:
        return "'messages' must be a non-empty array"
    open_calls: set[str] = set()
    for index, message in enumerate(messages):
        if not isinstance(message, dict) or message.get("role") not in _ROLES:
            return f"messages[{index}] has no valid role"
        role = message["role"]
        text = message.get("content")
        if role == "assistant" and message.get("tool_calls"):
            for call in message["tool_calls"]:
                if call.get("type") != "function" or not isinstance(call.get("function", {}).get("arguments"), str):
                    return f"messages[{index}].tool_calls is malformed"
                open_calls.add(call["id"])
            continue
        if role == "tool":
            if message.get("tool_call_id") not in open_calls:
                return f"messages[{index}] answers an unknown tool_call_id"
            open_calls.discard(message["tool_call_id"])
        if not isinstance(text, str | list):
            return f"messages[{index}].content must be a string or an array"
    if open_calls:
        return f"tool calls without a tool message: {sorted(open_calls)}"
    return None


def _validate_tools(tools: Any) -> str | None:
    if not isinstance(tools, list) or not tools:
        return "'tools' must be a non-empty array"
    names: set[str] = set()
    for index, tool in enumerate(tools):
        function = tool.get("function") if isinstance(tool, dict) else None
        if not isinstance(tool, dict) or tool.get("type") != "function" or not isinstance(function, dict):
            return f"tools[{index}] is not a function tool"
        name = function.get("name")
        if not isinstance(name, str) or not _TOOL_NAME.match(name) or name in names:
            return f"tools[{index}].function.name is invalid or duplicated"
        names.add(name)
        parameters = function.get("parameters")
        if not isinstance(parameters, dict) or parameters.get("type") != "object":
            return f"tools[{index}].function.parameters must be an object schema"
        if function.get("strict") and (
            parameters.get("additionalProperties") is not False
            or set(parameters.get("required", [])) != set(parameters.get("properties", {}))
        ):
            return f"tools[{index}]: strict schemas need every property required and no additionalProperties"
    return None


def _validate_response_format(response_format: Any) -> str | None:
    if not isinstance(response_format, dict):
        return "'response_format' must be an object"
    kind = response_format.get("type")
    if kind in ("text", "json_object"):
        return None
    if kind != "json_schema":
        return f"unknown response_format type {kind!r}"
    spec = response_format.get("json_schema")
    if not isinstance(spec, dict) or not spec.get("name") or not isinstance(spec.get("schema"), dict):
        return "json_schema needs a name and a schema"
    if spec.get("strict"):
        return _strict_schema_problem(spec["schema"], "schema")
    return None


def _strict_schema_problem(schema: dict[str, Any], where: str) -> str | None:
    if schema.get("type") == "object":
        properties = schema.get("properties", {})
        if schema.get("additionalProperties") is not False or set(schema.get("required", [])) != set(properties):
            return f"{where}: strict objects need every property required and additionalProperties false"
        for key, sub in properties.items():
            problem = _strict_schema_problem(sub, f"{where}.{key}")
            if problem:
                return problem
    if schema.get("type") == "array" and isinstance(schema.get("items"), dict):
        return _strict_schema_problem(schema["items"], f"{where}[]")
    return None


def _error(message: str, kind: str | None, param: str | None, code: str | None) -> dict[str, Any]:
    return {"message": message, "type": kind, "param": param, "code": code}


def iter_messages(body: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """The messages of a recorded request body."""
    yield from body.get("messages", [])


# --- scripts in the simulate/arena format ---------------------------------------------------------------------


class ScriptError(ValueError):
    """A ``"model"`` script entry that is not one of the four reply shapes; the message names its position."""


def reply_from_spec(spec: Any, position: int = 1) -> Reply:
    """One reply of a ``"model": [REPLY, …]`` script (the simulate/arena interface of issue 21).

    ``REPLY`` is exactly one of ``{"content": "…"}`` (a plain answer), ``{"json": {…}}`` (structured output: the
    JSON text of the value), ``{"tool_calls": [["name", {…args}], …]}`` (function calls; arguments may be a raw
    string, to script malformed JSON) or ``{"status": 429, "retry_after": 5}`` (Azure OpenAI's throttling
    answer, ``retry-after`` in seconds; ``retry_after`` optional). Anything else raises :class:`ScriptError`.
    """
    where = f"model[{position}]"
    if not isinstance(spec, dict) or len(spec) == 0:
        raise ScriptError(f"{where} must be an object with content, json, tool_calls or status")
    keys = set(spec)
    if keys == {"content"}:
        if not isinstance(spec["content"], str):
            raise ScriptError(f"{where}.content must be a string")
        return content(spec["content"])
    if keys == {"json"}:
        return structured(spec["json"])
    if keys == {"tool_calls"}:
        calls = spec["tool_calls"]
        if not isinstance(calls, list) or not calls:
            raise ScriptError(f"{where}.tool_calls must be a non-empty list of [name, arguments]")
        parsed: list[tuple[str, dict[str, Any] | str]] = []
        for index, call in enumerate(calls):
            if (not isinstance(call, list | tuple) or len(call) != 2 or not isinstance(call[0], str)
                    or not isinstance(call[1], dict | str)):
                raise ScriptError(f"{where}.tool_calls[{index}] must be [name, arguments object]")
            parsed.append((call[0], call[1]))
        return tool_calls(parsed)
    if "status" in keys and keys <= {"status", "retry_after"}:
        if spec["status"] != 429:
            raise ScriptError(f"{where}.status: only 429 (throttling) is scripted")
        wait = spec.get("retry_after")
        if wait is not None and (isinstance(wait, bool) or not isinstance(wait, int | float) or wait < 0):
            raise ScriptError(f"{where}.retry_after must be a number of seconds")
        return rate_limited(retry_after=None if wait is None else str(int(wait) if wait == int(wait) else wait))
    raise ScriptError(f"{where} has keys {sorted(keys)}: use exactly one of content, json, tool_calls, or status "
                      "(with retry_after)")


def replies_from_script(script: Any) -> list[Reply]:
    """Every reply of a ``"model"`` script, in order (:class:`ScriptError` on the first bad one)."""
    if not isinstance(script, list):
        raise ScriptError("model must be a list of replies")
    return [reply_from_spec(spec, position) for position, spec in enumerate(script, start=1)]


#: The error code the fake answers with once a script is used up (a 400: the SDK does not retry it).
SCRIPT_EXHAUSTED = "script_exhausted"


def exhausted_reply(asked: int, scripted: int) -> Reply:
    """The answer to a request beyond the script: a 400 naming how many replies were scripted."""
    return Reply(status=400, error=_error(
        f"the scripted model was asked for reply {asked} but the script has {scripted}", "invalid_request_error",
        None, SCRIPT_EXHAUSTED))
