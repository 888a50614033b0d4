"""The shared content-addressed build cache: keys, publication, concurrency, permissions."""

from __future__ import annotations

import multiprocessing
import os
import stat
from pathlib import Path

import pytest

from ipolyglot.kernel.core import cache as cache_mod
from ipolyglot.kernel.core.cache import BuildCache, CacheSecurityError, cache_key

BASE_PARTS = {
    "unit": "func F() int { return 1 }",
    "options": "-O2",
    "toolchain": "go|/usr/local/go/bin/go|go1.26.8",
    "templates": "sha256:abc",
}


def write_artifact(text: str):
    def build(directory: Path) -> None:
        (directory / "lib.txt").write_text(text)

    return build


def read_artifact(directory: Path) -> str:
    return (directory / "lib.txt").read_text()


@pytest.mark.parametrize("part", sorted(BASE_PARTS))
def test_key_changes_when_any_input_changes(part):
    changed = dict(BASE_PARTS, **{part: BASE_PARTS[part] + " "})
    assert cache_key(changed) != cache_key(BASE_PARTS)


def test_key_depends_on_python_abi_and_ipolyglot_version(monkeypatch):
    original = cache_key(BASE_PARTS)
    monkeypatch.setattr(cache_mod, "__version__", "999.0")
    assert cache_key(BASE_PARTS) != original
    monkeypatch.undo()
    monkeypatch.setattr(cache_mod, "python_abi_tag", lambda: "cpython-99|.so|linux")
    assert cache_key(BASE_PARTS) != original


def test_key_is_stable_and_unambiguous():
    assert cache_key(BASE_PARTS) == cache_key(dict(reversed(list(BASE_PARTS.items()))))
    # Moving text between two parts must not collide.
    assert cache_key({"a": "xy", "b": ""}) != cache_key({"a": "x", "b": "y"})


def test_build_then_hit(tmp_path):
    cache = BuildCache(tmp_path / "c")
    builds = []

    def build(directory):
        builds.append(directory)
        write_artifact("one")(directory)

    value, report = cache.get_or_build(BASE_PARTS, build, read_artifact)
    assert (value, report.cache_hit) == ("one", False)
    value, report = cache.get_or_build(BASE_PARTS, build, read_artifact)
    assert (value, report.cache_hit) == ("one", True)
    assert len(builds) == 1
    assert stat.S_IMODE((tmp_path / "c").stat().st_mode) == 0o700


def test_force_rebuilds(tmp_path):
    cache = BuildCache(tmp_path / "c")
    cache.get_or_build(BASE_PARTS, write_artifact("one"), read_artifact)
    value, report = cache.get_or_build(BASE_PARTS, write_artifact("two"), read_artifact, force=True)
    assert (value, report.cache_hit) == ("two", False)


def test_failed_build_publishes_nothing(tmp_path):
    cache = BuildCache(tmp_path / "c")

    def broken(directory):
        (directory / "lib.txt").write_text("half")
        raise RuntimeError("compiler said no")

    with pytest.raises(RuntimeError, match="compiler said no"):
        cache.get_or_build(BASE_PARTS, broken, read_artifact)
    assert not cache.artifact_dir(cache_key(BASE_PARTS)).exists()
    assert list((tmp_path / "c" / "tmp").iterdir()) == []


def test_corrupt_artifact_is_rebuilt_once(tmp_path):
    cache = BuildCache(tmp_path / "c")
    cache.get_or_build(BASE_PARTS, write_artifact("good"), read_artifact)
    artifact = cache.artifact_dir(cache_key(BASE_PARTS))
    (artifact / "lib.txt").write_text("garbage")

    def strict_load(directory):
        text = read_artifact(directory)
        if text != "good":
            raise OSError("invalid ELF header")
        return text

    value, report = cache.get_or_build(BASE_PARTS, write_artifact("good"), strict_load)
    assert value == "good" and report.rebuilt_after_load_failure and not report.cache_hit
    # A rebuild that still does not load is an error, not a loop.
    with pytest.raises(OSError):
        cache.get_or_build(BASE_PARTS, write_artifact("bad"), strict_load, force=True)


def test_refuses_group_writable_cache_dir(tmp_path):
    root = tmp_path / "c"
    root.mkdir()
    root.chmod(0o777)
    with pytest.raises(CacheSecurityError, match="writable by other users"):
        BuildCache(root).get_or_build(BASE_PARTS, write_artifact("x"), read_artifact)


def test_refuses_artifact_others_can_write(tmp_path):
    cache = BuildCache(tmp_path / "c")
    cache.get_or_build(BASE_PARTS, write_artifact("x"), read_artifact)
    artifact = cache.artifact_dir(cache_key(BASE_PARTS))
    (artifact / "lib.txt").chmod(0o666)
    loads = []
    with pytest.raises(CacheSecurityError):
        cache.get_or_build(BASE_PARTS, write_artifact("x"), lambda d: loads.append(d))
    assert loads == []


