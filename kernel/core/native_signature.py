"""Annotated signatures for builtin native functions (C++ bindings).

A builtin can carry only an unannotated text signature (`add(a, b=10)` then
`--`), which is what `inspect` reads from it. ipolyglot's bindings put the typed
form on the docstring's next line (`add(a: int, b: int = 10) -> int`); this
module turns that line into an `inspect.Signature` with annotations, for the
wrapper that already carries `aio`, so a call pays nothing for it.
"""

from __future__ import annotations

import ast
import builtins
import collections.abc
import inspect
from typing import Callable

_TYPE_NAMESPACE = {**vars(builtins), "collections": collections}


class TypeName(str):
    """A native type name Python has no object for (a bound class, say): shown as written."""

    def __repr__(self) -> str:
        return str(self)


def annotated_signature(function: Callable) -> inspect.Signature | None:
    """The builtin's signature with the annotations its typed docstring line spells,
    or None when it has no single typed line (overloads keep `(*args, **kwargs)`)."""
    try:
        plain = inspect.signature(function)
    except (TypeError, ValueError):
        return None
    typed = _typed_line(function)
    return None if typed is None else annotate(plain, typed)


def constructor_signature(cls: type) -> inspect.Signature | None:
    """`Counter(start: int)`: a bound class's annotated `__init__` without `self`,
    or None when the constructor has no single typed line (overloads)."""
    init = annotated_signature(cls.__init__)
    if init is None or not init.parameters:
        return None
    parameters = list(init.parameters.values())[1:]
    return init.replace(parameters=parameters, return_annotation=inspect.Signature.empty)


def annotate(plain: inspect.Signature, typed: str) -> inspect.Signature | None:
    """`plain` with the annotations of `typed` (`name(a: int) -> int` or `(a: int) -> int`),
    or None when the two do not name the same parameters."""
    if typed.startswith("("):
        typed = f"f{typed}"
    try:
        definition = ast.parse(f"def {typed}: pass").body[0]
    except SyntaxError:
        return None
    arguments = definition.args
    listed = arguments.posonlyargs + arguments.args + arguments.kwonlyargs + [a for a in (arguments.vararg, arguments.kwarg) if a]
    annotations = {arg.arg: arg.annotation for arg in listed}
    if set(annotations) != set(plain.parameters):
        return None
    parameters = [
        parameter.replace(annotation=_annotation(annotations[name])) if annotations[name] is not None else parameter
        for name, parameter in plain.parameters.items()
    ]
    returns = _annotation(definition.returns) if definition.returns is not None else inspect.Signature.empty
    return plain.replace(parameters=parameters, return_annotation=returns)


def _typed_line(function: Callable) -> str | None:
    """`add(a: int) -> int` from a docstring `add(a)\\n--\\n\\nadd(a: int) -> int\\n...`;
    None when the docstring lists several overloads."""
    name = getattr(function, "__name__", "")
    lines = (getattr(function, "__doc__", None) or "").splitlines()
    typed = [line for line in lines if line.startswith(f"{name}(") and "->" in line]
    return typed[0] if len(typed) == 1 else None


def _annotation(node: ast.expr):
    """The annotation's Python object where the text names one (`int`, `list[float]`,
    `int | None`), else the text itself, shown unquoted."""
    text = ast.unparse(node)
    if text == "None":
        return None
    try:
        return eval(compile(ast.Expression(node), "<annotation>", "eval"), {"__builtins__": {}}, _TYPE_NAMESPACE)
    except Exception:
        return TypeName(text)
