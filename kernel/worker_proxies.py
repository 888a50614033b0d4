"""What the kernel holds for native objects that live in the worker, and how values are copied.

Plain values, numpy arrays, Go struct values and enum members cross by copy
(Go structs and C++ enums become instances of kernel-side classes rebuilt from
the worker's description). Everything else the worker binds (functions, C++
classes and instances, namespaces, `govars`) stays there and is represented
here by a `RemoteObject` that forwards calls, attributes, repr and equality.
A Python callable sent to the worker is registered here and called back.
"""

from __future__ import annotations

import enum
import inspect
import itertools
import pickle
import weakref
from typing import Any, Callable

from ipolyglot.go_bridge.channels import ChannelReceiver, PendingReceive

from .core.native_signature import annotate
from .worker_protocol import PROTOCOL_MODULE, importable_by_name, RemoteError, PersistentCodec, crosses_by_name, EnumDescription, HandleInfo, NativeCrash, Parameter, StructDescription, StructKey

_PLAIN_TYPES = (type(None), bool, int, float, complex, str, bytes, bytearray, list, tuple, dict, set, frozenset, range, slice,
                pickle.PickleBuffer)


RAISED_KEPT = 64


class StaleNativeObject(NativeCrash):
    """A proxy whose native object lived in a worker that has since been replaced."""


class _DefaultRepr:
    def __init__(self, text: str):
        self.text = text

    def __repr__(self) -> str:
        return self.text


def make_signature(parameters: tuple[Parameter, ...] | None) -> inspect.Signature | None:
    if parameters is None:
        return None
    try:
        return inspect.Signature([
            inspect.Parameter(
                p.name, inspect._ParameterKind(p.kind),
                default=inspect.Parameter.empty if p.default_repr is None else _DefaultRepr(p.default_repr),
            )
            for p in parameters
        ])
    except (ValueError, TypeError):
        return None


def _annotated(plain: inspect.Signature | None, text: str | None) -> inspect.Signature | None:
    """The proxy's signature with the annotations the worker's signature text spells."""
    if plain is None or not text:
        return plain
    return annotate(plain, text) or plain


class RemoteObject:
    """A native object that lives in the worker: calls, attributes, repr and equality go there."""

    def __init__(self, supervisor, info: HandleInfo, generation: int):
        object.__setattr__(self, "_supervisor", supervisor)
        object.__setattr__(self, "_info", info)
        object.__setattr__(self, "_generation", generation)
        object.__setattr__(self, "__signature__", _annotated(make_signature(info.parameters), info.signature_text))
        object.__setattr__(self, "__doc__", info.doc)
        object.__setattr__(self, "__name__", info.name.rsplit(".", 1)[-1])
        object.__setattr__(self, "__qualname__", info.name)

    def __call__(self, *args, **kwargs):
        __tracebackhide__ = True  # IPython shows the user's line, not the channel
        return self._supervisor.call(self, args, kwargs)

    def _compiled_caller(self):
        """A C callable that calls this function through its worker's shared-memory lane when it can,
        and through this proxy otherwise (kernel/fast_channel.py); None without a lane."""
        return self._supervisor.lane_caller(self)

    def __getattr__(self, name: str):
        __tracebackhide__ = True  # IPython shows the user's line, not the channel
        if (name.startswith("__") and name.endswith("__")) or name.startswith(("_repr_", "_ipython_")):
            raise AttributeError(name)  # IPython's display probes: never worth a trip to the worker
        return self._supervisor.request("getattr", self, name, describe=f"{self._info.name}.{name}")

    def __setattr__(self, name: str, value) -> None:
        __tracebackhide__ = True  # IPython shows the user's line, not the channel
        self._supervisor.request("setattr", self, name, value, describe=f"{self._info.name}.{name} = …")

    def __repr__(self) -> str:
        if self._generation != self._supervisor.generation:
            return f"<{self._info.name} from a native worker that ended>"
        return self._supervisor.request("repr", self, describe=f"repr({self._info.name})")

    def __eq__(self, other):
        __tracebackhide__ = True  # IPython shows the user's line, not the channel
        if not isinstance(other, RemoteObject):
            return NotImplemented
        return self._supervisor.request("eq", self, other, describe=f"{self._info.name} == …")

    __hash__ = object.__hash__

    def __reduce__(self):
        """A native function pickles as a reference to its build (kernel/core/travel.py), as in-process:
        the receiving process loads it, or, when it cannot, its calls raise why."""
        from .core.travel import arriving_function

        try:
            build = self._supervisor.request("getattr", self, "_build", describe=f"pickle {self._info.name}")
            name = self._supervisor.request("getattr", self, "_name", describe=f"pickle {self._info.name}")
        except AttributeError:
            build = None
        if build is None:
            raise TypeError(f"{self._info.name} lives in the native worker and cannot be copied to another process")
        return arriving_function, (build, name)

    def __dir__(self):
        return self._supervisor.request("dir", self, describe=f"dir({self._info.name})")


