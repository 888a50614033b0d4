"""`python -m ipolyglot.kernel install` into every location, and interrupt/restart from jupyter_client.

The installer runs as a real subprocess with HOME and the Jupyter data paths
pointed at temporary directories, so nothing outside the test's tmp_path is
touched; `--sys-prefix` runs in a throwaway virtual environment layered over
this one, so the development environment's own kernelspec is never rewritten.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import sysconfig
import venv
from pathlib import Path

import pytest

from conftest import RunningKernel

DEFAULT_NAME = "ipolyglot"
DEFAULT_DISPLAY_NAME = "Python 3 (Go + C++)"
KERNEL_ARGV_TAIL = ["-m", "ipolyglot.kernel", "-f", "{connection_file}"]


@pytest.fixture
def jupyter_env(tmp_path, monkeypatch) -> dict:
    """An environment whose user-level Jupyter directories live in tmp_path."""
    home = tmp_path / "home"
    home.mkdir()
    values = {
        "HOME": str(home),
        "JUPYTER_DATA_DIR": str(home / "jupyter-data"),
        "JUPYTER_CONFIG_DIR": str(home / "jupyter-config"),
        # Inside a virtual environment Jupyter lists the environment's kernelspecs
        # before the user's; turn that off so a --user install is what gets listed.
        "JUPYTER_PREFER_ENV_PATH": "0",
    }
    for key, value in values.items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("JUPYTER_PATH", raising=False)
    return dict(os.environ)


def install(python: str, *args: str, env: dict) -> subprocess.CompletedProcess:
    return subprocess.run([python, "-m", "ipolyglot.kernel", "install", *args], env=env, capture_output=True, text=True, timeout=120)


def kernelspec_list(python: str, env: dict) -> dict:
    """`jupyter kernelspec list --json` as seen by the given interpreter."""
    done = subprocess.run(
        [python, "-m", "jupyter_client.kernelspecapp", "list", "--json"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    return json.loads(done.stdout)["kernelspecs"]


def read_spec(spec_dir: Path) -> dict:
    return json.loads((spec_dir / "kernel.json").read_text())


def assert_spec(spec_dir: Path, python: str, display_name: str) -> None:
    spec = read_spec(spec_dir)
    assert spec["argv"] == [python, *KERNEL_ARGV_TAIL]
    assert spec["display_name"] == display_name
    assert spec["language"] == "python"
    assert spec["interrupt_mode"] == "signal"
    assert (spec_dir / "logo-64x64.png").is_file()


def test_user_install_with_defaults(jupyter_env):
    done = install(sys.executable, "--user", env=jupyter_env)
    assert done.returncode == 0, done.stderr

    spec_dir = Path(jupyter_env["JUPYTER_DATA_DIR"]) / "kernels" / DEFAULT_NAME
    assert_spec(spec_dir, sys.executable, DEFAULT_DISPLAY_NAME)
    assert str(spec_dir) in done.stdout

    listed = kernelspec_list(sys.executable, jupyter_env)
    assert Path(listed[DEFAULT_NAME]["resource_dir"]) == spec_dir
    assert listed[DEFAULT_NAME]["spec"]["display_name"] == DEFAULT_DISPLAY_NAME

    from jupyter_client.kernelspec import KernelSpecManager

    assert Path(KernelSpecManager().find_kernel_specs()[DEFAULT_NAME]) == spec_dir


def test_prefix_install_with_name_and_display_name(jupyter_env, tmp_path, monkeypatch):
    prefix = tmp_path / "prefix"
    done = install(sys.executable, "--prefix", str(prefix), "--name", "polyglot-probe", "--display-name", "Polyglot Probe", env=jupyter_env)
    assert done.returncode == 0, done.stderr

    spec_dir = prefix / "share" / "jupyter" / "kernels" / "polyglot-probe"
    assert_spec(spec_dir, sys.executable, "Polyglot Probe")

    # A custom prefix is found once it is on JUPYTER_PATH, as Jupyter documents.
    monkeypatch.setenv("JUPYTER_PATH", str(prefix / "share" / "jupyter"))
    listed = kernelspec_list(sys.executable, dict(os.environ))
    assert Path(listed["polyglot-probe"]["resource_dir"]) == spec_dir
    assert listed["polyglot-probe"]["spec"]["display_name"] == "Polyglot Probe"

    # The written kernelspec starts a working ipolyglot kernel.
    with RunningKernel(kernel_name="polyglot-probe") as running:
        running.kc.kernel_info()
        info = running.kc.get_shell_msg(timeout=30)["content"]
        assert info["implementation"] == "ipolyglot"
        assert info["language_info"]["name"] == "python"
        assert running.eval("__import__('sys').executable") == sys.executable
        assert "Usage: %polyglot" in running.run("%polyglot").ok().stdout


@pytest.fixture
def throwaway_venv(tmp_path) -> Path:
    """A virtual environment of its own (own sys.prefix) that imports this environment's packages."""
    root = tmp_path / "venv"
    venv.EnvBuilder(with_pip=False, symlinks=True).create(root)
    version = f"python{sys.version_info.major}.{sys.version_info.minor}"
    site_packages = root / "lib" / version / "site-packages"
    here = sysconfig.get_paths()["purelib"]
    (site_packages / "zz_parent_env.pth").write_text(f"import site; site.addsitedir({here!r})\n")
    return root


