"""Profiling Go through a real kernel: the boundary profiler's figures, Go's own
profiler (%go_pprof, %%go_pprof, --heap) and Go runtime statistics in %polyglot info."""

import re

import pytest

from conftest import RunningKernel
from go_cells import GO_TEST_ENV

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

PROFILER = "__import__('ipolyglot.kernel.profiling', fromlist=['PROFILER']).PROFILER"


@pytest.fixture(scope="module")
def kernel():
    with RunningKernel(env=GO_TEST_ENV) as running:
        running.run(WORK_CELL).ok()
        yield running


def _table(out) -> str:
    return out.displays[0]["text/plain"]


def test_go_pprof_names_the_cpu_bound_function_with_its_cell_line(kernel):
    out = kernel.run("%go_pprof Spin(300_000_000)").ok()
    table = _table(out)
    rows = [line.split() for line in table.splitlines()[3:]]
    top = [row for row in rows[:3] if "Spin" in row]
    assert top, table
    assert re.fullmatch(rf"\[\d+\]:{SPIN_LINE}", top[0][-1]) and top[0][-2] == "In", table
    svg = out.displays[1]["image/svg+xml"]
    assert svg.startswith("<svg") and "Spin" in svg


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
        assert phases_with_overhead == total  # the remainder is the Python-side overhead
        assert 0 < phases <= total * 1.02  # measured phases never exceed the total (beyond clock skew)


def test_heavy_copy_shows_most_time_in_the_copy_phases(kernel):
    kernel.run(f"{PROFILER}.reset()\nbig = np.ones(2_000_000)\nfor _ in range(3): ProfEcho(big)").ok()
    copy, native, total = kernel.eval(
        f"[(s.copy_in_ns + s.copy_out_ns, s.native_ns, s.total_ns) for s in {PROFILER}.stats() if s.name == 'ProfEcho'][0]"
    )
    assert copy > 10 * native and copy > total / 2


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
