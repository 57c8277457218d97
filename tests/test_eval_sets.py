"""Several evaluation sets: `data.eval` as a list is data.eval (the first) plus data.extra_eval, names unique, each
set evaluated, summarised and plotted under its own name, and evaluated in training by both engines."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import yaml

from mileage.config import ConfigError, ExperimentResolver
from mileage.layout import Layout, eval_set_view
from mileage.stages.params import eval_set_params, experiment_paths
from pipeline_helpers import ROOT, copy_repo, edit_config, planned_jobs

CONFIG = yaml.safe_load((ROOT / "config" / "config.yaml").read_text())
SUB = {"name": "sub", "source": "demo", "demo": {"n_problems": 8, "seed": 3, "operations": ["-"]}}


def with_eval(evaluation) -> dict:
    config = copy.deepcopy(CONFIG)
    config["experiments"]["demo"]["data"]["eval"] = evaluation
    return config


def demo_with_sets() -> tuple[dict, dict]:
    resolver = ExperimentResolver(with_eval([CONFIG["experiments"]["demo"]["data"]["eval"], SUB]), base_dir=ROOT)
    return resolver.resolve("demo"), resolver.config


def test_a_list_is_the_first_set_plus_the_others_with_their_defaults():
    exp, _ = demo_with_sets()
    assert exp["data"]["eval"]["name"] == "arith"
    [sub] = exp["data"]["extra_eval"]
    assert sub["name"] == "sub" and sub["demo"]["max_operand"] == 9 and sub["limit"] is None  # schema defaults
    single = ExperimentResolver(copy.deepcopy(CONFIG), base_dir=ROOT).resolve("demo")
    assert single["data"]["extra_eval"] == []


@pytest.mark.parametrize("evaluation, message", [
    ([{"name": "a", "source": "demo"}, {"name": "a", "source": "demo"}],
     r"experiments\.demo\.data\.eval\[1\]\.name: 'a' names two evaluation sets \(also data\.eval\[0\]\)"),
    ([{"source": "demo"}, {"source": "demo"}], r"data\.eval\[1\]\.name: 'data' names two"),  # both default names
    ([{"name": "a", "source": "demo"}, {"name": "b", "source": "file"}], r"experiments\.demo\.data\.eval\[1\]\.path"),
    ([{"name": "a", "source": "demo"}, {"name": "b", "limit": 0}], r"experiments\.demo\.data\.eval\[1\]\.limit"),
    ([], r"experiments\.demo\.data\.eval: an empty list"),
])
def test_bad_eval_lists_are_errors_naming_the_item(evaluation, message):
    with pytest.raises(ConfigError, match=message):
        ExperimentResolver(with_eval(evaluation), base_dir=ROOT).resolve_all()


def test_each_set_has_its_own_data_base_evaluation_and_final_evaluation_inputs():
    exp, config = demo_with_sets()
    layout = Layout(results="results", base_dir=ROOT)
    paths = experiment_paths(layout, "demo", exp, config)
    sub = paths["eval_sets"]["sub"]
    assert sub["final_eval_inputs"]["data"] != paths["eval_data"]
    assert paths["train_inputs"]["eval_data_1"] == sub["final_eval_inputs"]["data"]
    assert sub["base_eval"] != paths["base_eval"] and len(layout.base_evals) == 2
    view = eval_set_view(exp, "sub")
    assert view["data"]["eval"]["name"] == "sub" and view["data"]["extra_eval"] == []
    params = eval_set_params("summarize", "demo", exp, "sub", config, layout)
    assert params["data"]["eval"]["name"] == "sub"


def test_local_training_evaluates_every_set():
    from mileage.engines.local.engine import job_spec

    exp, config = demo_with_sets()
    from mileage.stages.params import rule_params

    train = rule_params("train", "demo", exp, config, Layout(results="results", base_dir=ROOT))
    spec = job_spec(train, {"model": "/m", "train_data": "/t.jsonl", "eval_data": "/e.jsonl",
                            "eval_data_1": "/sub.jsonl"}, Path("/tmp/run"))
    assert [(d["name"], d["path"]) for d in spec["eval_data"]] == [("arith", "/e.jsonl"), ("sub", "/sub.jsonl")]


def test_miles_training_gets_an_eval_prompt_data_pair_per_set():
    from fake_miles.experiments import load_experiment
    from mileage.engines.miles.engine import miles_paths

    exp = load_experiment("glm-z1-9b-8xh100")
    exp["data"]["extra_eval"] = [{**exp["data"]["eval"], "name": "aime25"}]
    inputs = {"model": "/c/hf", "torch_dist": "/c/td/latest_checkpointed_iteration.txt", "train_data": "/d/t.jsonl",
              "eval_data": "/d/aime24.jsonl", "eval_data_1": "/d/aime25.jsonl"}
    paths = miles_paths(exp, inputs, Path("/r/run"))
    assert paths.eval_data == [("aime", "/d/aime24.jsonl"), ("aime25", "/d/aime25.jsonl")]


def test_the_plan_evaluates_and_summarises_each_set(tmp_path):
    repo = copy_repo(tmp_path / "repo")
    edit_config(repo, lambda c: c["experiments"]["demo"]["data"].update(eval=[c["experiments"]["demo"]["data"]["eval"], SUB]))
    jobs = planned_jobs(repo)
    assert jobs["eval_base"] == 2 and jobs["eval_final"] == 1 and jobs["eval_final_set"] == 1
    assert jobs["summarize"] == 1 and jobs["summarize_set"] == 1 and jobs["train"] == 1
