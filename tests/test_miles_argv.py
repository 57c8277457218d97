"""The miles train.py command line: the reference experiment is miles' recipe, every option gives known flags."""

from __future__ import annotations

import asyncio
import copy
from types import SimpleNamespace

import pytest

from fake_miles.experiments import EXPERIMENTS_DIR, MODELS_DIR, load_experiment, load_schema
from mileage.engines.miles.argv import (EVAL_HOOK, MilesConfigError, MilesPaths, argv_groups, build_argv,
                                        eval_only_argv, format_groups)
from mileage.engines.miles.flags import UnknownFlagError, known_flags, validate_flags
from mileage.models.cards import load_card

PATHS = MilesPaths(
    hf_checkpoint="/c/hf", ref_load="/c/torch_dist", run_dir="/r/checkpoints", prompt_data="/d/dapo-math-17k.jsonl",
    eval_data=[("aime", "/d/aime-2024.jsonl")], tensorboard_dir="/r/tensorboard", debug_event_dir="/r/debug_events",
    eval_samples_dir="/r/eval_samples",
)

# miles/FACTS.md section 1, the reference launcher's arguments group by group, spelled by hand; paths as PATHS.
FACTS_REFERENCE = """
--actor-num-nodes 1 --actor-num-gpus-per-node 4 --rollout-num-gpus 4
--spec miles_plugins.models.glm4 get_glm_spec --swiglu --num-layers 40 --hidden-size 4096 --ffn-hidden-size 13696
--num-attention-heads 32 --group-query-attention --num-query-groups 2 --use-rotary-position-embeddings
--disable-bias-linear --add-qkv-bias --normalization RMSNorm --norm-epsilon 1e-5 --rotary-base 10000
--vocab-size 151552 --post-self-attn-layernorm --post-mlp-layernorm --rotary-interleaved --rotary-percent 0.5
--no-rope-fusion --untie-embeddings-and-output-weights
--hf-checkpoint /c/hf --ref-load /c/torch_dist --load /r/checkpoints --save /r/checkpoints --save-interval 20
--prompt-data /d/dapo-math-17k.jsonl --input-key prompt --label-key label --apply-chat-template --rollout-shuffle
--rm-type deepscaler --num-rollout 3000 --rollout-batch-size 32 --n-samples-per-prompt 8
--rollout-max-response-len 8192 --rollout-temperature 1 --global-batch-size 256 --balance-data
--eval-interval 20 --eval-prompt-data aime /d/aime-2024.jsonl --n-samples-per-eval-prompt 16
--eval-max-response-len 16384 --eval-top-p 1
--tensor-model-parallel-size 2 --sequence-parallel --pipeline-model-parallel-size 1
--context-parallel-size 2 --expert-model-parallel-size 1 --expert-tensor-parallel-size 1
--recompute-granularity full --recompute-method uniform --recompute-num-layers 1 --use-dynamic-batch-size
--max-tokens-per-gpu 4608
--advantage-estimator grpo --use-kl-loss --kl-loss-coef 0.00 --kl-loss-type low_var_kl --entropy-coef 0.00
--eps-clip 0.2 --eps-clip-high 0.28
--optimizer adam --lr 1e-6 --lr-decay-style constant --weight-decay 0.1 --adam-beta1 0.9 --adam-beta2 0.98
--rollout-num-gpus-per-engine 2
--attention-dropout 0.0 --hidden-dropout 0.0 --accumulate-allreduce-grads-in-fp32 --attention-softmax-in-fp32
--attention-backend flash
""".split()
CAPTURE = ["--use-tensorboard", "--save-debug-event-data", "/r/debug_events",
           "--custom-eval-rollout-log-function-path", EVAL_HOOK]
SHIPPED = sorted(p.stem for p in EXPERIMENTS_DIR.glob("*.yaml"))


def same_token(a: str, b: str) -> bool:
    """Tokens are equal as text, or as numbers (the recipe writes 0.00 and 1e-6 where we write 0 and 1e-06)."""
    if a == b:
        return True
    try:
        return float(a) == float(b)
    except ValueError:
        return False


