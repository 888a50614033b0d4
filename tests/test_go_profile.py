"""Profiling Go through a real kernel: the boundary profiler's figures, Go's own
profiler (%go_pprof, %%go_pprof, --heap) and Go runtime statistics in %polyglot info."""

import re

import pytest

from conftest import RunningKernel, mode_env
from go_cells import GO_TEST_ENV

# Profiling holds in both execution modes (see conftest).
KERNEL_MODES = ("worker", "in-process")

WORK_CELL = """%%go
func Spin(n int) float64 {
	x := 0.0
	for i := 0; i < n; i++ {
		x += float64(i%7) * 0.5
	}
	return x
}

func Garbage(n int) int {
	total := 0
	for i := 0; i < n; i++ {
		b := make([]byte, 1000+i%10)
		total += len(b)
	}
	return total
}
"""
SPIN_LINE = WORK_CELL.splitlines().index("\t\tx += float64(i%7) * 0.5") + 1  # counting %%go as line 1
GARBAGE_LINE = WORK_CELL.splitlines().index("\t\tb := make([]byte, 1000+i%10)") + 1

PROFILED_CELL = """%%go --profile
func ProfSum(xs []float64) float64 {
	s := 0.0
	for _, x := range xs {
		s += x
	}
	return s
}
func ProfFirst(xs []float64) []float64 { return xs[:1] }
func ProfEcho(xs []float64) []float64 { return xs }
"""

PROFILER = "__import__('ipolyglot.kernel.core.profiling', fromlist=['PROFILER']).PROFILER"


@pytest.fixture(scope="module")
def kernel(kernel_mode):
    with RunningKernel(env={**GO_TEST_ENV, **mode_env(kernel_mode)}) as running:
        running.work_cell_number = running.run(WORK_CELL).ok().execution_count
        yield running


def _table(out) -> str:
    return out.displays[0]["text/plain"]


_SECONDS = {"s": 1.0, "ms": 1e-3, "µs": 1e-6, "ns": 1e-9}


def _seconds(text: str) -> float:
    number, unit = text.split()
    return float(number) * _SECONDS[unit]


def test_go_pprof_names_the_cpu_bound_function_with_its_cell_line(kernel):
    work_cell_number = kernel.work_cell_number
    out = kernel.run("%go_pprof Spin(300_000_000)").ok()
    table = _table(out)
    rows = [line.split() for line in table.splitlines()[3:]]
    top = [row for row in rows[:3] if "Spin" in row]
    assert top, table
    # The "where" column names the prompt of the cell that defined Spin, and the loop's line in it.
    assert top[0][-2:] == ["In", f"[{work_cell_number}]:{SPIN_LINE}"], table
    assert "flat: CPU time" in table.splitlines()[-1]  # the line that says how to read the table
    svg = out.displays[1]["image/svg+xml"]
    assert svg.startswith("<svg") and f"Spin (In [{work_cell_number}])" in svg


def test_go_pprof_cpu_time_is_go_code_only_and_consistent_with_wall_time(kernel):
    out = kernel.run("%go_pprof Spin(300_000_000)").ok()
    table = _table(out)
    summary = table.splitlines()[0]
    found = re.match(r"(\S+ \S+) of CPU time in Go code \(summed over the threads that ran it.*?\) "
                     r"while the statement ran for (\S+ \S+) of wall time", summary)
    assert found, summary
    go_cpu, wall = _seconds(found[1]), _seconds(found[2])
    # Spin runs on one thread: its CPU time cannot exceed the wall time (beyond one 10 ms sample and skew).
    assert 0 < go_cpu <= wall * 1.1 + 0.02, summary
    # Pure Go code: no row for code outside Go, and Spin holds nearly all of the Go CPU time.
    assert "outside Go" not in table and "_ExternalCode" not in table
    spin = next(line.split() for line in table.splitlines()[3:] if "Spin" in line.split())
    assert float(spin[5].rstrip("%")) >= 80, table  # cum%


def test_go_pprof_cell_form_runs_a_block_of_python(kernel):
    out = kernel.run("%%go_pprof --top 5\ntotal = 0\nfor _ in range(2):\n    total += Spin(150_000_000)\n").ok()
    assert "Spin" in _table(out)
    assert kernel.eval("total > 0") is True


