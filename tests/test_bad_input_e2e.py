"""Bad input through the real pipeline: a clear message naming the cause, and nothing half-written."""

from __future__ import annotations

import socket

import pytest

from pipeline_helpers import copy_repo, edit_config, snakemake

pytestmark = pytest.mark.slow


@pytest.fixture
def repo(tmp_path):
    return copy_repo(tmp_path / "repo")


def test_unknown_config_key_stops_before_any_job(repo):
    edit_config(repo, lambda c: c["experiments"]["demo"]["rollout"].update(n_sample_per_prompt=4))
    proc = snakemake(repo, "-n", check=False)
    assert proc.returncode != 0
    assert "experiments.demo.rollout: unknown key 'n_sample_per_prompt'" in proc.stdout + proc.stderr
    assert not (repo / "results").exists()


def test_malformed_dataset_row_names_file_and_line(repo):
    bad = repo / "data" / "broken.jsonl"
    bad.parent.mkdir()
    good = '{"prompt": [{"role": "user", "content": "1 + 1?"}], "label": "2"}'
    bad.write_text(f"{good}\n{good}\n{{not json\n{good}\n")
    edit_config(repo, lambda c: c["experiments"]["demo"]["data"].update(eval={"name": "mine", "source": "file", "path": "data/broken.jsonl"}))
    proc = snakemake(repo, "--forceall", "results/demo/eval/base.samples.jsonl", check=False)
    text = proc.stdout + proc.stderr
    assert proc.returncode != 0
    assert "broken.jsonl:line 3: not valid JSON" in text, text[-3000:]
    assert not list((repo / "results" / "cache").glob("file-data/*.jsonl"))
    # A missing label is named too.
    bad.write_text(f"{good}\n" + '{"prompt": "2 + 2?"}\n')
    proc = snakemake(repo, "results/demo/eval/base.samples.jsonl", check=False)
    assert "broken.jsonl:line 2: missing key 'label'" in proc.stdout + proc.stderr


def test_ray_port_in_use_fails_the_train_rule_clearly(repo):
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
