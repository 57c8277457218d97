"""miles' FSDP backend (miles.train_backend: fsdp): its argv, the keys it refuses, its job graph and checkpoint
layout, and the stand-in miles' FSDP parser and run (tests/fake_miles)."""

from __future__ import annotations

import copy
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from fake_miles.experiments import EXPERIMENTS_DIR, MODELS_DIR, REPO, load_experiment, resolve
from fake_miles.miles.utils import arguments as fake_arguments
from mileage.config import ConfigError, ExperimentResolver
from mileage.engines import get_engine
from mileage.engines.miles import checkpoints
from mileage.engines.miles.argv import MilesConfigError, MilesPaths, build_argv, eval_only_argv, model_parallel_sizes
from mileage.engines.miles.engine import miles_paths
from mileage.engines.miles.flags import (UnknownFlagError, fsdp_arguments, known_flags, megatron_only_flags,
                                         validate_flags)
from mileage.engines.miles.launch import eval_entrypoint, export_command, train_entrypoint
from mileage.engines.miles.runtime_env import runtime_env
from mileage.models.cards import load_card

FAKE_MILES = REPO / "tests" / "fake_miles"
SHIPPED = sorted(p.stem for p in EXPERIMENTS_DIR.glob("*.yaml"))
PATHS = MilesPaths(hf_checkpoint="/c/hf", ref_load="/c/hf", run_dir="/r/checkpoints", prompt_data="/d/t.jsonl",
                   eval_data=[("aime", "/d/aime.jsonl")], tensorboard_dir="/r/tb", debug_event_dir="/r/debug",
                   eval_samples_dir="/r/eval_samples")
MEGATRON_FLAGS_FSDP_MUST_NOT_GET = ("--tensor-model-parallel-size", "--pipeline-model-parallel-size",
                                    "--context-parallel-size", "--sequence-parallel", "--recompute-granularity",
                                    "--attention-backend", "--num-layers", "--hidden-size", "--optimizer-cpu-offload",
                                    "--accumulate-allreduce-grads-in-fp32", "--ckpt-step", "--no-load-optim")


def card_of(experiment: dict) -> dict:
    return load_card(experiment["model"]["card"], MODELS_DIR)


def fsdp_experiment(**fsdp) -> dict:
    """The reference GLM experiment switched to FSDP on one colocated GPU (a resolved experiment, edited)."""
    exp = copy.deepcopy(load_experiment("glm-z1-9b-8xh100"))
    exp["miles"]["train_backend"] = "fsdp"
    exp["miles"]["placement"].update(actor_num_nodes=1, actor_num_gpus_per_node=1, rollout_num_gpus_per_engine=1,
                                     colocate=True, num_gpus_per_node=1)
    exp["miles"]["offload"].update(offload_train=False, offload_rollout=True)
    exp["miles"]["fsdp"].update({"cpu_offload": True, **fsdp})
    return exp


def pairs(argv: list[str]) -> dict[str, str]:
    return dict(zip(argv, argv[1:]))


# ---- the argv -----------------------------------------------------------------------------------------------------

def test_the_fsdp_argument_list_is_part_of_miles_flags_and_disjoint_from_megatron_only():
    assert {"--fsdp-cpu-offload", "--keep-fp32-master", "--no-keep-fp32-master", "--gradient-checkpointing",
            "--attn-implementation", "--fsdp-cpu-backend", "--dp-replicate-size"} <= fsdp_arguments()
    assert fsdp_arguments() <= known_flags("fsdp")
    assert not fsdp_arguments() & megatron_only_flags()
    assert "--tensor-model-parallel-size" in megatron_only_flags() and "--lr" not in megatron_only_flags()
    assert "--fsdp-cpu-offload" not in known_flags("megatron")  # FSDP's fields are not Megatron arguments


