#!/usr/bin/env bash
# Characters against byte-level BPE at equal wall time (issue #16): the task07-cpu architecture
# (architectures/task07-cpu.yaml, unchanged but for data.tokenizer) trained for MINUTES of wall
# time with each tokenizer and each seed, then scored by `gptbuild evaluate` on the whole
# validation split in bits per character — the one number comparable across tokenizers.
#
#     bash bench/tokenizers.sh [MINUTES] [SEEDS...]        # default: 15 minutes, seeds 1337 2
#
# TOKENIZERS="char bpe512" picks some of char, bpe256, bpe512, bpe1024; PILOT_MINUTES (default
# 1) sets the pilot's length (a dry run: PILOT_MINUTES=0.1 bash bench/tokenizers.sh 0.3).
#
# The two seeds of a tokenizer train at the same time, one libtorch thread each (a 2-core machine
# runs the whole comparison in half the time, and every run shares the machine the same way).
# A bigger vocabulary makes a step slower and a whole-split evaluation cheaper (fewer tokens), so
# for each tokenizer a one-minute pilot (two at once, as in the real runs) measures both: the
# time to its first row of metrics.csv (start-up and the first evaluation), and the seconds per
# iteration after it. The run's max_iters, which is where the cosine schedule ends, is then what
# fits in 98% of MINUTES with an evaluation every eval_interval; max_minutes stops it at MINUTES
# in any case. The pilot is one noisy minute on a shared machine (it has been 15% off), so
# results.csv keeps each run's real minutes, and MAX_ITERS_<tokenizer>=N (MAX_ITERS_bpe256=9750)
# skips the pilot for a rerun sized from an earlier run's real pace.
#
# Writes runs/tokenizers/{specs,pilot,MINUTESmin}/ and prints (and appends to
# runs/tokenizers/MINUTESmin/results.csv) one row per run. GPTBUILD names the binary (default
# target/release/gptbuild); set the corpus with GPTBUILD_DATA as for `gptbuild run`.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${GPTBUILD:-target/release/gptbuild}
MINUTES=${1:-15}
shift || true
if [ $# -gt 0 ]; then SEEDS=("$@"); else SEEDS=(1337 2); fi
OUT=runs/tokenizers
EVAL_INTERVAL=$(awk '$1 == "eval_interval:" { print $2 }' architectures/task07-cpu.yaml)
mkdir -p "$OUT/specs" "$OUT/pilot" "$OUT/${MINUTES}min"

declare -A TOKENIZER=(
  [char]='{kind: char}'
  [bpe256]='{kind: bpe, vocab_size: 256}'
  [bpe512]='{kind: bpe, vocab_size: 512}'
  [bpe1024]='{kind: bpe, vocab_size: 1024}'
)
read -r -a NAMES <<< "${TOKENIZERS:-char bpe256 bpe512 bpe1024}"
PILOT_MINUTES=${PILOT_MINUTES:-1}

for name in "${NAMES[@]}"; do
  { cat architectures/task07-cpu.yaml; printf 'data:\n  tokenizer: %s\n' "${TOKENIZER[$name]}"; } \
    > "$OUT/specs/$name.yaml"
done

# Runs `gptbuild run` of spec $1 with each seed at once (one thread each), extra flags after it.
both_seeds() {
  local spec=$1 runs=$2
  shift 2
  local pids=()
  for seed in "${SEEDS[@]}"; do
    "$BIN" run "$spec" --seed "$seed" --threads 1 --runs-dir "$runs/seed$seed" "$@" \
      > "$runs/$(basename "$spec" .yaml).seed$seed.log" 2>&1 &
    pids+=($!)
  done
  for pid in "${pids[@]}"; do wait "$pid"; done
}

results=$OUT/${MINUTES}min/results.csv
# One row per run, appended (a rerun adds its rows below the earlier ones).
[ -f "$results" ] || echo "tokenizer,seed,max_iters,iterations,minutes,val_loss_per_token,val_tokens,val_bits_per_character" > "$results"
for name in "${NAMES[@]}"; do
  override=MAX_ITERS_$name
  if [ -n "${!override:-}" ]; then
    iters=${!override}
  else
    pilot=$OUT/pilot/$name
    rm -rf "$pilot"; mkdir -p "$pilot"
    both_seeds "$OUT/specs/$name.yaml" "$pilot" --iters 1000000 --eval-interval 1000000 --max-minutes "$PILOT_MINUTES"
    # metrics.csv's elapsed_seconds: the first row's is start-up and the first evaluation, the
    # last row's the whole pilot but its final evaluation.
    metrics="$(ls -d "$pilot/seed${SEEDS[0]}"/*/*/ | sort | tail -n 1)metrics.csv"
    iters=$(awk -F, -v m="$MINUTES" -v every="$EVAL_INTERVAL" '
      NR == 2 { first = $NF }
      END {
        per_iteration = ($NF - first) / $1
        printf "%d", (60 * m * 0.98 - first) / (per_iteration + first / every)
      }' "$metrics")
    echo "$name: pilot $(tail -n 1 "$metrics" | cut -d, -f1) iterations, first row at $(sed -n 2p "$metrics" | cut -d, -f5) s; max_iters $iters" >&2
  fi

  runs=$OUT/${MINUTES}min/$name
  mkdir -p "$runs"
  both_seeds "$OUT/specs/$name.yaml" "$runs" --iters "$iters" --max-minutes "$MINUTES"
  for seed in "${SEEDS[@]}"; do
    dir=$(ls -d "$runs/seed$seed"/*/*/ | sort | tail -n 1)
    score=$("$BIN" evaluate --checkpoint "$dir/best.safetensors" --threads 2 | grep '^val loss')
    # val loss L over N tokens, bits per character B (…)
    read -r loss tokens bits < <(sed -E 's/^val loss ([0-9.]+) over ([0-9]+) tokens, bits per character ([0-9.]+).*/\1 \2 \3/' <<< "$score")
    last=$(tail -n 1 "$dir/metrics.csv")
    minutes=$(awk -F, '{ printf "%.1f", $NF / 60 }' <<< "$last")
    echo "$name,$seed,$iters,${last%%,*},$minutes,$loss,$tokens,$bits" | tee -a "$results"
  done
done
