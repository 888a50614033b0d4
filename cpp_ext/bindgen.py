"""pybind11 registration code for the declarations libclang found.

Everything here depends only on declarations (names, signatures, members),
never on function bodies, which is what lets a body edit reuse the compiled
binding unit.
"""

from __future__ import annotations

import re
from pathlib import Path

from ipolyglot.kernel.core.templates import TemplateFolder

from .records import Binding, ClassBinding, EnumBinding, Field, Function, Param, fnptr_type

TEMPLATES = TemplateFolder(Path(__file__).resolve().parent / "templates")  # every generated C++ text of the backend


def snippet(name: str, /, **values: object) -> str:
    """One piece of registration code: templates/pybind_<name>.cpp filled in."""
    return TEMPLATES.render(f"pybind_{name}.cpp", **values)

_PYOBJECT_MARK = "pybind11::"


def _is_char_pointer(t: str) -> bool:
    return t.replace(" ", "") in ("constchar*", "char*")


def _releases_gil(record: Function) -> bool:
    """Functions that take and return only C++ values run without the GIL
    (unless their cell asked to keep it, for tiny functions in hot loops)."""
    if record.keep_gil:
        return False
    types = [record.ret, *(p.type for p in record.params)]
    return not any(_PYOBJECT_MARK in t for t in types)


def _arg_list(params: list[Param]) -> str:
    out = []
    for p in params:
        if p.default is None:
            out.append(f'pybind11::arg("{p.name}")')
        else:
            value = f"std::decay_t<{p.type}>({p.default})"
            out.append(f'pybind11::arg("{p.name}") = {value}')
    return "".join(", " + a for a in out)


def _policy(record: Function, method: bool) -> str:
    ret = record.ret.strip()
    if ret.endswith("*") and not _is_char_pointer(ret):
        return ", pybind11::return_value_policy::" + ("reference_internal" if method else "reference")
    return ""


def _profiled(record: Function, pyname: str, profile_name: str, callee: str, self_type: str | None,
              scope: str = "m", define: str = "def") -> str:
    """A binding that measures its phases, reached through a Python entry point that times the whole call."""
    params = list(record.params)
    timed, call_args = [], []
    index = 0
    if self_type:
        timed.append(f"ipolyglot::timed<{self_type}, 0> self")
        index = 1
    for p in params:
        timed.append(f"ipolyglot::timed<{p.type}, {index}> a{index}")
        call_args.append(f"ipolyglot::arg(a{index})")
        index += 1
    if self_type:
        call = f"ipolyglot::arg(self).{callee}({', '.join(call_args)})"
    else:
        call = f"{callee}({', '.join(call_args)})"
    release = "pybind11::gil_scoped_release release;" if _releases_gil(record) else ""
    is_void = record.ret.strip() == "void"
    policy = _policy(record, self_type is not None)
    policy_arg = policy.lstrip(", ") or "pybind11::return_value_policy::move"
    call_result = snippet("call_void" if is_void else "call_value", release=release, call=call)
    convert = "pybind11::none()" if is_void else f"pybind11::cast(std::forward<decltype(result)>(result), {policy_arg})"
    return snippet(
        "profiled_function",
        scope=scope,
        define=define,
        is_static="true" if define == "def_static" else "false",
        pyname=pyname,
        timed_params=", ".join(timed),
        has_args="true" if index else "false",
        call_result=call_result,
        convert_result=convert,
        profile_name=profile_name,
        args=_arg_list(params),
    )


def function_code(record: Function, profile: bool, doc: str = "") -> str:
    pyname = record.name
    if profile:
        return _profiled(record, pyname, ".".join([*record.ns, pyname]), record.qual, None)
    return snippet("def", scope="m", static="", pyname=pyname, fnptr=fnptr_type(record), qual=record.qual, doc=cpp_string(doc), args=_arg_list(record.params), extras=_extras(record))


# -- what Python sees of a function: its signature, docstring and call errors ----------

_INTEGERS = {"char", "signed char", "unsigned char", "short", "unsigned short", "int", "unsigned int", "long", "unsigned long", "long long", "unsigned long long"}
_SEQUENCES = {"vector": "list", "array": "list", "list": "list", "deque": "list", "set": "set", "unordered_set": "set", "map": "dict", "unordered_map": "dict", "pair": "tuple", "tuple": "tuple"}


def _template_args(t: str) -> tuple[str, list[str]]:
    """("std::vector", ["int"]) for "std::vector<int>"; top-level commas only."""
    if "<" not in t or not t.endswith(">"):
        return t, []
    head, inner = t[: t.index("<")], t[t.index("<") + 1 : -1]
    return head.strip(), [arg for arg in _split_top(inner) if arg]


