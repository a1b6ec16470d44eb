#!/usr/bin/env bash
# One training step (forward, backward, AdamW) of each spec's model: `gptbuild bench` in fp32 and
# bf16 against plain eager PyTorch (bench/pytorch_step.py) in fp32 and bf16 autocast.
#
#   bench/compare_step.sh [ROUNDS] SPEC...        (default: 5 rounds)
#
#   STEPS=10 THREADS=2 WARMUP=3 bench/compare_step.sh architectures/task06.yaml task07
#   SPLIT=1 bench/compare_step.sh sweeps/cpu-shape.yaml   # also gptbuild with thread_split: batch
#   MATMUL=1 bench/compare_step.sh sweeps/cpu-shape.yaml  # also gptbuild fp32 on MKL and on oneDNN
#
# For each spec: `gptbuild validate` resolves it (PyTorch reads the resolved spec, so both build
# the same model), then ROUNDS rounds each run the four modes one after the other — gptbuild fp32,
# gptbuild bf16, PyTorch fp32, PyTorch bf16-autocast — with the same STEPS timed steps (default
# 10) after WARMUP untimed ones (default 3) on THREADS threads (default 2), so that slow phases of
# a shared machine hit all four alike. Each run reports its median ms per step; the table gives
# the median of those over the rounds, and its ratio to PyTorch fp32 and to the faster PyTorch
# mode (below 1: faster than PyTorch). With SPLIT=1 each round also runs gptbuild in fp32 and bf16
# with `training.thread_split: batch` (each thread trains its share of the batch alone), the
# spec's resolved copy with that one line changed. With MATMUL=1 each round also runs gptbuild in
# fp32 with each library for its fp32 products forced (GPTBUILD_FP32_MATMUL=mkl, =onednn; the
# plain mode takes the library `gptbuild devices` names: oneDNN on AMD CPUs with AVX-512, MKL
# elsewhere), to measure the choice on a new CPU. Logs: runs/bench/step/SPEC-MODE-ROUND.log. Run
# it on a quiet machine.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/../scripts/env.sh"
cd "$ROOT"
cargo build --release --quiet

rounds=5
if [[ ${1:-} =~ ^[0-9]+$ ]]; then rounds=$1; shift; fi
if (( $# == 0 )); then
  echo "usage: bench/compare_step.sh [ROUNDS] SPEC..." >&2
  exit 2
fi
steps=${STEPS:-10}
threads=${THREADS:-2}
warmup=${WARMUP:-3}
bin=target/release/gptbuild
python=$VENV/bin/python
logs=runs/bench/step
mkdir -p "$logs"
resolved_dir=$(mktemp -d)
trap 'rm -rf "$resolved_dir"' EXIT

modes=(gptbuild-fp32 gptbuild-bf16 pytorch-fp32 pytorch-bf16-autocast)
if [[ ${SPLIT:-0} == 1 ]]; then modes+=(gptbuild-fp32-split gptbuild-bf16-split); fi
if [[ ${MATMUL:-0} == 1 ]]; then
  modes+=(gptbuild-fp32-mkl gptbuild-fp32-onednn)
  # The override falls back to MKL where oneDNN cannot multiply fp32 (no AVX-512): say so rather
  # than report MKL twice under two names.
  devices=$(GPTBUILD_FP32_MATMUL=onednn "$bin" devices)
  if ! grep -q '^CPU fp32 products *oneDNN' <<<"$devices"; then
    echo "error: MATMUL=1: oneDNN does not multiply fp32 on this CPU (gptbuild devices)" >&2
    exit 1
  fi
fi

# The median ms per step of one report (`ms per step         median 39.93, min …`), read on stdin.
median_ms() { sed -n 's/^ms per step  *median \([0-9.]*\),.*/\1/p'; }

median() { printf '%s\n' "$@" | sort -g | awk '{ v[NR] = $1 } END { print (NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2) }'; }

# Runs MODE on the spec (original SPEC for gptbuild, its resolved copy RESOLVED for PyTorch) and
# prints its median ms per step; the full output goes to LOG.
run_mode() {
  local mode=$1 spec=$2 resolved=$3 log=$4 ms
  local common=(--steps "$steps" --warmup "$warmup" --threads "$threads")
  case $mode in
    gptbuild-fp32) "$bin" bench "$spec" "${common[@]}" --precision fp32 ;;
    gptbuild-bf16) "$bin" bench "$spec" "${common[@]}" --precision bf16 ;;
    gptbuild-fp32-split) "$bin" bench "${resolved%.yaml}-split.yaml" "${common[@]}" --precision fp32 ;;
    gptbuild-bf16-split) "$bin" bench "${resolved%.yaml}-split.yaml" "${common[@]}" --precision bf16 ;;
    gptbuild-fp32-mkl) GPTBUILD_FP32_MATMUL=mkl "$bin" bench "$spec" "${common[@]}" --precision fp32 ;;
    gptbuild-fp32-onednn)
      GPTBUILD_FP32_MATMUL=onednn "$bin" bench "$spec" "${common[@]}" --precision fp32 ;;
    pytorch-fp32) "$python" bench/pytorch_step.py "$resolved" "${common[@]}" --precision fp32 ;;
    pytorch-bf16-autocast)
      "$python" bench/pytorch_step.py "$resolved" "${common[@]}" --precision bf16-autocast ;;
  esac >"$log" 2>&1 || { echo "error: $mode failed on $spec, see $log" >&2; exit 1; }
  ms=$(median_ms <"$log")
  [[ -n $ms ]] || { echo "error: no 'ms per step' line in $log" >&2; exit 1; }
  echo "$ms"
}

