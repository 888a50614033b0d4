"""IPython's `obj?` for what Go and C++ cells bind: the native signature and doc, not ipolyglot's insides.

IPython describes any object that is not a plain function or class by its
Python type: for a bound function (a `NativeFunction`, a `functools.partial`
subclass that keeps calls fast) it adds `Call signature: Shout(*args,
**kwargs)`, partial's own call, and `File:` ipolyglot's module that defines
the type; a worker mode's class proxy shows as an instance of `RemoteObject`
in worker_proxies.py. The objects carry what a user needs (`__signature__`,
`__doc__`, `__name__`), so the inspector keeps those and leaves out what only
describes the wrapper. `install(shell)` makes the shell's inspector do so, once.
"""

from __future__ import annotations

from .core.travel import NativeFunction
from .worker_proxies import RemoteClass, RemoteObject

_WRAPPER_FIELDS = ("file", "call_def", "call_docstring")  # what describes the wrapper's Python type


class NativeInspection:
    """Mixed into the shell's inspector class: bound native functions and worker proxies shown as
    what they stand for."""

    def info(self, obj, oname="", info=None, detail_level=0):
        out = super().info(obj, oname=oname, info=info, detail_level=detail_level)
        if isinstance(obj, RemoteClass):
            return {**out, **_as_class(out), **dict.fromkeys(_WRAPPER_FIELDS)}
        if isinstance(obj, (NativeFunction, RemoteObject)):
            return {**out, **dict.fromkeys(_WRAPPER_FIELDS)}
        return out


def _as_class(out: dict) -> dict:
    """A class proxy shown as IPython shows a class: its constructor's signature, not a call signature."""
    return {
        "isclass": True, "init_definition": out.get("definition"), "definition": None,
        "string_form": None, "type_name": "class (in the native worker)", "subclasses": None,
    }


def install(shell) -> None:
    """Make `shell`'s inspector native-aware, in place.

    The inspector keeps its state (theme, settings, a configured subclass): its
    class becomes a subclass with `NativeInspection` mixed in, whatever the
    IPython version's constructor takes.
    """
    inspector = shell.inspector
    if isinstance(inspector, NativeInspection):
        return
    base = type(inspector)
    inspector.__class__ = type(base.__name__, (NativeInspection, base), {"__module__": base.__module__})
