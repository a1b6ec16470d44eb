#!/usr/bin/env bash
# The GPU check (issue #17): one call on a GPU machine, under 9 minutes, that times a task-7 step
# with gptbuild beside the same model in eager PyTorch, trains the course's GPU tasks, scores them
# and samples.
#
#   bash bench/gpu_check.sh OUT_DIR
#
# It needs no Rust there. Prepare it on the CPU machine with `bash bench/gpu_prepare.sh` (the
# stripped binary, PyYAML and safetensors in target/gpu/, the corpus in data/), then run this with
# `target/gpu` and `data` carried and OUT_DIR the machine's output folder. The binary's libtorch is
# the torch of PYTHON (default python3: torch 2.11.0+cu130 on the GPU image), through
# LD_LIBRARY_PATH, which wins over the binary's RUNPATH. `torch.compile` needs a C compiler for
# triton; without one its stages fail, and say so, and the rest goes on.
#
# The work happens in GPU_CHECK_WORK (default /tmp/gpu-check: runs, checkpoints, logs; its logs/
# and runs/ are emptied first); OUT_DIR receives
# three files only, since what comes back from such a machine is a few files, not a tree:
# summary.md (the tables), logs.tar.gz (every log, each run's metrics.csv, spec.yaml and
# sample.txt; no checkpoints) and stages.txt. They are rewritten after every stage, so a call cut
# short still returns what it had done.
#
# Stages, in order of what the issue asks first (each capped; the whole has a deadline, BUDGET_S,
# default 480 s, and a stage that would pass it is skipped and says so):
#   1. one task-7 training step (architectures/task07.yaml as users run it): gptbuild bf16 and
#      fp32, eager PyTorch bf16 autocast and fp32 (fused AdamW on CUDA, as nanoGPT uses there);
#   2. task07-gpu.yaml alone on the GPU (the headline: whole-split validation <= 1.47 within 90 s).
#      Its iterations are sized from stage 1's bf16 step so that training fits RUN_S seconds
#      (default 80), at most the spec's (2,500); the cosine ends there. Scored on the GPU and, from
#      the same checkpoint, on the CPU;
#   3. three runs at once, sharing the GPU (their wall times say nothing of speed): task09-gpu.yaml
#      (task 9: RoPE), sweeps/gpu/task09-modern.yaml (the moonshot candidate), and task07.yaml in
#      fp32 as the course runs it (constant 3e-4), each for at most CONCURRENT_MINUTES; then
#      scored on the GPU;
#   4. `sample --forever` for SAMPLE_S seconds on the GPU (its memory read every second) and on
#      the CPU: characters per second and peak memory;
#   5. torch.compile'd PyTorch (bf16 autocast, then fp32) last: it compiles for a minute or more.
#
# DRY_RUN=1 runs every stage but the compiled ones on the CPU with a few iterations
# (PYTHON=.venv/bin/python): the check of this script itself, so that the first GPU minute is not
# spent on a typo.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT_DIR=${1:?usage: bench/gpu_check.sh OUT_DIR}
mkdir -p "$OUT_DIR"
OUT_DIR=$(cd "$OUT_DIR" && pwd)
WORK=${GPU_CHECK_WORK:-/tmp/gpu-check}
rm -rf "$WORK/logs" "$WORK/runs"
mkdir -p "$WORK/logs"
LOGS=$WORK/logs
RUNS=$WORK/runs
BIN=$(realpath "${GPTBUILD:-target/gpu/gptbuild}")
PYTHON=${PYTHON:-python3}
DEADLINE=$(( $(date +%s) + ${BUDGET_S:-480} ))
export GPTBUILD_DATA=${GPTBUILD_DATA:-$PWD/data/tinyshakespeare.txt}
[ -d target/gpu/python ] && export PYTHONPATH="$PWD/target/gpu/python${PYTHONPATH:+:$PYTHONPATH}"
TORCH_LIB=$("$PYTHON" -c 'import os, torch; print(os.path.join(os.path.dirname(torch.__file__), "lib"))')
export LD_LIBRARY_PATH="$TORCH_LIB${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"