def python_type(cpp: str) -> str:
    """The Python type a C++ parameter or result type crosses as (for signatures and messages)."""
    t = cpp.replace("const ", "").replace("volatile ", "").strip().rstrip("&").strip()
    if t.replace(" ", "") in ("char*", "constchar*"):
        return "str"
    head, args = _template_args(t)
    base = head.rsplit("::", 1)[-1]
    if t == "void":
        return "None"
    if t == "bool":
        return "bool"
    if t in _INTEGERS or base in ("size_t", "ptrdiff_t") or re.fullmatch(r"u?int\d+_t", base):
        return "int"
    if t in ("float", "double", "long double"):
        return "float"
    if base in ("basic_string", "string", "string_view", "basic_string_view"):
        return "str"
    if base == "complex":
        return "complex"
    if base in ("function",):
        return "collections.abc.Callable"
    if base == "optional" and args:
        return f"{python_type(args[0])} | None"
    if base == "variant" and args:
        return " | ".join(python_type(a) for a in args)
    if base in _SEQUENCES and args:
        kind = _SEQUENCES[base]
        items = args[:1] if base == "array" else args
        if kind in ("list", "set"):
            items = items[:1]
        return f"{kind}[{', '.join(python_type(a) for a in items)}]"
    if head.startswith("pybind11::") or head.startswith("py::"):
        return "object"
    return base.rstrip("* ") or t


def _python_default(cpp_default: str) -> str:
    """A C++ default argument as a Python literal for the text signature, else `...`."""
    d = cpp_default.strip()
    if re.fullmatch(r"[-+]?\d+[uUlL]*", d):
        return str(int(d.rstrip("uUlL")))
    if re.fullmatch(r"[-+]?(\d+\.\d*|\.\d+|\d+)([eE][-+]?\d+)?[fFlL]?", d):
        return repr(float(d.rstrip("fFlL")))
    if d in ("true", "false"):
        return d.capitalize()
    if d in ("nullptr", "NULL", "std::nullopt"):
        return "None"
    if re.fullmatch(r'"[^"\\]*"', d):
        return repr(d[1:-1])
    return "..."


def _shown_type(param: Param | Field) -> str:
    spelled = param.spelling or param.type
    return re.sub(r"^const\s+|\s*&+$", "", spelled.strip())


def python_signature(record: Function, bound: bool = False) -> str:
    """`add(a: int, b: int = 10) -> int`: the first line of the docstring
    (`bump(self, by: int = 1) -> int` for a method, `bound`)."""
    params = ["self"] if bound else []
    for p in record.params:
        text = f"{p.name}: {python_type(p.type)}"
        if p.default is not None:
            text += f" = {_python_default(p.default)}"
        params.append(text)
    return f"{record.name}({', '.join(params)}) -> {python_type(record.ret)}"


def docstring(record: Function, overloaded: bool, first: bool, bound: bool = False) -> str:
    """The docstring of one overload. The first starts with a text signature
    (`name(a, b=10)` then `--`, `name(self, ...)` for a method, `bound`), which
    inspect.signature reads from a builtin; annotations cannot be carried that
    way, so they are in the line after it."""
    body = python_signature(record, bound)
    if record.comment:
        body += "\n\n" + record.comment
    if not first:
        return body
    if overloaded:
        text_signature = "(*args, **kwargs)"
    else:
        text_signature = "(" + ", ".join(["self"] * bound + [p.name + ("" if p.default is None else "=" + _python_default(p.default)) for p in record.params]) + ")"
    return f"{record.name}{text_signature}\n--\n\n{body}"


def call_errors_code(records: list[Function]) -> str:
    """The last overload of a function, reached only when no real overload takes
    the arguments without conversion: it calls a private copy of the real
    overloads (so conversions still apply) and, when none fits, says briefly why."""
    pyname = records[0].name
    chain = "\n".join(
        snippet("real_overload", fnptr=fnptr_type(r), qual=r.qual, pyname=pyname, args=_arg_list(r.params), extras=_extras(r))
        for r in records
    )
    return snippet("call_errors", pyname=pyname, real_chain=chain, explain=_explain_code(pyname, records))


