"""Does the demo really learn? Run the demo chain directly (no Snakemake, no Ray) and print avg@k.

    .venv/bin/python benchmarks/demo_learning.py [--experiment demo] [--seed N ...] [--out DIR]
        [--boxed-fraction F] [--set KEY=VALUE ...]

Builds the tiny model, the train/eval data, the warm start, runs GRPO through the engine's own code
path (`run_grpo`), evaluates the warm-started base and the final model like the evaluate rules, and
prints base/final avg@k, the gain, the share of boxed answers and the time of each stage. `--seed`
overrides the experiment's `seed` (GRPO's, as a replicate seed does in the pipeline; the demo model keeps
`model.demo.seed`; several give a robustness check). `--set train.lr=0.003` overrides any experiment value
(YAML-parsed) for a trial. The scores are machine-specific (README, "The demo"); the pipeline's own figures are
what benchmarks/paired_demo.py prints.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import time
from pathlib import Path

from mileage.config import load_experiment
from mileage.data.demo_problems import write_demo_dataset
from mileage.engines.local.grpo import run_grpo
from mileage.engines.local.sampling import evaluate_model
from mileage.engines.local.warm_start import warm_start
from mileage.models.tiny import build_demo_model

# The demo's warm_start.boxed_fraction, used while config/schema.yaml has no such key yet (the config wins).
DEMO_BOXED_FRACTION = 0.35


def run_chain(exp: dict, out: Path, seed: int) -> dict:
    times: dict[str, float] = {}
    t = time.perf_counter()
    # As the pipeline builds it (mileage.layout): the shape, and the model's own seed (not the RL seed).
    demo = exp["model"]["demo"]
    build_demo_model(out / "model", {k: v for k, v in demo.items() if k != "seed"}, seed=demo["seed"])
    times["model"] = time.perf_counter() - t
    paths = {}
    for split in ("train", "eval"):
        d = exp["data"][split]
        paths[split] = out / f"{split}.jsonl"
        write_demo_dataset(paths[split], name=d["name"], split=split, **d["demo"])
    ws, train_demo = exp["warm_start"], exp["data"]["train"]["demo"]
    t = time.perf_counter()
    warm_start(out / "model", out / "warm", n_examples=ws["n_examples"], epochs=ws["epochs"], lr=ws["lr"],
               batch_size=ws["batch_size"], seed=ws["seed"], max_operand=train_demo["max_operand"],
               operations=train_demo["operations"], device=exp["resources"]["device"],
               boxed_fraction=ws["boxed_fraction"])
    times["warm_start"] = time.perf_counter() - t
    spec = {
        "experiment": "demo", "model_path": str(out / "warm"), "train_data": str(paths["train"]),
        "eval_data": {"name": exp["data"]["eval"]["name"], "path": str(paths["eval"])},
        "run_dir": str(out / "run"), "seed": seed, "rollout_seed": exp["rollout_seed"],
        **{k: exp[k] for k in ("data", "rollout", "train", "eval", "resources")},
    }
    t = time.perf_counter()
    final = run_grpo(spec)
    times["grpo"] = time.perf_counter() - t
    scores = {}
    for which, model in (("base", out / "warm"), ("final", final)):
        cfg = exp[f"{which}_eval"]
        t = time.perf_counter()
        records = evaluate_model(
            model, paths["eval"], out / f"{which}.samples.jsonl", n_samples=cfg["n_samples_per_prompt"],
            max_new_tokens=cfg["max_response_len"], temperature=cfg["temperature"], top_p=cfg["top_p"],
            seed=cfg["seed"], reward=exp["rollout"]["reward"], apply_chat_template=exp["data"]["apply_chat_template"],
            device=exp["resources"]["device"],
        )
        times[f"{which}_eval"] = time.perf_counter() - t
        scores[which] = statistics.mean(r["reward"] for r in records)
        scores[f"{which}_boxed"] = statistics.mean("\\boxed{" in r["response"] for r in records)
    return {"scores": scores, "times": times}


def override(exp: dict, assignment: str) -> None:
    """Apply `a.b.c=value` (value parsed as YAML) to the experiment dict."""
    import yaml

    key, sep, value = assignment.partition("=")
    if not sep:
        raise SystemExit(f"--set {assignment!r}: expected KEY=VALUE")
    *parents, leaf = key.split(".")
    node = exp
    for part in parents:
        node = node.setdefault(part, {})
    node[leaf] = yaml.safe_load(value)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--experiment", default="demo")
    parser.add_argument("--config", default="config/config.yaml")
    parser.add_argument("--seed", type=int, nargs="*",
                        help="experiment seeds: GRPO's (default: the experiment's; the model keeps model.demo.seed)")
    parser.add_argument("--out", default="results/bench/demo_learning")
    parser.add_argument("--boxed-fraction", type=float,
                        help=f"warm_start.boxed_fraction (default: the config's, else {DEMO_BOXED_FRACTION})")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override an experiment value")
    args = parser.parse_args(argv)
    _, exp = load_experiment(args.experiment, args.config)
    if args.boxed_fraction is not None:
        exp["warm_start"]["boxed_fraction"] = args.boxed_fraction
    exp["warm_start"].setdefault("boxed_fraction", DEMO_BOXED_FRACTION)
    for assignment in args.set:
        override(exp, assignment)
    gains = []
    for seed in args.seed or [exp["seed"]]:
        out = Path(args.out) / f"seed{seed}"
        shutil.rmtree(out, ignore_errors=True)
        t = time.perf_counter()
        result = run_chain({**exp, "seed": seed}, out, seed)
        s = result["scores"]
        gains.append(s["final"] - s["base"])
        timing = " ".join(f"{k}={v:.1f}s" for k, v in result["times"].items())
        print(f"seed {seed}: base avg@k {s['base']:.3f} (boxed {s['base_boxed']:.2f}) final {s['final']:.3f} "
              f"(boxed {s['final_boxed']:.2f}) gain {gains[-1]:+.3f} total {time.perf_counter() - t:.1f}s ({timing})",
              flush=True)
    print(f"min gain {min(gains):+.3f} over {len(gains)} seed(s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
