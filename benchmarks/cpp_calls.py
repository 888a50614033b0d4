"""What %%cpp costs, against baselines measured in the same process, interleaved.

    python -m benchmarks --only cpp_calls [--quick]

* builds, in one in-process IPython shell (the magics' own path): a brand-new
  `%%cpp` cell of free functions, a body-only edit, a new cell with a class,
  each interleaved with `%%cython` building the same function in the same
  shell (what a user would compare with);
* per call: an ipolyglot-bound function vs the same function in a hand-written
  pybind11 module compiled here at -O2, with the same GIL policy (and the
  other policy in a row of its own), first while the session holds functions
  over standard types only (bound by the generic caller), then once it holds
  classes (bound by pybind11);
* bulk copy: 10^7 float64 crossing into C++ vs numpy.copy of the same array.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import sysconfig
import tempfile
import textwrap
import time
import uuid
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make `benchmarks` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np

from benchmarks.common import Pairs, Row, interactive_shell, interleaved, run_cell, run_in_process, table

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
CLASS_CPP = """\
class {name} {{
  public:
    explicit {name}(double k) : k_(k) {{}}
    double apply(double x) const {{ return k_ * x * x + {k}; }}
  private:
    double k_;
}};
"""
CLASS_PYX = """\
cdef class {name}:
    cdef double k
    def __init__(self, double k):
        self.k = k
    def apply(self, double x):
        return self.k * x * x + {k}
