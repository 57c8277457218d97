"""The finished demo, built once per test session, for every end-to-end test that starts from it.

Running the demo (model, data, warm start, training, evaluations, report) takes minutes on two cores; a dozen
tests used to run it each. Now one build serves the session (tests/demo_build.py: started in the background when
the tests that need it are collected, those tests ordered last), and a test that reruns Snakemake or writes gets
its own copy of the finished tree (results/ and Snakemake's metadata, mtimes kept), which Snakemake sees as
finished: an edit then reruns only what it makes stale. A test that must train from scratch forgets the runs of
its copy and keeps the caches (pipeline_helpers.keep_only_caches).

While working on one end-to-end test, MILEAGE_FINISHED_DEMO=<a finished demo tree, e.g. the `finished-demo/repo`
of an earlier session's pytest base temp dir> skips the build; never set it where the suite is judged (CI, make
test)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

import demo_build
from pipeline_helpers import copy_finished


@pytest.fixture(scope="session")
def finished_demo(request) -> Path:
    """The shipped config run to the end with `snakemake --cores 2 --resources gpu=1`, sentinel credentials in
    its environment (tests/demo_build.py: one build per session, started at collection). Shared by the session:
    read it, never write to it or run Snakemake in it (take `demo_copy`)."""
    if os.environ.get("MILEAGE_FINISHED_DEMO"):
        return Path(os.environ["MILEAGE_FINISHED_DEMO"])
    return demo_build.wait(request.config)


@pytest.fixture
def demo_copy(finished_demo: Path, tmp_path: Path) -> Path:
    """This test's own copy of the finished demo."""
    return copy_finished(finished_demo, tmp_path / "repo")


def _needs_demo(item) -> bool:
    return "finished_demo" in getattr(item, "fixturenames", ())


@pytest.hookimpl(trylast=True)  # after -m / -k deselected what will not run
def pytest_collection_modifyitems(config, items):
    """Start the demo build if a selected test needs it, and run the modules that need it last, so the others run
    while it builds. `make test` distributes whole modules over two xdist workers in this order
    (`--dist loadscope --no-loadscope-reorder`): a module's scoped fixtures (a module's own pipeline run) then run
    once."""
    demo_modules = {item.module.__name__ for item in items if _needs_demo(item) and item.module is not None}
    if demo_modules and not os.environ.get("MILEAGE_FINISHED_DEMO") and not config.option.collectonly:
        demo_build.start(config)
    items.sort(key=lambda item: getattr(item.module, "__name__", "") in demo_modules)  # stable: order kept


def pytest_sessionfinish(session):
    if not hasattr(session.config, "workerinput"):  # the session's owner: xdist's controller, or the only process
        demo_build.stop(session.config)
