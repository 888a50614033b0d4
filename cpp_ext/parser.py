"""Finding what a %%cpp cell declares, with libclang (a real C++ parser).

A cell is parsed after the session's earlier declarations (so it may use their
types), split into top-level pieces, and each piece becomes a record: its
Python name, its text for the user unit, its text for the binding unit (the
same text with the bodies of bound functions removed, so a body edit leaves the
binding unit unchanged), and what the bindings need to know about it.
A cell whose body does not parse as declarations but parses as the body of a
function is a statement cell.
"""

from __future__ import annotations

import ctypes
import functools
import re
import subprocess
import clang.cindex as ci

from .records import ClassBinding, EnumBinding, Field, Function, Param, ParsedCell, ParseError, Piece, Statement, fnptr_type

CK = ci.CursorKind
CELL_PATH = "/ipolyglot/cell.cpp"
MAIN_PATH = "/ipolyglot/main.cpp"
STATEMENT_FN = "ipolyglot_statement"

_TYPE_KINDS = {CK.STRUCT_DECL, CK.CLASS_DECL, CK.UNION_DECL, CK.ENUM_DECL}
_TEMPLATE_KINDS = {CK.FUNCTION_TEMPLATE, CK.CLASS_TEMPLATE, CK.CLASS_TEMPLATE_PARTIAL_SPECIALIZATION, CK.TYPE_ALIAS_TEMPLATE_DECL}
_MEMBER_DEF_KINDS = {CK.CXX_METHOD, CK.CONSTRUCTOR, CK.DESTRUCTOR, CK.CONVERSION_FUNCTION}


class ParseFailure(Exception):
    """libclang refused the command line itself (not the cell's code)."""


@functools.lru_cache(maxsize=None)
def gcc_builtin_include(compiler: str) -> str | None:
    """libclang from PyPI ships without its builtin headers; g++'s serve (stddef.h...)."""
    try:
        out = subprocess.run([compiler, "-print-file-name=include"], capture_output=True, text=True, timeout=60)
    except OSError:
        return None
    path = out.stdout.strip()
    return path if path and path != "include" else None


def parse_args(std: str, include_dirs: list[str], defines: list[str], builtin_include: str | None) -> list[str]:
    # -fparse-all-comments: a plain `// ...` above a function is its docstring too.
    args = ["-x", "c++", f"-std={std}", "-Wno-everything", "-fparse-all-comments"]
    if builtin_include:
        args += ["-isystem", builtin_include]
    for d in include_dirs:
        args += ["-I", d]
    for d in defines:
        args += [f"-D{d}"]
    return args


def _parse(main_text: str, files: dict[str, str], args: list[str], skip_bodies: bool) -> ci.TranslationUnit:
    options = ci.TranslationUnit.PARSE_SKIP_FUNCTION_BODIES if skip_bodies else 0
    unsaved = [(MAIN_PATH, main_text)] + list(files.items())
    try:
        return ci.Index.create().parse(MAIN_PATH, args=args, unsaved_files=unsaved, options=options)
    except ci.TranslationUnitLoadError:
        raise ParseFailure(f"libclang cannot read C++ with these options ({' '.join(args)})") from None


def _cell_errors(tu: ci.TranslationUnit, path: str) -> list[ParseError]:
    """libclang's errors in the cell (those in the session's code follow from them or are not the cell's)."""
    found = []
    for diag in tu.diagnostics:
        loc = diag.location
        if diag.severity >= ci.Diagnostic.Error and loc.file is not None and loc.file.name == path:
            found.append(ParseError(diag.spelling, loc.line, loc.column))
    return found


class _Text:
    """The cell as bytes, since libclang reports byte offsets."""

    def __init__(self, text: str):
        self.data = text.encode()

    def cut(self, start: int, end: int) -> str:
        return self.data[start:end].decode(errors="replace")


def split_cell(body: str, context_header: str, args: list[str]) -> ParsedCell:
    """Parse a cell as declarations after `context_header` (the session's declarations)."""
    tu = _parse(context_header + f'\n#include "{CELL_PATH}"\n', {CELL_PATH: body}, args, skip_bodies=False)
    errors = _cell_errors(tu, CELL_PATH)
    parsed = ParsedCell(mode="decls", errors=errors)
    text = _Text(body)
    covered: list[tuple[int, int]] = []
    for group in _statements(tu.cursor, text):
        _collect_statement(group, [], text, parsed, covered)
    _collect_preamble(text, covered, parsed)
    return parsed


def _statements(parent: ci.Cursor, text: _Text) -> list[list[ci.Cursor]]:
    """The cell's children of `parent`, grouped by the statement that declares them:
    `int a = 1, b = 2;` is one statement holding two declarations whose extents overlap."""
    groups: list[list[ci.Cursor]] = []
    group_end = -1
    for cursor in parent.get_children():
        if not _in_cell(cursor):
            continue
        start, end = _extent(cursor, text)
        if groups and start < group_end:
            groups[-1].append(cursor)
            group_end = max(group_end, end)
        else:
            groups.append([cursor])
            group_end = end
    return groups


