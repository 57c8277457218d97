"""The finished demo, built once per test session, for every end-to-end test that starts from it.

Running the demo (model, data, warm start, training, evaluations, report) takes minutes on two cores; a dozen
tests used to run it each. Now one session fixture runs it, and a test that reruns Snakemake or writes gets its
own copy of the finished tree (results/ and Snakemake's metadata, mtimes kept), which Snakemake sees as finished:
an edit then reruns only what it makes stale. A test that must train from scratch forgets the runs of its copy
and keeps the caches (pipeline_helpers.keep_only_caches).

While working on one end-to-end test, MILEAGE_FINISHED_DEMO=<a finished demo tree, e.g. the `finished-demo0/repo`
of an earlier session's pytest temp dir> skips the build; never set it where the suite is judged (CI, make test).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from pipeline_helpers import DEMO_SECRETS, copy_finished, copy_repo, snakemake


@pytest.fixture(scope="session")
def finished_demo(tmp_path_factory) -> Path:
    """The shipped config run to the end with `snakemake --cores 2 --resources gpu=1`, sentinel credentials in
    its environment. Shared by the session: read it, never write to it or run Snakemake in it (take `demo_copy`)."""
    if os.environ.get("MILEAGE_FINISHED_DEMO"):
        return Path(os.environ["MILEAGE_FINISHED_DEMO"])
    repo = copy_repo(tmp_path_factory.mktemp("finished-demo") / "repo")
    proc = snakemake(repo, "--resources", "gpu=1", timeout=1800, env=DEMO_SECRETS)
    (repo.parent / "terminal.txt").write_text(proc.stdout + proc.stderr)  # what the user saw (test_pipeline_e2e)
    return repo


@pytest.fixture
def demo_copy(finished_demo: Path, tmp_path: Path) -> Path:
    """This test's own copy of the finished demo."""
    return copy_finished(finished_demo, tmp_path / "repo")
