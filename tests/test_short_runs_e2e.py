"""Replicate seeds, a sweep point and the secrets policy through one real pipeline run.

From a copy of the session's finished demo (tests/conftest.py) with its runs forgotten and its shared caches kept
(the demo model, its training data and the warm start), one `snakemake --cores 2` trains three short runs:
  - the demo as two replicate seeds, with a second evaluation set `sub` that is also evaluated during training;
  - a sweep point (`short~train.lr=0.002`, one seed) that extends the demo.
Sentinel HF_TOKEN and WANDB_API_KEY are in Snakemake's environment throughout.

The checks then read that one tree. Each of these used to train on its own: the run replaced three pipeline
runs, about 300 s of the suite on two cores.
  - seeds: each seed has its own run and report; the aggregate is the mean across seeds, and each set gets its own
    section;
  - the sweep point trains, is evaluated and joins the comparison;
  - the three trainings share one base evaluation per set;
  - the secrets: the sentinels reach no file under results/ or .snakemake/, nor the Ray job's recorded info or
    Ray's own logs, nor a trainer's environment (the demo does not track with W&B, so no job needs either). The
    session's demo was built with the same sentinels in its environment, so the scan of the copied tree covers
    the jobs that built the caches too;
  - results_dir moves: a dry run plans nothing (caches are keyed by content, not place).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import pytest

from pipeline_helpers import DEMO_SECRETS, SNAKEMAKE, copy_finished, edit_config, keep_only_caches, planned_jobs

pytestmark = pytest.mark.slow

HF, WANDB = DEMO_SECRETS["HF_TOKEN"], DEMO_SECRETS["WANDB_API_KEY"]
NEEDLES = [HF.encode(), WANDB.encode()]
POINT = "short~train.lr=0.002"
HEAD_LINE = re.compile(r"ray: starting a head on \S+, dashboard (http://\S+), temp dir (\S+)")


def short(config: dict) -> None:
    demo = config["experiments"]["demo"]
    demo.update(seeds=[1, 2])
    demo["rollout"].update(num_rollout=2)
    demo["train"].update(save_interval=2)
    demo["eval"].update(interval=1, n_samples_per_prompt=2)
    demo["base_eval"].update(n_samples_per_prompt=4)
    demo["final_eval"].update(n_samples_per_prompt=4)
    demo["data"]["eval"]["demo"].update(n_problems=8)
    # A second evaluation set, evaluated and aggregated under its own name, and evaluated inside training too.
    demo["data"]["eval"] = [demo["data"]["eval"], {"name": "sub", "source": "demo",
                                                   "demo": {"n_problems": 4, "seed": 3, "operations": ["-"]}}]
    demo["eval"]["sets"] = ["arith", "sub"]
    # One seed (`seeds: null`): the demo's replicates are not inherited.
    config["experiments"]["short"] = {"extends": "demo", "seeds": None, "sweep": {"train.lr": [0.002]}}


@dataclass
class ShortRuns:
    repo: Path
    plan: dict[str, int]  # what the dry run before the run planned
    base_evals_before: int  # cached base evaluations then
    watched: dict  # what watch_a_trainer saw while training ran
    output: str  # Snakemake's terminal output


def base_evals(repo: Path) -> int:
    return len(list((repo / "results" / "cache" / "base-eval").glob("*.samples.jsonl")))


@pytest.fixture(scope="module")
def runs(finished_demo, tmp_path_factory) -> ShortRuns:
    repo = copy_finished(finished_demo, tmp_path_factory.mktemp("short-runs") / "repo")
    keep_only_caches(repo)
    edit_config(repo, short)
    plan, before = planned_jobs(repo), base_evals(repo)
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}",
           "HF_TOKEN": HF, "WANDB_API_KEY": WANDB}
    out = repo.parent / "snakemake.out"
    with open(out, "w") as fh:
        proc = subprocess.Popen([SNAKEMAKE, "--cores", "2"], cwd=repo, env=env, stdout=fh, stderr=subprocess.STDOUT)
    try:
        watched = watch_a_trainer(repo, proc)
        assert proc.wait(timeout=1800) == 0, out.read_text()[-4000:]
    finally:
        proc.kill()
    return ShortRuns(repo, plan, before, watched, out.read_text())


def watch_a_trainer(repo: Path, proc: subprocess.Popen) -> dict:
    """While the first training runs: the Ray job's info as the job API records it, hits in Ray's temp dir, and the
    trainer's environment (read before the head and its logs are gone)."""
    deadline = time.time() + 900
    while time.time() < deadline and proc.poll() is None:
        trainers = [p for p in Path("/proc").iterdir() if p.name.isdigit() and _is_trainer(p, repo)]
        heads = [m for log in (repo / "results").glob("**/logs/train.log")
                 if (m := HEAD_LINE.search(log.read_text(errors="replace")))]
        if heads and trainers:
            url, temp_dir = heads[0].group(1), Path(heads[0].group(2))
            token = (temp_dir / "auth_token").read_text()
            request = urllib.request.Request(f"{url}/api/jobs/", headers={"Authorization": f"Bearer {token}"})
            with urllib.request.urlopen(request, timeout=10) as resp:
                jobs = resp.read()
            return {"jobs": jobs, "trainer_env": (trainers[0] / "environ").read_bytes(),
                    "ray_files": files_with(temp_dir, NEEDLES)}
        time.sleep(0.5)
    pytest.fail(f"never saw a training job (exit {proc.poll()})")


