#!/usr/bin/env bash
# Generation speed of one checkpoint in gptbuild and in llama.cpp (llama-cpp-python, the build
# scripts/env.sh makes: AVX2, no OpenMP), on this CPU, 2 threads each: the task07-cpu-bf16 model
# (4 layers, width 192, context 256, Llama-shaped once its head has no bias), trained one
# iteration (speed does not depend on the weights), exported to GGUF as f32, bf16 and q8_0.
# Each engine generates TOKENS tokens greedily after a newline, inside the 256-token context;
# each measurement is the median of 3 runs.
#
#   bash bench/gguf_speed.sh [WORK_DIR] [TOKENS]     (defaults: runs/gguf-speed, 200)
set -euo pipefail
cd "$(dirname "$0")/.."
work=${1:-runs/gguf-speed}
tokens=${2:-200}
data=${GPTBUILD_DATA:-../shared/data/tinyshakespeare.txt}
python=${GPTBUILD_PYTHON:-.venv/bin/python}
gptbuild=${GPTBUILD:-target/release/gptbuild}
rm -rf "$work" && mkdir -p "$work"
"$python" - "$work" <<'PY'
import sys, yaml
spec = yaml.safe_load(open("architectures/task07-cpu-bf16.yaml"))
spec["name"] = "gguf-speed"
spec["model"]["head_bias"] = False
spec["training"].update(max_iters=1, eval_interval=1, eval_iters=1, val_eval="batches")
spec["training"].pop("max_minutes", None)
spec["training"].pop("schedule", None)
yaml.safe_dump(spec, open(f"{sys.argv[1]}/spec.yaml", "w"))
PY
"$gptbuild" run "$work/spec.yaml" --data "$data" --runs-dir "$work/runs" > "$work/run.log" 2>&1 \
  || { cat "$work/run.log" >&2; exit 1; }
checkpoint=$(ls -d "$work"/runs/gguf-speed/*/)model.safetensors
for type in f32 bf16 q8_0; do
  "$gptbuild" export "$checkpoint" --format gguf --type "$type" --out "$work/model-$type.gguf" > /dev/null
done
echo "CPU: $(lscpu | sed -n 's/^Model name: *//p')"
echo "| engine | weights | tokens/s (median of 3) |"
echo "|---|---|---|"
rates=()
for _ in 1 2 3; do
  line=$("$gptbuild" sample --checkpoint "$checkpoint" --tokens "$tokens" --top-k 1 --stats \
    2>&1 >/dev/null | tail -1)
  rates+=("$(echo "$line" | sed -n 's/.*s: \([0-9.]*\) characters\/s.*/\1/p')")
done
echo "| gptbuild sample (KV cache) | fp32, matrix products in bf16 (the spec's precision) | $(printf '%s\n' "${rates[@]}" | sort -g | sed -n 2p) |"
for type in f32 bf16 q8_0; do
  "$python" - "$work/model-$type.gguf" "$tokens" "$type" <<'PY'
import statistics, sys, time
from llama_cpp import Llama
path, tokens, kind = sys.argv[1], int(sys.argv[2]), sys.argv[3]
llm = Llama(model_path=path, n_ctx=256, n_batch=256, n_threads=2, n_threads_batch=2, verbose=False)
prompt = llm.tokenize(b"\n", add_bos=False, special=False)
rates = []
for _ in range(3):
    llm.reset()
    start, n = time.perf_counter(), 0
    for _token in llm.generate(prompt, top_k=1, temp=0.0, reset=True):
        n += 1
        if n == tokens:
            break
    rates.append(n / (time.perf_counter() - start))
print(f"| llama.cpp (llama-cpp-python 0.3.36) | {kind} | {statistics.median(rates):.1f} |")
PY
done
