"""The Python half of the wire format (the Go half is runtime/ipgrt/wire.go).

Values are self-describing: a one-byte tag, then little-endian data. Python
encodes what it has; Go decodes into the parameter's type and reports every
mismatch (TypeError, OverflowError) itself, so the type rules live in one
place. Numeric numpy arrays and large bytes objects are not copied here: the
buffer's address is sent and Go copies straight from it during the call.
Large numeric slices in a call's result come the other way as blocks of C
memory of their own (TAG_ARRAY_OWNED), which the numpy array decoded from
each takes over: Go's copy is the only one.
"""

from __future__ import annotations

import copyreg
import inspect
import itertools
import struct
import threading
from collections.abc import Mapping, Sequence
from typing import Any, Callable

import numpy as np

from .abi import C_LIBRARY, ffi

TAG_NIL, TAG_FALSE, TAG_TRUE, TAG_INT, TAG_UINT, TAG_BIGINT, TAG_FLOAT, TAG_COMPLEX = range(8)
TAG_STRING, TAG_BYTES, TAG_ARRAY, TAG_ARRAY_EXTERN, TAG_BYTES_EXTERN = 0x08, 0x09, 0x0A, 0x0B, 0x0C
TAG_ARRAY_OWNED = 0x0D  # dtype, count, address of a malloc'd block the decoded array owns (results only)
TAG_LIST, TAG_MAP, TAG_STRUCT, TAG_FUNC, TAG_MAP_COLUMNS = 0x10, 0x11, 0x12, 0x13, 0x14
COLUMN_STRINGS = 0x00  # a map column of strings joined by NUL (else a dtype code: runtime/ipgrt/columns.go)
MIN_COLUMNS = 16  # smaller dicts are cheaper entry by entry

STATUS_OK, STATUS_GO_ERROR, STATUS_PANIC, STATUS_TYPE_ERROR = 0, 1, 2, 3
STATUS_OVERFLOW_ERROR, STATUS_VALUE_ERROR, STATUS_CALLBACK_ERROR = 4, 5, 6
# A supervised call still running (token follows) or a receive still waiting; a goroutine's
# panic that ended the call; a fast entry point asking for the generic one (runtime/ipgrt/supervise.go).
STATUS_RUNNING, STATUS_GOROUTINE_PANIC, STATUS_RETRY = 7, 8, 9

# numpy dtype <-> wire element code (runtime/ipgrt/wire.go: dtInt8 ...)
DTYPES = [None, "int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64",
          "float32", "float64", "complex64", "complex128", "bool"]
DTYPE_CODE = {np.dtype(name): code for code, name in enumerate(DTYPES) if name}

EXTERN_THRESHOLD = 1 << 12  # smaller buffers are cheaper to inline than to pin

_Q = struct.Struct("<Q")
_QQ = struct.Struct("<QQ")
_q = struct.Struct("<q")
_d = struct.Struct("<d")
_dd = struct.Struct("<dd")
_tag_q = struct.Struct("<Bq")
_tag_d = struct.Struct("<Bd")


class EncodeError(TypeError):
    """A Python value that has no Go counterpart at all."""


class GoStructMeta(type):
    """The type of Go struct classes: lets copyreg pickle them by reference (go_bridge/travel.py),
    and gives each class the constructor signature `Point(X: int = 0, Name: str = '')`."""

    @property
    def __signature__(cls) -> inspect.Signature:
        """Every exported field, by position or keyword, defaulting to its Go zero value.

        A property of the metaclass: `inspect.signature(Point)` and IPython's
        `Point?` read it from the class (the inherited `__init__` takes
        `*args, **kwargs`); instances do not see it.
        """
        from .signatures import annotation

        zero = decode_value(cls._go_zero_, 0, cls._go_classes_)[0] if cls._go_zero_ else None
        return inspect.Signature([
            inspect.Parameter(
                name, inspect.Parameter.POSITIONAL_OR_KEYWORD,
                default=getattr(zero, name, None), annotation=annotation(go_type, cls._go_classes_),
            )
            for name, go_type in zip(cls._go_fields_, cls._go_types_)
        ])


