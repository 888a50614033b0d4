"""Loading one built Go library with cffi (ABI mode) and calling into it.

Every library exposes the same small C interface (runtime/ipgrt/bridge.h and
the exports of runtime/ipgrt/call.go): `ipg_call` reaches every registered
function through bytes in / bytes out, and scalar-only functions also get a
direct `ipg_fast_N` entry point that cffi calls with plain C numbers.
"""

from __future__ import annotations

import ctypes
import json
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ipolyglot.kernel.core.cells import CELL_ID_DIGITS, CellRegistry

from . import fastcall, marshal, signatures
from .abi import ffi
from .codegen import FastEntry
from .description import Description, GoFunc, GoVar
from .channels import GoChannel
from .errors import GoError, GoPanic
from .templating import TEMPLATES

# Go scalar type -> C type of the fast entry points (see templates/fast_export.go.tmpl).
C_TYPES = {
    "bool": "_Bool", "int": "int64_t", "int8": "int8_t", "int16": "int16_t", "int32": "int32_t",
    "int64": "int64_t", "uint": "uint64_t", "uint8": "uint8_t", "uint16": "uint16_t",
    "uint32": "uint32_t", "uint64": "uint64_t", "uintptr": "uintptr_t", "float32": "float",
    "float64": "double", "byte": "uint8_t", "rune": "int32_t",
}

_CELL_ID = re.compile(rf"cell-[0-9a-f]{{{CELL_ID_DIGITS}}}")

# Statuses of a call Go refused before running anything (its arguments did not convert).
REJECTED = frozenset({marshal.STATUS_TYPE_ERROR, marshal.STATUS_OVERFLOW_ERROR, marshal.STATUS_VALUE_ERROR})

_RUNNING = bytes([marshal.STATUS_RUNNING])  # a result's first byte, as cffi reads a char

COLLECT_ABOVE = 1024  # live Python callables in Go before a call asks Go to collect

# ipg_call's ownBulk: a call's large numeric slices arrive as C blocks the decoded arrays own
# (marshal.TAG_ARRAY_OWNED); raw bytes that go back into Go (raw_call) must be self-contained.
OWN_BULK, SELF_CONTAINED = 1, 0

MISSING = object()  # default of every generated parameter: reports the Go type when omitted

class GoSession:
    """What the Go libraries of one session share: the Python callables handed to Go,
    the one callback Go reaches them through, and the struct classes their
    arguments decode into (the current build's)."""

    def __init__(self) -> None:
        self.callables = marshal.Callables()
        self.classes: dict[str, type] = {}  # the current build's struct classes, for callback arguments
        self.first: Any = None  # any loaded library: its ipg_malloc is C's malloc
        self.callback = ffi.callback("void(int64_t, char *, size_t, char **, size_t *)", self._dispatch)

    def attach(self, lib) -> None:
        """A newly loaded library calls Python back through this session."""
        if self.first is None:
            self.first = lib
        lib.ipg_set_dispatch(self.callback)

    def _dispatch(self, handle, inp, n, outp, outn):
        """Go calling a Python callable (any goroutine; cffi holds the GIL here)."""
        try:
            fn = self.callables.get(handle)
            if fn is None:
                raise RuntimeError("a Python callable was called after Go released it")
            buf = memoryview(ffi.buffer(inp, n))
            (nout,) = marshal._Q.unpack_from(buf, 0)
            args, _ = marshal.decode_values(buf, 8, self.classes)
            result = fn(*args)
            if nout == 0:
                results = []
            elif nout == 1:
                results = [result]
            else:
                results = list(result) if isinstance(result, (tuple, list)) else [result]
            body = bytearray([marshal.STATUS_OK])
            body += marshal.encode_args(results, [], self.callables.batch())
            data = bytes(body)
        except BaseException as exc:  # noqa: BLE001 - every failure must go back to Go
            eid = self.callables.remember_exception(exc)
            msg = f"{type(exc).__name__}: {exc}".encode("utf-8", "replace")
            data = bytes([marshal.STATUS_CALLBACK_ERROR]) + marshal._Q.pack(eid) + marshal._Q.pack(len(msg)) + msg
        mem = self.first.ipg_malloc(len(data))
        ffi.memmove(mem, data, len(data))
        outp[0] = mem
        outn[0] = len(data)