def test_refuses_symlinked_cache_dir(tmp_path):
    real = tmp_path / "real"
    real.mkdir(mode=0o700)
    (tmp_path / "link").symlink_to(real)
    with pytest.raises(CacheSecurityError, match="symbolic link"):
        BuildCache(tmp_path / "link").ensure_root()


def _race_worker(root: str, barrier, results) -> None:
    import time

    cache = BuildCache(root)

    def slow_build(directory):
        # Write in pieces with pauses so a reader would notice a half-written file.
        for chunk in range(5):
            with open(directory / "lib.txt", "a") as f:
                f.write(f"chunk{chunk};")
            time.sleep(0.05)

    barrier.wait()
    value, report = cache.get_or_build(BASE_PARTS, slow_build, read_artifact)
    results.put((os.getpid(), value, report.cache_hit))


def test_two_processes_publishing_one_key(tmp_path):
    ctx = multiprocessing.get_context("spawn")
    barrier = ctx.Barrier(2)
    results = ctx.Queue()
    workers = [ctx.Process(target=_race_worker, args=(str(tmp_path / "c"), barrier, results)) for _ in range(2)]
    for w in workers:
        w.start()
    for w in workers:
        w.join(60)
        assert w.exitcode == 0
    outcomes = [results.get(timeout=5) for _ in workers]
    whole = "".join(f"chunk{i};" for i in range(5))
    assert [value for _, value, _ in outcomes] == [whole, whole]
    # Exactly one of them built; the other waited on the lock and found it published.
    assert sorted(hit for _, _, hit in outcomes) == [False, True]


def test_clear_empties_and_reports_size(tmp_path):
    cache = BuildCache(tmp_path / "c")
    cache.get_or_build(BASE_PARTS, write_artifact("x" * 1000), read_artifact)
    assert cache.size_bytes() >= 1000
    assert cache.clear() >= 1000
    assert not cache.artifact_dir(cache_key(BASE_PARTS)).exists()
    assert stat.S_IMODE((tmp_path / "c").stat().st_mode) == 0o700


def test_default_dir_honours_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("IPOLYGLOT_CACHE_DIR", str(tmp_path / "x"))
    assert BuildCache().root == tmp_path / "x"
    monkeypatch.delenv("IPOLYGLOT_CACHE_DIR")
    assert "ipolyglot" in str(BuildCache().root)


# -- modes whatever the umask ----------------------------------------------------------
@pytest.fixture
def umask_002():
    """The umask of ordinary users on Ubuntu and Fedora, for the duration of a test."""
    old = os.umask(0o002)
    try:
        yield
    finally:
        os.umask(old)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.lstat().st_mode)


def test_everything_created_under_umask_002_is_private(tmp_path, umask_002):
    cache = BuildCache(tmp_path / "new" / "c")  # missing parents too

    def build(directory):
        (directory / "lib.txt").write_text("x")
        (directory / "sub").mkdir()
        (directory / "sub" / "data.json").write_text("{}")
        tool = directory / "tool"
        tool.write_text("#!/bin/sh\n")
        tool.chmod(0o775)  # what a linker or `go build` makes under this umask

    cache.get_or_build(BASE_PARTS, build, read_artifact)
    value, report = cache.get_or_build(BASE_PARTS, build, read_artifact)  # a hit passes the check
    assert (value, report.cache_hit) == ("x", True)
    artifact = cache.artifact_dir(cache_key(BASE_PARTS))
    dirs = [tmp_path / "new", cache.root, *(cache.root / sub for sub in ("artifacts", "locks", "tmp")), artifact.parent, artifact, artifact / "sub"]
    assert {str(d): mode(d) for d in dirs} == {str(d): 0o700 for d in dirs}
    files = {artifact / "lib.txt": 0o600, artifact / "sub" / "data.json": 0o600, artifact / "tool": 0o700, artifact / "ipolyglot-artifact.json": 0o600}
    files.update({lock: 0o600 for lock in (cache.root / "locks").iterdir()})
    assert {str(f): mode(f) for f in files} == {str(f): m for f, m in files.items()}


