"""Checks of a pipeline run that any end-to-end test can apply to its run (issue 17): what the terminal showed
(one line per rollout of the training, no library noise, few lines) and what `mileage status` says of a finished
tree (every run done)."""

from __future__ import annotations

import re
from pathlib import Path

ROLLOUT_LINE = re.compile(r"^\[mileage\] rollout (\d+)/(\d+)  reward (\S+)(  eval \S+ \S+)*  \d+\.\d s$")
NOISE = ("FutureWarning", "Shell command: None", "{'loss'", "'grad_norm'")  # TRL's dicts


def assert_terminal_informs(output: str, rollouts=None, max_lines: int | None = None) -> None:
    """`output` (Snakemake's stdout and stderr together) shows each of `rollouts` (0-based ids) on one line, in
    order, none twice, none of the noise, and at most `max_lines` lines."""
    lines = output.splitlines()
    noisy = [line for line in lines if any(noise in line for noise in NOISE)]
    assert not noisy, "\n".join(noisy[:10])
    shown = [int(m.group(1)) - 1 for m in map(ROLLOUT_LINE.match, lines) if m]
    if rollouts is not None:
        assert shown == list(rollouts), (shown, [line for line in lines if "rollout" in line][:20])
    if max_lines is not None:
        assert len(lines) <= max_lines, f"{len(lines)} lines:\n" + "\n".join(lines)


def assert_status_done(repo: Path) -> list:
    """`mileage status` on a finished tree: every run of its config done, trained to its num_rollout, with a
    checkpoint there; returns the rows."""
    from mileage.status import statuses

    rows = statuses(repo / "config" / "config.yaml", str(repo / "results"))
    assert rows and all(row.state == "done" for row in rows), [(r.experiment, r.state, r.notes) for r in rows]
    assert all(row.rollout == row.num_rollout == row.checkpoint_rollout for row in rows), rows
    return rows
