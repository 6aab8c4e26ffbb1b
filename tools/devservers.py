"""``python -m tools.devservers``: the local services ``func start`` needs, until Ctrl-C (``make dev``).

Starts Azurite (blob, queue and table: the Functions host and the Durable task hub) from ``node_modules`` and
the local Cosmos DB server on ``https://localhost:8081/`` (the endpoint in ``local.settings.json.example``),
creates the lineage database and container there, and stops both on exit.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

from shared.settings import load_settings
from shared.store.cosmos import ensure_container
from tools.harness.cosmos_server import CosmosServerError, start_cosmos_server

ROOT = Path(__file__).resolve().parents[1]
COSMOS_PORT = int(os.environ.get("REYNOLDS_DEV_COSMOS_PORT", "8081"))


def start_azurite(workdir: Path) -> subprocess.Popen[bytes]:
    """Azurite on its default ports (10000-10002), data in ``workdir``."""
    binary = ROOT / "node_modules" / ".bin" / "azurite"
    if not binary.exists():
        raise SystemExit("Azurite is missing: run `npm ci` first")
    return subprocess.Popen([str(binary), "--silent", "--skipApiVersionCheck", "--location", str(workdir)],
                            cwd=ROOT, start_new_session=True)


def main() -> int:
    """Run both services until interrupted."""
    workdir = Path(tempfile.mkdtemp(prefix="reynolds-azurite-"))
    azurite = start_azurite(workdir)
    try:
        with start_cosmos_server(port=COSMOS_PORT) as server:
            settings = load_settings(server.environment())
            ensure_container(settings)
            print(f"Azurite on 127.0.0.1:10000-10002 (data in {workdir}); Cosmos DB at {server.endpoint} "
                  f"with database {settings.cosmos_database}/{settings.cosmos_container}. Ctrl-C stops both.",
                  flush=True)
            stop = {signal.SIGINT, signal.SIGTERM}
            signal.pthread_sigmask(signal.SIG_BLOCK, stop)  # sigwait needs them blocked, or SIGTERM kills at once
            signal.sigwait(stop)
    except CosmosServerError as exc:
        print(f"devservers: {exc}", file=sys.stderr)
        return 1
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(azurite.pid, signal.SIGTERM)
        try:
            azurite.wait(timeout=5)
        except subprocess.TimeoutExpired:  # Azurite closes its services but may keep its process alive
            with contextlib.suppress(ProcessLookupError):
                os.killpg(azurite.pid, signal.SIGKILL)
            azurite.wait(timeout=5)
    return 0


if __name__ == "__main__":
    sys.exit(main())
