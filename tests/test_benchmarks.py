"""The benchmark suite runs end to end in quick mode (its plumbing, not its figures), and the
set-up's warm-up command builds through the backends' own path."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from benchmarks.__main__ import BEGIN_MARKER, END_MARKER, splice_into_readme
from benchmarks.common import Pairs, Row

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.timeout(1600)  # the quick run itself may take 1500 s on a loaded 2-core machine (see below)
def test_quick_benchmarks_print_a_ratio_table_json_and_markdown(tmp_path):
    out_json = tmp_path / "bench.json"
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks", "--quick", "--json", str(out_json)],
        cwd=ROOT, capture_output=True, text=True, timeout=1500,
        env={**os.environ, "IPOLYGLOT_CACHE_DIR": os.environ["IPOLYGLOT_CACHE_DIR"]},
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "skipped" not in done.stdout, done.stdout
    data = json.loads(out_json.read_text())
    groups = {row["group"] for row in data["rows"]}
    assert {"go", "cpp", "cross", "worker"} <= groups, groups
    for row in data["rows"]:
        for stats in ("stats", "baseline_stats", "ratio_stats"):
            assert row[stats]["min"] <= row[stats]["median"] <= row[stats]["max"], row
        assert row["baseline_stats"]["median"] > 0 and row["ratio"] > 0, row
        assert row["goal_met"] in ("yes", "no", ""), row
    assert data["baselines"] and all(data["baselines"].values())
    header = next(line for line in done.stdout.splitlines() if line.startswith("| group"))
    assert "ratio" in header and "baseline" in header
    assert done.stdout.count("\n| ") >= len(data["rows"]) + 1
    markdown = out_json.with_suffix(".md").read_text()
    assert "Baselines:" in markdown and markdown.count("\n| ") >= len(data["rows"]) + 1


def test_ratio_is_the_median_of_per_pair_ratios():
    pairs = Pairs(measured=[2.0, 3.0, 10.0], baseline=[1.0, 3.0, 2.0])
    time_row = Row.paired("g", "time", pairs, "b", goal="≤ 2×")
    assert (time_row.ratio_stats.min, time_row.ratio, time_row.ratio_stats.max) == (1.0, 2.0, 5.0)
    assert time_row.verdict == "yes"
    speed_row = Row.paired("g", "speed", pairs, "b", goal="≥ 0.9×", speed=True)
    assert speed_row.ratio == 0.5 and speed_row.verdict == "no"


def test_readme_splice_replaces_only_what_is_between_the_markers(tmp_path):
    readme = tmp_path / "README.md"
    readme.write_text(f"intro\n{BEGIN_MARKER}\nold table\n{END_MARKER}\noutro\n")
    assert splice_into_readme("new table\n", readme)
    assert readme.read_text() == f"intro\n{BEGIN_MARKER}\nnew table\n{END_MARKER}\noutro\n"
    readme.write_text("no markers\n")
    assert not splice_into_readme("new table\n", readme)
    assert readme.read_text() == "no markers\n"


def test_warm_command_builds_a_go_and_a_cpp_cell_with_progress():
    done = subprocess.run(
        [sys.executable, "-m", "ipolyglot.kernel", "warm"],
        cwd=ROOT, capture_output=True, text=True, timeout=900,
        env={**os.environ, "IPOLYGLOT_CACHE_DIR": os.environ["IPOLYGLOT_CACHE_DIR"]},
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "[1/2] warming up Go" in done.stdout and "[2/2] warming up C++" in done.stdout, done.stdout
    assert done.stdout.count("done in") == 2, done.stdout
    assert "the native worker's shared-memory call lane: ready" in done.stdout, done.stdout
