#!/usr/bin/env bash
# Data-parallel scaling on this machine: one training step of each spec's model as
#   1 process × 1 thread, 1 process × 2 threads, 2 processes × 1 thread (torchrun, Gloo)
# with the same global batch, ROUNDS rounds alternating the three so that a shared machine's slow
# phases hit all alike; then the median over the rounds of each run's median ms per step, and for
# 2 processes the median all-reduce time per step.
#
#   bench/distributed.sh [ROUNDS] SPEC...        (default: 3 rounds)
#   STEPS=5 WARMUP=2 bench/distributed.sh 3 architectures/task07-cpu.yaml architectures/task07.yaml
#
# Logs: runs/bench/distributed/SPEC-MODE-ROUND.log. Run it on a quiet machine.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/../scripts/env.sh"
cd "$ROOT"
cargo build --release --quiet

rounds=3
if [[ ${1:-} =~ ^[0-9]+$ ]]; then rounds=$1; shift; fi
if (( $# == 0 )); then
  echo "usage: bench/distributed.sh [ROUNDS] SPEC..." >&2
  exit 2
fi
steps=${STEPS:-5}
warmup=${WARMUP:-2}
bin="$ROOT/target/release/gptbuild"
logs="$ROOT/runs/bench/distributed"
mkdir -p "$logs"

# One mode's run of `bench`, its report in LOG.
measure() {
  local spec=$1 mode=$2 log=$3
  local args=(bench "$spec" --steps "$steps" --warmup "$warmup")
  case "$mode" in
    1x1) "$bin" "${args[@]}" --threads 1 > "$log" ;;
    1x2) "$bin" "${args[@]}" --threads 2 > "$log" ;;
    2x1) "$ROOT/.venv/bin/torchrun" --no-python --standalone --nproc-per-node 2 \
           "$bin" "${args[@]}" --threads 1 > "$log" 2> "$log.stderr" ;;
  esac
}

# The median of the numbers on stdin.
median() { sort -g | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }

echo "| spec | 1 process × 1 thread | 1 process × 2 threads | 2 processes × 1 thread | all-reduce per step (2 processes) | 2×1 vs 1×2 |"
echo "|---|---|---|---|---|---|"
for spec in "$@"; do
  name=$(basename "$spec" .yaml)
  for round in $(seq 1 "$rounds"); do
    for mode in 1x1 1x2 2x1; do
      measure "$spec" "$mode" "$logs/$name-$mode-$round.log"
    done
  done
  step() { for r in $(seq 1 "$rounds"); do
      awk '/^ms per step/ {gsub(",", "", $5); print $5}' "$logs/$name-$1-$r.log"; done | median; }
  reduce=$(for r in $(seq 1 "$rounds"); do
      awk '/^all-reduce ms\/step/ {print $4}' "$logs/$name-2x1-$r.log"; done | median)
  one=$(step 1x1); two_threads=$(step 1x2); two_processes=$(step 2x1)
  ratio=$(awk -v a="$two_processes" -v b="$two_threads" 'BEGIN {printf "%.2f", a / b}')
  echo "| $name | $one ms | $two_threads ms | $two_processes ms | $reduce ms | $ratio |"
done
