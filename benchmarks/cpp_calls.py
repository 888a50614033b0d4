"""What %%cpp costs, against baselines measured in the same run.

* per call: an ipolyglot-bound function vs the same function in a hand-written
  pybind11 module compiled here at -O2 (with and without releasing the GIL);
* bulk copy: 10^7 float64 crossing into C++ vs numpy.copy of the same array;
* builds: a brand-new cell, a body-only edit, with and without the
  precompiled header, a cache hit in a fresh process, vs Cython building and
  rebuilding the same function (cythonize + build_ext).

Prints a table (min / median / max, ratio of medians and the bar) and exposes
run(quick) -> list[dict]. Builds go to a private temporary cache.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import subprocess
import sys
import sysconfig
import tempfile
import textwrap
import time
import timeit
import uuid
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make `benchmarks` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np

from benchmarks.common import Row, Stats, table

HAND_WRITTEN = r'''
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>
#include <vector>
namespace py = pybind11;
static double add(double a, double b) { return a + b; }
static double total(const std::vector<double>& xs) { double s = 0; for (double x : xs) s += x; return s; }
PYBIND11_MODULE(bench_hand, m) {
    m.def("add", &add);
    m.def("add_nogil", &add, py::call_guard<py::gil_scoped_release>());
    m.def("total", &total);
}
'''

CELL = r'''
#include <vector>
double add(double a, double b) { return a + b; }
double total(const std::vector<double>& xs) { double s = 0; for (double x : xs) s += x; return s; }
std::size_t length(const std::vector<double>& xs) { return xs.size(); }
'''

SMALL_CPP = "double {name}(double x) {{ return {k} * x * x + 1.0; }}\n"
SMALL_PYX = "def {name}(double x):\n    return {k} * x * x + 1.0\n"


def _row(measure: str, ours: list[float], base: list[float] | Stats, baseline: str, goal: str, unit: str) -> Row:
    """A figure against its same-run baseline samples, or against a fixed goal given as Stats."""
    return Row("cpp", measure, Stats.of(ours), unit, baseline, base if isinstance(base, Stats) else Stats.of(base), goal)


# -- an in-process %%cpp session -------------------------------------------------
class Session:
    def __init__(self, cache_dir: Path):
        from ipolyglot.cpp_ext.backend import CppBackend
        from ipolyglot.kernel.cache import BuildCache
        from ipolyglot.kernel.options import make_parser

        self.backend = CppBackend()
        self.cache = BuildCache(cache_dir)
        self.parser = make_parser("cpp", self.backend)
        self.count = 0

    def run(self, cell: str, line: str = "-q") -> dict:
        """Run one cell body (the text after the %%cpp line); returns the names it bound."""
        from ipolyglot.kernel.backend import CellContext
        from ipolyglot.kernel.options import parse_line
        from ipolyglot.kernel.toolchains import find_cxx

        @contextlib.contextmanager
        def building(_description):
            yield type("Feedback", (), {"outcome": None})()

        self.count += 1
        ctx = CellContext(
            cell_label=f"In [{self.count}]", user_ns={}, cache=self.cache, toolchain=find_cxx,
            verbose=lambda _m: None, warn=lambda _m: None, building=building,
        )
        result = self.backend.run_cell(cell, parse_line(self.parser, line), ctx)
        return result.bind


def _timed(fn, repeat: int) -> list[float]:
    out = []
    for _ in range(repeat):
        started = time.perf_counter()
        fn()
        out.append(time.perf_counter() - started)
    return out


def _per_call(fn, args, number: int, repeat: int) -> list[float]:
    return [t / number for t in timeit.repeat(lambda: fn(*args), number=number, repeat=repeat)]


def _paired(ours, base, args, number: int, repeat: int) -> tuple[list[float], list[float]]:
    """Alternate the two measurements, so load from other work on the machine hits both alike."""
    a, b = [], []
    for _ in range(repeat):
        a += _per_call(ours, args, number, 1)
        b += _per_call(base, args, number, 1)
    return a, b


def _build_hand_written(workdir: Path):
    import importlib.util

    import pybind11

    src = workdir / "bench_hand.cpp"
    src.write_text(HAND_WRITTEN)
    target = workdir / f"bench_hand{sysconfig.get_config_var('EXT_SUFFIX')}"
    cmd = ["g++", "-O2", "-std=c++17", "-shared", "-fPIC", "-fvisibility=hidden", "-I", pybind11.get_include(), "-I", sysconfig.get_paths()["include"], str(src), "-o", str(target)]
    started = time.perf_counter()
    subprocess.run(cmd, check=True)
    elapsed = time.perf_counter() - started
    spec = importlib.util.spec_from_file_location("bench_hand", target)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module, elapsed


def _cython_build(workdir: Path, name: str, source: str) -> float:
    """cythonize + build_ext of one .pyx, in a subprocess (as %%cython would)."""
    pyx = workdir / f"{name}.pyx"
    pyx.write_text(source)
    script = textwrap.dedent(f"""
        import sys
        from Cython.Build import cythonize
        from setuptools import Extension
        from setuptools.dist import Distribution
        from setuptools.command.build_ext import build_ext
        exts = cythonize([Extension({name!r}, [{str(pyx)!r}])], quiet=True, force=True)
        dist = Distribution({{"ext_modules": exts}})
        cmd = build_ext(dist); cmd.inplace = True; cmd.ensure_finalized(); cmd.run()
    """)
    started = time.perf_counter()
    subprocess.run([sys.executable, "-c", script], cwd=workdir, check=True, capture_output=True)
    return time.perf_counter() - started


def _cache_hit_in_fresh_process(cache_dir: Path, cell: str) -> float:
    script = textwrap.dedent(f"""
        import sys, time
        sys.path.insert(0, {str(Path(__file__).resolve().parent)!r})
        from cpp_calls import Session
        from pathlib import Path
        import ipolyglot.cpp_ext.backend  # imports are not part of a cell's cost
        s = Session(Path({str(cache_dir)!r}))
        started = time.perf_counter()
        s.run({cell!r})
        print(time.perf_counter() - started)
    """)
    done = subprocess.run([sys.executable, "-c", script], check=True, capture_output=True, text=True)
    return float(done.stdout.strip().splitlines()[-1])


def run(quick: bool) -> list[Row]:
    repeat = 2 if quick else 3
    rows: list[Row] = []
    with tempfile.TemporaryDirectory(prefix="ipolyglot-bench-") as tmp:
        tmp = Path(tmp)
        os.environ["IPOLYGLOT_CACHE_DIR"] = str(tmp / "cache")
        session = Session(tmp / "cache")

        # Builds first: the first one also builds the precompiled header.
        nonce = uuid.uuid4().hex[:6]
        cold = _timed(lambda: session.run(SMALL_CPP.format(name=f"cold_{nonce}", k=1)), 1)
        new_cell, edit, no_pch = [], [], []
        for i in range(repeat):
            name = f"fresh_{nonce}_{i}"
            new_cell += _timed(lambda: session.run(SMALL_CPP.format(name=name, k=1)), 1)
            edit += _timed(lambda: session.run(SMALL_CPP.format(name=name, k=i + 2)), 1)
        os.environ["IPOLYGLOT_CPP_NO_PCH"] = "1"
        try:
            for i in range(max(1, repeat - 1)):
                no_pch += _timed(lambda: session.run(SMALL_CPP.format(name=f"nopch_{nonce}_{i}", k=1)), 1)
        finally:
            del os.environ["IPOLYGLOT_CPP_NO_PCH"]
        hit_cell = SMALL_CPP.format(name=f"hit_{nonce}", k=2)
        _cache_hit_in_fresh_process(tmp / "cache", hit_cell)  # builds it
        hits = [_cache_hit_in_fresh_process(tmp / "cache", hit_cell) for _ in range(repeat)]

        cy_dir = tmp / "cython"
        cy_dir.mkdir()
        cy_first, cy_edit = [], []
        for i in range(repeat):
            name = f"cy_{nonce}_{i}"
            cy_first.append(_cython_build(cy_dir, name, SMALL_PYX.format(name=name, k=1)))
            cy_edit.append(_cython_build(cy_dir, name, SMALL_PYX.format(name=name, k=i + 2)))

        rows.append(_row("build: brand-new cell", new_cell, cy_first, "Cython first build", "≤ 3×", "s"))
        rows.append(_row("build: body-only edit", edit, cy_edit, "Cython rebuild after edit", "≤ 1.5×", "s"))
        rows.append(_row("build: new cell without PCH", no_pch, new_cell, "new cell with PCH", "(PCH saving)", "s"))
        rows.append(_row("build: first ever (incl. PCH)", cold, cy_first, "Cython first build", "(once per machine)", "s"))
        rows.append(_row("build: cache hit, fresh process", hits, Stats(0.05, 0.05, 0.05), "the 50 ms goal", "≤ 1×", "s"))

        # Calls.
        bound = session.run(CELL)
        kept = session.run("double add_kept(double a, double b) { return a + b; }\n", "-q --keep-gil")
        hand, hand_build = _build_hand_written(tmp)
        rows.append(_row("build: hand-written pybind11 module -O2", [hand_build], cy_first, "Cython first build", "(reference)", "s"))
        number = 20000 if quick else 100000
        calls = 5 if quick else 7
        pair = (1.0, 2.0)
        rows.append(_row("call: add(1.0, 2.0)", *_paired(bound["add"], hand.add, pair, number, calls), "hand-written pybind11", "≤ 1.3×", "s/call"))
        rows.append(_row("call: add(1.0, 2.0)", *_paired(bound["add"], hand.add_nogil, pair, number, calls), "hand-written, GIL released too", "≤ 1.3×", "s/call"))
        rows.append(_row("call: add(1.0, 2.0) with --keep-gil", *_paired(kept["add_kept"], hand.add, pair, number, calls), "hand-written pybind11", "≤ 1.3×", "s/call"))
        small = np.arange(100.0)
        rows.append(_row("call: total(100 float64)", *_paired(bound["total"], hand.total, (small,), number // 4, calls), "hand-written pybind11 (list caster)", "≤ 1.3×", "s/call"))

        big = np.random.default_rng(0).random(10_000_000)
        copies = 5 if quick else 9
        into_cpp, np_copy = _paired(bound["length"], np.copy, (big,), 1, copies)
        row = _row("bulk: 10^7 float64 into C++", into_cpp, np_copy, "np.copy", "≤ 2× (≥ 50% of np.copy bandwidth)", "s")
        row.extra["GB/s"] = big.nbytes / row.stats.median / 1e9
        rows.append(row)
    return rows


if __name__ == "__main__":
    cli = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    cli.add_argument("--quick", action="store_true", help="fewer repetitions")
    print(table(run(cli.parse_args().quick)))