def _collect_statement(group: list[ci.Cursor], ns: list[str], text: _Text, parsed: ParsedCell, covered: list) -> None:
    kinds = {c.kind for c in group}
    types = [c for c in group if c.kind in _TYPE_KINDS]
    variables = [c for c in group if c.kind == CK.VAR_DECL]
    if len(group) > 1 and len(kinds) == 1 and kinds <= {CK.VAR_DECL, CK.TYPEDEF_DECL}:
        _collect_declarators(group, ns, text, parsed, covered)
    elif len(types) == 1 and variables and len(group) == 1 + len(variables) and _nameable(types[0]):
        # `struct P {...} p1, p2;`: the type, then each variable as if declared `struct P p1;`
        # (a type is whole in every unit; its variables must be defined in one).
        kind_word = next(iter(types[0].get_tokens())).spelling
        _collect(types[0], ns, text, parsed, covered)
        piece = parsed.pieces[-1]
        piece.user_text += ";"
        piece.header_text += ";" if piece.header_text.strip() else ""
        _collect_declarators(variables, ns, text, parsed, covered, prefix=f"{kind_word} {types[0].spelling}", begin=types[0].extent.end.offset)
    else:
        # Other statements declaring several things (`typedef struct {...} T;`) stay one piece.
        start = min(c.extent.start.offset for c in group)
        _collect(group[0], ns, text, parsed, covered, group_end=max(_extent(c, text)[1] for c in group), group_start=start)


_SPECIALIZABLE = {CK.FUNCTION_DECL, CK.STRUCT_DECL, CK.CLASS_DECL, CK.UNION_DECL, CK.CLASS_TEMPLATE, CK.CLASS_TEMPLATE_PARTIAL_SPECIALIZATION}


def _closing(tokens: list[str], i: int, opening: str, closing: str) -> int:
    """Index of the token closing the bracket opened at tokens[i] (`>>` closes two)."""
    depth = 0
    for j in range(i, len(tokens)):
        if tokens[j] == opening:
            depth += 1
        elif tokens[j] == closing or (closing == ">" and tokens[j] == ">>"):
            depth -= 2 if tokens[j] == ">>" else 1
            if depth <= 0:
                return j
    return len(tokens) - 1


def _specialization_name(cursor: ci.Cursor) -> str | None:
    """`f<int>(int)` for `template <> int f<int>(int) {...}`, `S<T *>` for a partial
    specialization: read from the tokens, so a cell read without its template (which
    libclang then cannot know) names it as the reading with it does."""
    if cursor.kind not in _SPECIALIZABLE:
        return None
    tokens = [t.spelling for t in cursor.get_tokens()]
    if len(tokens) >= 3 and tokens[0] == "template" and tokens[1] == "<":
        explicit = tokens[2] == ">"
        rest = tokens[_closing(tokens, 1, "<", ">") + 1:]
    elif cursor.kind in (CK.STRUCT_DECL, CK.CLASS_DECL, CK.UNION_DECL) and len(tokens) > 2 and tokens[2] == "<":
        explicit, rest = True, tokens  # `struct S<int> {...}` read without its template: its header is not in its extent
    else:
        return None
    if cursor.spelling not in rest:
        return None
    at = rest.index(cursor.spelling)
    after = rest[at + 1:]
    name = [cursor.spelling]
    if after and after[0] == "<":
        close = _closing(after, 0, "<", ">")
        name += after[: close + 1]
        after = after[close + 1:]
    elif cursor.kind != CK.FUNCTION_DECL or not explicit:
        return None  # a template itself, not a specialization
    if cursor.kind == CK.FUNCTION_DECL:
        if not explicit or not after or after[0] != "(":
            return None
        name += after[: _closing(after, 0, "(", ")") + 1]
    return re.sub(r"\s*([<>(),*&\[\]])\s*", r"\1", " ".join(name)).replace(",", ", ")


def _nameable(cursor: ci.Cursor) -> bool:
    return bool(cursor.spelling) and not _UNBINDABLE_TYPE.search(cursor.spelling) and not cursor.is_anonymous()


_DECLARATOR_START = {"*", "&", "&&", "("}
_DECLARATOR_PART = _DECLARATOR_START | {"const", "volatile", "__restrict", "__restrict__"}


