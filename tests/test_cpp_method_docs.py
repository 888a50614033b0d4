"""C++ methods, static methods and constructors are documented like free functions."""

from __future__ import annotations

KERNEL_MODES = ("worker", "in-process")

CELL = '''%%cpp
struct Acc {
    int n = 0;
    Acc(int start = 0) : n(start) {}
    /** bump it */
    int bump(int by = 1) { return n += by; }
    /** a fresh one */
    static Acc make(int start) { return Acc(start); }
};
'''


def test_methods_static_methods_and_constructors_have_signatures_and_docstrings(kernel):
    kernel.run(CELL, timeout=900).ok()
    signature = "lambda f: str(__import__('inspect').signature(f))"
    assert kernel.eval(f"({signature})(Acc.bump), ({signature})(Acc.make)") == ("(self, by=1)", "(start)")
    assert kernel.eval("Acc.bump.__doc__") == "bump(self, by: int = 1) -> int\n\nbump it"
    assert kernel.eval("Acc.make.__doc__") == "make(start: int) -> Acc\n\na fresh one"
    assert kernel.eval("Acc.__init__.__doc__") == "__init__(self, start: int = 0) -> None"
    assert kernel.eval("Acc.make(2).bump(), Acc(1).bump(by=3)") == (3, 4)
