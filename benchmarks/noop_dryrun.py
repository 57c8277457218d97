"""A no-op `snakemake -n` after a finished run vs Snakemake's start-up on an empty Snakefile, same run.

Targets: at most 1.5x; and at most 2x with 40 experiments in the config (`--experiments 40`: 39 learning-rate
variants of the demo are added through a second --configfile, and the dry run asks for the finished demo's
outputs, so it is a no-op that still resolves, checks and lays out all 40 experiments).
Usage: python benchmarks/noop_dryrun.py [WORKDIR] [--experiments N]  (WORKDIR: a finished pipeline, default: the
repository; run `make demo` first). Prints the median of N runs of each. Machine-specific figures.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

RUNS = 5
SNAKEMAKE = str(Path(sys.executable).with_name("snakemake"))


def timed(cmd: list[str], cwd: Path) -> float:
    start = time.perf_counter()
    proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True)
    elapsed = time.perf_counter() - start
    if proc.returncode != 0:
        sys.exit(f"{' '.join(cmd)} failed in {cwd}:\n{proc.stderr[-2000:]}")
    return elapsed


DEMO_OUTPUTS = ["results/demo/report/report.md", "results/demo/report/figures", "results/demo/report/summary.json"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("workdir", nargs="?", default=str(Path(__file__).resolve().parents[1]))
    parser.add_argument("--experiments", type=int, default=1, help="experiments in the config (default 1: the demo)")
    args = parser.parse_args()
    workdir = Path(args.workdir)
    with tempfile.TemporaryDirectory() as tmp:
        ours_cmd = [SNAKEMAKE, "-n", "--cores", "1"]
        target = 1.5
        if args.experiments > 1:
            extra = Path(tmp, "variants.yaml")
            variants = {f"demo-lr{i}": {"extends": "demo", "train": {"lr": 1.0e-4 * i}} for i in range(1, args.experiments)}
            extra.write_text(yaml.safe_dump({"experiments": variants}))
            ours_cmd += [*DEMO_OUTPUTS, "--configfile", str(workdir / "config" / "config.yaml"), str(extra)]
            target = 2.0
        probe = subprocess.run(ours_cmd, cwd=workdir, capture_output=True, text=True)
        if "Nothing to be done" not in probe.stdout + probe.stderr:
            sys.exit(f"{workdir}: the demo is not finished (a dry run would do work); run it first\n"
                     f"{(probe.stdout + probe.stderr)[-2000:]}")
        empty = Path(tmp, "empty")
        empty.mkdir()
        Path(empty, "Snakefile").write_text("rule all:\n    input: []\n")
        baseline, ours = [], []
        for _ in range(RUNS):  # interleaved, so drift in machine load hits both alike
            baseline.append(timed([SNAKEMAKE, "-n", "--cores", "1"], empty))
            ours.append(timed(ours_cmd, workdir))
    b, o = statistics.median(baseline), statistics.median(ours)
    print(f"(this machine: {os.cpu_count()} CPUs; figures are machine-specific)")
    print(f"empty Snakefile start-up: median {b:.2f} s over {RUNS} runs")
    print(f"no-op dry run of mileage, {args.experiments} experiment(s): median {o:.2f} s over {RUNS} runs")
    print(f"ratio {o / b:.2f}x (target <= {target}x): {'PASS' if o / b <= target else 'FAIL'}")


if __name__ == "__main__":
    main()
