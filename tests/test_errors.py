"""What a user sees when something goes wrong: their own line and the message, never ipolyglot's insides.

Errors raised through bound Go and C++ functions hide ipolyglot's frames;
errors of the user's own Python keep every frame; cell text that is not
UTF-8 is refused with one line that says where.
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest
from jupyter_client.session import json_default

from conftest import RunningKernel
from ipolyglot.kernel.core.cells import CellTextError, check_text

# What a user is told when something goes wrong holds in both execution modes (see conftest).
KERNEL_MODES = ("worker", "in-process")

GO_CELL = """%%go
import "errors"
func ErrAdd(a, b int) int { return a + b }
func ErrSmall(a int8) int8 { return a }
func ErrFail() error { return errors.New("the disk is on fire") }
func ErrBoom() int {
	var m map[string]int
	m["x"] = 1
	return 0
}
func ErrEach(f func(int) int) int { return f(1) }
func ErrEcho(s string) string { return s }
"""

CPP_CELL = """%%cpp
#include <functional>
#include <stdexcept>
#include <string>
#include <vector>
int err_throw(int x) {
    if (x) throw std::invalid_argument("no such widget");
    return x;
}
std::string err_echo(const std::string& s) { return s; }
std::size_t err_count(const std::vector<std::string>& xs) { return xs.size(); }
std::string err_latin1() { return std::string("a\\xff" "b"); }
void err_throw_latin1() { throw std::runtime_error("caf\\xe9 closed"); }
int err_each(std::function<int(int)> f) { return f(1); }
std::string err_name(std::function<std::string(int)> f) { return f(1); }
"""

# Where ipolyglot's own code lives; no traceback of a native call may name it.
PACKAGE_DIRS = [
    str(Path(location).resolve())
    for name in ("ipolyglot.kernel", "ipolyglot.go_bridge", "ipolyglot.cpp_ext")
    for location in importlib.util.find_spec(name).submodule_search_locations
]


@pytest.fixture(scope="module")
def defined(kernel):
    kernel.run("widgets = 1").ok()
    kernel.run(GO_CELL).ok()
    kernel.run(CPP_CELL).ok()
    return kernel


def _assert_short(out, message: str) -> None:
    """The user's line, then the message: one frame, no internals, no chained exception."""
    assert out.status == "error"
    text = out.error_text
    assert message in text, text
    assert f"Cell In[{out.execution_count}], line 1" in text, text
    for directory in PACKAGE_DIRS:
        assert directory not in text, text
    for noise in ("Could not get source", "During handling of the above exception", "site-packages/ipolyglot", "File "):
        assert noise not in text, text
    lines = text.splitlines()
    message_line = next(index for index, line in enumerate(lines) if message.splitlines()[0] in line)
    assert message_line <= 5, text  # a rule, the exception's name, the cell's name, its line, a blank line


def test_errors_of_native_calls_show_the_users_line_and_the_message(defined):
    _assert_short(defined.run('ErrAdd("a", 1)'), "ErrAdd() parameter a (Go type int): expected int, got str")
    _assert_short(defined.run("ErrSmall(1000)"), "OverflowError: ErrSmall() parameter a (Go type int8)")
    _assert_short(defined.run("ErrFail()"), "GoError: the disk is on fire")
    panic = defined.run("ErrBoom()")
    _assert_short(panic, "GoPanic: assignment to entry in nil map")
    assert "ErrBoom(...)" in panic.error_text  # the Go stack is part of the message
    _assert_short(defined.run("err_throw(1)"), "ValueError: no such widget")
    # A callback's result the native type cannot take: named as a parameter is, in Go and C++ alike.
    _assert_short(defined.run("ErrEach(lambda x: 'no')"), "TypeError: callback result (Go type int): expected int, got str")
    _assert_short(defined.run("err_each(lambda x: 'no')"), "TypeError: callback result (C++ type int): expected int, got str")
    _assert_short(defined.run("err_name(lambda x: 1)"), "TypeError: callback result (C++ type std::string): expected str, got int")
    _assert_short(defined.run("ErrEach(lambda x: 2**70)"), "OverflowError: callback result (Go type int): 1180591620717411303424 is out of range")
    _assert_short(defined.run("err_each(lambda x: 2**70)"), "OverflowError: callback result (C++ type int): 1180591620717411303424 is out of range")
    assert defined.eval("ErrEach(lambda x: x + 1), err_each(lambda x: x + 1), err_name(str)") == (2, 2, "1")

    # Statement cells run native code at once: their failures read the same way.
    go_statement = defined.run('%%go\nvar m map[string]int\nm["x"] = 1')
    _assert_short(go_statement, "GoPanic: assignment to entry in nil map")
    assert f"In [{go_statement.execution_count}]:3" in go_statement.error_text  # the Go stack names the cell line
    _assert_short(defined.run("%%cpp -i widgets\nerr_throw(widgets);"), "ValueError: no such widget")


