"""The real-kernel test harness.

`kernel` starts one real `ipolyglot` kernel per test module through
jupyter_client and executes cells over the wire; `kernel.run(code)` returns
every stream, display, result and error message the cell produced. All tests
of a run share one build cache directory, so a snippet compiled by one test is
a cache hit for the next; it is the run's own, never the user's cache, and it
is removed when the run ends (see `_choose_run_cache`).
"""

from __future__ import annotations

import atexit
import os
import shutil
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from jupyter_client.kernelspec import KernelSpecManager
from jupyter_client.manager import KernelManager

ROOT = Path(__file__).resolve().parent.parent

_RUN_CACHE_VAR = "IPOLYGLOT_TEST_RUN_CACHE"  # how xdist workers learn the controller's choice
_RUN_PREFIX = f"ipolyglot-test-run-{os.getuid()}-"  # then the pid of the process that made it


def _choose_run_cache() -> tuple[str, bool]:
    """The build cache of this run, and whether this process made it (and removes it).

    One cache for the whole run: every test module and every xdist worker shares
    it, so a snippet (or a precompiled header) built once is a cache hit for the
    rest of the run. The first process to import this file (the xdist controller,
    or the only process) makes a fresh directory and hands it to the workers
    through the environment; it removes it when the run ends, and removes those
    of earlier runs whose process died. $IPOLYGLOT_CACHE_DIR (the user's cache) is
    never used. $IPOLYGLOT_TEST_CACHE_DIR names a directory to use instead,
    which is kept between runs (faster repeated runs; its owner prunes it).
    """
    inherited = os.environ.get(_RUN_CACHE_VAR)
    if inherited:
        return inherited, False
    explicit = os.environ.get("IPOLYGLOT_TEST_CACHE_DIR")
    if explicit:
        user_caches = {os.environ.get("IPOLYGLOT_CACHE_DIR"), _platform_cache_dir()}
        if os.path.realpath(explicit) in {os.path.realpath(p) for p in user_caches if p}:
            raise pytest.UsageError(f"$IPOLYGLOT_TEST_CACHE_DIR is the user's own ipolyglot cache ({explicit}); name a directory of the tests' own")
        chosen, owned = explicit, False
    else:
        _remove_abandoned_run_caches()
        chosen, owned = tempfile.mkdtemp(prefix=f"{_RUN_PREFIX}{os.getpid()}-"), True
    os.environ[_RUN_CACHE_VAR] = chosen
    return chosen, owned


def _platform_cache_dir() -> str:
    import platformdirs

    return platformdirs.user_cache_dir("ipolyglot")


def _remove_abandoned_run_caches() -> None:
    """Run caches whose run was killed before it could remove its own."""
    for entry in os.scandir(tempfile.gettempdir()):
        pid = entry.name[len(_RUN_PREFIX):].split("-", 1)[0]
        if not entry.name.startswith(_RUN_PREFIX) or not pid.isdigit() or entry.is_symlink():
            continue
        try:
            os.kill(int(pid), 0)
        except ProcessLookupError:
            shutil.rmtree(entry.path, ignore_errors=True)
        except OSError:
            pass  # alive (another user's process, or no permission to ask)


def _remove_run_cache() -> None:
    if _OWN_RUN_CACHE:
        shutil.rmtree(_RUN_CACHE, ignore_errors=True)


_RUN_CACHE, _OWN_RUN_CACHE = _choose_run_cache()
os.environ["IPOLYGLOT_CACHE_DIR"] = _RUN_CACHE
atexit.register(_remove_run_cache)  # also for scripts that import this file for RunningKernel


def pytest_unconfigure(config) -> None:
    # In the xdist controller this runs after every worker has finished.
    _remove_run_cache()


def _ensure_kernelspec() -> None:
    """Tests run against the `ipolyglot` kernelspec of this interpreter's environment."""
    specs = KernelSpecManager().find_kernel_specs()
    if "ipolyglot" not in specs:
        from ipolyglot.kernel.kernelspec import install

        install(prefix=sys.prefix)


@dataclass
class CellOutput:
    """Everything one executed cell sent back."""

    status: str
    stdout: str = ""
    stderr: str = ""
    results: list[dict] = field(default_factory=list)  # execute_result data bundles
    displays: list[dict] = field(default_factory=list)  # display_data data bundles
    error: dict | None = None  # ename, evalue, traceback
    messages: list[dict] = field(default_factory=list)  # the raw iopub messages, in order
    execution_count: int | None = None  # the execute_reply's: the number the front end shows

    @property
    def result(self) -> str | None:
        """text/plain of the last execute_result."""
        return self.results[-1].get("text/plain") if self.results else None

    @property
    def error_text(self) -> str:
        if not self.error:
            return ""
        import re

        return re.sub(r"\x1b\[[0-9;]*m", "", "\n".join(self.error["traceback"]))

    def ok(self) -> "CellOutput":
        assert self.status == "ok", f"cell failed: {self.error_text or self.stderr}"
        return self