# The dry run keeps the specs' iterations (their warm-up needs 100) and stops every run by its
# time budget instead, which exercises the out-of-time path and its final evaluation.
MAX_ITERS=$("$BIN" validate architectures/task07-gpu.yaml | sed -n 's/^  max_iters: //p')
: "${MAX_ITERS:?gptbuild validate architectures/task07-gpu.yaml printed no max_iters}"
if [ "${DRY_RUN:-0}" = 1 ]; then
  DEVICE=cpu; STEPS=(--steps 1 --warmup 1); COMPILE=""; SAMPLE_S=3
  RUN_S=20; HEADLINE_MINUTES=0.2; CONCURRENT_MINUTES=0.2; COURSE_EVAL_ITERS=1
else
  DEVICE=cuda; STEPS=(--steps 30 --warmup 5); COMPILE=1; SAMPLE_S=${SAMPLE_S:-12}
  RUN_S=${RUN_S:-80}; HEADLINE_MINUTES=1.5; CONCURRENT_MINUTES=${CONCURRENT_MINUTES:-2.2}
  COURSE_EVAL_ITERS=20
fi
: > "$LOGS/stages.txt"

# Copies what there is to OUT_DIR: the summary, the stage list and the logs (no checkpoints).
publish() {
  summarize > "$LOGS/summary.md" 2>/dev/null
  cp "$LOGS/summary.md" "$LOGS/stages.txt" "$OUT_DIR/"
  tar -C "$WORK" -czf "$OUT_DIR/logs.tar.gz" --exclude='*.safetensors' logs runs 2>/dev/null
}

# stage NAME CAP_SECONDS COMMAND...: runs COMMAND with its output in NAME.log, within CAP and the
# deadline (MIN_S, default 10, the least time worth starting it with); records how it ended.
stage() {
  local name=$1 cap=$2
  shift 2
  local left=$(( DEADLINE - $(date +%s) - 15 ))
  (( left < cap )) && cap=$left
  if (( cap < ${MIN_S:-10} )); then
    echo "$name: skipped, ${left} s left before the deadline" | tee "$LOGS/$name.log" >> "$LOGS/stages.txt"
    return 1
  fi
  local started=$(date +%s%N)
  timeout -s INT -k 10 "$cap" "$@" > "$LOGS/$name.log" 2>&1
  local code=$?
  local took=$(( ($(date +%s%N) - started) / 100000000 ))
  echo "$name: exit $code in $(( took / 10 )).$(( took % 10 )) s" | tee -a "$LOGS/stages.txt"
  return $code
}

