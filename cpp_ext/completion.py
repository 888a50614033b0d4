"""Completion and inspection inside %%cpp cells, answered by libclang.

libclang parses one in-memory file: the #include lines of the session and of
the typed cell first (so libclang precompiles them once as the preamble and
reuses them while they stay the same), then the session's declarations
(bodies left out, as the build's headers do), then the cell. A top-level
statement being typed is read inside a function body, where every name of
the session can appear.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

import clang.cindex as ci

from ipolyglot.kernel.core import toolchains
from ipolyglot.kernel.core.backend import Backend
from ipolyglot.kernel.core.cell_context import identifier_end, identifier_start
from ipolyglot.kernel.core.completion import Completion, Inspection
from ipolyglot.kernel.core.source_scan import scan

from . import parser

MAIN_PATH = "/ipolyglot/completion.cpp"
SCOPE_OPENING = "void ipolyglot_completion_scope() { "
MAX_MATCHES = 200
_INSPECT_OPTIONS = ci.TranslationUnit.PARSE_PRECOMPILED_PREAMBLE | ci.TranslationUnit.PARSE_INCOMPLETE
# Bodies other than the one being typed in are not needed to complete (libclang keeps that one).
_COMPLETE_OPTIONS = _INSPECT_OPTIONS | ci.TranslationUnit.PARSE_CACHE_COMPLETION_RESULTS | ci.TranslationUnit.PARSE_SKIP_FUNCTION_BODIES
_KINDS = {
    ci.CursorKind.FUNCTION_DECL: "function", ci.CursorKind.CXX_METHOD: "function", ci.CursorKind.FUNCTION_TEMPLATE: "function",
    ci.CursorKind.CLASS_DECL: "class", ci.CursorKind.STRUCT_DECL: "class", ci.CursorKind.CLASS_TEMPLATE: "class",
    ci.CursorKind.TYPEDEF_DECL: "class", ci.CursorKind.TYPE_ALIAS_DECL: "class", ci.CursorKind.ENUM_DECL: "class",
    ci.CursorKind.NAMESPACE: "module", ci.CursorKind.VAR_DECL: "instance", ci.CursorKind.FIELD_DECL: "property",
    ci.CursorKind.PARM_DECL: "instance", ci.CursorKind.NOT_IMPLEMENTED: "keyword",
}


@dataclass(frozen=True)
class CppSession:
    """The session as libclang should see it before a cell."""

    includes: tuple[str, ...]  # preprocessor lines of earlier cells
    declarations: str  # earlier cells' declarations, bodies left out
    std: str
    include_dirs: tuple[str, ...]
    defines: tuple[str, ...]


def session_of(backend: Backend) -> CppSession:
    """Read the live declarations: their pieces' header text, types before functions."""
    from .session import detail

    current = backend.session
    includes = tuple(p.user_text.strip() for p in current.preamble.values() if p.user_text.strip())
    pieces = [piece for decl in current.declarations for piece in detail(decl).pieces]
    pieces.sort(key=lambda piece: piece.section == "func")
    text = "".join(_in_namespace(piece.ns, piece.header_text or piece.user_text) for piece in pieces)
    flags = current.flags
    return CppSession(includes=includes, declarations=text, std=flags.std, include_dirs=tuple(flags.include_dirs), defines=tuple(flags.defines()))


def _in_namespace(namespaces: list[str], text: str) -> str:
    if not text.strip():
        return ""
    return "".join(f"namespace {n} {{ " for n in namespaces) + text.strip() + " }" * len(namespaces) + "\n"


@dataclass(frozen=True)
class VirtualFile:
    """The text libclang reads, and where the cell's offsets land in it."""

    text: str
    preamble: str  # the leading #include lines
    cell_start: int  # offset of the cell body in text
    scope_at: int  # body offset where SCOPE_OPENING was put (-1: none)

    def location(self, body_offset: int) -> tuple[int, int]:
        """1-based line and byte column, as libclang counts them."""
        offset = self.cell_start + body_offset + (len(SCOPE_OPENING) if 0 <= self.scope_at <= body_offset else 0)
        before = self.text[:offset]
        line_start = before.rfind("\n") + 1
        return before.count("\n") + 1, len(before[line_start:].encode()) + 1


def virtual_file(session: CppSession, body: str, cursor: int, scoped: bool = True, whole: bool = False) -> VirtualFile:
    """The session and the cell up to the end of the identifier under the cursor, or
    the whole cell (with `scoped`, a top-level statement there read inside a function body)."""
    cell_lines = body.splitlines(keepends=True)
    cell_includes = [line.strip() for line in cell_lines if line.lstrip().startswith("#include")]
    blanked = "".join(_blank(line) if line.lstrip().startswith("#include") else line for line in cell_lines)
    preamble = "".join(f"{line}\n" for line in dict.fromkeys([*session.includes, *cell_includes]))
    end = identifier_end(body, cursor)
    where = scan(blanked, cursor)
    scope_at = -1
    cell_text = blanked if whole else blanked[:end]
    statement = blanked[where.statement_start:cursor].strip()
    if scoped and where.depth == 0 and statement and not statement.startswith("#"):
        scope_at = where.statement_start
        cell_text = blanked[:scope_at] + SCOPE_OPENING + cell_text[scope_at:]
    head = preamble + session.declarations + "\n"
    return VirtualFile(head + cell_text + "\n", preamble, len(head), scope_at)


def _blank(line: str) -> str:
    """A line of spaces as long as the given one: offsets into the cell stay true."""
    text = line.rstrip("\n")
    return " " * len(text) + line[len(text):]


