"""Completion latency inside %%go and %%cpp cells, as a front end sees it.

`python -m benchmarks.completion [--requests N]`: starts an ipolyglot kernel,
defines one Go and one C++ cell, warms each completer up, then times N
complete_request round trips per case (the cell text changes every time, as
while typing) and prints p50 / p95 / max against the 300 ms p95 goal; Python
completion in the same kernel is the baseline.
"""

from __future__ import annotations

import argparse
import statistics
import time

from jupyter_client.manager import KernelManager

GOAL_P95_MS = 300.0
SETUP_CELLS = [
    '%%go\nimport "strings"\n\n// Shout says s loudly.\nfunc Shout(s string) string { return strings.ToUpper(s) + "!" }\n',
    "%%cpp\n#include <vector>\n\ndouble mean(const std::vector<double>& xs) { double s = 0; for (double x : xs) s += x; return s; }\n",
    "python_value = 1",
]
CASES = {  # name -> (cell text before the cursor, with {n} changing per request, a match it must offer)
    "go: strings.ToU": ('%%go\nimport "strings"\n\nfunc F{n}(s string) string {{ return strings.ToU', "ToUpper"),
    "go: earlier cell's Sho": ("%%go\nfunc G{n}() string {{ return Sho", "Shout"),
    "cpp: std::vec": ("%%cpp\n#include <vector>\nint x{n};\nstd::vec", "vector"),
    "cpp: earlier cell's mea": ("%%cpp\ndouble g{n}() {{ return mea", "mean"),
    "python (baseline): python_va": ("x{n} = python_va", "python_value"),
}


def complete(client, code: str) -> tuple[float, list[str]]:
    started = time.perf_counter()
    msg_id = client.complete(code, len(code))
    while True:
        msg = client.get_shell_msg(timeout=30)
        if msg["parent_header"].get("msg_id") == msg_id:
            return time.perf_counter() - started, msg["content"]["matches"]


def run(requests: int) -> list[dict]:
    manager = KernelManager(kernel_name="ipolyglot")
    manager.start_kernel()
    client = manager.client()
    client.start_channels()
    try:
        client.wait_for_ready(timeout=120)
        for cell in SETUP_CELLS:
            reply = client.execute_interactive(cell, timeout=600, output_hook=lambda msg: None)
            if reply["content"]["status"] != "ok":
                raise SystemExit(f"set-up cell failed: {cell.splitlines()[0]}")
        rows = []
        for name, (template, expected) in CASES.items():
            warm_up_deadline = time.monotonic() + 120
            while expected not in complete(client, template.format(n=0))[1] and time.monotonic() < warm_up_deadline:
                time.sleep(0.5)
            times, misses = [], 0
            for n in range(1, requests + 1):
                seconds, matches = complete(client, template.format(n=n))
                times.append(seconds * 1000)
                misses += expected not in matches
            times.sort()
            rows.append({
                "case": name, "p50": statistics.median(times),
                "p95": times[min(len(times) - 1, round(0.95 * (len(times) - 1)))], "max": times[-1], "misses": misses,
            })
        return rows
    finally:
        client.stop_channels()
        manager.shutdown_kernel(now=True)


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.completion")
    parser.add_argument("--requests", type=int, default=40, help="timed requests per case")
    args = parser.parse_args()
    rows = run(args.requests)
    print(f"| case | p50 ms | p95 ms | max ms | missed | p95 goal {GOAL_P95_MS:.0f} ms |")
    print("|---|---:|---:|---:|---:|---|")
    for row in rows:
        verdict = "met" if row["p95"] <= GOAL_P95_MS else "MISSED"
        print(f"| {row['case']} | {row['p50']:.0f} | {row['p95']:.0f} | {row['max']:.0f} | {row['misses']}/{args.requests} | {verdict} |")


if __name__ == "__main__":
    main()