def test_scratch_files_are_private_and_checked(tmp_path, umask_002):
    from ipolyglot.kernel.core.cache import read_private, write_private

    scratch = BuildCache(tmp_path / "c").scratch_dir("some-state")
    assert mode(scratch) == 0o700
    path = scratch / "memo"
    assert read_private(path) is None
    write_private(path, "go1.26.8")
    assert mode(path) == 0o600 and read_private(path) == b"go1.26.8"
    assert [p.name for p in scratch.iterdir()] == ["memo"]  # no temporary file left behind
    path.chmod(0o664)
    with pytest.raises(CacheSecurityError, match="writable by other users"):
        read_private(path)
    path.unlink()
    (scratch / "elsewhere").write_text("planted")
    path.symlink_to(scratch / "elsewhere")
    with pytest.raises(CacheSecurityError, match="symbolic link"):
        read_private(path)


def test_a_writable_scratch_dir_is_refused(tmp_path):
    cache = BuildCache(tmp_path / "c")
    cache.scratch_dir("cpp-pch").chmod(0o777)
    with pytest.raises(CacheSecurityError, match="writable by other users"):
        cache.scratch_dir("cpp-pch")


# -- clear -------------------------------------------------------------------------------
def test_clear_of_a_cache_others_can_write_refuses_before_deleting_anything(tmp_path):
    cache = BuildCache(tmp_path / "c")
    cache.get_or_build(BASE_PARTS, write_artifact("x"), read_artifact)
    artifact = cache.artifact_dir(cache_key(BASE_PARTS))
    for target in (cache.root, cache.root / "artifacts"):
        target.chmod(0o777)
        with pytest.raises(CacheSecurityError, match="writable by other users"):
            cache.clear()
        assert read_artifact(artifact) == "x"
        target.chmod(0o700)


def test_clear_reports_exactly_what_it_freed(tmp_path):
    cache = BuildCache(tmp_path / "c")
    cache.get_or_build(BASE_PARTS, write_artifact("x" * 5000), read_artifact)
    (cache.scratch_dir("cpp-pch") / "ipolyglot_pch.hpp.gch").write_bytes(b"p" * 70000)
    before = cache.size_bytes()
    freed = cache.clear()
    assert freed == before - cache.size_bytes() >= 75000
    # What is left is the lock files, which other kernels may hold.
    left = [Path(d) / f for d, _, files in os.walk(cache.root) for f in files]
    assert left and all(path.parent == cache.root / "locks" for path in left)


# -- replaced artifacts ----------------------------------------------------------------
def test_a_replaced_artifact_leaves_nothing_behind(tmp_path):
    cache = BuildCache(tmp_path / "c")
    cache.get_or_build(BASE_PARTS, write_artifact("one"), read_artifact)
    cache.get_or_build(BASE_PARTS, write_artifact("two"), read_artifact, force=True)
    assert list((cache.root / "tmp").iterdir()) == []


def test_leftovers_in_tmp_are_removed_when_the_cache_is_next_opened(tmp_path):
    import time

    BuildCache(tmp_path / "c").ensure_root()
    tmp = tmp_path / "c" / "tmp"
    old = tmp / "old-0123456789ab-999-cafe"  # a replaced artifact whose removal was interrupted
    (old / "sub").mkdir(parents=True)
    (old / "sub" / "lib.so").write_bytes(b"\x7fELF")
    dead_build, live_build = tmp / "build-0123456789ab-dead", tmp / "build-0123456789ab-live"
    for staging in (dead_build, live_build):
        staging.mkdir()
        (staging / "user.o").write_bytes(b"o")
    day_ago = time.time() - 2 * 24 * 3600
    os.utime(dead_build, (day_ago, day_ago))

    BuildCache(tmp_path / "c").get_or_build(BASE_PARTS, write_artifact("x"), read_artifact)
    assert sorted(p.name for p in tmp.iterdir()) == [live_build.name]  # a build in progress is left alone


def test_a_loaded_library_keeps_working_after_its_artifact_is_replaced(tmp_path):
    """Why removing a replaced artifact at once is safe: the loaded library stays mapped."""
    import ctypes
    import shutil
    import subprocess

    compiler = shutil.which("cc") or shutil.which("gcc") or shutil.which("c++")
    assert compiler, "needs a C compiler: apt-get install gcc"
    cache = BuildCache(tmp_path / "c")

    def build(value):
        def compile_into(directory):
            (directory / "f.c").write_text(f"int answer(void) {{ return {value}; }}\n")
            subprocess.run([compiler, "-x", "c", "-shared", "-fPIC", "-o", str(directory / "f.so"), str(directory / "f.c")], check=True)
        return compile_into

    loaded, _ = cache.get_or_build(BASE_PARTS, build(41), lambda d: ctypes.CDLL(str(d / "f.so")))
    cache.get_or_build(BASE_PARTS, build(42), lambda d: d, force=True)
    assert list((cache.root / "tmp").iterdir()) == []  # the replaced artifact is gone...
    assert loaded.answer() == 41  # ...and the library loaded from it still runs
