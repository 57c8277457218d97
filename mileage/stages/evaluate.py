"""Evaluation steps: sample the starting model and the final checkpoint on the eval set (every sample kept, by
the experiment's engine), then summarise them (avg@k, pass@1..k, maj@k with bootstrap intervals)."""

from __future__ import annotations

import shutil
from pathlib import Path

from mileage.atomic import write_json
from mileage.engines import engine_of
from mileage.engines.contract import EVAL_SAMPLES_DIR, eval_sample_files
from mileage.evaluation.records import read_records, write_records
from mileage.evaluation.stats import summary_document
from mileage.stages.runner import run_spec


def evaluate(evaluation: dict, inputs: dict, out: str) -> None:
    """The engine's evaluation job, through the one runner; its samples (the eval-samples layout of its work
    directory, newest rollout) become `out`."""
    work = Path(out).with_name(f".{Path(out).name}.work")  # per output: base evals of several models share a folder
    # The work dir outlives a run: records of an earlier evaluation must not pass for this one's.
    shutil.rmtree(work / EVAL_SAMPLES_DIR, ignore_errors=True)
    which = evaluation["which"]
    run_spec(engine_of(evaluation).evaluation_job(evaluation, inputs, work), evaluation, work / "job.log",
             f"mileage-eval-{which}")
    files = eval_sample_files(work)
    if not files:
        raise RuntimeError(f"the {which} evaluation job wrote no per-sample records under {work / EVAL_SAMPLES_DIR}")
    if len({file.parent.name for file in files}) > 1:
        raise RuntimeError(f"the {which} evaluation job wrote records of several datasets under "
                           f"{work / EVAL_SAMPLES_DIR}: {', '.join(sorted({f.parent.name for f in files}))}")
    records = read_records(files[-1])
    write_records(out, records)
    mean = sum(r["reward"] for r in records) / max(len(records), 1)
    print(f"mileage: {which} evaluation: {len(records)} samples, avg@k {mean:.3f}")


def summarize(summary: dict, base: str, final: str, out: str, provenance: dict | None = None) -> None:
    """`provenance`: what ran (mileage.provenance), stored as the summary's `provenance`."""
    document = summary_document(
        summary["name"],
        summary["data"]["eval"]["name"],
        read_records(base),
        read_records(final),
        n_boot=summary["report"]["bootstrap_samples"],
        seed=summary["report"]["bootstrap_seed"],
        reward=summary["rollout"]["reward"],
    )
    if provenance is not None:
        document["provenance"] = provenance
    write_json(out, document)
    for side in ("base", "final"):
        metrics = document[side]["metrics"]
        avg = next(v for k, v in metrics.items() if k.startswith("avg@"))
        print(f"mileage: {side}: avg@{document[side]['k']} = {avg['value']:.3f} (95% CI {avg['ci95'][0]:.3f}-{avg['ci95'][1]:.3f})")
    for name, test in document.get("paired", {}).items():
        print(f"mileage: final - base {name}: {test['estimate']:+.3f} (95% CI {test['ci95'][0]:+.3f} to "
              f"{test['ci95'][1]:+.3f}, p = {test['p_value']:.3g})")
    if document.get("paired_refused"):
        print(f"mileage: no paired test: {document['paired_refused']}")
