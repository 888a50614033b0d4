"""A bound Go or C++ function or class shows the same annotated signature and doc in both modes."""

from __future__ import annotations

import re

GO_CELL = '''%%go
// Add adds.
func Add(a, b int) int { return a + b }
'''

CPP_CELL = '''%%cpp
/** Adds two numbers. */
int add(int a, int b = 10) { return a + b; }

/// Counter counts.
struct Counter {
    int n;
    Counter(int start) : n(start) {}
};
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


def inspected(kernel, name: str) -> str:
    """What `name?` (and Shift-Tab) shows, without colors."""
    reply = kernel.kc.inspect(name, len(name), detail_level=0, reply=True, timeout=60)
    return re.sub(r"\x1b\[[0-9;]*m", "", reply["content"]["data"]["text/plain"])


def test_inspection_shows_the_native_signature_and_doc_and_nothing_of_the_wrapper(kernel):
    for mode in ("in-process", "worker"):
        kernel.run(f"%polyglot mode {mode}").ok()
        kernel.run(GO_CELL, timeout=600).ok()
        kernel.run(CPP_CELL, timeout=900).ok()
        shown = {name: inspected(kernel, name) for name in ("Add", "add", "Counter")}
        assert "Signature:       Add(a: int, b: int) -> int" in shown["Add"] and "Add adds." in shown["Add"], (mode, shown)
        assert "Signature:       add(a: int, b: int = 10) -> int" in shown["add"] and "Adds two numbers." in shown["add"], (mode, shown)
        assert "Init signature: Counter(start: int)" in shown["Counter"] and "Docstring:      Counter counts." in shown["Counter"], (mode, shown)
        for text in shown.values():  # no call signature of the wrapper, no file or class of ipolyglot's
            assert "Call signature" not in text and "File:" not in text and "Remote" not in text, (mode, text)
