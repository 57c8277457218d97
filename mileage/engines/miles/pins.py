"""The miles stack's pins: facts from /work/shared/miles/FACTS.md sections 1 and 7 (the commits of the miles v0.1.0
release and its release-lock.json, the image tag, what sm_120 needs of the miles-only packages). envs/miles.yaml,
envs/miles.post-deploy.sh, flake.nix and docs/rtx5090.md spell the same values; tests/test_envs.py checks that
they agree. What both environments share (Python, CUDA, torch, Ray) is mileage.pins'.
"""

from __future__ import annotations

# The miles image for --sdm apptainer: CUDA 12.9, prebuilt kernels for sm 8.0-10.3 (H100/H200/B200 boxes).
# It has no sm_120 kernels and there is no CUDA 12.8 image: an RTX 5090 takes the from-source path.
MILES_CONTAINER_IMAGE = "docker://radixark/miles:v0.1.0-cu12"
MILES_CONTAINER_CUDA = "12.9"

# miles release v0.1.0 and the SGLang / Megatron-LM commits its release-lock.json pins.
MILES_REPO = "https://github.com/radixark/miles.git"
MILES_COMMIT = "78527b9102b3a5f15891128cbec3ac6c2dc4089e"
MILES_VERSION_TAG = "v0.1.0"
# The flag lists in the project (miles' parser) were read at miles main HEAD, a later commit.
MILES_FLAGS_COMMIT = "31f1ca961a94cb860cec3b2dea34ec332bfa8f76"
SGLANG_REPO = "https://github.com/sgl-project/sglang.git"
SGLANG_BRANCH = "sglang-miles"
SGLANG_COMMIT = "cb05a44f35a7c9e27e46d74112cc841ca674ef43"
MEGATRON_REPO = "https://github.com/radixark/Megatron-LM.git"
MEGATRON_BRANCH = "miles-main"
MEGATRON_COMMIT = "37f91617b95c1ef4f01fc66210e502572ad97fda"
MEGATRON_CORE_VERSION = "0.16.0rc0"

TRANSFORMER_ENGINE_VERSION = "2.18.0"
FLASH_ATTN_VERSION = "2.8.3"

# What Blackwell consumer cards (compute capability 12.0) need of the miles-only packages at the least.
MIN_FLASH_ATTN_FOR_SM120 = (2, 8, 3)
MIN_CUDNN_FOR_FUSED_ATTENTION_SM120 = (9, 18)
