"""rule compare declares what it reads: a replicated experiment's paired tests read every seed's own summary
(results/<exp>/seeds/<n>/report/summary.json, the headline copy of its set's summary), so each seed's summarize
job feeds compare in the DAG."""

from __future__ import annotations

import re
import subprocess

from pipeline_helpers import SNAKEMAKE, copy_repo, edit_config


def test_compare_depends_on_every_seeds_summary(tmp_path):
    repo = copy_repo(tmp_path / "repo")
    edit_config(repo, lambda c: c["experiments"]["demo"].update(seeds=[1, 2, 3]))
    dot = subprocess.run([SNAKEMAKE, "--dag", "--cores", "1"], cwd=repo, check=True, capture_output=True,
                         text=True).stdout
    labels = dict(re.findall(r'^\s*(\d+)\[label = "([^"\\]+)', dot, flags=re.M))
    edges = set(re.findall(r"^\s*(\d+) -> (\d+)$", dot, flags=re.M))
    (compare,) = [node for node, label in labels.items() if label == "compare"]
    summaries = [node for node, label in labels.items() if label == "summarize"]
    assert len(summaries) == 3  # one per seed: the base evaluation is shared, each seed summarises its own run

    def reaches(node: str, target: str) -> bool:  # through the headline copy of each seed's summary
        return node == target or any(reaches(b, target) for a, b in edges if a == node)

    assert all(reaches(node, compare) for node in summaries), (summaries, sorted(edges))
