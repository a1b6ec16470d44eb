#!/usr/bin/env bash
# Prepares the GPU check (bench/gpu_check.sh) on the CPU machine: the GPU machine has Python's
# torch but no Rust, no corpus and no PyYAML / safetensors, so everything it needs goes into
# target/gpu/ (ignored by git; carry it, with data/):
#
#   target/gpu/gptbuild   the release binary, stripped (its libtorch is found at run time)
#   target/gpu/python/    PyYAML and safetensors as this set-up installed them from PyPI, for
#                         bench/pytorch_step.py (PyYAML falls back to pure Python on another
#                         interpreter; safetensors is an abi3 wheel)
#   data/tinyshakespeare.txt
#
#   bash bench/gpu_prepare.sh
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/../scripts/env.sh"
cd "$ROOT"
cargo build --release --quiet
mkdir -p target/gpu/python data
strip -o target/gpu/gptbuild target/release/gptbuild
site=$("$VENV/bin/python" -c 'import os, yaml; print(os.path.dirname(os.path.dirname(yaml.__file__)))')
rm -rf target/gpu/python/yaml target/gpu/python/safetensors
cp -r "$site/yaml" "$site/safetensors" target/gpu/python/
corpus=${GPTBUILD_DATA:-../shared/data/tinyshakespeare.txt}
[ -f data/tinyshakespeare.txt ] || cp "$corpus" data/tinyshakespeare.txt
du -sh target/gpu data