def _collect_declarators(group: list[ci.Cursor], ns: list[str], text: _Text, parsed: ParsedCell, covered: list, prefix: str | None = None, begin: int | None = None) -> None:
    """One piece per declarator of `int a = 1, *b = &a;`, each carrying the shared
    specifiers, so each name can be replaced, removed or declared `extern` alone.
    `prefix` and `begin` replace the specifiers the statement spells, and where its
    declarators begin (after the `}` of a type defined with them)."""
    group = sorted(group, key=lambda c: c.location.offset)
    start = min(_extent(c, text)[0] for c in group) if begin is None else begin
    end = max(_extent(c, text)[1] for c in group)
    covered.append((start, end))
    widest = max(group, key=lambda c: c.extent.end.offset)
    tokens = list(widest.get_tokens())
    names = [c.location.offset for c in group]
    # The specifiers end where the first declarator's pointer/reference operators begin.
    before = [t for t in tokens if t.extent.start.offset < names[0]]
    first = names[0]
    for k, tok in enumerate(before):
        run = [t.spelling for t in before[k:]]
        if run[0] in _DECLARATOR_START and all(r in _DECLARATOR_PART for r in run):
            first = tok.extent.start.offset
            break
    commas = _separating_commas(tokens, names)
    bounds = [first, *(c + 1 for c in commas)]
    ends = [*commas, _statement_end(text, start, end)]
    prefix = text.cut(start, first).strip() if prefix is None else prefix
    prefix_line, prefix_column = _line_col(text, start)
    for cursor, a, b in zip(group, bounds, ends):
        raw = text.cut(a, b)
        lead = len(raw) - len(raw.lstrip())
        a += len(raw[:lead].encode())
        declarator = raw.strip()
        b = a + len(declarator.encode())
        if cursor.kind == CK.VAR_DECL:
            piece = _var_piece(cursor, ns, text, a, b, declarator=declarator, prefix=prefix, parsed=parsed)
        else:
            piece = _piece(text, a, b, _pyname(ns, cursor.spelling), "typedef", "type", ns)
            piece.user_text = declarator + ";"
            piece.header_text = f"{prefix} {declarator};"
        piece.prefix, piece.prefix_line, piece.prefix_column = prefix, prefix_line, prefix_column
        parsed.pieces.append(piece)


def _separating_commas(tokens: list[ci.Token], names: list[int]) -> list[int]:
    """Offsets of the commas between consecutive declarators (outside brackets)."""
    commas = []
    depth = 0
    last_comma = None
    wanted = iter(names[1:])
    target = next(wanted, None)
    for tok in tokens:
        offset = tok.extent.start.offset
        while target is not None and offset >= target:
            commas.append(last_comma)
            target = next(wanted, None)
        s = tok.spelling
        if s in ("(", "[", "{"):
            depth += 1
        elif s in (")", "]", "}"):
            depth -= 1
        elif s == "," and depth == 0:
            last_comma = offset
    return commas


def _statement_end(text: _Text, start: int, end: int) -> int:
    """Where the last declarator ends: before the statement's `;`."""
    body = text.data[start:end].rstrip()
    return start + (len(body) - 1 if body.endswith(b";") else len(body))


def _in_cell(cursor: ci.Cursor) -> bool:
    f = cursor.location.file
    return f is not None and f.name == CELL_PATH


def _extent(cursor: ci.Cursor, text: _Text) -> tuple[int, int]:
    start, end = cursor.extent.start.offset, cursor.extent.end.offset
    if cursor.kind == CK.VAR_DECL:
        end = _past_unclosed_parens(cursor, text, end)
    rest = text.data[end:]
    stripped = rest.lstrip(b" \t")
    if stripped.startswith(b";"):
        end += len(rest) - len(stripped) + 1
    return start, end


def _past_unclosed_parens(cursor: ci.Cursor, text: _Text, end: int) -> int:
    """libclang ends a variable initialised with parentheses (`int n(2);`) before
    its closing `)`: the extent is taken on over the parentheses it leaves open."""
    spellings = [t.spelling for t in cursor.get_tokens()]
    unclosed = spellings.count("(") - spellings.count(")")
    while unclosed > 0:
        rest = text.data[end:]
        stripped = rest.lstrip()
        if not stripped.startswith(b")"):
            break
        end += len(rest) - len(stripped) + 1
        unclosed -= 1
    return end


def _line_col(text: _Text, offset: int) -> tuple[int, int]:
    before = text.data[:offset]
    line = before.count(b"\n") + 1
    col = offset - (before.rfind(b"\n") + 1) + 1
    return line + 1, col  # the %%cpp line is line 1


def _qual(ns: list[str], name: str) -> str:
    return "::" + "::".join([*ns, name]) if ns else "::" + name


def _pyname(ns: list[str], name: str) -> str:
    return ".".join([*ns, name])


