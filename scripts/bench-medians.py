#!/usr/bin/env python3
"""Print the median of every criterion benchmark under target/criterion as a Markdown table.

Usage: scripts/bench-medians.py [FILTER_REGEX]
Reads target/criterion/**/new/estimates.json (written by `cargo bench`), so run the benches
first; the numbers are criterion's own median point estimates.
"""
import json
import pathlib
import re
import sys

root = pathlib.Path(__file__).resolve().parent.parent / "target" / "criterion"
pattern = re.compile(sys.argv[1]) if len(sys.argv) > 1 else None


def fmt(ns: float) -> str:
    if ns >= 1e6:
        return f"{ns / 1e6:.2f} ms"
    if ns >= 1e3:
        return f"{ns / 1e3:.2f} µs"
    return f"{ns:.1f} ns"


rows = []
for est in sorted(root.glob("**/new/estimates.json")):
    bench = est.parent.parent.relative_to(root).as_posix()
    bench_json = est.parent / "benchmark.json"
    if bench_json.exists():
        bench = json.loads(bench_json.read_text()).get("full_id", bench)
    if pattern and not pattern.search(bench):
        continue
    median = json.loads(est.read_text())["median"]["point_estimate"]
    rows.append((bench, median))

print("| benchmark | median |")
print("|---|---|")
for bench, median in rows:
    print(f"| `{bench}` | {fmt(median)} |")
