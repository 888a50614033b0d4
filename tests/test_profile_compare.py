"""`%polyglot profile` display and `%polyglot compare` through the kernel."""

from __future__ import annotations

import re

import pytest

from ipolyglot.kernel.core.compare import results_agree, split_expressions


@pytest.mark.parametrize("line,expected", [
    ("fib_py(20) fib_go(20) fib_cpp(20)", ["fib_py(20)", "fib_go(20)", "fib_cpp(20)"]),
    ("f(1, 2)  g( 'a b' )", ["f(1, 2)", "g( 'a b' )"]),
    ("a + b c", ["a + b", "c"]),
    ("x if y else z  w", ["x if y else z", "w"]),
    ("s.upper() [i for i in range(3)]", ["s.upper()", "[i for i in range(3)]"]),
])
def test_split_expressions(line, expected):
    assert split_expressions(line) == expected


def test_compare_has_one_row_per_expression_and_a_chart(kernel):
    kernel.run("def slow(n): return sum(i * i for i in range(n))").ok()
    out = kernel.run("%polyglot compare slow(10) slow(2000) len('abc')").ok()
    table = out.displays[0]["text/plain"].splitlines()
    assert [row.split()[0] for row in table[2:-1]] == ["slow(10)", "slow(2000)", "len('abc')"]
    assert table[2].split()[5] == "1×"  # the first is the baseline
    ratio = float(table[3].split()[5].rstrip("×"))
    assert ratio > 5  # 2000 iterations cost more than 10
    assert out.displays[1]["image/svg+xml"].startswith("<svg")
    assert out.displays[1]["image/svg+xml"].count("<rect") >= 3


def test_compare_reports_a_bad_expression(kernel):
    out = kernel.run("%polyglot compare 1+ ")
    assert out.status == "error" and out.error["ename"] == "SyntaxError"


def _bar_widths(svg: str) -> list[float]:
    return [float(w) for w in re.findall(r'<rect x="[\d.]+" y="\d+" width="([\d.]+)"', svg)]


def test_compare_shows_the_speed_up_and_a_log_scale_chart_in_the_table_s_units(kernel):
    kernel.run("def slow(n): return sum(i * i for i in range(n))").ok()
    out = kernel.run("%polyglot compare slow(20_000) slow(20) len('a_rather_long_label_that_must_not_be_clipped')").ok()
    header, _, *rows = out.displays[0]["text/plain"].splitlines()
    assert "speed-up" in header
    assert "baseline" in rows[0]
    faster = re.search(r"([\d.]+)× faster", rows[1])
    assert faster and float(faster[1]) > 10, rows[1]  # 20 iterations against 20,000
    assert "log" in rows[-1]  # the reading line says the chart's scale is logarithmic
    svg = out.displays[1]["image/svg+xml"]
    widths = _bar_widths(svg)
    assert len(widths) == 3
    # A log scale: the fastest bar stays readable beside one hundreds of times longer in time.
    assert min(widths) > max(widths) / 10, widths
    # One formatter: every best time of the table is written the same way in the chart.
    for row in rows[:3]:
        best = re.search(r"\s(\d[\d.]* (?:s|ms|µs|ns))\s", row)[1]
        assert best in svg, (best, row)
    assert "e+" not in svg and "e-" not in svg
    # Labels get the room they need: each right-aligned label starts inside the picture.
    for x, label in re.findall(r'<text x="([\d.]+)" y="[\d.]+" text-anchor="end">([^<]+)</text>', svg):
        assert float(x) >= 6.5 * len(label.replace("&#x27;", "'")), (x, label)


def test_compare_warns_when_results_differ(kernel):
    kernel.run("import numpy as np").ok()
    same = kernel.run("%polyglot compare [0.1+0.2,2.0] np.array([0.3,2.0]) (0.3,2)").ok()
    assert "differ" not in same.stderr
    differ = kernel.run("%polyglot compare sum([1,2]) 3.0 len('abcd')").ok()
    warnings = [line for line in differ.stderr.splitlines() if "differ" in line]
    assert len(warnings) == 1 and "len('abcd') gave 4" in warnings[0] and "sum([1,2]) gave 3" in warnings[0]


