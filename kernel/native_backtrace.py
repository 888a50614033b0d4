"""The native backtrace of a worker that died: what `NativeCrash` shows after the cause.

Two sources, both read by the kernel after the worker is gone:

- Go prints its own traceback when its runtime dies (`fatal error: …`, a stack
  overflow, an unrecovered panic). Its frames name cells by the `//line
  cell-<id>:N` directives of the generated code; they are rewritten as the
  notebook names cells (`In [3]:5`), and the runtime's own frames are dropped.
- For C and C++, a fatal-signal handler in the worker (a few lines of C,
  compiled once into the build cache) writes the faulting pc, the raw return
  addresses and a copy of /proc/self/maps to a file the kernel passed it, using
  only async-signal-safe calls (`backtrace()` is warmed up when the handler is
  installed, so it does not load libgcc inside the handler). The kernel turns
  the addresses into functions and lines with `addr2line`; a cell built with
  `-g` names its lines `In [n]:line` (its debug information maps each cell's
  file to its label).
"""

from __future__ import annotations

import ctypes
import os
import re
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from .core.cells import CELL_ID_DIGITS

REPORT_FD_VARIABLE = "IPOLYGLOT_CRASH_REPORT_FD"  # how the supervisor hands the worker its report file
MAX_FRAMES = 24
HANDLER_LIBRARY = "crash_handler.so"

