"""The C++ backend's steps that need no compiler: composing a build from typed
declarations, reading cells with libclang, and mapping g++'s output (captured
once from real builds) back to the cells' lines."""

from __future__ import annotations

import dataclasses

import pytest

from ipolyglot.cpp_ext import build, parser, unit
from ipolyglot.cpp_ext.backend import CppBackend
from ipolyglot.cpp_ext.flags import Flags
from ipolyglot.cpp_ext.records import ClassBinding, Field, Function, Param, ParsedCell, Piece
from ipolyglot.cpp_ext.session import CppCandidate, declarations_of, session_pieces, with_cell
from ipolyglot.kernel.core.cells import CellRegistry
from ipolyglot.kernel.core.diagnostics import CompileError

ADD = "int add(int a, int b) { return a + b; }\n"
POINT = "struct P { int x; };\n"


def _add_piece(body: str = "return a + b;") -> Piece:
    params = [Param(n, "int", None, "int") for n in ("a", "b")]
    return Piece(
        name="add", kind="func", section="other", ns=[], user_text=f"int add(int a, int b) {{ {body} }}",
        header_text="int add(int a, int b);", proto_text="int add(int a, int b);", first_line=2,
        binds=[Function("add", "int", params, "::add", [])],
    )


def _point_piece() -> Piece:
    info = ClassBinding("P", "::P", [], fields=[Field("x", "int", False, "int")])
    return Piece(name="P", kind="class", section="type", ns=[], user_text=POINT.strip(), header_text=POINT.strip(), first_line=2, binds=[info])


def _session(*cells: tuple[str, list[Piece]]) -> CppCandidate:
    """The session after running these cells (text, pieces) in order, as the backend's candidate step forms it."""
    session = CppCandidate(None, CppBackend().declarations)
    for number, (text, pieces) in enumerate(cells, start=1):
        cell = CellRegistry().register(text, f"In [{number}]")
        decls, preamble = declarations_of(ParsedCell("decls", pieces), cell.id, cell.label, keep_gil=False)
        store, preamble_after, order = with_cell(session, decls, preamble, cell.id)
        session = CppCandidate(cell, store, preamble=preamble_after, order=order, cell_flags={**session.cell_flags, cell.id: Flags()}, current=cell.id)
    return session


def _compose(session: CppCandidate, skip: frozenset[int] = frozenset()) -> unit.CppUnit:
    how = unit.Composition(cell_flags=session.cell_flags, flags=session.flags, current=session.current, compiler="g++|test")
    return unit.compose(session_pieces(session), how, skip)


# -- compose ---------------------------------------------------------------------------------

def test_each_cell_gets_a_user_unit_with_its_own_lines_and_the_others_declarations():
    session = _session((ADD, [_add_piece()]), (POINT, [_point_piece()]))
    composed = _compose(session)
    add_cell, point_cell = (d.cell_id for d in session.declarations)
    assert list(composed.objects) == [add_cell, point_cell]  # in session order
    own = composed.objects[add_cell].text
    assert f'#line 2 "{add_cell}"\nint add(int a, int b) {{ return a + b; }}' in own
    other = composed.objects[point_cell].text
    assert "int add(int a, int b);" in other and "return a + b" not in other
    assert f'#line 2 "{point_cell}"\nstruct P {{ int x; }};' in other  # types are whole in every unit
    assert composed.bind.top_names == ["add", "P"]
    assert composed.bind.registered == {1: "add", 2: "P"}
    assert "return a + b" not in composed.bind.text  # the bindings see declarations only


def test_the_key_names_the_module_and_a_body_edit_keeps_the_binding_unit():
    first = _compose(_session((ADD, [_add_piece()])))
    again = _compose(_session((ADD, [_add_piece()])))
    edited = _compose(_session((ADD.replace("a + b", "b + a"), [_add_piece("return b + a;")])))
    assert first.key_parts == again.key_parts and first.module_name == again.module_name
    assert set(first.key_parts) == {"kind", "objects", "bind", "link", "compiler"}
    assert first.module_name.startswith("ipolyglot_cpp_") and first.module_name[14:] in build_key(first)
    assert edited.key_parts["bind"] == first.key_parts["bind"]
    assert edited.key_parts["objects"] != first.key_parts["objects"]


