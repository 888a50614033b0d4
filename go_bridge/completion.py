"""Completion and hover inside %%go cells, answered by gopls.

gopls sees a virtual package in a private temp dir: one file per earlier cell
(its imports and live declarations) plus the cell being typed, all sent as
unsaved overlays. A cell of statements is wrapped in a function so that its
statements are type-checked in a body, as the build does. One gopls process
per kernel, started on first use.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import platformdirs

from ipolyglot.kernel.core import toolchains
from ipolyglot.kernel.core.backend import Backend
from ipolyglot.kernel.core.cache import BuildCache, default_cache_dir
from ipolyglot.kernel.core.cell_context import identifier_end, identifier_start
from ipolyglot.kernel.core.completion import Completion, Inspection
from ipolyglot.kernel.core.lsp import LanguageServer, LanguageServerError, utf16_column
from ipolyglot.kernel.core.source_scan import scan

from .inspector import GoImport

GOPLS_VERSION = "v0.23.0"  # the newest gopls that builds with Go 1.26
CURRENT_CELL = "cell_current.go"
PACKAGE_LINE = "package main\n"
_DECLARATION_KEYWORDS = ("func", "type", "var", "const", "import", "package")
_TOP_LEVEL_NAME = re.compile(r"^(?:func\s*(?:\([^)]*\)\s*)?|type\s+|var\s+|const\s+)([A-Za-z_]\w*)", re.M)
_KINDS = {  # LSP CompletionItemKind -> the type names Jupyter front ends know
    2: "function", 3: "function", 4: "function", 5: "instance", 6: "instance", 7: "class", 8: "class",
    9: "module", 10: "property", 13: "class", 14: "keyword", 21: "instance", 22: "class", 25: "class",
}


def find_gopls() -> str | None:
    """$IPOLYGLOT_GOPLS, gopls on PATH, or the one the set-up installed into ipolyglot's cache."""
    explicit = os.environ.get("IPOLYGLOT_GOPLS")
    if explicit:
        return explicit if os.access(explicit, os.X_OK) else None
    on_path = shutil.which("gopls")
    if on_path:
        return on_path
    for root in (default_cache_dir(), Path(platformdirs.user_cache_dir("ipolyglot"))):
        candidate = root / "bin" / "gopls"
        if os.access(candidate, os.X_OK):
            return str(candidate)
    return None


def install_gopls() -> Path:
    """`go install` the pinned gopls into ipolyglot's cache (what the set-up runs).

    Needs the Go module proxy; completion in %%go cells stays empty without it.
    """
    go = toolchains.find_go()
    bin_dir = BuildCache().ensure_root() / "bin"
    bin_dir.mkdir(mode=0o700, exist_ok=True)
    env = {**os.environ, **go.env, "GOBIN": str(bin_dir), "GOTOOLCHAIN": "local"}
    subprocess.run([go.path, "install", f"golang.org/x/tools/gopls@{GOPLS_VERSION}"], env=env, check=True, timeout=1800)
    return bin_dir / "gopls"


@dataclass(frozen=True)
class SessionCell:
    """An earlier cell's imports and the declarations of it that are still live."""

    cell_id: str
    imports: tuple[str, ...]  # import lines
    declarations: tuple[tuple[frozenset, str], ...]  # (names it declares, source)


@dataclass(frozen=True)
class VirtualCell:
    """The typed cell as a Go file, and where a body offset lands in it."""

    text: str
    body: str
    import_end: int  # body offset where the imports end
    wrapped: bool  # statements, wrapped in a function

    def position(self, body_offset: int) -> dict:
        """An LSP position (0-based line, UTF-16 column) for an offset into the cell body."""
        line = self.body.count("\n", 0, body_offset)
        column = body_offset - (self.body.rfind("\n", 0, body_offset) + 1)
        text_line = self.body.splitlines()[line] if line < len(self.body.splitlines()) else ""
        shift = 1 + (1 if self.wrapped and body_offset >= self.import_end else 0)
        return {"line": line + shift, "character": utf16_column(text_line, column)}


