"""``python -m tools.first_run [--write]``: time a new user's first ``make simulate`` on a fresh clone.

Clones this repository's committed HEAD into a temporary folder, runs ``make simulate`` there (it creates the
venv and installs the locked runtime set, reusing the machine's package caches: the "warm cache" case), and
reports the seconds to the first JSON line on stdout (the first result) and to the end. ``--write`` replaces the
"## First run" section of ``docs/benchmarks.md`` (``make bench`` keeps that section when it rewrites the file).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BENCHMARKS = ROOT / "docs" / "benchmarks.md"
SECTION = "## First run"


def measure() -> dict[str, float | int | str]:
    """Clone, run ``make simulate``, time the first stdout line and the end."""
    folder = Path(tempfile.mkdtemp(prefix="reynolds-first-run-"))
    try:
        clone = folder / "clone"
        subprocess.run(["git", "clone", "-q", str(ROOT), str(clone)], check=True)
        start = time.monotonic()
        proc = subprocess.Popen(["make", "simulate"], cwd=clone, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                text=True, env={**os.environ, "MAKEFLAGS": ""})
        assert proc.stdout is not None
        first_line = proc.stdout.readline()
        first = time.monotonic() - start
        rest = proc.stdout.read()
        _err = proc.stderr.read() if proc.stderr else ""
        code = proc.wait()
        total = time.monotonic() - start
        lines = [json.loads(line) for line in (first_line + rest).splitlines() if line.strip()]
        with open("/proc/loadavg", encoding="ascii") as handle:
            load = handle.read().split()[0]
        return {"first_result_s": round(first, 1), "total_s": round(total, 1), "exit": code, "lines": len(lines),
                "load": load, "cpus": os.cpu_count() or 0}
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def section(result: dict[str, float | int | str]) -> str:
    """The markdown section for docs/benchmarks.md."""
    return (f"{SECTION}\n\nMeasured {datetime.now(UTC):%Y-%m-%d} by `python -m tools.first_run --write`: a fresh "
            f"clone, `make simulate`, package caches warm (pip's and uv's), {result['cpus']} cores, load average "
            f"{result['load']} (other work running). First result (the first JSON line on stdout): "
            f"**{result['first_result_s']} s**; all {result['lines']} lines: {result['total_s']} s (goal: first "
            "result ≤ 90 s). The first run creates `.venv` and installs only the app's locked runtime set "
            "(`requirements.txt`, with uv); the dev tools come with `make test`.\n")


def write(result: dict[str, float | int | str]) -> None:
    """Replace (or append) the first-run section of docs/benchmarks.md."""
    text = BENCHMARKS.read_text(encoding="utf-8") if BENCHMARKS.exists() else "# Benchmarks\n"
    pattern = re.compile(rf"^{re.escape(SECTION)}\n.*?(?=^## |\Z)", re.S | re.M)
    new = section(result)
    text = pattern.sub(lambda _m: new + "\n", text) if pattern.search(text) else text.rstrip("\n") + "\n\n" + new
    BENCHMARKS.write_text(text, encoding="utf-8")


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(prog="python -m tools.first_run", description=__doc__.split("\n")[0])
    parser.add_argument("--write", action="store_true", help="update docs/benchmarks.md")
    args = parser.parse_args(argv)
    result = measure()
    print(json.dumps(result))
    if result["exit"] != 0:
        print("first_run: make simulate failed", file=sys.stderr)
        return 1
    if args.write:
        write(result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
