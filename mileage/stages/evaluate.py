"""Evaluation steps: sample the starting model and the final checkpoint on the eval set (every sample kept),
then summarise them (avg@k, pass@1..k, maj@k with bootstrap intervals)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from mileage.atomic import write_json
from mileage.evaluation.records import read_records, write_records
from mileage.evaluation.stats import summary_document
from mileage.stages.models import model_dir


def final_model(done_path: str) -> str:
    return json.loads(Path(done_path).read_text())["final_checkpoint"]


def evaluate(evaluation: dict, inputs: dict, out: str) -> None:
    settings = evaluation["settings"]
    if evaluation["engine"] == "local":
        from mileage.engines.local.sampling import evaluate_model

        model = model_dir(inputs["model"]) if evaluation["which"] == "base" else final_model(inputs["done"])
        records = evaluate_model(
            model,
            inputs["data"],
            out,
            n_samples=settings["n_samples_per_prompt"],
            max_new_tokens=settings["max_response_len"],
            temperature=settings["temperature"],
            top_p=settings["top_p"],
            seed=settings["seed"],
            reward=evaluation["reward"],
            apply_chat_template=evaluation["apply_chat_template"],
            device=evaluation["device"],
        )
        mean = sum(r["reward"] for r in records) / max(len(records), 1)
        print(f"mileage: {evaluation['which']} eval of {model}: {len(records)} samples, avg@k {mean:.3f}")
        return
    evaluate_with_miles(evaluation, inputs, out)


def evaluate_with_miles(evaluation: dict, inputs: dict, out: str) -> None:
    """A miles eval-only job (no --eval-only flag: --num-rollout 0 --eval-interval 1) on one checkpoint."""
    from mileage.engines.miles.launch import eval_entrypoint
    from mileage.engines.miles.runtime_env import runtime_env
    from mileage.launch.ray_cluster import ray_cluster
    from mileage.launch.ray_job import run_job
    from mileage.stages.train import cluster_spec, miles_paths

    work = Path(out).with_name(f".{Path(out).name}.work")  # per output: base evals of several models share a folder
    inputs = {**inputs, "train_data": inputs["data"], "eval_data": inputs["data"]}
    params = evaluation
    paths = miles_paths(params, inputs, work)
    checkpoint = None if evaluation["which"] == "base" else final_model(inputs["done"])
    entrypoint = eval_entrypoint(params, evaluation["card"], paths, checkpoint, evaluation["settings"])
    # The work dir outlives a run: records of an earlier evaluation must not pass for this one's.
    shutil.rmtree(work / "eval_samples", ignore_errors=True)
    with ray_cluster(cluster_spec(params, work)) as address:
        run_job(address, entrypoint, runtime_env(params, paths), work / "job.log", job_id_prefix=f"mileage-eval-{evaluation['which']}")
    files = sorted((work / "eval_samples" / evaluation["dataset"]).glob("rollout_*.jsonl"),
                   key=lambda f: int(f.stem.removeprefix("rollout_")))
    if not files:
        raise RuntimeError(f"the miles eval job wrote no per-sample records under {work / 'eval_samples'}")
    write_records(out, read_records(files[-1]))


def summarize(summary: dict, base: str, final: str, out: str) -> None:
    document = summary_document(
        summary["experiment"],
        summary["dataset"],
        read_records(base),
        read_records(final),
        n_boot=summary["n_boot"],
        seed=summary["seed"],
    )
    write_json(out, document)
    for side in ("base", "final"):
        metrics = document[side]["metrics"]
        avg = next(v for k, v in metrics.items() if k.startswith("avg@"))
        print(f"mileage: {side}: avg@{document[side]['k']} = {avg['value']:.3f} (95% CI {avg['ci95'][0]:.3f}-{avg['ci95'][1]:.3f})")