HANDLER_SOURCE = r"""
#define _GNU_SOURCE
#include <execinfo.h>
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <ucontext.h>
#include <unistd.h>

static int report_fd = -1;
static volatile sig_atomic_t reported = 0;
static const int fatal_signals[] = {SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGABRT, SIGTRAP, SIGSYS};

static void put(const char *text, size_t size) {
    while (size > 0) {
        ssize_t written = write(report_fd, text, size);
        if (written <= 0) return;
        text += written;
        size -= (size_t)written;
    }
}

static void put_line(const char *label, uintptr_t value) {
    char digits[2 + 2 * sizeof value + 1];
    size_t at = sizeof digits;
    digits[--at] = '\n';
    do { digits[--at] = "0123456789abcdef"[value & 15]; value >>= 4; } while (value);
    digits[--at] = 'x';
    digits[--at] = '0';
    put(label, strlen(label));
    put(digits + at, sizeof digits - at);
}

static uintptr_t faulting_pc(void *context) {
    ucontext_t *uc = (ucontext_t *)context;
#if defined(__x86_64__)
    return (uintptr_t)uc->uc_mcontext.gregs[REG_RIP];
#elif defined(__aarch64__)
    return (uintptr_t)uc->uc_mcontext.pc;
#else
    (void)uc;
    return 0;
#endif
}

static uintptr_t faulting_frame_pointer(void *context) {
    ucontext_t *uc = (ucontext_t *)context;
#if defined(__x86_64__)
    return (uintptr_t)uc->uc_mcontext.gregs[REG_RBP];
#elif defined(__aarch64__)
    return (uintptr_t)uc->uc_mcontext.regs[29];
#else
    (void)uc;
    return 0;
#endif
}

/* Reads memory that may not be mapped without faulting: the kernel copies it through
   a pipe and answers EFAULT instead of a signal. */
static int probe_pipe[2] = {-1, -1};

static int copy_safely(uintptr_t address, void *out, size_t size) {
    if (probe_pipe[1] < 0 || write(probe_pipe[1], (const void *)address, size) != (ssize_t)size) return 0;
    return read(probe_pipe[0], out, size) == (ssize_t)size;
}

static uintptr_t signal_return = 0;  /* libc's sigreturn trampoline: a return address that marks a signal frame */

/* The callers by the frame-pointer chain, from the faulting context: libgcc's walk from
   this handler stops at a signal trampoline without unwind tables (Go's, once a Go
   runtime is loaded). Code built with -O0 (a cell's -g) keeps its frame pointers.
   A Go runtime that does not handle a fault in C code raises the signal again from
   its own handler; the chain then passes through the first signal's frame, whose
   saved context holds the pc and frame pointer of the real fault ("fault" lines). */
static void put_frame_pointer_callers(void *context) {
    uintptr_t fp = faulting_frame_pointer(context), previous = 0, record[2];
    int i;
    for (i = 0; i < 64 && fp > previous && (fp & (sizeof fp - 1)) == 0; i++) {
        if (!copy_safely(fp, record, sizeof record) || record[1] == 0) return;
#if defined(__x86_64__)
        if (signal_return && record[1] == signal_return) {
            /* the kernel's rt_sigframe: the trampoline's address, then the interrupted ucontext */
            ucontext_t *interrupted = (ucontext_t *)(fp + 2 * sizeof(uintptr_t));
            uintptr_t pc, frame;
            if (!copy_safely((uintptr_t)&interrupted->uc_mcontext.gregs[REG_RIP], &pc, sizeof pc)) return;
            if (!copy_safely((uintptr_t)&interrupted->uc_mcontext.gregs[REG_RBP], &frame, sizeof frame)) return;
            put_line("fault ", pc);
            previous = 0;  /* the handler may have run on another stack */
            fp = frame;
            continue;
        }
#endif
        put_line("caller ", record[1]);
        previous = fp;
        fp = record[0];
    }
}

static void copy_maps(void) {
    char buffer[4096];
    ssize_t count;
    int maps = open("/proc/self/maps", O_RDONLY | O_CLOEXEC);
    if (maps < 0) return;
    while ((count = read(maps, buffer, sizeof buffer)) > 0) put(buffer, (size_t)count);
    close(maps);
}

static void on_fatal_signal(int signum, siginfo_t *info, void *context) {
    if (!reported) {  /* one report, however many threads fault */
        void *frames[128];
        int count, i;
        reported = 1;
        /* what cannot fail first: should the walk below fault, the faulting pc is named */
        put_line("signal ", (uintptr_t)signum);
        put_line("pc ", context ? faulting_pc(context) : 0);
        put("maps\n", 5);
        copy_maps();
        put("end maps\n", 9);
        if (context) put_frame_pointer_callers(context);
        count = backtrace(frames, 128);
        for (i = 0; i < count; i++) put_line("frame ", (uintptr_t)frames[i]);
        put("end\n", 4);
    }
    struct sigaction fallback;
    memset(&fallback, 0, sizeof fallback);
    fallback.sa_handler = SIG_DFL;
    sigaction(signum, &fallback, NULL);
    if (info == NULL || info->si_code <= 0) raise(signum);  /* sent (abort, kill): send it again */
    /* a fault: returning runs the faulting instruction again, now with the default action */
}

int ipolyglot_install_crash_handler(int fd) {
    void *warm_up[4];
    struct sigaction action;
    stack_t current, alternate;
    size_t i;
    report_fd = fd;
    if (pipe2(probe_pipe, O_CLOEXEC | O_NONBLOCK) != 0) probe_pipe[0] = probe_pipe[1] = -1;
    backtrace(warm_up, 4);  /* loads libgcc's unwinder now, not inside the handler */
    if (sigaltstack(NULL, &current) == 0 && (current.ss_flags & SS_DISABLE)) {
        alternate.ss_size = 64 * 1024;  /* a C stack overflow still gets its report */
        alternate.ss_sp = malloc(alternate.ss_size);
        alternate.ss_flags = 0;
        if (alternate.ss_sp) sigaltstack(&alternate, NULL);
    }
    memset(&action, 0, sizeof action);
    action.sa_sigaction = on_fatal_signal;
    action.sa_flags = SA_SIGINFO | SA_ONSTACK;
    sigemptyset(&action.sa_mask);
    for (i = 0; i < sizeof fatal_signals / sizeof fatal_signals[0]; i++) {
        if (sigaction(fatal_signals[i], &action, NULL) != 0) return -1;
    }
#if defined(__x86_64__)
    {
        struct sigaction installed;
        if (sigaction(SIGSEGV, NULL, &installed) == 0) signal_return = (uintptr_t)installed.sa_restorer;
    }
#endif
    return 0;
}
"""


# ---- in the worker ----------------------------------------------------------------------------


def install_crash_handler(fd: int) -> bool:
    """Install the fatal-signal handler that writes its report to `fd`; False when it cannot be built."""
    try:
        library = ctypes.CDLL(str(_handler_library()))
    except Exception:  # noqa: BLE001 - no compiler, or a cache we cannot use: faulthandler's report instead
        return False
    library.ipolyglot_install_crash_handler.argtypes = [ctypes.c_int]
    return library.ipolyglot_install_crash_handler(fd) == 0