@pytest.fixture(scope="module")
def card():
    return load_card("glm-z1-9b-0414", MODELS_DIR)


def card_of(experiment: dict) -> dict:
    return load_card(experiment["model"]["card"], MODELS_DIR)


@pytest.fixture(scope="module")
def reference():
    return load_experiment("glm-z1-9b-8xh100")


def test_reference_experiment_is_the_recipe_token_by_token(reference, card):
    argv = build_argv(reference, card, PATHS)
    assert argv[-len(CAPTURE):] == CAPTURE
    core = argv[: -len(CAPTURE)]
    assert len(core) == len(FACTS_REFERENCE), (core, FACTS_REFERENCE)
    mismatches = [(i, a, b) for i, (a, b) in enumerate(zip(core, FACTS_REFERENCE)) if not same_token(a, b)]
    assert mismatches == []


def test_groups_follow_the_launcher(reference, card):
    names = [name for name, _ in argv_groups(reference, card, PATHS)]
    assert names == ["placement", "model", "checkpoints", "rollout", "eval", "parallelism/performance", "GRPO",
                     "optimizer", "SGLang", "misc", "metrics capture"]
    listing = format_groups(argv_groups(reference, card, PATHS))
    assert "# GRPO\n  --advantage-estimator grpo\n  --use-kl-loss\n" in listing


@pytest.mark.parametrize("name", SHIPPED)
def test_every_shipped_experiment_uses_known_flags(name, card):
    experiment = load_experiment(name)
    argv = build_argv(experiment, card_of(experiment), PATHS)
    validate_flags(argv, experiment["miles"]["train_backend"])
    assert "--wandb-key" not in argv


def test_5090_experiments_carry_the_blackwell_settings(card):
    argv = build_argv(load_experiment("glm-z1-9b-2x5090"), card, PATHS)
    for token in ["--colocate", "--offload-train", "--offload-rollout", "--optimizer-cpu-offload",
                  "--overlap-cpu-optimizer-d2h-h2d", "--use-precision-aware-optimizer"]:
        assert token in argv
    assert argv[argv.index("--attention-backend") + 1] == "fused"
    assert argv[argv.index("--sglang-attention-backend") + 1] == "flashinfer"
    assert argv[argv.index("--num-gpus-per-node") + 1] == "2"
    assert "--rollout-num-gpus" not in argv  # colocated engines use the trainer's GPUs
    assert "--use-kl-loss" not in argv


def _options(schema: dict, node: dict, path: tuple[str, ...]):
    """(key path, value) for every boolean and enum value the schema allows below `node`."""
    if "$ref" in node:
        node = schema["$defs"][node["$ref"].rsplit("/", 1)[-1]]
    for key, sub in node.get("properties", {}).items():
        here = path + (key,)
        if "enum" in sub:
            for value in sub["enum"]:
                yield here, value
        elif sub.get("type") == "boolean":
            yield here, True
            yield here, False
        elif sub.get("type") == "object":
            yield from _options(schema, sub, here)


def _set(experiment: dict, path: tuple[str, ...], value) -> dict:
    out = copy.deepcopy(experiment)
    node = out["miles"]
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    return out


SCHEMA = load_schema()
OPTIONS = list(_options(SCHEMA, SCHEMA["$defs"]["miles"], ()))


def test_schema_has_the_options_we_iterate():
    keys = {".".join(p) for p, _ in OPTIONS}
    assert {"placement.colocate", "offload.optimizer_cpu_offload", "attention_backend", "sglang.attention_backend",
            "recompute.granularity", "nvlink", "deterministic"} <= keys


@pytest.mark.parametrize("path,value", OPTIONS, ids=[f"{'.'.join(p)}={v}" for p, v in OPTIONS])
def test_every_schema_option_yields_known_flags(path, value, card):
    built = 0
    for base in ("glm-z1-9b-8xh100", "glm-z1-9b-4x5090"):  # non-colocated and colocated layouts
        experiment = _set(load_experiment(base), path, value)
        try:
            argv = build_argv(experiment, card, PATHS)
        except MilesConfigError:
            continue  # a combination miles would refuse (e.g. offload without colocate) is refused here too
        validate_flags(argv, experiment["miles"]["train_backend"])
        built += 1
    assert built, f"miles.{'.'.join(path)}={value!r} builds with neither layout"


