"""The content-addressed build cache shared by the Go and C++ backends.

An artifact is a directory named by the SHA-256 of everything that changes it.
Builds happen in a private temporary directory next to the cache and are
published with one atomic rename while holding a per-key file lock, so two
kernels building the same key at once both succeed and nobody ever sees a
half-written artifact. Nothing is loaded from a directory another user could
have written into: loading native code from it would run their code as us.

Everything the cache creates gets an explicit, owner-only mode whatever the
process umask (ordinary users on Ubuntu and Fedora run with umask 002, which
would make files group-writable and so refused by the check above): directories
DIR_MODE, files FILE_MODE, files their builder made executable EXEC_MODE. An
artifact's tree is given these modes when it is published; what backends keep
outside artifacts (scratch space) is written with `write_private` and read
back with `read_private` or checked with `check_private` before it is used.
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

from .._version import __version__

T = TypeVar("T")

# Owner-only, like the cache root: the cache holds the user's cell source and the
# code built from it, and no one else needs to read, let alone write, any of it.
DIR_MODE = 0o700
FILE_MODE = 0o600
EXEC_MODE = 0o700

# Leftovers of a build whose process died (its staging directory) are removed
# once nobody can still be writing them.
STALE_STAGING_SECONDS = 24 * 3600


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


# -- modes and checks ------------------------------------------------------------
def _refuse_unless_private(path: Path, info: os.stat_result) -> None:
    if stat.S_ISLNK(info.st_mode):
        raise CacheSecurityError(f"refusing to use {path}: it is a symbolic link")
    if hasattr(os, "getuid") and info.st_uid != os.getuid():
        raise CacheSecurityError(f"refusing to use {path}: it belongs to another user (uid {info.st_uid})")
    if info.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        raise CacheSecurityError(
            f"refusing to load from {path}: it is writable by other users "
            f"(mode {stat.filemode(info.st_mode)}); if nobody else could have changed it, "
            f"fix it with `chmod -R go-w {path}`, or empty the cache with `%polyglot cache clear`"
        )


def check_private(*paths: Path) -> None:
    """Refuse paths that are symbolic links, not ours, or writable by group or others."""
    for path in paths:
        _refuse_unless_private(Path(path), os.lstat(path))


def check_tree(path: Path) -> None:
    """`check_private` for a directory and everything in it."""
    for dirpath, dirnames, filenames in os.walk(path):
        check_private(Path(dirpath), *(Path(dirpath) / name for name in [*dirnames, *filenames]))


def set_private_modes(path: Path) -> None:
    """Give a directory tree the cache's modes, whatever the umask it was written with.

    Symbolic links are left alone (chmod would follow them); `check_tree` refuses them.
    """
    for dirpath, dirnames, filenames in os.walk(path):
        os.chmod(dirpath, DIR_MODE)
        for name in filenames:
            child = os.path.join(dirpath, name)
            info = os.lstat(child)
            if stat.S_ISREG(info.st_mode):
                os.chmod(child, EXEC_MODE if info.st_mode & stat.S_IXUSR else FILE_MODE)


def private_dir(path: Path) -> Path:
    """Create `path` and any missing parents with DIR_MODE (not the umask's), then check it."""
    missing = []
    walk = Path(path)
    while not os.path.lexists(walk):
        missing.append(walk)
        walk = walk.parent
    for directory in reversed(missing):
        try:
            os.mkdir(directory, DIR_MODE)
        except FileExistsError:  # created meanwhile by another process: checked below
            continue
        os.chmod(directory, DIR_MODE)
    check_private(path)
    return Path(path)


def write_private(path: Path, data: str | bytes, mode: int = FILE_MODE) -> None:
    """Replace `path` atomically with a file of exactly `mode` holding `data`."""
    data = data.encode() if isinstance(data, str) else data
    fd, tmp = tempfile.mkstemp(prefix=f".{Path(path).name}.", suffix=".tmp", dir=Path(path).parent)
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def read_private(path: Path) -> bytes | None:
    """The bytes of a file the cache wrote, or None when there is none; refuses a file others can write."""
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
    except FileNotFoundError:
        return None
    except OSError:
        check_private(path)  # a symbolic link (ELOOP) is refused with a clear message
        raise
    with os.fdopen(fd, "rb") as f:
        _refuse_unless_private(Path(path), os.fstat(f.fileno()))
        return f.read()


def _file_sizes(path: Path) -> dict[str, int]:
    """The size of every file (and symbolic link) under a directory, by path."""
    sizes = {}
    for dirpath, dirnames, filenames in os.walk(path):
        for name in [*filenames, *(d for d in dirnames if os.path.islink(os.path.join(dirpath, d)))]:
            child = os.path.join(dirpath, name)
            try:
                sizes[child] = os.lstat(child).st_size
            except OSError:
                pass
    return sizes


def _remove(path: Path) -> int:
    """Delete a file or a directory tree; returns the bytes of the files it really removed."""
    try:
        info = os.lstat(path)
    except FileNotFoundError:
        return 0
    if not stat.S_ISDIR(info.st_mode):
        try:
            os.unlink(path)
        except OSError:
            return 0
        return info.st_size
    sizes = _file_sizes(path)
    shutil.rmtree(path, ignore_errors=True)
    return sum(size for child, size in sizes.items() if not os.path.lexists(child))


class BuildCache:
    """A per-user, content-addressed store of build artifacts (one directory per key)."""

    SUBDIRS = ("artifacts", "locks", "tmp")

    def __init__(self, root: Path | str | None = None):
        self.root = Path(root) if root is not None else default_cache_dir()
        self._swept = False

    # -- layout -------------------------------------------------------------
    def ensure_root(self) -> Path:
        private_dir(self.root)
        for sub in self.SUBDIRS:
            private_dir(self.root / sub)
        if not self._swept:  # once per process and cache: leftovers of earlier sessions
            self._swept = True
            self._sweep_tmp()
        return self.root

    def artifact_dir(self, key: str) -> Path:
        return self.root / "artifacts" / key[:2] / key

    def verify_artifact(self, path: Path) -> None:
        """Every file and directory of an artifact must be private to us."""
        check_private(path.parent)
        check_tree(path)

    def _lock(self, key: str) -> FileLock:
        return FileLock(str(self.root / "locks" / f"{key}.lock"), mode=FILE_MODE)

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
        with self._lock(key):
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
        private_dir(final.parent)
        (staging / "ipolyglot-artifact.json").write_text(json.dumps({"created": time.time(), "version": __version__}))
        # Compilers and `go build` create files with the umask's modes: make them ours alone.
        set_private_modes(staging)
        graveyard = None
        if final.exists():
            # Move the old artifact aside first, so the rename below stays atomic for
            # everyone else, then delete it: a library loaded from it keeps its mapping
            # (and an open file its data) after the unlink.
            graveyard = self.root / "tmp" / f"old-{final.name[:12]}-{os.getpid()}-{os.urandom(4).hex()}"
            os.rename(final, graveyard)
        os.rename(staging, final)
        if graveyard is not None:
            _remove(graveyard)

    # -- maintenance -----------------------------------------------------------
    def _sweep_tmp(self) -> None:
        """Remove what earlier processes left in tmp/: replaced artifacts (`old-*`,
        which a process that had loaded them keeps mapped) and the staging
        directories of builds whose process died long ago."""
        now = time.time()
        for entry in os.scandir(self.root / "tmp"):
            try:
                stale = entry.name.startswith("build-") and now - entry.stat(follow_symlinks=False).st_mtime > STALE_STAGING_SECONDS
            except OSError:
                continue
            if entry.name.startswith("old-") or stale:
                _remove(Path(entry.path))

    def size_bytes(self) -> int:
        return sum(_file_sizes(self.root).values())

    def clear(self) -> int:
        """Remove everything but the lock files (other kernels may hold one); returns
        the bytes actually freed. Libraries already loaded stay mapped.

        Refuses, before deleting anything, a cache that using it would refuse."""
        if not os.path.lexists(self.root):
            return 0
        check_private(self.root, *(self.root / sub for sub in self.SUBDIRS if os.path.lexists(self.root / sub)))
        freed = 0
        for entry in sorted(os.scandir(self.root), key=lambda e: e.name):
            if entry.name != "locks":
                freed += _remove(Path(entry.path))
        self.ensure_root()
        return freed

    def scratch_dir(self, name: str) -> Path:
        """A private, persistent directory for backend state that is not an artifact
        (for example a precompiled header workspace). What a backend writes there
        goes through `write_private`; what it reads, through `read_private` or
        `check_private` first."""
        self.ensure_root()
        return private_dir(self.root / name)

    def remembered(self, parts: Mapping[str, str], compute: Callable[[], dict]) -> dict:
        """A JSON value computed once per `parts` (a parse of a cell's text, say) and read back after.

        Both backends' parse results go through here: a cell run again, in this
        session or a later one, is not parsed again. A remembered value that
        cannot be read is computed anew.
        """
        path = self.scratch_dir("remembered") / (cache_key(parts) + ".json")
        known = read_private(path)
        if known is not None:
            try:
                return json.loads(known)
            except ValueError:
                pass
        value = compute()
        write_private(path, json.dumps(value))
        return value