def _collect(cursor: ci.Cursor, ns: list[str], text: _Text, parsed: ParsedCell, covered: list, group_end: int | None = None, group_start: int | None = None) -> None:
    kind = cursor.kind
    if kind == CK.NAMESPACE:
        if not cursor.spelling:
            start, end = _extent(cursor, text)
            covered.append((start, end))
            piece = _piece(text, start, end, f"(anonymous namespace at line {_line_col(text, start)[0]})", "block", "other", ns)
            piece.private = True
            parsed.pieces.append(piece)
            parsed.warnings.append("an anonymous namespace is compiled but not bound (its names are private to the cell)")
            return
        # The namespace's own braces are re-created around each member when emitted.
        covered.append(_extent(cursor, text))
        for group in _statements(cursor, text):
            _collect_statement(group, [*ns, cursor.spelling], text, parsed, covered)
        return
    start, end = _extent(cursor, text)
    if group_end is not None:
        end = max(end, group_end)
    if group_start is not None:
        start = min(start, group_start)
    covered.append((start, end))
    name = cursor.spelling
    specialization = _specialization_name(cursor)
    if specialization:
        # A specialization (`template <> int f<int>(int)`, `struct S<int>`) adds to its
        # template, named by its arguments: it never replaces the template itself.
        piece = _piece(text, start, end, _pyname(ns, specialization), "template", "other", ns)
        if kind == CK.FUNCTION_DECL and _is_strippable(cursor):
            piece.header_text = _strip_body(cursor, text, start, end, piece.user_text)  # declared elsewhere, defined here
        parsed.pieces.append(piece)
        return
    if kind in (CK.USING_DIRECTIVE, CK.USING_DECLARATION, CK.NAMESPACE_ALIAS, CK.STATIC_ASSERT):
        piece = _piece(text, start, end, "", "preamble", "preamble", ns)
        piece.name = f"#{kind.name.lower()}:{piece.user_text.strip()}"
        parsed.pieces.append(piece)
    elif kind == CK.FUNCTION_DECL:
        parsed.pieces.append(_function_piece(cursor, ns, text, start, end, parsed))
    elif kind in _TYPE_KINDS:
        if kind == CK.ENUM_DECL:
            parsed.pieces.append(_enum_piece(cursor, ns, text, start, end, parsed))
        elif kind == CK.UNION_DECL:
            parsed.pieces.append(_piece(text, start, end, _pyname(ns, name), "type", "type", ns))
            parsed.warnings.append(f"union {name!r} is not bound (only used from C++)")
        else:
            parsed.pieces.append(_class_piece(cursor, ns, text, start, end, parsed))
    elif kind in _TEMPLATE_KINDS:
        parsed.pieces.append(_piece(text, start, end, _pyname(ns, name), "template", "other", ns))
        parsed.warnings.append(f"template {_pyname(ns, name)!r} is not bound (templates cannot cross to Python; call it from a bound function)")
    elif kind in (CK.TYPEDEF_DECL, CK.TYPE_ALIAS_DECL):
        parsed.pieces.append(_piece(text, start, end, _pyname(ns, name), "typedef", "type", ns))
    elif kind == CK.VAR_DECL:
        parsed.pieces.append(_var_piece(cursor, ns, text, start, end, parsed=parsed))
    elif kind in _MEMBER_DEF_KINDS:
        parent = cursor.semantic_parent
        # Out-of-line member definitions live in the user unit only; the class
        # itself declares them for the binding unit.
        piece = _piece(text, start, end, _member_def_name(cursor, ns), "member-def", "func", ns)
        if parent.kind != CK.CLASS_TEMPLATE:
            piece.header_text = ""
        parsed.pieces.append(piece)
    elif kind == CK.LINKAGE_SPEC:
        piece = _piece(text, start, end, "", "block", "func", ns)
        names = []
        strip = []
        for child in cursor.get_children():
            if child.kind == CK.FUNCTION_DECL:
                names.append(child.spelling)
                record = _function_record(child, ns, text, parsed)
                if record:
                    piece.binds.append(record)
                if _is_strippable(child):
                    strip.append(child)
        for child in sorted(strip, key=lambda c: c.extent.start.offset, reverse=True):
            piece.header_text = _strip_body(child, text, start, start + len(piece.header_text.encode()), piece.header_text, base=piece.header_text)
        piece.name = _pyname(ns, ",".join(names) or f'extern "C"@{start}')
        parsed.pieces.append(piece)
    else:
        parsed.pieces.append(_piece(text, start, end, f"{kind.name.lower()}@{start}", "other", "other", ns))
        parsed.warnings.append(f"{kind.name.lower().replace('_', ' ')} {name!r} is compiled but not bound")


def _member_def_name(cursor: ci.Cursor, ns: list[str]) -> str:
    """`geo.P::area(double () const)`: by the class's own namespaces (a definition
    may be written outside them, as `double geo::P::area() const {...}`)."""
    parent = cursor.semantic_parent
    scopes, scope = [], parent.semantic_parent
    while scope is not None and scope.kind == CK.NAMESPACE:
        scopes.insert(0, scope.spelling)
        scope = scope.semantic_parent
    if scope is None or scope.kind != CK.TRANSLATION_UNIT:
        scopes = list(ns)  # a nested class, or what libclang could not place
    return f"{_pyname(scopes, parent.spelling)}::{cursor.spelling}({cursor.type.spelling})"


def _piece(text: _Text, start: int, end: int, name: str, kind: str, section: str, ns: list[str]) -> Piece:
    body = text.cut(start, end)
    line, col = _line_col(text, start)
    return Piece(name=name, kind=kind, section=section, ns=list(ns), user_text=body, header_text=body, first_line=line, column=col)


def _tokens_after(cursor: ci.Cursor, offset: int) -> list[ci.Token]:
    return [t for t in cursor.get_tokens() if t.extent.start.offset >= offset]


def _body_start(cursor: ci.Cursor) -> int | None:
    """Offset where a function definition's body (or constructor initializers) begins."""
    name_offset = cursor.location.offset
    depth = 0
    seen_params = False
    for tok in _tokens_after(cursor, name_offset):
        s = tok.spelling
        if s in ("(", "["):
            depth += 1
            seen_params = True
        elif s in (")", "]"):
            depth -= 1
        elif depth == 0 and seen_params and s in ("{", ":", "try"):
            return tok.extent.start.offset
    return None


