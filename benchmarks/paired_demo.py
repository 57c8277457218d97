"""The demo against a `train.lr: 0.001` variant, through the real pipeline: the paired comparison printed with its
estimate, interval and p-value, the demo's own figures (the README's), and what `snakemake --report` shows.

In a fresh copy of the repository (the files git would ship), a second --configfile adds
`demo-lr1e-3: {extends: demo, train: {lr: 0.001}}` (as benchmarks/noop_dryrun.py adds its variants); `snakemake`
runs everything to results/compare/paired.tsv, whose rows for the pair are printed, then each experiment's base and
final scores from its summary.json. `--report` also runs `snakemake --report report.html` on the finished
pipeline and checks that every figure and table in it has its own caption.

    .venv/bin/python benchmarks/paired_demo.py [--cores 2] [--report] [--keep] [--head] [--workdir DIR]

`--head` copies the committed HEAD (git archive) instead of the working tree. Either way the copy runs its own
`mileage` package (PYTHONPATH), not the editable install's.
`--workdir DIR` reuses a copy kept by an earlier `--keep` run (its pipeline is finished: nothing reruns).
The scores depend on the machine (CPU kind, thread count, library builds change the sampled tokens), so they are
machine-specific, as are the times; the statistics computed from them are not.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
from pipeline_helpers import copy_repo  # noqa: E402  (the files git would ship, as the e2e tests copy them)

SNAKEMAKE = str(Path(sys.executable).with_name("snakemake"))
VARIANT = "demo-lr1e-3"
# A phrase of each figure's and table's own caption (report/*.rst), by the file's name: the report must show each.
CAPTIONS = {
    "reward.png": "Rollout reward of",
    "eval.png": "In-training evaluation of",
    "loss.png": "Training statistics of",
    "response_length.png": "Mean response length of",
    "step_time.png": "Time per training step of",
    "pass_at_k.png": "Unbiased pass",  # docutils writes @ as &#64;
    "final_scores.png": "Final scores of",
    "report.html": "AIME-style report of experiment",
    "final_scores.html": "tables as one page",
    "final_scores.tsv": "Final scores of every experiment",
    "paired.tsv": "Paired differences between every two experiments",
}


def snakemake(repo: Path, configfiles: list[str], *args: str) -> float:
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ.get('PATH', '')}",
           "PYTHONPATH": str(repo)}  # ahead of the editable install, which points at the original tree
    start = time.perf_counter()
    proc = subprocess.run([SNAKEMAKE, *args, "--configfile", *configfiles], cwd=repo, env=env, capture_output=True,
                          text=True)
    elapsed = time.perf_counter() - start
    if proc.returncode != 0:
        sys.exit(f"snakemake {' '.join(args)} failed in {repo} after {elapsed:.0f} s:\n{proc.stdout[-3000:]}\n"
                 f"{proc.stderr[-5000:]}")
    return elapsed


def print_scores(repo: Path, name: str) -> None:
    summary = json.loads((repo / "results" / name / "report" / "summary.json").read_text())
    k = summary["k"]
    parts = []
    for metric in (f"avg@{k}", f"maj@{k}", f"pass@{k}", f"answer_avg@{k}", f"format@{k}"):
        base, final = (summary[side]["metrics"].get(metric, {}).get("value") for side in ("base", "final"))
        if base is not None and final is not None:
            parts.append(f"{metric} {base:.3f} -> {final:.3f}")
    print(f"{name}: {summary['final']['n_problems']} problems x {k} samples; " + ", ".join(parts))
    paired = summary.get("paired", {}).get(f"avg@{k}")
    if paired:
        print(f"  final - base avg@{k}: {paired['estimate']:+.3f}, 95% CI [{paired['ci95'][0]:+.3f}, "
              f"{paired['ci95'][1]:+.3f}], p = {paired['p_value']:.2g}, P(final > base) {paired['prob_improvement']:.2f}")


def report_entries(page: str) -> dict[str, dict]:
    """The report's result entries ({path: {"name", "caption", ...}}), read from the JSON Snakemake embeds."""
    decoder, entries = json.JSONDecoder(), {}
    for match in re.finditer(r'"(results/[^"]+)": \{"name"', page):
        entry, _ = decoder.raw_decode(page, match.end() - len('{"name"'))
        entries[match.group(1)] = entry
    return entries


