"""Small finished results written without training: what the figures, the comparison and the report read.

Per-sample evaluation records are drawn from a known per-problem skill and summarised by mileage's own code
(summary_document, aggregate_summaries), so the summaries have the shape the pipeline writes; metric tables are
smooth curves with noise. Used by the figure tests and by benchmarks/render_figures.py.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

STEP_KEYS = {"rollout": "rollout/step", "train": "train/step", "perf": "rollout/step", "eval": "eval/step"}


def write_table(path: Path, columns: list[str], rows: list[list[float | None]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = ["\t".join(columns)]
    lines += ["\t".join([str(int(row[0]))] + ["" if v is None else repr(float(v)) for v in row[1:]]) for row in rows]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def eval_records(rng: np.random.Generator, skill: np.ndarray, k: int, dataset: str | None = None,
                 rollout: int | None = None) -> list[dict]:
    """k samples of every problem, correct with the problem's probability `skill[i]`."""
    records = []
    for i, p in enumerate(skill):
        for j in range(k):
            correct = bool(rng.random() < p)
            answer = str(i + 2) if correct else str(i + 3)
            record = {"problem_id": f"p{i}", "sample_index": j, "label": str(i + 2), "reward": float(correct),
                      "response": f"\\boxed{{{answer}}}", "extracted_answer": answer}
            if dataset is not None:
                record.update(dataset=dataset, rollout=rollout)
            records.append(record)
    return records


def write_run(run_dir: Path, name: str, rng: np.random.Generator, *, dataset: str, base_skill: np.ndarray,
              gain: float, k: int, eval_k: int, num_rollout: int, eval_interval: int, config: dict) -> dict:
    """One run: metrics/*.tsv, train/eval_samples.jsonl and report/summary.json. Returns the summary."""
    from mileage.evaluation.stats import summary_document

    steps = np.arange(num_rollout)
    progress = 1 - np.exp(-steps / max(num_rollout / 3, 1))
    reward = 0.2 + gain * progress + rng.normal(0, 0.03, num_rollout)
    write_table(run_dir / "metrics" / "rollout.tsv", ["rollout/step", "rollout/raw_reward", "rollout/response_lengths"],
                [[s, r, 14 - 3 * p + rng.normal(0, 0.3)] for s, r, p in zip(steps, reward, progress)])
    write_table(run_dir / "metrics" / "train.tsv",
                ["train/step", "train/entropy_loss", "train/grad_norm", "train/kl_loss", "train/loss"],
                [[s, 1.2 - 0.5 * p, 0.4 + rng.normal(0, 0.05), 0.0, 1e-9] for s, p in zip(steps, progress)])
    write_table(run_dir / "metrics" / "perf.tsv",
                ["rollout/step", "perf/actor_train_time", "perf/rollout_time", "perf/step_time"],
                [[s, 1.0 + rng.normal(0, 0.05), 2.0 + rng.normal(0, 0.1), 3.3] for s in steps])
    evals, samples = [], []
    for step in [s for s in steps if s % eval_interval == 0 or s == num_rollout - 1]:
        p = 1 - np.exp(-step / max(num_rollout / 3, 1))
        records = eval_records(rng, np.clip(base_skill + gain * p, 0, 1), eval_k, dataset, int(step))
        samples += records
        evals.append([step, float(np.mean([r["reward"] for r in records]))])
    write_table(run_dir / "metrics" / "eval.tsv", ["eval/step", f"eval/{dataset}"], evals)
    (run_dir / "train").mkdir(parents=True, exist_ok=True)
    (run_dir / "train" / "eval_samples.jsonl").write_text("".join(json.dumps(r) + "\n" for r in samples))
    base = eval_records(np.random.default_rng(0), base_skill, k)  # one base model: the same draws for every seed
    final = eval_records(rng, np.clip(base_skill + gain, 0, 1), k)
    summary = summary_document(name, dataset, base, final, k=k, n_boot=200, seed=0)
    summary["provenance"] = {"config": config, "seeds": []}
    write_json(run_dir / "report" / "summary.json", summary)
    return summary


def write_json(path: Path, data: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=1), encoding="utf-8")


def make_experiment(root: Path, name: str, *, gain: float, seeds: list[int] | None = None, dataset: str = "arith",
                    n_problems: int = 16, k: int = 8, eval_k: int = 4, num_rollout: int = 12,
                    eval_interval: int = 4, lr: float = 0.0005, seed: int = 0) -> Path:
    """results/<name>/ of one experiment (with `seeds`: its seeds' runs and their aggregate, as the pipeline lays
    them out). Its resolved config has `train.lr` = `lr`."""
    config = {"data": {"train": {"name": "arith-train"}, "eval": {"name": dataset}}, "train": {"lr": lr},
              "eval": {"n_samples_per_prompt": eval_k}}
    base_skill = np.linspace(0.05, 0.6, n_problems)
    out = root / name
    run_kw = dict(dataset=dataset, base_skill=base_skill, k=k, eval_k=eval_k, num_rollout=num_rollout,
                  eval_interval=eval_interval, config=config)
    if not seeds:
        write_run(out, name, np.random.default_rng(seed), gain=gain, **run_kw)
        return out
    from mileage.evaluation.replicates import aggregate_summaries, mean_tables
    from mileage.metrics.tables import table_text
    from mileage.report.plots import read_metrics

    summaries = [write_run(out / "seeds" / str(s), f"{name}/seeds/{s}", np.random.default_rng(seed * 100 + s),
                           gain=gain * (1 + 0.15 * (i - 0.5)), **run_kw) for i, s in enumerate(seeds)]
    document = aggregate_summaries(name, seeds, summaries, n_resamples=200, seed=0)
    document["replicates"] = {str(s): f"seeds/{s}" for s in seeds}
    document.setdefault("provenance", {})["config"] = config
    write_json(out / "report" / "summary.json", document)
    tables = [read_metrics(out / "seeds" / str(s) / "metrics") for s in seeds]
    for kind in STEP_KEYS:
        mean = mean_tables([t[kind] for t in tables])
        steps = {int(row[0]): {c: v for c, v in zip(mean.columns[1:], row[1:]) if v == v}
                 for row in mean.itertuples(index=False)}
        (out / "metrics").mkdir(parents=True, exist_ok=True)
        (out / "metrics" / f"{kind}.tsv").write_text(table_text(kind, steps), encoding="utf-8")
    return out


def make_comparison(root: Path) -> dict[str, Path]:
    """A baseline with two seeds, a learning-rate variant, and a three-point learning-rate sweep: {name: dir}."""
    dirs = {"demo": make_experiment(root, "demo", gain=0.3, seeds=[1, 2], seed=1),
            "demo-lr": make_experiment(root, "demo-lr", gain=0.38, lr=0.001, seed=2)}
    for i, lr in enumerate((0.0001, 0.001, 0.01)):
        name = f"sweep~train.lr={lr!r}"
        dirs[name] = make_experiment(root, name, gain=(0.1, 0.35, 0.2)[i], lr=lr, seed=3 + i)
    return dirs


SWEEPS = {f"sweep~train.lr={lr!r}": {"of": "sweep", "values": {"train.lr": lr}} for lr in (0.0001, 0.001, 0.01)}