def _strip_body(cursor: ci.Cursor, text: _Text, start: int, end: int, piece_text: str, base: str | None = None) -> str:
    """The piece's text with this function's body replaced by `;`.

    The binding unit carries no line markers, so a body edit that adds lines
    leaves its text, and therefore its cached object, unchanged."""
    body = _body_start(cursor)
    if body is None:
        return piece_text
    fn_end = cursor.extent.end.offset
    a, b = body - start, fn_end - start
    raw = base.encode() if base is not None else text.data[start:end]
    return (raw[:a] + b";" + raw[b:]).decode(errors="replace")


def _canonical(t: ci.Type) -> str:
    return t.get_canonical().spelling


def _param_records(cursor: ci.Cursor, text: _Text) -> list[Param]:
    params = []
    for i, arg in enumerate(cursor.get_arguments()):
        default = None
        for tok in arg.get_tokens():
            if tok.spelling == "=":
                default = text.cut(tok.extent.end.offset, arg.extent.end.offset).strip()
                break
        params.append(Param(arg.spelling or f"arg{i}", _canonical(arg.type), default, arg.type.spelling))
    return params


_UNBINDABLE_TYPE = re.compile(r"\(anonymous|\(lambda|\(unnamed")


@functools.lru_cache(maxsize=None)
def _invalid_declaration_fn():
    try:
        fn = ci.conf.lib.clang_isInvalidDeclaration  # libclang >= 7
    except AttributeError:
        return None
    fn.argtypes, fn.restype = [ci.Cursor], ctypes.c_uint
    return fn


def _is_invalid(cursor: ci.Cursor) -> bool:
    fn = _invalid_declaration_fn()
    return bool(fn and fn(cursor))


def _unreadable(cursor: ci.Cursor, where: str, parsed: ParsedCell) -> bool:
    """A declaration libclang marked invalid (an unknown type in it, say): its
    types as libclang reports them are guesses (`int`), so it is not bound, and
    the cell's warnings say why, never silently."""
    if not _is_invalid(cursor):
        return False
    parsed.warnings.append(f"{where!r} is not bound: {_invalid_reason(cursor, parsed)}")
    return True


def _invalid_reason(cursor: ci.Cursor, parsed: ParsedCell) -> str:
    first, last = cursor.extent.start.line, cursor.extent.end.line
    for error in parsed.errors:
        if error.line is not None and first <= error.line <= last:
            return f"its declaration does not parse (line {error.line + 1}: {error.message})"
    return "its declaration does not parse"


def _function_record(cursor: ci.Cursor, ns: list[str], text: _Text, parsed: ParsedCell, cls: str | None = None) -> Function | None:
    name = cursor.spelling
    where = f"{cls}::{name}" if cls else _pyname(ns, name)
    if name.startswith("operator"):
        return None
    if _unreadable(cursor, where, parsed):
        return None
    if cursor.type.kind == ci.TypeKind.FUNCTIONPROTO and cursor.type.is_function_variadic():
        parsed.warnings.append(f"{where!r} is not bound: variadic functions cannot be called from Python")
        return None
    params = _param_records(cursor, text)
    ret = _canonical(cursor.result_type)
    for t in [ret, *(p.type for p in params)]:
        if _UNBINDABLE_TYPE.search(t):
            parsed.warnings.append(f"{where!r} is not bound: type {t!r} cannot cross to Python")
            return None
    record = Function(name, ret, params, _qual(ns, name), list(ns), _doc_comment(cursor))
    if cls:
        record.static = cursor.is_static_method()
        record.const = cursor.is_const_method()
    return record


_COMMENT_MARKS = re.compile(r"^\s*(?:/\*+!?|\*+/|\*(?!/)|//+!?|<)?\s?", re.M)


def _doc_comment(cursor: ci.Cursor) -> str:
    """The comment just above a declaration (`///`, `/** */` or `//`), without its marks."""
    raw = cursor.raw_comment or ""
    lines = [_COMMENT_MARKS.sub("", line, count=1).rstrip() for line in raw.replace("*/", "").splitlines()]
    return "\n".join(lines).strip()


def _is_strippable(cursor: ci.Cursor) -> bool:
    """A body the binding unit need not see: it is compiled once, in the user unit.

    Inline, constexpr and deduced-return functions must stay visible, and so
    must free functions with internal linkage (the binding unit could not
    reach the user unit's copy).
    """
    if not cursor.is_definition():
        return False
    toks = [t.spelling for t in cursor.get_tokens()]
    head = set(toks[: toks.index("(")] if "(" in toks else toks)
    if head & {"inline", "constexpr", "consteval", "auto", "decltype"}:
        return False
    if "static" in head and cursor.kind != CK.CXX_METHOD:
        return False
    return True