class GoStruct(metaclass=GoStructMeta):
    """Base of the generated classes for exported Go struct types (a dataclass-like copy)."""

    _go_name_: str = ""
    _go_fields_: tuple[str, ...] = ()
    _go_types_: tuple[str, ...] = ()
    _go_zero_: bytes = b""  # the Go zero value, encoded: fresh defaults for every instance
    _go_classes_: Mapping[str, type] = {}  # the classes of the library it came from (for nested structs)

    def __init__(self, *args, **kwargs):
        if len(args) > len(self._go_fields_):
            raise TypeError(f"{self._go_name_}() takes at most {len(self._go_fields_)} positional arguments")
        values = dict(zip(self._go_fields_, args))
        for name, value in kwargs.items():
            if name not in self._go_fields_:
                raise TypeError(f"{self._go_name_} has no exported field {name!r} (fields: {', '.join(self._go_fields_)})")
            if name in values:
                raise TypeError(f"{self._go_name_}() got field {name!r} twice")
            values[name] = value
        zero = decode_value(self._go_zero_, 0, self._go_classes_)[0] if self._go_zero_ else None
        for name in self._go_fields_:
            setattr(self, name, values[name] if name in values else getattr(zero, name, None))

    def __repr__(self) -> str:
        inner = ", ".join(f"{name}={getattr(self, name, None)!r}" for name in self._go_fields_)
        return f"{self._go_name_}({inner})"

    def __eq__(self, other) -> bool:
        if not isinstance(other, GoStruct) or other._go_name_ != self._go_name_ or other._go_fields_ != self._go_fields_:
            return NotImplemented
        return all(_equal(getattr(self, n, None), getattr(other, n, None)) for n in self._go_fields_)

    __hash__ = None  # mutable, like the Go value it copies

    def _asdict(self) -> dict[str, Any]:
        return {name: getattr(self, name, None) for name in self._go_fields_}

    def __copy__(self):
        duplicate = type(self).__new__(type(self))
        duplicate.__dict__.update(self.__dict__)
        return duplicate

    def __deepcopy__(self, memo):
        import copy

        duplicate = type(self).__new__(type(self))
        memo[id(self)] = duplicate
        for name, value in self.__dict__.items():
            setattr(duplicate, name, copy.deepcopy(value, memo))
        return duplicate

    def __reduce__(self):
        from .travel import reduce_struct_value  # another process rebuilds the class from its build

        return reduce_struct_value(self)


def _reduce_struct_class(cls: type):
    from .travel import reduce_struct_class

    return reduce_struct_class(cls)


copyreg.pickle(GoStructMeta, _reduce_struct_class)  # classes pickle as references to their build


def _equal(a, b) -> bool:
    if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        return isinstance(a, np.ndarray) and isinstance(b, np.ndarray) and a.dtype == b.dtype and np.array_equal(a, b)
    return a == b


# ---- Python callables handed to Go ---------------------------------------------


class Callables:
    """The Python callables one session handed to Go, by handle, and the exceptions they raised.

    Go calls a callable back by its handle (library.GoSession's dispatch); a
    handle lives until Go lets go of its func value (runtime/ipgrt/handles.go
    has the lifetime rule). An exception a callable raised waits here until
    the call that reached Python's side returns and raises it again.
    """

    def __init__(self) -> None:
        self._by_handle: dict[int, Callable] = {}
        self._handle_ids = itertools.count(1)
        self._exceptions: dict[int, BaseException] = {}
        self._exception_ids = itertools.count(1)
        self._lock = threading.Lock()

    def batch(self) -> "CallableBatch":
        return CallableBatch(self)

    def get(self, handle: int) -> Callable | None:
        return self._by_handle.get(handle)

    def register(self, fn: Callable) -> int:
        handle = next(self._handle_ids)
        self._by_handle[handle] = fn
        return handle

    def release(self, handles) -> None:
        """Drop callables Go no longer holds."""
        for handle in handles:
            self._by_handle.pop(handle, None)

    def live(self) -> int:
        """How many Python callables Go may still call."""
        return len(self._by_handle)

    def remember_exception(self, exc: BaseException) -> int:
        with self._lock:
            eid = next(self._exception_ids)
            self._exceptions[eid] = exc
            while len(self._exceptions) > 64:  # ones Go recovered itself and never re-raised
                self._exceptions.pop(next(iter(self._exceptions)))
        return eid

    def take_exception(self, eid: int) -> BaseException | None:
        with self._lock:
            return self._exceptions.pop(eid, None)