def build_key(composed: unit.CppUnit) -> str:
    from ipolyglot.kernel.core.cache import cache_key

    return cache_key(composed.key_parts)


def test_flags_are_data_in_the_key_and_a_debug_cell_is_named_by_its_label():
    session = _session((ADD, [_add_piece()]))
    cell = session.current
    session.cell_flags[cell] = Flags(opt="-O3", include_dirs=("/opt/x",), libs=("m",))
    how = unit.Composition(cell_flags=session.cell_flags, flags=session.flags, current=cell, compiler="g++|test")
    composed = unit.compose(session_pieces(session), how)
    flags = composed.objects[cell].flags
    assert flags[-1] == "-O3" and ["-I", "/opt/x"] == flags[flags.index("-I"):flags.index("-I") + 2]
    assert composed.link_flags == ["-lm"]
    assert '"-O3"' in composed.objects[cell].key_parts("g++|test")["flags"]  # JSON, never repr
    session.cell_flags[cell] = Flags(debug=True)
    how = dataclasses.replace(how, debug_names=[f"-fdebug-prefix-map={cell}=In [1]"])
    assert unit.compose(session_pieces(session), how).objects[cell].flags[-3:] == ["-g", "-O0", f"-fdebug-prefix-map={cell}=In [1]"]


def _function_piece(name: str, ret: str, params: list[tuple[str, str, str | None]], ns: list[str] | None = None) -> Piece:
    """A free function `name` with (name, canonical type, default) parameters."""
    written = ", ".join(f"{t} {n}" + (f" = {d}" if d else "") for n, t, d in params)
    proto = f"{ret} {name}({written});"
    record = Function(name, ret, [Param(n, t, d, t) for n, t, d in params], "::" + "::".join([*(ns or []), name]), ns or [])
    return Piece(name=name, kind="func", section="other", ns=ns or [], user_text=proto[:-1] + " { return {}; }",
                 header_text=proto, proto_text=proto, first_line=2, binds=[record])


def test_functions_of_plain_numbers_are_bound_by_the_generic_caller_without_pybind11():
    scale = _function_piece("scale", "double", [("x", "const double &", None), ("k", "unsigned long", None)])
    composed = _compose(_session((ADD, [_add_piece()]), ("scale", [scale])))
    bind = composed.bind
    assert bind.generic and "#include <pybind11" not in bind.text and "PYBIND11_MODULE" not in bind.text
    call = "::scale(std::move(*static_cast<double *>(args[0])), std::move(*static_cast<unsigned long *>(args[1])))"
    assert f"*static_cast<double *>(result) = {call}" in bind.text
    assert '{"k", ipolyglot_abi::kind_ulong, "const double &"' not in bind.text  # each parameter is described by its own type
    assert '{"k", ipolyglot_abi::kind_ulong, "unsigned long", "int"}' in bind.text
    assert '"scale(x, k)\\n--\\n\\nscale(x: float, k: int) -> float"' in bind.text  # the docstring pybind11 would carry
    assert bind.top_names == ["add", "scale"] and bind.registered == {1: "add", 2: "scale"}
    assert bind.key_parts("g++|test")["kind"] == "cpp-bind-generic"


@pytest.mark.parametrize("other", [
    _point_piece(),
    _function_piece("total", "double", [("xs", "const std::vector<std::vector<double>> &", None)]),
    _function_piece("add", "double", [("a", "double", None), ("b", "double", None)]),  # an overload of add
    _function_piece("bump", "int", [("x", "int", "1")]),  # a default argument is C++ code
    _function_piece("inner", "int", [("x", "int", None)], ns=["geo"]),  # a submodule
    _function_piece("twice", "void", [("x", "double &", None)]),  # written back to the caller
])
def test_a_session_with_anything_else_is_bound_by_pybind11(other):
    composed = _compose(_session((ADD + "// and another\n", [_add_piece(), other])))
    assert composed.bind.registered[2].endswith(other.name)
    assert not composed.bind.generic and "PYBIND11_MODULE(ipolyglot_bind, m)" in composed.bind.text


