"""The one way a stage runs an engine's job: prepare what the job spec asks, start (or join) the Ray cluster that
`ray` and `resources.gpus` describe, submit the spec's entrypoint as a Ray job, follow it to its end; a spec that
needs no cluster (one process, e.g. the local engine's evaluation) runs here instead, under the same lifeline,
lock and log, without the cost of a Ray head (about 16 s here).

Training and evaluation, of every engine, go this way (mileage.engines.contract.JobSpec), so the cluster, the
secrets a job may see, its log and its run-directory lock are decided in one place.
"""

from __future__ import annotations

import re

from pathlib import Path
from typing import Any, Mapping

from mileage.engines.contract import JobSpec
from mileage.launch.local_job import run_here
from mileage.launch.ray_cluster import cluster_spec, ray_cluster
from mileage.launch.ray_job import run_job
from mileage.secrets import job_secret_names


def ray_job_prefix(name: str) -> str:
    """A run's name as a Ray submission id prefix, which takes letters, digits, `_`, `.` and `-`: a replicate
    `<exp>/seeds/<n>` and a sweep point `<exp>~key=value` included."""
    return re.sub(r"[^A-Za-z0-9_.-]", "-", name)


def run_spec(job: JobSpec, params: Mapping[str, Any], log: Path, job_id_prefix: str,
             lock_dir: Path | None = None, metadata: Mapping[str, Any] | None = None) -> None:
    """Run `job` for a stage with `params` (its `ray` and `resources.gpus` place it; its `tracking` says which
    secrets the head passes on); its output goes to `log`. With `lock_dir`, the job holds that run directory."""
    for step in job.prepare:
        step()
    if not job.cluster:
        run_here(job.entrypoint, job.runtime_env, log, lock_dir=lock_dir)
        return
    # The head (and so the job) gets only the secrets the job needs: WANDB_API_KEY when tracking.wandb is on.
    spec = cluster_spec(params["ray"], params["resources"]["gpus"], job_secret_names(params))
    with ray_cluster(spec) as address:
        run_job(address, job.entrypoint, job.runtime_env, log,
                job_id_prefix=ray_job_prefix(job_id_prefix),
                metadata=dict(metadata or {}), lock_dir=lock_dir)