@pytest.mark.parametrize("a,b,agree", [
    (0.1 + 0.2, 0.3, True),
    (1.0, 1.001, False),
    ([1, 2], (1, 2), True),
    ({"a": 1.0}, {"a": 1.0 + 1e-13}, True),
    ([1.0, 2.0], [1.0], False),
])
def test_results_agree(a, b, agree):
    assert results_agree(a, b) is agree


def test_results_agree_compares_arrays_with_numpy_semantics():
    import numpy as np

    assert results_agree(np.arange(3.0), [0.0, 1.0, 2.0 + 1e-12])
    assert not results_agree(np.arange(3.0), np.arange(4.0))
    assert not results_agree(np.arange(3), np.array([0, 1, 3]))
    assert results_agree(np.array([np.nan, 1.0]), np.array([np.nan, 1.0]))


def test_compare_a_misspelled_name_is_the_user_s_name_error_alone(kernel):
    kernel.run("def slow(n): return sum(i * i for i in range(n))").ok()
    out = kernel.run("%polyglot compare slow(10) slwo(10)")
    assert out.status == "error" and out.error["ename"] == "NameError"
    text = out.error_text
    assert "name 'slwo' is not defined" in text and "slwo(10)" in text
    assert not re.search(r"magics\.py|compare\.py|timeit|interactiveshell", text), text
    assert len(text.splitlines()) <= 8, text
    assert out.displays == []  # nothing was timed
    # An error raised inside the user's own function keeps the user's frames.
    kernel.run("def broken(n): return 1 / 0").ok()
    out = kernel.run("%polyglot compare slow(10) broken(1)")
    assert out.error["ename"] == "ZeroDivisionError" and "return 1 / 0" in out.error_text
    assert "compare.py" not in out.error_text


def test_profile_table_sorted_by_total(kernel):
    kernel.run(
        "from ipolyglot.kernel.core.profiling import PROFILER\n"
        "PROFILER.reset()\n"
        "for _ in range(4): PROFILER.record('go', 'Cheap', 1000, 100, 600, 100)\n"
        "for _ in range(2): PROFILER.record('cpp', 'costly', 900000, 800000, 50000, 10000)\n"
    ).ok()
    out = kernel.run("%polyglot profile").ok()
    rows = out.displays[0]["text/plain"].splitlines()[2:]
    assert rows[0].startswith("costly (cpp)") and rows[1].startswith("Cheap (go)")
    assert rows[0].split()[2] == "2" and rows[1].split()[2] == "4"
    assert "<svg" in out.displays[1]["image/svg+xml"]
    kernel.run("%polyglot profile reset").ok()
    assert "nothing recorded" in kernel.run("%polyglot profile").ok().stdout


def test_profile_on_off_switches_new_builds(kernel):
    assert "from now on" in kernel.run("%polyglot profile on").ok().stdout
    assert kernel.eval("PROFILER.always") is True
    kernel.run("%polyglot profile off").ok()
    assert kernel.eval("PROFILER.always") is False


CPP_PROFILED = """%%cpp --profile
long cpp_spin(long n) { long t = 0; for (long i = 0; i < n; ++i) t += i % 3; return t; }
struct Tally {
    int n = 0;
    int bump() { return ++n; }
    static int twice(int x) { return 2 * x; }
};
"""