class RunningKernel:
    """A real ipolyglot kernel reached over ZMQ, exactly as a notebook reaches it."""

    def __init__(self, env: dict | None = None, kernel_name: str = "ipolyglot", umask: int | None = None):
        _ensure_kernelspec()
        self.km = KernelManager(kernel_name=kernel_name)
        # `umask` is handed to Popen: the kernel process (and what it starts) runs with it.
        launch = {} if umask is None else {"umask": umask}
        self.km.start_kernel(env={**os.environ, **(env or {})}, **launch)
        self.kc = self.km.client()
        self.kc.start_channels()
        self.kc.wait_for_ready(timeout=120)

    def run(self, code: str, timeout: float = 300) -> CellOutput:
        out = CellOutput(status="?")

        def hook(msg):
            kind, content = msg["msg_type"], msg["content"]
            out.messages.append(msg)
            if kind == "stream":
                if content["name"] == "stdout":
                    out.stdout += content["text"]
                else:
                    out.stderr += content["text"]
            elif kind == "execute_result":
                out.results.append(content["data"])
            elif kind == "display_data":
                out.displays.append(content["data"])
            elif kind == "error":
                out.error = content

        reply = self.kc.execute_interactive(code, output_hook=hook, timeout=timeout, allow_stdin=False)
        out.status = reply["content"]["status"]
        out.execution_count = reply["content"].get("execution_count")
        return out

    def eval(self, expr: str):
        """The Python value of an expression in the kernel (via repr/literal_eval)."""
        import ast

        res = self.run(expr).ok()
        assert res.result is not None, f"{expr!r} produced no result; stdout={res.stdout!r}"
        return ast.literal_eval(res.result)

    def restart(self) -> None:
        self.km.restart_kernel(now=True)
        self.kc.wait_for_ready(timeout=120)

    def shutdown(self) -> None:
        self.kc.stop_channels()
        self.km.shutdown_kernel(now=True)

    def __enter__(self) -> "RunningKernel":
        return self

    def __exit__(self, *exc) -> None:
        self.shutdown()


def check(kernel: RunningKernel, code: str) -> None:
    """Run assertions inside the kernel; the cell fails with the assertion's text."""
    kernel.run(code).ok()


# ---- execution modes ---------------------------------------------------------------------
# Every kernel the fixtures start runs in one mode, set through $IPOLYGLOT_MODE: "worker" (the
# default) unless the test module says otherwise. A module that sets
#     KERNEL_MODES = ("worker", "in-process")
# runs each of its tests in both modes: its module-scoped kernel is started once per mode (the
# run's one build cache makes the second session's builds cache hits). `KERNEL_MODES =
# ("in-process",)` pins a module to one mode, and `@pytest.mark.kernel_modes("in-process")`
# pins one test of a both-modes module; either needs a comment saying why.
# `@pytest.mark.worker_mode_gap("what is missing")` marks a test that worker mode does not pass
# yet for want of a feature: it still runs there, as a strict xfail that names the gap (and
# fails the run once the feature lands, so the mark is removed).
MODES = ("worker", "in-process")


def pytest_configure(config) -> None:
    config.addinivalue_line("markers", "kernel_modes(*modes): the execution modes this test runs in")
    config.addinivalue_line("markers", "worker_mode_gap(reason): a feature worker mode lacks makes this test fail there")


def pytest_generate_tests(metafunc) -> None:
    if "kernel_mode" not in metafunc.fixturenames:
        return
    modes = tuple(getattr(metafunc.module, "KERNEL_MODES", ("worker",)))
    marker = metafunc.definition.get_closest_marker("kernel_modes")
    if marker is not None:
        modes = tuple(mode for mode in modes if mode in marker.args) or tuple(marker.args)
    unknown = set(modes) - set(MODES)  # checked before worker_mode_gap wraps a mode in pytest.param
    if unknown:
        raise pytest.UsageError(f"{metafunc.module.__name__}: unknown kernel modes {sorted(unknown)}")
    gap = metafunc.definition.get_closest_marker("worker_mode_gap")
    if gap is not None:
        xfail = pytest.mark.xfail(strict=True, reason=f"worker mode lacks: {gap.args[0]}")
        modes = tuple(pytest.param(mode, marks=xfail) if mode == "worker" else mode for mode in modes)
    if len(modes) > 1 or marker is not None or gap is not None or hasattr(metafunc.module, "KERNEL_MODES"):
        metafunc.parametrize("kernel_mode", modes, indirect=True, scope="module")


@pytest.fixture(scope="module")
def kernel_mode(request) -> str:
    """The execution mode of this module's kernels (see KERNEL_MODES above)."""
    return getattr(request, "param", "worker")


def mode_env(mode: str) -> dict[str, str]:
    """The environment that starts a kernel in `mode`."""
    return {"IPOLYGLOT_MODE": mode}


@pytest.fixture(scope="module")
def kernel(kernel_mode):
    with RunningKernel(env=mode_env(kernel_mode)) as running:
        yield running


@pytest.fixture
def fresh_kernel(kernel_mode):
    """A kernel of its own, for tests that change process-wide state."""
    with RunningKernel(env=mode_env(kernel_mode)) as running:
        yield running


@pytest.fixture
def private_cache(tmp_path, monkeypatch):
    """An empty build cache of the test's own (for tests about the cache itself)."""
    path = tmp_path / "cache"
    monkeypatch.setenv("IPOLYGLOT_CACHE_DIR", str(path))
    return path