class CallableBatch(list):
    """The handles one call's arguments registered (released at once if Go ran nothing)."""

    def __init__(self, registry: Callables):
        super().__init__()
        self.registry = registry

    def register(self, fn: Callable) -> int:
        handle = self.registry.register(fn)
        self.append(handle)
        return handle


# ---- encoding ------------------------------------------------------------------


def encode_args(args, keep: list, handles: CallableBatch) -> bytearray:
    """Arguments as one buffer; `keep` holds the buffers Go reads during the call."""
    out = bytearray(_Q.pack(len(args)))
    for index, value in enumerate(args):
        try:
            encode(value, out, keep, handles, 0)
        except EncodeError as exc:
            exc.index = index
            raise
    return out


def encode(value, out: bytearray, keep: list, handles: CallableBatch, depth: int) -> None:
    if depth > 1000:
        raise EncodeError("the value is nested too deeply (a cycle?)")
    kind = type(value)
    if value is None:
        out.append(TAG_NIL)
    elif kind is bool:
        out.append(TAG_TRUE if value else TAG_FALSE)
    elif kind is int:
        _encode_int(value, out)
    elif kind is float:
        out += _tag_d.pack(TAG_FLOAT, value)
    elif kind is str:
        data = value.encode("utf-8", "surrogatepass")
        out.append(TAG_STRING)
        out += _Q.pack(len(data))
        out += data
    elif isinstance(value, np.ndarray):
        _encode_array(value, out, keep, handles, depth)
    elif isinstance(value, (bytes, bytearray, memoryview)):
        view = memoryview(value)
        if view.ndim != 1 or view.itemsize != 1 or not view.c_contiguous:
            view = memoryview(view.tobytes())
        if len(view) >= EXTERN_THRESHOLD and isinstance(value, bytes):
            pinned = ffi.from_buffer(value)
            keep.append(pinned)
            out.append(TAG_BYTES_EXTERN)
            out += _Q.pack(len(view))
            out += _Q.pack(int(ffi.cast("uintptr_t", pinned)))
        else:
            out.append(TAG_BYTES)
            out += _Q.pack(len(view))
            out += view
    elif isinstance(value, bool) or isinstance(value, np.bool_):
        out.append(TAG_TRUE if value else TAG_FALSE)
    elif isinstance(value, int) or isinstance(value, np.integer):
        _encode_int(int(value), out)
    elif isinstance(value, float) or isinstance(value, np.floating):
        out += _tag_d.pack(TAG_FLOAT, float(value))
    elif isinstance(value, complex) or isinstance(value, np.complexfloating):
        value = complex(value)
        out.append(TAG_COMPLEX)
        out += _dd.pack(value.real, value.imag)
    elif isinstance(value, str):
        encode(str(value), out, keep, handles, depth)
    elif isinstance(value, GoStruct):
        name = value._go_name_.encode()
        out.append(TAG_STRUCT)
        out += _Q.pack(len(name))
        out += name
        out += _Q.pack(len(value._go_fields_))
        for field in value._go_fields_:
            encode(field, out, keep, handles, depth + 1)
            encode(getattr(value, field, None), out, keep, handles, depth + 1)
    elif isinstance(value, Mapping):
        if type(value) is dict and len(value) >= MIN_COLUMNS and _encode_columns(value, out):
            return
        out.append(TAG_MAP)
        out += _Q.pack(len(value))
        for key, item in value.items():
            encode(key, out, keep, handles, depth + 1)
            encode(item, out, keep, handles, depth + 1)
    elif isinstance(value, (list, tuple, range)) or (isinstance(value, Sequence) and not isinstance(value, (str, bytes))):
        out.append(TAG_LIST)
        out += _Q.pack(len(value))
        for item in value:
            encode(item, out, keep, handles, depth + 1)
    elif callable(value):
        handle = handles.register(value)
        out += _tag_q.pack(TAG_FUNC, handle)
    else:
        try:
            view = memoryview(value)
        except TypeError:
            raise EncodeError(f"a Python {type(value).__name__} has no Go counterpart") from None
        _encode_array(np.asarray(view), out, keep, handles, depth)