def session_cells(backend: Backend) -> list[SessionCell]:
    """The session's live Go declarations, grouped by the cell they came from."""
    by_cell: dict[str, list] = {}
    imports: dict[str, tuple[str, ...]] = {}
    for decl in backend.declarations:
        cell_id = decl.cell_id or decl.cell
        names = frozenset([decl.name, *decl.detail.names])
        by_cell.setdefault(cell_id, []).append((names, decl.source))
        imports.setdefault(cell_id, tuple(_import_line(imp) for imp in decl.detail.imports))
    return [SessionCell(cell_id, imports[cell_id], tuple(decls)) for cell_id, decls in by_cell.items()]


def _import_line(imp: GoImport) -> str:
    name = f"{imp.name} " if imp.name else ""
    return f'import {name}"{imp.path}"'


def virtual_cell(body: str) -> VirtualCell:
    """The cell as a file of package main: imports first, then declarations, or
    statements inside `func _() { ... }` (line for line, so positions map simply)."""
    import_end = _imports_end(body)
    rest = body[import_end:]
    wrapped = not _holds_declarations(rest)
    if not wrapped:
        return VirtualCell(PACKAGE_LINE + body, body, import_end, False)
    text = PACKAGE_LINE + body[:import_end] + "func _() {\n" + rest + "\n}\n"  # imports end at a line end
    return VirtualCell(text, body, import_end, True)


def _imports_end(body: str) -> int:
    """Offset just after the leading import declarations (and blank or comment lines)."""
    offset = end = 0
    in_group = False
    for line in body.splitlines(keepends=True):
        stripped = line.strip()
        offset += len(line)
        if in_group:
            if stripped.startswith(")"):
                in_group = False
                end = offset
            continue
        if stripped.startswith("import"):
            in_group = stripped.rstrip().endswith("(")
            end = offset
        elif stripped and not stripped.startswith("//"):
            break
    if end and not body[:end].endswith("\n"):
        return 0  # the cell is only an import line being typed: keep it as a file-level line
    return end


def _holds_declarations(text: str) -> bool:
    """Whether every top-level line starts a declaration (func, type, var, const)."""
    offset = 0
    for line in text.splitlines(keepends=True):
        at_top = scan(text, offset).depth == 0
        stripped = line.strip()
        offset += len(line)
        if not at_top or not stripped or stripped.startswith(("//", "/*", "*", ")", "}")):
            continue
        if stripped.split(None, 1)[0].split("(")[0] not in _DECLARATION_KEYWORDS:
            return False
    return True


def session_files(cells: list[SessionCell], body: str) -> dict[str, str]:
    """One file per earlier cell, leaving out what the typed cell redeclares."""
    redeclared = set(_TOP_LEVEL_NAME.findall(body))
    files = {}
    for cell in cells:
        sources = [source for names, source in cell.declarations if not names & redeclared]
        files[f"cell_{_file_safe(cell.cell_id)}.go"] = PACKAGE_LINE + "".join(f"{line}\n" for line in cell.imports) + "\n" + "\n\n".join(sources) + "\n"
    return files


def _file_safe(name: str) -> str:
    return re.sub(r"\W", "_", name)


