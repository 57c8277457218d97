"""The stand-in for miles' `miles.utils.arguments.parse_args` (tests only; miles itself cannot be installed here).

`PYTHONPATH=tests/fake_miles python -c "import sys; sys.argv = ['train.py', *ARGV];
from miles.utils.arguments import parse_args; parse_args()"` judges an argv as the stand-in `train.py` does:
exit status 2 and an argparse-style message for a flag the backend's parser does not have, an AssertionError
(status 1) for what miles or Megatron assert while parsing, and a return (status 0) when accepted.

The two backends parse differently, as in miles (FACTS sections 1 and 9):
- megatron (default): Megatron-LM's flags + miles' own; FSDP's dataclass fields are not arguments there.
- fsdp (`--train-backend fsdp`): miles' own flags + FSDP's dataclass fields; Megatron-LM's flags are unknown.
The flag lists are the shipped ones (mileage/engines/miles/flags/), read here independently of mileage's check.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

FLAG_LISTS = Path(__file__).resolve().parents[4] / "mileage" / "engines" / "miles" / "flags"
GENERATED_PREFIXES = ("--sglang-", "--eval-sglang-", "--router-")
BACKENDS = ("megatron", "fsdp")
# Megatron asserts this for tensor or context parallelism on GPUs older than Blackwell (arch < 10). The stand-in
# has no GPU: it answers as a Hopper unless FAKE_MILES_GPU_ARCH names another major compute capability.
DEVICE_ARCH_ENV = "FAKE_MILES_GPU_ARCH"


def read_list(name: str) -> set[str]:
    flags: set[str] = set()
    for line in (FLAG_LISTS / name).read_text(encoding="utf-8").splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            flags.add(line.split()[0])
    return flags


def accepted_flags(backend: str) -> set[str]:
    """The flags the parser of `backend` has."""
    miles, megatron, fsdp = read_list("miles.txt"), read_list("megatron.txt"), read_list("fsdp.txt")
    fsdp_only = fsdp - megatron
    if backend == "fsdp":
        return miles | fsdp
    return (miles - fsdp_only) | megatron


def usage_error(message: str) -> None:
    print("usage: train.py [-h] [options]", file=sys.stderr)
    print(f"train.py: error: {message}", file=sys.stderr)
    sys.exit(2)


class Args(dict):
    """flag -> its value tokens (`{'--lr': ['1e-06'], '--colocate': []}`), with miles-style attribute access
    (`args.rollout_batch_size`: the single value as a string, True for a bare flag, None when absent)."""

    def __getattr__(self, name: str):
        flag = "--" + name.replace("_", "-")
        if flag not in self:
            return None
        values = self[flag]
        if not values:
            return True
        return values[0] if len(values) == 1 else list(values)

    def one(self, flag: str, default=None, kind=str):
        """The single value of `flag` as `kind`, `default` when absent; an argparse error otherwise."""
        if flag not in self:
            return default
        values = self[flag]
        if len(values) != 1:
            usage_error(f"argument {flag}: expected one argument")
        try:
            return kind(values[0])
        except ValueError:
            usage_error(f"argument {flag}: invalid {kind.__name__} value: {values[0]!r}")


def train_backend(argv: list[str]) -> str:
    """The backend miles pre-parses before building the full parser."""
    backend = "megatron"
    for i, token in enumerate(argv):
        if token == "--train-backend":
            backend = argv[i + 1] if i + 1 < len(argv) else usage_error("argument --train-backend: expected one argument")
        elif token.startswith("--train-backend="):
            backend = token.split("=", 1)[1]
    if backend not in BACKENDS:
        usage_error(f"argument --train-backend: invalid choice: {backend!r} (choose from 'megatron', 'fsdp')")
    return backend


def tokenize(argv: list[str], known: set[str]) -> Args:
    parsed = Args()
    unknown: list[str] = []
    current = None
    for token in argv:
        if token.startswith("--"):
            flag = token.split("=", 1)[0]
            if flag not in known and not any(flag.startswith(p) and len(flag) > len(p) for p in GENERATED_PREFIXES):
                unknown.append(token)
                current = None
                continue
            current = flag
            parsed[flag] = [] if "=" not in token else [token.split("=", 1)[1]]
        elif current is not None:
            parsed[current].append(token)
        else:
            unknown.append(token)
    if unknown:
        usage_error("unrecognized arguments: " + " ".join(unknown))
    return parsed


def _validate_megatron(args: Args) -> None:
    for flag in ("--num-layers", "--hidden-size"):  # Megatron's model arguments (the card's)
        if flag not in args:
            usage_error(f"the following arguments are required: {flag}")
    tp = args.one("--tensor-model-parallel-size", 1, int)
    cp = args.one("--context-parallel-size", 1, int)
    arch = int(os.environ.get(DEVICE_ARCH_ENV, "9"))
    if (tp > 1 or cp > 1) and arch < 10 and os.environ.get("CUDA_DEVICE_MAX_CONNECTIONS") != "1":
        raise AssertionError("Using tensor model parallelism or context parallelism require setting the "
                             "environment variable CUDA_DEVICE_MAX_CONNECTIONS to 1")


def _validate_fsdp(args: Args) -> None:
    optimizer = args.one("--optimizer", "adam")
    if optimizer != "adam":
        raise AssertionError(f"FSDP backend supports only the adam (AdamW) optimizer, got {optimizer!r}")
    cp = args.one("--context-parallel-size", 1, int)
    if cp > 1:
        raise AssertionError(f"FSDP backend does not support context parallelism (got --context-parallel-size {cp})")
    for flag in ("--use-critic", "--indep-dp"):
        if flag in args:
            raise AssertionError(f"FSDP backend does not support {flag}")


def _validate_batch(args: Args) -> None:
    rbs = args.one("--rollout-batch-size", kind=int)
    n = args.one("--n-samples-per-prompt", 1, int)
    gbs = args.one("--global-batch-size", None, int)
    steps = args.one("--num-steps-per-rollout", None, int)
    gbs = gbs if gbs is not None else rbs * n // (steps or 1)
    steps = steps if steps is not None else rbs * n // gbs
    if gbs * steps != rbs * n:
        raise AssertionError(f"rollout_batch_size x n_samples_per_prompt ({rbs * n}) != global_batch_size x "
                             f"num_steps_per_rollout ({gbs} x {steps})")


def parse_args(argv: list[str] | None = None) -> Args:
    """Parse `argv` (default: sys.argv[1:]) as miles' train.py does; exits 2 on a usage error."""
    argv = list(sys.argv[1:] if argv is None else argv)
    backend = train_backend(argv)
    args = tokenize(argv, accepted_flags(backend))
    for flag in ("--rollout-batch-size", "--hf-checkpoint"):
        if flag not in args:
            usage_error(f"the following arguments are required: {flag}")
    if backend == "fsdp":
        _validate_fsdp(args)
    else:
        _validate_megatron(args)
    _validate_batch(args)
    args["--train-backend"] = [backend]
    return args
