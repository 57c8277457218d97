"""What a pipeline run's terminal must and must not show (issue 17): one line per rollout of the training, no
library noise. Used on the output of the end-to-end runs."""

from __future__ import annotations

import re

ROLLOUT_LINE = re.compile(r"^\[mileage\] rollout (\d+)/(\d+)  reward (\S+)(  eval \S+ \S+)*  \d+\.\d s$")
NOISE = ("FutureWarning", "Shell command: None", "{'loss'", "'grad_norm'", "it/s]")


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
