"""The real-kernel test harness.

`kernel` starts one real `ipolyglot` kernel per test module through
jupyter_client and executes cells over the wire; `kernel.run(code)` returns
every stream, display, result and error message the cell produced. All tests
of a run share one build cache directory, so a snippet compiled by one test is
a cache hit for the next.
"""

from __future__ import annotations

import os
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from jupyter_client.kernelspec import KernelSpecManager
from jupyter_client.manager import KernelManager

ROOT = Path(__file__).resolve().parent.parent

# One cache for the whole run (and for every xdist worker): artifacts are shared.
_RUN_CACHE = os.environ.get("IPOLYGLOT_TEST_CACHE_DIR") or os.path.join(tempfile.gettempdir(), f"ipolyglot-test-cache-{os.getuid()}")
os.environ.setdefault("IPOLYGLOT_CACHE_DIR", _RUN_CACHE)


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


@pytest.fixture(scope="module")
def kernel():
    with RunningKernel() as running:
        yield running


@pytest.fixture
def fresh_kernel():
    """A kernel of its own, for tests that change process-wide state."""
    with RunningKernel() as running:
        yield running


@pytest.fixture
def private_cache(tmp_path, monkeypatch):
    """An empty build cache of the test's own (for tests about the cache itself)."""
    path = tmp_path / "cache"
    monkeypatch.setenv("IPOLYGLOT_CACHE_DIR", str(path))
    return path
