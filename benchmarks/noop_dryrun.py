"""A no-op `snakemake -n` after a finished run vs Snakemake's start-up on an empty Snakefile, same run.

Target: at most 1.5x. Usage: python benchmarks/noop_dryrun.py [WORKDIR]  (WORKDIR: a finished pipeline,
default: the repository; run `make demo` first). Prints the median of N runs of each.
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

RUNS = 5
SNAKEMAKE = str(Path(sys.executable).with_name("snakemake"))


def timed(cmd: list[str], cwd: Path) -> float:
    start = time.perf_counter()
    proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True)
    elapsed = time.perf_counter() - start
    if proc.returncode != 0:
        sys.exit(f"{' '.join(cmd)} failed in {cwd}:\n{proc.stderr[-2000:]}")
    return elapsed


def main() -> None:
    workdir = Path(sys.argv[1] if len(sys.argv) > 1 else Path(__file__).resolve().parents[1])
    probe = subprocess.run([SNAKEMAKE, "-n", "--cores", "1"], cwd=workdir, capture_output=True, text=True)
    if "Nothing to be done" not in probe.stdout + probe.stderr:
        sys.exit(f"{workdir}: the pipeline is not finished (a dry run would do work); run it first")
    with tempfile.TemporaryDirectory() as empty:
        Path(empty, "Snakefile").write_text("rule all:\n    input: []\n")
        baseline, ours = [], []
        for _ in range(RUNS):  # interleaved, so drift in machine load hits both alike
            baseline.append(timed([SNAKEMAKE, "-n", "--cores", "1"], Path(empty)))
            ours.append(timed([SNAKEMAKE, "-n", "--cores", "1"], workdir))
    b, o = statistics.median(baseline), statistics.median(ours)
    print(f"empty Snakefile start-up: median {b:.2f} s over {RUNS} runs")
    print(f"no-op dry run of mileage:  median {o:.2f} s over {RUNS} runs")
    print(f"ratio {o / b:.2f}x (target <= 1.5x): {'PASS' if o / b <= 1.5 else 'FAIL'}")


if __name__ == "__main__":
    main()
