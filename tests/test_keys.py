"""The one declaration of config keys (mileage.keys) is complete and exact: while each rule's work is built
(the miles argv and runtime env, the TRL config, the evaluation settings, the memory plan, the report, the
figures, the cache keys), the code reads exactly the keys the declaration says that rule reads. Each rule gets
only its declared keys as params, so an undeclared read fails loudly; the recorder proves nothing declared goes
unread (a declared but unread key would rerun a rule for nothing)."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest

from fake_miles.experiments import EXPERIMENTS_DIR, REPO, load_experiment, resolve
from key_recorder import Recording
from mileage import keys
from mileage.config import ExperimentResolver
from mileage.engines import ENGINE_NAMES, get_engine
from mileage.layout import Layout
from mileage.stages.params import rule_params

CONFIG = ExperimentResolver({}).config  # report and plots at their defaults
SHIPPED = sorted(p.stem for p in EXPERIMENTS_DIR.glob("*.yaml"))
DEMO = {"engine": "local", "model": {"source": "demo"}, "warm_start": {"enabled": True},
        "data": {"train": {"source": "demo"}, "eval": {"source": "demo"}}}


def set_path(exp: dict, dotted: str, value) -> dict:
    exp = copy.deepcopy(exp)
    node = exp
    *parents, last = dotted.split(".")
    for part in parents:
        node = node[part]
    node[last] = value
    return exp


def miles_variants() -> list[dict]:
    """The shipped miles experiments, and edits that take the branches they do not take."""
    shipped = [load_experiment(name) for name in SHIPPED]
    base = load_experiment("glm-z1-9b-8xh100")
    edits = {
        "miles.recompute.granularity": "full", "miles.deterministic": True, "tracking.wandb": True,
        "miles.mfu_peak_tflops": 209.5, "miles.placement.num_gpus_per_node": 8, "miles.skip_kl_when_zero": True,
        "miles.log_passrate": True, "miles.skip_eval_before_train": True, "miles.balance_data": False,
        "miles.extra_args": ["--log-probs-chunk-size", "512"],
        "miles.sglang.extra": {"chunked_prefill_size": 4096}, "miles.dynamic_batch_size": False,
    }
    variants = [set_path(base, key, value) for key, value in edits.items()]
    wandb = set_path(set_path(set_path(base, "tracking.wandb", True), "tracking.wandb_project", "p"),
                     "tracking.wandb_group", "g")
    variants.append(wandb)
    return shipped + variants


def local_variants() -> list[dict]:
    base = resolve(DEMO)
    return [base, resolve({**DEMO, "train": {"use_kl_loss": True, "kl_loss_coef": 0.01}}),
            resolve({**DEMO, "eval": {"interval": None}})]


def card_of(exp: dict) -> dict | None:
    return Layout(results="results", base_dir=REPO).card(exp)


def recorded(stage: str, exp: dict, build) -> set[str]:
    params = rule_params(stage, "x", exp, CONFIG, Layout(results="results", base_dir=REPO))
    rec = Recording(params)
    build(rec)
    return rec.reads


# ---- what building each rule's work reads -------------------------------------------------------------------------

def build_miles_train(params):
    from mileage.engines.miles.engine import miles_paths
    from mileage.engines.miles.runtime_env import runtime_env
    from mileage.launch.ray_cluster import cluster_spec

    inputs = {"model": "/c/hf", "torch_dist": "/c/td/latest_checkpointed_iteration.txt", "train_data": "/d/t.jsonl",
              "eval_data": "/d/e.jsonl"}
    from mileage.engines.miles.launch import train_entrypoint

    train_entrypoint(params, params["card"], miles_paths(params, inputs, Path("/r/run")))
    runtime_env(params, miles_paths(params, inputs, Path("/r/run")), run=lambda _args: None)
    cluster_spec(params["ray"], params["resources"]["gpus"])


def build_miles_eval(which):
    def build(params):
        from mileage.engines.miles.engine import miles_paths
        from mileage.engines.miles.launch import eval_entrypoint
        from mileage.engines.miles.runtime_env import runtime_env
        from mileage.launch.ray_cluster import cluster_spec

        inputs = {"model": "/c/hf", "torch_dist": "/c/td/latest_checkpointed_iteration.txt",
                  "train_data": "/d/e.jsonl", "eval_data": "/d/e.jsonl"}
        paths = miles_paths(params, inputs, Path("/r/work"))
        checkpoint = None if which == "base" else "/r/run/checkpoints/iter_0000009"
        eval_entrypoint(params, params["card"], paths, checkpoint, params[f"{which}_eval"])
        runtime_env(params, paths, run=lambda _args: None)
        cluster_spec(params["ray"], params["resources"]["gpus"])
        get_engine(params["engine"])
    return build


def build_plan(params):
    from mileage.engines import engine_of

    engine_of(params).memory_plan(params, name="x")


def build_miles_tools(params):
    from mileage.engines import engine_of
    from mileage.engines.miles.launch import convert_command, export_command

    engine_of(params).container(params)  # the rule runs in its engine's image
    from mileage.engines.miles.engine import _tools

    convert_command(params["card"], "/c/hf", "/c/td", **_tools(params))
    export_command("/r/iter_0000009", "/o", "/c/hf", **_tools(params))


def build_local_train(params):
    from mileage.engines.local.engine import job_env, job_spec
    from mileage.engines.local.grpo import build_grpo_config, eval_sampling
    from mileage.launch.ray_cluster import cluster_spec

    spec = job_spec(params, {"model": "/m", "train_data": "/d/t.jsonl", "eval_data": "/d/e.jsonl"}, Path("/tmp/r"))
    build_grpo_config(spec, "/tmp/r/checkpoints")
    # What build_trainer reads beside the TRL config: prompts, reward, seeds, in-training eval.
    spec["data"]["apply_chat_template"], spec["rollout"]["reward"], spec["rollout_seed"]
    if spec["eval"]["interval"]:
        eval_sampling(spec["eval"])
    job_env(params["ray"])
    cluster_spec(params["ray"], params["resources"]["gpus"])


def build_local_eval(monkeypatch, which):
    def build(params):
        inputs = {"model": "/m", "data": "/d/e.jsonl", "done": "/r/done.json"}
        if which == "final":
            monkeypatch.setattr("mileage.engines.local.engine.final_model", lambda done: "/r/final")
        job = get_engine("local").evaluation_job(params, inputs, Path("/tmp/work"))
        assert not job.cluster  # the runner runs it here: it reads no placement (ray, resources.gpus)
    return build


def declared(stage: str, engine: str) -> set[str]:
    return set(keys.stage_reads(stage, engine))


def assert_exact(stage, engine, reads: set[str]):
    want = declared(stage, engine)
    assert reads <= want, f"{stage}[{engine}] reads undeclared keys {sorted(reads - want)}"
    assert want <= reads, f"{stage}[{engine}] declares keys its work never reads: {sorted(want - reads)}"


# ---- the tests -------------------------------------------------------------------------------------------------------

def test_miles_training_reads_exactly_its_declared_keys():
    reads = set().union(*(recorded("train", exp, build_miles_train) for exp in miles_variants()))
    # miles.container picks the image the rule runs in (Snakemake's container directive), not the argv.
    reads.add("miles.container")
    assert_exact("train", "miles", reads)


@pytest.mark.parametrize("which", ["base", "final"])
def test_miles_evaluations_read_exactly_their_declared_keys(which):
    stage = f"eval_{which}"
    reads = set().union(*(recorded(stage, exp, build_miles_eval(which)) for exp in miles_variants()))
    reads.add("miles.container")
    assert_exact(stage, "miles", reads)


def test_the_miles_memory_plan_reads_exactly_its_declared_keys():
    reads = set().union(*(recorded("preflight", exp, build_plan) for exp in miles_variants()))
    assert_exact("preflight", "miles", reads)


@pytest.mark.parametrize("stage", ["convert_model", "export_hf"])
def test_the_miles_converters_read_exactly_their_declared_keys(stage):
    assert_exact(stage, "miles", recorded(stage, load_experiment(SHIPPED[0]), build_miles_tools))


def test_local_training_reads_exactly_its_declared_keys():
    reads = set().union(*(recorded("train", exp, build_local_train) for exp in local_variants()))
    reads.add("engine")  # which engine the train rule hands the params to (mileage.engines.engine_of)
    assert_exact("train", "local", reads)


@pytest.mark.parametrize("which", ["base", "final"])
def test_local_evaluations_read_exactly_their_declared_keys(monkeypatch, which):
    stage = f"eval_{which}"
    reads = set().union(*(recorded(stage, exp, build_local_eval(monkeypatch, which)) for exp in local_variants()))
    reads.add("engine")
    assert_exact(stage, "local", reads)


def test_the_local_preflight_reads_only_the_engine():
    assert_exact("preflight", "local", recorded("preflight", local_variants()[0], build_plan))


def test_the_report_rules_read_exactly_their_declared_keys(tmp_path, monkeypatch):
    import mileage.stages.evaluate as evaluate
    import mileage.stages.report as report

    exp = local_variants()[0]
    monkeypatch.setattr(evaluate, "read_records", lambda path: [])
    monkeypatch.setattr(evaluate, "summary_document", lambda *a, **kw: {
        side: {"k": 1, "metrics": {"avg@1": {"value": 0.0, "ci95": [0.0, 0.0]}}} for side in ("base", "final")})
    monkeypatch.setattr(evaluate, "write_json", lambda *a: None)
    monkeypatch.setattr(report, "load_summary", lambda path: {})
    monkeypatch.setattr(report, "write_report", lambda *a: None)
    monkeypatch.setattr(report, "plot_training", lambda *a, **kw: [])
    monkeypatch.setattr(report, "plot_summary", lambda *a, **kw: [])
    monkeypatch.setattr(report, "summary_figures", lambda *a, **kw: [])
    monkeypatch.setattr(report, "base_points", lambda summary: {})
    builds = {
        "summarize": lambda p: evaluate.summarize(p, "b", "f", str(tmp_path / "s.json")),
        "report": lambda p: report.report("s", "m", str(tmp_path / "r.md"), p),
        "plots": lambda p: report.figures("s", "m", str(tmp_path / "figs"), p),
    }
    for stage, build in builds.items():
        reads = recorded(stage, exp, build)
        if stage == "plots":
            reads |= {leaf for leaf in keys.schema_leaves() if leaf.startswith("plots.")}  # the style, whole
        assert_exact(stage, "local", reads)


def test_the_cache_keys_read_exactly_their_declared_keys():
    """The shared caches (datasets, demo model, warm start, model download) are keyed by these keys alone."""
    union: set[str] = set()
    experiments = local_variants() + [resolve({**DEMO, "warm_start": {"enabled": False}})] + miles_variants()[:1]
    experiments.append(resolve({**DEMO, "data": {"train": {"source": "file", "path": "config/config.yaml"},
                                                 "eval": {"source": "hf", "repo": "zhuzilin/aime-2024"}}}))
    experiments.append(resolve({"engine": "local", "model": {"source": "path", "path": "config"},
                                "data": {"train": {"source": "demo"},
                                         "eval": {"source": "file", "path": "config/config.yaml"}}}))
    for exp in experiments:
        view = Recording(keys.experiment_view(exp, CONFIG))
        layout = Layout(results="results", base_dir=REPO)
        layout.dataset(view, "train"), layout.dataset(view, "eval"), layout.start_model(view)
        union |= view.reads
    cache_stages = ("dataset", "demo_model", "warm_start", "fetch_model")
    want = set().union(*(declared(stage, "local") for stage in cache_stages))
    # Which of the four a model source uses is itself read (model.source) by all of them.
    assert union <= want, f"the cache keys read undeclared keys {sorted(union - want)}"
    assert want <= union, f"declared cache keys never read: {sorted(want - union)}"


def test_every_declared_key_is_a_schema_key_and_every_engine_declares_every_stage():
    for engine in ("local", "miles"):
        assert set(get_engine(engine).reads) == set(keys.ENGINE_STAGES)
        for stage in keys.STAGES:
            keys.stage_reads(stage, engine)  # raises KeyDeclarationError on a key the schema lacks
    with pytest.raises(keys.KeyDeclarationError):
        keys.expand(["rollout.no_such_key"])


def test_the_resume_policy_names_only_keys_training_reads():
    for engine in ENGINE_NAMES:
        train_leaves = set(keys.stage_reads("train", engine))
        for key in keys.resume_safe_keys(engine):
            assert set(keys.expand([key])) & train_leaves, f"{key} is resume-safe but no {engine} training reads it"


def test_an_engines_own_resume_safe_keys_continue_only_its_runs():
    """The miles checkout's path may change under a miles run (declared by the miles engine, not by mileage.keys)."""
    assert "miles.miles_dir" not in keys.RESUME_SAFE
    assert keys.resume_safe("miles.miles_dir", engine="miles")
    assert keys.resume_safe("miles.python", params={"engine": "miles"})
    assert not keys.resume_safe("miles.miles_dir", engine="local")
    assert keys.resume_safe("ray.port", engine="local") and not keys.resume_safe("train.lr", engine="miles")


def test_mileage_keys_prints_the_declaration(capsys):
    from mileage.cli import main

    assert main(["keys", "plots"]) == 0
    out = capsys.readouterr().out
    assert "plots.dpi" in out and "eval.n_samples_per_prompt" in out and "train.lr " not in out
    assert main(["keys"]) == 0
    table = capsys.readouterr().out
    row = next(line for line in table.splitlines() if line.startswith("rollout.num_rollout "))
    assert row.split()[1:] == ["continues*", "train"]  # both engines' train rules read it
    lr = next(line for line in table.splitlines() if line.startswith("train.lr "))
    assert lr.split()[1] == "afresh" and "eval_base" not in lr
    assert max(len(line) for line in table.splitlines()) <= 100  # a terminal's width
    assert "  train, eval_base, eval_final (miles)\n" in table  # rules of one engine say it once
    assert main(["keys", "no_such_rule"]) == 2
    assert "no_such_rule" in capsys.readouterr().err