def _explain_code(pyname: str, records: list[Function], signatures: list[str] | None = None) -> str:
    """What a call that fits no overload says: the first parameter that does not
    fit (one overload), or the overloads' signatures."""
    if len(records) > 1:
        shown = "\n".join("    " + s for s in (signatures or [python_signature(r) for r in records]))
        return snippet("explain_overloads", pyname=pyname, signatures=cpp_string(shown))
    record = records[0]
    params = ", ".join(
        "ipolyglot::param_info{" + ", ".join([cpp_string(p.name), cpp_string(_shown_type(p)), cpp_string(python_type(p.type)), "true" if p.default is not None else "false"]) + "}"
        for p in record.params
    )
    return snippet("explain_call", types=", ".join(p.type for p in record.params), pyname=pyname, params=params)


def _member_call_errors(info: ClassBinding) -> list[str]:
    """Last-resort overloads of a class's constructor and methods, as free functions
    have (call_errors_code): they call the class's own overloads again, with
    conversions, and when none fits say briefly why, in the cell's terms."""
    lines = []
    name = info.name
    if not info.abstract:
        if info.user_ctors:
            ctors = [Function(name, "void", params, "", []) for params in info.ctors]
        else:
            fields = [Param(f.name, f.type, f"{info.qual}{{}}.{f.name}", f.spelling) for f in info.fields if not f.readonly]
            ctors = [Function(name, "void", fields, "", [])]
        if ctors:
            signatures = [f"{name}({', '.join(_python_param(p) for p in c.params)})" for c in ctors]
            lines.append(snippet("ctor_call_errors", explain=_explain_code(name, ctors, signatures)))
    by_name: dict[str, list[Function]] = {}
    for m in info.methods:
        by_name.setdefault(m.name, []).append(m)
    for pyname, records in by_name.items():
        static = bool(records[0].static)
        lines.append(snippet(
            "member_call_errors",
            static="_static" if static else "",
            pyname=pyname,
            given="all" if static else "ipolyglot::without_self(all)",
            explain=_explain_code(pyname, records),
        ))
    return lines


def _python_param(p: Param) -> str:
    text = f"{p.name}: {python_type(p.type)}"
    return text if p.default is None else text + f" = {_python_default(p.default)}"


def _extras(record: Function) -> str:
    return _policy(record, False) + _call_guard(record)


def _call_guard(record: Function) -> str:
    """Every call releases the GIL where it may, and ends by raising what a
    Python callable raised on a thread of C++'s own that did not catch it."""
    if _releases_gil(record):
        return ", pybind11::call_guard<ipolyglot::thread_errors_check, pybind11::gil_scoped_release>()"
    return ", pybind11::call_guard<ipolyglot::thread_errors_check>()"


def cpp_string(text: str) -> str:
    escaped = text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n").replace("?", "\\?")
    return f'"{escaped}"'


def _class_doc(info: ClassBinding) -> str:
    """The docstring argument of `pybind11::class_` (the comment above the class), or none."""
    return ", " + cpp_string(info.comment) if info.comment else ""


def class_code(info: ClassBinding, bound_classes: set[str], profile: bool) -> str:
    qual = info.qual
    bases = [b for b in info.bases if b.lstrip(":") in bound_classes]
    lines = [snippet("class_open", qual=qual, bases="".join(", " + ("::" + b.lstrip(":")) for b in bases), name=info.name, doc=_class_doc(info))]
    if not info.abstract:
        if info.user_ctors:
            for index, params in enumerate(info.ctors):
                doc = docstring(_constructor_record(params), len(info.ctors) > 1, index == 0, bound=True)
                lines.append(snippet("ctor", types=", ".join(p.type for p in params), doc=cpp_string(doc), args=_arg_list(params)))
        else:
            fields = [f for f in info.fields if not f.readonly]
            params = ", ".join(f"std::decay_t<{f.type}> {f.name}" for f in fields)
            assign = " ".join(f"self.{f.name} = std::move({f.name});" for f in fields)
            args = "".join(f', pybind11::arg("{f.name}") = {qual}{{}}.{f.name}' for f in fields)
            lines.append(snippet("aggregate_ctor", params=params, qual=qual, assign=assign, args=args))
    for f in info.fields:
        if f.readonly:
            lines.append(snippet("field", access="readonly", name=f.name, qual=qual))
        else:  # a value that does not fit is told as a call's argument is
            lines.append(snippet("field_checked", name=f.name, qual=qual, where=cpp_string(f"{info.name}.{f.name}"), cpp_type=cpp_string(_shown_type(f)), expected=cpp_string(python_type(f.type))))
    documented: set[str] = set()
    for m in info.methods:
        if profile:
            if m.static:
                code = _profiled(m, m.name, f"{info.name}.{m.name}", f"{qual}::{m.name}", None, "cls", "def_static")
            else:
                self_type = f"const {qual} &" if m.const else f"{qual} &"
                code = _profiled(m, m.name, f"{info.name}.{m.name}", m.name, self_type, "cls", "def")
            lines.append(code)
            continue
        extras = _policy(m, True) + _call_guard(m)
        overloaded = sum(other.name == m.name for other in info.methods) > 1
        doc = docstring(m, overloaded, m.name not in documented, bound=not m.static)
        documented.add(m.name)
        lines.append(snippet(
            "def",
            scope="cls",
            static="_static" if m.static else "",
            pyname=m.name,
            doc=cpp_string(doc),
            fnptr=fnptr_type(m, qual),
            qual=f"{qual}::{m.name}",
            args=_arg_list(m.params),
            extras=extras,
        ))
    if not profile:
        lines += _member_call_errors(info)
    fields = ", ".join(f'"{f.name}"' for f in info.fields)
    if not any(m.name == "__repr__" for m in info.methods):
        lines.append(snippet("repr", name=info.name, fields=fields))
    # Plain structs (keyword constructor from their fields) accept an earlier
    # build's instances by copying those fields.
    aggregate = not info.user_ctors and not info.abstract and all(not f.readonly for f in info.fields)
    lines.append(snippet("finish_class", qual=qual, fields=fields, copy_fields="true" if aggregate else "false"))
    return "\n".join(lines)


