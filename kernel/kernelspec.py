"""Installing the `ipolyglot` kernelspec (python -m ipolyglot.kernel install ...)."""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
from pathlib import Path

from jupyter_client.kernelspec import KernelSpecManager

KERNEL_NAME = "ipolyglot"
DISPLAY_NAME = "Python 3 (Go + C++)"
RESOURCES = Path(__file__).parent / "resources"


def spec_dict(display_name: str = DISPLAY_NAME, python: str | None = None) -> dict:
    return {
        "argv": [python or sys.executable, "-m", "ipolyglot.kernel", "-f", "{connection_file}"],
        "display_name": display_name,
        "language": "python",
        "interrupt_mode": "signal",
        "metadata": {"debugger": True},
    }


def install(
    *,
    user: bool = False,
    prefix: str | None = None,
    name: str = KERNEL_NAME,
    display_name: str = DISPLAY_NAME,
) -> str:
    """Write the kernelspec and return the directory it was installed into."""
    with tempfile.TemporaryDirectory() as tmp:
        staging = Path(tmp) / name
        staging.mkdir()
        (staging / "kernel.json").write_text(json.dumps(spec_dict(display_name), indent=1) + "\n")
        for logo in RESOURCES.glob("logo-*.png"):
            shutil.copy(logo, staging / logo.name)
        return KernelSpecManager().install_kernel_spec(str(staging), name, user=user, prefix=prefix)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ipolyglot.kernel install", description="Install the ipolyglot kernelspec.")
    where = parser.add_mutually_exclusive_group()
    where.add_argument("--user", action="store_true", help="install for the current user")
    where.add_argument("--sys-prefix", action="store_true", help=f"install into sys.prefix ({sys.prefix})")
    where.add_argument("--prefix", metavar="P", help="install under the given prefix")
    parser.add_argument("--name", default=KERNEL_NAME, help=f"kernelspec name (default {KERNEL_NAME})")
    parser.add_argument("--display-name", default=DISPLAY_NAME, help=f"display name (default {DISPLAY_NAME!r})")
    args = parser.parse_args(argv)
    prefix = sys.prefix if args.sys_prefix else args.prefix
    path = install(user=args.user, prefix=prefix, name=args.name, display_name=args.display_name)
    print(f"Installed kernelspec {args.name} in {path}")
    return 0
