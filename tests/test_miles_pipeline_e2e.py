"""The miles branch of the pipeline end to end: real Snakemake, a real loopback Ray head, real offline
`snapshot_download` from a hub-format cache, and the stand-in miles checkout (tests/fake_miles) as the Ray job.

In a scratch copy of the repo: a tiny model card, a local HF cache with the tiny model and the two datasets
(from the shared data fixtures) pinned by a lock file, and one miles experiment. The training job is first
killed midway (FAKE_MILES_DIE_AT), its newest save is then cut short, and the same command resumes it from the
save before that one (setting the bad one aside, saying so) and runs the rest of the pipeline
(metrics, base/final eval-only jobs, summary, report, plots, comparison). A second copy asks for a model
that cannot fit and must stop at the preflight, before any download.
"""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from hf_cache_fixture import make_hf_cache, safetensors_bytes
from pipeline_helpers import SNAKEMAKE, copy_repo

pytestmark = pytest.mark.slow

SHARED = Path(__file__).resolve().parents[2] / "shared"
DAPO = SHARED / "data" / "dapo-math-17k" / "dapo-math-17k.head84.jsonl"
AIME = SHARED / "data" / "aime-2024" / "aime-2024.jsonl"

EXP = "tiny"
MODEL_REPO = "mileage-test/tiny-glm"
NUM_ROLLOUT, SAVE_INTERVAL, EVAL_INTERVAL = 6, 2, 2
ROLLOUT_BATCH, N_SAMPLES, GLOBAL_BATCH = 4, 2, 4  # 2 optimizer steps per rollout
STEPS_PER_ROLLOUT = ROLLOUT_BATCH * N_SAMPLES // GLOBAL_BATCH
DIE_AT = 4  # dies at the start of rollout 4, after the save at rollout 3
RESUMED_AT = DIE_AT - SAVE_INTERVAL  # the save at rollout 3 is then cut short: the rerun resumes after rollout 1
BASE_K, FINAL_K = 4, 4
SHAPE = {"hidden_size": 64, "intermediate_size": 128, "num_layers": 2, "num_attention_heads": 4, "num_kv_heads": 2,
         "head_dim": 16, "vocab_size": 1024}


def tiny_card(name: str, parameter_count: int) -> dict:
    """A card with the keys of config/models/glm-z1-9b-0414.yaml, for a 2-layer GLM-4 of hidden size 64."""
    s = SHAPE
    return {
        "name": name,
        "description": "A tiny GLM-4 for the miles pipeline test.",
        "hf": {"repo": MODEL_REPO, "revision": None},
        "architecture": "Glm4ForCausalLM",
        "megatron_args": [
            "--spec", "miles_plugins.models.glm4", "get_glm_spec", "--swiglu",
            "--num-layers", str(s["num_layers"]), "--hidden-size", str(s["hidden_size"]),
            "--ffn-hidden-size", str(s["intermediate_size"]), "--num-attention-heads", str(s["num_attention_heads"]),
            "--group-query-attention", "--num-query-groups", str(s["num_kv_heads"]),
            "--use-rotary-position-embeddings", "--disable-bias-linear", "--add-qkv-bias",
            "--normalization", "RMSNorm", "--norm-epsilon", "1e-5", "--rotary-base", "10000",
            "--vocab-size", str(s["vocab_size"]), "--post-self-attn-layernorm", "--post-mlp-layernorm",
            "--rotary-interleaved", "--rotary-percent", "0.5", "--no-rope-fusion",
            "--untie-embeddings-and-output-weights",
        ],
        "parameter_count": parameter_count,
        "weight_bytes_bf16": 2 * parameter_count,
        "shapes": {**s, "partial_rotary_factor": 0.5, "tie_word_embeddings": False, "rms_norm_eps": 1.0e-5,
                   "rope_theta": 10000.0},
        "expected_files": ["config.json", "tokenizer.json", "tokenizer_config.json", "model.safetensors"],
        "startup_checks": {"hidden_size": "hidden_size", "num_hidden_layers": "num_layers"},
    }


