"""Ordinary C++ that must build, errors that name only the user's lines, and
calls that fail with one short, precise message; through one real kernel.

The tests of this module run in order and share the kernel's C++ session.
"""

from __future__ import annotations

import re

import pytest

from ipolyglot.cpp_ext import bindgen, build, parser
from ipolyglot.kernel.core.cells import CellRegistry

# What a C++ user is told holds in both execution modes (see conftest).
KERNEL_MODES = ("worker", "in-process")


# -- ordinary C++ that builds (issue 10, item 4) ---------------------------------------

GLOBALS = r'''%%cpp
#include <atomic>
#include <string>
constexpr int N = 3, M = 4;
inline int shared_count = 5;
thread_local int per_thread = 7, other_thread = 8;
extern int declared_later;
int declared_later = 9;
typedef int Int, *IntPtr;
using Text = std::string;
int x1 = 1, x2 = 2;
std::atomic<int> hits{0}, misses{0};
static int counter = 0, *counter_ptr = &counter;
static int helper() { return 2; }
int from_helper = helper();
static int bump() { return ++counter; }
int first = bump(), second = bump();
int direct(5), *direct_ptr(&direct), (*no_op)(int)(nullptr), paren((1 + 2) * 3);
unsigned long long wide = 1ULL << 40, narrow(7);
struct Arr { int xs[N]; int size() const { return N + M; } };
int sum_globals() { Int a = x1 + x2 + shared_count + per_thread + other_thread + declared_later; IntPtr p = &a; return *p; }
int statics() { return from_helper * 100 + first * 10 + second + *counter_ptr * 1000; }
int hit() { return ++hits + misses; }
Text text() { return Text("t"); }
int direct_inits() { return direct + *direct_ptr + paren + int(narrow) + (no_op == nullptr) + int(wide >> 40); }
'''

FIRST_ANONYMOUS = r'''%%cpp
namespace { int h() { return 1; } }
static int count = 10;
int use_first() { return h() + count; }
'''

SECOND_ANONYMOUS = r'''%%cpp
namespace { int h() { return 2; } }
namespace { int h2() { return 20; } }
static int count = 100;
int use_second() { return h() + h2() + count; }
'''

C_API_TABLE = r'''%%cpp
#include <Python.h>
static PyObject* c_hello(PyObject*, PyObject*) { return PyUnicode_FromString("hi"); }
static PyObject* c_bye(PyObject*, PyObject*) { return PyUnicode_FromString("bye"); }
static PyMethodDef methods[] = {
    {"hello", c_hello, METH_NOARGS, "say hi"},
    {"bye", c_bye, METH_NOARGS, "say bye"},
    {nullptr, nullptr, 0, nullptr}
};
int count_methods() { int n = 0; while (methods[n].ml_name) ++n; return n; }
'''


def test_several_declarators_statics_and_constants_build(kernel):
    kernel.run(GLOBALS).ok()
    values = kernel.eval("sum_globals(), statics(), hit(), hit(), Arr().size(), text(), direct_inits()")
    # from_helper = 2, first = 1, second = 2, counter = 2 after both bumps; direct-initialised
    # declarators (`int n(2)`, a function pointer's `(*f)(int)(nullptr)`) keep their initialisers.
    assert values == (32, 2212, 1, 2, 7, "t", 5 + 5 + 9 + 7 + 1 + 1)
    warned = kernel.run(GLOBALS).ok().stderr  # the same cell again: no duplicate definitions
    assert "static function 'helper' is compiled but not bound" in warned
    assert kernel.eval("'helper' in dir(), 'bump' in dir()") == (False, False)


def test_anonymous_namespaces_and_statics_are_private_to_each_cell(kernel):
    kernel.run(FIRST_ANONYMOUS).ok()
    kernel.run(SECOND_ANONYMOUS).ok()
    assert kernel.eval("use_first(), use_second(), sum_globals()") == (11, 122, 32)


def test_an_edited_cell_may_add_what_its_older_declarations_use(kernel):
    kernel.run("%%cpp\nstruct Grid { int cells[4]; int n() const { return 4; } };\nint grid_size() { return Grid().n(); }\n").ok()
    # The edit adds a constant above the struct that now uses it.
    kernel.run("%%cpp\nconstexpr int WIDTH = 5;\nstatic int scale() { return 10; }\nstruct Grid { int cells[WIDTH]; int n() const { return WIDTH; } };\nint grid_size() { return Grid().n() * scale(); }\n").ok()
    assert kernel.eval("grid_size(), Grid().n()") == (50, 5)


