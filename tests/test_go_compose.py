"""Without a compiler: the Go backend's compose step (typed declarations -> generated
package and cache key parts) and its mapping of `go build` output to cell lines.

The compiler outputs below were captured once from real `go build` runs of
these cells (Go 1.26); the cell ids in them are the ids of the cell texts.
"""

import contextlib

import pytest

from ipolyglot.go_bridge import build, codegen, fastcall
from ipolyglot.go_bridge.backend import GoBackend, GoCandidate
from ipolyglot.go_bridge.build import GoFlags
from ipolyglot.go_bridge.inspector import FastSignature, GoDetail, GoImport, TypeSpec
from ipolyglot.kernel.core.backend import CellContext, Declaration, DeclarationStore
from ipolyglot.kernel.core.cache import BuildCache
from ipolyglot.kernel.core.cells import CellRegistry
from ipolyglot.kernel.core.diagnostics import CompileError


class FakeGo:
    """A Go toolchain that is never run: compose needs only its identity and version."""

    def __init__(self, cache, resolve):
        pass

    def version(self):
        return 1, 26

    def identity(self):
        return "/usr/bin/go|go version go1.26.0 linux/amd64"

    @staticmethod
    def build_env_key():
        return "GOEXPERIMENT="

    def toolchain(self):
        raise AssertionError("compose must not need a toolchain")


@pytest.fixture
def ctx(tmp_path):
    return CellContext(
        cell_label="In [2]", cache=BuildCache(tmp_path / "cache"), cells=CellRegistry(), toolchain=None,
        verbose=lambda message: None, warn=lambda message: None, building=lambda what: contextlib.nullcontext(),
    )


MATH_CELL = "func Add(a, b int) int { return a + b }\n\nconst Big = 1 << 100\nconst Small = 3\n"
TYPES_CELL = 'import "strings"\n\ntype Point struct{ X, Y float64 }\n\nvar Limit = 3\n\nfunc Shout(s string) string { return strings.ToUpper(s) }\n'


def math_cell(cells: CellRegistry, label: str = "In [1]", text: str = MATH_CELL) -> list[Declaration]:
    cell = cells.register(text, label)
    details = [
        GoDetail("func", ("Add",), "func Add(a, b int) int { return a + b }", 1, 1,
                 params=("a", "b"), fast=FastSignature(("int", "int"), "int"), cell_count=3),
        GoDetail("const", ("Big",), "const Big = 1 << 100", 3, 1, cell_count=3),
        GoDetail("const", ("Small",), "const Small = 3", 4, 1, cell_count=3),
    ]
    return [Declaration(d.names[0], d.kind, d.text, label, d.line + 1, cell.id, d) for d in details]


def types_cell(cells: CellRegistry, label: str = "In [2]") -> list[Declaration]:
    cell = cells.register(TYPES_CELL, label)
    imports = (GoImport("strings", "", 1, 8),)
    details = [
        GoDetail("type", ("Point",), "type Point struct{ X, Y float64 }", 3, 1, types=(TypeSpec("Point"),),
                 imports=imports, cell_count=3),
        GoDetail("var", ("Limit",), "var Limit = 3", 5, 1, imports=imports, cell_count=3),
        GoDetail("func", ("Shout",), "func Shout(s string) string { return strings.ToUpper(s) }", 7, 1,
                 params=("s",), uses=frozenset({"strings"}), imports=imports, cell_count=3),
    ]
    return [Declaration(d.names[0], d.kind, d.text, label, d.line + 1, cell.id, d) for d in details]


def candidate(decls: list[Declaration], flags: GoFlags = GoFlags()) -> GoCandidate:
    return GoCandidate(None, DeclarationStore(decls), flags=flags)