class RemoteChannel(RemoteObject, ChannelReceiver):
    """A Go channel that lives in the worker: `receive()` waits there, so iteration, `async for`,
    an interrupt of a blocked receive and the worker's death behave as for an in-process GoChannel."""

    def __init__(self, supervisor, info: HandleInfo, generation: int):
        super().__init__(supervisor, info, generation)
        object.__setattr__(self, "_pending", PendingReceive())

    def receive(self) -> tuple[Any, bool]:
        """The next value and True, or the zero value and False once Go closed the channel."""
        __tracebackhide__ = True  # IPython shows the user's line, not the channel
        return self._supervisor.request("channel_receive", self, describe="a receive from a Go channel")


class RemoteClass(RemoteObject):
    """A class that lives in the worker: `Cls.__init__` is the worker's constructor, with its
    signature and documentation, as in-process (the proxy's own `__init__` only builds the proxy)."""

    def __getattribute__(self, name: str):
        if name == "__init__":  # constructing a RemoteClass looks its __init__ up on the type, not here
            __tracebackhide__ = True  # IPython shows the user's line, not the channel
            return self._supervisor.request("getattr", self, name, describe=f"{self._info.name}.__init__")
        return object.__getattribute__(self, name)


PROXY_CLASSES = {"channel": RemoteChannel, "class": RemoteClass}  # by HandleInfo.kind; else RemoteObject


