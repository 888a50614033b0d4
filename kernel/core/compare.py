"""`%polyglot compare <expr> <expr> ...`: the same job timed in Python, Go and C++, side by side."""

from __future__ import annotations

import cmath
import linecache
import reprlib
import statistics
import timeit
from dataclasses import dataclass
from types import TracebackType

import numpy as np

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


class ExpressionFailed(Exception):
    """The user's expression raised: `error` is their exception, `traceback` its frames from their code on."""

    def __init__(self, error: BaseException, traceback: TracebackType | None):
        super().__init__(str(error))
        self.error = error
        self.traceback = traceback


_EXPRESSION_FILE = "<compare expression>"
_TIMEIT_FILE = "<timeit-src>"


def _user_frames(tb: TracebackType | None, filename: str) -> TracebackType | None:
    """The traceback from the frame that runs the expression on (the frames of ours above it dropped)."""
    while tb is not None and tb.tb_frame.f_code.co_filename != filename:
        tb = tb.tb_next
    return tb


def show_user_error(shell, failure: ExpressionFailed) -> None:
    """Show the user's exception as a cell running their expression would, and fail the cell with it."""
    error = failure.error
    if isinstance(error, SyntaxError):  # shown with its line and caret, as for a cell
        stb = shell.SyntaxTB.structured_traceback(type(error), error, None)
    else:
        stb = shell.InteractiveTB.structured_traceback(type(error), error, failure.traceback, tb_offset=0)
    shell._showtraceback(type(error), error, stb)
    running = getattr(shell.displayhook, "exec_result", None)
    if running is not None:
        running.error_in_exec = error


def evaluate(expression: str, namespace: dict):
    """The expression's value, evaluated once in the user namespace.

    A SyntaxError or an exception the expression raises comes back as
    ExpressionFailed holding the user's own exception and frames.
    """
    linecache.cache[_EXPRESSION_FILE] = (len(expression), None, [expression + "\n"], _EXPRESSION_FILE)  # shown in its traceback
    try:
        code = compile(expression, _EXPRESSION_FILE, "eval")
        return eval(code, namespace)  # noqa: S307 - the user's own expression, in their namespace
    except Exception as error:  # noqa: BLE001 - handed to the user as theirs
        raise ExpressionFailed(error, _user_frames(error.__traceback__, _EXPRESSION_FILE)) from None


def time_expression(expression: str, namespace: dict, budget: float = 0.6, repeats: int = 7) -> Timing:
    """Auto-ranged like %timeit: enough loops for ~budget/repeats seconds per repeat."""
    timer = timeit.Timer(expression, globals=namespace)
    loops = 1
    try:
        while True:
            elapsed = timer.timeit(loops)
            if elapsed >= budget / repeats or loops >= 10**8:
                break
            loops *= 10 if elapsed < budget / repeats / 20 else 2
        runs = [timer.timeit(loops) / loops for _ in range(repeats)]
    except Exception as error:  # noqa: BLE001 - raised by the expression on a later evaluation
        raise ExpressionFailed(error, _user_frames(error.__traceback__, _TIMEIT_FILE)) from None
    return Timing(expression, min(runs), statistics.median(runs), loops, repeats)


# -- do the results agree? ------------------------------------------------------------------

REL_TOL, ABS_TOL = 1e-9, 1e-12  # floats from different languages differ in summation order


def results_agree(a, b) -> bool:
    """Equal values, with floats (and float arrays) equal within a small tolerance.

    A numpy array compares with numpy semantics against an array or a sequence
    (a Go []float64 comes back as an array, a Python function may return a list).
    """
    if isinstance(a, np.ndarray) or isinstance(b, np.ndarray) or isinstance(a, np.generic) or isinstance(b, np.generic):
        return _arrays_agree(a, b)
    if isinstance(a, float) or isinstance(b, float) or isinstance(a, complex) or isinstance(b, complex):
        return isinstance(a, (int, float, complex)) and isinstance(b, (int, float, complex)) and (
            a == b or (a != a and b != b) or cmath.isclose(a, b, rel_tol=REL_TOL, abs_tol=ABS_TOL))
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(results_agree(x, y) for x, y in zip(a, b))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(results_agree(a[k], b[k]) for k in a)
    try:
        return bool(a == b)
    except Exception:  # noqa: BLE001 - values that cannot say they are equal are not known to agree
        return False


def _arrays_agree(a, b) -> bool:
    try:
        x, y = np.asarray(a), np.asarray(b)
    except Exception:  # noqa: BLE001
        return False
    if x.shape != y.shape:
        return False
    if all(arr.dtype.kind in "biufc" for arr in (x, y)):
        if x.dtype.kind in "fc" or y.dtype.kind in "fc":
            return bool(np.allclose(x, y, rtol=REL_TOL, atol=ABS_TOL, equal_nan=True))
        return bool(np.array_equal(x, y))
    try:
        return bool(np.all(x == y))
    except Exception:  # noqa: BLE001
        return False


def disagreements(expressions: list[str], results: list) -> list[str]:
    """One warning line per expression whose result differs from the first one's."""
    lines = []
    for expression, result in zip(expressions[1:], results[1:]):
        if not results_agree(results[0], result):
            lines.append(
                f"warning: the results differ: {expression} gave {_short_repr(result)}, "
                f"{expressions[0]} gave {_short_repr(results[0])}"
            )
    return lines


def _short_repr(value) -> str:
    text = np.array2string(value, threshold=8, edgeitems=3) if isinstance(value, np.ndarray) else reprlib.repr(value)
    return " ".join(text.split())