def _function_piece(cursor, ns, text, start, end, parsed) -> Piece:
    piece = _piece(text, start, end, _pyname(ns, cursor.spelling), "func", "func", ns)
    if cursor.linkage == ci.LinkageKind.INTERNAL:
        # `static`: private to the cell, as to a translation unit; compiled in source order.
        piece.private = True
        if cursor.is_definition():
            parsed.warnings.append(f"static function {_pyname(ns, cursor.spelling)!r} is compiled but not bound (static makes it private to its cell; remove `static` to call it from Python)")
        return piece
    record = _function_record(cursor, ns, text, parsed)
    if record:
        piece.binds.append(record)
    if _is_strippable(cursor):
        piece.header_text = _strip_body(cursor, text, start, end, piece.user_text)
        piece.proto_text = _prototype(cursor, text, start, piece.header_text)
    elif cursor.is_definition() and not _head_words(cursor) & {"inline", "constexpr", "consteval", "static"}:
        # A body the binding unit must see (deduced return type): there it is an
        # inline copy, so the linker keeps the user unit's definition.
        piece.header_text = "inline " + piece.user_text
    return piece


def _head_words(cursor: ci.Cursor) -> set[str]:
    toks = [t.spelling for t in cursor.get_tokens()]
    return set(toks[: toks.index("(")] if "(" in toks else toks)


def _prototype(cursor: ci.Cursor, text: _Text, start: int, header_text: str) -> str:
    """The declaration without default arguments (placed before every function body)."""
    raw = header_text.encode()
    cuts = []
    for arg in cursor.get_arguments():
        toks = list(arg.get_tokens())
        for tok in toks:
            if tok.spelling == "=":
                cuts.append((tok.extent.start.offset - start, arg.extent.end.offset - start))
                break
    for a, b in reversed(cuts):
        raw = raw[:a] + raw[b:]
    proto = raw.decode(errors="replace")
    semi = proto.find(";", proto.find(")") if ")" in proto else 0)
    return re.sub(r"\s+", " ", proto[: semi + 1] if semi >= 0 else proto).strip()


def _enum_piece(cursor, ns, text, start, end, parsed) -> Piece:
    piece = _piece(text, start, end, _pyname(ns, cursor.spelling), "enum", "type", ns)
    if not cursor.is_definition() or not cursor.spelling:
        return piece
    values = [(c.spelling, c.enum_value) for c in cursor.get_children() if c.kind == CK.ENUM_CONSTANT_DECL]
    piece.binds.append(EnumBinding(cursor.spelling, _qual(ns, cursor.spelling), list(ns), cursor.is_scoped_enum(), values))
    return piece


def _class_piece(cursor, ns, text, start, end, parsed) -> Piece:
    name = cursor.spelling
    piece = _piece(text, start, end, _pyname(ns, name), "class", "type", ns)
    if not cursor.is_definition() or not name:
        return piece
    qual = _qual(ns, name)
    info = ClassBinding(name, qual, list(ns), abstract=cursor.is_abstract_record(), comment=_doc_comment(cursor))
    members = list(cursor.get_children())
    polymorphic = any(m.kind == CK.CXX_METHOD and m.is_virtual_method() for m in members)
    header = piece.user_text
    strip: list[ci.Cursor] = []
    for m in members:
        public = m.access_specifier == ci.AccessSpecifier.PUBLIC
        if m.kind == CK.CXX_BASE_SPECIFIER and public:
            info.bases.append(_canonical(m.type))
        elif m.kind == CK.CONSTRUCTOR:
            info.user_ctors = True
            if public and not (m.is_copy_constructor() or m.is_move_constructor() or m.is_deleted_method()):
                if _unreadable(m, f"{name}({', '.join(a.spelling for a in m.get_arguments())})", parsed):
                    continue
                info.ctors.append(_param_records(m, text))
        elif m.kind == CK.DESTRUCTOR and not public:
            parsed.warnings.append(f"class {qual[2:]!r} is not bound: its destructor is not public")
            return piece
        elif m.kind == CK.FIELD_DECL and public:
            if _unreadable(m, f"{name}.{m.spelling}", parsed):
                continue
            t = m.type
            if t.kind in (ci.TypeKind.CONSTANTARRAY, ci.TypeKind.LVALUEREFERENCE, ci.TypeKind.RVALUEREFERENCE) or m.is_bitfield():
                parsed.warnings.append(f"member {name}.{m.spelling} is not bound (C arrays, references and bit-fields cannot be Python attributes)")
                continue
            info.fields.append(Field(m.spelling, _canonical(t), t.is_const_qualified(), t.spelling))
        elif m.kind == CK.CXX_METHOD and public:
            if m.is_deleted_method():
                continue
            record = _function_record(m, ns, text, parsed, cls=name)
            if record:
                if not m.is_definition() and not m.is_virtual_method():
                    # Defined out of line, maybe in a later cell: bound once a cell defines it.
                    record.defined_as = f"{_pyname(ns, name)}::{m.spelling}("
                info.methods.append(record)
                if not polymorphic and _is_strippable(m):
                    strip.append(m)
        elif m.kind == CK.FUNCTION_TEMPLATE and m.access_specifier == ci.AccessSpecifier.PUBLIC:
            parsed.warnings.append(f"member template {name}.{m.spelling} is not bound")
        elif m.kind in (CK.STRUCT_DECL, CK.CLASS_DECL, CK.ENUM_DECL) and m.spelling and public:
            parsed.warnings.append(f"nested type {name}::{m.spelling} is not bound (declare it at namespace scope to use it from Python)")
    # Strip bound method bodies, last first so earlier offsets stay valid.
    for m in sorted(strip, key=lambda c: c.extent.start.offset, reverse=True):
        body = _body_start(m)
        if body is None:
            continue
        a, b = body - start, m.extent.end.offset - start
        raw = header.encode()
        header = (raw[:a] + b";" + raw[b:]).decode(errors="replace")
        record = next(r for r in info.methods if r.name == m.spelling and r.params == _param_records(m, text))
        piece.keep.append(f"static_cast<{fnptr_type(record, qual)}>(&{qual}::{m.spelling})")
    piece.header_text = header
    piece.binds.append(info)
    return piece


