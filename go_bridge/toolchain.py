"""Which `go` a cell is built with, identified without running it.

A cache hit must not start any `go` process, yet the cache key has to change
when the toolchain does. So the key uses the binary's stamp (its paths, size
and modification time: kernel/core/toolchains.binary_stamp) plus the version
line `go version` printed the first time this exact binary was seen
(remembered in a small file); the full toolchain (which runs `go version`) is
resolved only when something is built.
"""

from __future__ import annotations

import hashlib
import os
from typing import Callable

from ipolyglot.kernel.core import toolchains
from ipolyglot.kernel.core.cache import BuildCache, read_private, write_private
from ipolyglot.kernel.core.toolchains import Toolchain, ToolchainError

# Environment variables that change what `go build` produces.
BUILD_ENV = ("GOEXPERIMENT", "GOFLAGS", "GOARCH", "GOAMD64", "GOOS", "CGO_CFLAGS", "CGO_LDFLAGS", "CC", "GODEBUG")


class GoTool:
    def __init__(self, cache: BuildCache, resolve: Callable[[], Toolchain]):
        self.cache = cache
        self._resolve = resolve
        self._toolchain: Toolchain | None = None
        self._identity: str | None = None

    def toolchain(self) -> Toolchain:
        if self._toolchain is None:
            self._toolchain = self._resolve()
        return self._toolchain

    def _candidate(self) -> tuple[str, dict[str, str]]:
        found = toolchains.go_candidates()
        if not found:
            self.toolchain()  # raises the ToolchainError that says how to install Go
            raise ToolchainError("no Go toolchain found")
        path, _, env = found[0]
        return path, env

    def identity(self) -> str:
        """Changes whenever the go binary does; costs a stat, not a process."""
        if self._identity is None:
            path, _ = self._candidate()
            stamp = toolchains.binary_stamp(path)
            if stamp is None:  # gone since it was found: resolving says what is wrong
                self.toolchain()
                raise ToolchainError(f"the Go toolchain {path} is not there any more")
            memo = self.cache.scratch_dir("go-toolchains") / hashlib.sha256(stamp.encode()).hexdigest()
            known = read_private(memo)
            if known is not None:
                version = known.decode()
            else:
                version = self.toolchain().version
                write_private(memo, version)
            self._identity = f"{stamp}|{version}"
        return self._identity

    def version(self) -> tuple[int, int]:
        return toolchains.parse_go_version(self.identity().rsplit("|", 1)[-1])

    def env(self, extra: dict[str, str] | None = None) -> dict[str, str]:
        tc = self.toolchain()
        env = {**os.environ, **tc.env, "GOTOOLCHAIN": "local", "CGO_ENABLED": "1"}
        env.update(extra or {})
        return env

    @staticmethod
    def build_env_key() -> str:
        return "|".join(f"{name}={os.environ.get(name, '')}" for name in BUILD_ENV)
