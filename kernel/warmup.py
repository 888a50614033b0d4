"""`python -m ipolyglot.kernel warm [--go] [--cpp]`: pay the first build's fixed costs at set-up time.

The first Go cell on a machine compiles Go's runtime with cgo, the standard
library packages and ipolyglot's runtime helper into Go's build cache; the
first C++ cell builds the generic caller, and the first with a class the
precompiled pybind11 header. Both take tens of seconds once. This command builds a small cell of each language through the
backends' own path (same flags, environment and build cache as a kernel), so
those costs are paid visibly, with progress, before a notebook opens.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
import threading
import time
from dataclasses import dataclass, field
from typing import TextIO

GO_CELL = """\
import (
	"fmt"
	"math"
	"sort"
	"strconv"
	"strings"
)

func WarmUp(xs []float64, s string) string {
	sort.Float64s(xs)
	return fmt.Sprint(math.Sqrt(2), strconv.Itoa(len(xs)), strings.ToUpper(s))
}
"""

CPP_CELL = """\
#include <string>
#include <vector>

std::string warm_up(const std::vector<double>& xs, const std::string& s) {
    return s + std::to_string(xs.size());
}
"""

# A class is bound by pybind11 (with the precompiled header); the function above by the generic caller.
CPP_CLASS_CELL = """\
struct WarmUp {
    double x = 0;
    double twice() const { return 2 * x; }
};
"""


@dataclass
class Heartbeat:
    """Prints the elapsed time every `every` seconds while a step runs."""

    out: TextIO
    every: float = 10.0
    _stop: threading.Event = field(default_factory=threading.Event)

    def _beat(self, started: float) -> None:
        while not self._stop.wait(self.every):
            print(f"    ... {time.perf_counter() - started:.0f} s", file=self.out, flush=True)

    @contextlib.contextmanager
    def running(self):
        started = time.perf_counter()
        thread = threading.Thread(target=self._beat, args=(started,), daemon=True)
        thread.start()
        try:
            yield
        finally:
            self._stop.set()
            thread.join()


@dataclass
class Step:
    """One warm-up: a cell built through a backend's own path."""

    language: str  # "go" or "cpp"
    title: str
    cells: tuple[str, ...]  # each built in a session of its own

    def backend(self):
        if self.language == "go":
            from ipolyglot.go_bridge.backend import GoBackend

            return GoBackend()
        from ipolyglot.cpp_ext.backend import CppBackend

        return CppBackend()

    def run(self, cache, out: TextIO) -> None:
        from .core.pipeline import run_without_kernel

        for cell in self.cells:
            run_without_kernel(self.backend(), cache, cell, "-q", "warm-up",
                               warn=lambda message: print(f"    warning: {message}", file=out, flush=True))

STEPS = {
    "go": Step("go", "Go: Go's runtime with cgo, the standard library and ipolyglot's runtime helper "
                     "into Go's build cache (the first time: up to a minute)", (GO_CELL,)),
    "cpp": Step("cpp", "C++: the generic caller and the precompiled pybind11 header (the first time: about 15 s)",
                (CPP_CELL, CPP_CLASS_CELL)),
}


def warm(languages: list[str], out: TextIO = sys.stdout) -> int:
    """Build each language's warm-up cell; 0 unless a toolchain that exists failed to build."""
    from .core.cache import BuildCache
    from .core.toolchains import ToolchainError

    cache = BuildCache()
    failed = 0
    for number, language in enumerate(languages, 1):
        step = STEPS[language]
        print(f"[{number}/{len(languages)}] warming up {step.title}", file=out, flush=True)
        started = time.perf_counter()
        try:
            with Heartbeat(out).running():
                step.run(cache, out)
        except ToolchainError as exc:
            print(f"    skipped: {exc}", file=out, flush=True)
            continue
        except Exception as exc:  # noqa: BLE001 - a set-up step reports and goes on
            failed += 1
            print(f"    failed: {type(exc).__name__}: {exc}", file=out, flush=True)
            continue
        print(f"    done in {time.perf_counter() - started:.1f} s", file=out, flush=True)
    from .fast_channel import lane_module

    ready = lane_module() is not None  # compiled into the same cache, so the first worker does not
    print("the native worker's shared-memory call lane: " + ("ready" if ready else
          "not built (no C compiler or Python headers): worker calls take the pipe"), file=out, flush=True)
    return 1 if failed else 0


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m ipolyglot.kernel warm", description=__doc__.splitlines()[0])
    parser.add_argument("--go", action="store_true", help="only Go")
    parser.add_argument("--cpp", action="store_true", help="only C++")
    args = parser.parse_args(argv)
    chosen = [language for language in ("go", "cpp") if getattr(args, language)]
    return warm(chosen or ["go", "cpp"])
