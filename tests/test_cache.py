"""The shared content-addressed build cache: keys, publication, concurrency, permissions."""

from __future__ import annotations

import multiprocessing
import os
import stat
from pathlib import Path

import pytest

from ipolyglot.kernel import cache as cache_mod
from ipolyglot.kernel.cache import BuildCache, CacheSecurityError, cache_key

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
