"""Where each artifact lives, and which shared cache entries an experiment needs.

Downloads, conversions, demo models and datasets are cached under `<results>/cache/` by what determines their
content (repo + revision, or a hash of the builder's parameters), so experiments share them and an edit that
does not change them never makes them stale. The Snakemake rules ask this module for paths; the keys it
makes are wildcards the rules look up again here.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from mileage.config import fingerprint, load_yaml
from mileage.models.cards import config_checks

KNOWN_DATASET_FILES = {
    "zhuzilin/dapo-math-17k": "dapo-math-17k.jsonl",
    "zhuzilin/aime-2024": "aime-2024.jsonl",
}


def cache_relative(path: str) -> str:
    """A path as its place inside the results' cache (`cache/warm-models/warm-<hash>`), so that a key or an
    identity made of input paths stays the same when `results_dir` moves; any other path as given (the user's
    own model or data: where it lives is all that names it)."""
    parts = Path(path).parts
    if "cache" not in parts:
        return str(path)
    i = len(parts) - 1 - parts[::-1].index("cache")
    return "/".join(parts[i:])


def repo_slug(repo: str) -> str:
    return repo.replace("/", "--")


@dataclass
class Layout:
    """Paths for one config; `cache` collects the parameters of every shared artifact by key."""

    results: str
    base_dir: Path = Path(".")
    demo_models: dict = field(default_factory=dict)
    warm_models: dict = field(default_factory=dict)
    demo_data: dict = field(default_factory=dict)
    file_data: dict = field(default_factory=dict)
    hf_data: dict = field(default_factory=dict)
    hf_models: dict = field(default_factory=dict)
    base_evals: dict = field(default_factory=dict)

    # ---- per experiment -------------------------------------------------------------------------
    def exp(self, name: str, *parts: str) -> str:
        return "/".join([self.results, name, *parts])

    def card(self, exp: dict) -> dict | None:
        if exp["model"]["source"] != "hf" or not exp["model"]["card"]:
            return None
        return load_yaml(self.base_dir / "config" / "models" / f"{exp['model']['card']}.yaml", "model card")

    # ---- datasets ---------------------------------------------------------------------------------
    def dataset(self, exp: dict, split: str) -> str:
        """Path of the normalised JSONL for data.train / data.eval, registering its producer."""
        data = exp["data"][split]
        if data["source"] == "file":  # checked and normalised once, so training reads only clean rows
            params = {"path": data["path"], "name": data["name"], "limit": data["limit"]}
            key = f"file-{fingerprint(params)}"
            self.file_data[key] = params
            return f"{self.results}/cache/file-data/{key}.jsonl"
        if data["source"] == "demo":
            params = {"name": data["name"], "split": split, "limit": data["limit"], **data["demo"]}
            key = f"demo-{fingerprint(params)}"
            self.demo_data[key] = params
            return f"{self.results}/cache/demo-data/{key}.jsonl"
        repo, rev = data["repo"], data["revision"] or "main"
        filename = data["file"] or KNOWN_DATASET_FILES.get(repo)
        params = {"repo": repo, "revision": rev, "file": filename, "limit": data["limit"], "name": data["name"]}
        suffix = "" if data["limit"] is None else f"-{data['limit']}"
        key = f"{repo_slug(repo)}/{rev}/{data['name']}{suffix}"
        self.hf_data[key] = params
        return f"{self.results}/cache/hf-data/{key}.jsonl"

    # ---- models -------------------------------------------------------------------------------------
    def demo_model(self, exp: dict) -> str:
        # Keyed by the model's own seed, not the RL `seed`: replicate seeds train from one model.
        demo = exp["model"]["demo"]
        params = {"shape": {k: v for k, v in demo.items() if k != "seed"}, "seed": demo["seed"]}
        key = f"demo-{fingerprint(params)}"
        self.demo_models[key] = params
        return f"{self.results}/cache/demo-models/{key}"

    def start_model(self, exp: dict) -> str:
        """The HF-format model RL starts from (after the warm start, for the demo): a directory or a marker."""
        source = exp["model"]["source"]
        if source == "path":
            return exp["model"]["path"]
        if source == "hf":
            return self.hf_model_marker(exp)
        base = self.demo_model(exp)
        if not exp["warm_start"]["enabled"]:
            return base
        data = exp["data"]["train"]["demo"] if exp["data"]["train"]["source"] == "demo" else {}
        params = {
            "base": base,
            **exp["warm_start"],
            "max_operand": data.get("max_operand", 9),
            "operations": data.get("operations", ["+"]),
        }
        # Keyed by the base model's content key, not its path: moving results_dir keeps the key.
        key = f"warm-{fingerprint({**params, 'base': cache_relative(base)})}"
        self.warm_models[key] = params
        return f"{self.results}/cache/warm-models/{key}"

    def hf_model_key(self, exp: dict) -> tuple[str, dict]:
        card = self.card(exp) or {}
        repo = exp["model"]["repo"] or card.get("hf", {}).get("repo")
        rev = exp["model"]["revision"] or card.get("hf", {}).get("revision") or "main"
        params = {
            "repo": repo,
            "revision": rev,
            # A card lists its files at top level (mileage.models.cards.CARD_SCHEMA); its `hf` block has only
            # repo and revision, so allow_patterns stays unset (the whole repo).
            "expected_files": card.get("expected_files", ["config.json"]),
            "allow_patterns": card.get("hf", {}).get("allow_patterns"),
            # config.json is checked against the card before the weights are downloaded (mileage.models.cards)
            "config_checks": config_checks(card) if card else None,
        }
        return f"{repo_slug(repo)}/{rev}", params

    def hf_model_marker(self, exp: dict) -> str:
        key, params = self.hf_model_key(exp)
        self.hf_models[key] = params
        return f"{self.results}/cache/hf-models/{key}/snapshot.json"

    def torch_dist(self, exp: dict) -> str:
        key, _ = self.hf_model_key(exp)
        return f"{self.results}/cache/torch_dist/{key}/latest_checkpointed_iteration.txt"

    # ---- evaluations ------------------------------------------------------------------------------
    def base_eval(self, engine: str, params: dict, inputs: dict, gpus: int) -> str:
        """The evaluation of a starting model, shared by every experiment that starts from the same model with the
        same data and eval settings (a variant of an experiment does not evaluate its base model again)."""
        # Inputs by their place in the cache, not under results_dir: moving results_dir keeps the key.
        placed = {k: cache_relative(v) for k, v in sorted(inputs.items())}
        key = f"base-{engine}-{fingerprint({'params': params, 'inputs': placed})}"
        self.base_evals[key] = {"params": params, "inputs": inputs, "gpus": gpus}
        return f"{self.results}/cache/base-eval/{key}.samples.jsonl"


# ---- the layout before evaluation sets were an axis ------------------------------------------------------------

def migrate_eval_layout(results: str, first_sets: dict[str, str], log=print) -> list[tuple[Path, Path]]:
    """Move each run's evaluations of its first set from `eval/{base,final}.samples.jsonl` (the layout before every set
    had `eval/<set>/`) to `eval/<set>/`, once, saying so: a finished run's final evaluation is kept, not redone.
    `first_sets`: {run: the name of its first evaluation set}. Returns the moves made."""
    moves = []
    for run, first in first_sets.items():
        old_dir = Path(results) / run / "eval"
        for name in ("base.samples.jsonl", "final.samples.jsonl"):
            old, new = old_dir / name, old_dir / first / name
            if old.is_file() and not new.exists():
                new.parent.mkdir(parents=True, exist_ok=True)
                old.rename(new)  # keeps the file's time: nothing downstream looks newer
                moves.append((old, new))
    if moves:
        log(f"mileage: results laid out before evaluation sets had their own directories: moved {len(moves)} "
            f"evaluation file(s) under eval/<set>/ ({', '.join(f'{a} -> {b}' for a, b in moves[:4])}"
            f"{', ...' if len(moves) > 4 else ''})")
    return moves


# ---- replicates -----------------------------------------------------------------------------------------------

def replicate_name(experiment: str, seed: int) -> str:
    """The run of `experiment` with RL seed `seed`: its results live in `<results>/<experiment>/seeds/<seed>/`."""
    return f"{experiment}/seeds/{seed}"


def expand_replicates(experiments: dict[str, dict]) -> tuple[dict[str, dict], dict[str, dict]]:
    """(runs, replicated): every training run by name (an experiment with `seeds` becomes one run per seed, with
    seed = rollout_seed = n), and for each replicated experiment its `seeds` and run names. A run's `base` names the
    experiment as declared: what does not depend on the RL seed (the base evaluation) is built from it once."""
    runs: dict[str, dict] = {}
    replicated: dict[str, dict] = {}
    for name, exp in experiments.items():
        if exp.get("seeds") is None:
            runs[name] = exp
            continue
        members = []
        for seed in exp["seeds"]:
            run = {**exp, "seed": seed, "rollout_seed": seed, "seeds": None,
                   "label": f"{exp.get('label') or name} (seed {seed})"}
            runs[replicate_name(name, seed)] = run
            members.append(replicate_name(name, seed))
        replicated[name] = {"seeds": list(exp["seeds"]), "runs": members}
    return runs, replicated
