"""The versions mileage depends on, in one place: what `mileage doctor` checks a machine against.

Two kinds of pins:
- the light environment (analysis, local engine, Snakemake): its exact pins live in pyproject.toml and
  are read back here at run time (from the installed distribution's metadata, or from pyproject.toml of
  a source checkout), never copied;
- the CUDA side every GPU engine shares (Python, CUDA 12.8, torch, Ray, what sm_120 needs). envs/*.yaml,
  flake.nix and docs/rtx5090.md spell the same values; tests/test_envs.py checks that they agree. An
  engine's own stack (its commits, image, kernels) is pinned in its folder (mileage/engines/<name>/).
"""

from __future__ import annotations

import importlib.metadata
import re
from pathlib import Path

from packaging.requirements import InvalidRequirement, Requirement

DISTRIBUTION = "mileage"
REPO_ROOT = Path(__file__).resolve().parents[1]

# Conda environment per rule family (paths relative to the repository root, as Snakemake's conda: wants).
ENV_FILES: dict[str, str] = {
    "analysis": "envs/analysis.yaml",
    "local": "envs/local-engine.yaml",
    "miles": "envs/miles.yaml",
}

# The CUDA 12.8 stack (envs/*.yaml, flake.nix's cuda shell, docs/rtx5090.md).
PYTHON_VERSION = "3.12.11"
CUDA_VERSION = "12.8"
PYTORCH_CU128_INDEX = "https://download.pytorch.org/whl/cu128"
TORCH_CU128 = "2.11.0+cu128"
TORCHVISION_CU128 = "0.26.0+cu128"
TORCHAUDIO_CU128 = "2.11.0+cu128"
RAY_VERSION = "2.60.0"

# What Blackwell consumer cards (compute capability 12.0) need of CUDA and torch at the least.
SM120_CAPABILITY = (12, 0)
MIN_CUDA_FOR_SM120 = (12, 8)
MIN_TORCH_FOR_SM120 = (2, 7)

_EXACT_PIN = re.compile(r"^==(?P<version>[^,*]+)$")


class PinsError(RuntimeError):
    """The light environment's pins cannot be read (neither installed metadata nor pyproject.toml)."""


def light_env_pins(include_dev: bool = False) -> dict[str, str]:
    """Exact pins of the light environment, {normalised name: version}, as pyproject.toml declares them.

    Read from the installed `mileage` distribution's metadata; a source tree that is not installed
    falls back to its pyproject.toml. Requirements that are not exact (`==`) are left out.
    """
    try:
        requires = importlib.metadata.requires(DISTRIBUTION) or []
        origin = f"installed metadata of {DISTRIBUTION}"
    except importlib.metadata.PackageNotFoundError:
        requires, origin = _pyproject_requires(REPO_ROOT / "pyproject.toml")
    pins: dict[str, str] = {}
    for line in requires:
        try:
            req = Requirement(line)
        except InvalidRequirement as exc:
            raise PinsError(f"{origin}: unreadable requirement {line!r}: {exc}") from exc
        is_dev = req.marker is not None and "extra" in str(req.marker)
        if is_dev and not (include_dev and req.marker.evaluate({"extra": "dev"})):
            continue
        match = _EXACT_PIN.match(str(req.specifier))
        if match:
            pins[normalise(req.name)] = match.group("version")
    return pins


def normalise(name: str) -> str:
    """PEP 503 name normalisation, so `PyYAML`, `pyyaml` and `huggingface-hub` compare equal."""
    return re.sub(r"[-_.]+", "-", name).lower()


def version_tuple(version: str) -> tuple[int, ...]:
    """Leading numeric release of a version string: '2.11.0+cu128' -> (2, 11, 0); '12.8' -> (12, 8)."""
    numbers: list[int] = []
    for part in version.split("+", 1)[0].split("."):
        digits = re.match(r"\d+", part)
        if not digits:
            break
        numbers.append(int(digits.group()))
        if digits.group() != part:
            break
    return tuple(numbers)


def _pyproject_requires(path: Path) -> tuple[list[str], str]:
    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10
        try:
            import tomli as tomllib  # type: ignore[no-redef]
        except ModuleNotFoundError as exc:
            raise PinsError(f"{DISTRIBUTION} is not installed and {path} needs tomllib (Python >= 3.11)") from exc
    if not path.exists():
        raise PinsError(f"{DISTRIBUTION} is not installed and {path} does not exist")
    project = tomllib.loads(path.read_text(encoding="utf-8")).get("project", {})
    requires = list(project.get("dependencies", []))
    for extra, items in project.get("optional-dependencies", {}).items():
        requires += [f'{item}; extra == "{extra}"' for item in items]
    return requires, str(path)