def _encode_columns(value: dict, out: bytearray) -> bool:
    """A dict with str or int keys and float, int, bool or str values, in two bulk
    columns (no per-entry Python work); False for any other dict."""
    keys = _column(list(value))
    if keys is None:
        return False
    values = _column(list(value.values()))
    if values is None:
        return False
    out.append(TAG_MAP_COLUMNS)
    out += _Q.pack(len(value))
    out += keys
    out += values
    return True


_FLOAT64, _INT64, _BOOL = (DTYPE_CODE[np.dtype(name)] for name in ("float64", "int64", "bool"))


def _column(items: list) -> bytes | None:
    kind = type(items[0])
    if kind is str:
        try:
            joined = "\0".join(items)
        except TypeError:  # not all strings
            return None
        if joined.count("\0") != len(items) - 1:  # a string holding NUL: per entry
            return None
        data = joined.encode("utf-8", "surrogatepass")
        return bytes([COLUMN_STRINGS]) + _Q.pack(len(data)) + data
    if kind not in (float, int, bool) or set(map(type, items)) != {kind}:
        return None
    if kind is float:
        return bytes([_FLOAT64]) + struct.pack(f"<{len(items)}d", *items)
    if kind is bool:
        return bytes([_BOOL]) + bytes(items)
    try:
        return bytes([_INT64]) + struct.pack(f"<{len(items)}q", *items)
    except struct.error:  # an int beyond int64
        return None


def _decode_column(buf, pos: int, n: int) -> tuple[list, int]:
    code = buf[pos]
    pos += 1
    if code == COLUMN_STRINGS:
        (size,) = _Q.unpack_from(buf, pos)
        pos += 8
        data = bytes(buf[pos : pos + size])
        try:
            items = data.decode("utf-8", "surrogatepass").split("\0")
        except UnicodeDecodeError:  # some string is not UTF-8: decode each one as read_string does
            items = [_text(part) for part in data.split(b"\0")]
        return items, pos + size
    dtype = np.dtype(DTYPES[code])
    return np.frombuffer(buf, dtype=dtype, count=n, offset=pos).tolist(), pos + n * dtype.itemsize


def _encode_int(value: int, out: bytearray) -> None:
    if -(1 << 63) <= value < (1 << 63):
        out += _tag_q.pack(TAG_INT, value)
    elif 0 <= value < (1 << 64):
        out.append(TAG_UINT)
        out += _Q.pack(value)
    else:
        text = str(value).encode()
        out.append(TAG_BIGINT)
        out += _Q.pack(len(text))
        out += text


def _encode_array(array: np.ndarray, out: bytearray, keep: list, handles: CallableBatch, depth: int) -> None:
    if array.ndim == 0:
        encode(array.item(), out, keep, handles, depth)
        return
    if array.ndim > 1:
        out.append(TAG_LIST)
        out += _Q.pack(len(array))
        for row in array:
            _encode_array(row, out, keep, handles, depth + 1)
        return
    dtype = array.dtype
    if not dtype.isnative:
        array = array.astype(dtype.newbyteorder("="))
        dtype = array.dtype
    code = DTYPE_CODE.get(np.dtype(dtype.name)) if dtype.kind in "iufcb" else None
    if code is None:
        out.append(TAG_LIST)
        out += _Q.pack(len(array))
        for item in array.tolist():
            encode(item, out, keep, handles, depth + 1)
        return
    if not array.flags.c_contiguous:
        array = np.ascontiguousarray(array)
    if array.nbytes >= EXTERN_THRESHOLD:
        pinned = ffi.from_buffer(array)
        keep.append((array, pinned))
        out.append(TAG_ARRAY_EXTERN)
        out.append(code)
        out += _Q.pack(len(array))
        out += _Q.pack(int(ffi.cast("uintptr_t", pinned)))
    else:
        out.append(TAG_ARRAY)
        out.append(code)
        out += _Q.pack(len(array))
        out += array.tobytes()


