"""Evaluation steps: sample the starting model and the final checkpoint on the eval set (every sample kept, by
the experiment's engine), then summarise them (avg@k, pass@1..k, maj@k with bootstrap intervals)."""

from __future__ import annotations

from mileage.atomic import write_json
from mileage.engines import engine_of
from mileage.evaluation.records import read_records
from mileage.evaluation.stats import summary_document


def evaluate(evaluation: dict, inputs: dict, out: str) -> None:
    engine_of(evaluation).evaluate(evaluation, inputs, out)


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