def test_c_api_methods_table_of_static_functions(kernel):
    kernel.run(C_API_TABLE).ok()
    assert kernel.eval("count_methods(), use_first()") == (2, 11)


def test_unknown_standard_is_one_clear_line(kernel):
    out = kernel.run("%%cpp --std c++99\nint z() { return 1; }\n")
    assert out.status == "error"
    assert "--std c++99: not a C++ standard ipolyglot can build; use c++14, c++17, c++20 or c++23" in out.error_text
    assert "TranslationUnitLoadError" not in out.error_text and "Traceback" not in out.error_text


# -- errors name only the user's lines (item 5) -----------------------------------------------

def _error_lines(text: str) -> list[int]:
    return [int(n) for n in re.findall(r"(?m)^(?:In \[\d+\], )?line (\d+)", text)]


def test_a_syntax_error_names_only_its_line(kernel):
    out = kernel.run("%%cpp\nint broken_one( { return 1; }\n")
    assert out.status == "error"
    assert _error_lines(out.error_text) and set(_error_lines(out.error_text)) == {2}, out.error_text
    assert "namespace" not in out.error_text
    out = kernel.run("%%cpp\n#include <vector>\nint broken_two(std::vector<int> v) {\n    return v.size() +;\n}\n")
    assert set(_error_lines(out.error_text)) == {4}, out.error_text
    assert "generated" not in out.error_text
    # Earlier definitions still work after the failing cells.
    assert kernel.eval("use_first(), count_methods()") == (11, 2)


def test_an_unclosed_brace_is_reported_in_the_cell(kernel):
    out = kernel.run("%%cpp\nint unclosed(int x) {\n    return x;\n\nint after() { return 1; }\n")
    assert out.status == "error"
    lines = _error_lines(out.error_text)
    assert lines and all(2 <= n <= 6 for n in lines), out.error_text
    shown = out.error_text.splitlines()
    assert all(shown[i - 1].strip() for i, line in enumerate(shown) if line.strip() == "^"), out.error_text  # no bare caret
    assert kernel.eval("use_second()") == 122


def test_an_error_in_a_macro_a_line_expands_is_shown_at_that_line(kernel):
    # A macro given with -D has no line of its own (g++ says `<command-line>`): the line using it has the error.
    out = kernel.run("%%cpp --cflags '-DGREETING=hi'\n#include <string>\nstd::string greeting() {\n    return GREETING;\n}\n")
    assert out.status == "error"
    assert set(_error_lines(out.error_text)) == {4}, out.error_text
    assert "was not declared in this scope" in out.error_text and "(in expansion of macro" in out.error_text, out.error_text
    assert "cell-" not in out.error_text and "command-line" not in out.error_text, out.error_text


def test_an_error_inside_a_standard_header_is_shown_at_the_cell_line(kernel):
    out = kernel.run("%%cpp\n#include <algorithm>\n#include <vector>\nstruct NoLess { int v; };\nvoid sort_them(std::vector<NoLess>& xs) {\n    std::sort(xs.begin(), xs.end());\n}\n")
    assert out.status == "error"
    assert set(_error_lines(out.error_text)) == {6}, out.error_text
    assert "reached from this line" in out.error_text


# -- pybind11 in a cell, and cells' own bindings (item 11) -------------------------------------

def test_a_cell_with_its_own_module_is_told_what_cells_are(kernel):
    out = kernel.run("%%cpp\n#include <pybind11/pybind11.h>\nint twice(int x) { return 2 * x; }\nPYBIND11_MODULE(mymod, m) { m.def(\"twice\", &twice); }\n")
    assert out.status == "error"
    text = out.error_text
    assert text.splitlines()[1].startswith("line 4: PYBIND11_MODULE: a %%cpp cell is not an extension module of its own"), text
    assert "ipolyglot_bind(pybind11::module_& m)" in text
    assert "No such file" not in text


