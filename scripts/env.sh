# Sourced by the other scripts: makes sure the Python environment holding libtorch exists, then
# exports what the tch build needs. Idempotent; the first run downloads the torch wheel (~4.7 GB
# installed, with its CUDA libraries).
set -euo pipefail
export ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$ROOT/.venv"
TORCH_VERSION=2.11.0

# The Python packages of requirements.txt, installed again whenever the file changes (its hash is
# kept in the venv). llama-cpp-python builds llama.cpp from source, about 4 minutes on 2 cores,
# once: pip keeps the built wheel in its cache. CMAKE_ARGS build it for any x86-64 CPU with AVX2
# (every CPU these machines have), not for this one, so that a cached wheel runs on the next CPU
# too, and leave out what the checks do not use.
REQUIREMENTS_HASH="$(sha256sum "$ROOT/requirements.txt" | cut -d' ' -f1)"
if [ "$(cat "$VENV/.requirements.sha256" 2>/dev/null)" != "$REQUIREMENTS_HASH" ] \
  || ! "$VENV/bin/python" - "$TORCH_VERSION" >/dev/null 2>&1 <<'PY'
import sys, importlib.metadata, torch, safetensors, yaml, numpy
importlib.metadata.version("nvidia-cuda-crt")  # headers for the NCCL build (requirements.txt)
importlib.metadata.version("nvidia-cuda-cccl")
sys.exit(0 if torch.__version__.split("+")[0] == sys.argv[1] else 1)
PY
then
  echo "setting up $VENV from requirements.txt (torch==$TORCH_VERSION and llama.cpp's build the first time: minutes)..." >&2
  [ -x "$VENV/bin/python" ] || python3 -m venv "$VENV"
  CMAKE_ARGS="-DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON \
-DGGML_OPENMP=OFF -DLLAVA_BUILD=OFF -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF \
-DLLAMA_BUILD_TOOLS=OFF -DLLAMA_BUILD_SERVER=OFF -DLLAMA_CURL=OFF" \
  CMAKE_BUILD_PARALLEL_LEVEL="$(nproc)" \
    "$VENV/bin/pip" install --quiet --disable-pip-version-check -r "$ROOT/requirements.txt"
  echo "$REQUIREMENTS_HASH" > "$VENV/.requirements.sha256"
fi

# Gloo's headers, for the C++ seam to c10d (src/distributed/c10d.cpp): the torch wheel has Gloo's
# code but not its headers. Debian's libgloo-dev, installed once (as root, as on CI machines).
if [ ! -f /usr/include/gloo/algorithm.h ] && command -v apt-get >/dev/null; then
  echo "installing Debian's libgloo-dev (one time)..." >&2
  apt-get install -y -qq libgloo-dev >/dev/null 2>&1 \
    || { apt-get update -qq >/dev/null 2>&1 && apt-get install -y -qq libgloo-dev >/dev/null 2>&1; } \
    || echo "warning: could not install libgloo-dev; the build will say what is missing" >&2
fi

# torch-sys finds libtorch at .venv/libtorch, the torch wheel's package directory: the committed
# .cargo/config.toml names that path, so plain `cargo build` / `cargo test` work in any shell after
# this setup. build.rs bakes its lib directory into the binaries' rpath: nothing is needed at run
# time either.
TORCH_DIR="$("$VENV/bin/python" -c 'import os, torch; print(os.path.dirname(torch.__file__))')"
if [ "$(readlink "$VENV/libtorch" 2>/dev/null)" != "$TORCH_DIR" ]; then
  ln -sfn "$TORCH_DIR" "$VENV/libtorch"
fi
export PATH="$VENV/bin:$PATH"

# `cargo insta test` / `cargo insta review` for the snapshot tests: cargo-insta of the same version
# as the insta crate in Cargo.lock (one time, into ~/.cargo/bin).
INSTA_VERSION=1.49.0
if ! cargo insta --version 2>/dev/null | grep -q " $INSTA_VERSION\b"; then
  echo "installing cargo-insta $INSTA_VERSION (one time)..." >&2
  cargo install --quiet --locked cargo-insta --version "$INSTA_VERSION"
fi

# The course corpus: use the shared copy when there is one (else the program downloads it).
if [ -z "${GPTBUILD_DATA:-}" ] && [ -f "$ROOT/../shared/data/tinyshakespeare.txt" ]; then
  export GPTBUILD_DATA="$ROOT/../shared/data/tinyshakespeare.txt"
fi
