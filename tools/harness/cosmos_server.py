"""Run a local Cosmos DB (NoSQL) protocol server for tests and tools (``--store cosmos``).

The server is ``@vercel/cosmosdb-server`` from this repository's ``node_modules`` (``npm ci``). It speaks the
real REST protocol over HTTPS with a self-signed certificate, keeps everything in memory and starts empty.

It is not started through its ``cosmosdb-server`` bin script but through a few lines of JavaScript
(``_LAUNCHER``) that load the same package and differ from the bin script in two ways:

* keep-alive is on (the bin script answers ``Connection: close``, so every SDK request paid a TLS handshake);
* a point read of a missing document answers 404 like Cosmos DB; the package answers 500 (a TypeError in
  ``lib/handler/read-document.js``), which the Python SDK even retries. Without this, ``NotFound`` on read
  could not be tested.

Known gaps of the server (see ``tests/test_store_contract.py``): no TTL expiry (``ttl`` and
``defaultTtl`` are stored, nothing ever expires), no transactional batch from the Python SDK.

No pytest import here: tools use this module too. ``python -m tools.harness.cosmos_server`` runs a server
until Ctrl-C and prints the settings to use it.
"""

from __future__ import annotations

import contextlib
import http.client
import os
import shutil
import signal
import ssl
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

# The well-known key of the Azure Cosmos DB emulator; the local server accepts any key.
EMULATOR_KEY = "C2y6yDjf5/R+ob0N8A7Cgv30VRDJIWEHLM+4QDU5DE2nQ9nDuVTqobD4b8mGGyPMbIZnqyMsEcaGQy67XIw/Jw=="

PACKAGE = "@vercel/cosmosdb-server"
REPO_ROOT = Path(__file__).resolve().parents[2]

_READY = "Ready to accept HTTPS connections at "

# argv: <package dir> <host> <port>. Prints the ready line with the actual port (port 0 = pick a free one).
_LAUNCHER = r"""
const path = require("path");
const [pkgDir, host, port] = process.argv.slice(1);
const lib = path.join(pkgDir, "lib");

// A point read of a missing document must answer 404 (the package throws a TypeError and answers 500).
const readDocument = require(path.join(lib, "handler", "read-document"));
const partition = require(path.join(lib, "utils", "get-partition-from-header"));
const original = readDocument.default;
readDocument.default = (account, req, res, params) => {
  const collection = account.database(params.dbId).collection(params.collId);
  const header = partition.default(req);
  if (header && collection.read()) {
    let found = true;
    try {
      const key = partition.parsePartitionKey(header, params.docId);
      found = Boolean(collection.document(params.docId, key).read());
    } catch (err) {
      // Malformed header: leave the answer to the package.
    }
    if (!found) {
      res.statusCode = 404;
      return { code: "NotFound", message: "Entity with the specified id does not exist in the system." };
    }
  }
  return original(account, req, res, params);
};

const { createHttpsServer } = require(lib);
const server = createHttpsServer({ keepAlive: true });
// Longer than any pause between test requests, so the SDK rarely meets a connection closed under it.
server.keepAliveTimeout = 120000;
server.listen(Number(port), host, () => {
  console.log(`Ready to accept HTTPS connections at ${host}:${server.address().port}`);
});
"""


class CosmosServerError(RuntimeError):
    """The local Cosmos server could not be found or started."""


@dataclass(frozen=True)
class CosmosServer:
    """A running local server: where it listens and how long it took to answer."""

    endpoint: str
    key: str
    pid: int
    startup_seconds: float
    log_path: Path

    def environment(self, database: str = "reynolds", container: str = "lineage") -> dict[str, str]:
        """App settings that point Reynolds at this server (names as in ``shared.settings``)."""
        return {
            "LINEAGE_STORE": "cosmos",
            "COSMOS__accountEndpoint": self.endpoint,
            "COSMOS_EMULATOR_KEY": self.key,
            "COSMOS_DATABASE": database,
            "COSMOS_LINEAGE_CONTAINER": container,
        }


