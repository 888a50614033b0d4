"""The benchmark suite runs end to end in quick mode: its plumbing, not its figures."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_quick_benchmarks_print_a_ratio_table_and_json(tmp_path):
    out_json = tmp_path / "bench.json"
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks", "--quick", "--json", str(out_json)],
        cwd=ROOT, capture_output=True, text=True, timeout=900,
        env={**os.environ, "IPOLYGLOT_CACHE_DIR": os.environ["IPOLYGLOT_CACHE_DIR"]},
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "skipped" not in done.stdout, done.stdout
    data = json.loads(out_json.read_text())
    groups = {row["group"] for row in data["rows"]}
    assert {"cross"} <= groups and len(groups) >= 3, groups
    for row in data["rows"]:
        assert row["stats"]["min"] <= row["stats"]["median"] <= row["stats"]["max"], row
        assert row["baseline_stats"]["median"] > 0 and row["ratio"] > 0, row
    header = next(line for line in done.stdout.splitlines() if line.startswith("| group"))
    assert "ratio" in header and "baseline" in header
    assert done.stdout.count("\n| ") >= len(data["rows"]) + 1
