"""The content-addressed build cache shared by the Go and C++ backends.

An artifact is a directory named by the SHA-256 of everything that changes it.
Builds happen in a private temporary directory next to the cache and are
published with one atomic rename while holding a per-key file lock, so two
kernels building the same key at once both succeed and nobody ever sees a
half-written artifact. Nothing is loaded from a directory another user could
have written into: loading native code from it would run their code as us.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import stat
import sys
import sysconfig
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Mapping, TypeVar

import platformdirs
from filelock import FileLock

from ._version import __version__

T = TypeVar("T")


class CacheSecurityError(PermissionError):
    """The cache directory or an artifact is writable by someone other than us."""


class BuildFailed(RuntimeError):
    """A build raised; carries nothing of the temporary directory, which is removed."""


def default_cache_dir() -> Path:
    explicit = os.environ.get("IPOLYGLOT_CACHE_DIR")
    if explicit:
        return Path(explicit).expanduser()
    return Path(platformdirs.user_cache_dir("ipolyglot"))


def python_abi_tag() -> str:
    """Identifies the interpreter ABI an extension is built for."""
    return f"{sys.implementation.cache_tag}|{sysconfig.get_config_var('EXT_SUFFIX')}|{sysconfig.get_platform()}"


def cache_key(parts: Mapping[str, str | bytes]) -> str:
    """SHA-256 over the backend's parts plus what every artifact depends on.

    Parts are hashed as length-prefixed name/value pairs in sorted order so that
    no two different part sets can produce the same byte stream.
    """
    everything = dict(parts)
    everything.setdefault("ipolyglot", __version__)
    everything.setdefault("python-abi", python_abi_tag())
    digest = hashlib.sha256()
    for name in sorted(everything):
        value = everything[name]
        data = value if isinstance(value, bytes) else str(value).encode()
        for chunk in (name.encode(), data):
            digest.update(len(chunk).to_bytes(8, "little"))
            digest.update(chunk)
    return digest.hexdigest()


@dataclass
class BuildReport:
    """What happened when an artifact was requested (shown by -v and build feedback)."""

    key: str
    path: Path
    cache_hit: bool
    build_seconds: float = 0.0
    rebuilt_after_load_failure: bool = False


def _check_private(path: Path) -> None:
    """Refuse paths that are not ours or that group/others can write."""
    info = path.lstat()
    if stat.S_ISLNK(info.st_mode):
        raise CacheSecurityError(f"refusing to use {path}: it is a symbolic link")
    if hasattr(os, "getuid") and info.st_uid != os.getuid():
        raise CacheSecurityError(f"refusing to use {path}: it belongs to another user (uid {info.st_uid})")
    if info.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        raise CacheSecurityError(
            f"refusing to load from {path}: it is writable by other users "
            f"(mode {stat.filemode(info.st_mode)}); fix with `chmod go-w {path}`"
        )


class BuildCache:
    """A per-user, content-addressed store of build artifacts (one directory per key)."""

    def __init__(self, root: Path | str | None = None):
        self.root = Path(root) if root is not None else default_cache_dir()

    # -- layout -------------------------------------------------------------
    def ensure_root(self) -> Path:
        if not self.root.exists():
            old = os.umask(0o077)
            try:
                self.root.mkdir(mode=0o700, parents=True, exist_ok=True)
            finally:
                os.umask(old)
        _check_private(self.root)
        for sub in ("artifacts", "locks", "tmp"):
            (self.root / sub).mkdir(mode=0o700, exist_ok=True)
            _check_private(self.root / sub)
        return self.root

    def artifact_dir(self, key: str) -> Path:
        return self.root / "artifacts" / key[:2] / key

    def verify_artifact(self, path: Path) -> None:
        """Every file and directory of an artifact must be private to us."""
        _check_private(path.parent)
        for dirpath, dirnames, filenames in os.walk(path):
            for name in [".", *dirnames, *filenames]:
                _check_private(Path(dirpath) / name if name != "." else Path(dirpath))

    # -- the one operation backends use ---------------------------------------
    def get_or_build(
        self,
        parts: Mapping[str, str | bytes],
        build: Callable[[Path], None],
        load: Callable[[Path], T],
        *,
        force: bool = False,
        on_build_start: Callable[[], None] | None = None,
    ) -> tuple[T, BuildReport]:
        """Load the artifact for `parts`, building and publishing it first if needed.

        `build(dir)` writes the artifact into an empty private directory; `load(dir)`
        turns a published artifact into whatever the backend needs. A cached
        artifact that fails to load is rebuilt once.
        """
        self.ensure_root()
        key = cache_key(parts)
        final = self.artifact_dir(key)
        if not force and final.exists():
            self.verify_artifact(final)
            try:
                return load(final), BuildReport(key, final, cache_hit=True)
            except Exception:
                value, report = self._build_and_load(key, build, load, replace=True, on_build_start=on_build_start)
                report.rebuilt_after_load_failure = True
                return value, report
        return self._build_and_load(key, build, load, replace=force, on_build_start=on_build_start)

    def _build_and_load(self, key, build, load, *, replace: bool, on_build_start) -> tuple[T, BuildReport]:
        final = self.artifact_dir(key)
        with FileLock(str(self.root / "locks" / f"{key}.lock")):
            if not replace and final.exists():  # somebody published it while we waited
                self.verify_artifact(final)
                return load(final), BuildReport(key, final, cache_hit=True)
            if on_build_start:
                on_build_start()
            started = time.perf_counter()
            staging = Path(tempfile.mkdtemp(prefix=f"build-{key[:12]}-", dir=self.root / "tmp"))
            try:
                build(staging)
                self._publish(staging, final)
            finally:
                shutil.rmtree(staging, ignore_errors=True)
            elapsed = time.perf_counter() - started
            self.verify_artifact(final)
            return load(final), BuildReport(key, final, cache_hit=False, build_seconds=elapsed)

    def _publish(self, staging: Path, final: Path) -> None:
        final.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        (staging / "ipolyglot-artifact.json").write_text(json.dumps({"created": time.time(), "version": __version__}))
        if final.exists():
            # Move the old artifact aside first: a loaded shared library keeps its
            # mapping, and the rename below stays atomic for everyone else.
            graveyard = Path(tempfile.mkdtemp(prefix="old-", dir=self.root / "tmp"))
            os.rename(final, graveyard / "artifact")
        os.rename(staging, final)

    # -- maintenance -----------------------------------------------------------
    def size_bytes(self) -> int:
        total = 0
        if not self.root.exists():
            return 0
        for dirpath, _, filenames in os.walk(self.root):
            for name in filenames:
                try:
                    total += (Path(dirpath) / name).lstat().st_size
                except OSError:
                    pass
        return total

    def clear(self) -> int:
        """Remove every artifact; returns bytes freed. Already-loaded libraries stay mapped."""
        freed = self.size_bytes()
        for sub in ("artifacts", "tmp"):
            shutil.rmtree(self.root / sub, ignore_errors=True)
        if self.root.exists():
            self.ensure_root()
        return freed

    def scratch_dir(self, name: str) -> Path:
        """A private, persistent directory for backend state that is not an artifact
        (for example a shared Go build cache or a precompiled header workspace)."""
        self.ensure_root()
        path = self.root / name
        path.mkdir(mode=0o700, parents=True, exist_ok=True)
        _check_private(path)
        return path