def _handler_library() -> Path:
    """The handler compiled once into the build cache: later workers only load it, and start no
    compiler (not even to ask its version: a cache hit starts no compiler process)."""
    import platform

    from .core.cache import BuildCache
    from .core.toolchains import find_cxx

    def build(directory: Path) -> None:
        compiler = find_cxx()
        source = directory / "crash_handler.c"
        source.write_text(HANDLER_SOURCE)
        subprocess.run(
            [compiler.path, "-x", "c", "-shared", "-fPIC", "-O1", "-o", str(directory / HANDLER_LIBRARY), str(source)],
            check=True, capture_output=True, env={**os.environ, **compiler.env}, timeout=120,
        )

    path, _ = BuildCache().get_or_build(
        {"kind": "worker-crash-handler", "source": HANDLER_SOURCE, "machine": f"{platform.system()} {platform.machine()}"},
        build, lambda directory: directory / HANDLER_LIBRARY,
    )
    return path


# ---- in the kernel: the C and C++ report --------------------------------------------------------


@dataclass
class Mapping:
    start: int
    end: int
    offset: int
    path: str


@dataclass
class SignalReport:
    pc: int
    frames: list[int]  # libgcc's walk from the handler (through the signal frame when it can)
    mappings: list[Mapping]
    callers: list[int] = field(default_factory=list)  # the frame-pointer chain from the faulting context

    def mapping_of(self, address: int) -> Mapping | None:
        return next((m for m in self.mappings if m.start <= address < m.end), None)

    def load_base(self, path: str) -> int:
        """Where an object is loaded: its addresses in the file are relative to this."""
        return min(m.start - m.offset for m in self.mappings if m.path == path)


def parse_signal_report(text: str) -> SignalReport | None:
    """The handler's report, or None when the worker wrote none (it did not die of a signal it caught)."""
    pc, frames, callers, mappings, in_maps = 0, [], [], [], False
    for line in text.splitlines():
        if in_maps:
            if line == "end maps":
                in_maps = False
                continue
            fields = line.split(maxsplit=5)
            if len(fields) == 6 and fields[5].startswith("/"):
                start, end = (int(part, 16) for part in fields[0].split("-"))
                mappings.append(Mapping(start, end, int(fields[2], 16), fields[5]))
        elif line.startswith("pc "):
            pc = int(line[3:], 16)
        elif line.startswith("frame "):
            frames.append(int(line[6:], 16))
        elif line.startswith("caller "):
            callers.append(int(line[7:], 16))
        elif line.startswith("fault "):  # a signal raised again by another handler: the real fault is here
            pc, callers = int(line[6:], 16), []
        elif line == "maps":
            in_maps = True
    if not pc and not frames:
        return None
    return SignalReport(pc, frames, mappings, callers)


@dataclass
class NativeFrame:
    function: str  # "??" when unknown
    where: str  # "In [3]:9", "file.cpp:12", or "" when unknown
    path: str  # the loaded object
    offset: int  # the address inside the object


# Objects that are the worker's own machinery: the walk stops when it reaches them.
_PYTHON_OBJECTS = re.compile(r"(/python[0-9.]*$|/libpython[0-9.]*\.so|/_cffi_backend|/libffi\.so)")
_CELL_FILE = re.compile(r"^(In \[\d+\])$")
# ?? : no symbol to name it by; "typeinfo for …" and the like: data, the nearest symbol of glue
# code whose own symbols were not kept (no debug information)
_PLUMBING_FUNCTIONS = re.compile(
    r"(pybind11|^_cgo_|^crosscall|^runtime\.|^\?\?$|^(typeinfo|typeinfo name|vtable|VTT|guard variable) for )"
)
_LIBC = re.compile(r"/libc\.so[.0-9]*$")
# GNU addr2line 2.40 names the first file of a DWARF 5 line table where a `#line` directive
# named another (a -g cell's lines come out as user.cpp's); LLVM's reads it right.
_SYMBOLIZERS = ("llvm-addr2line", "addr2line")