"""

BASELINES = {
    "%%cython, same shell": "`%%cython` (Cython's IPython magic, loaded with %load_ext Cython) building the same function "
                            "in the same in-process shell, a new function name each time so nothing is reused",
    "hand-written pybind11": "a pybind11 module written by hand (m.def of the same C++ function), compiled here with "
                             "g++ -O2 -std=c++17; `GIL released` uses py::call_guard<py::gil_scoped_release>() as "
                             "ipolyglot does by default, `GIL kept` does not (as `%%cpp --keep-gil`)",
}


# -- a backend-level %%cpp session (for the fresh-process cache hit) --------------
class Session:
    def __init__(self, cache_dir: Path):
        from ipolyglot.cpp_ext.backend import CppBackend
        from ipolyglot.kernel.core.cache import BuildCache

        self.backend = CppBackend()
        self.cache = BuildCache(cache_dir)
        self.count = 0

    def run(self, cell: str, line: str = "-q") -> dict:
        """Run one cell body (the text after the %%cpp line); returns the names it bound."""
        self.count += 1
        return run_in_process(self.backend, self.cache, cell, line, f"In [{self.count}]")


def _build_hand_written(workdir: Path):
    import importlib.util

    import pybind11

    src = workdir / "bench_hand.cpp"
    src.write_text(HAND_WRITTEN)
    target = workdir / f"bench_hand{sysconfig.get_config_var('EXT_SUFFIX')}"
    cmd = ["g++", "-O2", "-std=c++17", "-shared", "-fPIC", "-fvisibility=hidden", "-I", pybind11.get_include(),
           "-I", sysconfig.get_paths()["include"], str(src), "-o", str(target)]
    subprocess.run(cmd, check=True)
    spec = importlib.util.spec_from_file_location("bench_hand", target)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


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


class Names:
    """Fresh identifiers, so that no build is ever a cache hit of an earlier one."""

    def __init__(self) -> None:
        self.nonce = uuid.uuid4().hex[:6]
        self.count = 0

    def __call__(self, stem: str) -> str:
        self.count += 1
        return f"{stem}_{self.nonce}_{self.count}"


def _build_rows(shell, pairs: int) -> list[Row]:
    names = Names()
    cpp = lambda body, line="-q": run_cell(shell, f"%%cpp {line}\n{body}")  # noqa: E731
    cython = lambda body: run_cell(shell, f"%%cython\n{body}")  # noqa: E731

    first_ever = Pairs([], [])
    started = time.perf_counter()
    cpp(SMALL_CPP.format(name=names("first"), k=1))  # builds the precompiled header unless cached
    first_ever.measured.append(time.perf_counter() - started)
    started = time.perf_counter()
    cython(SMALL_PYX.format(name=names("first"), k=1))  # imports Cython and setuptools
    first_ever.baseline.append(time.perf_counter() - started)

    current = {}

    def new_cpp():
        current["cpp"] = names("f")
        cpp(SMALL_CPP.format(name=current["cpp"], k=1))

    def new_cython():
        current["pyx"] = names("f")
        cython(SMALL_PYX.format(name=current["pyx"], k=1))

    edits = iter(range(2, 10**6))
    rows = [Row.paired("cpp", "build: first %%cpp cell of a process (PCH from cache or built)", first_ever,
                       "%%cython, same shell", extra_note="the first %%cython of a process imports Cython")]
    rows.append(Row.paired("cpp", "build: brand-new cell (free functions)",
                           interleaved(new_cpp, new_cython, pairs=pairs, warmup=False), "%%cython, same shell", goal="≤ 1.5×"))
    rows.append(Row.paired("cpp", "build: body-only edit",
                           interleaved(lambda: cpp(SMALL_CPP.format(name=current["cpp"], k=next(edits))),
                                       lambda: cython(SMALL_PYX.format(name=current["pyx"], k=next(edits))), pairs=pairs, warmup=False),
                           "%%cython, same shell (edit)", goal="≤ 0.5×"))
    rows.append(Row.paired("cpp", "build: brand-new cell with a class",
                           interleaved(lambda: cpp(CLASS_CPP.format(name=names("C"), k=1)),
                                       lambda: cython(CLASS_PYX.format(name=names("C"), k=1)), pairs=pairs, warmup=False),
                           "%%cython, same shell (cdef class)", goal="≤ 3×"))
    os.environ["IPOLYGLOT_CPP_NO_PCH"] = "1"
    try:
        no_pch = interleaved(lambda: cpp(SMALL_CPP.format(name=names("nopch"), k=1)), new_cython, pairs=max(1, pairs - 1), warmup=False)
    finally:
        del os.environ["IPOLYGLOT_CPP_NO_PCH"]
    rows.append(Row.paired("cpp", "build: brand-new cell without PCH", no_pch, "%%cython, same shell", goal="(PCH's share)"))
    return rows


def _call_rows(ns: dict, hand, quick: bool, bound_by: str) -> list[Row]:
    """The per-call figures of the session's add/add_kept/total, bound by `bound_by`."""
    number = 20_000 if quick else 100_000
    calls = 5 if quick else 15
    released, kept = ns["add"], ns["add_kept"]
    rows = [
        Row.paired("cpp", f"call: add(1.0, 2.0), GIL released (default), {bound_by}",
                   interleaved(lambda: released(1.0, 2.0), lambda: hand.add_nogil(1.0, 2.0), pairs=calls, number=number),
                   "hand-written pybind11, GIL released", unit="s/call", goal="≤ 1.1×"),
        Row.paired("cpp", f"call: add(1.0, 2.0) with --keep-gil, {bound_by}",
                   interleaved(lambda: kept(1.0, 2.0), lambda: hand.add(1.0, 2.0), pairs=calls, number=number),
                   "hand-written pybind11, GIL kept", unit="s/call", goal="≤ 1.1×"),
        Row.paired("cpp", f"call: add(1.0, 2.0), GIL released (default), {bound_by}",
                   interleaved(lambda: released(1.0, 2.0), lambda: hand.add(1.0, 2.0), pairs=calls, number=number),
                   "hand-written pybind11, GIL kept", unit="s/call"),
    ]
    small = np.arange(100.0)
    total = ns["total"]
    rows.append(Row.paired("cpp", f"call: total(100 float64), {bound_by}",
                           interleaved(lambda: total(small), lambda: hand.total(small), pairs=calls, number=number // 4),
                           "hand-written pybind11 (list caster)", unit="s/call"))
    return rows


def run(quick: bool) -> list[Row]:
    pairs = 2 if quick else 5
    rows: list[Row] = []
    shell = interactive_shell()
    run_cell(shell, "%load_ext Cython")
    with tempfile.TemporaryDirectory(prefix="ipolyglot-bench-") as tmp:
        tmp = Path(tmp)
        hand = _build_hand_written(tmp)
        ns = shell.user_ns
        rows += _build_rows(shell, pairs)
        # Functions over standard types only: the session is bound by the generic caller...
        run_cell(shell, "%polyglot cpp reset")
        run_cell(shell, "%%cpp -q\n" + CELL)
        run_cell(shell, "%%cpp -q --keep-gil\ndouble add_kept(double a, double b) { return a + b; }\n")
        rows += _call_rows(ns, hand, quick, "generic caller")
        # ...and once it holds a class, by pybind11 (add included).
        run_cell(shell, "%%cpp -q\nstruct BoundByPybind11 { int n = 0; };\n")
        rows += _call_rows(ns, hand, quick, "pybind11 (session with a class)")

        hit_cell = SMALL_CPP.format(name=Names()("hit"), k=2)
        _cache_hit_in_fresh_process(tmp / "cache", hit_cell)  # builds it
        hits = [_cache_hit_in_fresh_process(tmp / "cache", hit_cell) for _ in range(pairs)]
        rows.append(Row.paired("cpp", "build: cache hit, fresh process", Pairs(hits, [0.05] * len(hits)), "the 50 ms goal", goal="≤ 1×"))

        big = np.random.default_rng(0).random(10_000_000)
        length = ns["length"]
        calls = 5 if quick else 15
        rows.append(Row.paired("cpp", "bulk: 10^7 float64 into C++", interleaved(lambda: length(big), lambda: np.copy(big), pairs=calls),
                               "np.copy", goal="≥ 0.5×", speed=True))
    return rows


if __name__ == "__main__":
    cli = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    cli.add_argument("--quick", action="store_true", help="fewer repetitions")
    print(table(run(cli.parse_args().quick)))
