"""The build cache whatever the umask, through real kernels (issue 10, item 3).

Ordinary users on Ubuntu and Fedora run with umask 002. A kernel started with
it must build Go and C++ cells, hit its cache the second time, and leave
nothing another user could write, so that a kernel with umask 022 loads the
same artifacts; while anything another user can write (an artifact file, the
Go runtime helper's source, the precompiled header) is still refused.

These tests change modes, so they use a cache of their own (cold builds: the
few cells here are small; Go's own GOCACHE stays warm), removed at the end.
"""

from __future__ import annotations

import os
import shutil
import stat
import tempfile
from pathlib import Path

import pytest
from conftest import RunningKernel

from ipolyglot.kernel.core.cache import BuildCache

GO_CELL = "%%go -v\nfunc UmaskAdd(a, b int) int { return a + b }"
# A class: bound by pybind11, so the build reads the precompiled header (functions of plain
# numbers alone would be bound by the generic caller; tests/test_cpp_cache.py plants that one).
CPP_CELL = "%%cpp -v\nstruct UmaskBox { int n = 0; };\nint umask_mul(int a, int b) { return a * b; }"


@pytest.fixture(scope="module")
def cache_root():
    root = Path(tempfile.mkdtemp(prefix="ipolyglot-umask-test-")) / "cache"
    yield root
    shutil.rmtree(root.parent, ignore_errors=True)


@pytest.fixture(scope="module")
def env(cache_root):
    return {"IPOLYGLOT_CACHE_DIR": str(cache_root)}


@pytest.fixture(scope="module")
def built(env, cache_root):
    """Go and C++ cells built by a kernel whose umask is 002, the second time from its cache."""
    with RunningKernel(env=env, umask=0o002) as kernel:
        kernel.run("import os; _umask = os.umask(0); os.umask(_umask)").ok()
        assert kernel.eval("_umask") == 0o002
        for attempt in ("cold", "from cache"):
            go, cpp = kernel.run(GO_CELL).ok(), kernel.run(CPP_CELL).ok()
            assert kernel.eval("UmaskAdd(2, 3), umask_mul(4, 5)") == (5, 20)
            if attempt == "cold":
                assert "cache: miss" in go.stdout and "cache: miss" in cpp.stdout, (go.stdout, cpp.stdout)
            else:
                assert "cache: hit" in go.stdout and "cache: hit" in cpp.stdout, (go.stdout, cpp.stdout)
            kernel.restart()  # the second round runs in a new process with the same umask
    return cache_root


@pytest.fixture(scope="module")
def kernel_022(env, built):
    with RunningKernel(env=env, umask=0o022) as kernel:
        yield kernel


def tree(root: Path) -> list[Path]:
    return [root, *sorted(root.rglob("*"))]


def one(root: Path, name: str) -> Path:
    found = sorted(root.rglob(name))
    assert len(found) == 1, f"expected one {name} under {root}: {found}"
    return found[0]


def test_nothing_a_umask_002_kernel_made_is_writable_by_others(built):
    modes = {str(p): stat.S_IMODE(p.lstat().st_mode) for p in tree(built)}
    assert any(path.endswith("libgocell.so") for path in modes) and any(path.endswith(".gch") for path in modes)
    wrong = {p: oct(m) for p, m in modes.items() if m not in ((0o700,) if os.path.isdir(p) else (0o600, 0o700))}
    assert not wrong, f"not owner-only: {wrong}"


def test_a_umask_022_kernel_loads_what_the_umask_002_kernel_built(kernel_022):
    go, cpp = kernel_022.run(GO_CELL).ok(), kernel_022.run(CPP_CELL).ok()
    assert "cache: hit" in go.stdout and "cache: hit" in cpp.stdout, (go.stdout, cpp.stdout)
    assert kernel_022.eval("UmaskAdd(20, 22), umask_mul(6, 7)") == (42, 42)


@pytest.mark.parametrize("where,name,cell", [
    ("artifacts", "libgocell.so", GO_CELL),  # published artifacts, loaded on a cache hit
    ("artifacts", "ipolyglot_cpp_*.so", CPP_CELL),
    # What a new build compiles in: the Go runtime helper's source and the precompiled header.
    ("artifacts", "call.go", "%%go\nfunc NotBuiltWithPlantedRuntime() int { return 1 }"),
    ("cpp-pch", "ipolyglot_pch.hpp", "%%cpp\nstruct NotBuiltWithPlantedPch { int a = 0; };"),
])
def test_a_file_others_can_write_is_refused(kernel_022, built, where, name, cell):
    planted = one(built / where, name)
    planted.chmod(0o666)
    try:
        out = kernel_022.run(cell)
        assert out.status == "error" and out.error["ename"] == "CacheSecurityError", out.error_text or out.stdout
        assert "writable by other users" in out.error_text and str(planted) in out.error_text, out.error_text
        assert "Traceback" not in out.error_text
    finally:
        planted.chmod(0o600)


def test_a_replaced_artifact_is_removed_and_leftovers_go_at_the_next_open(env, built, kernel_022):
    leftover = built / "tmp" / "old-0123456789ab-1-dead"  # a replacement whose process died before removing it
    (leftover / "src").mkdir(parents=True)
    (leftover / "libgocell.so").write_bytes(b"\x7fELF" + b"\0" * 1000)
    out = kernel_022.run(GO_CELL.replace("%%go -v", "%%go -f -v")).ok()
    assert "cache: miss" in out.stdout  # rebuilt and published over the old artifact...
    assert kernel_022.eval("UmaskAdd(1, 1)") == 2  # ...while the library loaded from it stays usable
    assert leftover.exists()  # this kernel's cache swept tmp/ when it first opened it, before the leftover
    assert not [p.name for p in (built / "tmp").iterdir() if p != leftover]
    with RunningKernel(env=env) as kernel:
        kernel.run(GO_CELL).ok()
    assert list((built / "tmp").iterdir()) == []


def test_cache_clear_refuses_a_root_others_can_write_then_reports_what_it_freed(kernel_022, built):
    """Runs last: it empties the module's cache."""
    from ipolyglot.kernel.magics import _human

    before = {str(p) for p in tree(built)}
    built.chmod(0o777)
    try:
        out = kernel_022.run("%polyglot cache clear")
        assert out.status == "error" and out.error["ename"] == "CacheSecurityError", out.error_text or out.stdout
        assert "writable by other users" in out.error_text
        assert {str(p) for p in tree(built)} == before  # refused before deleting anything
    finally:
        built.chmod(0o700)

    cache = BuildCache(built)
    size = cache.size_bytes()
    gch = one(built / "cpp-pch", "*.gch").stat().st_size
    out = kernel_022.run("%polyglot cache clear").ok().stdout
    freed = size - cache.size_bytes()
    assert freed > gch > 1_000_000  # the precompiled header is removed, and counted
    assert f"({_human(freed)} freed)" in out, out
    assert not list((built / "artifacts").iterdir()) and not (built / "cpp-pch").exists()