# ---- decoding ------------------------------------------------------------------


def _text(raw) -> str:
    data = bytes(raw)
    try:
        return data.decode("utf-8", "surrogatepass")
    except UnicodeDecodeError:
        return data.decode("utf-8", "surrogateescape")


def read_string(buf, pos: int) -> tuple[str, int]:
    (n,) = _Q.unpack_from(buf, pos)
    pos += 8
    return _text(buf[pos : pos + n]), pos + n


def decode_value(buf, pos: int, classes: Mapping[str, type]) -> tuple[Any, int]:
    tag = buf[pos]
    pos += 1
    if tag == TAG_NIL:
        return None, pos
    if tag == TAG_FALSE:
        return False, pos
    if tag == TAG_TRUE:
        return True, pos
    if tag == TAG_INT:
        return _q.unpack_from(buf, pos)[0], pos + 8
    if tag == TAG_UINT:
        return _Q.unpack_from(buf, pos)[0], pos + 8
    if tag == TAG_FLOAT:
        return _d.unpack_from(buf, pos)[0], pos + 8
    if tag == TAG_COMPLEX:
        re, im = _dd.unpack_from(buf, pos)
        return complex(re, im), pos + 16
    if tag == TAG_STRING:
        return read_string(buf, pos)
    if tag == TAG_BYTES:
        (n,) = _Q.unpack_from(buf, pos)
        pos += 8
        return bytes(buf[pos : pos + n]), pos + n
    if tag == TAG_ARRAY:
        code = buf[pos]
        (n,) = _Q.unpack_from(buf, pos + 1)
        pos += 9
        dtype = np.dtype(DTYPES[code])
        array = np.frombuffer(buf, dtype=dtype, count=n, offset=pos).copy() if n else np.empty(0, dtype)
        return array, pos + n * dtype.itemsize
    if tag == TAG_ARRAY_OWNED:
        code = buf[pos]
        n, address = _QQ.unpack_from(buf, pos + 1)
        return adopted_array(address, n, np.dtype(DTYPES[code])), pos + 17
    if tag == TAG_LIST:
        return decode_values(buf, pos, classes)
    if tag == TAG_MAP:
        (n,) = _Q.unpack_from(buf, pos)
        pos += 8
        result = {}
        for _ in range(n):
            key, pos = decode_value(buf, pos, classes)
            value, pos = decode_value(buf, pos, classes)
            if isinstance(key, list):
                key = tuple(key)
            elif isinstance(key, GoStruct):
                key = tuple(key._asdict().values())
            result[key] = value
        return result, pos
    if tag == TAG_MAP_COLUMNS:
        (n,) = _Q.unpack_from(buf, pos)
        keys, pos = _decode_column(buf, pos + 8, n)
        values, pos = _decode_column(buf, pos, n)
        return dict(zip(keys, values)), pos
    if tag == TAG_STRUCT:
        name, pos = read_string(buf, pos)
        (n,) = _Q.unpack_from(buf, pos)
        pos += 8
        fields = {}
        for _ in range(n):
            key, pos = decode_value(buf, pos, classes)
            fields[key], pos = decode_value(buf, pos, classes)
        cls = classes.get(name)
        if cls is None or tuple(fields) != cls._go_fields_:
            return fields, pos
        obj = cls.__new__(cls)
        obj.__dict__.update(fields)
        return obj, pos
    raise ValueError(f"malformed data from Go (tag {tag:#x} at {pos - 1})")


def adopted_array(address: int, n: int, dtype: np.dtype) -> np.ndarray:
    """The array over a block of C memory Go filled for a result: the array owns it
    from now on (the block is freed when the array and its views are collected)."""
    block = ffi.gc(ffi.cast("char *", address), C_LIBRARY.free)
    return np.frombuffer(ffi.buffer(block, n * dtype.itemsize), dtype=dtype)


def decode_values(buf, pos: int, classes: Mapping[str, type]) -> tuple[list, int]:
    (n,) = _Q.unpack_from(buf, pos)
    pos += 8
    values = []
    for _ in range(n):
        value, pos = decode_value(buf, pos, classes)
        values.append(value)
    return values, pos
