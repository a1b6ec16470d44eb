#!/usr/bin/env bash
# The GPU check (issue #17): one call on a GPU machine, well under 9 minutes, that times a task-7
# step with gptbuild beside the same model in eager PyTorch, trains and scores the course's GPU
# tasks, and samples.
#
#   bash bench/gpu_check.sh RESULTS_DIR
#
# It needs no Rust there. Prepare it on the CPU machine with `bash bench/gpu_prepare.sh` (the
# stripped binary, PyYAML and safetensors in target/gpu/, the corpus in data/), then run this with
# `target/gpu` and `data` carried and RESULTS_DIR under the machine's output folder. The binary's
# libtorch is the torch of PYTHON (default python3: torch 2.11.0+cu130 on the GPU image), through
# LD_LIBRARY_PATH, which wins over the binary's RUNPATH. `torch.compile` needs a C compiler for
# triton; without one its stages fail, and say so, and the rest goes on.
#
# DRY_RUN=1 runs every stage but the compiled ones on the CPU with a few iterations
# (PYTHON=.venv/bin/python): the check of this script itself, so that the first GPU minute is not
# spent on a typo.
#
# Order: the step timings first (short, and the comparison the issue asks for), then the three
# training runs (90 s of training each, a final evaluation included), the whole-split scores, the
# samples, and last the torch.compile timings, which take a minute or more to compile. Every
# stage has a cap and the whole a deadline (BUDGET_S, default 500 s): a stage that would pass it
# is skipped and says so. Every log lands in RESULTS_DIR; summary.md is the table.
set -uo pipefail
cd "$(dirname "$0")/.."
RESULTS=${1:?usage: bench/gpu_check.sh RESULTS_DIR}
mkdir -p "$RESULTS"
RESULTS=$(cd "$RESULTS" && pwd)
BIN=$(realpath "${GPTBUILD:-target/gpu/gptbuild}")
PYTHON=${PYTHON:-python3}
DEADLINE=$(( $(date +%s) + ${BUDGET_S:-500} ))
export GPTBUILD_DATA=${GPTBUILD_DATA:-$PWD/data/tinyshakespeare.txt}
[ -d target/gpu/python ] && export PYTHONPATH="$PWD/target/gpu/python${PYTHONPATH:+:$PYTHONPATH}"
TORCH_LIB=$("$PYTHON" -c 'import os, torch; print(os.path.join(os.path.dirname(torch.__file__), "lib"))')
export LD_LIBRARY_PATH="$TORCH_LIB${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"

if [ "${DRY_RUN:-0}" = 1 ]; then
  DEVICE=cpu; TRAIN=(--iters 3 --eval-interval 2 --eval-iters 1); RUN_MINUTES=1
  STEPS=(--steps 1 --warmup 1); COMPILE=""; SAMPLE_S=3
else
  DEVICE=cuda; TRAIN=(--eval-iters 200); RUN_MINUTES=1.5
  STEPS=(--steps 30 --warmup 5); COMPILE=1; SAMPLE_S=15
fi
RUNS=$RESULTS/runs
RUN_LIST=("task07 fp32" "task07 bf16" "task09-rope bf16")
: > "$RESULTS/stages.txt"

# stage NAME CAP_SECONDS COMMAND...: runs COMMAND with its output in NAME.log, within CAP and the
# deadline (MIN_S, default 10, the least time worth starting it with); records how it ended.
stage() {
  local name=$1 cap=$2
  shift 2
  local left=$(( DEADLINE - $(date +%s) - 15 ))
  (( left < cap )) && cap=$left
  if (( cap < ${MIN_S:-10} )); then
    echo "$name: skipped, ${left} s left before the deadline" | tee "$RESULTS/$name.log" >> "$RESULTS/stages.txt"
    return 1
  fi
  local started=$(date +%s%N)
  timeout -s INT -k 10 "$cap" "$@" > "$RESULTS/$name.log" 2>&1
  local code=$?
  local took=$(( ($(date +%s%N) - started) / 100000000 ))
  echo "$name: exit $code in $(( took / 10 )).$(( took % 10 )) s" | tee -a "$RESULTS/stages.txt"
  return $code
}

