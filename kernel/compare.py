"""`%polyglot compare <expr> <expr> ...`: the same job timed in Python, Go and C++, side by side."""

from __future__ import annotations

import statistics
import timeit
from dataclasses import dataclass

_OPERATOR_CHARS = set("+-*/%<>=&|^@~!,.:")
_OPERATOR_WORDS = {"and", "or", "not", "in", "is", "if", "else", "for", "lambda"}


def split_expressions(line: str) -> list[str]:
    """Split at top-level whitespace, keeping `a + b` or `f(x, y)` whole.

    Whitespace inside brackets or strings never splits; whitespace next to an
    operator joins the neighbours (`fib(20) + 1` is one expression).
    """
    words, current, depth, quote, i = [], "", 0, None, 0
    while i < len(line):
        ch = line[i]
        if quote:
            current += ch
            if ch == "\\" and i + 1 < len(line):
                current += line[i + 1]
                i += 1
            elif ch == quote:
                quote = None
        elif ch in "'\"":
            quote = ch
            current += ch
        elif ch in "([{":
            depth += 1
            current += ch
        elif ch in ")]}":
            depth -= 1
            current += ch
        elif ch.isspace() and depth == 0:
            if current:
                words.append(current)
                current = ""
        else:
            current += ch
        i += 1
    if current:
        words.append(current)
    expressions: list[str] = []
    for word in words:
        joins = expressions and (
            expressions[-1][-1] in _OPERATOR_CHARS or word[0] in _OPERATOR_CHARS
            or expressions[-1].split()[-1] in _OPERATOR_WORDS or word in _OPERATOR_WORDS
        )
        if joins:
            expressions[-1] += " " + word
        else:
            expressions.append(word)
    return expressions


@dataclass
class Timing:
    expression: str
    best: float  # seconds per evaluation
    median: float
    loops: int
    repeats: int


def time_expression(expression: str, namespace: dict, budget: float = 0.6, repeats: int = 7) -> Timing:
    """Auto-ranged like %timeit: enough loops for ~budget/repeats seconds per repeat."""
    compile(expression, "<compare>", "eval")  # a SyntaxError names the expression
    timer = timeit.Timer(expression, globals=namespace)
    loops = 1
    while True:
        elapsed = timer.timeit(loops)
        if elapsed >= budget / repeats or loops >= 10**8:
            break
        loops *= 10 if elapsed < budget / repeats / 20 else 2
    runs = [timer.timeit(loops) / loops for _ in range(repeats)]
    return Timing(expression, min(runs), statistics.median(runs), loops, repeats)
