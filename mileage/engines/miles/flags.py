"""The flags miles' `train.py` accepts, per training backend, and a check that an argv uses only those.

miles parses with one argparse parser, abbreviations off, unknown flags a hard error (FACTS section 1). Which
parser depends on `--train-backend` (FACTS section 9): megatron = Megatron-LM's flags + miles' own; fsdp = miles'
own + the fields of FSDP's argument dataclass, and no Megatron-LM flag. The lists in `flags/` are copies of the
flag lists read from the reference commits (miles.txt holds miles' own flags and FSDP's; fsdp.txt names FSDP's),
shipped with the package so that a typo or a Megatron flag on an FSDP run is caught here, before a GPU job starts,
not in Ray's logs. Flags generated from other parsers (SGLang's server arguments, the router's) are not listed:
they are recognised by prefix.
"""

from __future__ import annotations

import difflib
from functools import lru_cache
from pathlib import Path
from typing import Iterable

FLAG_LIST_DIR = Path(__file__).resolve().parent / "flags"
FLAG_LIST_FILES = ("miles.txt", "megatron.txt", "fsdp.txt")
BACKENDS = ("megatron", "fsdp")
# One flag per SGLang ServerArgs / router argument; validated by miles against those parsers, not here.
GENERATED_PREFIXES = ("--sglang-", "--eval-sglang-", "--router-")


class UnknownFlagError(ValueError):
    """An argv token names a flag miles' parser would reject."""


def read_flag_list(path: Path) -> set[str]:
    """The flags of one list file: one `--flag` per line, `#` comments, an optional trailing `*` mark."""
    flags: set[str] = set()
    for line_number, raw in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        name = line.split()[0]
        if not name.startswith("-"):
            raise UnknownFlagError(f"{path} line {line_number}: expected a -flag, got {raw!r}")
        flags.add(name)
    return flags


@lru_cache(maxsize=None)
def _list(name: str) -> frozenset[str]:
    return frozenset(read_flag_list(FLAG_LIST_DIR / name))


def fsdp_arguments() -> frozenset[str]:
    """FSDP's own arguments (flags/fsdp.txt)."""
    return _list("fsdp.txt")


def megatron_only_flags() -> frozenset[str]:
    """Megatron-LM flags that miles' FSDP parser does not have."""
    return _list("megatron.txt") - _list("miles.txt") - fsdp_arguments()


@lru_cache(maxsize=None)
def known_flags(backend: str = "megatron") -> frozenset[str]:
    """Every flag `train.py` accepts with `backend`'s parser."""
    if backend not in BACKENDS:
        raise ValueError(f"unknown miles training backend {backend!r} (known: {', '.join(BACKENDS)})")
    miles, megatron = _list("miles.txt"), _list("megatron.txt")
    if backend == "fsdp":
        return miles | fsdp_arguments()
    return (miles - (fsdp_arguments() - megatron)) | megatron  # FSDP's dataclass fields are not Megatron flags


def is_known_flag(flag: str, backend: str = "megatron") -> bool:
    if flag in known_flags(backend):
        return True
    return any(flag.startswith(prefix) and len(flag) > len(prefix) for prefix in GENERATED_PREFIXES)


def flag_tokens(argv: Iterable[str]) -> list[str]:
    """The tokens of `argv` that are flags (`--x`; `--x=value` counts as `--x`)."""
    return [token.split("=", 1)[0] for token in argv if token.startswith("--") and len(token) > 2]


def validate_flags(argv: Iterable[str], backend: str = "megatron") -> None:
    """Raise UnknownFlagError naming every flag of `argv` that miles' `backend` parser would reject, with the
    nearest known ones (and, for FSDP, which flags are Megatron-only)."""
    problems = []
    for flag in flag_tokens(argv):
        if is_known_flag(flag, backend):
            continue
        if backend == "fsdp" and flag in megatron_only_flags():
            problems.append(f"{flag} (a Megatron-LM flag: not an argument of the FSDP backend)")
            continue
        near = difflib.get_close_matches(flag, sorted(known_flags(backend)), n=3, cutoff=0.75)
        hint = f" (did you mean {', '.join(near)}?)" if near else ""
        problems.append(f"{flag}{hint}")
    if problems:
        raise UnknownFlagError(f"miles train.py ({backend} backend) does not accept: " + "; ".join(problems))