def user_frames(report: SignalReport) -> list[NativeFrame]:
    """The frames from the faulting one up to where Python called native code, symbolized."""
    frames = _walk_from_the_fault(report)
    chosen: list[tuple[int, Mapping]] = []
    for position, address in enumerate(frames):
        mapping = report.mapping_of(address)
        if mapping is None:
            continue
        if _PYTHON_OBJECTS.search(mapping.path):
            break
        looked_up = address if position == 0 else address - 1  # a return address points after its call
        chosen.append((looked_up - report.load_base(mapping.path), mapping))
    symbols = _addr2line({(m.path, offset) for offset, m in chosen})
    named = [NativeFrame(*symbols.get((m.path, offset), ("??", "")), m.path, offset) for offset, m in chosen]
    kept = [frame for frame in named if not _PLUMBING_FUNCTIONS.search(frame.function)]
    while len(kept) > 1 and _LIBC.search(kept[0].path):  # how libc raised the signal (abort, raise)
        kept.pop(0)
    return kept[:MAX_FRAMES]


def _walk_from_the_fault(report: SignalReport) -> list[int]:
    """libgcc's walk when it went through the signal frame, else the pc and its frame-pointer callers."""
    if report.pc in report.frames:
        return report.frames[report.frames.index(report.pc):]
    callers = []
    for address in report.callers:  # a chain read from a register that held no frame pointer ends here
        mapping = report.mapping_of(address)
        if mapping is None:
            break
        callers.append(address)
    return [report.pc, *callers] if report.pc else callers


def _addr2line(wanted: set[tuple[str, int]]) -> dict[tuple[str, int], tuple[str, str]]:
    """(object, offset) -> (function, where), one addr2line run per object."""
    tool = next((found for found in map(shutil.which, _SYMBOLIZERS) if found), None)
    found: dict[tuple[str, int], tuple[str, str]] = {}
    if tool is None:
        return found
    by_object: dict[str, list[int]] = {}
    for path, offset in wanted:
        by_object.setdefault(path, []).append(offset)
    for path, offsets in by_object.items():
        offsets.sort()
        try:
            run = subprocess.run([tool, "-f", "-C", "-e", path, *(hex(o) for o in offsets)],
                                 capture_output=True, text=True, timeout=30)
        except (OSError, subprocess.TimeoutExpired):
            continue
        lines = run.stdout.splitlines()
        for index, offset in enumerate(offsets):
            if 2 * index + 1 < len(lines):
                found[(path, offset)] = (lines[2 * index].strip(), _where(lines[2 * index + 1].strip()))
    return found


def _where(location: str) -> str:
    """addr2line's `file:line` as a user reads it: a cell's label and line, else the file's name."""
    file, _, line = location.rpartition(":")
    line = line.split()[0] if line else ""
    if not file or file == "??" or line in ("", "0", "?"):
        return ""
    return f"{os.path.basename(file)}:{line}"


def format_native_frames(frames: list[NativeFrame], cpp_definers: dict[str, str] | None = None) -> str:
    """The frames as the notebook names them: a cell's label and line (-g), else the cell that
    defines the function (found by its name), else the object the code was loaded from."""
    if not frames:
        return ""
    lines = ["Native backtrace (most recent call first):"]
    unlined_cell = False
    for frame in frames:
        lines.append(frame.function)
        cell = None if frame.where else defining_cell(frame.function, cpp_definers or {})
        unlined_cell = unlined_cell or cell is not None
        lines.append(f"    {frame.where or cell or f'({os.path.basename(frame.path)})'}")
    if unlined_cell:
        lines.append("(build the cell with -g for line numbers: %%cpp -g)")
    elif not any(_CELL_FILE.match(frame.where.rpartition(":")[0]) for frame in frames):
        lines.append("(a %%cpp cell built with -g shows its lines here as In [n]:line)")
    return "\n".join(lines)


def defining_cell(function: str, cpp_definers: dict[str, str]) -> str | None:
    """The cell that defines a demangled function (`ns::Shape::area() const`), tried by its
    qualified name, its own name, then its outermost scope (a class or namespace the cell bound)."""
    name = re.sub(r"<[^<>]*>", "", function.split("(", 1)[0]).strip()
    parts = [part for part in name.split("::") if part]
    if not parts:
        return None
    for candidate in (".".join(parts), parts[-1], parts[0]):
        if candidate in cpp_definers:
            return cpp_definers[candidate]
    return None


