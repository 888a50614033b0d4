"""A cached %%cpp cell loads without starting any compiler process."""

from __future__ import annotations

import shutil
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
