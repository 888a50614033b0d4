"""Reading a cell with Go's own parser (runtime/inspector, built once per toolchain).

What a cell holds (imports, declarations, or statements) is cached by cell
text, so a cell seen before needs no process at all, not even the inspector.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
from pathlib import Path

from ipolyglot.kernel.core.cache import BuildCache
from ipolyglot.kernel.core.toolchains import MIN_GO_TEXT, ToolchainError

from .toolchain import GoTool

_SOURCE = Path(__file__).resolve().parent / "runtime" / "inspector" / "main.go"


def inspector_source() -> str:
    return _SOURCE.read_text()


INSPECTOR_HASH = hashlib.sha256(inspector_source().encode()).hexdigest()


def inspect(body: str, cache: BuildCache, go: GoTool) -> dict:
    """The inspector's JSON for a cell body (cached by text)."""

    def build(directory: Path) -> None:
        binary = inspector_binary(cache, go)
        done = subprocess.run([str(binary)], input=body, capture_output=True, text=True, timeout=60)
        if done.returncode != 0:
            raise RuntimeError(f"the Go cell inspector failed: {done.stderr.strip()}")
        (directory / "inspection.json").write_text(done.stdout)

    def load(directory: Path) -> dict:
        return json.loads((directory / "inspection.json").read_text())

    parts = {"kind": "go-inspection", "inspector": INSPECTOR_HASH, "cell": body}
    value, _ = cache.get_or_build(parts, build, load)
    return value


def inspector_binary(cache: BuildCache, go: GoTool) -> Path:
    def build(directory: Path) -> None:
        src = directory / "src"
        src.mkdir()
        (src / "main.go").write_text(inspector_source())
        (src / "go.mod").write_text(f"module ipolyglot.local/inspector\n\ngo {MIN_GO_TEXT}\n")
        tc = go.toolchain()
        done = subprocess.run(
            [tc.path, "build", "-trimpath", "-o", str(directory / "inspector"), "."],
            cwd=src, capture_output=True, text=True, env=go.env(), timeout=600,
        )
        if done.returncode != 0:
            raise ToolchainError(f"could not build the Go cell inspector with {tc.path}:\n{done.stderr.strip()}")

    def load(directory: Path) -> Path:
        binary = directory / "inspector"
        if not os.access(binary, os.X_OK):
            raise FileNotFoundError(binary)
        return binary

    parts = {"kind": "go-inspector", "source": INSPECTOR_HASH, "toolchain": go.identity()}
    value, _ = cache.get_or_build(parts, build, load)
    return value