# The markdown table of one spec from the per-round medians of each mode (variables times_MODE,
# with - for _: "12.3 12.1 …").
table() {
  local name=$1 mode
  local -A ms
  for mode in "${modes[@]}"; do
    local var="times_${mode//-/_}"
    # shellcheck disable=SC2086  # the list of times is split on purpose
    ms[$mode]=$(median ${!var})
  done
  local best=${ms[pytorch-fp32]}
  best=$(awk -v a="$best" -v b="${ms[pytorch-bf16-autocast]}" 'BEGIN { print (b < a ? b : a) }')
  echo "### $name"
  echo
  echo "$steps timed steps after $warmup warm-up, threads: $threads, median of $rounds rounds; ratio < 1: faster than PyTorch."
  echo
  echo "| mode | median ms/step | ratio vs PyTorch fp32 | ratio vs best PyTorch |"
  echo "|---|---|---|---|"
  for mode in "${modes[@]}"; do
    awk -v mode="$mode" -v t="${ms[$mode]}" -v f="${ms[pytorch-fp32]}" -v b="$best" \
      'BEGIN { printf "| %s | %.2f | %.2f | %.2f |\n", mode, t, t / f, t / b }'
  done
  echo
}

for spec in "$@"; do
  name=$(basename "$spec" .yaml)
  resolved=$resolved_dir/$name.yaml
  "$bin" validate "$spec" >"$resolved"
  sed 's/^  thread_split: operations$/  thread_split: batch/' "$resolved" >"${resolved%.yaml}-split.yaml"
  if [[ ${SPLIT:-0} == 1 ]] && ! grep -q '^  thread_split: batch$' "${resolved%.yaml}-split.yaml"; then
    echo "error: $spec: no 'thread_split: operations' line in its resolved copy to change" >&2
    exit 1
  fi
  for mode in "${modes[@]}"; do declare "times_${mode//-/_}="; done
  for round in $(seq 1 "$rounds"); do
    for mode in "${modes[@]}"; do
      ms=$(run_mode "$mode" "$spec" "$resolved" "$logs/$name-$mode-$round.log")
      var="times_${mode//-/_}"
      declare "$var=${!var} $ms"
      echo "  $name round $round $mode: $ms ms" >&2
    done
  done
  table "$name"
done