# ---- in the kernel: Go's own traceback ------------------------------------------------------------

_GOROUTINE_HEADER = re.compile(r"^goroutine \d+ .*\[.*\]:$")
_GO_LOCATION = re.compile(r"^\t(?P<file>\S+?):(?P<line>\d+)(?: .*)?$")
_GO_CELL_FILE = re.compile(rf"cell-[0-9a-f]{{{CELL_ID_DIGITS}}}")
_GO_PLUMBING = re.compile(r"^(runtime\.|internal/|ipolyglot\.local/|main\._cgoexp|_cgoexp|main\.ipg|sync\.)")


def go_traceback(text: str, cell_labels: dict[str, str]) -> str | None:
    """Go's fatal report with its first goroutine's user frames in cell terms; None when Go printed none."""
    lines = text.splitlines()
    start = next((i for i, line in enumerate(lines) if _GOROUTINE_HEADER.match(line)), None)
    if start is None:
        return None
    header = [line for line in lines[:_first_stack_line(lines, start)] if line and not line.startswith("runtime: sp=")]
    frames = _go_frames(lines[start + 1:], cell_labels)
    shown = header + ([""] if header else []) + ["Go stack (most recent call first):"] + (frames or ["(no frame of the session's code)"])
    return "\n".join(shown)


def _first_stack_line(lines: list[str], goroutine: int) -> int:
    """Where Go's report stops being words and becomes stacks ("runtime stack:" comes first for a throw)."""
    runtime_stack = next((i for i, line in enumerate(lines[:goroutine]) if line == "runtime stack:"), goroutine)
    return min(runtime_stack, goroutine)


def _go_frames(lines: list[str], cell_labels: dict[str, str]) -> list[str]:
    """The frames of one goroutine (up to its blank line), plumbing dropped, repeats folded."""
    shown: list[tuple[str, str]] = []
    repeats: list[int] = []
    for index, line in enumerate(lines):
        if not line.strip():
            break
        location = _GO_LOCATION.match(line)
        if location is None or index == 0:
            continue
        function = lines[index - 1]
        if _GO_PLUMBING.match(function.removeprefix("created by ")):
            continue
        frame = (_user_function(function), _cell_location(location["file"], location["line"], cell_labels))
        if shown and shown[-1] == frame:
            repeats[-1] += 1
            continue
        shown.append(frame)
        repeats.append(1)
    out = []
    for (function, where), count in zip(shown, repeats):
        out.append(function)
        out.append(f"    {where}" + (f"  (× {count})" if count > 1 else ""))
    return out[: 2 * MAX_FRAMES]


def _user_function(function: str) -> str:
    """`main.Deep(0xf0f0c?)` as the cell names it: `Deep(...)`."""
    created = function.startswith("created by ")
    name = function.removeprefix("created by ")
    name = re.sub(r"\(.*\)$", "(...)", name).removeprefix("main.")
    name = re.sub(r" in goroutine \d+$", "", name)
    return f"created by {name}" if created else name


def _cell_location(file: str, line: str, cell_labels: dict[str, str]) -> str:
    found = _GO_CELL_FILE.search(file)
    if found and found.group(0) in cell_labels:
        return f"{cell_labels[found.group(0)]}:{line}"
    return f"{os.path.basename(file)}:{line}"


def crash_details(stderr_text: str, report_text: str, go_cell_labels: dict[str, str],
                  cpp_definers: dict[str, str] | None = None) -> str:
    """What the worker's death leaves to show after its cause: the native text and backtrace.

    `cpp_definers` maps the names the session's %%cpp cells bound to the cell that defines them."""
    go = go_traceback(stderr_text, go_cell_labels)
    if go is not None:
        return go
    own_text = _without_faulthandler(stderr_text).strip()
    report = parse_signal_report(report_text)
    native = format_native_frames(user_frames(report), cpp_definers) if report else ""
    return "\n\n".join(part for part in (own_text, native) if part)


def _without_faulthandler(text: str) -> str:
    """faulthandler's dump (the worker's Python frames, used where the native handler could not be built)."""
    start = text.find("Fatal Python error:")
    return text if start < 0 else text[:start]