class GoLibrary:
    """One loaded build: its functions (by name) and struct classes."""

    def __init__(self, path: Path, session: GoSession, cells: CellRegistry, fast_call_type: type | None = None):
        self.path = path
        self.fast_call_type = fast_call_type  # fastcall.py's FastCall type, when it could be built
        self.session = session
        self.cells = cells  # names cells in panic stacks as the notebook shows them now
        self.lib = ffi.dlopen(str(path))
        session.attach(self.lib)
        self.pending = ffi.addressof(self.lib, "ipg_pending")
        self.released = ffi.addressof(self.lib, "ipg_released_pending")  # callables Go let go of
        self.collect_above = COLLECT_ABOVE  # live callables that make Go collect (doubles as they stay live)
        self._symbols = ctypes.CDLL(str(path))
        self.description = Description.from_json(self._describe())
        self.profiled = self.description.profiled
        self.classes: dict[str, type] = {}
        self.by_id: dict[int, GoFunc] = self.description.funcs
        self.vars: dict[str, GoVar] = self.description.vars

    def methods_of(self, type_name: str) -> list[GoFunc]:
        return [func for func in self.by_id.values() if func.receiver == type_name]

    def _describe(self) -> dict:
        outp = ffi.new("char **")
        outn = ffi.new("size_t *")
        self.lib.ipg_describe(outp, outn)
        try:
            return json.loads(ffi.buffer(outp[0], outn[0])[:])
        finally:
            self.lib.ipg_free(outp[0])

    def _take(self, outp, outn) -> bytes:
        try:
            return ffi.buffer(outp[0], outn[0])[:]
        finally:
            self.lib.ipg_free(outp[0])

    # -- Go's profiler and statistics -------------------------------------------------
    def pprof_start(self, heap: bool, mem_rate: int) -> bytes:
        """Start CPU profiling (or allocation sampling); a heap start returns the baseline profile."""
        outp, outn = ffi.new("char **"), ffi.new("size_t *")
        failed = self.lib.ipg_pprof_start(int(heap), mem_rate, outp, outn)
        data = self._take(outp, outn)
        if failed:
            raise RuntimeError(data.decode("utf-8", "replace"))
        return data

    def pprof_stop(self) -> bytes:
        """The profile since pprof_start, as gzipped pprof protobuf."""
        outp, outn = ffi.new("char **"), ffi.new("size_t *")
        self.lib.ipg_pprof_stop(outp, outn)
        return self._take(outp, outn)

    def share_cell_labels(self) -> None:
        """Tell the Go runtime how cells are labelled, for the panic reports Go prints itself."""
        data = json.dumps(self.cells.labels()).encode()
        self.lib.ipg_set_cell_labels(ffi.from_buffer(data), len(data))

    def runtime_stats(self) -> dict:
        """Goroutines, heap in use and GC cycles of this library's Go runtime."""
        outp, outn = ffi.new("char **"), ffi.new("size_t *")
        self.lib.ipg_runtime_stats(outp, outn)
        return json.loads(self._take(outp, outn))

    def var_changed(self, var: GoVar) -> bool:
        """Whether a variable a rebuild cannot carry holds something else than when
        this runtime started (runtime/ipgrt/fingerprint.go)."""
        return self.lib.ipg_var_changed(var.get) != 0

    def fast_pointer(self, index: int, signature: str):
        return ffi.cast(signature, self._address(f"ipg_fast_{index}"))

    def _address(self, symbol: str) -> int:
        return ctypes.cast(getattr(self._symbols, symbol), ctypes.c_void_p).value

    # -- panics kept for Python ----------------------------------------------------
    def check_pending(self) -> bool:
        """Raise a panic recovered in this thread's fast call or in a user goroutine
        (and drop the Python callables Go has let go of). True when this thread's
        fast call ran nothing and asks for the generic entry point (STATUS_RETRY)."""
        if self.released[0]:
            self.drop_released_callables()
        n = ffi.new("size_t *")
        p = self.lib.ipg_take_thread_panic(n)
        if p != ffi.NULL:
            try:
                data = ffi.buffer(p, n[0])[:]
            finally:
                self.lib.ipg_free(p)
                self.lib.ipg_thread_panic_taken()
            if data[0] == marshal.STATUS_RETRY:
                return True
            self._raise_status(data, 0, "")
        outp = ffi.new("char **")
        outn = ffi.new("size_t *")
        if self.lib.ipg_take_goroutine_panic(outp, outn):
            try:
                data = ffi.buffer(outp[0], outn[0])[:]
            finally:
                self.lib.ipg_free(outp[0])
            self._raise_status(data, 0, "panic in a goroutine: ")
        return False

    def _raise_status(self, buf, pos: int, where: str):
        status = buf[pos]
        pos += 1
        if status == marshal.STATUS_GOROUTINE_PANIC:
            status, where = marshal.STATUS_PANIC, "panic in a goroutine: "
        if status == marshal.STATUS_CALLBACK_ERROR:
            (eid,) = marshal._Q.unpack_from(buf, pos)
            message, _ = marshal.read_string(buf, pos + 8)
            original = self.session.callables.take_exception(eid)
            if original is not None:
                raise original
            raise GoPanic(message, "", where) from None
        message, pos = marshal.read_string(buf, pos)
        if status == marshal.STATUS_PANIC:
            stack, _ = marshal.read_string(buf, pos)
            stack = _CELL_ID.sub(lambda m: self.cells.label(m.group(0), m.group(0)), stack)
            raise GoPanic(message, stack, where) from None
        if status == marshal.STATUS_GO_ERROR:
            raise GoError(message) from None
        if status == marshal.STATUS_TYPE_ERROR:
            raise TypeError(message) from None
        if status == marshal.STATUS_OVERFLOW_ERROR:
            raise OverflowError(message) from None
        raise ValueError(message) from None

    # -- the generic call ------------------------------------------------------------
    def raw_call(self, func_id: int, data: bytes) -> bytes:
        """ipg_call on already encoded arguments: the encoded result (status byte first)."""
        outp = ffi.new("char **")
        outn = ffi.new("size_t *")
        self.lib.ipg_call(func_id, ffi.from_buffer(data), len(data), SELF_CONTAINED, outp, outn)
        return self._take(outp, outn)

    def call(self, func: GoFunc, args: tuple, profile: bool = False, receiver: Any = None):
        """Call through ipg_call. With a `receiver` (a pointer-receiver method's first
        argument), the receiver Go leaves behind is copied back into it."""
        started = time.perf_counter_ns() if profile else 0
        if len(args) > len(func.ins) and not func.variadic:
            raise TypeError(_too_many(func, len(args))) from None
        for index, value in enumerate(args):
            if value is MISSING:
                raise TypeError(f"{func.name}() missing {_param(func, index)}") from None
        keep: list = []
        handles = self.session.callables.batch()
        try:
            data = marshal.encode_args(args, keep, handles)
        except marshal.EncodeError as exc:
            raise TypeError(f"{func.name}() {_param(func, exc.index)}: {exc}") from None
        encoded = time.perf_counter_ns() if profile else 0
        outp = ffi.new("char **")
        outn = ffi.new("size_t *")
        go_copy_out = ffi.new("int64_t *") if profile else None  # Go's copy of the result into C memory
        try:
            if profile:
                self.lib.ipg_call_profiled(func.id, ffi.from_buffer(data), len(data), OWN_BULK, outp, outn, go_copy_out)
            else:
                self.lib.ipg_call(func.id, ffi.from_buffer(data), len(data), OWN_BULK, outp, outn)
        finally:
            del keep
        if outn[0] and outp[0][0] == _RUNNING:
            self._wait(outp, outn, go_copy_out if profile else ffi.new("int64_t *"))
        returned = time.perf_counter_ns() if profile else 0
        try:
            buf = memoryview(ffi.buffer(outp[0], outn[0]))
            if handles and buf[0] in REJECTED:  # Go ran nothing: no func value owns these callables
                self.session.callables.release(handles)
            if buf[0] != marshal.STATUS_OK:
                if receiver is not None and buf[0] == marshal.STATUS_GO_ERROR:
                    message, pos = marshal.read_string(buf, 1)
                    copy_back(receiver, marshal.decode_value(buf, pos, self.classes)[0])
                    raise GoError(message) from None
                self._raise_status(bytes(buf), 0, "")
            values, pos = marshal.decode_values(buf, 1, self.classes)
            if receiver is not None:
                copy_back(receiver, values.pop())
            timings = marshal.struct.unpack_from("<QQQ", buf, pos) if profile else None
            decoded = time.perf_counter_ns() if profile else 0
        finally:
            self.lib.ipg_free(outp[0])
        if self.pending[0]:
            self.check_pending()
        if handles:
            self.drop_released_callables()
        result = None if not values else values[0] if len(values) == 1 else tuple(values)
        if func.channel:  # a handle; 0 is a nil channel
            result = GoChannel(self, result, func.outs[0].go) if result else None
        if profile and timings is not None:
            done = time.perf_counter_ns()
            from ipolyglot.kernel.core.profiling import PROFILER

            decode_ns, native_ns, encode_ns = timings
            PROFILER.record(
                "go", func.name, done - started,
                (encoded - started) + decode_ns, native_ns, encode_ns + go_copy_out[0] + (decoded - returned),
            )
        return result

    def _wait(self, outp, outn, copy_out) -> None:
        """Wait for a supervised call that answered STATUS_RUNNING (runtime/ipgrt/supervise.go):
        Go waits in short slices, so an interrupt reaches Python between them; it abandons
        the call (the Go function runs on; its result is dropped) and propagates."""
        token = None
        try:
            while outn[0] and outp[0][0] == _RUNNING:
                (token,) = marshal._Q.unpack_from(ffi.buffer(outp[0], outn[0]), 1)
                done, outp[0] = outp[0], ffi.NULL
                self.lib.ipg_free(done)
                self.lib.ipg_call_wait(token, outp, outn, copy_out)
        except BaseException:
            if token is not None:
                self.lib.ipg_call_abandon(token)
            raise

    def receive(self, handle: int) -> tuple[Any, bool]:
        """One receive from a channel a Go function returned (see channels.py). Go waits
        in short slices (STATUS_RUNNING), so an interrupt reaches Python between them."""
        outp = ffi.new("char **")
        outn = ffi.new("size_t *")
        self.lib.ipg_chan_receive(handle, outp, outn)
        while outp[0][0] == _RUNNING:
            self.lib.ipg_free(outp[0])
            if self.pending[0]:
                self.check_pending()
            self.lib.ipg_chan_receive(handle, outp, outn)
        try:
            buf = memoryview(ffi.buffer(outp[0], outn[0]))
            if buf[0] != marshal.STATUS_OK:
                self._raise_status(bytes(buf), 0, "")
            value, received = marshal.decode_values(buf, 1, self.classes)[0]
        finally:
            self.lib.ipg_free(outp[0])
        if self.pending[0]:
            self.check_pending()
        return value, received

    def drop_released_callables(self) -> None:
        """Drop the Python callables whose Go func values Go has collected, and ask Go
        to collect when many stay live (Go's collector does not see Python's memory)."""
        if self.released[0]:
            outp = ffi.new("char **")
            outn = ffi.new("size_t *")
            self.lib.ipg_take_released(outp, outn)
            try:
                data = ffi.buffer(outp[0], outn[0])[:]
            finally:
                self.lib.ipg_free(outp[0])
            self.session.callables.release(handle for (handle,) in marshal._Q.iter_unpack(data))
        live = self.session.callables.live()
        if live > self.collect_above:
            self.lib.ipg_collect()
            self.collect_above = max(COLLECT_ABOVE, 2 * live)

    # -- Python callables for the functions ------------------------------------------
    def make_function(self, func: GoFunc, fast: FastEntry | None, py_params: list[str], method: bool = False, doc: str | None = None):
        """A Python function for a Go function, or (`method`) for a method of a struct class.

        `doc` is the comment above the Go declaration; the function's signature
        (parameter names, Python types from the Go types) is set for help().
        """
        fn = self._make_method(func, py_params) if method else self._make_function(func, fast, py_params)
        fn.__signature__ = signatures.signature(func, py_params, self.classes, method)
        if doc and doc.strip():
            fn.__doc__ = f"{doc.strip()}\n\n{fn.__doc__}"
        return fn

    def _make_function(self, func: GoFunc, fast: FastEntry | None, py_params: list[str]):
        """A scalar function built with slot entry points is a FastCall (a generated Python
        function takes the calls it does not; it takes them all where this process could not
        build fastcall.py's type); any other is a generated function."""
        if fast is not None and fast.slots and not self.profiled and self.fast_call_type is not None:
            fn = self._fast_call(fast, self._python_function(func, None, py_params))
        else:
            fn = self._python_function(func, None if fast is None or fast.slots else fast, py_params)
        fn.__doc__ = go_signature(func)
        fn.__name__ = fn.__qualname__ = func.name
        fn.__module__ = "__main__"
        fn._go_library = self
        return fn

    def _python_function(self, func: GoFunc, fast: FastEntry | None, py_params: list[str]):
        """The generated Python function: cffi's typed fast entry point for a scalar
        function (`fast`), else the generic entry point."""
        name = func.name
        wrapper = WrapperParameters.of(func, py_params)
        # __name__: frames of generated code belong to this module (kernel/tracebacks.py hides them).
        namespace: dict[str, Any] = {"__name__": __name__, "_MISSING": MISSING}
        profile = self.profiled
        # float32 arguments take the generic path: cffi would turn 1e300 into inf silently.
        if fast is not None and not profile and "float32" not in fast.signature.ins:
            sig = fast.signature
            c_sig = f"{C_TYPES.get(sig.out, 'void')}(*)({', '.join(C_TYPES[t] for t in sig.ins) or 'void'})"
            namespace.update(
                _fast=self.fast_pointer(fast.index, c_sig),
                _slow=lambda a: self.call(func, a),
                _pending=self.pending,
                _check=self.check_pending,
            )
            source = TEMPLATES.render("fast_wrapper.py.tmpl", name=name, params=wrapper.params, args=wrapper.args, args_tuple=wrapper.args_tuple)
        else:
            namespace["_call"] = (lambda a: self.call(func, a, True)) if profile else (lambda a: self.call(func, a))
            source = TEMPLATES.render("call_wrapper.py.tmpl", name=name, params=wrapper.params, args_tuple=wrapper.args_tuple)
        exec(compile(source, f"<go function {name}>", "exec"), namespace)  # noqa: S102 - our template
        fn = namespace[name]
        fn.__qualname__ = name
        fn.__module__ = "__main__"
        return fn

    def _fast_call(self, fast: FastEntry, generic):
        """A FastCall (fastcall.py) for a scalar function; `generic` takes every call it does not."""
        params, result = fastcall.codes(fast.signature.ins, fast.signature.out)
        pending = int(ffi.cast("uintptr_t", self.pending))
        return self.fast_call_type(self._address(f"ipg_slots_{fast.index}"), params, result, pending, generic, self.check_pending)

    def _make_method(self, func: GoFunc, py_params: list[str]):
        name = func.method
        wrapper = WrapperParameters.of(func, py_params, method=True)
        profile = self.profiled

        def call(a, _func=func, _pointer=func.pointer):
            return self.call(_func, a, profile, a[0] if _pointer else None)

        namespace: dict[str, Any] = {"__name__": __name__, "_MISSING": MISSING, "_call": call}
        source = TEMPLATES.render("call_wrapper.py.tmpl", name=name, params=wrapper.params, args_tuple=wrapper.args_tuple)
        exec(compile(source, f"<go method {func.name}>", "exec"), namespace)  # noqa: S102 - our template
        fn = namespace[name]
        doc = go_signature(func)
        if func.pointer:
            doc += (
                "\n\nPointer receiver: Go works on a copy of the object's exported fields; after the "
                "call (also when it returns an error, not after a panic) the fields as Go left them "
                "are copied back into this object. Unexported Go fields start from their zero value "
                "in every call (they do not cross)."
            )
        else:
            doc += "\n\nValue receiver: Go works on a copy; this object is not changed."
        fn.__doc__ = doc
        fn.__qualname__ = func.name
        fn.__module__ = "__main__"
        fn._go_library = self
        return fn