@pytest.mark.kernel_modes("in-process")  # an in-process call's phases add up without a process crossing (worker calls: test_worker_channel)
def test_cpp_profile_measures_the_call_overhead_and_keeps_methods_working(kernel):
    kernel.run(CPP_PROFILED).ok()
    kernel.run(
        "from ipolyglot.kernel.core.profiling import PROFILER\nPROFILER.reset()\n"
        "for _ in range(5): cpp_spin(10_000_000)\n"
        "tally = Tally()\nbumps = [tally.bump() for _ in range(3)]\n"
    ).ok()
    assert kernel.eval("bumps, Tally.twice(4), tally.twice(5), tally.n") == ([1, 2, 3], 8, 10, 3)
    stats = kernel.eval(
        "{s.name: (s.calls, [(p.total_ns, p.copy_in_ns, p.native_ns, p.copy_out_ns, p.overhead_ns) "
        "for p in (s.first, s.later)]) for s in PROFILER.stats()}"
    )
    assert stats["cpp_spin"][0] == 5 and stats["Tally.bump"][0] == 3 and stats["Tally.twice"][0] == 2
    for _, phase_sets in stats.values():
        for total, copy_in, native, copy_out, overhead in phase_sets:
            assert copy_in + native + copy_out + overhead == total
            # The whole call is timed as Python sees it, outside pybind11's dispatcher: the rest is measured, not zero.
            assert overhead > 0 and copy_in + native + copy_out < total
    total, _, native, _, _ = stats["cpp_spin"][1][1]
    # Ten million iterations (milliseconds) dominate a call with one int in and out, even when the
    # scheduler preempts the Python side of a call on a busy machine.
    assert native > total / 2


@pytest.mark.parametrize("seconds,text", [
    (0.0175, "17.5 ms"), (0.0009996, "1 ms"), (5.53e-8, "55.3 ns"), (2.5, "2.5 s"), (1234.0, "1,230 s"),
])
def test_durations_have_one_format_without_e_notation(seconds, text):
    from ipolyglot.kernel.core.charts import format_seconds

    assert format_seconds(seconds) == text


@pytest.mark.parametrize("ratio,text", [
    (1.0, "1×"), (0.01724, "0.0172×"), (58.04, "58×"), (44312.0, "44,300×"), (3.16e-6, "0.00000316×"),
])
def test_ratios_have_one_format_without_e_notation(ratio, text):
    from ipolyglot.kernel.core.charts import format_ratio

    assert format_ratio(ratio) == text


def test_speed_up_in_words():
    from ipolyglot.kernel.profile_view import speed_up

    assert (speed_up(1 / 58), speed_up(3.0), speed_up(1.0)) == ("58× faster", "3× slower", "same")


def test_profiler_keeps_the_first_call_apart():
    from ipolyglot.kernel.core.profiling import BoundaryProfiler

    profiler = BoundaryProfiler()
    profiler.record("go", "F", 5_000_000, 10_000, 4_000_000, 900_000)  # first call: one-time costs
    for _ in range(3):
        profiler.record("go", "F", 1_000, 100, 700, 50)
    (stats,) = profiler.stats()
    assert stats.calls == 4 and stats.steady_calls == 3
    assert (stats.first.total_ns, stats.total_ns, stats.copy_out_ns, stats.overhead_ns) == (5_000_000, 3_000, 150, 450)
    assert stats.all_calls_ns == 5_003_000


def test_timed_entry_times_the_whole_call_and_records_nothing_for_a_raising_call():
    from ipolyglot.kernel.core.profiling import BoundaryProfiler

    profiler = BoundaryProfiler()
    phases = [(10, 20, 30)]

    def native(x):
        """Doubles."""
        if x < 0:
            raise ValueError("negative")
        return 2 * x

    entry = profiler.timed_entry(native, "cpp", "native", lambda: phases.pop() if phases else None)
    assert entry(3) == 6 and entry.__wrapped__ is native and entry.__doc__ == "Doubles."
    with pytest.raises(ValueError):
        entry(-1)
    (stats,) = profiler.stats()
    assert stats.calls == 1 and stats.first.total_ns > 0 and stats.first.copy_in_ns == 10
