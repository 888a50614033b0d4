"""What crossing into Go costs, against baselines measured in the same run.

    python benchmarks/go_calls.py [--quick]

Rows (min / median / max over repeats):
  scalar call      a Go `func Add(a, b float64) float64` vs a raw cffi call into
                   the same C function compiled here            (goal: <= 2x)
  1e7 float64 in   `func Len(xs []float64) int` vs np.copy        (goal: >= 50% of its bandwidth)
  1e7 round trip   `func Echo(xs []float64) []float64` vs two np.copy (goal: >= 40%)
  small build      a cell built with -f vs `go build -buildmode=c-shared` of the
                   hand-written package                           (goal: <= 1.5x)
  cache-hit load   a new session loading the cell from the cache  (goal: <= 50 ms)
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from cffi import FFI

from ipolyglot.go_bridge.backend import GoBackend
from ipolyglot.kernel import toolchains
from ipolyglot.kernel.backend import CellContext
from ipolyglot.kernel.cache import BuildCache
from ipolyglot.kernel.options import make_parser, parse_line

CELL = """\
func Add(a, b float64) float64 { return a + b }
func Len(xs []float64) int { return len(xs) }
func Echo(xs []float64) []float64 { return xs }
"""

HAND_WRITTEN = """\
package main

import "C"
import "unsafe"

//export Add
func Add(a, b C.double) C.double { return a + b }

//export Len
func Len(p *C.double, n C.longlong) C.longlong {
	xs := make([]float64, n)
	copy(xs, unsafe.Slice((*float64)(unsafe.Pointer(p)), n))
	return C.longlong(len(xs))
}

func main() {}
"""

C_SOURCE = "double add(double a, double b) { return a + b; }\n"


class _Feedback:
    outcome = "built"


def _context(cache: BuildCache, label: str = "In [1]") -> CellContext:
    return CellContext(
        cell_label=label, user_ns={}, cache=cache, toolchain=toolchains.find_go,
        verbose=lambda m: None, warn=lambda m: None, building=lambda what: contextlib.nullcontext(_Feedback()),
    )


def _run(backend: GoBackend, cache: BuildCache, line: str = "") -> dict:
    return backend.run_cell(CELL, parse_line(make_parser("go", backend), line), _context(cache)).bind


def _per_call(fn, calls: int, repeats: int) -> list[float]:
    samples = []
    for _ in range(repeats):
        started = time.perf_counter()
        for _ in range(calls):
            fn()
        samples.append((time.perf_counter() - started) / calls)
    return samples


def _timed(fn, repeats: int) -> list[float]:
    samples = []
    for _ in range(repeats):
        started = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - started)
    return samples


def _row(name: str, ours: list[float], base: list[float], unit: str, scale: float, ratio_label: str, invert=False) -> dict:
    ratio = statistics.median(base) / statistics.median(ours) if invert else statistics.median(ours) / statistics.median(base)
    return {
        "benchmark": name, "unit": unit,
        "ours": [min(ours) * scale, statistics.median(ours) * scale, max(ours) * scale],
        "baseline": [min(base) * scale, statistics.median(base) * scale, max(base) * scale],
        "ratio": ratio, "ratio_means": ratio_label,
    }


def run(quick: bool) -> list[dict]:
    repeats = 3 if quick else 7
    rows: list[dict] = []
    work = Path(tempfile.mkdtemp(prefix="ipolyglot-bench-"))
    try:
        cache = BuildCache(work / "cache")
        backend = GoBackend()
        go = _run(backend, cache)

        # Scalar call vs raw cffi into C.
        cc = shutil.which("cc") or shutil.which("gcc")
        subprocess.run([cc, "-O2", "-shared", "-fPIC", "-o", str(work / "libadd.so"), "-x", "c", "-"],
                       input=C_SOURCE, text=True, check=True)
        ffi = FFI()
        ffi.cdef("double add(double a, double b);")
        c_add = ffi.dlopen(str(work / "libadd.so")).add
        go_add = go["Add"]
        calls = 20_000 if quick else 200_000
        rows.append(_row("scalar call", _per_call(lambda: go_add(1.0, 2.0), calls, repeats),
                         _per_call(lambda: c_add(1.0, 2.0), calls, repeats), "ns", 1e9, "Go / raw cffi into C"))

        # Bulk copies.
        xs = np.random.default_rng(0).random(10**7)
        rows.append(_row("1e7 float64 into Go", _timed(lambda: go["Len"](xs), repeats),
                         _timed(lambda: np.copy(xs), repeats), "ms", 1e3, "fraction of np.copy bandwidth", invert=True))
        rows.append(_row("1e7 float64 round trip", _timed(lambda: go["Echo"](xs), repeats),
                         _timed(lambda: (np.copy(xs), np.copy(xs)), repeats), "ms", 1e3,
                         "fraction of two np.copy", invert=True))

        # Build time: our cell (forced rebuild) vs plain go build of the hand-written package.
        tc = toolchains.find_go()
        plain = work / "plain"
        plain.mkdir()
        (plain / "go.mod").write_text("module plain\n\ngo 1.21\n")
        (plain / "main.go").write_text(HAND_WRITTEN)
        env = {**os.environ, **tc.env}

        def plain_build():
            subprocess.run([tc.path, "build", "-buildmode=c-shared", "-o", str(plain / "lib.so"), "."],
                           cwd=plain, env=env, check=True, capture_output=True)

        plain_build()  # warm Go's build cache for both
        build_repeats = 2 if quick else 5
        rows.append(_row("small cell build", _timed(lambda: _run(GoBackend(), cache, "-f"), build_repeats),
                         _timed(plain_build, build_repeats), "s", 1.0, "ours / plain go build"))

        # Cache-hit load in a new session (no go process runs).
        hits = _timed(lambda: _run(GoBackend(), cache), repeats)
        rows.append({"benchmark": "cache-hit load", "unit": "ms",
                     "ours": [min(hits) * 1e3, statistics.median(hits) * 1e3, max(hits) * 1e3],
                     "baseline": [50.0, 50.0, 50.0], "ratio": statistics.median(hits) * 1e3 / 50.0,
                     "ratio_means": "ours / the 50 ms goal"})
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return rows


def print_table(rows: list[dict]) -> None:
    header = f"{'benchmark':<24} {'unit':<4} {'ours min/med/max':>28} {'baseline min/med/max':>28}  ratio"
    print(header)
    print("-" * len(header))
    for r in rows:
        ours = "/".join(f"{v:.3g}" for v in r["ours"])
        base = "/".join(f"{v:.3g}" for v in r["baseline"])
        print(f"{r['benchmark']:<24} {r['unit']:<4} {ours:>28} {base:>28}  {r['ratio']:.2f} ({r['ratio_means']})")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="fewer repeats")
    print_table(run(parser.parse_args().quick))
    sys.exit(0)