def check_report(repo: Path, configfiles: list[str]) -> bool:
    """`snakemake --report report.html`; True when every figure and table in it carries its own caption."""
    elapsed = snakemake(repo, configfiles, "--report", "report.html")
    page = (repo / "report.html").read_text(errors="replace")
    entries = report_entries(page)
    print(f"snakemake --report report.html: {elapsed:.0f} s, {len(page) / 1e6:.1f} MB, {len(entries)} results")
    ok = bool(entries)
    for path, entry in sorted(entries.items()):
        phrase = CAPTIONS.get(Path(path).name)
        if phrase is None:  # e.g. metrics/rollout.tsv, marked by a rule this benchmark does not look at
            print(f"  (no caption expected) {path}")
            continue
        text = re.sub(r"<[^>]+>", "", entry.get("caption") or "")
        found = phrase in text and (Path(path).parent.name != "figures" or Path(path).parts[1] in text
                                    or path.startswith("results/compare/"))
        ok &= found
        print(f"  {'caption found  ' if found else 'CAPTION MISSING'} {path}: {text[:90]!r}...")
    return ok


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cores", type=int, default=2)
    parser.add_argument("--report", action="store_true", help="also run snakemake --report and check its captions")
    parser.add_argument("--keep", action="store_true", help="keep the copy (its results) for inspection")
    parser.add_argument("--head", action="store_true", help="copy the committed HEAD, not the working tree")
    parser.add_argument("--workdir", type=Path, help="a copy kept by an earlier --keep run")
    args = parser.parse_args()
    tmp = None
    if args.workdir:
        repo = args.workdir
    else:
        tmp = Path(tempfile.mkdtemp(prefix="mileage-paired-"))
        repo = tmp / "mileage"
        if args.head:
            repo.mkdir()
            archive = subprocess.run(["git", "archive", "HEAD"], cwd=ROOT, check=True, capture_output=True).stdout
            subprocess.run(["tar", "-x", "-C", str(repo)], input=archive, check=True)
        else:
            copy_repo(repo)
        variant = {"experiments": {VARIANT: {"extends": "demo", "train": {"lr": 0.001}}}}
        (repo / "variant.yaml").write_text(yaml.safe_dump(variant))
    configfiles = ["config/config.yaml", "variant.yaml"]
    ok = True
    try:
        elapsed = snakemake(repo, configfiles, "--cores", str(args.cores))
        print(f"pipeline (demo and {VARIANT}, from empty results): {elapsed / 60:.1f} min with --cores {args.cores} "
              f"on {os.cpu_count()} CPUs ({platform.processor() or platform.machine()}); machine-specific")
        with open(repo / "results" / "compare" / "paired.tsv", newline="") as handle:
            rows = [r for r in csv.DictReader(handle, delimiter="\t") if {r["a"], r["b"]} == {"demo", VARIANT}]
        if not rows:
            sys.exit(f"no paired row for demo and {VARIANT} in results/compare/paired.tsv (see compare.log)")
        print(f"paired: b - a over the same problems (results/compare/paired.tsv), a = {rows[0]['a']}, "
              f"b = {rows[0]['b']}, dataset {rows[0]['dataset']}:")
        for r in rows:
            print(f"  {r['metric']:>13}: {float(r['estimate']):+.3f}  95% CI [{float(r['ci95_low']):+.3f}, "
                  f"{float(r['ci95_high']):+.3f}]  p = {float(r['p_value']):.3g}  "
                  f"P(b > a) = {float(r['prob_improvement']):.2f}")
        for name in ("demo", VARIANT):
            print_scores(repo, name)
        print("(scores: machine-specific; a fresh clone elsewhere gave the demo avg@8 0.176 -> 0.629)")
        if args.report:
            ok = check_report(repo, configfiles)
    finally:
        if args.keep or args.workdir:
            print(f"kept {repo}")
        elif tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
