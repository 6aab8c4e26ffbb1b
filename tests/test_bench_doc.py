"""``make bench`` leaves tracked files alone unless asked (``--write`` / ``make bench WRITE=1``), and when asked
writes docs/benchmarks.md between its markers only: the paragraphs people wrote survive every run.

The measurements themselves (minutes against the local Cosmos DB server and the replay harness) are replaced by
fixed stand-ins here: what is under test is where the figures go, not the figures.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tools import bench, bench_doc, bench_fanout

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "benchmarks.md"
#: Hand-written text of the page (outside every block): must be there before and after a write.
HAND_WRITTEN = (
    "This section measured 2026-12-02 (`python -m tools.bench_fanout`",
    "For comparison, the engine's previous pattern (`task_any` refills)",
    "## First run",
)


@pytest.fixture
def repo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A copy of docs/benchmarks.md under a fake repository root; the measurements stubbed."""
    (tmp_path / "docs").mkdir()
    shutil.copy(DOC, tmp_path / "docs" / "benchmarks.md")
    monkeypatch.setattr(bench, "ROOT", tmp_path)
    monkeypatch.setattr(bench, "loop_guard_section",
                        lambda: ["## Loop guard: Cosmos requests and latency per decision", "", "LOOP-FIGURES"])
    monkeypatch.setattr(bench_fanout, "run", lambda scale=True: {"stub": True})
    monkeypatch.setattr(bench_fanout, "markdown", lambda result: "FANOUT-FIGURES\n")
    return tmp_path


def test_the_page_holds_both_blocks_and_the_hand_written_text() -> None:
    text = DOC.read_text(encoding="utf-8")
    assert bench_doc.replace_blocks(text, {"loop-guard": "x", "fan-out": "y"}).count("<!-- bench:") == 4
    assert all(fragment in text for fragment in HAND_WRITTEN)


def test_bench_prints_and_writes_nothing_by_default(repo: Path, capsys: pytest.CaptureFixture[str]) -> None:
    before = (repo / "docs" / "benchmarks.md").read_bytes()
    assert bench.main([]) == 0
    captured = capsys.readouterr()
    assert "LOOP-FIGURES" in captured.out
    assert "FANOUT-FIGURES" in captured.out
    assert "nothing written" in captured.err
    assert (repo / "docs" / "benchmarks.md").read_bytes() == before


def test_write_replaces_only_what_is_between_the_markers(repo: Path) -> None:
    path = repo / "docs" / "benchmarks.md"
    before = path.read_text(encoding="utf-8")
    assert bench.main(["--write"]) == 0
    after = path.read_text(encoding="utf-8")
    assert "LOOP-FIGURES" in after
    assert "FANOUT-FIGURES" in after
    assert all(fragment in after for fragment in HAND_WRITTEN)

    def outside(text: str) -> str:
        return bench_doc.replace_blocks(text, {"loop-guard": "", "fan-out": ""})

    assert outside(after) == outside(before)
    # A second run changes nothing more (the date aside, which is the same day here).
    assert bench.main(["--write"]) == 0
    assert path.read_text(encoding="utf-8") == after


def test_a_missing_marker_stops_the_write_and_names_the_block(repo: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = repo / "docs" / "benchmarks.md"
    damaged = path.read_text(encoding="utf-8").replace(bench_doc.end_marker("fan-out"), "")
    path.write_text(damaged, encoding="utf-8")
    assert bench.main(["--write"]) == 2
    assert "'fan-out'" in capsys.readouterr().err
    assert path.read_text(encoding="utf-8") == damaged  # not even the loop-guard block was written
    with pytest.raises(bench_doc.MarkerError, match="loop-guard"):
        bench_doc.replace_blocks("no markers here", {"loop-guard": "x"})
