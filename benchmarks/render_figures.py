"""Render every figure kind mileage draws from small synthetic results, to look at them.

A baseline with two seeds, a learning-rate variant and a three-point learning-rate sweep (tests/synthetic_results.py,
summarised by mileage's own code) go through the same stage functions as the pipeline's plots and compare rules:
each experiment's figures (a run's and a seed aggregate's) and the comparison's (reward, learning curves, final
scores, forest plot, sweep). Prints where each PNG went.

    .venv/bin/python benchmarks/render_figures.py [--out /tmp/mileage-figures]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from synthetic_results import SWEEPS, make_comparison  # noqa: E402

from mileage.report.changes import changes_against  # noqa: E402
from mileage.stages.report import compare, figures  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path("/tmp/mileage-figures"))
    args = parser.parse_args()
    results = args.out / "results"
    start = time.perf_counter()
    dirs = make_comparison(results)
    configs = {name: json.loads((d / "report" / "summary.json").read_text())["provenance"]["config"]
               for name, d in dirs.items()}
    params = {"plots": {"formats": ["png"]}, "eval": {"n_samples_per_prompt": 4}}
    for i, (name, directory) in enumerate(dirs.items()):
        seeds = sorted((directory / "seeds").glob("*")) if (directory / "seeds").is_dir() else []
        metrics = [str(s / "metrics") for s in seeds] if seeds else str(directory / "metrics")
        samples = None if seeds else str(directory / "train" / "eval_samples.jsonl")
        figures(str(directory / "report" / "summary.json"), metrics, str(directory / "report" / "figures"), params,
                color_index=i, eval_samples=samples)
    compare({name: str(d) for name, d in dirs.items()}, str(results / "compare" / "final_scores.tsv"),
            str(results / "compare" / "figures"), {"formats": ["png"]}, {name: 4 for name in dirs},
            {name: name for name in dirs}, sweeps=SWEEPS, baseline="demo", changes=changes_against("demo", configs))
    print(f"rendered in {time.perf_counter() - start:.1f} s:")
    for png in sorted(results.rglob("*.png")):
        print(f"  {png}")


if __name__ == "__main__":
    main()
