#!/usr/bin/env bash
# The GPU check, prepared here and run in one go on a machine with a CUDA GPU (docs/miles-environment.md).
#
#   bash benchmarks/gpu_check.sh prepare [PYTHON_VERSION]   # here: the wheels it needs into .whl/ (<= 64 MiB)
#   bash benchmarks/gpu_check.sh run [--cpu] [ARGS...]       # there: install them offline, run the checks
#
# `prepare` downloads, for CPython PYTHON_VERSION (default 3.12) on manylinux x86_64, the wheels of what the
# checks import besides torch, at the versions constraints.txt locks, into .whl/
# (git-ignored; it travels with the working tree) and fails if they exceed 64 MiB. `run` needs only python3 with
# a CUDA torch and no network: it makes a venv that sees the machine's torch (--system-site-packages), installs
# .whl/ into it with --no-index --no-deps, then runs
#   1. benchmarks/gpu_check.py: the local engine's GRPO training and in-training evaluation steps on CUDA for a
#      Qwen3-0.6B-shaped model (random weights, the tiny tokenizer, no Ray), its peak memory against 8 B/param;
#   2. mileage doctor on the machine (the GPUs, CUDA, torch as doctor sees them; a missing miles stack is
#      expected there and not a failure of this check).
# --cpu runs the same on the CPU (2 decoder layers unless --layers says otherwise): proof that the script runs
# end to end where there is no GPU, not a measurement. Extra ARGS go to gpu_check.py. Exit status: gpu_check.py's.
set -euo pipefail
cd "$(dirname "$0")/.."
WHEELS=.whl
LIMIT_MIB=64
# What the checks import (the local engine's GRPO path, the reward, doctor's imports) and all they require,
# read from the installed light environment (.venv); torch and what only a CUDA torch needs stay the host's.
ROOTS=(trl transformers datasets accelerate math-verify jsonschema pyyaml packaging tensorboard)
# The lent GPU machines' image already holds these (/work/.library/device/KINDS.md, read 2026-11-17): not
# carried, the host's version is used ...
HOST_HAS=(aiohappyeyeballs aiohttp aiosignal anyio attrs certifi charset-normalizer click filelock frozenlist fsspec
    h11 hf-xet httpcore httpx idna jinja2 markdown-it-py markupsafe mdurl mpmath multidict networkx numpy pandas
    propcache psutil pyarrow pygments python-dateutil pyyaml regex requests rich setuptools shellingham six sympy
    tqdm typer typing-extensions urllib3 xxhash yarl packaging tensorboard tensorboard-data-server werkzeug markdown
    grpcio protobuf absl-py pillow)
# ... except the libraries the engine's numbers depend on, carried at the light lock's versions. mileage itself
# is not installed: it is imported from this checkout (as the rule scripts do), so config/ is where it looks.
OURS=(transformers tokenizers huggingface-hub safetensors accelerate trl datasets)

closure() {  # the distributions ROOTS require, transitively, minus torch's CUDA stack: one name per line
    .venv/bin/python - "${ROOTS[@]}" <<'PY'
import importlib.metadata as md, re, sys
from packaging.requirements import Requirement
norm = lambda n: re.sub(r"[-_.]+", "-", n).lower()
skip = lambda n: n in ("torch", "triton", "mileage") or n.startswith(("nvidia-", "cuda-"))
seen, todo = set(), [norm(n) for n in sys.argv[1:]]
while todo:
    name = todo.pop()
    if name in seen or skip(name):
        continue
    seen.add(name)
    for line in md.requires(name) or []:
        req = Requirement(line)
        if req.marker is None or req.marker.evaluate({"extra": ""}):
            todo.append(norm(req.name))
print("\n".join(sorted(seen)))
PY
}

prepare() {
    local py="${1:-3.12}" args=()
    rm -rf "$WHEELS" && mkdir -p "$WHEELS"
    for name in $(closure); do
        if [[ " ${HOST_HAS[*]} " == *" $name "* ]]; then continue; fi
        line="$(grep -i -E "^${name}==" constraints.txt)" || { echo "gpu_check: $name is not in constraints.txt" >&2; exit 1; }
        args+=("$line")
    done
    python3 -m pip download --quiet --no-deps --only-binary=:all: --python-version "$py" --implementation cp \
        --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
        -d "$WHEELS" "${args[@]}"
    local mib
    mib=$(du -sm "$WHEELS" | cut -f1)
    echo "gpu_check: $(ls "$WHEELS" | wc -l) wheels, ${mib} MiB in $WHEELS (limit ${LIMIT_MIB} MiB)"
    [ "$mib" -le "$LIMIT_MIB" ] || { echo "gpu_check: $WHEELS is over ${LIMIT_MIB} MiB" >&2; exit 1; }
}

run() {
    local device=cuda layers=()
    if [ "${1:-}" = "--cpu" ]; then device=cpu; layers=(--layers 2); shift; fi
    # Into a folder on PYTHONPATH, not a venv: the host's python3 may itself be a venv (the lent machines' is),
    # and a venv made from it would not see its torch.
    local site="${GPU_CHECK_SITE:-/tmp/gpu-check-site}" out="${OUT:-/tmp}/gpu-check" repo="$PWD"
    python3 -c "import torch; print('gpu_check: host torch', torch.__version__, 'CUDA', torch.version.cuda)"
    # From .whl/ alone: what the host lacks, and OURS at their versions over the host's.
    local install=()
    for wheel in "$WHEELS"/*.whl; do
        name="$(basename "$wheel" | cut -d- -f1 | tr '_' '-' | tr '[:upper:]' '[:lower:]')"
        if [[ " ${OURS[*]} " == *" $name "* ]] || ! python3 -c \
                "import importlib.metadata as m, sys; m.version(sys.argv[1])" "$name" 2>/dev/null; then
            install+=("$wheel")
        fi
    done
    python3 -m pip install --quiet --no-index --no-deps --no-compile --upgrade --target "$site" "${install[@]}"
    export PYTHONPATH="$repo:$site${PYTHONPATH:+:$PYTHONPATH}"
    mkdir -p "$out"
    local status=0
    ( cd "$out" && python3 "$repo/benchmarks/gpu_check.py" --device "$device" "${layers[@]}" --out "$out/run" "$@" ) \
        || status=$?
    echo "gpu_check: mileage doctor on this machine:"
    ( cd "$out" && python3 -c "import sys; from mileage.cli import main; sys.exit(main(sys.argv[1:]))" \
        --config "$repo/config/config.yaml" doctor ) || true
    return "$status"
}

case "${1:-}" in
    prepare) shift; prepare "$@" ;;
    run) shift; run "$@" ;;
    *) echo "usage: bash benchmarks/gpu_check.sh prepare [PYTHON_VERSION] | run [--cpu] [ARGS...]" >&2; exit 2 ;;
esac