def copy_back(target, value) -> None:
    """Put the fields of a receiver Go returned into the caller's object."""
    fields = value._asdict() if isinstance(value, marshal.GoStruct) else value
    if isinstance(target, marshal.GoStruct):
        for name, item in fields.items():
            setattr(target, name, item)
    elif isinstance(target, dict):
        target.update(fields)


@dataclass(frozen=True)
class WrapperParameters:
    """What a generated wrapper takes and passes on (templates/*_wrapper.py.tmpl).

    Every parameter defaults to MISSING, so an omitted one is reported with its
    Go type; extra positional arguments are collected (`*_extra`) into the
    generic call's tuple, which reports the count as C++ does ("takes 2
    arguments (3 given)", not Python's "takes from 0 to 2"). A method's `self`
    has no default.
    """

    params: str  # the def's parameter list
    args: str  # the declared arguments, in order (the typed fast entry's)
    args_tuple: str  # the generic entry's tuple: the declared arguments and any extra

    @classmethod
    def of(cls, func: GoFunc, own: list[str], method: bool = False) -> "WrapperParameters":
        """`own`: the Python names of the Go parameters; a `method` takes `self` first."""
        receiver = ["self"] if method else []
        if func.variadic and own:
            params = [*receiver, *(f"{p}=_MISSING" for p in own[:-1]), f"*{own[-1]}"]
            args = [*receiver, *own[:-1], f"list({own[-1]})"]
            passed = args
        else:
            params = [*receiver, *(f"{p}=_MISSING" for p in own), "*_extra"]
            args = [*receiver, *own]
            passed = [*args, "*_extra"]
        return cls(", ".join(params), ", ".join(args), f"({', '.join(passed)},)")


