#!/usr/bin/env bash
# The part of the miles environment that envs/miles.yaml cannot express. Snakemake runs this file inside the env
# it has just created from envs/miles.yaml (`snakemake --sdm conda`: a post-deploy script has the env file's name);
# by hand: `conda env create -f envs/miles.yaml && conda activate mileage-miles && bash envs/miles.post-deploy.sh`.
#
# Why not in the yaml: these are compiled against the env's torch (2.11.0+cu128) without pip's build isolation (an
# isolated build fetches PyPI's newest torch, another CUDA line, and the extension does not load), or installed
# with --no-deps because their own metadata pins other torch/CUDA lines. Every source is a full commit: the
# commits are mileage/pins.py's (MILES_COMMIT, SGLANG_COMMIT, MEGATRON_COMMIT = miles v0.1.0 and its release lock);
# tests/test_envs.py checks that they agree. Needs GitHub and PyPI access, nvcc (cuda-toolkit from the yaml) and
# about an hour of compiling. Nothing of this has been run by the project (its machines reach neither GitHub nor a
# GPU): see envs/README.md, "What was checked".
set -euo pipefail

: "${CONDA_PREFIX:?run inside the mileage-miles env}"
export CUDA_HOME="${CUDA_HOME:-$CONDA_PREFIX}"
export TORCH_CUDA_ARCH_LIST="${TORCH_CUDA_ARCH_LIST:-12.0}"   # RTX 50xx; e.g. "9.0;12.0" for H100 + 5090
export NVTE_CUDA_ARCHS="${NVTE_CUDA_ARCHS:-120}"
export MAX_JOBS="${MAX_JOBS:-8}"
SRC="$CONDA_PREFIX/src"
mkdir -p "$SRC"
PIP=(python -m pip install --no-build-isolation --no-deps)

# 1. Transformer Engine's torch binding and flash-attn, compiled for the arch list against this torch.
"${PIP[@]}" transformer-engine-torch==2.18.0
"${PIP[@]}" flash-attn==2.8.3   # optional: without it train with --attention-backend fused

# 2. SGLang at miles v0.1.0's release-lock commit (branch sglang-miles): the Python package and its kernels.
"${PIP[@]}" "sglang @ git+https://github.com/sgl-project/sglang.git@cb05a44f35a7c9e27e46d74112cc841ca674ef43#subdirectory=python"
"${PIP[@]}" "sgl-kernel @ git+https://github.com/sgl-project/sglang.git@cb05a44f35a7c9e27e46d74112cc841ca674ef43#subdirectory=sgl-kernel"

# 3. miles v0.1.0 itself, and the checkouts its jobs run from: train.py and tools/ (config miles.miles_dir) and
#    radixark's Megatron-LM (miles.megatron_dir, put on PYTHONPATH: megatron.training is not in the wheel).
"${PIP[@]}" "miles @ git+https://github.com/radixark/miles.git@78527b9102b3a5f15891128cbec3ac6c2dc4089e"
checkout() {  # url commit dir: a clone at exactly that commit
    [ -d "$3/.git" ] || git clone --quiet "$1" "$3"
    git -C "$3" fetch --quiet origin "$2"
    git -C "$3" checkout --quiet --detach "$2"
}
checkout https://github.com/radixark/miles.git 78527b9102b3a5f15891128cbec3ac6c2dc4089e "$SRC/miles"
checkout https://github.com/radixark/Megatron-LM.git 37f91617b95c1ef4f01fc66210e502572ad97fda "$SRC/Megatron-LM"

# 4. What SGLang and miles need besides (their own metadata's pins), without letting any of it replace this torch:
#    a dependency that wants another torch stops the build here instead of installing a second CUDA line.
python - > "$SRC/stack-requirements.txt" <<'PY'
import importlib.metadata as md
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

built_here = {"torch", "torchvision", "torchaudio", "triton", "sglang", "sgl-kernel", "miles", "flash-attn",
              "transformer-engine", "transformer-engine-torch", "transformer-engine-cu12", "megatron-core", "ray"}
for dist in ("sglang", "miles"):
    for line in md.requires(dist) or []:
        req = Requirement(line)
        if req.marker is not None and not req.marker.evaluate({"extra": ""}):
            continue
        if canonicalize_name(req.name) not in built_here:
            req.marker = None
            print(req)
PY
python - > "$SRC/stack-constraints.txt" <<'PY'
import importlib.metadata as md
for dist in ("torch", "torchvision", "torchaudio", "ray", "transformer-engine"):
    print(f"{dist}=={md.version(dist)}")
PY
python -m pip install -r "$SRC/stack-requirements.txt" -c "$SRC/stack-constraints.txt"

echo "mileage-miles: set miles.miles_dir: $SRC/miles and miles.megatron_dir: $SRC/Megatron-LM, then run" \
     "'mileage doctor EXPERIMENT' in this env"
