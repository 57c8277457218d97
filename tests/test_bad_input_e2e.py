"""Bad input through the real pipeline: a clear message naming the cause, and nothing half-written.

The tests that run jobs start from a copy of the session's finished demo (tests/conftest.py), so that only the
jobs the bad input reaches run, not the demo model, data and warm start before them."""

from __future__ import annotations

import socket

import pytest

from pipeline_helpers import copy_repo, edit_config, keep_only_caches, snakemake

pytestmark = pytest.mark.slow


def test_unknown_config_key_stops_before_any_job(tmp_path):
    repo = copy_repo(tmp_path / "repo")
    edit_config(repo, lambda c: c["experiments"]["demo"]["rollout"].update(n_sample_per_prompt=4))
    proc = snakemake(repo, "-n", check=False)
    assert proc.returncode != 0
    assert "experiments.demo.rollout: unknown key 'n_sample_per_prompt'" in proc.stdout + proc.stderr
    assert not (repo / "results").exists()


def test_malformed_dataset_row_names_file_and_line(demo_copy):
    repo = demo_copy
    bad = repo / "data" / "broken.jsonl"
    bad.parent.mkdir()
    good = '{"prompt": [{"role": "user", "content": "1 + 1?"}], "label": "2"}'
    bad.write_text(f"{good}\n{good}\n{{not json\n{good}\n")
    edit_config(repo, lambda c: c["experiments"]["demo"]["data"].update(eval={"name": "mine", "source": "file", "path": "data/broken.jsonl"}))
    proc = snakemake(repo, "results/demo/eval/mine/base.samples.jsonl", check=False)
    text = proc.stdout + proc.stderr
    assert proc.returncode != 0
    assert "broken.jsonl:line 3: not valid JSON" in text, text[-3000:]
    assert not list((repo / "results" / "cache").glob("file-data/*.jsonl"))
    # A missing label is named too.
    bad.write_text(f"{good}\n" + '{"prompt": "2 + 2?"}\n')
    proc = snakemake(repo, "results/demo/eval/mine/base.samples.jsonl", check=False)
    assert "broken.jsonl:line 2: missing key 'label'" in proc.stdout + proc.stderr


def test_ray_port_in_use_fails_the_train_rule_clearly(demo_copy):
    repo = demo_copy
    keep_only_caches(repo)  # the training to start is the next job to run
    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        held.listen()
        port = held.getsockname()[1]
        edit_config(repo, lambda c: c["experiments"]["demo"].update(ray={"port": port, "num_cpus": 2}))
        proc = snakemake(repo, "results/demo/train/done.json", check=False)
    text = proc.stdout + proc.stderr
    assert proc.returncode != 0
    assert f"ray.port: port {port} is already in use" in text, text[-3000:]
    assert not (repo / "results" / "demo" / "train" / "done.json").exists()
    assert not (repo / "results" / "demo" / "train" / "events.jsonl").exists()
