"""What crossing into Go costs, against baselines measured in the same run.

    python -m benchmarks --only go_calls [--quick]     (or: python benchmarks/go_calls.py [--quick])

Rows (min / median / max over repeats, each a ratio to a same-run baseline):
  scalar call        `func Add(a, b float64) float64` vs a raw cffi call into
                     the same C function compiled here                (goal: <= 2x)
  1e7 float64 in     `func Len(xs []float64) int` vs np.copy            (goal: >= 0.5x its bandwidth)
  1e7 round trip     `func Echo(xs []float64) []float64` vs two np.copy (goal: >= 0.4x)
  1 MB string        `func EchoString(s string) string` vs `s.encode().decode()`
                     (the two copies any crossing of a str needs: to UTF-8 bytes and back)
  1e4-entry dict     `func EchoMap(m map[string]int) map[string]int` vs dict(d) and
                     vs copy.deepcopy(d); the same for map[string]float64 (both cross
                     as bulk key/value columns)
  small build        a cell built with -f vs `go build -buildmode=c-shared` of the
                     hand-written package (warm Go build cache)         (goal: <= 1.5x)
  first build        the same cell with a cold GOCACHE (a temporary one) vs the warm build
  cache-hit load     a new session loading the cell from the cache vs the 50 ms goal
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make `benchmarks` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np
from cffi import FFI

from benchmarks.common import Row, Stats, once, per_call, table, throughput
from ipolyglot.go_bridge.backend import GoBackend
from ipolyglot.kernel import toolchains
from ipolyglot.kernel.backend import CellContext
from ipolyglot.kernel.cache import BuildCache
from ipolyglot.kernel.options import make_parser, parse_line

CELL = """\
func Add(a, b float64) float64 { return a + b }
func Len(xs []float64) int { return len(xs) }
func Echo(xs []float64) []float64 { return xs }
func EchoString(s string) string { return s }
func EchoMap(m map[string]int) map[string]int { return m }
func EchoFloatMap(m map[string]float64) map[string]float64 { return m }
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


def _run(backend: GoBackend, cache: BuildCache, line: str = "", cell: str = CELL) -> dict:
    return backend.run_cell(cell, parse_line(make_parser("go", backend), line), _context(cache)).bind


