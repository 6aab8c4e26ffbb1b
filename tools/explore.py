"""``python -m tools.explore [--chain ID]... [--out FILE] INPUT...``: the chain explorer page, from a local run.

INPUT is either loop-arena scenarios (``samples/arena/*.json``, run as ``tools.arena`` runs them) or
``tools.simulate`` input files (deliveries, Teams calls, Service Bus messages, tasks); the kind is told by
the file's content. The run is replayed in-process (the same world, clock and store as those tools), then the
page that ``GET /api/chains/{id}?format=html`` answers is written for the chains named with ``--chain`` (the
``chain_id`` of a simulate or arena JSON line), or for every chain of the run, stopped chains first.

The page is one self-contained file (the SVG is drawn here, in Python: no script, no CDN); a page of several
chains starts with a summary table. Exit 0 when the page was written; 2, with the reason on stderr and no page
written, when an input cannot be read, a ``--chain`` is not in the run, or the run
recorded no chain at all (every item refused before the loop guard decided, such as a bad signature).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from shared.chain_view import is_stopped, render_pages
from tools.world import World

DEFAULT_OUT = "chains.html"


def is_scenario(path: str) -> bool:
    """Whether ``path`` holds a loop-arena scenario (a JSON object with ``expect`` and ``start``)."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return False
    return isinstance(data, dict) and "expect" in data and "start" in data


def collect(world: World, wanted: list[str], into: list[dict[str, Any]]) -> None:
    """Read the chains of a finished run from its lineage store (all of them unless ``wanted`` names some)."""
    from tools.arena import chain_ids

    lineage = world.services.lineage
    for chain_id in wanted or chain_ids(world):
        found = lineage.explore(chain_id)
        if found is not None:
            into.append(found)


async def run_inputs(scenarios: list[Any], items: list[dict[str, Any]], wanted: list[str],
                     store: str) -> list[dict[str, Any]]:
    """Replay arena scenarios (each in its own world) and simulate items (one world); gather their chains."""
    from tools.arena import run_scenario
    from tools.simulate import simulate

    chains: list[dict[str, Any]] = []
    for scenario in scenarios:
        print(f"explore: running arena scenario {scenario.name}", file=sys.stderr)
        await run_scenario(scenario, store, inspect=lambda w: collect(w, wanted, chains))
    if items:
        print(f"explore: simulating {len(items)} items", file=sys.stderr)
        # simulate prints its JSON lines on stdout; here they are progress, so they go to stderr.
        real_stdout, sys.stdout = sys.stdout, sys.stderr
        try:
            await simulate(items, store, inspect=lambda w: collect(w, wanted, chains))
        finally:
            sys.stdout = real_stdout
    return chains


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(prog="python -m tools.explore", description=__doc__.split("\n")[0])
    parser.add_argument("--chain", action="append", default=[], metavar="ID",
                        help="a chain id from a simulate or arena JSON line (repeatable; default: every chain)")
    parser.add_argument("--out", default=DEFAULT_OUT, help=f"the page to write (default {DEFAULT_OUT})")
    parser.add_argument("--store", choices=("memory", "cosmos"), default="memory")
    parser.add_argument("inputs", nargs="+", metavar="INPUT")
    args = parser.parse_args(argv)
    for path in args.inputs:
        if not Path(path).is_file():
            print(f"explore: {path}: no such file", file=sys.stderr)
            return 2
    from tools.arena import Scenario
    from tools.harness.cosmos_server import CosmosServerError
    from tools.simulate import InputError, load_items

    try:
        scenarios = [Scenario.model_validate_json(Path(p).read_text(encoding="utf-8"))
                     for p in args.inputs if is_scenario(p)]
        items = load_items([p for p in args.inputs if not is_scenario(p)])
        chains = asyncio.run(run_inputs(scenarios, items, args.chain, args.store))
    except (InputError, ValidationError, CosmosServerError) as exc:
        print(f"explore: {exc}", file=sys.stderr)
        return 2
    missing = sorted(set(args.chain) - {c["chain_id"] for c in chains})
    if missing:
        print(f"explore: no chain {', '.join(missing)} in this run of {', '.join(args.inputs)}; "
              f"run it without --chain to draw every chain it has", file=sys.stderr)
        return 2
    if not chains:
        print(f"explore: the run of {', '.join(args.inputs)} recorded no chain: every item was refused before the "
              "loop guard decided (see the JSON lines above for why); no page written", file=sys.stderr)
        return 2
    title = f"Reynolds · chains of {', '.join(Path(p).name for p in args.inputs)}"
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(render_pages(chains, title=title), encoding="utf-8")
    stopped = sum(1 for c in chains if is_stopped(c))
    noun = "chain" if len(chains) == 1 else "chains"
    print(f"explore: wrote {out} ({len(chains)} {noun}, {stopped} stopped by the loop guard)", file=sys.stderr)
    print(str(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
