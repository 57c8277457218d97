"""The persistent run directory: which edits continue a run, which start afresh (keeping the old run aside), and
what a rerun does with a run that already reached, or passed, its num_rollout."""

from __future__ import annotations

import copy

import pytest

from mileage.config import ExperimentResolver
from mileage.engines import get_engine
from mileage.keys import stage_params
from mileage.run_dir import plan_run, training_identity

LOCAL = get_engine("local")


def demo_train(**sections) -> dict:
    config = {"experiments": {"x": {"engine": "local", "model": {"source": "demo"},
                                    "data": {"train": {"source": "demo"}, "eval": {"source": "demo"}}, **sections}}}
    resolver = ExperimentResolver(config)
    return stage_params("train", "x", resolver.resolve("x"), resolver.config, card=None)


def identity_of(train: dict, data_file) -> dict:
    return training_identity(train, {"model": "results/cache/demo-models/m", "train_data": str(data_file)})


def plan_after(run_dir, train: dict, data_file, log=lambda _msg: None):
    return plan_run(run_dir, identity_of(train, data_file), LOCAL, train, log=log)


def state_after(run_dir, train: dict, data_file) -> str:
    return plan_after(run_dir, train, data_file).state


def fake_checkpoints(run, train, rollouts, evals=()):
    """TRL's layout: checkpoint-<optimizer step>/ complete once trainer_state.json exists; eval records per rollout."""
    steps = train["train"]["num_steps_per_rollout"]
    for r in rollouts:
        ckpt = run / "checkpoints" / f"checkpoint-{r * steps}"
        ckpt.mkdir(parents=True, exist_ok=True)
        (ckpt / "trainer_state.json").write_text("{}")
    for r in evals:
        file = run / "eval_samples" / "data" / f"rollout_{r}.jsonl"
        file.parent.mkdir(parents=True, exist_ok=True)
        file.write_text("")


@pytest.fixture
def data(tmp_path):
    file = tmp_path / "train.jsonl"
    file.write_text('{"prompt": "1+1", "label": "2"}\n')
    return file


def test_more_rollouts_and_save_cadence_or_placement_resume(tmp_path, data):
    run = tmp_path / "run"
    base = demo_train()
    assert state_after(run, base, data) == "fresh"
    (run / "events.jsonl").write_text("")
    edited = copy.deepcopy(base)
    edited["rollout"]["num_rollout"] += 10
    edited["train"]["save_interval"] += 1
    edited["resources"]["device"] = "cuda"
    edited["ray"]["num_cpus"] = 1
    assert state_after(run, edited, data) == "resume"


@pytest.mark.parametrize("key, value", [("interval", 7), ("n_samples_per_prompt", 3), ("temperature", 0.5)])
def test_an_in_training_eval_edit_starts_afresh_never_keeps_old_evaluations(tmp_path, data, key, value):
    run = tmp_path / "run"
    base = demo_train()
    state_after(run, base, data)
    fake_checkpoints(run, base, [5], evals=[4])
    edited = copy.deepcopy(base)
    edited["eval"][key] = value
    assert state_after(run, edited, data) == "fresh"
    assert not (run / "eval_samples").exists()


def test_a_learning_rate_edit_starts_afresh_and_keeps_the_old_run(tmp_path, data):
    run = tmp_path / "run"
    base = demo_train()
    state_after(run, base, data)
    (run / "events.jsonl").write_text("old")
    edited = copy.deepcopy(base)
    edited["train"]["lr"] *= 2
    assert state_after(run, edited, data) == "fresh"
    kept = [p for p in tmp_path.iterdir() if p.name.startswith("run.superseded-")]
    assert len(kept) == 1 and (kept[0] / "events.jsonl").read_text() == "old"


def test_more_rollouts_under_a_decaying_learning_rate_start_afresh(data):
    # The decay spans num_rollout, so extending the run changes the steps its checkpoints already took.
    base = demo_train(train={"lr_decay_style": "cosine"})
    longer = copy.deepcopy(base)
    longer["rollout"]["num_rollout"] += 10
    assert identity_of(base, data) != identity_of(longer, data)
    constant = demo_train()
    longer_constant = copy.deepcopy(constant)
    longer_constant["rollout"]["num_rollout"] += 10
    assert identity_of(constant, data) == identity_of(longer_constant, data)


def test_edited_training_prompts_at_the_same_path_start_afresh(tmp_path, data):
    # A `source: file` dataset is cached under a key of its path, so only its content tells the edit apart.
    run = tmp_path / "run"
    train = demo_train()
    state_after(run, train, data)
    (run / "events.jsonl").write_text("")
    data.write_text('{"prompt": "2+2", "label": "4"}\n')
    assert state_after(run, train, data) == "fresh"


def test_a_run_at_num_rollout_trains_nothing_more(tmp_path, data):
    run = tmp_path / "run"
    train = demo_train(rollout={"num_rollout": 6}, train={"save_interval": 3}, eval={"interval": 3})
    state_after(run, train, data)
    fake_checkpoints(run, train, [3, 6], evals=[2, 5])
    messages = []
    plan = plan_after(run, train, data, log=messages.append)
    assert plan.state == "done" and plan.checkpoint.rollouts == 6
    assert "nothing to train" in messages[-1]


