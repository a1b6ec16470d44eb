#!/usr/bin/env bash
# Side-by-side wall-time benchmark: `gptbuild run` against the course's plain PyTorch GPT
# (bench/course_pytorch.py), on the same specs, seeds and corpus.
#
# Run it on a QUIET machine: nothing else compiling or training, since both engines are CPU-bound
# and any background load lands in the timings. From the repository root:
#
#   cargo build --release
#   bench/compare_course.sh            # 3 repeats of task01..task06
#   bench/compare_course.sh 1 task01   # one repeat of one task
#
# Each run's stdout/stderr goes to runs/bench/ENGINE-TASK-REPEAT.{log,err}. The table on stdout
# gives each engine's median wall time, their ratio, and the final validation loss of the last
# repeat (the last `Epoch` line), a check that both trained the same model to the same quality.
# GPTBUILD_DATA defaults to ../shared/data/tinyshakespeare.txt relative to the repository root.
set -euo pipefail

repeats=${1:-3}
shift || true
tasks=("$@")
[[ ${#tasks[@]} -gt 0 ]] || tasks=(task01 task02 task03 task04 task05 task06)

root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
export GPTBUILD_DATA=${GPTBUILD_DATA:-$root/../shared/data/tinyshakespeare.txt}
gptbuild=target/release/gptbuild
python=.venv/bin/python
logs=runs/bench

[[ -x $gptbuild ]] || { echo "error: $gptbuild is missing; build it first with: cargo build --release" >&2; exit 1; }
[[ -x $python ]] || { echo "error: $python is missing; create the virtualenv (torch, pyyaml) first" >&2; exit 1; }
[[ -f $GPTBUILD_DATA ]] || { echo "error: corpus not found at GPTBUILD_DATA=$GPTBUILD_DATA" >&2; exit 1; }
mkdir -p "$logs"

# Runs one engine on one task, appending its wall time in seconds to $logs/ENGINE-TASK.times.
timed() {
    local engine=$1 task=$2 rep=$3 spec=architectures/$2.yaml
    local out=$logs/$engine-$task-$rep start end
    start=$(date +%s.%N)
    case $engine in
        gptbuild) "$gptbuild" run "$spec" >"$out.log" 2>"$out.err" ;;
        pytorch) "$python" bench/course_pytorch.py "$spec" --data "$GPTBUILD_DATA" >"$out.log" 2>"$out.err" ;;
    esac || { echo "error: $engine failed on $task, see $out.err" >&2; exit 1; }
    end=$(date +%s.%N)
    awk -v s="$start" -v e="$end" 'BEGIN { printf "%.3f\n", e - s }' >>"$logs/$engine-$task.times"
    echo "  $engine $task repeat $rep: $(tail -1 "$logs/$engine-$task.times") s" >&2
}

median() { sort -g "$1" | awk '{ v[NR] = $1 } END { print (NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2) }'; }
final_val_loss() { grep '^Epoch' "$1" | tail -1 | sed 's/.*avg val loss //'; }

for task in "${tasks[@]}"; do
    rm -f "$logs/gptbuild-$task.times" "$logs/pytorch-$task.times"
done
for rep in $(seq 1 "$repeats"); do
    for task in "${tasks[@]}"; do
        # Alternate which engine goes first, so slow drift in machine load hits both alike.
        if (( rep % 2 )); then order=(gptbuild pytorch); else order=(pytorch gptbuild); fi
        for engine in "${order[@]}"; do timed "$engine" "$task" "$rep"; done
    done
done

echo "| task | gptbuild median s | PyTorch median s | ratio (gptbuild/PyTorch) | gptbuild final val loss | PyTorch final val loss |"
echo "|---|---|---|---|---|---|"
for task in "${tasks[@]}"; do
    g=$(median "$logs/gptbuild-$task.times")
    p=$(median "$logs/pytorch-$task.times")
    printf '| %s | %.2f | %.2f | %.2f | %s | %s |\n' "$task" "$g" "$p" "$(awk -v g="$g" -v p="$p" 'BEGIN { print g / p }')" \
        "$(final_val_loss "$logs/gptbuild-$task-$repeats.log")" "$(final_val_loss "$logs/pytorch-$task-$repeats.log")"
done