def test_combined_deterministic_extras(reference, card):
    experiment = copy.deepcopy(reference)
    experiment["miles"]["deterministic"] = True
    experiment["miles"]["sglang"]["extra"] = {"chunked_prefill_size": 4096, "disable-radix-cache": True,
                                              "enable_metrics": False}
    argv = build_argv(experiment, card, PATHS)
    assert argv[argv.index("--sglang-attention-backend") + 1] == "flashinfer"
    assert "--sglang-enable-deterministic-inference" in argv and "--deterministic-mode" in argv
    assert argv[argv.index("--sglang-chunked-prefill-size") + 1] == "4096"
    assert "--sglang-disable-radix-cache" in argv and "--sglang-enable-metrics" not in argv
    experiment["miles"]["sglang"]["attention_backend"] = "triton"
    with pytest.raises(MilesConfigError, match="flashinfer"):
        build_argv(experiment, card, PATHS)


def test_non_default_values_appear_and_defaults_do_not(reference, card):
    experiment = copy.deepcopy(reference)
    experiment.update(seed=7, rollout_seed=9)
    experiment["train"]["clip_grad"] = 0.5
    experiment["rollout"]["top_p"] = 0.9
    experiment["eval"]["temperature"] = 0.6
    experiment["tracking"].update(wandb=True, wandb_project="p", wandb_group="g")
    argv = build_argv(experiment, card, PATHS)
    pairs = dict(zip(argv, argv[1:]))
    assert pairs["--seed"] == "7" and pairs["--rollout-seed"] == "9" and pairs["--clip-grad"] == "0.5"
    assert pairs["--rollout-top-p"] == "0.9" and pairs["--eval-temperature"] == "0.6"
    assert argv[-5:] == ["--use-wandb", "--wandb-project", "p", "--wandb-group", "g"]
    default_argv = build_argv(reference, card, PATHS)
    for flag in ("--seed", "--rollout-seed", "--clip-grad", "--rollout-top-p", "--eval-temperature", "--use-wandb"):
        assert flag not in default_argv


def test_kl_off_drops_the_reference_model_flags(reference, card):
    experiment = copy.deepcopy(reference)
    experiment["miles"]["skip_kl_when_zero"] = True
    argv = build_argv(experiment, card, PATHS)
    assert "--use-kl-loss" not in argv and "--kl-loss-coef" not in argv


def test_bad_layouts_are_refused_with_the_key(reference, card):
    tp4 = _set(reference, ("parallelism", "tensor"), 4)
    tp4["miles"]["parallelism"]["context"] = 1
    with pytest.raises(MilesConfigError, match="parallelism.tensor=4"):
        build_argv(tp4, card, PATHS)
    odd = _set(reference, ("placement", "rollout_num_gpus"), 3)
    with pytest.raises(MilesConfigError, match="rollout_num_gpus_per_engine"):
        build_argv(odd, card, PATHS)
    offload = _set(reference, ("offload", "offload_train"), True)
    with pytest.raises(MilesConfigError, match="colocate"):
        build_argv(offload, card, PATHS)
    local = {**reference, "engine": "local"}
    with pytest.raises(MilesConfigError, match="engine"):
        build_argv(local, card, PATHS)


def test_unknown_flags_are_named_with_suggestions(reference, card):
    with pytest.raises(UnknownFlagError, match=r"--rollout-batchsize \(did you mean --rollout-batch-size"):
        validate_flags(["--rollout-batchsize", "4"])
    experiment = _set(reference, ("extra_args",), ["--adam-eps", "1e-8", "--bogus-flag"])
    with pytest.raises(UnknownFlagError, match="--bogus-flag"):
        build_argv(experiment, card, PATHS)
    validate_flags(["--sglang-anything", "--eval-sglang-x", "--router-y", "--lr=1e-6"])
    assert "--rollout-batch-size" in known_flags() and "--tensor-model-parallel-size" in known_flags()


