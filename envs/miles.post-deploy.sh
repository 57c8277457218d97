#!/usr/bin/env bash
# The part of the miles environment that envs/miles.yaml cannot express. Snakemake runs this file inside the env
# it has just created from envs/miles.yaml (`snakemake --sdm conda`: a post-deploy script has the env file's name);
# by hand: `conda env create -f envs/miles.yaml && conda activate mileage-miles && bash envs/miles.post-deploy.sh`.
#
# Every pip package comes from envs/miles.lock.txt at its locked version (tools/lock/miles_env.py writes it), all
# with --no-deps: the lock is the whole set, so no resolver runs here and nothing can pull another torch or CUDA
# line. What the lock marks hand-pinned is built here, the way miles v0.1.0's own image builds it
# (docker/Dockerfile at 78527b91):
#   - Transformer Engine's torch binding and flash-attn (PyPI sdists), sglang-kernel (the sgl-kernel/ folder of
#     SGLang, which builds a distribution named sglang-kernel with scikit-build-core): compiled against this env's
#     torch for TORCH_CUDA_ARCH_LIST, without build isolation (an isolated build fetches PyPI's newest torch,
#     another CUDA line, and the extension does not load);
#   - SGLang's Python package (python/; it carries Rust extensions: cargo comes from the yaml's rust) with
#     pip's build isolation: it does not link against torch;
#   - miles v0.1.0 and mbridge at their commits (Dockerfile line 85);
# then the miles and Megatron-LM checkouts the jobs run from. SGLang's and miles' own requirements are in the lock
# already, with the CUDA 12 rewrites miles' CUDA 12 image applies (Dockerfile 210-214). Needs GitHub and PyPI
# access, nvcc (cuda-toolkit from the yaml) and about an hour of compiling. Not run by the project (its machines
# reach neither GitHub nor a GPU): docs/miles-environment.md says what was checked.
set -euo pipefail

: "${CONDA_PREFIX:?run inside the mileage-miles env}"
export CUDA_HOME="${CUDA_HOME:-$CONDA_PREFIX}"
export TORCH_CUDA_ARCH_LIST="${TORCH_CUDA_ARCH_LIST:-12.0}"   # RTX 50xx; e.g. "9.0;12.0" for H100 + 5090
export NVTE_CUDA_ARCHS="${NVTE_CUDA_ARCHS:-120}"
export MAX_JOBS="${MAX_JOBS:-8}"
SRC="$CONDA_PREFIX/src"
mkdir -p "$SRC"

# The lock: MILES_LOCK, else envs/miles.lock.txt of the working directory (Snakemake runs this from the
# repository), else beside this script.
LOCK="${MILES_LOCK:-envs/miles.lock.txt}"
[ -f "$LOCK" ] || LOCK="$(dirname "${BASH_SOURCE[0]}")/miles.lock.txt"
[ -f "$LOCK" ] || { echo "miles.post-deploy.sh: envs/miles.lock.txt not found (set MILES_LOCK)" >&2; exit 1; }
locked() {  # name: its requirement line in the lock, comment stripped
    local line
    line="$(grep -E "^$1( @|==)" "$LOCK" | sed 's/  #.*//')"
    [ -n "$line" ] || { echo "miles.post-deploy.sh: $1 is not in $LOCK" >&2; exit 1; }
    printf '%s\n' "$line"
}
PIP=(python -m pip install --no-deps)

# 1. Every package PyPI gives, at its locked version (the torch lines are the yaml's and already installed).
grep -v -e '^#' -e 'hand-pinned' "$LOCK" | sed 's/  #.*//' > "$SRC/pypi-locked.txt"
"${PIP[@]}" -r "$SRC/pypi-locked.txt"

# 2. Compiled against this torch for the arch list (build tools from step 1: scikit-build-core, ninja, cmake).
"${PIP[@]}" --no-build-isolation "$(locked sglang-kernel)"
"${PIP[@]}" --no-build-isolation "$(locked transformer-engine-torch)"
"${PIP[@]}" --no-build-isolation "$(locked flash-attn)"   # optional for training: --attention-backend fused

# 3. SGLang's Python package (Rust extensions, built in isolation), miles v0.1.0 and mbridge.
"${PIP[@]}" "$(locked sglang)"
"${PIP[@]}" "$(locked miles)"
"${PIP[@]}" "$(locked mbridge)"

# 4. The checkouts the jobs run from: train.py and tools/ (config miles.miles_dir) and radixark's Megatron-LM
#    (miles.megatron_dir, put on PYTHONPATH: megatron.training is not in the wheel).
checkout() {  # url commit dir: a clone at exactly that commit
    [ -d "$3/.git" ] || git clone --quiet "$1" "$3"
    git -C "$3" fetch --quiet origin "$2"
    git -C "$3" checkout --quiet --detach "$2"
}
checkout https://github.com/radixark/miles.git 78527b9102b3a5f15891128cbec3ac6c2dc4089e "$SRC/miles"
checkout https://github.com/radixark/Megatron-LM.git 37f91617b95c1ef4f01fc66210e502572ad97fda "$SRC/Megatron-LM"

echo "mileage-miles: set miles.miles_dir: $SRC/miles and miles.megatron_dir: $SRC/Megatron-LM, then run" \
     "'mileage doctor EXPERIMENT' in this env (it checks the env against $LOCK)"