def model_files() -> dict[str, bytes]:
    s = SHAPE
    config = {"architectures": ["Glm4ForCausalLM"], "model_type": "glm4", "hidden_size": s["hidden_size"],
              "intermediate_size": s["intermediate_size"], "num_hidden_layers": s["num_layers"],
              "num_attention_heads": s["num_attention_heads"], "num_key_value_heads": s["num_kv_heads"],
              "head_dim": s["head_dim"], "vocab_size": s["vocab_size"], "partial_rotary_factor": 0.5,
              "rms_norm_eps": 1e-5, "rope_theta": 10000.0, "tie_word_embeddings": False, "torch_dtype": "bfloat16"}
    tokenizer = {"version": "1.0", "model": {"type": "WordLevel", "vocab": {"<unk>": 0, "a": 1}, "unk_token": "<unk>"}}
    return {
        "config.json": json.dumps(config, indent=1).encode(),
        "tokenizer.json": json.dumps(tokenizer).encode(),
        "tokenizer_config.json": json.dumps({"tokenizer_class": "PreTrainedTokenizerFast"}).encode(),
        "model.safetensors": safetensors_bytes({"model.norm.weight": [1.0] * s["hidden_size"]}),
    }


def experiment(repo: Path, card: str, gpu_memory_gb: float) -> dict:
    return {
        "description": "tiny GLM-4 through the miles branch with the stand-in miles",
        "engine": "miles",
        "model": {"source": "hf", "card": card},
        "data": {"train": {"name": "dapo", "source": "hf", "repo": "zhuzilin/dapo-math-17k"},
                 "eval": {"name": "aime", "source": "hf", "repo": "zhuzilin/aime-2024"}},
        "rollout": {"num_rollout": NUM_ROLLOUT, "rollout_batch_size": ROLLOUT_BATCH, "n_samples_per_prompt": N_SAMPLES,
                    "max_response_len": 64, "reward": "deepscaler"},
        "train": {"global_batch_size": GLOBAL_BATCH, "save_interval": SAVE_INTERVAL},
        "eval": {"interval": EVAL_INTERVAL, "n_samples_per_prompt": 2, "max_response_len": 64},
        "base_eval": {"n_samples_per_prompt": BASE_K, "max_response_len": 64},
        "final_eval": {"n_samples_per_prompt": FINAL_K, "max_response_len": 64},
        # Sizes given, so the preflight does not depend on this machine (which has no GPU).
        "resources": {"gpus": 1, "gpu_memory_gb": gpu_memory_gb, "host_memory_gb": 64},
        "ray": {"num_cpus": 1},
        "miles": {
            "miles_dir": str(repo / "tests" / "fake_miles"),
            "megatron_dir": str(repo / "no-megatron-here"),
            "python": sys.executable,
            "placement": {"actor_num_nodes": 1, "actor_num_gpus_per_node": 1, "rollout_num_gpus_per_engine": 1,
                          "colocate": True, "num_gpus_per_node": 1},
            "parallelism": {"tensor": 1, "pipeline": 1, "context": 1, "sequence_parallel": False},
            "offload": {"offload_train": True, "offload_rollout": True},
            "nvlink": False,
        },
    }


def scratch_repo(dest: Path, card: dict, gpu_memory_gb: float) -> Path:
    """A copy of the repo with the card, a pinned offline HF cache and a config of one miles experiment."""
    if not (DAPO.is_file() and AIME.is_file()):
        pytest.skip(f"shared data fixtures not found under {SHARED / 'data'}")
    repo = copy_repo(dest)
    (repo / "config" / "models" / f"{card['name']}.yaml").write_text(yaml.safe_dump(card, sort_keys=False))
    cache = repo / "results" / "cache" / "hf-hub"  # the cache_dir of rules fetch_model and fetch_dataset
    lock = {
        f"model:{MODEL_REPO}": make_hf_cache(cache, MODEL_REPO, "model", model_files()),
        "dataset:zhuzilin/dapo-math-17k": make_hf_cache(
            cache, "zhuzilin/dapo-math-17k", "dataset", {"dapo-math-17k.jsonl": DAPO.read_bytes()}),
        "dataset:zhuzilin/aime-2024": make_hf_cache(
            cache, "zhuzilin/aime-2024", "dataset", {"aime-2024.jsonl": AIME.read_bytes()}),
    }
    (repo / "config" / "hf.lock.json").write_text(json.dumps(lock, indent=2))
    config = {"results_dir": "results", "hf_lock": "config/hf.lock.json",
              "experiments": {EXP: experiment(repo, card["name"], gpu_memory_gb)}}
    (repo / "config" / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    return repo


def offline_env(**extra: str) -> dict[str, str]:
    # CUDA_DEVICE_MAX_CONNECTIONS too: what train.py gets of it must come from the job's runtime_env.
    dropped = ("FAKE_MILES_DIE_AT", "HF_HOME", "HF_HUB_CACHE", "CUDA_DEVICE_MAX_CONNECTIONS")
    env = {k: v for k, v in os.environ.items() if k not in dropped}
    path = f"{Path(sys.executable).parent}:{env.get('PATH', '')}"
    return {**env, "PATH": path, "HF_HUB_OFFLINE": "1", **extra}


def run_snakemake(repo: Path, *args: str, **extra_env: str) -> subprocess.CompletedProcess:
    """Snakemake in `repo`, offline; FAKE_MILES_* reach the Ray job through the head, which inherits them."""
    return subprocess.run([SNAKEMAKE, *args, "--cores", "2", "--resources", "gpu=1"], cwd=repo,
                          env=offline_env(**extra_env), capture_output=True, text=True, timeout=600)


def check(proc: subprocess.CompletedProcess) -> subprocess.CompletedProcess:
    if proc.returncode != 0:
        raise AssertionError(f"snakemake failed ({proc.returncode}):\n{proc.stdout[-4000:]}\n{proc.stderr[-8000:]}")
    return proc


def read_tsv(path: Path) -> list[dict]:
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh, delimiter="\t"))


