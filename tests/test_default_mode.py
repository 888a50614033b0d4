"""Worker mode is where a session starts, in the kernel and in `%load_ext`; $IPOLYGLOT_MODE chooses otherwise."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from conftest import RunningKernel


def _environment_without_a_mode() -> dict[str, str]:
    return {name: value for name, value in os.environ.items() if name != "IPOLYGLOT_MODE"}


def _session_mode_in_plain_ipython(env: dict[str, str], tmp_path) -> str:
    script = tmp_path / "mode.ipy"
    script.write_text("%load_ext ipolyglot.kernel\n%polyglot mode\n")
    done = subprocess.run([sys.executable, "-m", "IPython", "--quick", "--no-banner", str(script)],
                          capture_output=True, text=True, timeout=120, env=env)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip().splitlines()[-1]


def test_a_kernel_starts_in_worker_mode(monkeypatch):
    monkeypatch.delenv("IPOLYGLOT_MODE", raising=False)  # RunningKernel passes this process's environment on
    with RunningKernel() as kernel:
        assert kernel.run("%polyglot mode").ok().stdout.strip() == "mode: worker"


@pytest.mark.parametrize("chosen,expected", [(None, "worker"), ("in-process", "in-process"), ("worker", "worker")])
def test_the_extension_starts_in_worker_mode_unless_the_environment_chooses(tmp_path, chosen, expected):
    env = _environment_without_a_mode()
    if chosen is not None:
        env["IPOLYGLOT_MODE"] = chosen
    assert _session_mode_in_plain_ipython(env, tmp_path) == f"mode: {expected}"