@dataclass
class GoCompleter:
    """The kernel's one gopls, and the overlays it has been sent."""

    backend: Backend
    workspace: Path | None = None
    server: LanguageServer | None = None
    versions: dict[str, int] = field(default_factory=dict)
    sent: dict[str, str] = field(default_factory=dict)

    snapshot_of = staticmethod(session_cells)

    def snapshot(self) -> list[SessionCell]:
        """Read on the kernel's thread: the session as it is now."""
        return session_cells(self.backend)

    def complete(self, session: list[SessionCell], body: str, cursor: int, timeout: float) -> Completion:
        start = identifier_start(body, cursor)
        cell = virtual_cell(body)
        uri = self._sync(session, cell)
        if uri is None:
            return Completion.empty(cursor)
        result = self.server.request(
            "textDocument/completion", {"textDocument": {"uri": uri}, "position": cell.position(cursor)}, timeout
        )
        items = (result or {}).get("items", []) if isinstance(result, dict) else (result or [])
        items = sorted(items, key=lambda item: item.get("sortText") or item.get("label", ""))
        matches, types = [], []
        for item in items:
            text = (item.get("textEdit") or {}).get("newText") or item.get("insertText") or item["label"]
            if not text or text in matches:
                continue
            matches.append(text)
            types.append({"start": start, "end": cursor, "text": text, "type": _KINDS.get(item.get("kind"), "instance"), "signature": item.get("detail", "")})
        return Completion(matches, start, cursor, types)

    def inspect(self, session: list[SessionCell], body: str, cursor: int, timeout: float) -> Inspection:
        end = identifier_end(body, cursor)
        position = max(identifier_start(body, end), end - 1)
        cell = virtual_cell(body)
        uri = self._sync(session, cell)
        if uri is None or end == identifier_start(body, end):
            return Inspection.nothing()
        result = self.server.request(
            "textDocument/hover", {"textDocument": {"uri": uri}, "position": cell.position(position)}, timeout
        )
        contents = (result or {}).get("contents")
        if isinstance(contents, dict):
            text = contents.get("value", "")
        elif isinstance(contents, list):
            text = "\n".join(c.get("value", "") if isinstance(c, dict) else str(c) for c in contents)
        else:
            text = contents or ""
        return Inspection.of(text.strip())

    def close(self) -> None:
        if self.server is not None:
            self.server.stop()
            self.server = None
        if self.workspace is not None:
            shutil.rmtree(self.workspace, ignore_errors=True)
            self.workspace = None

    # -- gopls --------------------------------------------------------------------
    def _sync(self, session: list[SessionCell], cell: VirtualCell) -> str | None:
        """Start gopls if needed and send it the files that changed; the typed cell's URI."""
        if self.server is None or not self.server.alive:
            if not self._start():
                return None
        files = session_files(session, cell.body)
        files[CURRENT_CELL] = cell.text
        for name in self.sent:
            files.setdefault(name, PACKAGE_LINE)  # a cell whose declarations are all gone
        for name, text in files.items():
            if self.sent.get(name) == text:
                continue
            uri = (self.workspace / name).as_uri()
            version = self.versions.get(name, 0) + 1
            self.versions[name] = version
            if name in self.sent:
                self.server.notify("textDocument/didChange", {
                    "textDocument": {"uri": uri, "version": version}, "contentChanges": [{"text": text}],
                })
            else:
                self.server.notify("textDocument/didOpen", {
                    "textDocument": {"uri": uri, "languageId": "go", "version": version, "text": text},
                })
            self.sent[name] = text
        return (self.workspace / CURRENT_CELL).as_uri()

    def _start(self) -> bool:
        gopls = find_gopls()
        if gopls is None:
            return False
        try:
            go = toolchains.find_go()
        except toolchains.ToolchainError:
            return False
        major, minor = toolchains.parse_go_version(go.version)
        if self.workspace is None:
            self.workspace = Path(tempfile.mkdtemp(prefix="ipolyglot-gopls-"))
        (self.workspace / "go.mod").write_text(f"module ipolyglot.local/cells\n\ngo {major}.{minor}\n")
        env = {**os.environ, **go.env, "GOTOOLCHAIN": "local", "GOFLAGS": "-mod=mod"}
        env["PATH"] = os.pathsep.join([os.path.dirname(go.path), env.get("PATH", "")])
        self.server = LanguageServer.start([gopls], self.workspace, env)
        self.sent.clear()
        self.versions.clear()
        root = self.workspace.as_uri()
        try:
            self.server.request("initialize", {
                "processId": os.getpid(),
                "rootUri": root,
                "workspaceFolders": [{"uri": root, "name": "cells"}],
                "capabilities": {
                    "textDocument": {
                        "completion": {"completionItem": {"snippetSupport": False, "documentationFormat": ["plaintext"]}},
                        "hover": {"contentFormat": ["plaintext"]},
                    },
                    "workspace": {"configuration": False},
                },
                "initializationOptions": {"completeUnimported": True, "usePlaceholders": False, "hoverKind": "FullDocumentation"},
            }, timeout=60)
            self.server.notify("initialized", {})
        except (TimeoutError, LanguageServerError):
            self.server.stop()
            self.server = None
            return False
        return True


if __name__ == "__main__":
    try:
        print(f"gopls installed at {install_gopls()}")
    except (toolchains.ToolchainError, subprocess.SubprocessError, OSError) as exc:
        sys.exit(f"could not install gopls {GOPLS_VERSION} ({exc}): %%go cells will not complete")