def steps(path: Path, key: str) -> list[int]:
    return [int(float(row[key])) for row in read_tsv(path)]


def argv_log(repo: Path) -> list[list[str]]:
    path = repo / "fake-miles-argv.jsonl"
    return [json.loads(line)["argv"] for line in path.read_text().splitlines() if line.strip()]


@pytest.fixture(scope="module")
def pipeline(tmp_path_factory):
    repo = scratch_repo(tmp_path_factory.mktemp("miles"), tiny_card("tiny-glm-test", 213_504), 79.6)
    argv_file = str(repo / "fake-miles-argv.jsonl")
    died = run_snakemake(repo, f"results/{EXP}/train/done.json",
                         FAKE_MILES_DIE_AT=str(DIE_AT), FAKE_MILES_ARGV_LOG=argv_file)
    ckpts = repo / "results" / EXP / "run" / "checkpoints"
    tracker = ckpts / "latest_checkpointed_iteration.txt"
    after_death = {
        "proc": died,
        "tracker": tracker.read_text().strip() if tracker.is_file() else None,
        "iters": sorted(p.name for p in ckpts.glob("iter_*")),
        "argv_runs": len(argv_log(repo)),
        "done_exists": (repo / "results" / EXP / "train" / "done.json").exists(),
    }
    # The newest save's weights cut short after the death (a full disk, a node lost while flushing): the rerun
    # must see it, keep it aside and resume from the save before it, saying so (the stand-in's load would fail).
    shard = ckpts / f"iter_{DIE_AT - 1:07d}" / "__0_0.distcp"
    with open(shard, "r+b") as fh:
        fh.truncate(shard.stat().st_size // 2)
    check(run_snakemake(repo, FAKE_MILES_ARGV_LOG=argv_file))
    return repo, after_death


def test_training_death_fails_the_rule_and_keeps_checkpoints(pipeline):
    repo, dead = pipeline
    output = dead["proc"].stdout + dead["proc"].stderr
    assert dead["proc"].returncode != 0
    assert "rules/train.smk" in output  # the failing rule, as Snakemake names it under the profile's `quiet: rules`
    assert f"FAKE_MILES_DIE_AT={DIE_AT}: dying at rollout {DIE_AT}" in output  # the job's last lines
    assert dead["tracker"] == str(DIE_AT - 1)
    assert dead["iters"] == [f"iter_{i:07d}" for i in range(SAVE_INTERVAL - 1, DIE_AT, SAVE_INTERVAL)]
    assert dead["argv_runs"] == 1
    assert not dead["done_exists"]  # a failed job never looks finished


def test_rerun_sets_the_truncated_save_aside_and_resumes_from_the_one_before(pipeline):
    repo, _ = pipeline
    job_log = (repo / "results" / EXP / "run" / "job.log").read_text()
    assert f"start rollout {RESUMED_AT}" in job_log  # the previous save's rollout + 1
    rule_log = (repo / "results" / EXP / "logs" / "train.log").read_text()
    assert f"iter_{DIE_AT - 1:07d} is not usable (__0_0.distcp is truncated" in rule_log
    assert f"resuming from iter_{RESUMED_AT - 1:07d}" in rule_log
    ckpts = repo / "results" / EXP / "run" / "checkpoints"
    assert len(list(ckpts.glob(f"iter_{DIE_AT - 1:07d}.unusable-*"))) == 1  # kept, not deleted
    assert (ckpts / "latest_checkpointed_iteration.txt").read_text().strip() == str(NUM_ROLLOUT - 1)
    done = json.loads((repo / "results" / EXP / "train" / "done.json").read_text())
    assert done["last_iteration"] == NUM_ROLLOUT - 1 and done["rollouts_logged"] == NUM_ROLLOUT
    assert done["final_checkpoint"] == str((ckpts / f"iter_{NUM_ROLLOUT - 1:07d}").resolve())


def test_metric_tables_have_miles_names_and_each_step_once(pipeline):
    repo, _ = pipeline
    metrics = repo / "results" / EXP / "metrics"
    rollout = read_tsv(metrics / "rollout.tsv")
    assert list(rollout[0])[0] == "rollout/step"
    assert {"rollout/raw_reward", "rollout/response_lengths", "rollout/truncated"} <= set(rollout[0])
    assert steps(metrics / "rollout.tsv", "rollout/step") == list(range(NUM_ROLLOUT))
    assert all(row["rollout/raw_reward"] not in ("", None) for row in rollout)
    train = read_tsv(metrics / "train.tsv")
    assert list(train[0])[0] == "train/step" and {"train/loss", "train/grad_norm", "train/lr-pg_0"} <= set(train[0])
    assert steps(metrics / "train.tsv", "train/step") == list(range(NUM_ROLLOUT * STEPS_PER_ROLLOUT))
    evals = read_tsv(metrics / "eval.tsv")
    assert list(evals[0])[0] == "eval/step" and "eval/aime" in evals[0]
    # miles evaluates before training (rollout 0) and after each rollout r with (r + 1) % interval == 0.
    expected = [0] + [r for r in range(NUM_ROLLOUT) if (r + 1) % EVAL_INTERVAL == 0]
    assert steps(metrics / "eval.tsv", "eval/step") == sorted(set(expected))
    perf = read_tsv(metrics / "perf.tsv")
    assert list(perf[0])[0] == "rollout/step" and {"perf/rollout_time", "perf/actor_train_time"} <= set(perf[0])


def test_fake_miles_ran_exactly_the_argv_mileage_prints(pipeline):
    repo, _ = pipeline
    env = {**offline_env(), "PYTHONPATH": str(repo)}
    printed = subprocess.run([sys.executable, "-m", "mileage.cli", "argv", EXP], cwd=repo, env=env,
                             capture_output=True, text=True, check=True).stdout.splitlines()
    runs = argv_log(repo)
    training = [argv for argv in runs if "--num-rollout" in argv and argv[argv.index("--num-rollout") + 1] != "0"]
    assert len(training) == 2  # the attempt that died and the one that resumed
    assert training[0] == training[1] == printed
    eval_only = [argv for argv in runs if argv not in training]
    assert len(eval_only) == 2  # base and final
    for argv in eval_only:
        assert argv[argv.index("--num-rollout") + 1] == "0" and argv[argv.index("--eval-interval") + 1] == "1"
    final = next(argv for argv in eval_only if "--load" in argv)
    assert final[final.index("--ckpt-step") + 1] == str(NUM_ROLLOUT - 1)


def test_train_py_itself_gets_cuda_device_max_connections(pipeline):
    """Megatron asserts CUDA_DEVICE_MAX_CONNECTIONS=1 in train.py's own process for tensor or context parallelism
    (issue 8): the Ray job's runtime_env reaches the entrypoint process, not only the workers."""
    repo, _ = pipeline
    runs = [json.loads(line) for line in (repo / "fake-miles-argv.jsonl").read_text().splitlines() if line.strip()]
    assert runs and all(run["env"]["CUDA_DEVICE_MAX_CONNECTIONS"] == "1" for run in runs)


def test_eval_records_and_summary(pipeline):
    repo, _ = pipeline
    aime_problems = sum(1 for line in AIME.read_text().splitlines() if line.strip())
    summary = json.loads((repo / "results" / EXP / "report" / "summary.json").read_text())
    for side, k in (("base", BASE_K), ("final", FINAL_K)):
        records = [json.loads(line) for line in
                   (repo / "results" / EXP / "eval" / "aime" / f"{side}.samples.jsonl").read_text().splitlines()]
        assert len(records) == aime_problems * k == summary[side]["n_samples"]
        assert {r["problem_id"] for r in records} == {f"aime-{i}" for i in range(aime_problems)}
        assert summary[side]["k"] == k
        assert {f"avg@{k}", f"maj@{k}"} | {f"pass@{j}" for j in range(1, k + 1)} <= set(summary[side]["metrics"])
    in_training = (repo / "results" / EXP / "train" / "eval_samples.jsonl").read_text().splitlines()
    assert {json.loads(line)["rollout"] for line in in_training} >= {0, NUM_ROLLOUT - 1}


def test_report_plots_and_comparison(pipeline):
    repo, _ = pipeline
    report_dir = repo / "results" / EXP / "report"
    assert "aime" in (report_dir / "report.md").read_text()
    figures = {p.name for p in (report_dir / "figures").iterdir()}
    assert {"reward.png", "eval.png", "pass_at_k.png"} <= figures, figures
    scores = read_tsv(repo / "results" / "compare" / "final_scores.tsv")
    assert [row[next(iter(row))] for row in scores] == [EXP]
    assert (repo / "results" / "cache" / "torch_dist" / f"{MODEL_REPO.replace('/', '--')}" / "main"
            / "latest_checkpointed_iteration.txt").read_text().strip() == "release"


def test_export_converts_the_final_checkpoint_to_hf(pipeline):
    repo, _ = pipeline
    check(run_snakemake(repo, f"results/{EXP}/export/hf"))
    out = repo / "results" / EXP / "export" / "hf"
    final = repo / "results" / EXP / "run" / "checkpoints" / f"iter_{NUM_ROLLOUT - 1:07d}"
    assert json.loads((out / "mileage_fake_export.json").read_text())["from"] == str(final.resolve())
    assert (out / "config.json").is_file()
    assert not list(out.parent.glob(".hf.*"))  # the atomic temp dir is gone


def planned(repo: Path) -> str:
    proc = check(run_snakemake(repo, "--dry-run"))
    return proc.stdout + proc.stderr


@pytest.mark.parametrize("section, key, value, not_rerun", [
    ("train", "lr", 2e-6, ("fetch_model", "convert_model", "fetch_dataset")),
    ("rollout", "num_rollout", NUM_ROLLOUT + 2, ("fetch_model", "convert_model", "fetch_dataset", "eval_base")),
])
def test_a_training_edit_reruns_training_never_download_or_conversion(pipeline, section, key, value, not_rerun):
    repo, _ = pipeline
    config_path = repo / "config" / "config.yaml"
    original = config_path.read_text()
    config = yaml.safe_load(original)
    config["experiments"][EXP][section][key] = value
    try:
        config_path.write_text(yaml.safe_dump(config, sort_keys=False))
        plan = planned(repo)
    finally:
        config_path.write_text(original)
    assert "train" in plan and "eval_final" in plan, plan[-3000:]
    for rule in not_rerun:
        assert rule not in plan, f"{section}.{key} edit would rerun {rule}:\n{plan[-3000:]}"


def test_a_new_experiment_shares_the_download_and_the_conversion(pipeline):
    repo, _ = pipeline
    config_path = repo / "config" / "config.yaml"
    original = config_path.read_text()
    config = yaml.safe_load(original)
    config["experiments"]["tiny-lr"] = {"extends": EXP, "train": {"lr": 2e-6}}
    try:
        config_path.write_text(yaml.safe_dump(config, sort_keys=False))
        plan = planned(repo)
    finally:
        config_path.write_text(original)
    jobs = job_counts(plan)
    assert jobs["train"] == 1 and jobs["base_samples"] == 1 and jobs["preflight"] == 1, jobs
    assert not {"fetch_model", "convert_model", "fetch_dataset", "eval_base"} & set(jobs), jobs
    assert f"wildcards: exp={EXP}\n" not in plan  # nothing of the finished experiment reruns


def job_counts(plan: str) -> dict[str, int]:
    table = plan.split("Job stats:")[1].splitlines()[3:]
    rows = [line.split() for line in table]
    return {row[0]: int(row[1]) for row in rows[: next(i for i, r in enumerate(rows) if r[0] == "total")]}


def test_model_that_cannot_fit_stops_at_preflight_before_any_download(tmp_path):
    # The same tiny files on the hub, but a card claiming 9.4B parameters, on one 32 GB card.
    repo = scratch_repo(tmp_path, tiny_card("too-big-glm-test", 9_400_279_040), 31.8)
    proc = run_snakemake(repo)
    output = proc.stdout + proc.stderr
    assert proc.returncode != 0
    assert "mileage plan: refused before any download" in output and f"experiments.{EXP}" in output
    assert "DOES NOT FIT" in output and "9.40B parameters" in output and "31.8" in output
    assert not list((repo / "results" / "cache").glob("hf-models/**/snapshot.json"))
    assert not (repo / "results" / "cache" / "torch_dist").exists()
