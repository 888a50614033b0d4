"""Worker mode's channel: large values cross through memfds and leave nothing behind; the boundary
profiler sees worker calls, with the process crossing as a phase of its own."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from conftest import RunningKernel

WORKER = {"IPOLYGLOT_MODE": "worker"}

GO_CELL = r'''%%go --profile
func GoEcho(xs []float64) []float64 { return xs }
func GoBytes(b []byte) []byte { return b }
func GoText(s string) string { return s }
func GoAdd(a, b float64) float64 { return a + b }
'''

CPP_CELL = r'''%%cpp --profile
#include <cstdlib>
#include <string>
#include <vector>
std::vector<double> cpp_echo(const std::vector<double>& xs) { return xs; }
std::string cpp_text(const std::string& s) { return s; }
double cpp_add(double a, double b) { return a + b; }
double cpp_abort_with(const std::vector<double>& xs) { if (!xs.empty()) std::abort(); return 0; }
'''

# Ten megabytes each: 1.25 million float64, bytes with every value, non-ASCII text.
BIG_VALUES = (
    "import numpy as np\n"
    "big_array = np.random.default_rng(7).random(1_250_000)\n"
    "big_bytes = bytes(range(256)) * 40_960\n"
    "big_text = ('\u00e9t\u00e9 \u2013 ' * 1_250_000)[:10_000_000]\n"
)
SHARED_BUFFER = "memfd:ipolyglot-buffer"  # a value's own copy: gone with the value
ARENA = "memfd:ipolyglot-arena"  # the kernel's reusable buffer for arguments: one per connection, kept


def shared_memory_entries() -> set[str]:
    """/dev/shm as other tools leave it, without other processes' multiprocessing semaphores."""
    return {name for name in os.listdir("/dev/shm") if not name.startswith("sem.")}


def mapped(pid: int, name: str) -> int:
    """How many mappings of memfds called `name` process `pid` has."""
    return Path(f"/proc/{pid}/maps").read_text().count(name)


@pytest.fixture(scope="module")
def kernel():
    with RunningKernel(env=WORKER) as running:
        running.run(GO_CELL, timeout=600).ok()
        running.run(CPP_CELL, timeout=900).ok()
        running.run(BIG_VALUES).ok()
        yield running


def test_ten_megabyte_values_round_trip_exactly_and_leave_no_shared_memory(kernel):
    before = shared_memory_entries()
    assert kernel.eval("bool((GoEcho(big_array) == big_array).all()) and bool((cpp_echo(big_array) == big_array).all())")
    assert kernel.eval("GoBytes(big_bytes) == big_bytes and GoText(big_text) == big_text and cpp_text(big_text) == big_text")
    assert kernel.eval("GoEcho(big_array).dtype == big_array.dtype and type(GoBytes(big_bytes)) is bytes")
    assert shared_memory_entries() <= before
    worker = kernel.eval("get_ipython().find_line_magic('polyglot').__self__.worker.pid")
    kernel_pid = kernel.eval("__import__('os').getpid()")
    kernel.run("import gc; gc.collect()").ok()
    assert mapped(kernel_pid, SHARED_BUFFER) == 0  # the kernel's copies of results are gone with the values
    assert mapped(worker, SHARED_BUFFER) == 0  # and the worker's of callbacks' arguments
    assert mapped(kernel_pid, ARENA) == mapped(worker, ARENA) == 1  # arguments went through the one arena


def test_a_crash_with_a_large_argument_leaves_no_shared_memory(kernel):
    before = shared_memory_entries()
    out = kernel.run("cpp_abort_with(big_array)")
    assert out.status == "error" and out.error["ename"] == "NativeCrash", out.error_text
    assert shared_memory_entries() <= before
    assert kernel.eval("bool((cpp_echo(big_array) == big_array).all())")  # the new worker takes large values too


def test_shutting_down_a_kernel_leaves_no_shared_memory():
    before = shared_memory_entries()
    with RunningKernel(env=WORKER) as running:
        running.run("%%go\nfunc Size(b []byte) int { return len(b) }\n", timeout=600).ok()
        assert running.eval("Size(b'x' * 10_000_000)") == 10_000_000
        held = running.run("kept = Size; big = b'y' * 10_000_000").ok()
        assert held.status == "ok"
    assert shared_memory_entries() <= before


