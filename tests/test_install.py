"""A plain `pip install` of the checkout into a fresh virtual environment.

One environment per module: `python -m venv`, then `pip install <checkout>`
(non-editable, pip's cache reused). The checkout is installed from a copy of
the files a clean clone would hold (tracked plus untracked-but-not-ignored),
so the build never writes into the working tree.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from ipolyglot.kernel import __version__

ROOT = Path(__file__).resolve().parent.parent
PACKAGE_FOLDERS = {"kernel": "ipolyglot/kernel", "go_bridge": "ipolyglot/go_bridge", "cpp_ext": "ipolyglot/cpp_ext"}
DATA_FOLDERS = {"templates", "include", "runtime", "resources"}
COPY_IGNORE = shutil.ignore_patterns(".git", ".venv", "build", "dist", "*.egg-info", "__pycache__", ".pytest_cache", ".hypothesis")


def checkout_files() -> list[str]:
    """The files of the checkout a clean clone would hold, relative to ROOT."""
    try:
        listed = subprocess.run(
            ["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"],
            cwd=ROOT,
            capture_output=True,
            check=True,
        ).stdout.decode()
    except (OSError, subprocess.CalledProcessError):
        return []
    return sorted(name for name in listed.split("\0") if name and (ROOT / name).is_file())


def copy_checkout(dest: Path) -> None:
    files = checkout_files()
    if not files:  # not a git checkout (e.g. an unpacked sdist): copy the tree minus build products
        shutil.copytree(ROOT, dest, ignore=COPY_IGNORE)
        return
    for name in files:
        target = dest / name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / name, target)


class FreshVenv:
    def __init__(self, root: Path, source: Path, env: dict, install_log: str):
        self.root = root
        self.source = source
        self.env = env
        self.install_log = install_log  # what `pip install -v` printed, the build backend's output included
        self.python = str(root / "bin" / "python")
        self.site_packages = Path(self.run_python("import sysconfig; print(sysconfig.get_paths()['purelib'])").stdout.strip())

    def run(self, *argv: str, check: bool = True, timeout: float = 300) -> subprocess.CompletedProcess:
        # Run from a neutral directory so the checkout is never importable by accident.
        return subprocess.run(argv, cwd=self.root, env=self.env, capture_output=True, text=True, check=check, timeout=timeout)

    def run_python(self, code: str, check: bool = True) -> subprocess.CompletedProcess:
        return self.run(self.python, "-c", code, check=check)


@pytest.fixture(scope="module")
def fresh_venv(tmp_path_factory):
    base = tmp_path_factory.mktemp("fresh-install")
    yield _install_fresh_venv(base)
    shutil.rmtree(base, ignore_errors=True)  # a venv with numpy and friends: hundreds of MB


def _install_fresh_venv(base: Path) -> FreshVenv:
    source = base / "checkout"
    copy_checkout(source)
    # Creating and installing uses the real environment (pip's configuration and cache)...
    install_env = {key: value for key, value in os.environ.items() if key not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV")}
    root = base / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(root)], env=install_env, check=True, timeout=300)
    installed = subprocess.run(
        [str(root / "bin" / "python"), "-m", "pip", "install", "--verbose", str(source)],
        env=install_env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert installed.returncode == 0, f"pip install failed:\n{installed.stdout}\n{installed.stderr}"
    # ...while everything run in the venv afterwards sees empty user-level Jupyter directories.
    home = base / "home"
    home.mkdir()
    run_env = {key: value for key, value in install_env.items() if not key.startswith("JUPYTER_")}
    run_env.update(HOME=str(home), JUPYTER_DATA_DIR=str(home / "jupyter-data"), JUPYTER_CONFIG_DIR=str(home / "jupyter-config"))
    return FreshVenv(root, source, run_env, installed.stdout + installed.stderr)


def test_the_install_prints_no_setuptools_package_warnings(fresh_venv):
    """Data folders are declared, so setuptools has nothing to warn about (it printed ~285 lines)."""
    assert "running build_py" in fresh_venv.install_log  # the log really holds the build's output
    for warning in ("Package would be ignored", "is absent from the `packages` configuration"):
        assert warning not in fresh_venv.install_log, warning


def test_kernelspec_is_listed_straight_after_install(fresh_venv):
    listed = json.loads(fresh_venv.run(str(fresh_venv.root / "bin" / "jupyter"), "kernelspec", "list", "--json").stdout)["kernelspecs"]
    assert "ipolyglot" in listed
    entry = listed["ipolyglot"]
    assert Path(entry["resource_dir"]) == fresh_venv.root / "share" / "jupyter" / "kernels" / "ipolyglot"
    # "python" is replaced by the interpreter of whichever Jupyter starts the kernel, as for ipykernel.
    assert entry["spec"]["argv"] == ["python", "-m", "ipolyglot.kernel", "-f", "{connection_file}"]
    assert entry["spec"]["display_name"] == "Python 3 (Go + C++)"
    assert entry["spec"]["language"] == "python"


def test_the_three_packages_import_and_nothing_else_is_top_level(fresh_venv):
    probe = textwrap.dedent(
        """
        import importlib.util, json
        import ipolyglot.kernel, ipolyglot.go_bridge, ipolyglot.cpp_ext
        print(json.dumps({
            "files": [m.__file__ for m in (ipolyglot.kernel, ipolyglot.go_bridge, ipolyglot.cpp_ext)],
            "top_level_kernel": importlib.util.find_spec("kernel") is not None,
        }))
        """
    )
    done = fresh_venv.run_python(probe, check=False)
    assert done.returncode == 0, done.stderr
    facts = json.loads(done.stdout)
    for path in facts["files"]:
        assert Path(path).is_relative_to(fresh_venv.site_packages), f"{path} was not imported from the fresh venv"
    assert facts["top_level_kernel"] is False

    # What the distribution installed into site-packages: the namespace and its own metadata, nothing more.
    top_level = {entry.name for entry in fresh_venv.site_packages.iterdir() if entry.name.lower().startswith(("ipolyglot", "kernel", "go_bridge", "cpp_ext"))}
    assert top_level == {"ipolyglot", f"ipolyglot-{__version__}.dist-info"}
    assert not (fresh_venv.site_packages / "ipolyglot" / "__init__.py").exists(), "ipolyglot must stay a namespace package"


def test_every_module_and_data_file_of_the_checkout_is_installed(fresh_venv):
    missing = []
    for folder, package_path in PACKAGE_FOLDERS.items():
        source_root = fresh_venv.source / folder
        for path in source_root.rglob("*"):
            relative = path.relative_to(source_root)
            if not path.is_file() or "__pycache__" in relative.parts:
                continue
            if path.suffix == ".py" or DATA_FOLDERS & set(relative.parts[:-1]):
                if not (fresh_venv.site_packages / package_path / relative).is_file():
                    missing.append(f"{folder}/{relative}")
    assert not missing, f"not installed by pip: {missing}"


KERNEL_PROBE = textwrap.dedent(
    """
    import json
    from jupyter_client.manager import start_new_kernel

    km, kc = start_new_kernel(kernel_name="ipolyglot", startup_timeout=120)
    try:
        outputs = []
        def keep(msg):
            if msg["msg_type"] == "stream":
                outputs.append(msg["content"]["text"])
            elif msg["msg_type"] == "error":
                outputs.append("\\n".join(msg["content"]["traceback"]))
        reply = kc.execute_interactive("%polyglot info", output_hook=keep, timeout=120)
        print(json.dumps({"status": reply["content"]["status"], "output": "".join(outputs)}))
    finally:
        kc.stop_channels()
        km.shutdown_kernel(now=True)
    """
)


def test_a_kernel_started_from_the_venv_runs_polyglot_info(fresh_venv):
    done = fresh_venv.run_python(KERNEL_PROBE, check=False)
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["status"] == "ok", result["output"]
    # `%polyglot info` prints aligned "label  value" rows; labels never hold two spaces in a row.
    rows = dict(re.split(r"\s{2,}", line.strip(), maxsplit=1) for line in result["output"].splitlines() if "  " in line.strip())
    # The kernel runs on the fresh venv's interpreter, with the checkout's version and the installed dependencies.
    assert f"({fresh_venv.python})" in rows["Python"]
    assert rows["ipolyglot"] == __version__
    for dist in ("pybind11", "cffi", "numpy", "ipykernel"):
        assert rows[dist] != "not installed", dist
    assert rows["cache"].startswith(os.environ["IPOLYGLOT_CACHE_DIR"])


def test_sys_prefix_install_rewrites_the_spec_with_the_venv_interpreter(fresh_venv):
    fresh_venv.run(fresh_venv.python, "-m", "ipolyglot.kernel", "install", "--sys-prefix")
    spec = json.loads((fresh_venv.root / "share" / "jupyter" / "kernels" / "ipolyglot" / "kernel.json").read_text())
    assert spec["argv"] == [fresh_venv.python, "-m", "ipolyglot.kernel", "-f", "{connection_file}"]