def run(quick: bool) -> list[Row]:
    repeats = 3 if quick else 7
    rows: list[Row] = []
    work = Path(tempfile.mkdtemp(prefix="ipolyglot-bench-"))
    try:
        cache = BuildCache(work / "cache")
        go = _run(GoBackend(), cache)

        # Scalar call vs raw cffi into C.
        cc = shutil.which("cc") or shutil.which("gcc")
        subprocess.run([cc, "-O2", "-shared", "-fPIC", "-o", str(work / "libadd.so"), "-x", "c", "-"],
                       input=C_SOURCE, text=True, check=True)
        ffi = FFI()
        ffi.cdef("double add(double a, double b);")
        c_add = ffi.dlopen(str(work / "libadd.so")).add
        go_add = go["Add"]
        calls = 20_000 if quick else 200_000
        rows.append(Row("go", "scalar call", per_call(lambda: go_add(1.0, 2.0), number=calls, repeat=repeats), "s/call",
                        "raw cffi call into C", per_call(lambda: c_add(1.0, 2.0), number=calls, repeat=repeats), "≤ 2×"))

        # Bulk copies (throughput: higher is better).
        xs = np.random.default_rng(0).random(10**7)
        copy_once = throughput(xs.nbytes, once(lambda: np.copy(xs), repeat=repeats))
        rows.append(Row("go", "1e7 float64 into Go", throughput(xs.nbytes, once(lambda: go["Len"](xs), repeat=repeats)),
                        "GB/s", "np.copy", copy_once, "≥ 0.5×", higher_is_better=True))
        rows.append(Row("go", "1e7 float64 round trip", throughput(2 * xs.nbytes, once(lambda: go["Echo"](xs), repeat=repeats)),
                        "GB/s", "two np.copy", throughput(2 * xs.nbytes, once(lambda: (np.copy(xs), np.copy(xs)), repeat=repeats)),
                        "≥ 0.4×", higher_is_better=True))

        # Strings and dicts.
        text = "ünïcode " * (2**20 // 9)
        rows.append(Row("go", "1 MB string round trip", once(lambda: go["EchoString"](text), repeat=repeats), "s",
                        "s.encode().decode()", once(lambda: text.encode().decode(), repeat=repeats)))
        mapping = {f"key{i}": i for i in range(10**4)}
        echo_map = once(lambda: go["EchoMap"](mapping), repeat=repeats)
        rows.append(Row("go", "1e4-entry dict round trip", echo_map, "s", "dict(d)", once(lambda: dict(mapping), repeat=repeats)))
        rows.append(Row("go", "1e4-entry dict round trip", echo_map, "s", "copy.deepcopy(d)",
                        once(lambda: copy.deepcopy(mapping), repeat=repeats)))
        floats = {f"key{i}": i * 0.5 for i in range(10**4)}
        rows.append(Row("go", "1e4-entry map[string]float64 round trip", once(lambda: go["EchoFloatMap"](floats), repeat=repeats),
                        "s", "dict(d)", once(lambda: dict(floats), repeat=repeats)))

        # Build time of a small new cell vs plain go build of the equivalent hand-written
        # package. Each repetition edits both (a comment), so neither is a no-op relink of
        # sources Go has already compiled: the standard library is warm, the code is new.
        tc = toolchains.find_go()
        plain = work / "plain"
        plain.mkdir()
        (plain / "go.mod").write_text("module plain\n\ngo 1.21\n")
        env = {**os.environ, **tc.env}
        edits = iter(range(10**6))

        def plain_build():
            (plain / "main.go").write_text(HAND_WRITTEN + f"\n// edit {next(edits)}\n")
            subprocess.run([tc.path, "build", "-buildmode=c-shared", "-o", str(plain / "lib.so"), "."],
                           cwd=plain, env=env, check=True, capture_output=True)

        def cell_build():
            _run(GoBackend(), cache, "", CELL + f"\n// edit {next(edits)}\n")

        plain_build()  # warm Go's build cache for both
        cell_build()
        build_repeats = 2 if quick else 5
        warm = once(cell_build, repeat=build_repeats)
        rows.append(Row("go", "small new cell build (warm GOCACHE)", warm, "s", "plain go build -buildmode=c-shared",
                        once(plain_build, repeat=build_repeats), "≤ 1.5×"))

        # First build ever: a cold GOCACHE (the runtime and standard library compile too).
        def cold_build():
            gocache = Path(tempfile.mkdtemp(prefix="gocache-", dir=work))
            saved = os.environ.get("GOCACHE")
            os.environ["GOCACHE"] = str(gocache)
            try:
                _run(GoBackend(), BuildCache(Path(tempfile.mkdtemp(prefix="cache-", dir=work))), "-f")
            finally:
                if saved is None:
                    os.environ.pop("GOCACHE", None)
                else:
                    os.environ["GOCACHE"] = saved
                shutil.rmtree(gocache, ignore_errors=True)

        if not quick:  # ~1 minute of compiling Go's runtime: figures only, no plumbing it alone tests
            rows.append(Row("go", "first cell build (cold GOCACHE)", once(cold_build, repeat=1), "s",
                            "the same build, warm GOCACHE", warm))

        # Cache-hit load in a new session (no go process runs).
        rows.append(Row("go", "cache-hit load", once(lambda: _run(GoBackend(), cache), repeat=repeats), "s",
                        "the 50 ms goal", Stats(0.05, 0.05, 0.05), "≤ 1×"))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return rows


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="fewer repeats")
    print(table(run(parser.parse_args().quick)))
    sys.exit(0)
