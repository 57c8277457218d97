"""Provenance in summary.json: what ran, and never a secret."""

from __future__ import annotations

import hashlib
import json
import subprocess
from pathlib import Path

import yaml

from mileage.logs import logged
from mileage.provenance import REDACTED, collect, for_experiment, scrub, stage_wall_seconds

ROOT = Path(__file__).resolve().parents[1]
HF_SENTINEL = "hf_SENTINEL_never_in_results_123"
WANDB_SENTINEL = "wandb-SENTINEL-never-in-results-456"


def demo_config(tmp_path: Path) -> dict:
    config = yaml.safe_load((ROOT / "config" / "config.yaml").read_text(encoding="utf-8"))
    config["results_dir"] = str(tmp_path / "results")
    return config


def test_the_block_says_what_ran(tmp_path, monkeypatch):
    data = tmp_path / "eval.jsonl"
    data.write_text('{"prompt": "1+1", "label": "2"}\n', encoding="utf-8")
    logs = tmp_path / "logs"
    with logged(logs / "train.log"):
        print("training")
    exp = yaml.safe_load((ROOT / "config" / "config.yaml").read_text(encoding="utf-8"))
    resolved = for_experiment(demo_config(tmp_path), "demo", ROOT)["config"]
    block = collect(resolved, seeds=[1, 2], data_files=[str(data), str(tmp_path / "missing.jsonl")], logs_dir=logs,
                    base_dir=ROOT)
    assert set(block) == {"git_commit", "git_dirty", "config", "hf_revisions", "data_sha256", "packages",
                          "hardware", "wall_seconds", "gpu_hours", "attempts", "seeds"}
    head = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "HEAD"], capture_output=True, text=True).stdout
    assert block["git_commit"] == head.strip() and isinstance(block["git_dirty"], bool)
    assert block["data_sha256"][str(data)] == hashlib.sha256(data.read_bytes()).hexdigest()
    assert block["data_sha256"][str(tmp_path / "missing.jsonl")] is None
    assert block["packages"]["numpy"] and block["packages"]["scipy"]
    assert block["hardware"]["cpu_count"] >= 1 and block["hardware"]["cpu"]
    assert set(block["wall_seconds"]) == {"train"} and block["wall_seconds"]["train"] >= 0
    assert block["gpu_hours"] == 0.0  # the demo runs on the CPU
    assert block["seeds"] == [1, 2] and block["config"]["rollout"] == resolved["rollout"]
    assert exp["experiments"]["demo"]  # the demo is in the shipped config
    json.dumps(block)


def test_hf_revisions_are_commit_hashes_from_the_lock(tmp_path):
    config = demo_config(tmp_path)
    resolved = for_experiment(config, "demo", ROOT)["config"]
    exp = json.loads(json.dumps(resolved))
    exp["model"].update(source="hf", repo="org/model", revision=None)
    exp["data"]["eval"].update(source="hf", repo="org/aime", revision="a" * 40)
    lock = {"model:org/model": "b" * 40}
    block = collect(exp, seeds=[0], data_files=[], logs_dir=tmp_path, base_dir=ROOT, lock=lock)
    assert block["hf_revisions"] == {"model:org/model": "b" * 40, "dataset:org/aime": "a" * 40}


def test_wall_time_is_the_latest_run_of_each_stage(tmp_path):
    (tmp_path / "eval_final.log").write_text("mileage: wall time 3.5 s\nrerun\nmileage: wall time 1.25 s\n")
    (tmp_path / "metrics.log").write_text("no timing here\n")
    assert stage_wall_seconds(tmp_path) == {"eval_final": 1.25}


def test_no_secret_reaches_the_block(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_TOKEN", HF_SENTINEL)
    monkeypatch.setenv("WANDB_API_KEY", WANDB_SENTINEL)
    config = demo_config(tmp_path)
    # Where a secret could slip in: a free-text field of the config, and the key names of SGLang's extra args
    # (the config loader refuses credential options in miles.extra_args; a description is free text).
    config["experiments"]["demo"]["description"] = f"token {HF_SENTINEL} and {WANDB_SENTINEL}"
    block = for_experiment(config, "demo", ROOT)
    text = json.dumps(block)
    assert HF_SENTINEL not in text and WANDB_SENTINEL not in text
    assert block["config"]["description"] == f"token {REDACTED} and {REDACTED}"


def test_scrub_drops_credential_keys_and_keeps_column_names():
    cleaned = scrub({"api_key": "x", "hf_token": "y", "input_key": "prompt", "nested": [{"wandb_key": "z"}]},
                    environ={})
    assert cleaned == {"input_key": "prompt", "nested": [{}]}
