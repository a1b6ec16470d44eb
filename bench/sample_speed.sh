#!/usr/bin/env bash
# Generation speed with the KV cache against a full recompute of the window for every character,
# measured in the same run, and the memory of an endless (--forever) sample.
#
#   bench/sample_speed.sh [REPEATS] [SECONDS]     (defaults: 3 repeats, 60 s of --forever)
#
# For the task 6 shape (block 8) and the task 7 shape (block 256) it makes an untrained checkpoint
# (speed does not depend on the weights), then times `gptbuild sample --stats` both ways, starting
# from a prompt that fills the whole window so that every measured character is generated with a
# full context. Prints characters/s (median of REPEATS) and the ratio, then the resident memory of
# `gptbuild sample --forever` (task 7 shape) after 5 s and after SECONDS s. Run it on a quiet machine.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/../scripts/env.sh"
cd "$ROOT"
cargo build --release --quiet
repeats=${1:-3}
seconds=${2:-60}
bin=target/release/gptbuild
out=runs/sample-bench
mkdir -p "$out"

# An untrained checkpoint of TASK: one training step, one evaluation batch, no sample to speak of.
checkpoint() {
  local task=$1
  local found
  found=$(ls -d "$out/runs/$task"/*/model.safetensors 2>/dev/null | tail -1 || true)
  if [ -z "$found" ]; then
    "$bin" run "architectures/$task.yaml" --iters 1 --eval-iters 1 --device cpu \
      --runs-dir "$out/runs" >/dev/null 2>&1
    found=$(ls -d "$out/runs/$task"/*/model.safetensors | tail -1)
  fi
  echo "$found"
}

# Characters per second of one sample (the --stats line on stderr).
rate() {
  "$bin" sample "$@" --stats 2>&1 >/dev/null | sed -n 's/.*: \([0-9.]*\) characters\/s.*/\1/p'
}

median() { printf '%s\n' "$@" | sort -g | awk '{ v[NR] = $1 } END { print (NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2) }'; }

echo "| shape | block | KV cache chars/s | full recompute chars/s | speed-up |"
echo "|---|---|---|---|---|"
for spec in "task06 8 2000 2000" "task07 256 1000 200"; do
  read -r task block cached_tokens full_tokens <<<"$spec"
  ckpt=$(checkpoint "$task")
  prompt=$(head -c "$block" "$GPTBUILD_DATA")
  cached=() full=()
  for rep in $(seq "$repeats"); do
    cached+=("$(rate --checkpoint "$ckpt" --prompt "$prompt" --tokens "$cached_tokens" --seed "$rep")")
    full+=("$(rate --checkpoint "$ckpt" --prompt "$prompt" --tokens "$full_tokens" --seed "$rep" --no-cache)")
  done
  c=$(median "${cached[@]}")
  f=$(median "${full[@]}")
  printf '| %s | %s | %.1f | %.1f | %.1fx |\n' "$task" "$block" "$c" "$f" "$(awk -v c="$c" -v f="$f" 'BEGIN { print c / f }')"
done

# Memory of an endless sample: resident set size early and late.
ckpt=$(checkpoint task07)
"$bin" sample --checkpoint "$ckpt" --forever >/dev/null 2>"$out/forever.err" &
pid=$!
rss() { awk '/^VmRSS/ { print $2 }' "/proc/$pid/status"; }
sleep 5
early=$(rss)
sleep "$((seconds - 5))"
late=$(rss)
kill -TERM "$pid"
status=0
wait "$pid" || status=$?
echo
echo "--forever, task07 shape: RSS $((early / 1024)) MiB after 5 s, $((late / 1024)) MiB after $seconds s" \
  "(growth $(( (late - early) )) KiB); SIGTERM -> exit code $status, stderr: '$(cat "$out/forever.err")'"
