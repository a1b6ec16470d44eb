#!/usr/bin/env bash
# The fine-tuning path measured end to end: transformers builds a small random GPT2LMHeadModel
# (4 layers, width 128, context 128) with Tiny Shakespeare's 65 characters as its tokenizer,
# `gptbuild import` reads it, and a spec with `training.init_from` fine-tunes it on the corpus.
# A random model is not a pretrained one: this measures the path (that training starts from the
# imported weights and learns), not what pretraining buys.
#
#   bash bench/finetune_imported.sh [WORK_DIR]     (default: runs/finetune-imported)
set -euo pipefail
cd "$(dirname "$0")/.."
work=${1:-runs/finetune-imported}
data=${GPTBUILD_DATA:-../shared/data/tinyshakespeare.txt}
python=${GPTBUILD_PYTHON:-.venv/bin/python}
rm -rf "$work" && mkdir -p "$work"
"$python" - "$data" "$work" <<'PY'
import json, sys
chars = "".join(sorted(set(open(sys.argv[1], encoding="utf-8").read())))
config = {"vocab_size": len(chars), "n_positions": 128, "n_embd": 128, "n_layer": 4, "n_head": 4,
          "activation_function": "gelu_new"}
entry = {"name": "gpt2-small-random", "family": "gpt2", "config": config, "dtype": "float32",
         "seed": 0, "chars": chars}
open(f"{sys.argv[2]}/models.json", "w").write(json.dumps(entry) + "\n")
PY
HF_HUB_OFFLINE=1 "$python" tests/python/hugging_face.py make "$work"
gptbuild=${GPTBUILD:-target/release/gptbuild}
"$gptbuild" import "$work/gpt2-small-random" --out "$work/imported"
# The imported model section, with the fine-tuning run's training section.
{
  echo "name: finetune-imported"
  echo "data: {tokenizer: {kind: file, path: $work/imported/tokenizer.json}}"
  sed -n '/^model:/,/^training:/p' "$work/imported/spec.yaml" | sed '$d'
  echo "training: {init_from: $work/imported/model.safetensors, batch_size: 32, max_iters: 1000,"
  echo "           eval_interval: 100, eval_iters: 50, learning_rate: 1.0e-3, threads: 2, seed: 1337}"
} > "$work/finetune.yaml"
"$gptbuild" run "$work/finetune.yaml" --data "$data" --runs-dir "$work/runs"