def test_a_secret_in_extra_args_is_refused_not_passed_on(reference, card):
    experiment = _set(reference, ("extra_args",), ["--wandb-key=0123456789abcdef"])
    with pytest.raises(MilesConfigError, match=r"miles.extra_args\[0\]: --wandb-key takes a secret"):
        build_argv(experiment, card, PATHS)
    with pytest.raises(MilesConfigError, match="--wandb-key"):
        eval_only_argv(experiment, card, PATHS, None, n_samples=4, max_response_len=2048)


def test_eval_only_argv(reference, card):
    argv = eval_only_argv(reference, card, PATHS, "/r/checkpoints", n_samples=4, max_response_len=2048,
                          temperature=0.6, top_p=0.95, seed=3)
    pairs = dict(zip(argv, argv[1:]))
    assert pairs["--num-rollout"] == "0" and pairs["--eval-interval"] == "1"
    assert pairs["--rollout-batch-size"] == "32" and pairs["--load"] == "/r/checkpoints"
    assert pairs["--n-samples-per-eval-prompt"] == "4" and pairs["--eval-max-response-len"] == "2048"
    assert pairs["--eval-temperature"] == "0.6" and pairs["--eval-top-p"] == "0.95" and pairs["--rollout-seed"] == "3"
    assert "--save" not in argv and "--prompt-data" not in argv and "--use-kl-loss" not in argv
    assert pairs["--custom-eval-rollout-log-function-path"] == EVAL_HOOK
    base = eval_only_argv(reference, card, PATHS, None, n_samples=4, max_response_len=2048)
    assert "--load" not in base and dict(zip(base, base[1:]))["--ref-load"] == "/c/torch_dist"


@pytest.mark.parametrize("name", ["deepscaler_nothink", "math_verify"])
def test_a_reward_miles_lacks_goes_through_the_one_hook_named_by_the_job_env(reference, card, monkeypatch, name):
    """Every reward miles does not ship is the same --custom-rm-path hook; the job's runtime env names the rule."""
    from mileage.engines.miles.reward_hook import REWARD_ENV, RewardHookError
    from mileage.engines.miles.runtime_env import runtime_env

    experiment = copy.deepcopy(reference)
    experiment["rollout"]["reward"] = name
    argv = build_argv(experiment, card, PATHS)
    module, func = dict(zip(argv, argv[1:]))["--custom-rm-path"].rsplit(".", 1)
    assert "--rm-type" not in argv
    hook = getattr(__import__(module, fromlist=[func]), func)
    env = runtime_env(experiment, PATHS, run=lambda args: None)["env_vars"]
    monkeypatch.setenv(REWARD_ENV, env[REWARD_ENV])
    nothink = "so \\boxed{12}"  # no </think>: only deepscaler_nothink grades it
    assert asyncio.run(hook(None, SimpleNamespace(response=nothink, label="12"))) == (name == "deepscaler_nothink")
    assert asyncio.run(hook(None, SimpleNamespace(response="</think> \\boxed{\\frac{24}{2}}", label="12"))) == (
        name == "math_verify")
    monkeypatch.delenv(REWARD_ENV)
    with pytest.raises(RewardHookError, match=REWARD_ENV):
        asyncio.run(hook(None, SimpleNamespace(response=nothink, label="12")))


def test_an_unknown_reward_is_refused_by_name(reference, card):
    experiment = copy.deepcopy(reference)
    experiment["rollout"]["reward"] = "math"
    with pytest.raises(MilesConfigError, match="rollout.reward: unknown reward 'math'"):
        build_argv(experiment, card, PATHS)


def test_eval_only_pins_one_iteration_directory(reference, card):
    argv = eval_only_argv(reference, card, PATHS, "/r/checkpoints/iter_0002999", n_samples=16, max_response_len=16384)
    i = argv.index("--load")
    assert argv[i:i + 4] == ["--load", "/r/checkpoints", "--ckpt-step", "2999"]