# The run directory of spec $1 (its name) under runs/$2 (nothing if it did not start).
run_dir() { ls -d "$RUNS/$2/$1"/*/ 2>/dev/null | sort | tail -n 1; }

# Its best checkpoint (nothing if the run failed).
best_of() {
  local dir
  dir=$(run_dir "$1" "$2")
  [ -n "$dir" ] && [ -f "${dir}best.safetensors" ] && echo "${dir}best.safetensors"
}

# The median milliseconds of a bench log.
median_ms() { sed -n 's/^ms per step  *median \([0-9.]*\),.*/\1/p' "$LOGS/$1.log" 2>/dev/null; }

# The whole-split validation loss an evaluate log printed.
val_loss() { sed -n 's/^val loss \([0-9.]*\) .*/\1/p' "$LOGS/$1.log" 2>/dev/null; }

# One table row for run $1 of spec $2 under runs/$3, trained by stage $4, scored by evaluate log $5.
run_row() {
  local dir last
  dir=$(run_dir "$2" "$3")
  if [ -z "$dir" ] || [ "$(wc -l < "${dir}metrics.csv" 2>/dev/null || echo 0)" -lt 2 ]; then
    echo "| $1 | failed | | | |"
    return
  fi
  last=$(tail -n 1 "${dir}metrics.csv")
  echo "| $1 | ${last%%,*} | $(awk -F, '{ printf "%.1f", $NF }' <<< "$last") | $(sed -n "s/^$4: exit [0-9]* in \([0-9.]*\) s/\1/p" "$LOGS/stages.txt") | $(val_loss "$5") |"
}

summarize() {
  echo "# GPU check ($(sed -n 2p "$LOGS/devices.txt"))"
  echo
  echo "| task 7 step (architectures/task07.yaml) | ms (median of 30) |"
  echo "|---|---|"
  for log in bench-bf16 bench-fp32 pytorch-bf16-autocast pytorch-fp32 pytorch-bf16-autocast-compiled pytorch-fp32-compiled; do
    echo "| $log | $(median_ms "$log") |"
  done
  echo
  echo "| run | iterations | training s (metrics.csv) | process s | whole-split val loss (best) |"
  echo "|---|---|---|---|---|"
  run_row "task07-gpu bf16 (alone)" task07-gpu headline run-task07-gpu evaluate-task07-gpu
  run_row "task09-gpu bf16 (shared)" task09-gpu shared run-task09-gpu evaluate-task09-gpu
  run_row "task09-modern bf16 (shared)" task09-modern shared run-task09-modern evaluate-task09-modern
  run_row "task07 fp32, course (shared)" task07 shared run-task07-fp32 evaluate-task07
  echo
  echo "task07-gpu's checkpoint on the CPU: val loss $(val_loss evaluate-task07-gpu-on-cpu)"
  for device in $SAMPLE_DEVICES; do
    log=$LOGS/sample-$device.log
    echo "sample on $device: $(grep 'characters/s' "$log" 2>/dev/null), peak RSS $(sed -n 's/.*Maximum resident set size (kbytes): //p' "$log" 2>/dev/null) kB"
  done
  [ -s "$LOGS/sample-gpu-memory.csv" ] && echo "GPU memory during the GPU sample (MiB, every second): $(tr '\n' ' ' < "$LOGS/sample-gpu-memory.csv")"
  echo
  cat "$LOGS/stages.txt"
}
SAMPLE_DEVICES=$(printf '%s\n' "$DEVICE" cpu | uniq)

{
  echo "# GPU check, $(date -u +%FT%TZ)"
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>/dev/null || echo "no nvidia-smi"
  "$PYTHON" -c 'import torch; print("torch", torch.__version__, "cuda", torch.version.cuda, "available", torch.cuda.is_available())'
  "$PYTHON" -c 'import yaml, safetensors' 2>&1 || echo "PyYAML or safetensors missing: the PyTorch stages will fail (bench/gpu_prepare.sh)"
  ldd "$BIN" | grep 'not found' || echo "every library of the binary found"
  nproc
  echo
  "$BIN" devices
} > "$LOGS/devices.txt" 2>&1
cat "$LOGS/devices.txt"
publish

# 1. One training step of task 7: gptbuild, then the same model in eager PyTorch.
stage bench-bf16 60 "$BIN" bench architectures/task07.yaml --device "$DEVICE" --precision bf16 "${STEPS[@]}"
stage bench-fp32 60 "$BIN" bench architectures/task07.yaml --device "$DEVICE" --precision fp32 "${STEPS[@]}"
"$BIN" validate architectures/task07.yaml > "$WORK/task07.resolved.yaml"
for mode in bf16-autocast fp32; do
  stage "pytorch-$mode" 60 "$PYTHON" bench/pytorch_step.py "$WORK/task07.resolved.yaml" \
    --device "$DEVICE" --precision "$mode" "${STEPS[@]}"
done
publish

# 2. The headline: task07-gpu.yaml alone, its cosine sized to end within RUN_S seconds.
step_ms=$(median_ms bench-bf16)
iters=$(awk -v ms="${step_ms:-0}" -v s="$RUN_S" -v most="$MAX_ITERS" \
  'BEGIN { n = ms > 0 ? int(s * 1000 / (ms * 1.05) / 100) * 100 : most; print (n > most || n < 100) ? most : n }')
echo "task07-gpu: $iters iterations (bf16 step ${step_ms:-unmeasured} ms, $RUN_S s of training)" | tee -a "$LOGS/stages.txt"
stage run-task07-gpu 150 "$BIN" run architectures/task07-gpu.yaml --device "$DEVICE" \
  --iters "$iters" --max-minutes "$HEADLINE_MINUTES" --runs-dir "$RUNS/headline"
if checkpoint=$(best_of task07-gpu headline); then
  stage evaluate-task07-gpu 40 "$BIN" evaluate --checkpoint "$checkpoint" --device "$DEVICE"
  stage evaluate-task07-gpu-on-cpu 60 "$BIN" evaluate --checkpoint "$checkpoint" --device cpu
fi
publish

# 3. Three runs sharing the GPU: task 9, the moonshot candidate, and task 7 as the course runs it.
shared_cap=$(awk -v m="$CONCURRENT_MINUTES" 'BEGIN { print int(m * 60 + 75) }')
stage run-task09-gpu "$shared_cap" "$BIN" run architectures/task09-gpu.yaml --device "$DEVICE" \
  --iters "$iters" --max-minutes "$CONCURRENT_MINUTES" --runs-dir "$RUNS/shared" &
stage run-task09-modern "$shared_cap" "$BIN" run sweeps/gpu/task09-modern.yaml --device "$DEVICE" \
  --iters "$iters" --max-minutes "$CONCURRENT_MINUTES" --runs-dir "$RUNS/shared" &
stage run-task07-fp32 "$shared_cap" "$BIN" run architectures/task07.yaml --device "$DEVICE" \
  --precision fp32 --eval-iters "$COURSE_EVAL_ITERS" --max-minutes "$CONCURRENT_MINUTES" --runs-dir "$RUNS/shared" &
wait
for name in task09-gpu task09-modern task07; do
  checkpoint=$(best_of "$name" shared) || { echo "evaluate-$name: no checkpoint" >> "$LOGS/stages.txt"; continue; }
  stage "evaluate-$name" 40 "$BIN" evaluate --checkpoint "$checkpoint" --device "$DEVICE"
done
publish

# 4. Sampling forever, stopped by SIGINT: characters per second and the peak memory (on the GPU,
# its memory in use every second, which should stay flat).
MEASURE=(); [ -x /usr/bin/time ] && MEASURE=(/usr/bin/time -v)
if checkpoint=$(best_of task07-gpu headline); then
  for device in $SAMPLE_DEVICES; do
    watcher=""
    if [ "$device" = cuda ] && command -v nvidia-smi >/dev/null; then
      nvidia-smi --query-gpu=memory.used --format=csv,noheader,nounits -l 1 > "$LOGS/sample-gpu-memory.csv" 2>&1 &
      watcher=$!
    fi
    stage "sample-$device" $(( SAMPLE_S + 20 )) "${MEASURE[@]}" timeout --preserve-status -s INT \
      "$SAMPLE_S" "$BIN" sample --checkpoint "$checkpoint" --forever --stats --device "$device"
    [ -n "$watcher" ] && kill "$watcher" 2>/dev/null
  done
fi
publish

# 5. torch.compile, last: it compiles for a minute or more before the first step.
if [ -n "$COMPILE" ]; then
  for mode in bf16-autocast fp32; do
    MIN_S=60 stage "pytorch-$mode-compiled" 150 "$PYTHON" bench/pytorch_step.py \
      "$WORK/task07.resolved.yaml" --device "$DEVICE" --precision "$mode" --compile "${STEPS[@]}"
  done
fi
publish
cat "$OUT_DIR/summary.md"