def _var_piece(cursor, ns, text, start, end, declarator: str | None = None, prefix: str = "", parsed: ParsedCell | None = None) -> Piece:
    """A namespace-scope variable. Other units see it as `extern` (they must refer to
    the defining unit's variable); constants are copied whole (each unit may hold
    its own); a `static` variable is private to its cell."""
    name = cursor.spelling
    parent = cursor.semantic_parent
    if parent is not None and parent.kind in (CK.STRUCT_DECL, CK.CLASS_DECL):
        piece = _piece(text, start, end, f"{_pyname(ns, parent.spelling)}::{name}", "member-def", "func", ns)
        piece.header_text = ""
        return piece
    piece = _piece(text, start, end, _pyname(ns, name), "var", "other", ns)
    own_text = piece.user_text if declarator is None else declarator + ";"
    whole = own_text if declarator is None else f"{prefix} {own_text}"
    piece.user_text = own_text
    piece.header_text = whole
    words = {t.spelling for t in cursor.get_tokens() if t.extent.start.offset < cursor.location.offset}
    constant = cursor.type.is_const_qualified() or bool(words & {"constexpr", "inline"})
    if constant or cursor.storage_class == ci.StorageClass.EXTERN:
        return piece
    if cursor.linkage == ci.LinkageKind.INTERNAL:
        piece.private = True
        return piece
    # The binding unit and other cells must refer to this unit's variable, not define their own.
    if words & {"auto", "decltype"}:
        # `extern auto x;` declares nothing: other units name the type libclang deduced.
        deduced = cursor.type.spelling
        if _UNBINDABLE_TYPE.search(deduced):
            piece.header_text = ""
            if parsed is not None:
                parsed.warnings.append(f"{_pyname(ns, name)!r} can be used only in its own cell: its type ({deduced.split(' at ')[0].lstrip('(')}) has no name other cells could declare it with")
        else:
            piece.header_text = f"extern {'thread_local ' if 'thread_local' in words else ''}{deduced} {name};"
        return piece
    declarator_end = start + len(declarator.encode()) if declarator is not None else end
    cut = _initializer_start(cursor, declarator_end)
    if declarator is None:
        head = text.cut(start, cut).strip()
    else:
        head = prefix + " " + text.cut(start, cut).strip()
    piece.header_text = "extern " + head + ";"
    return piece


def _initializer_start(cursor: ci.Cursor, limit: int) -> int:
    """Offset of a variable's initializer (`=`, `{` or `(` after its declarator), or `limit`.
    A `(` right after a `)` that closes a group around the name (`(*fp)(int)`) opens a
    parameter list; any other `(` at the declarator's level opens the initializer."""
    name_end = cursor.location.offset + len(cursor.spelling.encode())
    brackets = depth = 0
    after_group = False
    for tok in _tokens_after(cursor, name_end):
        if tok.extent.start.offset >= limit:
            break
        s = tok.spelling
        closes_group = False
        if s == "[":
            brackets += 1
        elif s == "]":
            brackets -= 1
        elif brackets == 0 and s == "(":
            if depth == 0 and not after_group:
                return tok.extent.start.offset
            depth += 1
        elif brackets == 0 and s == ")":
            closes_group = depth == 0
            depth = max(depth - 1, 0)
        elif brackets == 0 and depth == 0 and s in ("=", "{", ";"):
            return tok.extent.start.offset
        after_group = closes_group
    return limit


def _collect_preamble(text: _Text, covered: list[tuple[int, int]], parsed: ParsedCell) -> None:
    """Everything outside declarations (#include, #define, comments) is kept, in order."""
    pos = 0
    for start, end in sorted(covered) + [(len(text.data), len(text.data))]:
        if start > pos:
            for a, b in _include_lines_apart(text, pos, start):
                gap = text.cut(a, b)
                if _meaningful(gap):
                    piece = _piece(text, a, b, "", "preamble", "preamble", [])
                    piece.name = "#" + re.sub(r"\s+", " ", _strip_comments(gap)).strip()
                    parsed.pieces.append(piece)
        pos = max(pos, end)


