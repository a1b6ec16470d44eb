#!/usr/bin/env bash
# Reproduces the course's loss curves for tasks 1-6 over several seeds and prints a markdown table
# of val loss at iteration 4500 (the course's last printed evaluation) and at the final one (4999),
# mean ± std over seeds, beside the course's reference numbers.
#
#   bench/course_losses.sh [SEEDS...]        (default seeds: 1 2 3; two runs at a time, one thread each)
#
# Runs land in runs/course-seeds/<task>/<run-id>/; about 5 minutes per seed on 2 cores.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/../scripts/env.sh"
cd "$ROOT"
cargo build --release --quiet
SEEDS=(1 2 3)
[ $# -eq 0 ] || SEEDS=("$@")
OUT=runs/course-seeds
mkdir -p "$OUT"

jobs_list=()
for task in task01 task02 task03 task04 task05 task06; do
  for seed in "${SEEDS[@]}"; do jobs_list+=("$task $seed"); done
done
printf '%s\n' "${jobs_list[@]}" | xargs -P 2 -L 1 bash -c '
  task=$0; seed=$1
  target/release/gptbuild run "architectures/$task.yaml" --seed "$seed" --threads 1 \
    --runs-dir "'"$OUT"'/seed$seed" > "'"$OUT"'/$task-seed$seed.log" 2>&1
'

python3 bench/course_table.py "$OUT" "${SEEDS[@]}"