def test_fsdp_argv_has_fsdp_arguments_and_no_megatron_flag():
    exp = fsdp_experiment()
    argv = build_argv(exp, card_of(exp), PATHS)
    assert argv[:2] == ["--train-backend", "fsdp"]
    assert pairs(argv)["--hf-checkpoint"] == pairs(argv)["--ref-load"] == "/c/hf"
    assert "--fsdp-cpu-offload" in argv and "--no-offload-train" in argv and "--offload-train" not in argv
    assert pairs(argv)["--attn-implementation"] == exp["miles"]["fsdp"]["attn_implementation"]
    assert "--no-keep-fp32-master" not in argv  # the fp32 master is FSDP's default
    for flag in MEGATRON_FLAGS_FSDP_MUST_NOT_GET:
        assert flag not in argv, flag
    assert not set(argv) & megatron_only_flags()
    validate_flags(argv, "fsdp")
    with pytest.raises(UnknownFlagError, match="not an argument of the FSDP backend"):
        validate_flags([*argv, "--tensor-model-parallel-size", "1"], "fsdp")


def test_fsdp_switches_reach_the_argv():
    exp = fsdp_experiment(keep_fp32_master=False, bf16_master_reason="fp32 init does not fit", cpu_backend="nccl",
                          gradient_checkpointing=False, log_probs_max_tokens_per_gpu=2048)
    argv = build_argv(exp, card_of(exp), PATHS)
    assert "--no-keep-fp32-master" in argv and pairs(argv)["--fsdp-cpu-backend"] == "nccl"
    assert "--gradient-checkpointing" not in argv and pairs(argv)["--log-probs-max-tokens-per-gpu"] == "2048"
    no_offload = fsdp_experiment(cpu_offload=False)
    argv = build_argv(no_offload, card_of(no_offload), PATHS)
    assert "--fsdp-cpu-offload" not in argv and "--no-offload-train" not in argv and "--fsdp-cpu-backend" not in argv


def test_fsdp_cpu_offload_with_offload_train_is_refused():
    exp = fsdp_experiment()
    exp["miles"]["offload"]["offload_train"] = True
    with pytest.raises(MilesConfigError, match="miles.offload.offload_train"):
        build_argv(exp, card_of(exp), PATHS)


@pytest.mark.parametrize("name", SHIPPED)
def test_every_shipped_experiment_on_both_backends_uses_only_its_parsers_flags(name, tmp_path):
    """The target: every argv the project can emit (training, base and final evaluation; each shipped experiment as
    shipped and on the other backend) is made of flags of its backend's list, and the stand-in parser accepts it."""
    shipped = load_experiment(name)
    other = copy.deepcopy(shipped)
    other["miles"]["train_backend"] = "megatron" if shipped["miles"]["train_backend"] == "fsdp" else "fsdp"
    if other["miles"]["train_backend"] == "fsdp":
        other["miles"]["offload"]["offload_train"] = False
    else:  # the Megatron layout of a one-GPU FSDP experiment
        other["miles"]["parallelism"].update(tensor=1, context=1)
    for exp in (shipped, other):
        backend, card = exp["miles"]["train_backend"], card_of(exp)
        argvs = [build_argv(exp, card, PATHS),
                 eval_only_argv(exp, card, PATHS, None, n_samples=2, max_response_len=64),
                 eval_only_argv(exp, card, PATHS, "/r/checkpoints/iter_0000020", n_samples=2, max_response_len=64)]
        env = runtime_env(exp, PATHS, run=lambda _args: None)["env_vars"]
        for argv in argvs:
            validate_flags(argv, backend)
            if backend == "fsdp":
                assert not set(argv) & megatron_only_flags(), name
            with pytest.MonkeyPatch.context() as mp:
                mp.setenv("CUDA_DEVICE_MAX_CONNECTIONS", env["CUDA_DEVICE_MAX_CONNECTIONS"])
                assert fake_arguments.parse_args(argv).train_backend == backend


def test_fsdp_eval_only_loads_a_pinned_weights_root_not_a_ckpt_step():
    exp = fsdp_experiment()
    argv = eval_only_argv(exp, card_of(exp), PATHS, "/r/run/checkpoints/iter_0000020", n_samples=4,
                          max_response_len=64)
    assert pairs(argv)["--load"] == PATHS.run_dir and "--ckpt-step" not in argv and "--no-load-optim" not in argv
    base = eval_only_argv(exp, card_of(exp), PATHS, None, n_samples=4, max_response_len=64)
    assert "--load" not in base and pairs(base)["--ref-load"] == "/c/hf"


MILES_ENTRY = {"engine": "miles", "model": {"source": "hf", "card": "glm-z1-9b-0414"},
               "data": {"train": {"source": "hf", "repo": "zhuzilin/dapo-math-17k"},
                        "eval": {"source": "hf", "repo": "zhuzilin/aime-2024"}}}


