"""Which config leaves reach which rule: an edit reruns what it made stale, nothing else, and rewriting the YAML
without changing a value reruns nothing (params are canonical)."""

from __future__ import annotations

import copy

import pytest
import yaml

from fake_miles.experiments import EXPERIMENTS_DIR, REPO, load_experiment, resolve
from mileage.config import ExperimentResolver
from mileage.layout import Layout
from mileage.stages.params import rule_params

SHIPPED = sorted(p.stem for p in EXPERIMENTS_DIR.glob("*.yaml"))
LAYOUT = Layout(results="results", base_dir=REPO)
CONFIG = ExperimentResolver({}).config


def params(stage: str, exp: dict) -> dict:
    return rule_params(stage, "x", exp, CONFIG, LAYOUT)


@pytest.mark.parametrize("section, key, value", [
    ("rollout", "num_rollout", 6000),  # extending a run
    ("rollout", "n_samples_per_prompt", 16),
    ("rollout", "max_response_len", 4096),
    ("train", "save_interval", 7),
    ("train", "eps_clip_high", 0.3),
    ("train", "kl_loss_coef", 0.01),
    ("train", "lr", 3e-6),
])
def test_training_only_edits_do_not_rerun_the_miles_base_eval(section, key, value):
    exp = load_experiment(SHIPPED[0])
    edited = copy.deepcopy(exp)
    edited[section][key] = value
    assert params("eval_base", edited) == params("eval_base", exp)


@pytest.mark.parametrize("section, key, value", [
    ("train", "lr", 3e-6), ("rollout", "num_rollout", 6000), ("train", "save_interval", 7),
    ("eval", "interval", 5), ("final_eval", "n_samples_per_prompt", 4), ("tracking", "wandb", True),
])
def test_training_edits_do_not_rerun_the_preflight_that_orders_the_download(section, key, value):
    # preflight.txt is an input of fetch_model: a preflight rerun refetches and reconverts the model.
    exp = load_experiment(SHIPPED[0])
    edited = copy.deepcopy(exp)
    edited[section][key] = value
    assert params("preflight", edited) == params("preflight", exp)


@pytest.mark.parametrize("stage", ["train", "eval_final", "preflight"])
def test_a_real_value_change_always_reaches_the_rule_that_reads_it(stage):
    exp = load_experiment(SHIPPED[0])
    edits = {"train": ("train", "lr", 3e-6), "eval_final": ("final_eval", "n_samples_per_prompt", 4),
             "preflight": ("resources", "gpu_memory_gb", 47.5)}
    section, key, value = edits[stage]
    edited = copy.deepcopy(exp)
    edited[section][key] = value
    assert params(stage, edited) != params(stage, exp)


def test_miles_settings_do_not_reach_a_local_training_run():
    # train params feed the resume identity too: a defaults.miles edit would otherwise restart a local run.
    local = resolve({"engine": "local", "model": {"source": "demo"},
                     "data": {"train": {"source": "demo"}, "eval": {"source": "demo"}}})
    edited = copy.deepcopy(local)
    edited["miles"]["sglang"]["mem_fraction_static"] = 0.5
    assert params("train", edited) == params("train", local)
    # The local engine has trackers (TensorBoard, W&B): tracking reaches it, but a run continues across the edit.
    from mileage.keys import identity_of

    edited["tracking"]["wandb"] = True
    assert params("train", edited) != params("train", local)
    assert identity_of(params("train", edited)) == identity_of(params("train", local))


BLOCK = """
experiments:
  demo:
    model: {source: demo}
    data: {train: {source: demo}, eval: {source: demo}}
    train:
      lr: 0.001        # a comment
      adam_beta2: 1
      weight_decay: 0.0
    rollout: {num_rollout: 5, rollout_batch_size: 4, n_samples_per_prompt: 4}
plots: {dpi: 300, font_scale: 1}
"""
# The same values: keys in another order, flow style, 1.0e-3 for 0.001, 1.0 for 1, no comments.
FLOW = """
plots: {font_scale: 1.0, dpi: 300}
experiments: {demo: {rollout: {n_samples_per_prompt: 4, rollout_batch_size: 4, num_rollout: 5},
  train: {weight_decay: 0, adam_beta2: 1.0, lr: 1.0e-3}, data: {eval: {source: demo}, train: {source: demo}},
  model: {source: demo}}}
"""


def all_params(text: str) -> dict:
    resolver = ExperimentResolver(yaml.safe_load(text), base_dir=REPO)
    exp = resolver.resolve("demo")
    stages = ("train", "eval_base", "eval_final", "preflight", "summarize", "report", "plots")
    return {stage: repr(rule_params(stage, "demo", exp, resolver.config, LAYOUT)) for stage in stages}


def test_rewriting_the_yaml_without_changing_a_value_changes_no_params():
    # Snakemake compares params by repr: key order and number spelling must not show.
    assert all_params(BLOCK) == all_params(FLOW)


def test_a_changed_value_in_the_rewritten_yaml_changes_exactly_its_rules():
    before, after = all_params(BLOCK), all_params(FLOW.replace("lr: 1.0e-3", "lr: 2.0e-3"))
    assert {stage for stage in before if before[stage] != after[stage]} == {"train"}
    before, after = all_params(BLOCK), all_params(FLOW.replace("dpi: 300", "dpi: 200"))
    assert {stage for stage in before if before[stage] != after[stage]} == {"plots"}