def test_pybind11_in_one_cell_leaves_other_cells_plain(kernel):
    kernel.run(r'''%%cpp
#include <pybind11/pybind11.h>
#include <vector>
namespace py = pybind11;
long long released_sum(const std::vector<long long>& xs) {
    py::gil_scoped_release release;
    long long s = 0;
    for (auto x : xs) s += x;
    return s;
}
''').ok()
    out = kernel.run("%%cpp -v\n#include <vector>\nlong long plain_after(long long x) { return x + 3; }\n").ok()
    # This cell's unit holds no pybind11 (it compiles without its include path),
    # though it sees the declarations of the cell that uses it. (A function that
    # releases the GIL itself must be called from Python: C++ callers run
    # without the GIL already.)
    unit_path = re.search(r"generated code: (\S+user\.cpp)", out.stdout).group(1)
    unit_text = open(unit_path).read()
    assert "plain_after" in unit_text and "released_sum" in unit_text
    assert "#include <pybind11" not in unit_text and "= pybind11" not in unit_text and "Python.h" not in unit_text
    assert kernel.eval("released_sum([1, 2, 3]), plain_after(1)") == (6, 4)


BIND_A = r'''%%cpp
int hidden_a(int x) { return x * 3; }
void ipolyglot_bind(pybind11::module_& m) {
    m.def("tripled", &hidden_a);
    m.attr("BOUND_BY") = "a";
}
'''

BIND_B = r'''%%cpp
int hidden_b(int x) { return x * 4; }
int forgotten_b(int x) { return x * 5; }
void ipolyglot_bind(pybind11::module_& m) {
    m.def("quadrupled", &hidden_b);
    m.attr("BOUND_BY") = "b";
}
'''


def test_each_cells_ipolyglot_bind_adds_to_the_others(kernel):
    # pybind11 is included for a cell's ipolyglot_bind: libclang reads it so too, without warnings;
    # hidden_a, registered by another name, is not said to be left unbound.
    assert "warning" not in kernel.run(BIND_A).ok().stderr
    # A function its cell's ipolyglot_bind does not register is not bound: said, not silent.
    warned = kernel.run(BIND_B).ok().stderr
    assert "not bound: forgotten_b: a cell with its own ipolyglot_bind is bound only through it" in warned, warned
    assert kernel.eval("tripled(2), quadrupled(2), BOUND_BY, 'forgotten_b' in dir()") == (6, 8, "b", False)
    kernel.run(BIND_A).ok()  # the same cell again replaces its own bindings, nothing doubles
    listing = kernel.run("%polyglot cpp").ok().stdout
    assert len(re.findall(r"ipolyglot_bind \(In \[\d+\]\)", listing)) == 2, listing
    assert kernel.eval("tripled(2), quadrupled(2)") == (6, 8)


# -- calls: clean errors, range checks, signatures (items 9, 10, 15) ----------------------------

CALLS = r'''%%cpp
#include <string>
#include <vector>
/// Adds two numbers.
/// The second defaults to ten.
int add(int a, int b = 10) { return a + b; }
/** Halves a float. */
float halve(float x) { return x / 2; }
// Echoes an unsigned number.
unsigned int echo_unsigned(unsigned int u) { return u; }
int over(int a) { return a; }
std::string over(const std::string& s) { return s + "!"; }
double mean_of(const std::vector<double>& xs) { double s = 0; for (double x : xs) s += x; return s / xs.size(); }
'''


@pytest.fixture(scope="module")
def calls(kernel):
    kernel.run(CALLS).ok()
    return kernel


def _error(kernel, code: str) -> tuple[str, str, str]:
    out = kernel.run(code)
    assert out.status == "error", code
    return out.error["ename"], out.error["evalue"], out.error_text


def test_wrong_types_raise_one_short_type_error(calls):
    ename, evalue, text = _error(calls, 'add("a", 1)')
    assert (ename, evalue) == ("TypeError", "add() parameter a (C++ type int): expected int, got str")
    assert "incompatible function arguments" not in text and "During handling" not in text and "direct cause" not in text
    assert _error(calls, "mean_of(['x'])")[:2] == ("TypeError", "mean_of() parameter xs (C++ type std::vector<double>): item 0: expected float, got str")
    assert _error(calls, "add(1, 2, 3)")[:2] == ("TypeError", "add() takes 2 arguments (3 given)")
    assert _error(calls, "add(1, c=2)")[:2] == ("TypeError", "add() got an unexpected keyword argument 'c'")
    assert _error(calls, "add(b=2)")[:2] == ("TypeError", "add() missing argument 'a'")
    ename, evalue, _ = _error(calls, "over(1.5)")
    assert ename == "TypeError" and evalue.startswith("over(): no overload takes (float)")
    assert "over(a: int) -> int" in evalue and "over(s: str) -> str" in evalue
    assert calls.eval("add(1), add(b=1, a=2), over(3), over('x'), mean_of([1.0, 3.0])") == (11, 3, 3, "x!", 2.0)


