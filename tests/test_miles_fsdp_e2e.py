"""The miles FSDP backend end to end: real Snakemake, a real loopback Ray head, an offline hub cache, the stand-in
miles (tests/fake_miles) parsing with FSDP's parser. As test_miles_pipeline_e2e, with `miles.train_backend: fsdp`:
no torch_dist conversion in the job graph, FSDP's checkpoint layout through a death and a resume, the final
evaluation on that layout, and the HF export with FSDP's converter."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from mileage.engines.miles.flags import megatron_only_flags
from test_miles_pipeline_e2e import (EXP, NUM_ROLLOUT, SAVE_INTERVAL, argv_log, check, experiment, job_counts,
                                     run_snakemake, scratch_repo, tiny_card)

pytestmark = pytest.mark.slow

DIE_AT = 3  # dies at the start of rollout 3, after the save at rollout 1 (FSDP: iter_0000002)


def fsdp_experiment(repo: Path, card: str) -> dict:
    exp = experiment(repo, card, 79.6)
    miles = exp["miles"]
    del miles["parallelism"]  # a Megatron-only key: set for an FSDP experiment, it is refused at load
    miles["offload"] = {"offload_rollout": True}  # FSDP's CPU offload passes --no-offload-train instead
    miles["train_backend"] = "fsdp"
    miles["fsdp"] = {"cpu_offload": True, "attn_implementation": "sdpa"}
    return exp


@pytest.fixture(scope="module")
def fsdp_pipeline(tmp_path_factory):
    card = tiny_card("tiny-glm-test", 213_504)
    repo = scratch_repo(tmp_path_factory.mktemp("miles-fsdp"), card, 79.6)
    config_path = repo / "config" / "config.yaml"
    config = yaml.safe_load(config_path.read_text())
    config["experiments"] = {EXP: fsdp_experiment(repo, card["name"])}
    config_path.write_text(yaml.safe_dump(config, sort_keys=False))
    plan = check(run_snakemake(repo, "--dry-run", f"results/{EXP}/eval/aime/final.samples.jsonl",
                               f"results/{EXP}/export/hf"))
    argv_file = str(repo / "fake-miles-argv.jsonl")
    died = run_snakemake(repo, f"results/{EXP}/train/done.json", FAKE_MILES_DIE_AT=str(DIE_AT),
                         FAKE_MILES_ARGV_LOG=argv_file)
    ckpts = repo / "results" / EXP / "run" / "checkpoints"
    after_death = {"proc": died, "tracker": (ckpts / "latest_checkpointed_iteration.txt").read_text().strip(),
                   "iters": sorted(p.name for p in ckpts.glob("iter_*"))}
    check(run_snakemake(repo, f"results/{EXP}/eval/aime/final.samples.jsonl", f"results/{EXP}/export/hf",
                        FAKE_MILES_ARGV_LOG=argv_file))
    return repo, plan.stdout + plan.stderr, after_death


def test_fsdp_job_graph_has_no_conversion(fsdp_pipeline):
    repo, plan, _ = fsdp_pipeline
    jobs = job_counts(plan)
    assert "convert_model" not in jobs and jobs["train"] == 1 and jobs["export_hf"] == 1, jobs
    assert not (repo / "results" / "cache" / "torch_dist").exists()


def test_fsdp_saves_its_layout_and_resumes_from_it(fsdp_pipeline):
    repo, _, dead = fsdp_pipeline
    assert dead["proc"].returncode != 0
    assert dead["tracker"] == str(DIE_AT - 1)  # rollouts 0 and 1 trained: FSDP's iter_0000002
    assert dead["iters"] == [f"iter_{n:07d}" for n in range(SAVE_INTERVAL, DIE_AT, SAVE_INTERVAL)]
    ckpts = repo / "results" / EXP / "run" / "checkpoints"
    assert (ckpts / "latest_checkpointed_iteration.txt").read_text().strip() == str(NUM_ROLLOUT)
    final = ckpts / f"iter_{NUM_ROLLOUT:07d}"
    assert (final / "model").is_dir() and (final / "optimizer").is_dir() and (final / "meta.json").is_file()
    assert f"start rollout {DIE_AT - 1}" in (repo / "results" / EXP / "run" / "job.log").read_text()
    done = json.loads((repo / "results" / EXP / "train" / "done.json").read_text())
    assert done["final_checkpoint"] == str(final.resolve()) and done["last_iteration"] == NUM_ROLLOUT
    assert done["rollouts_logged"] == NUM_ROLLOUT


def test_fsdp_argv_is_fsdps_and_the_evaluation_loads_only_the_final_weights(fsdp_pipeline):
    repo, _, _ = fsdp_pipeline
    runs = argv_log(repo)
    training = [a for a in runs if a[a.index("--num-rollout") + 1] != "0"]
    evaluations = [a for a in runs if a not in training]
    assert len(training) == 2 and len(evaluations) == 1  # died + resumed; the final evaluation (no base asked)
    for argv in runs:
        assert argv[:2] == ["--train-backend", "fsdp"]
        assert not set(argv) & megatron_only_flags()
        pairs = dict(zip(argv, argv[1:]))
        assert pairs["--ref-load"] == pairs["--hf-checkpoint"]  # the HF snapshot, no torch_dist
    assert "--fsdp-cpu-offload" in training[0] and "--no-offload-train" in training[0]
    final = next(a for a in evaluations if "--load" in a)
    root = Path(final[final.index("--load") + 1])
    assert (root / "latest_checkpointed_iteration.txt").read_text().strip() == str(NUM_ROLLOUT)
    assert [p.name for p in (root / f"iter_{NUM_ROLLOUT:07d}").iterdir()] == ["model"]  # weights only
    records = (repo / "results" / EXP / "eval" / "aime" / "final.samples.jsonl").read_text().splitlines()
    assert records and json.loads(records[0])["problem_id"].startswith("aime-")


def test_fsdp_export_uses_fsdps_converter(fsdp_pipeline):
    repo, _, _ = fsdp_pipeline
    out = repo / "results" / EXP / "export" / "hf"
    record = json.loads((out / "mileage_fake_export.json").read_text())
    assert record["backend"] == "fsdp" and record["rollouts_trained"] == NUM_ROLLOUT
    assert (out / "config.json").is_file()