def test_fsdp_has_no_model_parallelism_whatever_the_schema_defaults_say():
    entry = MILES_ENTRY
    assert model_parallel_sizes(resolve(entry)) == (2, 2)  # the schema's defaults, for Megatron
    assert model_parallel_sizes(resolve({**entry, "miles": {"train_backend": "fsdp"}})) == (1, 1)


# ---- refused at load ------------------------------------------------------------------------------------------------

def resolve_entry(entry: dict, name: str = "x") -> dict:
    return ExperimentResolver({"experiments": {name: entry}}, base_dir=REPO).resolve(name)


FSDP_BASE = {"extends": "config/experiments/qwen3-4b-1x5090.yaml"}


@pytest.mark.parametrize("key, value", [
    ("parallelism", {"tensor": 2}), ("parallelism", {"context": 2}), ("recompute", {"granularity": "selective"}),
    ("attention_backend", "fused"), ("offload", {"optimizer_cpu_offload": True}), ("attention_dropout", 0.0),
])
def test_an_fsdp_experiment_setting_a_megatron_only_key_is_refused_naming_it(key, value):
    if not (EXPERIMENTS_DIR / "qwen3-4b-1x5090.yaml").is_file():
        pytest.skip("no shipped FSDP experiment")
    leaf = key + ("." + next(iter(value)) if isinstance(value, dict) else "")
    with pytest.raises(ConfigError, match=rf"^experiments\.x\.miles\.{leaf}: a Megatron-only key"):
        resolve_entry({**FSDP_BASE, "miles": {key: value}})


def test_switching_a_megatron_experiment_to_fsdp_names_its_megatron_keys():
    with pytest.raises(ConfigError, match=r"^experiments\.x\.miles\.[a-z0-9_.]+: a Megatron-only key.*"
                                          r"experiments\.x\.miles\.parallelism\.tensor"):
        resolve_entry({"extends": "config/experiments/glm-z1-9b-8xh100.yaml", "miles": {"train_backend": "fsdp"}})


def test_an_fsdp_setting_on_a_megatron_experiment_is_refused():
    with pytest.raises(ConfigError, match=r"^experiments\.x\.miles\.fsdp\.cpu_offload: an FSDP setting"):
        resolve_entry({"extends": "config/experiments/glm-z1-9b-8xh100.yaml", "miles": {"fsdp": {"cpu_offload": True}}})


def test_schema_defaults_of_megatron_keys_are_not_refused():
    exp = resolve({**MILES_ENTRY, "miles": {"train_backend": "fsdp"}})
    assert exp["miles"]["parallelism"]["tensor"] == 2  # the schema's default, unused by FSDP
    assert exp["miles"]["train_backend"] == "fsdp"


# ---- job graph and checkpoints ---------------------------------------------------------------------------------------

def test_fsdp_trains_the_hf_snapshot_without_a_conversion():
    engine, exp = get_engine("miles"), fsdp_experiment()
    assert not engine.converts(exp) and engine.model_inputs(None, exp) == {}
    assert engine.exports(exp)
    inputs = {"model": "/c/hf/snapshot.json", "train_data": "/d/t.jsonl", "eval_data": "/d/e.jsonl"}
    paths = miles_paths(exp, inputs, Path("/r/run"))
    assert paths.ref_load == paths.hf_checkpoint


def fsdp_save(root: Path, iteration: int, optimizer: bool = True) -> Path:
    it = root / f"iter_{iteration:07d}"
    (it / "model").mkdir(parents=True)
    (it / "model" / "weights.json").write_text(json.dumps({"rollouts_trained": iteration}))
    if optimizer:
        (it / "optimizer").mkdir()
    (root / checkpoints.TRACKER).write_text(str(iteration))
    return it


def test_fsdp_checkpoints_count_rollouts_trained(tmp_path):
    root = tmp_path / "run" / "checkpoints"
    fsdp_save(root, 2)
    fsdp_save(root, 4)
    (root / "iter_0000006" / "model").mkdir(parents=True)  # cut off before the tracker: not complete
    found = get_engine("miles").checkpoints(fsdp_experiment(), tmp_path / "run")
    assert [(c.rollouts, c.path.name) for c in found] == [(2, "iter_0000002"), (4, "iter_0000004")]
    assert checkpoints.next_rollout(root, "fsdp") == 4 and checkpoints.next_rollout(root) == 5
    final, iteration = get_engine("miles").final_model(fsdp_experiment(), {}, tmp_path / "run", found[-1])
    assert final.endswith("iter_0000004") and iteration == 4


