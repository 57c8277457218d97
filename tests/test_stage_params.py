"""Which config leaves reach which rule: an edit reruns what it made stale, and nothing else."""

from __future__ import annotations

import copy

import pytest

from fake_miles.experiments import EXPERIMENTS_DIR, MODELS_DIR, load_experiment, resolve
from mileage.engines.miles.argv import MilesPaths
from mileage.engines.miles.launch import eval_entrypoint
from mileage.models.cards import load_card
from mileage.engines.miles.plan import estimate_memory
from mileage.stages.params import eval_params, preflight_params, train_params

PATHS = MilesPaths(hf_checkpoint="/c/hf", ref_load="/c/torch_dist", run_dir="/r/checkpoints", prompt_data=None,
                   eval_data=[("aime", "/d/aime-2024.jsonl")], tensorboard_dir="/r/tb",
                   debug_event_dir="/r/debug_events", eval_samples_dir="/r/eval_samples")
SHIPPED = sorted(p.stem for p in EXPERIMENTS_DIR.glob("*.yaml"))


@pytest.mark.parametrize("name", SHIPPED)
@pytest.mark.parametrize("which", ["base", "final"])
def test_miles_eval_params_carry_everything_its_command_line_reads(name, which):
    exp = load_experiment(name)
    card = load_card(exp["model"]["card"], MODELS_DIR)
    params = eval_params(name, exp, which, card)
    checkpoint = None if which == "base" else "/r/checkpoints/iter_0000009"
    settings = exp[f"{which}_eval"]
    assert eval_entrypoint(params, card, PATHS, checkpoint, settings) == eval_entrypoint(
        exp, card, PATHS, checkpoint, settings)


@pytest.mark.parametrize("section, key, value", [
    ("rollout", "num_rollout", 6000),  # extending a run
    ("rollout", "n_samples_per_prompt", 16),
    ("rollout", "max_response_len", 4096),
    ("train", "save_interval", 7),
    ("train", "eps_clip_high", 0.3),
    ("train", "kl_loss_coef", 0.01),
])
def test_training_only_edits_do_not_rerun_the_miles_base_eval(section, key, value):
    exp = load_experiment(SHIPPED[0])
    card = load_card(exp["model"]["card"], MODELS_DIR)
    edited = copy.deepcopy(exp)
    edited[section][key] = value
    assert eval_params("x", edited, "base", card) == eval_params("x", exp, "base", card)


@pytest.mark.parametrize("name", SHIPPED)
def test_preflight_params_carry_everything_the_memory_plan_reads(name):
    exp = load_experiment(name)
    card = load_card(exp["model"]["card"], MODELS_DIR)
    plan = preflight_params(exp, card)
    assert estimate_memory(plan, plan["card"]).summary == estimate_memory(exp, card).summary


@pytest.mark.parametrize("section, key, value", [
    ("train", "lr", 3e-6), ("rollout", "num_rollout", 6000), ("train", "save_interval", 7),
    ("eval", "interval", 5), ("final_eval", "n_samples_per_prompt", 4), ("tracking", "wandb", True),
])
def test_training_edits_do_not_rerun_the_preflight_that_orders_the_download(section, key, value):
    # preflight.txt is an input of fetch_model: a preflight rerun refetches and reconverts the model.
    exp = load_experiment(SHIPPED[0])
    card = load_card(exp["model"]["card"], MODELS_DIR)
    edited = copy.deepcopy(exp)
    edited[section][key] = value
    assert preflight_params(edited, card) == preflight_params(exp, card)


def test_miles_settings_do_not_reach_a_local_training_run():
    # train params feed the resume identity too: a defaults.miles edit would otherwise restart a local run.
    local = resolve({"engine": "local", "model": {"source": "demo"},
                     "data": {"train": {"source": "demo"}, "eval": {"source": "demo"}}})
    edited = copy.deepcopy(local)
    edited["miles"]["sglang"]["mem_fraction_static"] = 0.5
    edited["tracking"]["wandb"] = True
    assert train_params("x", edited, None) == train_params("x", local, None)
