"""`python -m benchmarks [--quick] [--only ...] [--readme]`: run the benchmark scripts, print one table.

Each script module exposes `run(quick: bool) -> list[Row]` and `BASELINES`
(what each baseline is). The table and the baselines' descriptions go to
stdout and to a Markdown file next to the JSON (benchmarks/results/latest.md);
`--readme` also puts them into README.md between the two marker lines below.
"""

from __future__ import annotations

import argparse
import datetime
import importlib
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from .common import Row, table

SCRIPTS = ["go_calls", "cpp_calls", "cross", "worker"]
README = Path(__file__).resolve().parent.parent / "README.md"
BEGIN_MARKER = "<!-- benchmarks:begin (python -m benchmarks --readme writes between these lines) -->"
END_MARKER = "<!-- benchmarks:end -->"


def machine() -> dict:
    cpu = ""
    try:
        with open("/proc/cpuinfo") as info:
            cpu = next(line.split(":", 1)[1].strip() for line in info if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    go = subprocess.run(["go", "version"], capture_output=True, text=True).stdout.strip() if shutil.which("go") else "no go"
    return {"cpu": cpu, "cores": os.cpu_count(), "python": platform.python_version(), "os": platform.platform(), "go": go}


def load_average() -> str:
    try:
        return " ".join(f"{x:.1f}" for x in os.getloadavg())
    except OSError:
        return "unknown"


def markdown(rows: list[Row], baselines: dict[str, str], info: dict, command: str, loads: tuple[str, str]) -> str:
    lines = [
        f"`{command}`, {datetime.date.today().isoformat()}. Machine: {info['cpu']}, {info['cores']} cores, "
        f"Python {info['python']}, {info['go']}; load average {loads[0]} at the start, {loads[1]} at the end.",
        "",
        "Each figure ran interleaved with its baseline in the same process (measured, baseline, measured, ...); "
        "the ratio column is the median of the per-pair ratios with their min and max. Time rows: measured / "
        "baseline, lower is better; `speed` rows: baseline time / measured time, higher is better.",
        "",
        table(rows),
        "",
        "Baselines:",
        "",
        *(f"- **{name}**: {text}" for name, text in baselines.items()),
    ]
    return "\n".join(lines) + "\n"


def splice_into_readme(text: str, readme: Path = README) -> bool:
    """Replace what is between the markers in README.md; False when the markers are missing."""
    content = readme.read_text()
    if BEGIN_MARKER not in content or END_MARKER not in content:
        return False
    before, rest = content.split(BEGIN_MARKER, 1)
    _, after = rest.split(END_MARKER, 1)
    readme.write_text(f"{before}{BEGIN_MARKER}\n{text}{END_MARKER}{after}")
    return True


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks")
    parser.add_argument("--quick", action="store_true", help="few repetitions: checks the plumbing, not the figures")
    parser.add_argument("--json", default="benchmarks/results/latest.json",
                        help="where to write every figure (the Markdown table goes next to it, as .md)")
    parser.add_argument("--only", nargs="*", choices=SCRIPTS, help="run only these scripts")
    parser.add_argument("--readme", action="store_true", help="also write the table into README.md between its markers")
    args = parser.parse_args(argv)
    command = "python -m benchmarks" + "".join(f" {a}" for a in (argv if argv is not None else sys.argv[1:]))
    # One build cache for every script (the magics' shell is shared): kept between runs, never the user's.
    os.environ.setdefault("IPOLYGLOT_CACHE_DIR", os.path.join(tempfile.gettempdir(), "ipolyglot-bench-cache"))
    rows, baselines, failures = [], {}, []
    started, load_at_start = time.time(), load_average()
    for name in args.only or SCRIPTS:
        try:
            module = importlib.import_module(f"benchmarks.{name}")
        except ImportError as exc:
            failures.append(f"{name}: not available ({exc})")
            continue
        print(f"running {name} ...", file=sys.stderr, flush=True)
        script_rows = module.run(quick=args.quick)
        print(table(script_rows), file=sys.stderr, flush=True)  # kept if a later script fails or hangs
        rows.extend(script_rows)
        baselines.update(getattr(module, "BASELINES", {}))
    info = machine()
    text = markdown(rows, baselines, info, command, (load_at_start, load_average()))
    print(text)
    for failure in failures:
        print(f"\nskipped {failure}")
    out = Path(args.json)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"machine": info, "quick": args.quick, "command": command, "seconds": time.time() - started,
                               "rows": [r.as_dict() for r in rows], "baselines": baselines}, indent=1))
    out.with_suffix(".md").write_text(text)
    print(f"wrote {out} and {out.with_suffix('.md')}")
    if args.readme:
        if splice_into_readme(text):
            print(f"updated {README}")
        else:
            print(f"README.md has no markers: add the lines\n{BEGIN_MARKER}\n{END_MARKER}")
            return 1
    return 1 if failures and not rows else 0


if __name__ == "__main__":
    sys.exit(main())
