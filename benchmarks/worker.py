"""What worker mode costs (`%polyglot mode worker`), against baselines measured in the same process.

    python -m benchmarks --only worker [--quick]

Rows (median of per-pair ratios [min–max]):
  scalar call        Go `Add` and C++ `add` called in worker mode vs a bare pipe round trip
                     (8 bytes there and back) to a child process: the floor of a process
                     crossing (goal <= 1.5x)
  10^7 float64 in    Go and C++ functions taking the array, in worker mode, vs np.copy
                     (speed, goal >= 0.4x)
  fresh worker       replacing the worker as after a crash (the warm spare takes over) and
                     reloading a session of 10 cells (Go and C++) from the build cache, vs the 1 s goal
  interrupt          from SIGINT (what the stop button sends) during a C++ busy loop and a Go
                     `select {}` to the KeyboardInterrupt that ends the call, vs the 3 s goal
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make `benchmarks` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np

from benchmarks.common import Pairs, Row, interactive_shell, interleaved, run_cell, table

GO_CELL = """\
func WAdd(a, b float64) float64 { return a + b }
func WLen(xs []float64) int { return len(xs) }
func WBlock() { select {} }
"""
CPP_CELL = """\
#include <vector>
double wadd(double a, double b) { return a + b; }
std::size_t wlength(const std::vector<double>& xs) { return xs.size(); }
void wspin() { volatile bool going = true; while (going) {} }
"""
SESSION_GO = "func WSession{i}(x int) int {{ return x + {i} }}\n"
SESSION_CPP = "int wsession{i}(int x) {{ return x + {i}; }}\n"
ECHO_CHILD = """\
import os
while True:
    data = os.read(0, 8)
    if not data:
        break
    os.write(1, data)
"""
RELOAD_GOAL_SECONDS = 1.0
INTERRUPT_GOAL_SECONDS = 3.0
INTERRUPT_AFTER_SECONDS = 0.3

BASELINES = {
    "8-byte pipe round trip": "a child Python process that echoes what it reads: os.write of 8 bytes to its stdin "
                              "pipe, os.read of the 8 bytes back from its stdout pipe",
    "the 1 s goal": "a fixed goal, not a measurement",
    "the 3 s goal": "a fixed goal, not a measurement",
}


@dataclass
class EchoChild:
    """A child process on the other end of two pipes, echoing 8-byte messages."""

    process: subprocess.Popen

    @classmethod
    def start(cls) -> "EchoChild":
        return cls(subprocess.Popen([sys.executable, "-c", ECHO_CHILD], stdin=subprocess.PIPE, stdout=subprocess.PIPE, bufsize=0))

    def round_trip(self, message: bytes = b"\0" * 8) -> bytes:
        os.write(self.process.stdin.fileno(), message)
        return os.read(self.process.stdout.fileno(), 8)

    def stop(self) -> None:
        self.process.stdin.close()
        self.process.wait(timeout=10)
        self.process.stdout.close()


def _supervisor(shell):
    return shell.magics_manager.registry["PolyglotMagics"].worker


def _reload_seconds(shell) -> float:
    """The worker replaced as after a crash, and the session reloaded into the new one from the build cache."""
    supervisor = _supervisor(shell)
    time.sleep(1.0)  # as a crash comes some time after the previous one: the spare has finished its imports
    started = time.perf_counter()
    supervisor.restart()
    supervisor.request("info", describe="the benchmark's first request")
    return time.perf_counter() - started


def _interrupt_seconds(call) -> float:
    """From a SIGINT to this process while `call` runs in the worker (as the stop button interrupts a
    kernel) to the KeyboardInterrupt that ends it: the worker asked to stop, then replaced after the grace."""
    sent: list[float] = []

    def interrupt() -> None:
        sent.append(time.perf_counter())
        os.kill(os.getpid(), signal.SIGINT)

    # Python's own SIGINT handler, as a kernel has: a process started in the background inherits SIGINT ignored
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    timer = threading.Timer(INTERRUPT_AFTER_SECONDS, interrupt)
    timer.start()
    try:
        call()
    except KeyboardInterrupt:
        return time.perf_counter() - sent[0]
    finally:
        timer.join()
        signal.signal(signal.SIGINT, previous)
    raise RuntimeError("the call returned without a KeyboardInterrupt")


def run(quick: bool) -> list[Row]:
    pairs = 5 if quick else 15
    os.environ.setdefault("IPOLYGLOT_CACHE_DIR", os.path.join(tempfile.gettempdir(), "ipolyglot-bench-cache"))
    shell = interactive_shell()
    run_cell(shell, "%polyglot mode worker")
    echo = EchoChild.start()
    rows: list[Row] = []
    try:
        run_cell(shell, "%%go -q\n" + GO_CELL)
        run_cell(shell, "%%cpp -q\n" + CPP_CELL)
        ns = shell.user_ns
        assert ns["WAdd"](1.0, 2.0) == ns["wadd"](1.0, 2.0) == 3.0 and echo.round_trip(b"12345678") == b"12345678"
        number = 2_000 if quick else 20_000
        for language, add in (("Go", ns["WAdd"]), ("C++", ns["wadd"])):
            rows.append(Row.paired("worker", f"scalar call in worker mode ({language})",
                                   interleaved(lambda: add(1.0, 2.0), echo.round_trip, pairs=pairs, number=number),
                                   "8-byte pipe round trip", unit="s/call", goal="≤ 1.5×"))
        xs = np.random.default_rng(0).random(10**7)
        for language, length in (("Go", ns["WLen"]), ("C++", ns["wlength"])):
            rows.append(Row.paired("worker", f"10^7 float64 into {language} in worker mode",
                                   interleaved(lambda: length(xs), lambda: np.copy(xs), pairs=pairs),
                                   "np.copy", goal="≥ 0.4×", speed=True))
        for i in range(4):  # with the two cells above: a session of 10 cells
            run_cell(shell, "%%go -q\n" + SESSION_GO.format(i=i))
            run_cell(shell, "%%cpp -q\n" + SESSION_CPP.format(i=i))
        _reload_seconds(shell)  # the first reload reads the cache's files into the page cache
        reloads = [_reload_seconds(shell) for _ in range(3 if quick else 7)]
        rows.append(Row.paired("worker", "fresh worker + reload of a 10-cell session", Pairs(reloads, [RELOAD_GOAL_SECONDS] * len(reloads)),
                               "the 1 s goal", goal="≤ 1×"))
        for language, name in (("C++ busy loop", "wspin"), ("Go select {}", "WBlock")):
            waits = []
            for _ in range(1 if quick else 3):
                time.sleep(1.0)  # the spare worker that replaced the last one has finished its imports
                waits.append(_interrupt_seconds(ns[name]))  # looked up again: each interrupt replaces the worker
            rows.append(Row.paired("worker", f"interrupt of a {language} → KeyboardInterrupt", Pairs(waits, [INTERRUPT_GOAL_SECONDS] * len(waits)),
                                   "the 3 s goal", goal="≤ 1×"))
    finally:
        echo.stop()
        _supervisor(shell).shutdown()
        run_cell(shell, "%polyglot mode in-process")
    return rows


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="fewer repetitions")
    print(table(run(parser.parse_args().quick)))
