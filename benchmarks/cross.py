"""The same work in Python, Go and C++, and what threads gain across the boundary.

    python -m benchmarks --only cross [--quick]

Rows:
  fib(30)            recursive fib in Go and in C++ vs the same in CPython
  two threads        two Python threads each calling a CPU-bound Go / C++ function vs one
                     thread making both calls in turn, interleaved: the speed-up (goal >= 1.8x
                     on 2 free cores; the GIL is released in native code)

The cells go through the magics in an in-process IPython shell: the user's own path.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import threading

from .common import Row, interactive_shell, interleaved, run_cell, table

GO_CELL = """\
func Fib(n int) int {
	if n < 2 {
		return n
	}
	return Fib(n-1) + Fib(n-2)
}

// Spin does n rounds of integer mixing: CPU-bound, no allocation, no Python objects.
func Spin(n int) uint64 {
	x := uint64(88172645463325252)
	for i := 0; i < n; i++ {
		x ^= x << 13
		x ^= x >> 7
		x ^= x << 17
	}
	return x
}
"""

CPP_CELL = """\
#include <cstdint>
long long fib(int n) { return n < 2 ? n : fib(n - 1) + fib(n - 2); }

std::uint64_t spin(long long n) {
    std::uint64_t x = 88172645463325252ULL;
    for (long long i = 0; i < n; ++i) { x ^= x << 13; x ^= x >> 7; x ^= x << 17; }
    return x;
}
"""


def fib_py(n: int) -> int:
    return n if n < 2 else fib_py(n - 1) + fib_py(n - 2)


def _threads(fn, arg, count: int) -> None:
    workers = [threading.Thread(target=fn, args=(arg,)) for _ in range(count)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()


BASELINES = {
    "CPython": "the same recursive fib written in Python, run in the same process",
    "one thread": "the same two calls made one after the other in one thread",
}


def run(quick: bool) -> list[Row]:
    pairs = 3 if quick else 9
    n_fib = 24 if quick else 30
    spins = 2_000_000 if quick else 50_000_000
    os.environ.setdefault("IPOLYGLOT_CACHE_DIR", os.path.join(tempfile.gettempdir(), "ipolyglot-bench-cache"))
    shell = interactive_shell()
    run_cell(shell, "%%go -q\n" + GO_CELL)
    run_cell(shell, "%%cpp -q\n" + CPP_CELL)
    ns = shell.user_ns
    assert ns["Fib"](20) == ns["fib"](20) == fib_py(20) == 6765

    rows = []
    for language, fn in (("Go", ns["Fib"]), ("C++", ns["fib"])):
        rows.append(Row.paired("cross", f"fib({n_fib}) in {language}",
                               interleaved(lambda: fn(n_fib), lambda: fib_py(n_fib), pairs=pairs), "CPython"))
    for language, fn in (("Go", ns["Spin"]), ("C++", ns["spin"])):
        rows.append(Row.paired("cross", f"two threads calling {language}",
                               interleaved(lambda: _threads(fn, spins, 2), lambda: (fn(spins), fn(spins)), pairs=pairs),
                               "one thread", goal="≥ 1.8×", speed=True))
    return rows


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    print(table(run(parser.parse_args().quick)))