def test_profile_in_worker_mode_records_calls_with_a_crossing_phase(kernel):
    kernel.run(
        "from ipolyglot.kernel.core.profiling import PROFILER\nPROFILER.reset()\n"
        "for _ in range(7): GoAdd(1.0, 2.0)\n"
        "for _ in range(3): cpp_add(1.0, 2.0)\n"
        "for _ in range(2): GoEcho(big_array)\n"
    ).ok()
    stats = kernel.eval(
        "{s.name: (s.calls, [(p.total_ns, p.copy_in_ns, p.native_ns, p.copy_out_ns, p.crossing_ns, p.overhead_ns) "
        "for p in (s.first, s.later)]) for s in PROFILER.stats()}"
    )
    assert {name: calls for name, (calls, _) in stats.items()} == {"GoAdd": 7, "cpp_add": 3, "GoEcho": 2}
    for _, phase_sets in stats.values():
        for total, copy_in, native, copy_out, crossing, overhead in phase_sets:
            # The rest of the kernel's wall time is the overhead; Go's clock and Python's may differ by a hair.
            assert crossing > 0 and abs(copy_in + native + copy_out + crossing + overhead - total) <= total * 0.02, stats
    out = kernel.run("%polyglot profile").ok()
    table = out.displays[0]["text/plain"]
    header = table.splitlines()[0]
    assert all(phase in header for phase in ("copy in", "native code", "copy out", "call overhead", "process crossing"))
    assert "process crossing (worker mode)" in table
    assert "process crossing" in out.displays[1]["image/svg+xml"]


def test_in_process_profile_shows_no_crossing_phase():
    with RunningKernel(env={"IPOLYGLOT_MODE": "in-process"}) as running:
        running.run("%%go --profile\nfunc Local(a int) int { return a + 1 }\n", timeout=600).ok()
        running.run("for _ in range(3): Local(1)").ok()
        table = running.run("%polyglot profile").ok().displays[0]["text/plain"]
        assert "Local (go)" in table and "call overhead" in table and "process crossing" not in table


# Last: a C++ cell rebinds the earlier cells' functions from its own build (without --profile).
def test_an_argument_the_worker_keeps_is_not_overwritten_by_the_next_call(kernel):
    kernel.run(
        "%%cpp\n#include <pybind11/numpy.h>\n"
        "static pybind11::object kept_array;\n"
        "void keep(pybind11::array_t<double> xs) { kept_array = xs; }\n"
        "pybind11::object kept() { return kept_array; }\n",
        timeout=900,
    ).ok()
    assert kernel.eval(
        "keep(big_array); cpp_echo(big_array * 2); GoEcho(big_array * 3); bool((kept() == big_array).all())"
    )


NOISY_CELL = r'''%%cpp
#include <cstdio>
#include <string>
// more stderr than a pipe holds: the kernel copies it while the call runs, all of it before the next print
int noisy_twice(int x) {
    std::printf("out %d\n", x);
    std::fprintf(stderr, "err %d %s\n", x, std::string(200000, 'e').c_str());
    return 2 * x;
}
bool is_positive(double x) { return x > 0; }
'''


def test_scalar_calls_keep_native_output_in_order_with_pythons(kernel):
    """Scalar calls take the binary fast path: what they print, on stdout and on stderr, still comes
    between the Python prints around them; bools and floats cross as themselves, and an int beyond
    int64 (which takes the pickled path) is refused as in-process, naming the parameter."""
    kernel.run(NOISY_CELL, timeout=900).ok()
    out = kernel.run(
        "import sys\n"
        "for i in range(3):\n"
        "    print('py', i); print('py-err', i, file=sys.stderr)\n"
        "    assert noisy_twice(i) == 2 * i\n"
        "print('end'); print('end-err', file=sys.stderr)\n"
        "assert is_positive(0.5) is True and is_positive(-1) is False and GoAdd(0.25, 0.5) == 0.75\n"
    ).ok()
    assert out.stdout.splitlines() == ["py 0", "out 0", "py 1", "out 1", "py 2", "out 2", "end"], out.stdout
    noise = "e" * 200_000
    assert out.stderr.splitlines() == ["py-err 0", f"err 0 {noise}", "py-err 1", f"err 1 {noise}", "py-err 2",
                                       f"err 2 {noise}", "end-err"], out.stderr[:300]
    out = kernel.run("noisy_twice(2**70)")
    assert out.status == "error" and out.error["ename"] == "OverflowError", out.error_text
    assert "noisy_twice() parameter x" in out.error_text, out.error_text
