"""`python -m benchmarks [--quick] [--json PATH]`: run every benchmark script, print one table.

Each script module exposes `run(quick: bool) -> list[Row]`. The table goes to
stdout (Markdown, as pasted into the README) and every figure to JSON.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

from .common import table

SCRIPTS = ["go_calls", "cpp_calls", "cross"]


def machine() -> dict:
    cpu = ""
    try:
        cpu = next(line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    go = subprocess.run(["go", "version"], capture_output=True, text=True).stdout.strip() if shutil_which("go") else "no go"
    return {"cpu": cpu, "cores": os.cpu_count(), "python": platform.python_version(), "os": platform.platform(), "go": go}


def shutil_which(name: str):
    import shutil

    return shutil.which(name)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks")
    parser.add_argument("--quick", action="store_true", help="few repetitions: checks the plumbing, not the figures")
    parser.add_argument("--json", default="benchmarks/results/latest.json", help="where to write every figure")
    parser.add_argument("--only", nargs="*", choices=SCRIPTS, help="run only these scripts")
    args = parser.parse_args(argv)
    rows, failures = [], []
    started = time.time()
    for name in args.only or SCRIPTS:
        try:
            module = importlib.import_module(f"benchmarks.{name}")
        except ImportError as exc:
            failures.append(f"{name}: not available ({exc})")
            continue
        print(f"running {name} ...", file=sys.stderr, flush=True)
        rows.extend(module.run(quick=args.quick))
    info = machine()
    print(f"Machine: {info['cpu']}, {info['cores']} cores, Python {info['python']}, {info['go']}")
    print()
    print(table(rows))
    for failure in failures:
        print(f"\nskipped {failure}")
    out = Path(args.json)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"machine": info, "quick": args.quick, "seconds": time.time() - started,
                               "rows": [r.as_dict() for r in rows]}, indent=1))
    print(f"\nwrote {out}")
    return 1 if failures and not rows else 0


if __name__ == "__main__":
    sys.exit(main())
