"""Print, as JSON, every job of a workflow's whole DAG with its params as Snakemake itself records them, its inputs
and its outputs.

Run as `python dag_params.py REPO OUT.json [TARGET ...]` (no target: the default one) in its own process (Snakemake's API keeps global state): the job list
is what `snakemake --forceall` would run, and each job's params are serialised by Snakemake's own persistence code
(the value it compares to decide "params have changed"), so two configs that give the same JSON make no job stale.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path


def dag_params(repo: Path, targets: list[str]) -> dict:
    from snakemake.api import SnakemakeApi
    from snakemake.settings.types import (ConfigSettings, DAGSettings, DeploymentSettings, OutputSettings,
                                          ResourceSettings, StorageSettings, WorkflowSettings)

    os.chdir(repo)
    with SnakemakeApi(OutputSettings(quiet={"all"})) as api:
        workflow_api = api.workflow(
            resource_settings=ResourceSettings(cores=1, resources={"gpu": 1}),
            config_settings=ConfigSettings(),
            storage_settings=StorageSettings(),
            workflow_settings=WorkflowSettings(),
            deployment_settings=DeploymentSettings(),
            snakefile=repo / "Snakefile",
            workdir=repo,
        )
        workflow_api.dag(DAGSettings(forceall=True, targets=set(targets)))
        workflow = workflow_api._workflow
        workflow._prepare_dag(forceall=True, ignore_incomplete=True, lock_warn_only=True, nolock=True)
        workflow._build_dag()
        persistence = workflow.persistence
        jobs = {}
        for job in workflow.dag.jobs:
            key = f"{job.rule.name} {dict(job.wildcards_dict)}"
            jobs[key] = {"params": persistence._params(job), "input": sorted(map(str, job.input)),
                         "output": sorted(map(str, job.output))}
        rules = sorted(rule.name for rule in workflow.rules)
    return {"jobs": jobs, "rules": rules}


if __name__ == "__main__":
    repo, out = Path(sys.argv[1]).resolve(), Path(sys.argv[2])
    out.write_text(json.dumps(dag_params(repo, sys.argv[3:]), sort_keys=True, default=str))