def _constructor_record(params: list[Param]) -> Function:
    """A constructor as the record a docstring is made from: `__init__(self, ...) -> None`."""
    return Function("__init__", "void", params, "", [])


def _signature_types(record: Binding) -> list[str]:
    if isinstance(record, EnumBinding):
        return []
    if isinstance(record, ClassBinding):
        types = [f.type for f in record.fields]
        types += [p.type for params in record.ctors for p in params]
        for m in record.methods:
            types += _signature_types(m)
        return types
    return [record.ret, *(p.type for p in record.params)]


def _function_types(t: str) -> list[tuple[str, list[str]]]:
    """(result, parameters) of every std::function<R (A, B)> spelled in `t`, inner ones too."""
    found = []
    start = t.find("std::function<")
    while start >= 0:
        i = start + len("std::function<")
        depth, j = 1, i
        while j < len(t) and depth:
            depth += {"<": 1, ">": -1}.get(t[j], 0)
            j += 1
        inner = t[i : j - 1].strip()
        if inner.endswith(")"):
            depth, k = 0, len(inner) - 1
            while k >= 0:
                depth += {")": 1, "(": -1}.get(inner[k], 0)
                if depth == 0:
                    break
                k -= 1
            result, params = inner[:k].strip(), inner[k + 1 : -1].strip()
            args = _split_top(params) if params and params != "void" else []
            if result and "..." not in args:
                found.append((result, args))
        start = t.find("std::function<", start + 1)
    return found


def _split_top(text: str) -> list[str]:
    parts, depth, current = [], 0, ""
    for ch in text:
        if ch == "," and depth == 0:
            parts.append(current.strip())
            current = ""
            continue
        depth += {"<": 1, "(": 1, "[": 1, ">": -1, ")": -1, "]": -1}.get(ch, 0)
        current += ch
    parts.append(current.strip())
    return parts


def callback_casters(records: list[Binding]) -> list[str]:
    """IPOLYGLOT_CALLBACK(R, A...) for each std::function type of the bound signatures:
    a Python callable that raises on a thread of C++'s own then fails the call
    instead of ending the process (ipolyglot.hpp)."""
    seen: dict[str, None] = {}
    for record in records:
        for t in _signature_types(record):
            for result, args in _function_types(t):
                seen.setdefault(f"IPOLYGLOT_CALLBACK({', '.join([result, *args])})", None)
    return list(seen)


def enum_code(info: EnumBinding) -> str:
    members = "\n".join(snippet("enum_member", name=n, value=int(v)) for n, v in info.values)
    return snippet("enum", members=members, qual=info.qual, name=info.name, scoped="true" if info.scoped else "false")


def registration(index: int, ns: list[str], body: str) -> str:
    """A registration function placed in the declaration's namespace, so default
    arguments are looked up where the user wrote them."""
    ns_open = "".join(f"namespace {n} {{ " for n in ns)
    ns_close = " " + "}" * len(ns) if ns else ""
    return snippet("register", ns_open=ns_open, ns_close=ns_close, index=index, body=body)


def module_var(ns: list[str]) -> str:
    return "m" if not ns else "ipolyglot_ns_" + "_".join(ns)


def submodule(ns: list[str]) -> str:
    """The line making the Python submodule of namespace `ns` (its parent made already)."""
    return snippet("submodule", var=module_var(ns), parent=module_var(ns[:-1]), name=ns[-1])