def test_options_that_change_the_standard_librarys_layout_bind_through_pybind11():
    session = _session((ADD, [_add_piece()]))
    session.cell_flags[session.current] = Flags(cflags=("-D_GLIBCXX_USE_CXX11_ABI=0",))
    assert not _compose(session).bind.generic
    session.cell_flags[session.current] = Flags(cflags=("-DNDEBUG", "-march=native"))
    assert _compose(session).bind.generic


def test_profiling_binds_through_pybind11():
    session = _session((ADD, [_add_piece()]))
    how = unit.Composition(cell_flags=session.cell_flags, flags=session.flags, current=session.current, compiler="g++|test", profile=True)
    assert not unit.compose(session_pieces(session), how).bind.generic


def test_a_dropped_registration_is_left_out_of_the_binding_unit():
    session = _session((ADD, [_add_piece()]), (POINT, [_point_piece()]))  # the class needs pybind11
    whole = _compose(session)
    without_add = _compose(session, frozenset({1}))
    assert "&::add" in whole.bind.text and "&::add" not in without_add.bind.text
    assert "ipolyglot_register_1(" not in without_add.bind.text
    assert without_add.bind.registered == {2: "P"}  # indices stay those of the whole session
    assert without_add.bind.fallbacks == {} and whole.bind.fallbacks == {3: [1]}
    assert without_add.objects == whole.objects  # the cells' own code is unchanged


def test_the_backend_composes_what_the_pipeline_dropped():
    backend = CppBackend()
    ctx = type("Ctx", (), {"profile": False, "cells": CellRegistry()})()
    session = _session((ADD, [_add_piece()]))
    dropped = {"1": "'add' is not bound: its signature cannot cross to Python (why)"}
    composed = backend.compose(session, dropped, ctx)
    assert composed.dropped == dropped and composed.bind.registered == {}


def test_a_statement_cell_becomes_a_function_of_its_inputs_returning_its_outputs():
    text = "auto w = v * 2;\n"
    statement = parser.parse_statement(text, "", _args(), {"v": "long long"}, ["w"]).statement
    session = dataclasses.replace(_session((ADD, [_add_piece()])), statements=statement, current="cell-stmt")
    how = unit.Composition(cell_flags={}, flags=Flags(), current="cell-stmt", compiler="g++|test", statement=statement, body_lines=2)
    composed = unit.compose(session_pieces(session), how)
    assert list(composed.objects)[0] == "cell-stmt"
    own = composed.objects["cell-stmt"].text
    assert "std::tuple<long long> ipolyglot_statement(long long v) {" in own and "return std::tuple<long long>(w);" in own
    assert "ipolyglot_statement" in composed.bind.text and composed.bind.registered == {}


# -- parse with libclang -------------------------------------------------------------------------

def _args() -> list[str]:
    return parser.parse_args("c++17", [], [], None)


def test_libclang_reads_declarations_into_typed_pieces():
    parsed = parser.split_cell("#include <cmath>\nnamespace geo { double area(double r = 1.0) { return 3.14 * r * r; } }\nstruct P { int x; int twice() const { return 2 * x; } };\nstatic int hidden = 0;\n", "", _args())
    pieces = {p.name: p for p in parsed.pieces}
    assert set(pieces) == {"##include <cmath>", "geo.area", "P", "hidden"}
    area = pieces["geo.area"]
    assert (area.kind, area.ns, area.first_line) == ("func", ["geo"], 3)
    assert area.header_text.endswith("double area(double r = 1.0) ;") or "return" not in area.header_text
    assert area.binds[0].params[0].default == "1.0"
    assert [m.name for m in pieces["P"].binds[0].methods] == ["twice"]
    assert pieces["hidden"].private
    assert ParsedCell.from_json(parsed.to_json()) == parsed  # what the parse cache keeps reads back whole


