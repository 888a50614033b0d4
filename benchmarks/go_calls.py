"""What crossing into Go costs, against baselines measured in the same process, interleaved.

    python -m benchmarks --only go_calls [--quick]

Rows (median of per-pair ratios [min–max], each pair a measured run next to a baseline run):
  scalar call        `func Add(a, b float64) float64` vs the same C function through cffi,
                     called from the Python wrapper ipolyglot generates where its compiled
                     caller cannot be built (goal <= 1.2x), vs the bare cffi function object,
                     and vs C's `add` behind ipolyglot's own compiled caller (only the cgo
                     crossing differs)
  1e7 float64 in     `func Len(xs []float64) int` vs np.copy (speed, goal >= 0.5x)
  1e7 round trip     `func Echo(xs []float64) []float64` vs two np.copy (speed, goal >= 0.5x)
  1 MB string        `func EchoString(s string) string` vs `s.encode().decode()`
  1e4-entry dicts    map[string]int / map[string]float64 round trips vs dict(d), copy.deepcopy(d)
  small build        an edited cell vs `go build -buildmode=c-shared` of the same edit of a
                     hand-written package (warm Go build cache; goal <= 1.5x)
  cache-hit load     a new session loading the cell from the cache vs the 50 ms goal
  first Go cell      (full runs only) a fresh kernel process with a cold GOCACHE, without and
                     after `python -m ipolyglot.kernel warm`, vs the 10 s goal
"""

from __future__ import annotations

import argparse
import copy
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make `benchmarks` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np
from cffi import FFI

from benchmarks.common import Pairs, Row, against_fixed, interleaved, run_in_process, table
from ipolyglot.go_bridge import fastcall
from ipolyglot.go_bridge.backend import GoBackend
from ipolyglot.go_bridge.templating import TEMPLATES
from ipolyglot.kernel.core.cache import BuildCache
from ipolyglot.kernel.core.travel import NativeFunction

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

C_SOURCE = """\
#include <stdint.h>
#include <string.h>
double add(double a, double b) { return a + b; }
uint64_t add_slots(uint64_t *slots) {  /* add behind the calling convention of Go's slot entry points */
    double a, b, r;
    memcpy(&a, &slots[0], 8);
    memcpy(&b, &slots[1], 8);
    r = a + b;
    uint64_t out;
    memcpy(&out, &r, 8);
    return out;
}
"""


def _run(backend: GoBackend, cache: BuildCache, line: str = "", cell: str = CELL) -> dict:
    return run_in_process(backend, cache, cell, line)


BASELINES = {
    "cffi into C, same wrapper": "the same `add` written in C, compiled here with cc -O2, called through cffi's "
                                 "ABI mode from a Python function generated from ipolyglot's own fast-call template "
                                 "(argument fallback and pending-callback check included), the way ipolyglot calls Go "
                                 "where its compiled caller cannot be built",
    "bare cffi into C": "the same C `add` called as the cffi function object itself, no Python wrapper",
    "C behind the same compiled caller": "the same C `add`, behind the calling convention of Go's slot entry points, "
                                         "called through ipolyglot's compiled caller (go_bridge/fastcall.py): only "
                                         "the C→Go crossing differs",
    "np.copy": "numpy.copy of the same 10^7 float64 array (one memcpy-speed copy)",
    "plain go build": "`go build -buildmode=c-shared` of a hand-written cgo package exporting the same functions, "
                      "edited the same way each repetition (warm Go build cache)",
}

FIRST_CELL_SCRIPT = """\
import sys, time
from benchmarks.common import interactive_shell, run_cell
shell = interactive_shell()
started = time.perf_counter()
run_cell(shell, "%%go -q\\nfunc FirstCell(x int) int { return 2 * x }\\n")
print(time.perf_counter() - started)
"""
ROOT = Path(__file__).resolve().parent.parent
FIRST_CELL_GOAL_SECONDS = 10.0


def _c_add_in_go_wrapper(c_add):
    """cffi's C `add` inside the wrapper ipolyglot generates for a scalar Go function (library.WrapperParameters' form)."""
    namespace = {"__name__": __name__, "_MISSING": object(), "_fast": c_add, "_slow": lambda a: c_add(*a),
                 "_pending": [0], "_check": lambda: None}
    exec(compile(TEMPLATES.render("fast_wrapper.py.tmpl", name="add", params="a=_MISSING, b=_MISSING, *_extra", args="a, b", args_tuple="(a, b, *_extra,)"),
                 "<cffi add>", "exec"), namespace)  # noqa: S102 - ipolyglot's own template
    return namespace["add"]