def test_go_pprof_heap_shows_the_allocating_function(kernel):
    out = kernel.run("%go_pprof --heap Garbage(50_000)").ok()
    table = _table(out)
    assert "allocated" in table.splitlines()[0]
    first = table.splitlines()[3].split()
    assert "Garbage" in first and first[-1].endswith(f":{GARBAGE_LINE}"), table


def test_go_pprof_without_go_code_or_with_a_bad_option_is_a_short_error(kernel):
    out = kernel.run("%go_pprof --frobnicate Spin(1)")
    assert out.status == "error" and "unknown option --frobnicate" in out.error_text
    assert "Traceback" not in out.error_text
    # An error in the profiled code is the user's own, raised as is.
    out = kernel.run("%go_pprof {}['missing']")
    assert out.status == "error" and "KeyError" in out.error_text


def test_info_shows_go_runtime_statistics(kernel):
    out = kernel.run("%polyglot info").ok().stdout
    line = next(line for line in out.splitlines() if line.startswith("Go runtime (current)"))
    assert re.search(r"\d+ goroutines, heap in use [\d.]+ MiB, \d+ GC cycles", line), line


def test_profiler_is_off_by_default(kernel):
    kernel.run(f"{PROFILER}.reset()\nSpin(10)\nGarbage(10)").ok()
    assert kernel.eval(f"[s.name for s in {PROFILER}.stats()]") == []


@pytest.mark.kernel_modes("in-process")  # an in-process call's phases add up without a process crossing (worker calls: test_worker_channel)
def test_profiler_counts_are_exact_and_phases_add_up(kernel):
    kernel.run(PROFILED_CELL).ok()
    kernel.run(
        f"import numpy as np\n{PROFILER}.reset()\nxs = np.ones(1000)\n"
        "for _ in range(37): ProfSum(xs)\n"
        "for _ in range(5): ProfFirst(xs)\n"
    ).ok()
    stats = kernel.eval(
        f"{{s.name: (s.calls, s.total_ns, s.copy_in_ns + s.native_ns + s.copy_out_ns + s.overhead_ns, "
        f"s.copy_in_ns + s.native_ns + s.copy_out_ns) for s in {PROFILER}.stats()}}"
    )
    assert stats["ProfSum"][0] == 37 and stats["ProfFirst"][0] == 5
    for calls, total, phases_with_overhead, phases in stats.values():
        assert phases_with_overhead == total  # the remainder is the call overhead
        assert 0 < phases <= total * 1.02  # measured phases never exceed the total (beyond clock skew)


def test_heavy_copy_shows_most_time_in_the_copy_phases(kernel):
    kernel.run(PROFILED_CELL).ok()  # a cache hit when the test above built it in this kernel
    kernel.run("import numpy as np").ok()
    kernel.run(f"{PROFILER}.reset()\nbig = np.ones(2_000_000)\nfor _ in range(3): ProfEcho(big)").ok()
    # In worker mode the arrays also cross between the processes (the crossing phase): copying too.
    copy, native, total = kernel.eval(
        f"[(s.copy_in_ns + s.copy_out_ns + s.crossing_ns, s.native_ns, s.total_ns) for s in {PROFILER}.stats() if s.name == 'ProfEcho'][0]"
    )
    assert copy > 10 * native and copy > total / 2


@pytest.mark.kernel_modes("in-process")  # the in-process warning: a worker recycles its runtimes instead (test_worker_recycle)
def test_too_many_runtimes_warns(kernel):
    backend = "get_ipython().find_cell_magic('go').__self__.backend('go')"
    loaded = kernel.eval(f"len({backend}._libraries)")
    kernel.run(f"{backend}.runtime_warning_threshold = {loaded + 1}").ok()
    try:
        first = kernel.run("%%go\nfunc WarnOne() int { return 1 }\n").ok()
        assert "Go runtimes are loaded" not in first.stderr
        second = kernel.run("%%go\nfunc WarnTwo() int { return 2 }\n").ok()
        assert f"{loaded + 2} Go runtimes are loaded" in second.stderr and "restart the kernel" in second.stderr
        assert "restart the kernel" in kernel.run("%polyglot info").ok().stdout
    finally:
        kernel.run(f"{backend}.runtime_warning_threshold = 32").ok()