def test_libclang_reads_a_statement_cell_and_the_types_of_its_outputs():
    parsed = parser.parse_statement("#define TWICE(v) (2 * (v))\nauto n = TWICE(k);\ndouble half = x / 2;\n", "", _args(), {"k": "long long", "x": "double"}, ["n", "half", "x"])
    assert parsed.mode == "statement" and not parsed.errors
    assert parsed.statement.outputs == {"n": "long long", "half": "double", "x": "double"}
    assert parsed.statement.directives.split("\n")[0] == "#define TWICE(v) (2 * (v))"
    missing = parser.parse_statement("int a = 1;\n", "", _args(), {}, ["b"])
    assert [e.message for e in missing.errors] == ["-o b: no variable named 'b' is declared at the top level of the cell"]


# -- g++'s output, mapped to the cells' lines (captured from real builds) ------------------------

EARLIER = "template <typename T> T twice(T v) { return v + v; }\nstruct Box { int v; };\n"
BOXED = "int boxed() { return twice(Box{1}).v; }\n"
SYNTAX = "int f(int a) {\n    return a +;\n}\n"
MISSING_INCLUDES = "int parse(const char *s) { return std::stoi(std::string(s)); }\nstd::vector<int> v() { return {}; }\n"

REQUIRED_FROM_OUTPUT = """\
/tmp/cache/tmp/build-20c13aeea981-k231ox63/user.cpp: In instantiation of ‘T twice(T) [with T = Box]’:
cell-691ca24e6a5e:2:27:   required from here
/tmp/cache/tmp/build-20c13aeea981-k231ox63/user.cpp:10:47: error: no match for ‘operator+’ in ‘v + v’ (operand types are ‘Box’ and ‘Box’)
"""
SYNTAX_OUTPUT = """\
cell-7ddfb0596d56: In function ‘int f(int)’:
cell-7ddfb0596d56:3:15: error: expected primary-expression before ‘;’ token
"""
MISSING_INCLUDES_OUTPUT = """\
/tmp/cache/tmp/build-26cf29a4d386-thwtlegv/user.cpp:9:6: error: ‘vector’ in namespace ‘std’ does not name a template type
/tmp/cache/tmp/build-26cf29a4d386-thwtlegv/user.cpp:9:1: note: ‘std::vector’ is defined in header ‘<vector>’; did you forget to ‘#include <vector>’?
cell-932f07fd1211:3:6: error: ‘vector’ in namespace ‘std’ does not name a template type
cell-932f07fd1211:3:1: note: ‘std::vector’ is defined in header ‘<vector>’; did you forget to ‘#include <vector>’?
cell-932f07fd1211: In function ‘int parse(const char*)’:
cell-932f07fd1211:2:40: error: ‘stoi’ is not a member of ‘std’
cell-932f07fd1211:2:50: error: ‘string’ is not a member of ‘std’
cell-932f07fd1211:2:50: note: ‘std::string’ is defined in header ‘<string>’; did you forget to ‘#include <string>’?
cell-932f07fd1211: At global scope:
cell-932f07fd1211:3:6: error: ‘vector’ in namespace ‘std’ does not name a template type
cell-932f07fd1211:3:1: note: ‘std::vector’ is defined in header ‘<vector>’; did you forget to ‘#include <vector>’?
"""


@pytest.fixture
def cells() -> CellRegistry:
    registry = CellRegistry()
    for number, text in enumerate([EARLIER, BOXED, SYNTAX, MISSING_INCLUDES], start=1):
        registry.register(text, f"In [{number}]")
    return registry


def test_an_error_in_the_cell_run_names_its_line_and_column(cells):
    [found] = build.diagnostics(SYNTAX_OUTPUT, cells, cells.register(SYNTAX, "In [3]").id)
    assert found.render() == "line 3, column 15: expected primary-expression before ‘;’ token\n        return a +;\n                  ^"


