#!/usr/bin/env bash
# Build llama.cpp's own llama-bench and llama-server from the very sources our
# llama-cpp-python pin compiles (its sdist vendors llama.cpp), with the flags that
# llama-cpp-python's build uses: Release, shared libraries, GGML_NATIVE on, no curl.
# Everything lands in bench/build/ (gitignored). Re-running reuses the build.
#
#   bench/build_peer.sh            # -> bench/build/peer/bin/{llama-bench,llama-server}
#   JOBS=8 bench/build_peer.sh     # more compile jobs (default 2)
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(dirname "$HERE")"
PY="${PY:-$ROOT/.venv/bin/python}"
VERSION="${LLAMA_CPP_PYTHON_VERSION:-$("$PY" -c 'import llama_cpp; print(llama_cpp.__version__)')}"
BUILD="$HERE/build"
SDIST_DIR="$BUILD/sdist"
SRC="$BUILD/llama_cpp_python-$VERSION"
OUT="$BUILD/peer"
JOBS="${JOBS:-2}"

mkdir -p "$SDIST_DIR"
TARBALL="$SDIST_DIR/llama_cpp_python-$VERSION.tar.gz"
if [[ ! -f "$TARBALL" ]]; then
    echo "downloading the llama-cpp-python $VERSION sdist" >&2
    "$PY" -m pip download --no-deps --no-binary llama-cpp-python "llama-cpp-python==$VERSION" -d "$SDIST_DIR"
fi
if [[ ! -d "$SRC/vendor/llama.cpp" ]]; then
    tar -xzf "$TARBALL" -C "$BUILD"
fi

# Offline: no web UI download, no curl/openssl, no tests or examples.
cmake -S "$SRC/vendor/llama.cpp" -B "$OUT" -G Ninja \
    -DCMAKE_BUILD_TYPE=Release \
    -DBUILD_SHARED_LIBS=ON \
    -DGGML_NATIVE=ON \
    -DLLAMA_CURL=OFF \
    -DLLAMA_OPENSSL=OFF \
    -DLLAMA_BUILD_UI=OFF \
    -DLLAMA_USE_PREBUILT_UI=OFF \
    -DLLAMA_BUILD_TESTS=OFF \
    -DLLAMA_BUILD_EXAMPLES=OFF \
    -DLLAMA_BUILD_TOOLS=ON \
    -DLLAMA_BUILD_SERVER=ON >"$OUT.configure.log"
cmake --build "$OUT" --target llama-bench llama-server -j"$JOBS"

echo "llama.cpp from llama-cpp-python $VERSION:" >&2
ls -1 "$OUT"/bin/llama-bench "$OUT"/bin/llama-server