def test_pinned_weights_root_holds_only_the_weights_of_one_save(tmp_path):
    root = tmp_path / "run" / "checkpoints"
    fsdp_save(root, 2)
    fsdp_save(root, 4)
    pinned = checkpoints.pin_fsdp_weights(root / "iter_0000002", tmp_path / "eval" / "checkpoints")
    assert checkpoints.read_tracker(pinned) == "2"
    assert sorted(p.name for p in (pinned / "iter_0000002").iterdir()) == ["model"]
    assert (pinned / "iter_0000002" / "model" / "weights.json").is_file()
    with pytest.raises(checkpoints.CheckpointError, match="not an FSDP save"):
        checkpoints.pin_fsdp_weights(tmp_path, tmp_path / "x")


def test_export_uses_the_converter_of_the_saves_layout():
    assert export_command("/r/iter_0000004", "/o", "/c/hf", backend="fsdp")[3].endswith("tools/convert_fsdp_to_hf.py")
    assert export_command("/r/iter_0000004", "/o", "/c/hf")[3].endswith("tools/convert_torch_dist_to_hf.py")


# ---- the stand-in miles ---------------------------------------------------------------------------------------------

def parse_in_subprocess(argv: list[str], **env: str) -> subprocess.CompletedProcess:
    """The documented interface: miles' parse_args on sys.argv, in a fresh interpreter."""
    code = ("import sys; sys.argv = ['train.py', *sys.argv[1:]]; "
            "from miles.utils.arguments import parse_args; parse_args()")
    clean = {k: v for k, v in os.environ.items() if k not in ("CUDA_DEVICE_MAX_CONNECTIONS", "FAKE_MILES_GPU_ARCH")}
    return subprocess.run([sys.executable, "-c", code, *argv], capture_output=True, text=True, timeout=60,
                          env={**clean, "PYTHONPATH": str(FAKE_MILES), **env})


def test_stand_in_parser_judges_like_miles():
    exp = fsdp_experiment()
    fsdp = build_argv(exp, card_of(exp), PATHS)
    megatron_exp = load_experiment("glm-z1-9b-8xh100")
    megatron = build_argv(megatron_exp, card_of(megatron_exp), PATHS)
    assert parse_in_subprocess(fsdp).returncode == 0
    bad = parse_in_subprocess([*fsdp, "--recompute-granularity", "full"])
    assert bad.returncode == 2 and "unrecognized arguments: --recompute-granularity full" in bad.stderr
    # Megatron on a Hopper refuses tensor/context parallelism without CUDA_DEVICE_MAX_CONNECTIONS=1 (issue 8).
    refused = parse_in_subprocess(megatron)
    assert refused.returncode == 1 and "CUDA_DEVICE_MAX_CONNECTIONS" in refused.stderr
    assert parse_in_subprocess(megatron, CUDA_DEVICE_MAX_CONNECTIONS="1").returncode == 0
    assert parse_in_subprocess(megatron, FAKE_MILES_GPU_ARCH="12").returncode == 0  # Blackwell does not ask
    with pytest.raises(SystemExit):
        fake_arguments.parse_args([*megatron, "--fsdp-cpu-offload"])  # FSDP's fields are not Megatron flags
    with pytest.raises(AssertionError, match="adam"):
        fake_arguments.parse_args([*fsdp, "--optimizer", "sgd"])
    with pytest.raises(AssertionError, match="context parallelism"):
        fake_arguments.parse_args([*fsdp, "--context-parallel-size", "2"])


def test_every_tp_or_cp_experiment_gets_cuda_device_max_connections_in_train_py_itself(tmp_path):
    """Item 7: the Ray job's runtime_env (which Ray applies to the entrypoint, train.py's own process) carries it
    for every experiment with tensor or context parallelism > 1; the stand-in, like Megatron, refuses without it."""
    checked = 0
    for name in SHIPPED:
        exp = load_experiment(name)
        if max(model_parallel_sizes(exp)) > 1:
            assert runtime_env(exp, PATHS, run=lambda _args: None)["env_vars"]["CUDA_DEVICE_MAX_CONNECTIONS"] == "1"
            checked += 1
    assert checked  # the 8 x H100 reference runs with TP 2 and CP 2