@dataclass
class CppCompleter:
    """One libclang index and the last translation units (to complete, to inspect), kept while their preamble holds."""

    backend: Backend
    index: ci.Index = field(default_factory=ci.Index.create)
    units: dict[int, tuple[tuple, ci.TranslationUnit]] = field(default_factory=dict)  # parse options -> (key, unit)

    snapshot_of = staticmethod(session_of)

    def snapshot(self) -> CppSession:
        return session_of(self.backend)

    def complete(self, session: CppSession, body: str, cursor: int, timeout: float) -> Completion:
        start = identifier_start(body, cursor)
        prefix = body[start:cursor]
        file = virtual_file(session, body[:cursor], cursor)
        unit = self._unit(session, file, _COMPLETE_OPTIONS)
        line, column = file.location(start)
        results = unit.codeComplete(MAIN_PATH, line, column, unsaved_files=[(MAIN_PATH, file.text)], include_brief_comments=False)
        if results is None:
            return Completion.empty(cursor)
        found: dict[str, tuple[int, dict]] = {}
        for result in results.results:
            completion = result.string
            typed = next((chunk.spelling for chunk in completion if chunk.isKindTypedText()), "")
            if not typed.startswith(prefix) or (typed.startswith("_") and not prefix.startswith("_")):
                continue
            if str(completion.availability) == "NotAccessible":
                continue
            signature = "".join(chunk.spelling for chunk in completion if not chunk.isKindInformative())
            entry = {"start": start, "end": cursor, "text": typed, "type": _KINDS.get(result.kind, "instance"), "signature": signature}
            if typed not in found or completion.priority < found[typed][0]:
                found[typed] = (completion.priority, entry)
        ranked = sorted(found.values(), key=lambda item: (item[0], item[1]["text"]))[:MAX_MATCHES]
        return Completion([entry["text"] for _, entry in ranked], start, cursor, [entry for _, entry in ranked])

    def inspect(self, session: CppSession, body: str, cursor: int, timeout: float) -> Inspection:
        end = identifier_end(body, cursor)
        start = identifier_start(body, end)
        if start == end:
            return Inspection.nothing()
        for scoped in (False, True):  # a declaration as written, else a statement in a body
            file = virtual_file(session, body, end, scoped, whole=True)
            unit = self._unit(session, file, _INSPECT_OPTIONS, fresh_text=True)
            line, column = file.location(start)
            target = ci.Cursor.from_location(unit, unit.get_location(MAIN_PATH, (line, column)))
            declaration = target.referenced if target is not None else None
            if declaration is not None and not declaration.kind.is_invalid() and declaration.spelling:
                return Inspection.of(describe(declaration))
        return Inspection.nothing()

    def close(self) -> None:
        self.units.clear()

    def _unit(self, session: CppSession, file: VirtualFile, options: int, fresh_text: bool = False) -> ci.TranslationUnit:
        """A translation unit, parsed anew only when the #include lines or flags change;
        with fresh_text, reparsed with the file's text (code completion reparses by itself)."""
        args = self._args(session)
        key = (file.preamble, tuple(args))
        cached = self.units.get(options)
        if cached is not None and cached[0] == key:
            if fresh_text:
                cached[1].reparse(unsaved_files=[(MAIN_PATH, file.text)])
            return cached[1]
        unit = self.index.parse(MAIN_PATH, args=args, unsaved_files=[(MAIN_PATH, file.text)], options=options)
        self.units[options] = (key, unit)
        return unit

    @staticmethod
    def _args(session: CppSession) -> list[str]:
        try:
            builtin = parser.gcc_builtin_include(toolchains.find_cxx().path)
        except toolchains.ToolchainError:
            builtin = None
        return parser.parse_args(session.std, [os.path.abspath(d) for d in session.include_dirs], list(session.defines), builtin)


def describe(declaration: ci.Cursor) -> str:
    """A declaration's signature and its doc comment, in C++ terms."""
    name = qualified_name(declaration)
    kind = declaration.kind
    if kind in (ci.CursorKind.FUNCTION_DECL, ci.CursorKind.CXX_METHOD, ci.CursorKind.FUNCTION_TEMPLATE, ci.CursorKind.CONSTRUCTOR):
        params = ", ".join(f"{arg.type.spelling} {arg.spelling}".strip() for arg in declaration.get_arguments())
        result = declaration.result_type.spelling
        signature = f"{result} {name}({params})" if result else f"{name}({params})"
        if declaration.is_const_method():
            signature += " const"
    elif kind in (ci.CursorKind.CLASS_DECL, ci.CursorKind.STRUCT_DECL, ci.CursorKind.CLASS_TEMPLATE):
        signature = f"{'struct' if kind == ci.CursorKind.STRUCT_DECL else 'class'} {name}"
    elif declaration.type is not None and declaration.type.spelling:
        signature = f"{declaration.type.spelling} {name}"
    else:
        signature = name
    comment = declaration.raw_comment or ""
    return signature + (f"\n{_uncomment(comment)}" if comment else "")


def qualified_name(cursor: ci.Cursor) -> str:
    parts = [cursor.spelling]
    parent = cursor.semantic_parent
    while parent is not None and parent.kind != ci.CursorKind.TRANSLATION_UNIT:
        if parent.spelling and not (parent.kind == ci.CursorKind.NAMESPACE and parent.spelling.startswith("__")):
            parts.append(parent.spelling)  # inline namespaces such as std::__cxx11 left out
        parent = parent.semantic_parent
    return "::".join(reversed(parts))


def _uncomment(comment: str) -> str:
    lines = []
    for line in comment.splitlines():
        line = line.strip()
        for mark in ("///", "//!", "//", "/**", "/*!", "/*", "*/", "*"):
            if line.startswith(mark):
                line = line[len(mark):]
                break
        line = line.removesuffix("*/").strip()
        if line:
            lines.append(line)
    return "\n".join(lines)
