"""Two demo runs with the same seed give byte-identical rollout, train and eval TSVs (perf.tsv holds timings).

Usage: python benchmarks/demo_reproducibility.py   (two full demo runs in scratch copies: ~2x the demo time)
"""

from __future__ import annotations

import filecmp
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from pipeline_helpers import copy_repo, snakemake  # noqa: E402

COMPARED = ["metrics/rollout.tsv", "metrics/train.tsv", "metrics/eval.tsv", "eval/base.samples.jsonl",
            "eval/final.samples.jsonl", "report/summary.json"]


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        runs = []
        for i in range(2):
            repo = copy_repo(Path(tmp) / f"run{i}")
            snakemake(repo, "--resources", "gpu=1", timeout=1800)
            runs.append(repo / "results" / "demo")
        same = True
        for rel in COMPARED:
            equal = filecmp.cmp(runs[0] / rel, runs[1] / rel, shallow=False)
            same &= equal
            print(f"{rel}: {'identical' if equal else 'DIFFERENT'}")
        print("PASS: byte-identical" if same else "FAIL: the runs differ")
        sys.exit(0 if same else 1)


if __name__ == "__main__":
    main()
