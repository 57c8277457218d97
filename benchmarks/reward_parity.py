"""Parity of mileage's `deepscaler` with miles' own deepscaler code on the graded pairs of
../shared/miles/reward-parity/ (agree/total per wrapper and per answer form), and the mean time per call.

Usage: .venv/bin/python benchmarks/reward_parity.py [FIXTURE]
"""

from __future__ import annotations

import collections
import json
import os
import sys
import time
from pathlib import Path

from mileage.rewards import deepscaler

DEFAULT = Path(__file__).resolve().parents[2] / "shared" / "miles" / "reward-parity" / "deepscaler-v0.1.0.jsonl"


def table(rows: list[dict], agree: list[bool], field: str) -> str:
    total, good = collections.Counter(), collections.Counter()
    for row, ok in zip(rows, agree):
        total[row[field]] += 1
        good[row[field]] += ok
    width = max(len(k) for k in total)
    return "\n".join(f"  {k:<{width}}  {good[k]:>5} / {total[k]:<5}" for k in sorted(total, key=lambda k: (good[k] - total[k], k)))


def main() -> None:
    path = Path(sys.argv[1]) if len(sys.argv) > 1 else DEFAULT
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    deepscaler("</think> \\boxed{\\sqrt{4}}", "\\sqrt{5}")  # start a symbolic worker outside the timing
    start = time.perf_counter()
    agree = [deepscaler(r["response"], r["label"]) == r["miles_deepscaler"] for r in rows]
    elapsed = time.perf_counter() - start
    print(f"parity: {sum(agree)} / {len(rows)} pairs agree ({100 * sum(agree) / len(rows):.2f}%)")
    for field in ("wrapper", "form"):
        print(f"by {field} (agree / total):\n{table(rows, agree, field)}")
    print(f"mean time per call: {1e3 * elapsed / len(rows):.3f} ms over {len(rows)} calls, first pass (no cache); "
          f"machine-specific: this machine, {os.cpu_count()} CPUs")


if __name__ == "__main__":
    main()
