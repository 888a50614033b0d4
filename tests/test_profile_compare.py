"""`%polyglot profile` display and `%polyglot compare` through the kernel."""

from __future__ import annotations

import pytest

from ipolyglot.kernel.compare import split_expressions


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
    assert [row.split()[0] for row in table[2:]] == ["slow(10)", "slow(2000)", "len('abc')"]
    assert table[2].split()[5] == "1×"  # the first is the baseline
    ratio = float(table[3].split()[5].rstrip("×"))
    assert ratio > 5  # 2000 iterations cost more than 10
    assert out.displays[1]["image/svg+xml"].startswith("<svg")
    assert out.displays[1]["image/svg+xml"].count("<rect") >= 3


def test_compare_reports_a_bad_expression(kernel):
    out = kernel.run("%polyglot compare 1+ ")
    assert out.status == "error"


def test_profile_table_sorted_by_total(kernel):
    kernel.run(
        "from ipolyglot.kernel.profiling import PROFILER\n"
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
