#!/usr/bin/env bash
# Run on the GPU machine, in the repository root, after bench/gpu/pack.sh filled .gpu/:
# builds llama-cpp-python with CUDA for this GPU's architecture, then runs the runtime's
# tests and the long-context benchmark with full offload, flash attention and q8_0 KV.
# Results go to $OUT (or ./bench/out when OUT is unset).
set -euo pipefail
cd "$(dirname "$0")/../.."
RESULTS=${OUT:-bench/out}
mkdir -p "$RESULTS"
SITE=/tmp/llamacode-site
ARCH=$(nvidia-smi --query-gpu=compute_cap --format=csv,noheader | head -1 | tr -d .)
export PYTHONPATH="$SITE:$PWD"
python3 -m pip install -q --no-index --no-deps --target "$SITE" .gpu/wheels/*.whl
CMAKE_ARGS="-DGGML_CUDA=on -DCMAKE_CUDA_ARCHITECTURES=${ARCH} -DGGML_NATIVE=on" \
  python3 -m pip install -q --no-index --no-deps --no-build-isolation --target "$SITE" \
  .gpu/llama-cpp-python-*-trimmed.tar.gz 2>&1 | tail -5
python3 -c "import llama_cpp; assert llama_cpp.llama_supports_gpu_offload(), 'no CUDA in this build'"
python3 -m llamacode.runtime info | tee "$RESULTS/info.txt"
python3 -m pytest -q tests/runtime 2>&1 | tail -5 | tee "$RESULTS/tests.txt"
python3 bench/long_context.py --lengths 16384 32768 65536 --gpu-layers -1 --flash-attn \
  --cache-type q8_0 --json "$RESULTS/long_context.json" | tee "$RESULTS/long_context.md"
