#!/usr/bin/env python3
"""Write envs/miles.lock.txt: every pip package of the miles environment at one exact version.

    python tools/lock/miles_env.py            # rewrite the lock (needs PyPI and uv==0.13.9; one to three minutes)
    python tools/lock/miles_env.py --check    # resolve again and fail if the lock would change

What the environment asks for is what miles v0.1.0 and its image declare (read from its source at
78527b91: requirements.txt, docker/Dockerfile) and what SGLang declares. SGLang's own requirements are read
from the PyPI metadata of SGLANG_METADATA_RELEASE, the release miles' Dockerfile builds on (`FROM
lmsysorg/sglang:v0.5.16`, its line 14): the pinned commit's python/pyproject.toml cannot be read from the
project's machines. They are rewritten for CUDA 12 exactly as miles' Dockerfile rewrites them for its CUDA 12
image (lines 210-214), and the later pins of that Dockerfile are applied (nvidia-cutlass-dsl 4.6.2, line 302;
flashinfer 0.6.15.post1, line 325). uv resolves the whole set against PyPI for CPython 3.12 on linux x86_64
(`uv pip compile --python-platform`; pip's own resolver backtracked for over ten minutes here), ignoring this
machine's pip and uv configuration, so the same PyPI gives the same file. torch's +cu128 wheels enter the
resolve as metadata-only stand-ins (PyTorch's index is unreachable here). What cannot come from PyPI is pinned by hand (HAND_PINNED, each with its reason) and marked so in
the lock.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

from packaging.markers import default_environment
from packaging.requirements import Requirement

sys.path.insert(0, str(Path(__file__).resolve().parent))
from pip_resolve import compile_for, normalise, requires_dist, stand_in_wheel, write_or_check  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
LOCK = REPO / "envs" / "miles.lock.txt"
sys.path.insert(0, str(REPO))
from mileage import pins  # noqa: E402
from mileage.engines.miles import env_lock, pins as miles_pins  # noqa: E402

PYTHON = "3.12"
# The oldest glibc whose manylinux wheels cover every package: resolving for manylinux_2_28 fails (llguidance,
# which SGLang requires, has no wheel for it); GLIBC_BELOW is checked to fail each time the lock is written.
GLIBC = (2, 31)
GLIBC_BELOW = (2, 28)
UV_PLATFORM = f"x86_64-manylinux_{GLIBC[0]}_{GLIBC[1]}"
# pip's metadata reads of single releases: the newest tag, so that a release with only newer wheels (sglang
# 0.5.16 ships manylinux_2_34 wheels; it is built from source here) can be read.
TARGET = (PYTHON, "manylinux_2_34_x86_64")
SGLANG_METADATA_RELEASE = "sglang==0.5.16"

# Where the CUDA 12 image of miles v0.1.0 rewrites SGLang's CUDA 13 requirements (docker/Dockerfile 211-213),
# as {name: (extras to set, specifier to set or None to keep)}. humming-kernels' [cu13] extra is the same kind
# of CUDA 13 selector; its [cu12] counterpart is taken.
CUDA12_REWRITES: dict[str, tuple[set[str], str | None]] = {
    "cuda-python": (set(), ">=12,<13"),
    "flashinfer-python": ({"cu12"}, None),
    "nvidia-cutlass-dsl": (set(), None),
    "humming-kernels": ({"cu12"}, None),
}
# Pins miles' Dockerfile lays over SGLang's after installing it (--force-reinstall --no-deps).
DOCKERFILE_OVERRIDES = {
    "nvidia-cutlass-dsl": "==4.6.2",   # line 302: 4.6.0/4.6.1 hang FA4 backward
    "flashinfer-python": "==0.6.15.post1",   # line 325: trtllm MoE cubins fixed
    "apache-tvm-ffi": "==0.1.11",   # line 288: SGLang's own pin restored
}

# miles v0.1.0 requirements.txt, as declared (its pins kept). Left out, with the reason:
# - nvidia-resiliency-ext~=0.6.0 (line 11): PyPI has it only as cp312 manylinux_2_39 wheels (glibc >= 2.39,
#   no sdist). miles' code never imports it (78527b91: one docstring mention) and radixark's Megatron-LM
#   imports it inside try/except ImportError, needing it only for `--non-persistent-ckpt-type local`, which
#   mileage never emits (mileage.engines.miles.env_lock refuses it in miles.extra_args).
MILES_REQUIREMENTS = [
    "accelerate", "blake3==1.0.9", "blobfile", "datasets", "httpx[http2]", "hypothesis>=5.40",
    "kubernetes_asyncio", "mcp[cli]", "memray", "omegaconf", "onnxscript", "openai", "pillow",
    "polars==1.42.1", "psycopg[binary]", "pybase64", "pylatexenc", "pytest-asyncio", "pyyaml",
    "qwen_vl_utils", "ray[default]", "ring_flash_attn", "safetensors>=0.8.0", "sglang-router>=0.2.3",
    "tensorboard", "torchft-nightly==2026.4.3", "tqdm", "transformers==5.12.1", "wandb",
    "xxhash==3.7.1", "zstandard==0.25.0",
]
# Transformer Engine's torch binding is installed --no-deps by miles' image; its runtime imports are
# installed beside it (Dockerfile line 130).
TE_RUNTIME = ["einops", "onnx", "onnxscript", "pydantic", "nvdlfw-inspect"]
# radixark/Megatron-LM 37f91617 pyproject.toml: dependencies (the checkout is installed from git, below).
MEGATRON_REQUIREMENTS = ["numpy", "packaging>=24.2"]

# The env's own top-level pins (envs/miles.yaml) and the build tools of the source builds.
ENV_PINS = [
    f"torch=={pins.TORCH_CU128.split('+')[0]}",
    f"torchvision=={pins.TORCHVISION_CU128.split('+')[0]}",
    f"torchaudio=={pins.TORCHAUDIO_CU128.split('+')[0]}",
    f"transformer-engine=={miles_pins.TRANSFORMER_ENGINE_VERSION}",
    f"transformer-engine-cu12=={miles_pins.TRANSFORMER_ENGINE_VERSION}",
    f"ray[default]=={pins.RAY_VERSION}",
    # The build tools envs/miles.yaml installs, at its versions (cmake stays on 3.x: CMake 4 refuses projects that
    # declare a minimum below 3.5, which older extension builds do).
    "ninja==1.13.0", "cmake==3.31.6", "pybind11==3.0.1", "setuptools==80.9.0", "wheel==0.45.1",
    "einops==0.8.1", "packaging==25.0",
    "scikit-build-core",  # sgl-kernel's (sglang-kernel's) build backend; it is built without isolation
]

GIT = "git+https://github.com"
# Lines that PyPI cannot give, each with why. The three torch lines replace PyPI's 2.11.0 (resolved in
# their place so that their dependencies are locked; PyTorch's cu128 wheels depend on the same CUDA 12 libs).
HAND_PINNED: dict[str, tuple[str, str]] = {
    "torch": (f"torch=={pins.TORCH_CU128}", "PyTorch's cu128 index (unreachable here): sm_120 needs CUDA 12.8"),
    "torchvision": (f"torchvision=={pins.TORCHVISION_CU128}", "PyTorch's cu128 index, with torch"),
    "torchaudio": (f"torchaudio=={pins.TORCHAUDIO_CU128}", "PyTorch's cu128 index, with torch"),
    "megatron-core": (f"megatron-core @ {GIT}/radixark/Megatron-LM.git@{miles_pins.MEGATRON_COMMIT}",
                      "miles v0.1.0 release-lock.json"),
    "sglang": (f"sglang @ {GIT}/sgl-project/sglang.git@{miles_pins.SGLANG_COMMIT}#subdirectory=python",
               "miles v0.1.0 release-lock.json; built here (Rust extensions)"),
    "sglang-kernel": (f"sglang-kernel @ {GIT}/sgl-project/sglang.git@{miles_pins.SGLANG_COMMIT}#subdirectory=sgl-kernel",
                      "same commit; compiled here for TORCH_CUDA_ARCH_LIST (PyPI's wheel has no sm_120)"),
    "miles": (f"miles @ {GIT}/radixark/miles.git@{miles_pins.MILES_COMMIT}", "miles v0.1.0"),
    "mbridge": (f"mbridge @ {GIT}/ISEEKYAN/mbridge.git@{env_lock.MBRIDGE_COMMIT}",
                "miles v0.1.0 docker/Dockerfile line 85 (--no-deps); tools/convert_hf_to_torch_dist.py imports it"),
    "transformer-engine-torch": (f"transformer-engine-torch=={miles_pins.TRANSFORMER_ENGINE_VERSION}",
                                 "PyPI sdist only: compiled here against this torch"),
    "flash-attn": (f"flash-attn=={miles_pins.FLASH_ATTN_VERSION}", "PyPI sdist only: compiled here against this torch"),
}
# The CUDA 12 libraries PyTorch's cu12x wheels depend on, each at the exact version torch's own metadata pins:
# they come with the torch line from PyTorch's cu128 index (its metadata cannot be read from here), so they
# are not locked from PyPI (a newer PyPI release would clash with torch's exact pin).
TORCH_CUDA_LIBS = {
    "nvidia-cublas-cu12", "nvidia-cuda-cupti-cu12", "nvidia-cuda-nvrtc-cu12", "nvidia-cuda-runtime-cu12",
    "nvidia-cudnn-cu12", "nvidia-cufft-cu12", "nvidia-cufile-cu12", "nvidia-curand-cu12", "nvidia-cusolver-cu12",
    "nvidia-cusparse-cu12", "nvidia-cusparselt-cu12", "nvidia-nccl-cu12", "nvidia-nvjitlink-cu12",
    "nvidia-nvshmem-cu12", "nvidia-nvtx-cu12",
}
# Packages that must never be in the lock: SGLang's CUDA 13 line (is_cuda13).
CUDA13_MARKERS = ("cu13", "cuda13")
# Except these two, which nvidia-cutlass-dsl 4.6.2 itself requires on every CUDA line (its meta-package pulls
# both runtime-lib wheels, all its libs the disassembler); miles' CUDA 12 image installs them too (Dockerfile
# 302-307). The DSL loads the libs of the CUDA it finds.
CUDA13_KEPT = {
    "nvidia-cutlass-dsl-libs-cu13": "kept: required by nvidia-cutlass-dsl 4.6.2 on CUDA 12 too (as in miles' image)",
    "nvidia-cuda-nvdisasm": "kept: a disassembler every nvidia-cutlass-dsl-libs-* 4.6.2 requires",
}


def target_environment() -> dict[str, str]:
    env = default_environment()
    env.update(sys_platform="linux", platform_system="Linux", platform_machine="x86_64", os_name="posix",
               python_version=PYTHON, python_full_version=pins.PYTHON_VERSION,
               implementation_name="cpython", platform_python_implementation="CPython", extra="")
    return env


def sglang_requirements() -> list[str]:
    """SGLang's run-time requirements for linux x86_64, CUDA 12 as miles' image installs them."""
    env = target_environment()
    out = []
    for line in requires_dist(SGLANG_METADATA_RELEASE, TARGET):
        req = Requirement(line)
        if req.marker is not None and not req.marker.evaluate(env):
            continue  # extras and other platforms
        req.marker = None
        name = normalise(req.name)
        if name in HAND_PINNED:
            continue  # torch's line and the kernel: pinned below, not PyPI's
        if name in CUDA12_REWRITES:
            extras, spec = CUDA12_REWRITES[name]
            req.extras = set(extras)
            if spec is not None:
                req.specifier = type(req.specifier)(spec)
        if name in DOCKERFILE_OVERRIDES:
            req.specifier = type(req.specifier)(DOCKERFILE_OVERRIDES[name])
        out.append(str(req))
    return out


def is_cuda13(name: str, version: str) -> bool:
    """A CUDA 13 package: `cu13` in its name, or a CUDA toolkit/bindings package (cuda-*, nvidia-cuda-*) at 13.x."""
    return (any(m in name for m in CUDA13_MARKERS)
            or (name.startswith(("cuda-", "nvidia-cuda-")) and version.startswith("13.")))


def torch_stand_ins(directory: Path) -> list[str]:
    """Metadata-only +cu128 torch wheels for the resolve: PyPI's own 2.11.0 requirements less its CUDA 13 libraries.

    PyPI's torch 2.11.0 is a CUDA 13 build (cuda-toolkit 13.0.2, nvidia-*-cu13); the cu128 build of the same
    release needs the same Python packages (triton 3.6.0 included) and CUDA 12 libraries instead.
    """
    constraints = []
    for name, pinned in (("torch", pins.TORCH_CU128), ("torchvision", pins.TORCHVISION_CU128),
                         ("torchaudio", pins.TORCHAUDIO_CU128)):
        base = pinned.split("+")[0]
        keep = [line for line in requires_dist(f"{name}=={base}", TARGET)
                if not normalise(Requirement(line).name).startswith(("nvidia-", "cuda-"))]
        stand_in_wheel(directory, name, pinned, keep)
        constraints.append(f"{name}=={pinned}")
    return constraints


def lock_lines() -> list[str]:
    wanted = sglang_requirements() + MILES_REQUIREMENTS + TE_RUNTIME + MEGATRON_REQUIREMENTS + ENV_PINS
    with tempfile.TemporaryDirectory(prefix="torch-cu128-") as tmp:
        constraints = torch_stand_ins(Path(tmp))
        resolved = compile_for(wanted, constraints, PYTHON, UV_PLATFORM, find_links=Path(tmp))
        try:
            compile_for(wanted, constraints, PYTHON, f"x86_64-manylinux_{GLIBC_BELOW[0]}_{GLIBC_BELOW[1]}",
                        find_links=Path(tmp))
        except SystemExit:
            pass  # as it should: the wheels need the newer glibc
        else:
            raise SystemExit(f"the stack also resolves for glibc {GLIBC_BELOW}: lower GLIBC in {__file__}")
    unknown_cuda13 = sorted(n for n, v in resolved.items() if is_cuda13(n, v) and n not in CUDA13_KEPT)
    if unknown_cuda13:
        raise SystemExit("CUDA 13 packages resolved into the CUDA 12.8 env: "
                         + ", ".join(f"{n}=={resolved[n]}" for n in unknown_cuda13))
    body = {name: f"{name}=={version}" for name, version in resolved.items() if name not in TORCH_CUDA_LIBS}
    for name, why in CUDA13_KEPT.items():
        if name in body:
            body[name] += f"  # {why}"
    for name, (line, why) in HAND_PINNED.items():
        body[name] = f"{line}  # hand-pinned: {why}"
    header = [
        "# The miles environment (envs/miles.yaml + envs/miles.post-deploy.sh): every pip package at one version.",
        "# Written by tools/lock/miles_env.py (do not edit by hand; run it again). Resolved by uv against PyPI for",
        f"# CPython {PYTHON} on linux x86_64; SGLang's requirements from {SGLANG_METADATA_RELEASE}'s metadata with",
        "# miles v0.1.0's CUDA 12 rewrites. Lines marked 'hand-pinned' are not from PyPI. Not listed: torch's CUDA",
        "# 12 libraries (the nvidia-*-cu12 that torch==2.11.0+cu128 pins exactly in its own metadata).",
        f"# requires-glibc: {GLIBC[0]}.{GLIBC[1]}  (no wheel set for manylinux_{GLIBC_BELOW[0]}_{GLIBC_BELOW[1]})",
    ]
    return header + [body[name] for name in sorted(body)]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="fail if the lock is not what a fresh resolve writes")
    parser.add_argument("--out", type=Path, default=LOCK)
    args = parser.parse_args()
    text = "\n".join(lock_lines()) + "\n"
    return write_or_check(args.out, text, "tools/lock/miles_env.py", args.check)


if __name__ == "__main__":
    sys.exit(main())