def package_dir(root: Path = REPO_ROOT) -> Path:
    """The installed ``@vercel/cosmosdb-server`` package; raise ``CosmosServerError`` saying how to get it."""
    pkg = root / "node_modules" / PACKAGE
    if not (pkg / "lib" / "index.js").is_file():
        raise CosmosServerError(f"{PACKAGE} is not installed under {root / 'node_modules'}: run `npm ci` in {root}")
    return pkg


def _node() -> str:
    node = shutil.which("node")
    if node is None:
        raise CosmosServerError("Node.js (20 or later) is not on PATH; it runs the local Cosmos server")
    return node


def _tail(path: Path, lines: int = 30) -> str:
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return "(no output)"
    return "\n".join(text.splitlines()[-lines:]) or "(no output)"


def _ready_port(log_path: Path) -> int | None:
    with contextlib.suppress(OSError):
        for line in log_path.read_text(encoding="utf-8", errors="replace").splitlines():
            if line.startswith(_READY):
                return int(line.rsplit(":", 1)[1])
    return None


def _answers(host: str, port: int) -> bool:
    # The server's certificate is self-signed and this is a loopback address: no verification here only.
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    conn = http.client.HTTPSConnection(host, port, timeout=2, context=context)
    try:
        conn.request("GET", "/")
        return conn.getresponse().status == 200
    except OSError:
        return False
    finally:
        conn.close()


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is not None:
        return
    # The server runs in its own session: signal the group so nothing it spawned outlives it.
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=5)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=5)


@contextlib.contextmanager
def start_cosmos_server(
    *, host: str = "127.0.0.1", port: int = 0, timeout: float = 30.0, root: Path = REPO_ROOT
) -> Iterator[CosmosServer]:
    """Start the local Cosmos server on a loopback port, wait until it answers, stop it on exit.

    ``port=0`` lets the server take a free port (no race between picking and binding). Raises
    ``CosmosServerError`` with the tail of the server's output when it does not answer within ``timeout``.
    """
    if host not in ("127.0.0.1", "localhost", "::1"):
        raise CosmosServerError("the local Cosmos server listens on loopback only (TLS checks are off for it)")
    pkg = package_dir(root)
    node = _node()
    log_dir = Path(tempfile.mkdtemp(prefix="cosmosdb-server-"))
    log_path = log_dir / "server.log"
    started = time.monotonic()
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            [node, "--eval", _LAUNCHER, str(pkg), host, str(port)],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=root,
            start_new_session=True,
        )
    try:
        bound: int | None = None
        deadline = started + timeout
        while True:
            if proc.poll() is not None:
                raise CosmosServerError(
                    f"the local Cosmos server exited with code {proc.returncode}; its output:\n{_tail(log_path)}"
                )
            bound = bound or _ready_port(log_path)
            if bound is not None and _answers(host, bound):
                break
            if time.monotonic() > deadline:
                raise CosmosServerError(
                    f"the local Cosmos server did not answer within {timeout:.0f} s; its output:\n{_tail(log_path)}"
                )
            time.sleep(0.05)
        netloc = f"[{host}]" if ":" in host else host
        yield CosmosServer(
            endpoint=f"https://{netloc}:{bound}/",
            key=EMULATOR_KEY,
            pid=proc.pid,
            startup_seconds=time.monotonic() - started,
            log_path=log_path,
        )
    finally:
        _stop(proc)
        shutil.rmtree(log_dir, ignore_errors=True)


def main() -> None:
    """Run a server until Ctrl-C and print the settings that point Reynolds at it."""
    with start_cosmos_server() as server:
        print(f"local Cosmos server ready in {server.startup_seconds:.2f} s (pid {server.pid})", flush=True)
        for name, value in server.environment().items():
            print(f"{name}={value}", flush=True)
        with contextlib.suppress(KeyboardInterrupt):
            signal.pause()


if __name__ == "__main__":
    main()