def test_a_str_that_is_not_utf8_crossing_into_native_code(defined):
    # A lone surrogate is what bytes decoded with errors="surrogateescape" leave: Go takes it
    # back to those bytes; a C++ string takes UTF-8 text, and the error says which character.
    assert defined.eval("ErrEcho('a\\udcffb') == 'a\\udcffb', err_echo(b'ab'), err_count(['x', 'y'])") == (True, "ab", 2)
    _assert_short(defined.run("err_echo('a\\udcffb')"),
                  "ValueError: err_echo() parameter s (C++ type std::string): U+DCFF at index 1 is not a character "
                  "(a lone surrogate, left by text that was not valid UTF-8): a C++ string takes UTF-8 text or bytes")
    _assert_short(defined.run("err_count(['ok', '\\udcfe'])"),
                  "ValueError: err_count() parameter xs (C++ type std::vector<std::string>): item 1: U+DCFE at index 0 ")
    # and text that is not UTF-8 coming back from C++ (a result, an exception's what()) says why, in both modes
    _assert_short(defined.run("err_latin1()"), "UnicodeDecodeError: 'utf-8' codec can't decode byte 0xff in position 1")
    _assert_short(defined.run("err_throw_latin1()"), "UnicodeDecodeError: 'utf-8' codec can't decode byte 0xe9 in position 3")


def test_the_users_own_frames_stay(defined):
    own = defined.run("def half(x):\n    return 1 / x\nhalf(0)")
    assert own.status == "error"
    assert f"Cell In[{own.execution_count}], line 3" in own.error_text
    assert "line 2, in half(x)" in own.error_text and "ZeroDivisionError: division by zero" in own.error_text

    # A callback of the user's raising inside a Go call: both of the user's lines, none of ipolyglot's.
    callback = defined.run("def bad(v):\n    return v / 0\nErrEach(bad)")
    assert "line 3" in callback.error_text and "line 2, in bad(v)" in callback.error_text
    assert "ZeroDivisionError" in callback.error_text
    assert not any(directory in callback.error_text for directory in PACKAGE_DIRS), callback.error_text

    # A user's function that calls a native one wrongly: its frame stays, the internals go.
    nested = defined.run("def total():\n    return ErrAdd(1, 'b')\ntotal()")
    assert "line 3" in nested.error_text and "line 2, in total()" in nested.error_text
    assert "parameter b (Go type int): expected int, got str" in nested.error_text
    assert not any(directory in nested.error_text for directory in PACKAGE_DIRS), nested.error_text
    assert defined.eval("ErrAdd(2, 3)") == 5


def _run_escaped(kernel, code: str):
    """Send a cell as a browser does: non-ASCII as JSON escapes, so a lone surrogate arrives as one."""
    default = kernel.kc.session.pack
    kernel.kc.session.pack = lambda obj: json.dumps(obj, default=json_default, ensure_ascii=True, allow_nan=False).encode()
    try:
        return kernel.run(code)
    finally:
        kernel.kc.session.pack = default


def test_cell_text_that_is_not_utf8_is_one_line_naming_where(defined):
    go = _run_escaped(defined, '%%go\n// fine\nfunc Bad() string { return "a\udcffb" }')
    assert go.status == "error"
    assert go.error_text == "CellTextError: line 3, column 30: U+DCFF is not a character (a lone surrogate, " \
                            "left by text that was not valid UTF-8): remove or retype it"
    cpp = _run_escaped(defined, "%%cpp\nint bad() {\n    return 1; } // \udcff")
    assert cpp.error_text.startswith("CellTextError: line 3, column 20: U+DCFF ") and "\n" not in cpp.error_text

    # The magic refuses it too, for front ends that hand such text straight to it (a terminal, run_cell_magic).
    direct = defined.run("get_ipython().run_cell_magic('cpp', '-O2', 'int bad() {\\n  return 1; } // \\udcff')")
    assert direct.error_text.startswith("CellTextError: line 3, column 18: U+DCFF ") and "\n" not in direct.error_text
    options = defined.run("get_ipython().run_cell_magic('go', '--tags \\udcff', 'func Bad() {}')")
    assert options.error_text.startswith("CellTextError: line 1, column 13: U+DCFF "), options.error_text

    assert defined.eval("ErrAdd(1, 2), err_throw(0)") == (3, 0)  # earlier definitions still work
    assert defined.run("%polyglot go").ok().stdout.count("Bad") == 0


def test_check_text_counts_lines_and_columns():
    check_text("%%go\nfunc F() string { return \"é\" }")  # any real character is fine
    with pytest.raises(CellTextError, match=r"^line 1, column 1: U\+D800 "):
        check_text("\ud800")
    with pytest.raises(CellTextError, match=r"^line 4, column 3: U\+DCFF "):
        check_text("a\nb\n\nxy\udcffz\n\udcfe")


def test_errors_read_the_same_when_native_code_runs_in_the_worker():
    with RunningKernel() as running:
        running.run("%polyglot mode worker").ok()
        running.run(GO_CELL).ok()
        running.run(CPP_CELL).ok()
        _assert_short(running.run('ErrAdd("a", 1)'), "ErrAdd() parameter a (Go type int): expected int, got str")
        _assert_short(running.run("ErrBoom()"), "GoPanic: assignment to entry in nil map")
        _assert_short(running.run("err_throw(1)"), "no such widget")
