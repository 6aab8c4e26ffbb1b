"""``python -m tools.bench --scale``: its output lines, and what each figure counts, on the local Cosmos server."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from shared.errors import PreconditionFailed
from shared.store.cosmos import CosmosStore
from tools.bench import ScaleCounter, parse_scale, scale_floor, scale_run

ROOT = Path(__file__).resolve().parents[1]
LINE_KEYS = {"layout", "chains", "decisions_effects_per_s", "lost_races_per_effect", "evidence_writes_given_up",
             "requests_per_decision"}

pytestmark = pytest.mark.integration


def test_many_organisations_share_no_document_so_no_race_is_lost(cosmos_store: CosmosStore) -> None:
    line, latencies = scale_run(cosmos_store, "many-orgs", 6, cycles=2, sample=4)
    assert set(line) == LINE_KEYS
    assert line["layout"] == "many-orgs"
    assert line["chains"] == 6
    assert line["lost_races_per_effect"] == 0
    assert line["evidence_writes_given_up"] == 0
    assert line["decisions_effects_per_s"] > 0
    # A decision reads and writes the store: counted from the SDK's HTTP requests, never zero.
    assert 1 <= line["requests_per_decision"] <= 10
    assert len(latencies) == 4


def test_one_organisation_counts_the_races_its_chains_lose(cosmos_store: CosmosStore) -> None:
    line, _ = scale_run(cosmos_store, "one-org", 12, cycles=2, sample=2)
    assert line["layout"] == "one-org"
    assert line["lost_races_per_effect"] >= 0
    assert isinstance(line["evidence_writes_given_up"], int)


def test_the_counter_counts_a_refused_conditional_write(cosmos_store: CosmosStore) -> None:
    counter = ScaleCounter(cosmos_store)
    counter.create({"id": "doc", "pk": "doc", "n": 0})
    stale = cosmos_store.read("doc", "doc")["_etag"]
    counter.replace({"id": "doc", "pk": "doc", "n": 1}, stale)
    with pytest.raises(PreconditionFailed):
        counter.replace({"id": "doc", "pk": "doc", "n": 2}, stale)  # Cosmos answers 412: someone wrote first
    assert counter.lost == 1
    assert counter.read("doc", "doc")["n"] == 1


def test_the_floor_is_a_read_and_a_conditional_write(cosmos_store: CosmosStore) -> None:
    cosmos_store.create({"id": "warm", "pk": "warm"})  # the client's first data call also reads the container
    before = cosmos_store.requests
    latencies = scale_floor(cosmos_store, samples=5)
    assert len(latencies) == 5
    assert cosmos_store.requests - before == 1 + 5 * 2  # the create, then a read and a replace each


def test_arguments() -> None:
    assert parse_scale(["--scale"]) == ([100, 300], 3)
    assert parse_scale(["--scale", "--chains", "5", "7", "--cycles", "1"]) == ([5, 7], 1)
    with pytest.raises(SystemExit):
        parse_scale(["--scale", "--chains", "0"])


def test_cli_prints_one_line_per_layout_and_chain_count_then_the_latency() -> None:
    proc = subprocess.run([sys.executable, "-m", "tools.bench", "--scale", "--chains", "3", "--cycles", "1"],
                          cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    lines = [json.loads(line) for line in proc.stdout.splitlines()]
    assert [(line.get("layout"), line.get("chains")) for line in lines[:2]] == [("one-org", 3), ("many-orgs", 3)]
    assert all(set(line) == LINE_KEYS for line in lines[:2])
    assert set(lines[2]) == {"latency"}
    assert set(lines[2]["latency"]) == {"p50_ms", "floor_p50_ms"}
    assert len(lines) == 3