def test_numbers_out_of_range_raise_overflow_error(calls):
    assert _error(calls, "halve(1e300)")[:2] == ("OverflowError", "halve() parameter x (C++ type float): 1e+300 is out of range")
    assert _error(calls, "add(2**40)")[:2] == ("OverflowError", "add() parameter a (C++ type int): 1099511627776 is out of range")
    assert _error(calls, "echo_unsigned(-1)")[:2] == ("OverflowError", "echo_unsigned() parameter u (C++ type unsigned int): -1 is out of range")
    # Values in range, and infinities (which a float holds), still pass.
    assert calls.eval("halve(3.0e38) > 1e38, str(halve(float('inf'))), echo_unsigned(2**32 - 1)") == (True, "inf", 2**32 - 1)


def test_signatures_and_docstrings(calls):
    assert calls.eval("str(__import__('inspect').signature(add))") == "(a: int, b: int = 10) -> int"
    assert calls.eval("repr(add)") == "<C++ function add(a: int, b: int = 10) -> int>"
    assert calls.eval("add.__doc__") == "add(a: int, b: int = 10) -> int\n\nAdds two numbers.\nThe second defaults to ten."
    assert calls.eval("halve.__doc__, echo_unsigned.__doc__") == ("halve(x: float) -> float\n\nHalves a float.", "echo_unsigned(u: int) -> int\n\nEchoes an unsigned number.")
    assert calls.eval("str(__import__('inspect').signature(over))") == "(*args, **kwargs)"
    assert calls.eval("over.__doc__") == "over(a: int) -> int\nover(s: str) -> str"


# -- without a compiler ----------------------------------------------------------------------

def _pieces(body: str) -> list[parser.Piece]:
    return parser.split_cell(body, "", parser.parse_args("c++17", [], [], None)).pieces


def test_each_declarator_becomes_a_declaration_of_its_own():
    pieces = {p.name: p for p in _pieces("int a = 1, *b = &a;\nstatic int s = 0, t;\nconst int k = 1, j = 2;\ntypedef int I, *IP;\n")}
    assert (pieces["a"].user_text, pieces["a"].header_text) == ("a = 1;", "extern int a;")
    assert (pieces["b"].user_text, pieces["b"].header_text, pieces["b"].prefix) == ("*b = &a;", "extern int *b;", "int")
    assert pieces["s"].private and pieces["t"].private and not pieces["k"].private
    assert pieces["j"].header_text == "const int j = 2;"
    assert (pieces["IP"].header_text, pieces["I"].header_text) == ("typedef int *IP;", "typedef int I;")


def test_python_types_of_cpp_types():
    cases = {
        "int": "int", "unsigned long long": "int", "double": "float", "const std::basic_string<char> &": "str",
        "std::vector<double>": "list[float]", "std::map<std::basic_string<char>, int>": "dict[str, int]",
        "std::optional<int>": "int | None", "std::tuple<int, double>": "tuple[int, float]", "::geo::Box": "Box", "void": "None",
    }
    assert {t: bindgen.python_type(t) for t in cases} == cases


def test_generated_code_errors_follow_cell_errors_or_say_what_they_are():
    cells = CellRegistry()
    x = cells.register("int f( {\n", "In [1]").id
    output = "\n".join([
        f"{x}:2:7: error: expected ')' before '{{' token",
        "ipolyglot-generated.cpp:3:1: error: expected initializer before 'namespace'",
        f"{x}:9:1: error: expected '}}' at end of input",
    ])
    found = build.diagnostics(output, cells, x)
    assert [(d.line, d.message) for d in found] == [(2, "expected ')' before '{' token")]
    only_generated = build.diagnostics("bind.cpp:40:3: error: no matching function", cells, x, "the generated binding code")
    assert [d.render() for d in only_generated] == ["in the generated binding code: no matching function"]
