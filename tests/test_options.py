"""Cell-magic options whose values start with '-': quoted flag lists reach the compiler."""

from __future__ import annotations

import pytest

from ipolyglot.cpp_ext.backend import CppBackend
from ipolyglot.go_bridge.backend import GoBackend
from ipolyglot.kernel.core.options import OptionError, make_parser, parse_line

FAST_MATH_PROBE = """
int {name}() {{
#ifdef __FAST_MATH__
    return 1;
#else
    return 0;
#endif
}}"""


def test_quoted_cflags_reach_the_cxx_compiler(kernel):
    for line, name, fast_math in [
        ('%%cpp --cflags "-O3 -ffast-math"', "fast_math_list", 1),
        ('%%cpp --cflags "-ffast-math"', "fast_math_one", 1),
        ("%%cpp --cflags=-ffast-math", "fast_math_joined", 1),
        ("%%cpp", "fast_math_none", 0),  # the probe can tell
    ]:
        kernel.run(line + FAST_MATH_PROBE.format(name=name)).ok()
        assert kernel.eval(f"{name}()") == fast_math, line


def test_quoted_gcflags_reach_the_go_compiler(kernel):
    built = kernel.run('%%go -f -v --gcflags "-N -l"\nfunc NotOptimized(a int) int { return a * 2 }').ok()
    assert "'-gcflags=-N -l'" in built.stdout, built.stdout
    assert kernel.eval("NotOptimized(21)") == 42
    refused = kernel.run('%%go --gcflags "-no-such-compiler-flag"\nfunc Refused() int { return 1 }')
    assert refused.status == "error" and "no-such-compiler-flag" in refused.error_text, refused.error_text


def test_a_really_missing_value_is_a_usage_error(kernel):
    out = kernel.run("%%cpp --cflags\nint no_flags() { return 1; }")
    assert out.status == "error"
    assert "argument --cflags: expected one argument" in out.error_text and "usage: %%cpp" in out.error_text
    assert "Traceback" not in out.error_text


@pytest.mark.parametrize("line, expected", [
    ('--cflags "-O3 -ffast-math" -f', {"cflags": "-O3 -ffast-math", "force": True}),
    ("--cflags -ffast-math", {"cflags": "-ffast-math"}),
    ("--cflags=-ffast-math", {"cflags": "-ffast-math"}),
    ("-I -odd-dir -I inc -Iother -O 3 -l m", {"include_dirs": ["-odd-dir", "inc", "other"], "opt": "-O3", "libs": ["m"]}),
    ("-i a,b -o c", {"input": ["a", "b"], "output": ["c"]}),
])
def test_option_values_may_start_with_a_dash(line, expected):
    options = vars(parse_line(make_parser("cpp", CppBackend()), line))
    assert {key: options[key] for key in expected} == expected


def test_go_flag_lists_and_errors_without_a_compiler():
    parser = make_parser("go", GoBackend())
    assert parse_line(parser, '--gcflags "-N -l" --ldflags "-X main.v=1"').gcflags == "-N -l"
    with pytest.raises(OptionError, match="argument --gcflags: expected one argument"):
        parse_line(parser, "--gcflags")
    with pytest.raises(OptionError, match="'-x' is not a valid variable name"):
        parse_line(parser, "-i -x")
