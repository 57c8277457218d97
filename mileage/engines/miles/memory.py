"""The memory plan's parts that both backends' plans share (mileage.engines.miles.plan for Megatron, plan_fsdp for
FSDP): the GiB constants of the model, the plan and its phases, SGLang's share of a rollout GPU."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping

GIB = float(2**30)

# Calibration of one micro-batch's activations (GiB) vs tokens, fitted exactly through FACTS section 7's three
# measurements (peak - weights - gradients = 0.69, 1.34, 3.45 GiB at 2, 4, 8 x 1024 tokens).
ACT_C0, ACT_C1, ACT_C2 = 0.31, 0.1225, 0.03375
CALIBRATION_SHAPE = (4096, 40)  # hidden size, layers of the calibrated model
PROMPT_TOKENS_ASSUMED = 1024  # prompt length added to max_response_len without dynamic batching
TRAINER_RUNTIME_GIB = 2.0  # CUDA context, NCCL buffers, cuBLAS workspace of a Megatron rank
TRAINER_RESIDUAL_GIB = 1.5  # what an offloaded Megatron rank keeps (context, NCCL)
SGLANG_RUNTIME_GIB = 1.5  # SGLang outside its static share: context, CUDA graphs, sampling buffers
SGLANG_RESIDUAL_GIB = 1.0  # what a released SGLang engine keeps
SGLANG_FRACTION_ASSUMED = 0.85  # mem_fraction_static when SGLang picks it (it sizes by GPU memory and TP)
MIN_KV_CACHE_GIB = 1.0
FRAGMENTATION = 0.05
HOST_BASE_GIB = 16.0  # Ray, the driver, data loading
HOST_PER_GPU_GIB = 3.0  # each trainer / engine process's host memory
REFERENCE_GPU = ("H100 80GB", 79.6)
SUGGESTION_HEADROOM = 0.9  # a suggested layout leaves 10% of each GPU free


class PlanError(ValueError):
    """The preflight cannot size this experiment (no model card, unknown GPU memory)."""


@dataclass
class Phase:
    """What sits on one GPU while one thing runs."""

    name: str
    gpus: str
    items: list[tuple[str, float]]

    @property
    def total(self) -> float:
        return sum(v for _, v in self.items)


@dataclass
class MemoryPlan:
    experiment: str
    applicable: bool
    gpus: int = 0
    gpus_needed: int = 0
    gpu_memory_gib: float = 0.0
    host_memory_gib: float = 0.0
    parameter_count: int = 0
    phases: list[Phase] = field(default_factory=list)
    host_items: list[tuple[str, float]] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    assumptions: list[str] = field(default_factory=list)
    suggestions: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)  # fits, but said plainly (e.g. an accepted bf16 master)
    backend: str = "megatron"

    @property
    def fits(self) -> bool:
        return not self.problems

    @property
    def gpu_peak_gib(self) -> float:
        return max((p.total for p in self.phases), default=0.0)

    @property
    def host_total_gib(self) -> float:
        return sum(v for _, v in self.host_items)

    @property
    def summary(self) -> str:
        if not self.applicable:
            return (f"mileage plan: {self.experiment}: local engine: n/a (the preflight sizes miles runs; the "
                    f"local engine trains small models on one device)\nverdict: fits\n")
        labels = [label for phase in self.phases for label, _ in phase.items] + [label for label, _ in self.host_items]
        width = max([62] + [len(label) + 4 for label in labels])
        lines = [f"mileage plan: {self.experiment} ({self.parameter_count / 1e9:.2f}B parameters, {self.backend} backend)",
                 f"GPUs: {self.gpus} x {self.gpu_memory_gib:.1f} GiB (the placement needs {self.gpus_needed}); "
                 f"host RAM {self.host_memory_gib:.0f} GiB", ""]
        for phase in self.phases:
            lines.append(f"{phase.name} [{phase.gpus}], per GPU".ljust(width) + "    GiB")
            lines += [f"  {label}".ljust(width) + f"{value:7.2f}" for label, value in phase.items]
            verdict = "ok" if phase.total <= self.gpu_memory_gib else "DOES NOT FIT"
            lines.append("  total".ljust(width) + f"{phase.total:7.2f} / {self.gpu_memory_gib:.1f}  {verdict}")
            lines.append("")
        lines.append("host RAM".ljust(width) + "    GiB")
        lines += [f"  {label}".ljust(width) + f"{value:7.2f}" for label, value in self.host_items]
        verdict = "ok" if self.host_total_gib <= self.host_memory_gib else "DOES NOT FIT"
        lines.append("  total".ljust(width) + f"{self.host_total_gib:7.2f} / {self.host_memory_gib:.0f}  {verdict}")
        lines.append("")
        lines.append("verdict: fits" if self.fits else "verdict: DOES NOT FIT")
        lines += [f"  - {p}" for p in self.problems]
        if self.warnings:
            lines.append("warnings:")
            lines += [f"  - {w}" for w in self.warnings]
        if self.suggestions:
            lines.append("what would fit:")
            lines += [f"  - {s}" for s in self.suggestions]
        lines.append("assumptions:")
        lines += [f"  - {a}" for a in self.assumptions]
        return "\n".join(lines) + "\n"


def sglang_fraction(miles: Mapping[str, Any], plan: MemoryPlan) -> float:
    """SGLang's share of a rollout GPU: the configured mem_fraction_static, else an assumption the plan states."""
    fraction = miles["sglang"]["mem_fraction_static"]
    if fraction is None:
        fraction = SGLANG_FRACTION_ASSUMED
        plan.assumptions.append(f"SGLang picks mem_fraction_static; assumed {SGLANG_FRACTION_ASSUMED}")
    return fraction
