"""Params reach Snakemake canonical at one place (rules/common.smk `emit`): rewriting the YAML with the same values,
every mapping in another order and every value in another spelling, leaves every job of every rule with the params
Snakemake records, so nothing reruns. Proved on the whole DAG of a config that reaches every rule of the workflow,
through Snakemake's own API and its own params serialisation (tests/dag_params.py)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import yaml

from pipeline_helpers import copy_repo

HERE = Path(__file__).resolve().parent

# Every rule of the workflow is in this config's DAG: the demo with seeds, two evaluation sets and a sweep (the
# aggregate rules, per-set rules, cache rules), a file dataset, and a miles Megatron recipe (download, conversion,
# preflight, export).
EXPERIMENTS = {
    "demo": None,  # as shipped
    "demo-grid": {
        "extends": "demo", "seeds": [1, 2], "label": "grid",
        "data": {"eval": [{"name": "arith", "source": "demo", "demo": {"n_problems": 32, "seed": 2, "max_operand": 9,
                                                                         "operations": ["+"]}},
                          {"name": "other", "source": "file", "path": "tests/fixtures/other_eval.jsonl"}]},
        "sweep": {"train.lr": [0.0005, 0.001], "rollout.max_response_len": [16, 12]},
    },
    "glm": {"extends": "config/experiments/glm-z1-9b-8xh100.yaml"},
}


def config_with_all_rules(repo: Path) -> dict:
    config = yaml.safe_load((repo / "config" / "config.yaml").read_text())
    (repo / "tests" / "fixtures").mkdir(parents=True, exist_ok=True)
    (repo / "tests" / "fixtures" / "other_eval.jsonl").write_text(
        "".join(json.dumps({"prompt": f"What is {i} + {i}?", "label": str(2 * i), "id": f"p{i}"}) + "\n"
                for i in range(6)))
    for name, entry in EXPERIMENTS.items():
        if entry is not None:
            config["experiments"][name] = {k: v for k, v in entry.items() if v is not None}
    config["experiments"]["demo-grid"]["rollout"] = {"num_rollout": 20}
    return config


def reordered(value):
    """Every mapping's keys in reverse order, at every depth."""
    if isinstance(value, dict):
        return {k: reordered(value[k]) for k in reversed(list(value))}
    if isinstance(value, list):
        return [reordered(v) for v in value]
    return value


class Restyled(yaml.SafeDumper):
    """Flow style throughout, floats in exponent notation, booleans as yes/no: the same values to YAML 1.1."""


Restyled.add_representer(float, lambda d, v: d.represent_scalar("tag:yaml.org,2002:float", f"{v:.6e}"))
Restyled.add_representer(bool, lambda d, v: d.represent_scalar("tag:yaml.org,2002:bool", "yes" if v else "no"))


def dag_params(repo: Path, tmp_path: Path, tag: str) -> dict:
    out = tmp_path / f"{tag}.json"
    # the default target, and the export a user asks for by name
    targets = ["all", "results/glm/export/hf"]
    proc = subprocess.run([sys.executable, str(HERE / "dag_params.py"), str(repo), str(out), *targets],
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return json.loads(out.read_text())


def test_a_reordered_restyled_yaml_changes_no_params_of_any_job_of_any_rule(tmp_path):
    repo = copy_repo(tmp_path / "repo")
    config = config_with_all_rules(repo)
    path = repo / "config" / "config.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    before = dag_params(repo, tmp_path, "before")

    text = yaml.dump(reordered(config), Dumper=Restyled, default_flow_style=True, sort_keys=False, width=100)
    assert text != path.read_text()
    assert yaml.safe_load(text) == config  # the same values, whatever the order and spelling
    path.write_text(text)
    after = dag_params(repo, tmp_path, "after")

    assert before["jobs"] == after["jobs"]  # params, inputs and outputs of every job
    ruled = {key.split(" ")[0] for key in before["jobs"]}
    assert ruled == set(before["rules"]), f"rules not in the DAG: {set(before['rules']) - ruled}"
    # the proof has teeth: a changed value does change a job's params
    config["experiments"]["demo"]["model"]["demo"]["hidden_size"] = 32
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    changed = dag_params(repo, tmp_path, "changed")
    assert {k for k in before["jobs"] if before["jobs"][k]["params"] != changed["jobs"].get(k, {}).get("params")}