def registration_call(index: int, ns: list[str]) -> str:
    return snippet("call", register="::".join(["", *ns, f"ipolyglot_register_{index}"]), module=module_var(ns))


def custom_call(index: int, symbol: str) -> str:
    """A cell's own `ipolyglot_bind`, run after ipolyglot's registrations."""
    return snippet("custom", index=index, symbol=symbol)


# -- the generic path: functions over standard types, with no pybind11 code per build --------

# C++ types (as libclang spells them canonically) the generic caller converts, by its kind.
_NUMBER_KINDS = {
    "bool": "kind_bool", "short": "kind_short", "unsigned short": "kind_ushort", "int": "kind_int",
    "unsigned int": "kind_uint", "long": "kind_long", "unsigned long": "kind_ulong", "long long": "kind_longlong",
    "unsigned long long": "kind_ulonglong", "float": "kind_float", "double": "kind_double",
}
_VALUE_KINDS = {
    **_NUMBER_KINDS,
    "std::basic_string<char>": "kind_string", "std::vector<int>": "kind_vector_int", "std::vector<unsigned int>": "kind_vector_uint",
    "std::vector<long>": "kind_vector_long", "std::vector<unsigned long>": "kind_vector_ulong",
    "std::vector<long long>": "kind_vector_longlong", "std::vector<float>": "kind_vector_float", "std::vector<double>": "kind_vector_double",
}
_THUNK_TYPES = {"std::basic_string<char>": "std::string"}  # spelled in the thunks as in ipolyglot_abi.hpp


def _generic_value(cpp: str) -> str | None:
    """The value type (a key of _VALUE_KINDS) a parameter of type `cpp` is passed as:
    by value or by const reference; None when the generic caller does not convert it."""
    t = " ".join(cpp.split())
    if t.endswith("&"):
        if not t.startswith("const ") or t.endswith("&&"):
            return None
        t = t[: -1].strip()
    t = t.removeprefix("const ").strip()
    return t if t in _VALUE_KINDS else None


def _kind(cpp: str) -> str:
    return "kind_void" if cpp.strip() == "void" else _VALUE_KINDS[_generic_value(cpp)]


def _thunk_type(cpp: str) -> str:
    value = _generic_value(cpp)
    return _THUNK_TYPES.get(value, value)


def generic_callable(record: Function) -> bool:
    """Whether the precompiled generic caller can bind this function: a free function
    at namespace scope whose parameters (named, without defaults) and result are numbers,
    strings or vectors of numbers, by value or const reference."""
    if record.ns or len(record.params) > 16:
        return False
    ret = record.ret.strip()
    result_ok = ret == "void" or (_generic_value(ret) is not None and not ret.endswith("&"))
    params_ok = all(p.default is None and re.fullmatch(r"[A-Za-z_]\w*", p.name) and _generic_value(p.type) for p in record.params)
    return result_ok and bool(params_ok)


def _numbers_only(record: Function) -> bool:
    return all(_kind(t) in ("kind_void", *_NUMBER_KINDS.values()) for t in [record.ret, *(p.type for p in record.params)])


def generic_thunk(index: int, record: Function) -> str:
    args = ", ".join(f"std::move(*static_cast<{_thunk_type(p.type)} *>(args[{i}]))" for i, p in enumerate(record.params))
    call = f"{record.qual}({args})"
    if record.ret.strip() != "void":
        call = f"*static_cast<{_thunk_type(record.ret)} *>(result) = {call}"
    return TEMPLATES.render("generic_thunk.cpp", index=index, call=call)


def generic_params(index: int, record: Function) -> str:
    """The table of a function's parameters (none for a function without any)."""
    if not record.params:
        return ""
    params = ", ".join(
        "{" + ", ".join([cpp_string(p.name), "ipolyglot_abi::" + _kind(p.type), cpp_string(_shown_type(p)), cpp_string(python_type(p.type))]) + "}"
        for p in record.params
    )
    return TEMPLATES.render("generic_params.cpp", index=index, params=params)


def generic_entry(index: int, record: Function) -> str:
    return TEMPLATES.render(
        "generic_entry.cpp",
        name=record.name,
        doc=cpp_string(docstring(record, overloaded=False, first=True)),
        index=index,
        result=_kind(record.ret),
        arity=len(record.params),
        params=f"ipolyglot_params_{index}" if record.params else "nullptr",
        release_gil="true" if _releases_gil(record) else "false",
        numbers_only="true" if _numbers_only(record) else "false",
    )