PHASES_CELL = """%%go --profile
func PhaseWork(n int) int {
	total := 0
	for i := 0; i < n; i++ {
		total += i % 3
	}
	return total
}
func PhaseEcho(xs []float64) []float64 { return xs }
"""


@pytest.mark.kernel_modes("in-process")  # an in-process call's phases add up without a process crossing (worker calls: test_worker_channel)
def test_profile_phases_measure_what_their_labels_say(kernel):
    kernel.run(PHASES_CELL).ok()
    kernel.run(
        f"import numpy as np\n{PROFILER}.reset()\nbig = np.ones(2_000_000)\n"
        "for _ in range(4):\n    PhaseWork(3_000_000)\n    PhaseEcho(big)\n"
    ).ok()
    stats = kernel.eval(
        f"{{s.name: (s.calls, [(p.total_ns, p.copy_in_ns, p.native_ns, p.copy_out_ns, p.overhead_ns) "
        f"for p in (s.first, s.later)]) for s in {PROFILER}.stats()}}"
    )
    assert stats["PhaseWork"][0] == 4 and stats["PhaseEcho"][0] == 4
    for _, phase_sets in stats.values():
        for total, copy_in, native, copy_out, overhead in phase_sets:
            assert total > 0 and copy_in + native + copy_out + overhead == total
            assert copy_in + native + copy_out <= total * 1.02  # measured inside the call's wall time

    def share(name, index):
        total, *phases = stats[name][1][1]  # the later calls
        return phases[index] / total

    # An int result costs little to copy out; a 16 MB array costs most of its call (same run).
    assert share("PhaseWork", 2) < share("PhaseEcho", 2) / 5, stats
    # The copy of a round trip is counted as copying, not as overhead.
    assert share("PhaseEcho", 3) < (share("PhaseEcho", 0) + share("PhaseEcho", 2)) / 2, stats

    text = kernel.run("%polyglot profile").ok().displays[0]["text/plain"]
    header, *rows = text.splitlines()
    assert "first call" in header and "call overhead" in header
    assert any(row.startswith("PhaseWork (go)") for row in rows) and any(row.startswith("PhaseEcho (go)") for row in rows)
    assert rows[-1].startswith("How to read it:") and "first call" in rows[-1] and "call overhead" in rows[-1]


@pytest.mark.parametrize("file", [
    "cell-5134d8cb14a2",  # Go 1.26: the //line file name as written
    "ipolyglot.local/cell/cell-5134d8cb14a2",  # Go 1.27 with -trimpath: under the module path
    "/tmp/go-build123/cell-5134d8cb14a2",
])
def test_pprof_frames_find_their_cell_whatever_the_go_version_calls_the_file(file):
    from ipolyglot.go_bridge import pprof

    assert pprof.cell_of(pprof.Frame("Spin", file, 5)) == "cell-5134d8cb14a2"
    assert pprof.cell_of(pprof.Frame("runtime.mallocgc", "runtime/malloc.go", 1)) is None


def test_pprof_samples_without_go_code_are_counted_apart_and_preemption_goes_to_the_preempted():
    from ipolyglot.go_bridge import pprof

    spin = pprof.Frame("Spin", "cell-5134d8cb14a2", 5)
    call = pprof.Frame("ipgrt.Call", "ipolyglot.local/ipgrt/call.go", 1)
    profile = pprof.Profile([("cpu", "nanoseconds")], [
        ((spin, call), [30]),
        ((pprof.Frame("runtime.asyncPreempt", "", 0), spin, call), [20]),
        ((pprof.Frame("runtime._ExternalCode", "", 0),), [40]),
    ])
    costs, totals = pprof.top_functions(profile, 0)
    assert (totals.go, totals.not_go) == (50, 40)
    assert [(c.function, c.flat, c.cum) for c in costs][0] == ("Spin", 50, 50)
    assert all("External" not in c.function for c in costs)