def test_compose_writes_a_file_per_cell_behind_line_directives_and_registers_the_exported(ctx):
    backend = GoBackend(tool=FakeGo)
    first, second = math_cell(ctx.cells), types_cell(ctx.cells)
    unit = backend.compose(candidate(first + second), {}, ctx)
    files = unit.plan.files
    assert set(files) == {"go.mod", "cell000.go", "cell001.go", "consts.go", "glue.go"}
    assert f"//line {first[0].cell_id}:2:1\nfunc Add" in files["cell000.go"]
    assert f'//line {second[0].cell_id}:2:1\nimport "strings"' in files["cell001.go"]
    assert f"//line {second[0].cell_id}:4:1\ntype Point" in files["cell001.go"]
    assert '{Name: "Add", Params: []string{"a", "b"}, Fn: Add, Spawns: false, Waits: false}' in files["glue.go"]
    assert '{Name: "Shout", Params: []string{"s"}, Fn: Shout,' in files["glue.go"]
    assert 'Type: ipolyglotreflect.TypeOf((*Point)(nil)).Elem()' in files["glue.go"]
    assert '{Name: "Limit", Ptr: &Limit}' in files["glue.go"]
    # The scalar Add's one direct entry: the compiled caller's where it can be built here, else cffi's.
    slots = fastcall.available()
    assert ("//export ipg_slots_0\nfunc ipg_slots_0(ipgArgs *C.uint64_t) (ipgResult C.uint64_t)" if slots else
            "//export ipg_fast_0\nfunc ipg_fast_0(a0 C.int64_t, a1 C.int64_t) (ipgResult C.int64_t)") in files["glue.go"]
    assert ("ipg_fast_0" in files["glue.go"]) is not slots
    assert "\ngo 1.26\n" in files["go.mod"]
    assert [(f.name, f.params, f.id, f.fast) for f in unit.plan.funcs] == [
        ("Add", ("a", "b"), 0, codegen.FastEntry(0, FastSignature(("int", "int"), "int"), slots)), ("Shout", ("s",), 1, None),
    ]
    assert unit.plan.var_texts == {"Limit": "var Limit = 3"} and unit.plan.var_cells == {"Limit": second[0].cell_id}
    assert sorted(unit.plan.const_lines.values()) == ["Big", "Small"]


def test_key_parts_change_with_what_changes_the_library_and_only_then(ctx, tmp_path):
    backend = GoBackend(tool=FakeGo)
    decls = math_cell(ctx.cells)
    parts = backend.compose(candidate(decls), {}, ctx).key_parts
    assert backend.compose(candidate(decls), {}, ctx).key_parts == parts
    relabelled = CellContext(**{**vars(ctx), "cell_label": "In [9]"})  # the same cell run again later
    assert backend.compose(candidate(math_cell(relabelled.cells, "In [9]")), {}, relabelled).key_parts == parts
    changed = math_cell(ctx.cells, text=MATH_CELL + "\n")  # another text: another cell id
    assert backend.compose(candidate(changed), {}, ctx).key_parts["files"] != parts["files"]
    flagged = backend.compose(candidate(decls, GoFlags(tags="fast")), {}, ctx).key_parts
    assert flagged["flags"] != parts["flags"] and flagged["files"] == parts["files"]
    profiled = CellContext(**{**vars(ctx), "profile": True})
    assert backend.compose(candidate(decls), {}, profiled).key_parts["files"] != parts["files"]


def test_a_dropped_constant_is_left_out_and_named_by_cannot_cross(ctx):
    backend = GoBackend(tool=FakeGo)
    decls = math_cell(ctx.cells)
    unit = backend.compose(candidate(decls), {}, ctx)
    big_line = next(line for line, name in unit.plan.const_lines.items() if name == "Big")
    stderr = (  # as go build says it (captured), at Big's line of consts.go
        "ipolyglot.local/cell\n# ipolyglot.local/cell\n"
        f"./consts.go:{big_line}:22: cannot use Big (untyped int constant 1267650600228229401496703205376) "
        "as int value in struct literal (overflows)\n"
    )
    error = CompileError("Go", build.diagnostics(stderr, ctx.cells, decls[0].cell_id), stderr)
    assert backend.cannot_cross(error, unit) == {"Big": (
        "Go constant Big is not readable from Python: cannot use Big (untyped int constant "
        "1267650600228229401496703205376) as int value in struct literal (overflows)"
    )}
    without = backend.compose(candidate(decls), backend.cannot_cross(error, unit), ctx)
    assert '"Big"' not in without.plan.files["consts.go"] and '"Small"' in without.plan.files["consts.go"]
    assert list(without.dropped) == ["Big"] and without.key_parts != unit.key_parts
    assert backend.cannot_cross(CompileError("Go", [], "cell-x:1:1: undefined: y\n"), unit) == {}