def run_stand_in(command: list[str], env: dict, **extra) -> subprocess.CompletedProcess:
    return subprocess.run(command, capture_output=True, text=True, timeout=120, env={**env, **extra})


def test_stand_in_fsdp_run_saves_resumes_evaluates_and_exports(tmp_path):
    exp = fsdp_experiment()
    exp["miles"].update(miles_dir=str(FAKE_MILES), python=sys.executable)
    exp["rollout"].update(num_rollout=4, rollout_batch_size=4, n_samples_per_prompt=2)
    exp["train"].update(global_batch_size=4, num_steps_per_rollout=2, save_interval=2)
    exp["eval"].update(interval=2, n_samples_per_prompt=1, max_response_len=16)
    data = tmp_path / "aime.jsonl"
    data.write_text("".join(json.dumps({"prompt": f"p{i}", "label": str(i)}) + "\n" for i in range(3)))
    hf = tmp_path / "hf"
    hf.mkdir()
    (hf / "config.json").write_text("{}")
    run = tmp_path / "run"
    paths = MilesPaths(hf_checkpoint=str(hf), ref_load=str(hf), run_dir=str(run / "checkpoints"),
                       prompt_data=str(data), eval_data=[("aime", str(data))], tensorboard_dir=None,
                       debug_event_dir=str(run / "debug_events"), eval_samples_dir=str(run / "eval_samples"))
    env = {**os.environ, **runtime_env(exp, paths, hook_dir=REPO, run=lambda _a: None)["env_vars"],
           "PYTHONPATH": str(REPO)}
    command = train_entrypoint(exp, card_of(exp), paths)
    died = run_stand_in(command, env, FAKE_MILES_DIE_AT="3")
    assert died.returncode == 3, died.stderr
    assert checkpoints.read_tracker(paths.run_dir) == "2"  # FSDP numbers a save by rollouts trained
    saved = Path(paths.run_dir) / "iter_0000002"
    assert {p.name for p in saved.iterdir()} >= {"model", "optimizer", "lr_scheduler", "meta.json", "rng.pt"}
    done = run_stand_in(command, env)
    assert done.returncode == 0, done.stderr
    assert "start rollout 2" in done.stdout and "(FSDPTrainRayActor pid=" in done.stdout
    found = get_engine("miles").checkpoints(exp, run)
    assert [c.rollouts for c in found] == [2, 4]
    # The final evaluation: the weights of iter_0000004 only, pinned in the evaluation's own directory.
    work = tmp_path / "eval"
    eval_paths = MilesPaths(**{**paths.__dict__, "run_dir": str(work / "checkpoints"),
                               "eval_samples_dir": str(work / "eval_samples"), "debug_event_dir": None})
    checkpoints.pin_fsdp_weights(found[-1].path, eval_paths.run_dir)
    eval_env = {**env, **runtime_env(exp, eval_paths, hook_dir=REPO, run=lambda _a: None)["env_vars"],
                "PYTHONPATH": str(REPO)}
    evaluation = run_stand_in(eval_entrypoint(exp, card_of(exp), eval_paths, str(found[-1].path),
                                              n_samples=2, max_response_len=16), eval_env)
    assert evaluation.returncode == 0, evaluation.stderr
    assert f"loading {eval_paths.run_dir}, start rollout 4" in evaluation.stdout
    assert "Optimizer checkpoint not found" in evaluation.stdout  # weights only
    assert (work / "eval_samples" / "aime" / "rollout_0.jsonl").is_file()
    out = tmp_path / "hf_out"
    exported = run_stand_in(export_command(found[-1].path, out, hf, FAKE_MILES, "/nonexistent", python=sys.executable,
                                           backend="fsdp"), env)
    assert exported.returncode == 0, exported.stderr
    record = json.loads((out / "mileage_fake_export.json").read_text())
    assert record["backend"] == "fsdp" and record["rollouts_trained"] == 4
    wrong = run_stand_in(export_command(found[-1].path, out, hf, FAKE_MILES, "/nonexistent", python=sys.executable),
                         env)
    assert wrong.returncode != 0  # the torch_dist converter does not read an FSDP save