def _too_many(func: GoFunc, given: int) -> str:
    """`Add() takes 2 arguments (3 given)`, a method's receiver not counted (as C++ says it)."""
    receiver = 1 if func.receiver else 0
    takes = len(func.ins) - receiver
    return f"{func.name}() takes {takes} argument{'' if takes == 1 else 's'} ({given - receiver} given)"


def _param(func: GoFunc, index: int) -> str:
    params = func.params
    name = params[index] if index < len(params) and params[index] not in ("", "_") else f"#{index + 1}"
    go_type = func.ins[index].go if index < len(func.ins) else "?"
    return f"parameter {name} (Go type {go_type})"


def go_signature(func: GoFunc) -> str:
    params = []
    ins = list(enumerate(func.ins))
    receiver = ""
    if func.receiver:
        receiver = f"({ins[0][1].go}) "
        ins = ins[1:]
    for index, t in ins:
        name = func.params[index] if index < len(func.params) else ""
        go_type = t.go
        if func.variadic and index == len(func.ins) - 1 and go_type.startswith("[]"):
            go_type = "..." + go_type[2:]
        params.append(f"{name} {go_type}".strip())
    outs = [t.go for t in func.outs] + (["error"] if func.error else [])
    result = "" if not outs else f" {outs[0]}" if len(outs) == 1 else f" ({', '.join(outs)})"
    name = func.method if receiver else func.name
    return f"Go: func {receiver}{name}({', '.join(params)}){result}"

