"""Without a compiler: Python annotations from Go types, and which cells
compile as packages of their own (the decisions the kernel tests rely on)."""

import typing

import numpy as np

from ipolyglot.go_bridge import cell_packages
from ipolyglot.go_bridge.inspector import GoDetail, TypeSpec
from ipolyglot.go_bridge.signatures import annotation
from ipolyglot.kernel.core.backend import Declaration


class Point:
    pass


def test_annotations_follow_the_marshaling_table():
    classes = {"Point": Point}
    assert annotation("int64", classes) is int and annotation("float32", classes) is float
    assert annotation("string", classes) is str and annotation("[]byte", classes) is bytes
    assert annotation("[]float64", classes) is np.ndarray and annotation("[]string", classes) == list[str]
    assert annotation("[3]int", classes) == list[int]
    assert annotation("map[string][]Point", classes) == dict[str, list[Point]]
    assert annotation("map[[2]int]bool", classes) == dict[tuple[int, ...], bool]  # array keys come back as tuples
    assert annotation("map[Point]int", classes) == dict[tuple, int]
    assert annotation("*Point", classes) == typing.Optional[Point]
    assert annotation("interface {}", classes) is typing.Any
    assert annotation("Celsius", classes, kind="float64") is float  # a named non-struct type: its kind's face


def decl(cell: str, name: str, kind: str, refs: list[str], count: int, lines: int = 100, **extra) -> Declaration:
    text = "\n" * (lines - 1)
    names = () if kind == "method" else (name,)
    detail = GoDetail(kind, names, text, 1, 1, refs=frozenset(refs), cell_count=count, **extra)
    return Declaration(name, kind, text, cell, 1, cell, detail)


def plan(*decls: Declaration, statement_refs=frozenset()) -> dict:
    by_cell: dict = {}
    for d in decls:
        by_cell.setdefault(d.cell_id, []).append(d)
    return cell_packages.plan_packages(by_cell, set(statement_refs))


def large_cell(count: int = 3):
    return [
        decl("cell-aaaaaaaaaaaa", "Node", "type", ["int"], count, types=(TypeSpec("Node"),)),
        decl("cell-aaaaaaaaaaaa", "Walk", "func", ["Node", "helper"], count),
        decl("cell-aaaaaaaaaaaa", "helper", "func", ["int"], count),
    ]


def test_a_large_standalone_cell_gets_a_package_and_aliases_for_what_others_use():
    found = plan(*large_cell(), decl("cell-bbbbbbbbbbbb", "Use", "func", ["Walk", "Node"], 1, lines=3))
    package = found["cell-aaaaaaaaaaaa"]
    assert package.name == "ipgcellaaaaaaaaaaaa" and package.path == "ipolyglot.local/cell/ipgcellaaaaaaaaaaaa"
    assert sorted(package.aliases) == [("type", "Node"), ("var", "Walk")]
    assert "cell-bbbbbbbbbbbb" not in found  # small


def test_cells_that_cannot_stand_alone_stay_in_package_main():
    small_user = decl("cell-bbbbbbbbbbbb", "Use", "func", ["helper"], 1, lines=3)
    assert plan(*large_cell(), small_user) == {}  # another cell uses an unexported name
    method = decl("cell-bbbbbbbbbbbb", "Node.Extra", "method", ["Node"], 1, lines=3)
    assert plan(*large_cell(), method) == {}  # another cell adds a method to its type
    assert set(plan(*large_cell(), decl("cell-bbbbbbbbbbbb", "Other", "func", [], 1, lines=3))) == {"cell-aaaaaaaaaaaa"}
    foreign = decl("cell-bbbbbbbbbbbb", "Limit", "const", [], 1, lines=3)
    uses_foreign = large_cell()[:2] + [decl("cell-aaaaaaaaaaaa", "helper", "func", ["Limit"], 3)]
    assert plan(*uses_foreign, foreign) == {}  # it uses another cell's name
    assert plan(*large_cell(count=4)) == {}  # one of its declarations was redefined by a later cell
    assert plan(*large_cell(), statement_refs={"helper"}) == {}  # a statement cell uses an unexported name