_LOADED: list = []


def _compile_c_add(work: Path):
    return _c_library(work).add


def _c_library(work: Path):
    path = work / "libadd.so"
    if not path.exists():
        cc = shutil.which("cc") or shutil.which("gcc")
        subprocess.run([cc, "-O2", "-shared", "-fPIC", "-o", str(path), "-x", "c", "-"], input=C_SOURCE, text=True, check=True)
    ffi = FFI()
    ffi.cdef("double add(double a, double b); uint64_t add_slots(uint64_t *slots);")
    library = ffi.dlopen(str(path))
    _LOADED.append((ffi, library))  # a collected FFI closes the library under its functions (a segfault)
    return library


def _c_add_in_compiled_caller(work: Path, cache: BuildCache):
    """C's `add` behind ipolyglot's compiled caller, as a scalar Go function is called."""
    fast_call = fastcall.load(cache)
    if fast_call is None:
        return None
    library = _c_library(work)
    entry = int(FFI().cast("uintptr_t", library.add_slots))
    pending = FFI().new("int32_t *")
    _LOADED.append(pending)
    add = fast_call(entry, "dd", "d", int(FFI().cast("uintptr_t", pending)), lambda a, b: a + b, lambda: False)
    return NativeFunction(add, name="add", language="go")


def _first_cell_seconds(work: Path, warm_first: bool) -> tuple[float, float]:
    """(seconds of the first Go cell in a fresh process with a cold GOCACHE, seconds of the set-up warm-up)."""
    scratch = Path(tempfile.mkdtemp(prefix="first-cell-", dir=work))
    env = {**os.environ, "GOCACHE": str(scratch / "gocache"), "IPOLYGLOT_CACHE_DIR": str(scratch / "cache"),
           "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH", "")]))}
    warm_seconds = 0.0
    try:
        if warm_first:
            started = time.perf_counter()
            subprocess.run([sys.executable, "-m", "ipolyglot.kernel", "warm", "--go"], env=env, check=True,
                           capture_output=True)
            warm_seconds = time.perf_counter() - started
        done = subprocess.run([sys.executable, "-c", FIRST_CELL_SCRIPT], env=env, cwd=ROOT, check=True,
                              capture_output=True, text=True)
        return float(done.stdout.strip().splitlines()[-1]), warm_seconds
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def _first_cell_rows() -> list[Row]:
    work = Path(tempfile.mkdtemp(prefix="ipolyglot-bench-"))
    try:
        cold, _ = _first_cell_seconds(work, warm_first=False)
        after, warm = _first_cell_seconds(work, warm_first=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    goal = "the 10 s goal"
    return [
        Row.paired("go", "first Go cell, cold GOCACHE, no set-up", Pairs([cold], [FIRST_CELL_GOAL_SECONDS]), goal),
        Row.paired("go", "set-up: `python -m ipolyglot.kernel warm --go` (once per machine)",
                   Pairs([warm], [FIRST_CELL_GOAL_SECONDS]), goal),
        Row.paired("go", "first Go cell after set-up", Pairs([after], [FIRST_CELL_GOAL_SECONDS]), goal, goal="≤ 1×"),
    ]


def run(quick: bool) -> list[Row]:
    pairs = 5 if quick else 15
    rows: list[Row] = []
    work = Path(tempfile.mkdtemp(prefix="ipolyglot-bench-"))
    try:
        cache = BuildCache(work / "cache")
        go = _run(GoBackend(), cache)

        c_add = _compile_c_add(work)
        wrapped_c_add = _c_add_in_go_wrapper(c_add)
        go_add = go["Add"]
        assert go_add(1.0, 2.0) == wrapped_c_add(1.0, 2.0) == c_add(1.0, 2.0) == 3.0
        calls = 20_000 if quick else 100_000
        rows.append(Row.paired("go", "scalar call Add(1.0, 2.0)",
                               interleaved(lambda: go_add(1.0, 2.0), lambda: wrapped_c_add(1.0, 2.0), pairs=pairs, number=calls),
                               "cffi into C, same wrapper", unit="s/call", goal="≤ 1.2×"))
        rows.append(Row.paired("go", "scalar call Add(1.0, 2.0)",
                               interleaved(lambda: go_add(1.0, 2.0), lambda: c_add(1.0, 2.0), pairs=pairs, number=calls),
                               "bare cffi into C", unit="s/call"))
        c_add_compiled = _c_add_in_compiled_caller(work, cache)
        if c_add_compiled is not None:
            assert c_add_compiled(1.0, 2.0) == 3.0
            rows.append(Row.paired("go", "scalar call Add(1.0, 2.0)",
                                   interleaved(lambda: go_add(1.0, 2.0), lambda: c_add_compiled(1.0, 2.0), pairs=pairs, number=calls),
                                   "C behind the same compiled caller", unit="s/call"))

        xs = np.random.default_rng(0).random(10**7)
        rows.append(Row.paired("go", "10^7 float64 into Go", interleaved(lambda: go["Len"](xs), lambda: np.copy(xs), pairs=pairs),
                               "np.copy", goal="≥ 0.5×", speed=True))
        rows.append(Row.paired("go", "10^7 float64 round trip",
                               interleaved(lambda: go["Echo"](xs), lambda: (np.copy(xs), np.copy(xs)), pairs=pairs),
                               "two np.copy", goal="≥ 0.5×", speed=True))

        text = "ünïcode " * (2**20 // 9)
        rows.append(Row.paired("go", "1 MB string round trip",
                               interleaved(lambda: go["EchoString"](text), lambda: text.encode().decode(), pairs=pairs),
                               "s.encode().decode()"))
        mapping = {f"key{i}": i for i in range(10**4)}
        rows.append(Row.paired("go", "10^4-entry map[string]int round trip",
                               interleaved(lambda: go["EchoMap"](mapping), lambda: dict(mapping), pairs=pairs), "dict(d)"))
        rows.append(Row.paired("go", "10^4-entry map[string]int round trip",
                               interleaved(lambda: go["EchoMap"](mapping), lambda: copy.deepcopy(mapping), pairs=pairs),
                               "copy.deepcopy(d)"))
        floats = {f"key{i}": i * 0.5 for i in range(10**4)}
        rows.append(Row.paired("go", "10^4-entry map[string]float64 round trip",
                               interleaved(lambda: go["EchoFloatMap"](floats), lambda: dict(floats), pairs=pairs), "dict(d)"))

        rows.append(_build_row(work, cache, pairs=2 if quick else 5))
        rows.append(Row.paired("go", "cache-hit load, new session",
                               against_fixed(lambda: _run(GoBackend(), cache), 0.05, repeat=pairs), "the 50 ms goal", goal="≤ 1×"))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    if not quick:  # a cold Go build cache compiles Go's runtime: minutes of figures, no plumbing of their own
        rows.extend(_first_cell_rows())
    return rows


def _build_row(work: Path, cache: BuildCache, pairs: int) -> Row:
    """A small edited cell vs plain go build of the same edit of the hand-written package.

    Each repetition edits both (a comment), so neither is a no-op relink: the
    standard library is warm in Go's build cache, the code is new.
    """
    tc = GoBackend.find_toolchain()
    plain = work / "plain"
    plain.mkdir()
    (plain / "go.mod").write_text("module plain\n\ngo 1.22\n")
    env = {**os.environ, **tc.env, "CGO_ENABLED": "1"}
    edits = iter(range(10**6))

    def plain_build():
        (plain / "main.go").write_text(HAND_WRITTEN + f"\n// edit {next(edits)}\n")
        subprocess.run([tc.path, "build", "-buildmode=c-shared", "-trimpath", "-ldflags=-s -w", "-o", str(plain / "lib.so"), "."],
                       cwd=plain, env=env, check=True, capture_output=True)

    def cell_build():
        _run(GoBackend(), cache, "", CELL + f"\n// edit {next(edits)}\n")

    return Row.paired("go", "small new cell build (warm GOCACHE)", interleaved(cell_build, plain_build, pairs=pairs),
                      "plain go build", goal="≤ 1.5×")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="fewer repeats")
    print(table(run(parser.parse_args().quick)))
    sys.exit(0)
