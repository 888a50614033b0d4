"""Reading Go's pprof profiles (gzipped protobuf) without the `go tool pprof` process.

A profile is a list of samples, each a call stack (leaf first) with values
(CPU nanoseconds, or allocated bytes and objects). We need only the stacks
and values, so a small protobuf reader of the handful of fields of
profile.proto is enough. Frames from cells carry //line positions, so a
function's file is the cell (`cell-<hash>`) and its lines are the cell's lines.
"""

from __future__ import annotations

import gzip
import re
from dataclasses import dataclass, field

from ipolyglot.kernel.core.cells import CELL_ID_DIGITS

# Frames of the cgo/reflection plumbing between Python and the user's function:
# dropped from stacks so the flame graph starts where the call enters Go code
# that matters (the bridge's copying, ipgrt.Call, stays visible).
_PLUMBING = re.compile(
    r"^(runtime\.cgocallback.*|_cgoexp_.*|main\._cgoexp_.*|main\.ipg_.*|ipg_.*|ipgrt\.ipg_call.*|"
    # The goroutine a supervised call runs on, and the wrapper of a cell's goroutine (runtime/ipgrt/supervise.go).
    r"ipgrt\.supervise\.func\d+|ipgrt\.Goroutine\.Run|"
    r"reflect\..*|runtime\.call\d+|runtime\.reflectcall.*|"
    r"runtime\.goexit\d*|runtime\.main|runtime\.mstart.*|runtime\.systemstack|"
    # A sample that lands while a goroutine is being preempted belongs to the code preempted.
    r"runtime\.asyncPreempt2?)$"
)


@dataclass(frozen=True)
class Frame:
    function: str  # e.g. "Busy", "ipgrt.Call", "runtime.mallocgc"
    file: str
    line: int


@dataclass
class Profile:
    sample_types: list[tuple[str, str]]  # (type, unit), e.g. ("cpu", "nanoseconds")
    samples: list[tuple[tuple[Frame, ...], list[int]]] = field(default_factory=list)  # (stack leaf first, values)

    def index_of(self, *names: str) -> int:
        for name in names:
            for i, (kind, _) in enumerate(self.sample_types):
                if kind == name:
                    return i
        return len(self.sample_types) - 1


# -- protobuf ----------------------------------------------------------------------------


