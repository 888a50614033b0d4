"""Worker mode bounds the Go runtimes a session accumulates: the worker is replaced, not grown."""

from __future__ import annotations

import re

from conftest import RunningKernel

REBUILDS = 40
# The supervisor replaces the worker once it holds more than 8 runtimes beyond the live cells' ones,
# so a session of one live Go cell never has more than 10 loaded, whatever the number of edits.
MAX_RUNTIMES = 10
MAX_THREADS = 100  # about 5 per Go runtime plus Python's own
MAX_RSS_MIB = 400  # Python, numpy and at most MAX_RUNTIMES runtimes (in-process, 40 rebuilds reached 249 MB + the kernel)


def info_number(text: str, label: str) -> float:
    match = re.search(rf"^{label} +([\d.]+)", text, re.M)
    assert match, f"no {label!r} in:\n{text}"
    return float(match.group(1))


COUNTER_CELL = """%%go
var Hits int
var Seen = map[string]int{}

func Hit(name string) int { Hits++; Seen[name]++; return Hits }
"""


def test_forty_rebuilds_keep_runtimes_threads_and_memory_bounded():
    """The worker is replaced on the way; the package variables that can be copied go with it."""
    with RunningKernel(env={"IPOLYGLOT_MODE": "worker"}) as kernel:
        kernel.run("kept = 'python state'").ok()
        kernel.run(COUNTER_CELL, timeout=300).ok()
        kernel.run("Hit('a'); Hit('b'); Hit('a')").ok()
        first_worker = info_number(kernel.run("%polyglot info").ok().stdout, "worker pid")
        for edit in range(REBUILDS):
            kernel.run(f"%%go -q\nvar Base = 100\nfunc Version() int {{ return Base + {edit} }}", timeout=300).ok()
        assert kernel.eval("(Version(), kept)") == (100 + REBUILDS - 1, "python state")
        info = kernel.run("%polyglot info").ok().stdout
        assert info_number(info, "worker pid") != first_worker, info  # the runtimes were freed by replacing the worker
        assert info_number(info, "Go runtimes loaded") <= MAX_RUNTIMES, info
        assert info_number(info, "worker threads") <= MAX_THREADS, info
        assert info_number(info, "worker memory") <= MAX_RSS_MIB, info
        assert kernel.eval("(Hit('b'), govars.Seen)") == (4, {"a": 2, "b": 2})
