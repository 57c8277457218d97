"""The persistent run directory: which edits resume a run and which start afresh (keeping the old run aside)."""

from __future__ import annotations

import copy

from mileage.config import ExperimentResolver
from mileage.run_dir import prepare_run_dir, training_identity
from mileage.stages.params import train_params


def demo_train(**sections) -> dict:
    config = {"experiments": {"x": {"engine": "local", "model": {"source": "demo"},
                                    "data": {"train": {"source": "demo"}, "eval": {"source": "demo"}}, **sections}}}
    exp = ExperimentResolver(config).resolve("x")
    return train_params("x", exp, None)


def identity_of(train: dict, data_file) -> dict:
    return training_identity(train, {"model": "results/cache/demo-models/m", "train_data": str(data_file)})


def state_after(run_dir, train: dict, data_file) -> str:
    return prepare_run_dir(run_dir, identity_of(train, data_file), log=lambda _msg: None)


def test_more_rollouts_and_eval_or_save_cadence_resume(tmp_path):
    data = tmp_path / "train.jsonl"
    data.write_text('{"prompt": "1+1", "label": "2"}\n')
    run = tmp_path / "run"
    base = demo_train()
    assert state_after(run, base, data) == "fresh"
    (run / "events.jsonl").write_text("")
    edited = copy.deepcopy(base)
    edited["rollout"]["num_rollout"] += 10
    edited["train"]["save_interval"] += 1
    edited["eval"]["interval"] = None
    edited["resources"]["device"] = "cuda"
    assert state_after(run, edited, data) == "resume"


def test_a_learning_rate_edit_starts_afresh_and_keeps_the_old_run(tmp_path):
    data = tmp_path / "train.jsonl"
    data.write_text('{"prompt": "1+1", "label": "2"}\n')
    run = tmp_path / "run"
    base = demo_train()
    state_after(run, base, data)
    (run / "events.jsonl").write_text("old")
    edited = copy.deepcopy(base)
    edited["train"]["lr"] *= 2
    assert state_after(run, edited, data) == "fresh"
    kept = [p for p in tmp_path.iterdir() if p.name.startswith("run.superseded-")]
    assert len(kept) == 1 and (kept[0] / "events.jsonl").read_text() == "old"


def test_more_rollouts_under_a_decaying_learning_rate_start_afresh(tmp_path):
    # The decay spans num_rollout, so extending the run changes the steps its checkpoints already took.
    data = tmp_path / "train.jsonl"
    data.write_text('{"prompt": "1+1", "label": "2"}\n')
    base = demo_train(train={"lr_decay_style": "cosine"})
    longer = copy.deepcopy(base)
    longer["rollout"]["num_rollout"] += 10
    assert identity_of(base, data) != identity_of(longer, data)
    constant = demo_train()
    longer_constant = copy.deepcopy(constant)
    longer_constant["rollout"]["num_rollout"] += 10
    assert identity_of(constant, data) == identity_of(longer_constant, data)


def test_edited_training_prompts_at_the_same_path_start_afresh(tmp_path):
    # A `source: file` dataset is cached under a key of its path, so only its content tells the edit apart.
    data = tmp_path / "train.jsonl"
    data.write_text('{"prompt": "1+1", "label": "2"}\n')
    run = tmp_path / "run"
    train = demo_train()
    state_after(run, train, data)
    (run / "events.jsonl").write_text("")
    data.write_text('{"prompt": "2+2", "label": "4"}\n')
    assert state_after(run, train, data) == "fresh"