# The best checkpoint of the latest run of task $1 in precision $2 (nothing if the run failed).
best_of() {
  local dir
  dir=$(ls -d "$RUNS/$2/$1"/*/ 2>/dev/null | sort | tail -n 1)
  [ -n "$dir" ] && [ -f "${dir}best.safetensors" ] && echo "${dir}best.safetensors"
}

{
  echo "# GPU check, $(date -u +%FT%TZ)"
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>/dev/null || echo "no nvidia-smi"
  "$PYTHON" -c 'import torch; print("torch", torch.__version__, "cuda", torch.version.cuda, "available", torch.cuda.is_available())'
  "$PYTHON" -c 'import yaml, safetensors' 2>&1 || echo "PyYAML or safetensors missing: the PyTorch stages will fail (bench/gpu_prepare.sh)"
  ldd "$BIN" | grep 'not found' || echo "every library of the binary found"
  echo
  "$BIN" devices
} > "$RESULTS/devices.txt" 2>&1
cat "$RESULTS/devices.txt"

# One training step of task 7: gptbuild, then the same model in eager PyTorch.
stage bench-fp32 60 "$BIN" bench architectures/task07.yaml --device "$DEVICE" --precision fp32 "${STEPS[@]}"
stage bench-bf16 60 "$BIN" bench architectures/task07.yaml --device "$DEVICE" --precision bf16 "${STEPS[@]}"
"$BIN" validate architectures/task07.yaml > "$RESULTS/task07.resolved.yaml"
for mode in fp32 bf16-autocast; do
  stage "pytorch-$mode" 60 "$PYTHON" bench/pytorch_step.py "$RESULTS/task07.resolved.yaml" \
    --device "$DEVICE" --precision "$mode" "${STEPS[@]}"
done

# Training: the course's GPU tasks, each capped in wall time (a final evaluation ends each).
for run in "${RUN_LIST[@]}"; do
  set -- $run
  stage "run-$1-$2" 240 "$BIN" run "architectures/$1.yaml" --device "$DEVICE" --precision "$2" \
    --runs-dir "$RUNS/$2" --max-minutes "$RUN_MINUTES" "${TRAIN[@]}"
done

# Scoring on the whole validation split, on the GPU, and one on the CPU (a GPU-trained
# checkpoint loads anywhere).
for run in "${RUN_LIST[@]}"; do
  set -- $run
  checkpoint=$(best_of "$1" "$2") || { echo "evaluate-$1-$2: no checkpoint" >> "$RESULTS/stages.txt"; continue; }
  stage "evaluate-$1-$2" 60 "$BIN" evaluate --checkpoint "$checkpoint" --device "$DEVICE"
done
if checkpoint=$(best_of task07 fp32); then
  stage evaluate-task07-fp32-on-cpu 90 "$BIN" evaluate --checkpoint "$checkpoint" --device cpu
fi

# Sampling forever, stopped by SIGINT: characters per second and the peak memory.
MEASURE=(); [ -x /usr/bin/time ] && MEASURE=(/usr/bin/time -v)
SAMPLE_DEVICES=$(printf '%s\n' "$DEVICE" cpu | uniq)
if checkpoint=$(best_of task07 bf16); then
  for device in $SAMPLE_DEVICES; do
    stage "sample-$device" $(( SAMPLE_S + 20 )) "${MEASURE[@]}" timeout --preserve-status -s INT \
      "$SAMPLE_S" "$BIN" sample --checkpoint "$checkpoint" --forever --stats --device "$device"
  done
fi

# torch.compile, last: it compiles for a minute or more before the first step.
if [ -n "$COMPILE" ]; then
  for mode in bf16-autocast fp32; do
    MIN_S=60 stage "pytorch-$mode-compiled" 150 "$PYTHON" bench/pytorch_step.py \
      "$RESULTS/task07.resolved.yaml" --device "$DEVICE" --precision "$mode" --compile "${STEPS[@]}"
  done
fi

# The summary: one table of what the logs say.
median_ms() { sed -n 's/^ms per step  *median \([0-9.]*\),.*/\1/p' "$RESULTS/$1.log" 2>/dev/null; }
{
  echo "# GPU check ($(sed -n 2p "$RESULTS/devices.txt"))"
  echo
  echo "| run | iterations | minutes (training + evaluations) | whole-split val loss (best checkpoint) |"
  echo "|---|---|---|---|"
  for run in "${RUN_LIST[@]}"; do
    set -- $run
    dir=$(ls -d "$RUNS/$2/$1"/*/ 2>/dev/null | sort | tail -n 1)
    if [ -z "$dir" ] || [ "$(wc -l < "${dir}metrics.csv" 2>/dev/null || echo 0)" -lt 2 ]; then
      echo "| $1 $2 | failed | | |"
      continue
    fi
    last=$(tail -n 1 "${dir}metrics.csv")
    val=$(sed -n 's/^val loss \([0-9.]*\) .*/\1/p' "$RESULTS/evaluate-$1-$2.log" 2>/dev/null)
    echo "| $1 $2 | ${last%%,*} | $(awk -F, '{ printf "%.2f", $NF / 60 }' <<< "$last") | ${val:-not scored} |"
  done
  echo
  echo "| task07 step | ms (median) |"
  echo "|---|---|"
  for log in bench-fp32 bench-bf16 pytorch-fp32 pytorch-bf16-autocast pytorch-fp32-compiled pytorch-bf16-autocast-compiled; do
    echo "| $log | $(median_ms "$log") |"
  done
  echo
  for device in $SAMPLE_DEVICES; do
    log=$RESULTS/sample-$device.log
    echo "sample on $device: $(grep 'characters/s' "$log" 2>/dev/null), peak RSS $(sed -n 's/.*Maximum resident set size (kbytes): //p' "$log" 2>/dev/null) kB"
  done
  echo
  cat "$RESULTS/stages.txt"
} > "$RESULTS/summary.md"
cat "$RESULTS/summary.md"