def _is_trainer(proc_dir: Path, repo: Path) -> bool:
    """A trainer of this run (its job spec lies in `repo`), not another pipeline's on the same machine."""
    try:
        cmd = (proc_dir / "cmdline").read_bytes().split(b"\0")
    except OSError:
        return False
    return (b"mileage.engines.local.job" in cmd and b"mileage.launch.lifeline" not in cmd
            and any(arg.startswith(str(repo).encode() + b"/") for arg in cmd))


def files_with(root: Path, needles: list[bytes]) -> list[str]:
    hits = []
    for path in root.rglob("*"):
        if path.is_file() and not path.is_symlink():
            data = path.read_bytes()
            hits += [f"{path}: {n.decode()}" for n in needles if n in data]
    return hits


def summary(path: Path) -> dict:
    return json.loads(path.read_text())


# ---- the plan ---------------------------------------------------------------------------------------------------

def test_three_trainings_share_the_model_the_warm_start_and_one_base_evaluation_per_set(runs):
    assert runs.plan["train"] == 3  # two seeds and the point
    assert runs.plan["eval_base"] == 2  # one per set, not one per training
    assert "demo_model" not in runs.plan and "warm_start" not in runs.plan  # the finished demo's caches
    assert base_evals(runs.repo) == runs.base_evals_before + 2
    assert planned_jobs(runs.repo) == {}


# ---- replicate seeds --------------------------------------------------------------------------------------------

def test_each_seed_trains_and_reports_on_its_own(runs):
    results = runs.repo / "results" / "demo"
    for seed in (1, 2):
        run = results / "seeds" / str(seed)
        for rel in ("metrics/rollout.tsv", "report/summary.json", "report/report.md", "report/figures/reward.png"):
            assert (run / rel).is_file(), rel
        assert summary(run / "report" / "summary.json")["experiment"] == f"demo/seeds/{seed}"
        assert (run / "run").is_dir() and list((run / "run" / "tensorboard").glob("*tfevents*"))
    eval_table = (results / "seeds" / "1" / "metrics" / "eval.tsv").read_text().splitlines()[0].split("\t")
    assert "eval/arith" in eval_table and "eval/sub" in eval_table  # both sets evaluated in training


def test_the_aggregate_is_the_mean_across_seeds_with_a_paired_test_and_a_section_per_set(runs):
    results = runs.repo / "results" / "demo"
    agg = summary(results / "report" / "summary.json")
    assert agg["seeds"] == [1, 2] and agg["replicates"] == {"1": "seeds/1", "2": "seeds/2"}
    k = agg["k"]
    per_seed = [summary(results / "seeds" / s / "report" / "summary.json") for s in ("1", "2")]
    assert agg["final"]["metrics"][f"avg@{k}"]["per_seed"] == [s["final"]["metrics"][f"avg@{k}"]["value"]
                                                               for s in per_seed]
    assert set(agg["paired"]) >= {f"avg@{k}", f"pass@{k}"}
    for name in ("reward", "eval", "final_scores", "pass_at_k", "pass_at_k_sub"):
        assert (results / "report" / "figures" / f"{name}.png").is_file(), name
    assert (results / "metrics" / "rollout.tsv").is_file()
    sub = summary(results / "eval" / "sub" / "summary.json")
    assert sub["dataset"] == "sub" and sub["seeds"] == [1, 2] and sub["final"]["n_problems"] == 4
    assert "## Evaluation set `sub`" in (results / "report" / "report.md").read_text()


# ---- a sweep point ----------------------------------------------------------------------------------------------

def test_a_sweep_point_trains_evaluates_and_joins_the_comparison(runs):
    results = runs.repo / "results"
    point = summary(results / POINT / "report" / "summary.json")
    assert point["experiment"] == POINT and "seeds" not in point
    scores = (results / "compare" / "final_scores.tsv").read_text()
    assert f"\n{POINT}\t" in scores and scores.count("\ndemo\t") == 1  # the seeds' aggregate is one row


# ---- secrets ----------------------------------------------------------------------------------------------------

def test_sentinel_secrets_reach_no_job_log_file_or_ray_record(runs):
    jobs = json.loads(runs.watched["jobs"])
    assert jobs and all("entrypoint" in job for job in jobs)  # the job API answered with the job we ran
    for needle in NEEDLES:
        assert needle not in runs.watched["jobs"] and needle not in runs.watched["trainer_env"]
    assert b"HF_TOKEN=" not in runs.watched["trainer_env"] and b"WANDB_API_KEY=" not in runs.watched["trainer_env"]
    assert runs.watched["ray_files"] == []
    assert files_with(runs.repo / "results", NEEDLES) == []
    assert files_with(runs.repo / ".snakemake", NEEDLES) == []
    assert HF not in runs.output and WANDB not in runs.output


def test_a_moved_results_dir_rebuilds_nothing(runs, tmp_path):
    """Every cache, training and report is found where it moved (the warm start included): nothing is planned."""
    repo = copy_finished(runs.repo, tmp_path / "repo")
    shutil.move(repo / "results", repo / "moved-results")
    edit_config(repo, lambda config: config.update(results_dir="moved-results"))
    assert planned_jobs(repo) == {}
