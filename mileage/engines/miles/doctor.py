"""What mileage doctor checks of the miles stack: the modules it imports, their pins, and miles' own argument
parser (which mileage doctor runs on the training argv in the job's interpreter and environment)."""

from __future__ import annotations

from typing import Any

from mileage import pins as shared
from mileage.engines.contract import Finding, StackModule
from mileage.engines.miles import pins

STACK_MODULES = (
    StackModule("miles", "miles", True, expected=f"commit {pins.MILES_COMMIT[:10]}"),
    StackModule("megatron.core", "megatron-core", True, expected=pins.MEGATRON_CORE_VERSION,
                exact=pins.MEGATRON_CORE_VERSION),
    StackModule("sglang", "sglang", True, expected=f"commit {pins.SGLANG_COMMIT[:10]}"),
    StackModule("transformer_engine", "transformer-engine", True, expected=pins.TRANSFORMER_ENGINE_VERSION,
                exact=pins.TRANSFORMER_ENGINE_VERSION),
    StackModule("ray", "ray", True, expected=shared.RAY_VERSION),
    StackModule("flash_attn", "flash-attn", False, expected=f">= {pins.FLASH_ATTN_VERSION}"),
)

# miles' parser, as train.py calls it (mileage doctor runs it on the training argv).
PARSER_MODULE, PARSER_FUNCTION, PARSER_LABEL = "miles.utils.arguments", "parse_args", "miles parse_args"

_BUILD_HINT = f"build the miles stack (envs/README.md, docs/rtx5090.md) or run in {pins.MILES_CONTAINER_IMAGE}"


def _release(version: str) -> str:
    return version.split("+", 1)[0]


def stack_findings(facts: Any) -> list[Finding]:
    """Each stack module on the probed machine: importable, and at its pin."""
    found = []
    sm120 = any(gpu.capability == shared.SM120_CAPABILITY for gpu in facts.gpus)
    for mod in STACK_MODULES:
        check = f"{mod.module} importable"
        version = facts.versions.get(shared.normalise(mod.distribution))
        if not facts.importable.get(mod.module, False):
            if mod.required:
                found.append(Finding(check, mod.expected, "not importable", "FAIL", _BUILD_HINT))
            else:
                found.append(Finding(check, mod.expected, "not importable", "WARN",
                                     "without flash-attn use Megatron's --attention-backend fused (cuDNN >= 9.18)"))
            continue
        status, hint = "OK", ""
        if mod.distribution == "ray" and version != shared.RAY_VERSION:
            status, hint = "FAIL", f"the Ray cluster and the submitting driver must both run ray=={shared.RAY_VERSION}"
        elif mod.distribution == "flash-attn" and version and sm120 \
                and shared.version_tuple(version) < pins.MIN_FLASH_ATTN_FOR_SM120:
            status, hint = "WARN", "flash-attn < 2.8.3 has no sm_120 kernels: use --attention-backend fused"
        elif mod.exact and version and _release(version) != mod.exact:
            status, hint = "WARN", f"the miles stack pins {mod.distribution}=={mod.exact}"
        found.append(Finding(check, mod.expected, version or "present", status, hint))
    return found
