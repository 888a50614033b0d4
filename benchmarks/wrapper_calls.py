"""What the traveling wrapper (kernel/core/travel.py's NativeFunction) costs a scalar call.

    python -m benchmarks.wrapper_calls [--quick]

Every bound Go or C++ function is a NativeFunction (a functools.partial
subclass carrying `aio`, the annotated signature, the repr and pickling by
build reference). Each row pairs one way of binding `add(1.0, 2.0)` with the
scalar-call baseline of go_calls / cpp_calls, interleaved, and reports the
median of per-pair ratios and the ratio of the fastest samples (the one less
disturbed by a busy machine):

  before       a NativeFunction subclass without the vectorcall flag: what every
               call paid on CPython 3.11 before the flag was restored
  now          NativeFunction as bound (vectorcall)
  unwrapped    the callable it wraps (Go's compiled caller, go_bridge/fastcall.py; C++'s
               pybind11 builtin): the floor of any wrapper, without aio/signature/repr/pickling
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make `benchmarks` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks import cpp_calls, go_calls
from benchmarks.common import Pairs, interleaved
from ipolyglot.go_bridge.backend import GoBackend
from ipolyglot.kernel.core.cache import BuildCache
from ipolyglot.kernel.core.travel import NativeFunction

HAVE_VECTORCALL = 1 << 11


class WithoutVectorcall(NativeFunction):
    """A Python subclass: CPython 3.11 gives it partial's tuple path, as NativeFunction had."""


def _figures(pairs: Pairs) -> str:
    ratios = [m / b for m, b in zip(pairs.measured, pairs.baseline)]
    fastest = min(pairs.measured) / min(pairs.baseline)
    return (f"{statistics.median(ratios):.2f}× [{min(ratios):.2f}–{max(ratios):.2f}], fastest samples {fastest:.2f}× "
            f"({min(pairs.measured) * 1e9:.0f} ns vs {min(pairs.baseline) * 1e9:.0f} ns)")


def _rows(label: str, bound: NativeFunction, baseline, pairs: int, number: int) -> list[str]:
    before = WithoutVectorcall(bound.func, bound._build, bound._name)
    shapes = [("before", before), ("now", bound), ("unwrapped", bound.func)]
    rows = [f"{label} {shape:10s} {_figures(interleaved(lambda f=f: f(1.0, 2.0), baseline, pairs=pairs, number=number))}"
            for shape, f in shapes]
    rows.append(f"{label} now/before {_figures(interleaved(lambda: bound(1.0, 2.0), lambda: before(1.0, 2.0), pairs=pairs, number=number))}")
    return rows


def run(quick: bool) -> list[str]:
    pairs, number = (31, 2_000) if quick else (201, 5_000)
    rows = [f"NativeFunction has vectorcall: {bool(NativeFunction.__flags__ & HAVE_VECTORCALL)}; "
            f"Python {sys.version.split()[0]}"]
    with tempfile.TemporaryDirectory(prefix="ipolyglot-bench-") as tmp:
        work = Path(tmp)
        go = go_calls._run(GoBackend(), BuildCache(work / "cache"))
        in_wrapper = go_calls._c_add_in_go_wrapper(go_calls._compile_c_add(work))
        rows += _rows("go  Add vs cffi into C, same wrapper:", go["Add"], lambda: in_wrapper(1.0, 2.0), pairs, number)
        cpp = cpp_calls.Session(work / "cpp-cache").run(cpp_calls.CELL)
        hand = cpp_calls._build_hand_written(work)
        rows += _rows("cpp add vs hand-written pybind11, GIL released:", cpp["add"], lambda: hand.add_nogil(1.0, 2.0), pairs, number)
    return rows


if __name__ == "__main__":
    cli = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    cli.add_argument("--quick", action="store_true", help="fewer repetitions")
    print("\n".join(run(cli.parse_args().quick)))