def test_an_error_in_another_cell_is_named_by_that_cells_label(cells):
    [found] = build.diagnostics(SYNTAX_OUTPUT, cells, "cell-000000000000")
    assert (found.cell, found.line) == ("In [3]", 3)


def test_an_error_inside_a_template_is_shown_at_the_cell_line_that_required_it(cells):
    [found] = build.diagnostics(REQUIRED_FROM_OUTPUT, cells, cells.register(BOXED, "In [2]").id)
    assert (found.line, found.column, found.cell) == (2, 27, None)
    assert found.message == "no match for ‘operator+’ in ‘v + v’ (operand types are ‘Box’ and ‘Box’) (inside user.cpp, reached from this line)"


def test_gccs_include_hints_join_their_errors_and_generated_code_errors_follow_cell_errors(cells):
    found = build.diagnostics(MISSING_INCLUDES_OUTPUT, cells, cells.register(MISSING_INCLUDES, "In [4]").id)
    assert [(d.line, d.column, d.message) for d in found] == [
        (3, 6, "‘vector’ in namespace ‘std’ does not name a template type (‘std::vector’ is defined in header ‘<vector>’; did you forget to ‘#include <vector>’?)"),
        (2, 40, "‘stoi’ is not a member of ‘std’ (is an #include missing? a declaration cell sees only the headers it includes)"),
        (2, 50, "‘string’ is not a member of ‘std’ (‘std::string’ is defined in header ‘<string>’; did you forget to ‘#include <string>’?)"),
    ]


# Lines of g++'s output for `Opaque make();` (Opaque incomplete), in the binding unit of
# the session below; {def_line} and {fallback_line} are where it registers `make`.
BIND_FAILURE_OUTPUT = """\
/tmp/cache/tmp/build-10e3339e71e9-_jo2uzic/bind.cpp:{fallback_line}:208:   required from here
/work/venv/pybind11/include/pybind11/pybind11.h:600:60: error: no matching function for call to ‘pybind11::detail::function_ref<Opaque()>::function_ref(Opaque (*&)())’
/tmp/cache/tmp/build-10e3339e71e9-_jo2uzic/bind.cpp:{fallback_line}:208:   required from here
/usr/include/c++/12/type_traits:1447:38: error: invalid use of incomplete type ‘struct Opaque’
/tmp/cache/tmp/build-10e3339e71e9-_jo2uzic/bind.cpp:7:8: note: forward declaration of ‘struct Opaque’
/tmp/cache/tmp/build-10e3339e71e9-_jo2uzic/bind.cpp:{def_line}:14:   required from here
/work/venv/pybind11/include/pybind11/pybind11.h:600:60: error: no matching function for call to ‘pybind11::detail::function_ref<Opaque()>::function_ref(Opaque (*&)())’
"""
WHY = "no matching function for call to ‘pybind11::detail::function_ref<Opaque()>::function_ref(Opaque (*&)())’"


def test_a_registration_the_bindings_cannot_compile_is_named_with_gccs_reason():
    opaque = "struct Opaque;\nint ok(int a) { return a; }\nOpaque make();\n"
    composed = _compose(_session((opaque, parser.split_cell(opaque, "", _args()).pieces)))
    lines = [n for n, text in enumerate(composed.bind.text.splitlines(), start=1) if "&::make" in text]
    assert (lines[0], lines[-1]) == (28, 49)  # as in the build the output was captured from
    error = build.BindingsDoNotCompile("C++", [], BIND_FAILURE_OUTPUT.format(def_line=lines[0], fallback_line=lines[-1]))
    assert CppBackend().cannot_cross(error, composed) == {"2": f"'make' is not bound: its signature cannot cross to Python ({WHY})"}
    assert CppBackend().cannot_cross(CompileError("C++", [], error.raw_output), composed) == {}  # a cell's own error is the user's
