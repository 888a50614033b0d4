"""A bound Go or C++ function shows the same annotated signature in both modes."""

from __future__ import annotations

GO_CELL = '''%%go
// Add adds.
func Add(a, b int) int { return a + b }
'''

CPP_CELL = '''%%cpp
/** Adds two numbers. */
int add(int a, int b = 10) { return a + b; }
'''

SHOWN = "str(__import__('inspect').signature(Add)), str(__import__('inspect').signature(add)), repr(Add), repr(add)"
EXPECTED = [
    "(a: int, b: int) -> int", "(a: int, b: int = 10) -> int",
    "<Go function Add(a: int, b: int) -> int>", "<C++ function add(a: int, b: int = 10) -> int>",
]


def test_signatures_are_annotated_in_process_and_in_worker_mode(kernel):
    kernel.run("%polyglot mode in-process").ok()
    kernel.run(GO_CELL, timeout=600).ok()
    kernel.run(CPP_CELL, timeout=900).ok()
    assert list(kernel.eval(SHOWN)) == EXPECTED
    kernel.run("%polyglot mode worker").ok()
    kernel.run(GO_CELL, timeout=600).ok()
    kernel.run(CPP_CELL, timeout=900).ok()
    assert list(kernel.eval(SHOWN)) == EXPECTED
    assert kernel.eval("add(1), Add(1, 2)") == (11, 3)
