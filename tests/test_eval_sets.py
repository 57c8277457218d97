"""The evaluation-set axis: `data.eval` as a list names sets, each evaluated on the base and final models and summarised
under its own name by one rule per stage; the sets evaluated inside training are `eval.sets` (default the first), so
adding a set trains nothing; the headline set is a setting (`data.headline_eval`)."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import yaml

from mileage.config import ConfigError, ExperimentResolver
from mileage.eval_sets import headline_view, set_view, training_view
from mileage.layout import Layout, migrate_eval_layout
from mileage.stages.params import experiment_paths, rule_params
from pipeline_helpers import ROOT, copy_repo, edit_config, planned_jobs

CONFIG = yaml.safe_load((ROOT / "config" / "config.yaml").read_text())
SUB = {"name": "sub", "source": "demo", "demo": {"n_problems": 8, "seed": 3, "operations": ["-"]}}


def with_eval(evaluation) -> dict:
    config = copy.deepcopy(CONFIG)
    config["experiments"]["demo"]["data"]["eval"] = evaluation
    return config


def demo_with_sets(**demo_keys) -> tuple[dict, dict]:
    config = with_eval([CONFIG["experiments"]["demo"]["data"]["eval"], SUB])
    for dotted, value in demo_keys.items():
        section, key = dotted.split("__")
        config["experiments"]["demo"].setdefault(section, {})[key] = value
    resolver = ExperimentResolver(config, base_dir=ROOT)
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


@pytest.mark.parametrize("keys, message", [
    ({"eval__sets": ["arith", "nope"]}, r"experiments\.demo\.eval\.sets\[1\]: 'nope' is not an evaluation set of data\.eval "
                                       r"\(arith, sub\)"),
    ({"data__headline_eval": "aime"}, r"experiments\.demo\.data\.headline_eval: 'aime' is not an evaluation set"),
])
def test_named_sets_must_be_sets_of_data_eval(keys, message):
    with pytest.raises(ConfigError, match=message):
        demo_with_sets(**keys)


def test_each_set_has_its_own_data_base_evaluation_and_final_evaluation_inputs():
    exp, config = demo_with_sets()
    layout = Layout(results="results", base_dir=ROOT)
    paths = experiment_paths(layout, "demo", exp, config)
    arith, sub = paths["eval_sets"]["arith"], paths["eval_sets"]["sub"]
    assert sub["final_eval_inputs"]["data"] != arith["final_eval_inputs"]["data"]
    assert sub["base_eval"] != arith["base_eval"] and len(layout.base_evals) == 2
    for name in ("arith", "sub"):  # no set is special: the same view and the same rule params for each
        view = set_view(exp, name)
        assert view["data"]["eval"]["name"] == name and view["data"]["extra_eval"] == []
        params = rule_params("summarize", "demo", exp, config, layout, eval_set=name)
        assert params["data"]["eval"]["name"] == name


def test_adding_a_set_leaves_training_untouched_unless_it_is_evaluated_in_training():
    single = ExperimentResolver(copy.deepcopy(CONFIG), base_dir=ROOT)
    layout = Layout(results="results", base_dir=ROOT)
    before = rule_params("train", "demo", single.resolve("demo"), single.config, layout)
    exp, config = demo_with_sets()
    assert rule_params("train", "demo", exp, config, layout) == before
    assert experiment_paths(layout, "demo", exp, config)["train_inputs"] == experiment_paths(
        layout, "demo", single.resolve("demo"), single.config)["train_inputs"]
    both, config = demo_with_sets(eval__sets=["sub", "arith"])
    train = rule_params("train", "demo", both, config, layout)
    assert train != before and train["data"]["eval"]["name"] == "sub"
    assert [d["name"] for d in training_view(both)["data"]["extra_eval"]] == ["arith"]


def test_the_headline_is_a_setting_that_reaches_only_the_report_rules():
    layout = Layout(results="results", base_dir=ROOT)
    exp, config = demo_with_sets()
    head, config_head = demo_with_sets(data__headline_eval="sub")
    assert headline_view(head)["data"]["eval"]["name"] == "sub"
    assert [d["name"] for d in headline_view(head)["data"]["extra_eval"]] == ["arith"]
    for stage in ("report", "headline"):
        assert rule_params(stage, "demo", head, config_head, layout) != rule_params(stage, "demo", exp, config, layout)
    for stage in ("train", "eval_final", "eval_base", "summarize"):
        assert rule_params(stage, "demo", head, config_head, layout, eval_set=None if stage == "train" else "sub") == \
            rule_params(stage, "demo", exp, config, layout, eval_set=None if stage == "train" else "sub")


def test_results_of_the_layout_before_sets_move_once_under_their_set(tmp_path):
    old = tmp_path / "results" / "demo" / "eval"
    old.mkdir(parents=True)
    (old / "final.samples.jsonl").write_text("{}\n")
    said = []
    moves = migrate_eval_layout(str(tmp_path / "results"), {"demo": "arith"}, log=said.append)
    assert (old / "arith" / "final.samples.jsonl").read_text() == "{}\n" and not (old / "final.samples.jsonl").exists()
    assert len(moves) == 1 and "moved 1 evaluation file" in said[0]
    assert migrate_eval_layout(str(tmp_path / "results"), {"demo": "arith"}, log=said.append) == []  # once


def test_local_training_evaluates_every_set_of_eval_sets():
    from mileage.engines.local.engine import job_spec

    exp, config = demo_with_sets(eval__sets=["arith", "sub"])
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


@pytest.mark.slow
def test_the_plan_evaluates_and_summarises_each_set_by_one_rule_per_stage(tmp_path):
    repo = copy_repo(tmp_path / "repo")
    edit_config(repo, lambda c: c["experiments"]["demo"]["data"].update(eval=[c["experiments"]["demo"]["data"]["eval"], SUB]))
    jobs = planned_jobs(repo)
    assert jobs["eval_base"] == 2 and jobs["eval_final"] == 2 and jobs["summarize"] == 2 and jobs["base_samples"] == 2
    assert jobs["train"] == 1 and jobs["headline"] == 1