# -- compiler output -> diagnostics (real `go build` stderr) ---------------------------------

USE_CELL = "func Use() string {\n\treturn Helper(1)\n}\n"
TYPE_ERROR = (
    "ipolyglot.local/cell\n# ipolyglot.local/cell\n"
    "cell-1c51c6ae764a:3:9: cannot use Helper(1) (value of type int) as string value in return statement\n"
)


def test_a_message_in_the_cell_run_names_its_line_and_column_without_a_label():
    cells = CellRegistry()
    cell = cells.register(USE_CELL, "In [2]")
    assert cell.id == "cell-1c51c6ae764a"
    [found] = build.diagnostics(TYPE_ERROR, cells, cell.id)
    assert (found.line, found.column, found.cell) == (3, 9, None)
    assert found.source_line == "\treturn Helper(1)"
    assert found.message == "cannot use Helper(1) (value of type int) as string value in return statement"


def test_a_message_in_another_cell_names_that_cell_by_its_latest_label():
    cells = CellRegistry()
    cells.register(USE_CELL, "In [2]")
    cells.register(USE_CELL, "In [7]")  # run again: the notebook shows it as In [7] now
    [found] = build.diagnostics(TYPE_ERROR, cells, "cell-000000000000")
    assert found.cell == "In [7]" and found.line == 3
    assert found.render().startswith("In [7], line 3, column 9: cannot use Helper(1)")


def test_a_module_that_cannot_be_fetched_is_said_once_with_how_to_add_it():
    cells = CellRegistry()
    cell = cells.register('import "example.com/nosuch/pkg"\nfunc F() { pkg.X() }\n', "In [4]")
    assert cell.id == "cell-c6e58a83e351"
    stderr = (
        "go: finding module for package example.com/nosuch/pkg\n"
        "cell-c6e58a83e351:2:8: cannot find module providing package example.com/nosuch/pkg: "
        "module lookup disabled by GOPROXY=off\n"
    )
    [found] = build.diagnostics(stderr, cells, cell.id)
    assert found.line == 2 and found.source_line == 'import "example.com/nosuch/pkg"'
    assert found.message.endswith(build.MODULE_NOT_FETCHED) and "module lookup disabled" in found.message
    outside = build.diagnostics("go: example.com/x@v1.0.0: dial tcp: lookup example.com: no such host\nmore\n", cells, cell.id)
    assert len(outside) == 1 and outside[0].message.startswith("a Go module the cell imports is missing")


def test_generated_code_and_the_o_line_are_told_in_the_users_terms():
    cells = CellRegistry()
    stderr = (  # %%go -i map: a Python name that is a Go keyword (captured)
        "ipolyglot.local/cell\n# ipolyglot.local/cell\n"
        "./statements.go:8:30: syntax error: unexpected name int64, expected [\n"
        "-o:2:1: syntax error: unexpected } after top level declaration\n"
    )
    generated, o_line = build.diagnostics(stderr, cells, "cell-000000000000")
    assert generated.line is None and generated.message == (
        "syntax error: unexpected name int64, expected [ (in the code ipolyglot generates around the cells; "
        "%%go -v shows where it is)"
    )
    assert o_line.message.startswith("-o: syntax error") and "declared at the top level of the cell" in o_line.message
    note = build.diagnostics("cell-1c51c6ae764a:3:9: x redeclared\n\t./glue.go:12:3: other declaration of x\n", cells, "")
    assert note[0].message.endswith("(code ipolyglot generates): other declaration of x")


def test_a_cgo_preamble_error_keeps_its_cell_line_and_drops_the_in_function_line():
    cells = CellRegistry()
    cell = cells.register('/*\nint f(void) { return undefined_thing; }\n*/\nimport "C"\nfunc G() int { return int(C.f()) }\n', "In [12]")
    assert cell.id == "cell-6bc2e80c2cac"
    stderr = (
        "# ipolyglot.local/cell\ncell-6bc2e80c2cac: In function 'f':\n"
        "cell-6bc2e80c2cac:3:22: error: 'undefined_thing' undeclared (first use in this function)\n"
    )
    [found] = build.diagnostics(stderr, cells, cell.id)
    assert (found.line, found.column) == (3, 22) and "undefined_thing" in found.source_line