_INCLUDE_LINE = re.compile(rb"(?m)^[ \t]*#[ \t]*include\b[^\n]*\n?")


def _include_lines_apart(text: _Text, start: int, end: int) -> list[tuple[int, int]]:
    """The gap split so each #include line is a piece of its own (a cell's
    pybind11 include must not reach other cells' units with its neighbours)."""
    spans, pos = [], start
    for m in _INCLUDE_LINE.finditer(text.data, start, end):
        if m.start() > pos:
            spans.append((pos, m.start()))
        spans.append((m.start(), min(m.end(), end)))
        pos = min(m.end(), end)
    if pos < end:
        spans.append((pos, end))
    return spans


def _strip_comments(s: str) -> str:
    return re.sub(r"//[^\n]*|/\*.*?\*/", "", s, flags=re.S)


def _meaningful(s: str) -> bool:
    return bool(_strip_comments(s).strip())


# -- statement cells -----------------------------------------------------------

def split_directives(body: str) -> tuple[str, str]:
    """(directives, statements): preprocessor lines move out of the function body;
    both keep the cell's line count so line numbers still match."""
    directives, statements = [], []
    for line in body.split("\n"):
        if line.lstrip().startswith("#"):
            directives.append(line)
            statements.append("")
        else:
            directives.append("")
            statements.append(line)
    return "\n".join(directives), "\n".join(statements)


def parse_statement(body: str, context_header: str, args: list[str], inputs: dict[str, str], outputs: list[str]) -> ParsedCell:
    """Parse a cell as the body of a function taking the -i inputs; find the -o types."""
    directives, statements = split_directives(body)
    params = ", ".join(f"{t} {n}" for n, t in inputs.items())
    main = f'{context_header}\n#include "/ipolyglot/directives.cpp"\nvoid {STATEMENT_FN}({params}) {{\n#include "{CELL_PATH}"\n}}\n'
    tu = _parse(main, {CELL_PATH: statements, "/ipolyglot/directives.cpp": directives}, args, skip_bodies=False)
    errors = _cell_errors(tu, CELL_PATH)
    parsed = ParsedCell(mode="statement", errors=errors)
    if errors:
        return parsed
    found: dict[str, str] = {}
    for fn in tu.cursor.get_children():
        if fn.kind == CK.FUNCTION_DECL and fn.spelling == STATEMENT_FN:
            for stmt in fn.get_children():
                if stmt.kind != CK.COMPOUND_STMT:
                    continue
                for decl_stmt in stmt.get_children():
                    if decl_stmt.kind == CK.DECL_STMT:
                        for var in decl_stmt.get_children():
                            if var.kind == CK.VAR_DECL:
                                found[var.spelling] = _canonical(var.type)
    out_types = {}
    for name in outputs:
        if name in found:
            out_types[name] = found[name]
        elif name in inputs:
            out_types[name] = inputs[name]
        else:
            parsed.errors.append(ParseError(f"-o {name}: no variable named {name!r} is declared at the top level of the cell"))
    parsed.statement = Statement(directives, statements, dict(inputs), out_types)
    return parsed


# -- who uses a declaration (for %polyglot cpp rm) ------------------------------------

_REFERENCE_KINDS = {CK.DECL_REF_EXPR, CK.MEMBER_REF_EXPR, CK.TYPE_REF, CK.TEMPLATE_REF, CK.MEMBER_REF, CK.CALL_EXPR, CK.OVERLOADED_DECL_REF}


def users_of(chunks: list[tuple[str, str | None]], targets: set[str], args: list[str]) -> set[str]:
    """Which owners of `chunks` (text, owner) refer to a declaration in a chunk
    owned by one of `targets`, as libclang resolves the references (the session's
    code is parsed whole, bodies included)."""
    spans: list[tuple[int, int, str | None]] = []
    parts, line = [], 1
    for text, owner in chunks:
        text = text if text.endswith("\n") else text + "\n"
        lines = text.count("\n")
        spans.append((line, line + lines - 1, owner))
        parts.append(text)
        line += lines
    tu = _parse("".join(parts), {}, args, skip_bodies=False)

    def owner_at(cursor: ci.Cursor) -> str | None:
        loc = cursor.location
        if loc.file is None or loc.file.name != MAIN_PATH:
            return None
        for first, last, owner in spans:
            if first <= loc.line <= last:
                return owner
        return None

    found: set[str] = set()
    for top in tu.cursor.get_children():
        if top.location.file is None or top.location.file.name != MAIN_PATH:
            continue
        for cursor in top.walk_preorder():
            if cursor.kind not in _REFERENCE_KINDS:
                continue
            user = owner_at(cursor)
            if user is None or user in targets or user in found:
                continue
            if cursor.kind == CK.OVERLOADED_DECL_REF:
                referenced = [ci.conf.lib.clang_getOverloadedDecl(cursor, i) for i in range(ci.conf.lib.clang_getNumOverloadedDecls(cursor))]
            else:
                referenced = [cursor.referenced] if cursor.referenced is not None else []
            if any(owner_at(r) in targets for r in referenced):
                found.add(user)
    return found