def test_sys_prefix_install_uses_the_installing_interpreter(jupyter_env, throwaway_venv):
    python = str(throwaway_venv / "bin" / "python")
    prefix = subprocess.run([python, "-c", "import sys; print(sys.prefix)"], capture_output=True, text=True, check=True).stdout.strip()
    assert Path(prefix) == throwaway_venv

    done = install(python, "--sys-prefix", env=jupyter_env)
    assert done.returncode == 0, done.stderr

    spec_dir = throwaway_venv / "share" / "jupyter" / "kernels" / DEFAULT_NAME
    assert_spec(spec_dir, python, DEFAULT_DISPLAY_NAME)
    listed = kernelspec_list(python, jupyter_env)
    assert Path(listed[DEFAULT_NAME]["resource_dir"]) == spec_dir


def test_install_locations_are_exclusive(jupyter_env, tmp_path):
    done = install(sys.executable, "--user", "--prefix", str(tmp_path / "p"), env=jupyter_env)
    assert done.returncode == 2
    assert "not allowed with argument" in done.stderr
    assert not (tmp_path / "p").exists()


# -- interrupt and restart, driven from jupyter_client -------------------------------------------


def test_interrupt_stops_a_running_cell(kernel):
    kernel.run("survivor = 'still here'").ok()
    kc = kernel.kc
    msg_id = kc.execute("import time; print('sleeping', flush=True); time.sleep(60)")
    while True:  # interrupt only once the cell is really running
        msg = kc.get_iopub_msg(timeout=60)
        if msg["parent_header"].get("msg_id") == msg_id and msg["msg_type"] == "stream":
            break

    kernel.km.interrupt_kernel()
    # Far sooner than the 60 s the cell would sleep.
    reply = kc.get_shell_msg(timeout=20)
    assert reply["parent_header"]["msg_id"] == msg_id
    assert reply["content"]["status"] == "error"
    assert reply["content"]["ename"] == "KeyboardInterrupt"

    # As any client must, wait for the cell to finish (idle) before sending the next one:
    # ipykernel aborts execute requests that reach it while it still handles the error.
    while True:
        msg = kc.get_iopub_msg(timeout=60)
        if msg["parent_header"].get("msg_id") == msg_id and msg["msg_type"] == "status" and msg["content"]["execution_state"] == "idle":
            break
    # The kernel lives on, with its namespace.
    assert kernel.eval("survivor") == "still here"


def test_restart_gives_a_fresh_kernel(kernel):
    kernel.run("left_over = 'before restart'").ok()
    pid_before = kernel.eval("__import__('os').getpid()")

    kernel.restart()

    assert kernel.eval("__import__('os').getpid()") != pid_before
    assert kernel.eval("'left_over' in globals()") is False
    # The restarted kernel is an ipolyglot kernel again, magics loaded.
    assert kernel.eval("sorted(name for name in ('go', 'cpp') if name in get_ipython().magics_manager.magics['cell'])") == ["cpp", "go"]
    assert "Usage: %polyglot" in kernel.run("%polyglot").ok().stdout
