#!/usr/bin/env bash
# Does bf16 mixed precision train as well as fp32? Trains the same spec, seed and batches in both
# precisions and prints the final validation losses side by side (issue #5's check: within 0.02).
#
#   bench/bf16_quality.sh                  # task06 for 500 iterations, the CPU shape for 300; seeds 1 2 3
#   SEEDS="1" bench/bf16_quality.sh        # one seed
#
# The CPU shape is sweeps/cpu-shape.yaml: the task 7 architecture at nanoGPT's CPU size. Runs land
# in runs/bf16-quality/; each evaluation averages 200 batches per split, so the comparison is not
# drowned in evaluation noise. Losses only: timings here mean nothing (runs go two at a time).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/../scripts/env.sh"
cd "$ROOT"
cargo build --release --quiet
out=runs/bf16-quality
mkdir -p "$out"
read -r -a seeds <<< "${SEEDS:-1 2 3}"

cases=("architectures/task06.yaml 500" "sweeps/cpu-shape.yaml 300")
jobs=()
for case in "${cases[@]}"; do
  for seed in "${seeds[@]}"; do
    for precision in fp32 bf16; do jobs+=("$case $seed $precision"); done
  done
done
printf '%s\n' "${jobs[@]}" | xargs -P 2 -L 1 bash -c '
  spec=$0; iters=$1; seed=$2; precision=$3; name=$(basename "$spec" .yaml)
  target/release/gptbuild run "$spec" --iters "$iters" --eval-interval "$iters" --eval-iters 200 \
    --seed "$seed" --threads 1 --precision "$precision" --runs-dir "'"$out"'/$precision" \
    > "'"$out"'/$name-$seed-$precision.log" 2>&1
'

printf '| spec | iterations | seed | fp32 final val | bf16 final val | bf16 - fp32 |\n|---|---|---|---|---|---|\n'
for case in "${cases[@]}"; do
  read -r spec iters <<< "$case"
  name=$(basename "$spec" .yaml)
  for seed in "${seeds[@]}"; do
    val() { grep '^Epoch' "$out/$name-$seed-$1.log" | tail -1 | sed 's/.*avg val loss //'; }
    a=$(val fp32); b=$(val bf16)
    printf '| %s | %s | %s | %s | %s | %+.4f |\n' "$name" "$iters" "$seed" "$a" "$b" "$(python3 -c "print($b - $a)")"
  done
done