class KernelCodec(PersistentCodec):
    """Pickling in the kernel: proxies go back as handles, callables become callbacks."""

    def __init__(self, supervisor):
        self.supervisor = supervisor
        self.proxies: weakref.WeakValueDictionary = weakref.WeakValueDictionary()
        self.released: list[int] = []  # handles whose proxies were collected, sent with the next message
        self.callbacks: dict[int, Callable] = {}
        self.callback_of: dict[int, int] = {}  # id(callable) -> callback id
        self.callback_ids = itertools.count(1)
        self.raised: dict[int, BaseException] = {}  # the latest exceptions of callbacks, by id
        self.struct_classes: dict[StructKey, type] = {}
        self.enum_classes: dict[EnumDescription, type] = {}

    def reset(self) -> None:
        """A new worker: its handles start afresh; the kernel's copies (structs, enums) stay valid."""
        self.proxies = weakref.WeakValueDictionary()
        self.released.clear()
        self.callbacks.clear()
        self.callback_of.clear()

    # -- kernel -> worker -----------------------------------------------------------------
    def persistent_id(self, obj):
        kind = type(obj)
        if isinstance(obj, BaseException):
            return self._exception_reference(obj)
        if kind in _PLAIN_TYPES or kind.__module__ == PROTOCOL_MODULE:
            return None
        if isinstance(obj, RemoteObject):
            if obj._generation != self.supervisor.generation:
                raise StaleNativeObject(
                    f"{obj._info.name} belonged to a native worker that ended (after a crash or an interrupt); "
                    "native state was reset: call the function again by its name, or create the object again"
                )
            return ("handle", obj._info.id)
        from ipolyglot.go_bridge.marshal import GoStruct

        if isinstance(obj, GoStruct):
            key = StructKey(obj._go_name_, tuple(obj._go_fields_), tuple(obj._go_types_))
            return ("gostruct", key, obj._asdict())
        if isinstance(obj, enum.Enum) and getattr(kind, "_ipolyglot_description_", None) is not None:
            return ("enum", kind._ipolyglot_description_, obj.name)
        module = getattr(kind, "__module__", "") or ""
        if module.startswith("numpy") or isinstance(obj, type) or crosses_by_name(obj) or importable_by_name(obj):
            return None
        if callable(obj):  # a Python callable handed to native code: called back here
            callback_id = self.callback_of.get(id(obj))
            if callback_id is None:
                callback_id = next(self.callback_ids)
                self.callbacks[callback_id] = obj
                self.callback_of[id(obj)] = callback_id
            return ("callback", callback_id)
        return None

    def _exception_reference(self, error: BaseException):
        """An exception a callback raised: the worker gets a copy that, raised back, is this very object."""
        self.raised[id(error)] = error
        while len(self.raised) > RAISED_KEPT:  # a goroutine's callback error may surface a call later
            del self.raised[next(iter(self.raised))]
        cls = type(error)
        importable = cls if crosses_by_name(cls) else None
        return ("kernel_exception", id(error), cls.__name__, str(error), importable, error.args if importable else ())

    def release_callbacks(self, callback_ids: list[int]) -> None:
        for callback_id in callback_ids:
            obj = self.callbacks.pop(callback_id, None)
            if obj is not None:
                self.callback_of.pop(id(obj), None)

    # -- worker -> kernel -----------------------------------------------------------------
    def persistent_load(self, pid):
        tag = pid[0]
        if tag == "handle":
            return self._proxy(pid[1])
        if tag == "gostruct":
            return self._struct_value(pid[1], pid[2])
        if tag == "gostruct_class":
            return self.struct_class(pid[1])
        if tag == "enum":
            return self.enum_class(pid[1])[pid[2]]
        if tag == "enum_class":
            return self.enum_class(pid[1])
        if tag == "kernel_exception":
            return self._kernel_exception(*pid[1:])
        raise pickle.UnpicklingError(f"unknown reference {tag!r}")

    def _kernel_exception(self, exception_id: int, text: str, notes: tuple[str, ...]) -> BaseException:
        """A callback's exception back from the worker: the kernel's own object, with the notes native
        code added to its copy there (that it ended a C++ thread, say)."""
        error = self.raised.get(exception_id) or RemoteError(text)
        for note in notes:
            if note not in getattr(error, "__notes__", ()):
                error.add_note(note)
        return error

    def _proxy(self, info: HandleInfo) -> RemoteObject:
        proxy = self.proxies.get(info.id)
        if proxy is not None:
            return proxy
        if info.id in self.released:
            self.released.remove(info.id)
        proxy = PROXY_CLASSES.get(info.kind, RemoteObject)(self.supervisor, info, self.supervisor.generation)
        self.proxies[info.id] = proxy
        weakref.finalize(proxy, self._collected, info.id, self.supervisor.generation)
        return proxy

    def _collected(self, handle: int, generation: int) -> None:
        if generation == self.supervisor.generation:
            self.released.append(handle)

    def _struct_value(self, key: StructKey, fields: dict):
        cls = self.struct_classes.get(key) or self._bare_struct_class(key)
        obj = cls.__new__(cls)
        for name, value in fields.items():
            setattr(obj, name, value)
        return obj

    def _bare_struct_class(self, key: StructKey) -> type:
        return self.struct_class(StructDescription(key, b"", None, ()))

    def struct_class(self, description: StructDescription) -> type:
        """The kernel's copy class of a Go struct: same name, fields and zero value; methods run in the worker."""
        from ipolyglot.go_bridge.marshal import GoStruct

        key = description.key
        cls = self.struct_classes.get(key)
        if cls is None:
            cls = type(key.name, (GoStruct,), {
                "_go_name_": key.name, "_go_fields_": key.fields, "_go_types_": key.types,
                "__doc__": description.doc, "__module__": "__main__",
            })
            self.struct_classes[key] = cls
        if description.zero:
            cls._go_zero_ = description.zero
        cls._go_classes_ = {k.name: c for k, c in self.struct_classes.items()}
        for name in getattr(cls, "_worker_methods_", ()):
            if name not in {m[0] for m in description.methods} and name in cls.__dict__:
                delattr(cls, name)
        for name, doc, parameters, typed in description.methods:
            setattr(cls, name, _go_method(self.supervisor, key.name, name, doc, parameters, typed))
        if description.methods or description.zero:
            cls._worker_methods_ = tuple(m[0] for m in description.methods)
        return cls

    def enum_class(self, description: EnumDescription) -> type:
        cls = self.enum_classes.get(description)
        if cls is None:
            base = enum.IntEnum if description.base == "IntEnum" else enum.Enum
            cls = base(description.name, list(description.members), module="__main__")
            cls._ipolyglot_description_ = description
            cls.__reduce_ex__ = _enum_copy_stays  # travel: without it, a pool worker fails to unpickle it and the map hangs
            self.enum_classes[description] = cls
        return cls



def _enum_copy_stays(member: enum.Enum, protocol: int):
    """The kernel's copy of a worker's enum names no build, so another process could not find its class."""
    raise TypeError(
        f"{type(member).__name__}.{member.name} is the kernel's copy of an enum of the native worker and cannot be "
        f"sent to another process; send its value ({member.value!r}) and convert it there, or use in-process mode"
    )


def _go_method(supervisor, type_name: str, name: str, doc: str | None, parameters, typed: str | None) -> Callable:
    """A method of a Go struct copy: the worker runs it on a copy and sends the receiver back."""

    def method(self, *args: Any, **kwargs: Any):
        __tracebackhide__ = True  # IPython shows the user's line, not the channel
        result, error, receiver = supervisor.request("gomethod", self, name, args, kwargs, describe=f"{type_name}.{name}()")
        for field_name in self._go_fields_:
            setattr(self, field_name, getattr(receiver, field_name, None))
        if error is not None:
            raise error
        return result

    method.__name__ = name
    method.__qualname__ = f"{type_name}.{name}"
    method.__doc__ = doc
    signature = _annotated(make_signature(parameters), typed)
    if signature is not None:
        method.__signature__ = signature
    return method