def test_a_smaller_num_rollout_uses_the_checkpoint_there(tmp_path, data):
    run = tmp_path / "run"
    train = demo_train(rollout={"num_rollout": 6}, train={"save_interval": 3}, eval={"interval": 3})
    state_after(run, train, data)
    fake_checkpoints(run, train, [3, 6], evals=[2, 5])
    shorter = copy.deepcopy(train)
    shorter["rollout"]["num_rollout"] = 3
    plan = plan_after(run, shorter, data)
    assert plan.state == "done" and plan.checkpoint.rollouts == 3
    assert (run / "checkpoints" / "checkpoint-6").is_dir(), "the longer run's checkpoints are kept"


def test_a_smaller_num_rollout_without_a_checkpoint_there_starts_afresh_and_says_why(tmp_path, data):
    run = tmp_path / "run"
    train = demo_train(rollout={"num_rollout": 6}, train={"save_interval": 3}, eval={"interval": 3})
    state_after(run, train, data)
    fake_checkpoints(run, train, [3, 6], evals=[2, 5])
    shorter = copy.deepcopy(train)
    shorter["rollout"]["num_rollout"] = 4
    messages = []
    assert plan_after(run, shorter, data, log=messages.append).state == "fresh"
    assert "trained 6 rollouts and has no checkpoint at rollout 4" in messages[-1]
    kept = [p for p in tmp_path.iterdir() if p.name.startswith("run.superseded-")]
    assert len(kept) == 1 and (kept[0] / "checkpoints" / "checkpoint-6").is_dir()


def test_a_smaller_num_rollout_missing_its_last_evaluation_starts_afresh(tmp_path, data):
    # A run of 4 rollouts evaluates at its last rollout (3); the longer run evaluated at 1, 3?, 5: with interval 2
    # it has 1, 3, 5 and the shorter run's evaluations (1, 3) are there; with interval 3 the last (3) is not.
    run = tmp_path / "run"
    train = demo_train(rollout={"num_rollout": 6}, train={"save_interval": 2}, eval={"interval": 3})
    state_after(run, train, data)
    fake_checkpoints(run, train, [2, 4, 6], evals=[2, 5])
    shorter = copy.deepcopy(train)
    shorter["rollout"]["num_rollout"] = 4
    messages = []
    assert plan_after(run, shorter, data, log=messages.append).state == "fresh"
    assert "in-training evaluations" in messages[-1] and "[3]" in messages[-1]


def test_an_incomplete_checkpoint_is_not_a_finished_run(tmp_path, data):
    run = tmp_path / "run"
    train = demo_train(rollout={"num_rollout": 6}, train={"save_interval": 3}, eval={"interval": None})
    state_after(run, train, data)
    fake_checkpoints(run, train, [3])
    (run / "checkpoints" / "checkpoint-6").mkdir()  # killed while saving: no trainer_state.json
    plan = plan_after(run, train, data)
    assert plan.state == "resume" and plan.checkpoint.rollouts == 3


def test_an_upgrade_that_adds_an_identity_key_at_its_default_keeps_the_run(tmp_path, data):
    """A finished run is never trained again by a newer mileage: a key it did not know, at its default, is what it did."""
    import json

    run = tmp_path / "run"
    train = demo_train(eval={"interval": None})  # complete without in-training evaluations
    fake_checkpoints(run, train, [train["rollout"]["num_rollout"]])
    identity = identity_of(train, data)
    older = copy.deepcopy(identity)
    del older["eval"]["top_p"]  # as if eval.top_p came with the upgrade
    from mileage.config import fingerprint

    (run / "fingerprint.json").write_text(json.dumps({"fingerprint": fingerprint(older), "identity": older}))
    said = []
    plan = plan_run(run, identity, LOCAL, train, log=said.append)
    assert plan.state == "done" and "before mileage knew eval.top_p" in said[0]
    # not at its default: another training
    older["eval"]["top_p"] = 0.5
    (run / "fingerprint.json").write_text(json.dumps({"fingerprint": fingerprint(older), "identity": older}))
    assert plan_run(run, identity, LOCAL, train, log=said.append).state == "fresh"


def test_a_run_that_evaluated_more_sets_in_training_is_the_same_training(tmp_path, data):
    """Made with a data.eval list before eval.sets existed (every set evaluated in training): kept, not retrained."""
    import json

    from mileage.config import fingerprint

    run = tmp_path / "run"
    sub = {"name": "sub", "source": "demo", "demo": {"n_problems": 4}}
    train = demo_train(eval={"interval": None})
    old_train = demo_train(data={"train": {"source": "demo"}, "eval": [{"source": "demo"}, sub]},
                           eval={"sets": ["data", "sub"], "interval": None})
    assert old_train["data"]["extra_eval"]
    fake_checkpoints(run, train, [train["rollout"]["num_rollout"]])
    old = training_identity(old_train, {"model": "results/cache/demo-models/m", "train_data": str(data),
                                        "eval_data_1": "results/cache/demo-data/sub.jsonl"})
    (run / "fingerprint.json").write_text(json.dumps({"fingerprint": fingerprint(old), "identity": old}))
    said = []
    assert plan_run(run, identity_of(train, data), LOCAL, train, log=said.append).state == "done"
    assert "also evaluated sub inside training" in said[0]
