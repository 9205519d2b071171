#!/usr/bin/env bash
# Download, on a machine with network, the wheels `make bench-gpu` installs on a GPU machine that has
# PyTorch, transformers and accelerate but nothing else and no network.
#
#   bash scripts/fetch-gpu-wheels.sh                       # CPython 3.12, manylinux x86_64, into wheels/gpu
#   GPU_PYTHON=3.11 TORCHAO=none bash scripts/fetch-gpu-wheels.sh
#
# GPU_PYTHON: the GPU machine's Python (the lent machines have 3.12 with torch 2.11 and transformers 5.17).
# TORCHAO: the torchao release built for that torch (0.17.0 is the one released beside torch 2.11; its wheel
#   is abi3) for float8 matmuls, or "none" to leave FP8 to diffusers' layerwise casting. WHEELS_DIR: where the wheels go (ignored by git).
# Only these exact wheels are fetched (no dependency resolution, so no multi-GB CUDA torch is pulled in);
# everything else comes with transformers and accelerate. huggingface-hub stays below 2.0: transformers 5
# requires that, and diffusers 0.42.1 needs 1.32 or later.
set -euo pipefail

GPU_PYTHON="${GPU_PYTHON:-3.12}"
TORCHAO="${TORCHAO:-0.17.0}"
WHEELS_DIR="${WHEELS_DIR:-wheels/gpu}"
PIP="${PIP:-$(dirname "$0")/../.venv/bin/pip}"
[ -x "$PIP" ] || PIP="python3 -m pip"

WHEELS=(
  diffusers==0.42.1 peft==0.21.2 ftfy==6.3.1 wcwidth==0.9.5
  huggingface-hub==1.33.0 safetensors==0.8.0 pillow==11.3.0 importlib-metadata==10.2.0 zipp==4.1.2
  requests==2.34.2 urllib3==2.8.0 idna==3.21 certifi==2026.10.19.post1 charset-normalizer==3.5.3
  rich==15.0.0 markdown-it-py==4.3.0 mdurl==0.1.2 pygments==2.21.0
)
if [ "$TORCHAO" != "none" ]; then
  WHEELS+=("torchao==$TORCHAO")
fi

mkdir -p "$WHEELS_DIR"
$PIP download --quiet --no-deps --only-binary=:all: --dest "$WHEELS_DIR" \
  --python-version "$GPU_PYTHON" --implementation cp --abi "cp${GPU_PYTHON/./}" --abi abi3 --abi none \
  --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
  --platform any "${WHEELS[@]}"
printf '%s\n' "${WHEELS[@]}" > "$WHEELS_DIR/requirements.txt"
echo "$(ls "$WHEELS_DIR"/*.whl | wc -l) wheels, $(du -sh "$WHEELS_DIR" | cut -f1), in $WHEELS_DIR for CPython $GPU_PYTHON"
