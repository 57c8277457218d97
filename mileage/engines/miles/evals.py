"""Which rollouts a miles run evaluates at during training, as miles v0.1.0 decides it (78527b91).

`train.py` evaluates (a) at the first rollout of each start of `train.py`, `rollout_id == args.start_rollout_id`,
unless `--skip-eval-before-train` (its line 96): rollout 0 of a fresh run and rollout k of a run resumed from
the save after rollout k-1; and (b) after rollout r when `should_run_periodic_action(r, eval_interval,
num_rollout_per_epoch)` holds (its line 136; `miles/utils/misc.py` 140-151): `(r + 1) % interval == 0`, or
`(r + 1) % num_rollout_per_epoch == 0` at an epoch boundary. The eval after rollout r is logged as `eval r`.

`num_rollout_per_epoch` is only known to miles when `--num-rollout` is not given (it then derives the rollout
count from `--num-epoch`; `miles/ray/placement_group.py` 193-196) and is None otherwise. mileage always passes
`--num-rollout`, so its runs make no epoch-boundary evaluations; the rule is kept whole here so that a change
there shows up in one place.
"""

from __future__ import annotations

from typing import Iterable


def in_training_evals(interval: int | None, num_rollout: int, skip_eval_before_train: bool,
                      num_rollout_per_epoch: int | None = None, starts: Iterable[int] = (0,)) -> set[int]:
    """The rollout ids a run of `num_rollout` rollouts logs an in-training evaluation at.

    `starts`: the rollout each start of train.py began at (0, then each resume point). None interval: none.
    """
    if interval is None:
        return set()
    evals = {r for r in range(num_rollout)
             if (r + 1) % interval == 0 or (num_rollout_per_epoch and (r + 1) % num_rollout_per_epoch == 0)}
    if not skip_eval_before_train:
        evals |= {s for s in starts if 0 <= s < num_rollout}
    return evals

