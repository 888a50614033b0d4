"""A cached %%cpp cell loads without starting any compiler process."""

from __future__ import annotations

import shutil
import uuid
import stat

from conftest import RunningKernel

CELL = r'''%%cpp -v
#include <vector>
struct Acc { double sum = 0; void add(double x) { sum += x; } };
double cache_probe(const std::vector<double>& xs) { double s = 0; for (double x : xs) s += 2 * x; return s; }
'''


def _logging_compiler(tmp_path):
    """A $CXX that records every invocation, then runs the real compiler."""
    real = shutil.which("g++") or shutil.which("c++")
    log = tmp_path / "compiler.log"
    wrapper = tmp_path / "logging-c++"
    wrapper.write_text(f'#!/bin/sh\necho "$@" >> "{log}"\nexec "{real}" "$@"\n')
    wrapper.chmod(wrapper.stat().st_mode | stat.S_IXUSR)
    return wrapper, log


def test_cache_hit_starts_no_compiler_process(tmp_path):
    wrapper, log = _logging_compiler(tmp_path)
    env = {"CXX": str(wrapper)}
    first = RunningKernel(env=env)
    try:
        first.run(CELL).ok()
        assert first.eval("cache_probe([1.0, 2.0])") == 6.0
    finally:
        first.shutdown()
    assert log.exists() and "-c" in log.read_text()  # the first kernel really compiled
    log.unlink()

    second = RunningKernel(env=env)  # a new process: nothing in memory, only the cache
    try:
        out = second.run(CELL).ok()
        assert "cache: hit" in out.stdout
        assert second.eval("cache_probe([1.0, 2.0])") == 6.0
        second.run("a = Acc(); a.add(2.5)").ok()
        assert second.eval("a.sum") == 2.5
    finally:
        second.shutdown()
    assert not log.exists(), f"the compiler was started on a cache hit: {log.read_text()}"


PLAIN_NUMBERS = r'''%%cpp -v
#include <stdexcept>
#include <string>
#include <vector>
/// Scales x by k.
double {name}(double x, int k) {{ if (k < 0) throw std::invalid_argument("k < 0"); return k * x; }}
std::string {name}_joined(const std::vector<double> &xs, std::string sep) {{
    std::string out;
    for (double x : xs) out += (out.empty() ? "" : sep) + std::to_string(x);
    return out;
}}
'''
WITH_A_CLASS = "struct NeedsPybind11 { int n = 0; };\n"


def _compiles_of(out, source: str) -> list[str]:
    """The compiler commands (said by -v) that compiled `source`."""
    return [line for line in out.stdout.splitlines() if line.startswith("$ ") and f"/{source} " in line]


def _answers(kernel, name: str) -> str:
    """What Python sees of the function `name`: results, errors, signature, docstring (its name as F)."""
    calls = ["F(2.0, 3)", "F(x=2, k=3)", "F(True, 2)", "F(2, -1)", "F('a', 1)", "F(1.0, 2**40)", "F(1.0)", "F(1.0, 2, 3)", "F(1.0, y=2)", "F(1.0, 2, k=3)",
             "G([1.0, 2.5], '-')", "G(numpy.arange(3.0), sep=',')", "G([1, 'a'], '-')", "G('ab', '-')", "G([1.0], 2)", "G([1.0])"]
    code = (
        "import inspect, numpy\n"
        "def _outcome(call):\n"
        "    try:\n"
        f"        return repr(eval(call, {{'F': {name}, 'G': {name}_joined, 'numpy': numpy}}))\n"
        "    except Exception as exc:\n"
        "        return f'{type(exc).__name__}: {exc}'\n"
        f"[_outcome(c) for c in {calls!r}] + [str(inspect.signature(f)) + (f.__doc__ or '') for f in ({name}, {name}_joined)]"
    )
    return str(kernel.eval(code)).replace(name, "F")


def test_a_new_cell_of_functions_over_standard_types_compiles_no_pybind11_code_and_behaves_alike(fresh_kernel):
    generic_name, pybind_name = f"gscale_{uuid.uuid4().hex[:8]}", f"pscale_{uuid.uuid4().hex[:8]}"
    out = fresh_kernel.run(PLAIN_NUMBERS.format(name=generic_name)).ok()
    bind = _compiles_of(out, "bind.cpp")
    assert len(bind) == 1 and "-include" not in bind[0] and "pybind11" not in bind[0], out.stdout
    generic = _answers(fresh_kernel, generic_name)
    assert "'6.0'" in generic and "ValueError: k < 0" in generic and "OverflowError" in generic and "1.000000-2.500000" in generic

    out = fresh_kernel.run(PLAIN_NUMBERS.format(name=pybind_name) + WITH_A_CLASS).ok()
    bind = _compiles_of(out, "bind.cpp")
    assert len(bind) == 1 and "-include" in bind[0], out.stdout  # a class: pybind11 binds the session
    assert _answers(fresh_kernel, pybind_name) == generic
    assert _answers(fresh_kernel, generic_name) == generic  # the earlier cell, now bound by pybind11


def test_a_generic_caller_others_can_write_is_refused(private_cache):
    """What every generic build links in is checked as the precompiled header is."""
    with RunningKernel() as kernel:
        kernel.run("%%cpp\nint first_of_a_private_cache(int a) { return a; }").ok()
        [caller] = (private_cache / "cpp-generic-caller").rglob("ipolyglot_generic_caller.o")
        caller.chmod(0o666)
        out = kernel.run("%%cpp\nint built_with_a_planted_caller(int a) { return a; }")
        assert out.status == "error" and out.error["ename"] == "CacheSecurityError", out.error_text or out.stdout
        assert "writable by other users" in out.error_text and str(caller) in out.error_text


def test_a_generic_build_is_rebuilt_where_it_travels_under_the_same_key(fresh_kernel, tmp_path):
    name = f"gcube_{uuid.uuid4().hex[:8]}"
    fresh_kernel.run(f"%%cpp\ndouble {name}(double x) {{ return x * x * x; }}\n").ok()
    fresh = tmp_path / "elsewhere"
    setup = f"import os; os.environ['IPOLYGLOT_CACHE_DIR'] = {str(fresh)!r}"
    fresh_kernel.run(
        "import multiprocessing\n"
        f"setup = {setup!r}\n"
        "with multiprocessing.get_context('spawn').Pool(1, exec, (setup,)) as elsewhere:\n"
        f"    assert elsewhere.map({name}, [2.0, 3.0]) == [8.0, 27.0]\n"
    ).ok()
    key = fresh_kernel.eval(f"{name}.travel_reference()[0]['key']")  # the build it names, in either mode
    assert (fresh / "artifacts" / key[:2] / key).is_dir(), "the receiving process rebuilt under another key"
    assert list((fresh / "cpp-generic-caller").rglob("ipolyglot_generic_caller.o")), "rebuilt without the generic caller"