def _varint(buf: bytes, pos: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        byte = buf[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if byte < 0x80:
            return value, pos
        shift += 7


def _fields(buf: bytes):
    """(field number, wire type, value) of one message; value is int or bytes."""
    pos, end = 0, len(buf)
    while pos < end:
        key, pos = _varint(buf, pos)
        number, wire = key >> 3, key & 7
        if wire == 0:
            value, pos = _varint(buf, pos)
        elif wire == 2:
            size, pos = _varint(buf, pos)
            value, pos = buf[pos:pos + size], pos + size
        elif wire == 1:
            value, pos = int.from_bytes(buf[pos:pos + 8], "little"), pos + 8
        elif wire == 5:
            value, pos = int.from_bytes(buf[pos:pos + 4], "little"), pos + 4
        else:
            raise ValueError(f"unsupported protobuf wire type {wire}")
        yield number, wire, value


def _ints(wire: int, value) -> list[int]:
    """A repeated integer field: packed (bytes) or one varint."""
    if wire != 2:
        return [value]
    out, pos = [], 0
    while pos < len(value):
        item, pos = _varint(value, pos)
        out.append(item)
    return out


def _signed(x: int) -> int:
    return x - (1 << 64) if x >= 1 << 63 else x


def parse(data: bytes) -> Profile:
    """Decode a (gzipped) pprof profile into stacks of frames."""
    if data[:2] == b"\x1f\x8b":
        data = gzip.decompress(data)
    strings: list[str] = []
    sample_types, raw_samples, locations, functions = [], [], {}, {}
    for number, wire, value in _fields(data):
        if number == 1:
            vt = {n: v for n, _, v in _fields(value)}
            sample_types.append((vt.get(1, 0), vt.get(2, 0)))
        elif number == 2:
            ids, values = [], []
            for n, w, v in _fields(value):
                if n == 1:
                    ids += _ints(w, v)
                elif n == 2:
                    values += [_signed(x) for x in _ints(w, v)]
            raw_samples.append((ids, values))
        elif number == 4:
            loc_id, lines = 0, []
            for n, _, v in _fields(value):
                if n == 1:
                    loc_id = v
                elif n == 4:
                    line = {ln: lv for ln, _, lv in _fields(v)}
                    lines.append((line.get(1, 0), line.get(2, 0)))
            locations[loc_id] = lines
        elif number == 5:
            fn = {n: v for n, _, v in _fields(value)}
            functions[fn.get(1, 0)] = (fn.get(2, 0), fn.get(4, 0))
        elif number == 6:
            strings.append(value.decode("utf-8", "replace"))

    def frames(loc_id: int) -> list[Frame]:
        out = []
        for function_id, line in locations.get(loc_id, []):  # innermost (inlined) first
            name_index, file_index = functions.get(function_id, (0, 0))
            out.append(Frame(short_name(strings[name_index]), strings[file_index], line))
        return out or [Frame("?", "", 0)]

    profile = Profile([(strings[t], strings[u]) for t, u in sample_types])
    for ids, values in raw_samples:
        stack = tuple(f for loc in ids for f in frames(loc))
        profile.samples.append((stack, values))
    return profile


def short_name(name: str) -> str:
    """How the user knows a function: main.Busy reads Busy, the bridge reads ipgrt.X."""
    if name.startswith("main.") and not name.startswith("main._cgo"):
        return name[5:]
    return name.replace("ipolyglot.local/ipgrt.", "ipgrt.")


def subtract(after: Profile, before: Profile) -> Profile:
    """`after` minus `before`, stack by stack (allocation profiles are cumulative)."""
    base: dict[tuple, list[int]] = {}
    for stack, values in before.samples:
        key = tuple((f.function, f.line) for f in stack)
        old = base.setdefault(key, [0] * len(values))
        base[key] = [a + b for a, b in zip(old, values)]
    out = Profile(after.sample_types)
    for stack, values in after.samples:
        key = tuple((f.function, f.line) for f in stack)
        old = base.pop(key, None)
        if old is not None:
            values = [a - b for a, b in zip(values, old)]
        if any(v > 0 for v in values):
            out.samples.append((stack, values))
    return out


# -- summaries ---------------------------------------------------------------------------------


@dataclass
class FunctionCost:
    function: str
    flat: int = 0
    cum: int = 0
    lines: dict[tuple[str, int], int] = field(default_factory=dict)  # (file, line) -> flat+cum weight

    def hottest(self) -> tuple[str, int]:
        return max(self.lines.items(), key=lambda item: item[1])[0] if self.lines else ("", 0)


# Pseudo-frames Go's profiler puts where it has no Go stack to record.
# `_ExternalCode`: the signal landed on a thread that was not running Go code (the Python
# interpreter, C code, any other thread of the process); the `_Lost*` ones are lost samples of those.
NOT_GO_FRAMES = ("runtime._ExternalCode", "runtime._LostExternalCode", "runtime._LostSIGPROFDuringAtomic64")
# `_GC` and `_System` are the Go runtime's own work (garbage collection, scheduling): Go, not user code.
RUNTIME_WORK = {"runtime._GC": "Go runtime: garbage collection", "runtime._System": "Go runtime: scheduler and system"}
# The profiler's own work (writing the baseline snapshot of a heap profile).
_PROFILER_ITSELF = ("ipgrt.allocsProfile", "ipgrt.ipg_pprof_start", "ipgrt.ipg_pprof_stop")

CELL_ID = re.compile(rf"cell-[0-9a-f]{{{CELL_ID_DIGITS}}}")


def cell_of(frame: Frame) -> str | None:
    """The cell id behind a frame's file, wherever the toolchain put it.

    Frames of cell code carry the file names of ipolyglot's //line directives
    (`cell-<hash>`); depending on the Go version and -trimpath that name may
    come with a directory or module prefix, so it is searched, not compared.
    """
    found = CELL_ID.search(frame.file)
    return found.group(0) if found else None


def runs_go(stack: tuple[Frame, ...]) -> bool:
    """False for a sample taken while its thread was not running Go code."""
    return not any(f.function in NOT_GO_FRAMES for f in stack) and stack != (Frame("?", "", 0),)


def user_stack(stack: tuple[Frame, ...]) -> tuple[Frame, ...]:
    """The frames a user cares about: the bridge's plumbing dropped, the runtime's own work named."""
    named = tuple(Frame(RUNTIME_WORK[f.function], "", 0) if f.function in RUNTIME_WORK else f for f in stack)
    return tuple(f for f in named if not _PLUMBING.match(f.function)) or named[:1]


def _profiler_itself(stack: tuple[Frame, ...]) -> bool:
    return any(f.function in _PROFILER_ITSELF for f in stack)


@dataclass
class Totals:
    go: int = 0  # samples of threads running Go code (CPU time summed over those threads)
    not_go: int = 0  # samples of threads running anything else (Python, C, other threads of the process)


def top_functions(profile: Profile, index: int) -> tuple[list[FunctionCost], Totals]:
    """Per Go function: flat (leaf) and cumulative (anywhere on the stack) values, most flat first.

    Samples without Go code are counted apart (Totals.not_go), not as a function.
    """
    costs: dict[str, FunctionCost] = {}
    totals = Totals()
    for stack, values in profile.samples:
        value = values[index]
        if value <= 0 or _profiler_itself(stack):
            continue
        if not runs_go(stack):
            totals.not_go += value
            continue
        totals.go += value
        stack = user_stack(stack)
        seen = set()
        for depth, frame in enumerate(stack):
            cost = costs.setdefault(frame.function, FunctionCost(frame.function))
            if depth == 0:
                cost.flat += value
            if frame.function not in seen:
                cost.cum += value
                seen.add(frame.function)
            key = (frame.file, frame.line)
            cost.lines[key] = cost.lines.get(key, 0) + value
    ranked = sorted(costs.values(), key=lambda c: (c.flat, c.cum), reverse=True)
    return ranked, totals


def folded_stacks(profile: Profile, index: int, label) -> list[tuple[list[str], int]]:
    """Root-first stacks of "function (In [n]:line)" frames of Go code with their values, for a flame graph."""
    merged: dict[tuple[str, ...], int] = {}
    for stack, values in profile.samples:
        value = values[index]
        if value <= 0 or _profiler_itself(stack) or not runs_go(stack):
            continue
        frames = user_stack(stack)
        key = tuple(f"{f.function} {label(f)}".strip() for f in reversed(frames))
        merged[key] = merged.get(key, 0) + value
    return [(list(k), v) for k, v in merged.items()]
