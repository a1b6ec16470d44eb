#!/usr/bin/env python3
"""The results table of 15-minute CPU runs (issue #7): one CSV row per run directory.

For each run it reads metrics.csv (iterations, wall time, the best and the last evaluation, as
the training log measured them) and scores best.safetensors and model.safetensors with
`gptbuild evaluate` on every character of the validation split: the numbers to compare runs by,
since a log that estimates the validation loss from random batches (`val_eval: batches`) carries
about ±0.01 of noise, and its best evaluation is biased low.

    python3 bench/cpu15_results.py runs/cpu15/*/* > sweeps/task07-cpu/results.csv

Set GPTBUILD to the binary (default target/release/gptbuild).
"""

import csv
import os
import re
import subprocess
import sys

import yaml

BIN = os.environ.get("GPTBUILD", "target/release/gptbuild")
COLUMNS = [
    "spec", "seed", "parameters", "iterations", "minutes", "val_eval",
    "logged_best_val", "logged_best_at", "logged_best_minute", "logged_final_val",
    "best_checkpoint_val", "final_checkpoint_val", "run_dir",
]


def whole_split_val(checkpoint):
    """`gptbuild evaluate`'s validation loss of a checkpoint, and the iteration it was saved at."""
    out = subprocess.run([BIN, "evaluate", "--checkpoint", checkpoint, "--threads", "1"],
                         check=True, capture_output=True, text=True).stdout
    iteration = int(re.search(r"\(iteration (\d+)\)$", out, re.M).group(1))
    return iteration, float(re.search(r"^val loss (\S+) ", out, re.M).group(1))


def parameters(spec_path):
    out = subprocess.run([BIN, "inspect", spec_path], check=True, capture_output=True,
                         text=True).stdout
    return int(re.search(r"^total\s+(\d+)", out, re.M).group(1))


def row(run_dir):
    with open(os.path.join(run_dir, "metrics.csv")) as f:
        evaluations = list(csv.DictReader(f))
    best = min(evaluations, key=lambda e: float(e["val_loss"]))
    last = evaluations[-1]
    spec_path = os.path.join(run_dir, "spec.yaml")
    with open(spec_path) as f:
        training = yaml.safe_load(f)["training"]
    _, best_val = whole_split_val(os.path.join(run_dir, "best.safetensors"))
    iterations, final_val = whole_split_val(os.path.join(run_dir, "model.safetensors"))
    return {
        "spec": os.path.basename(os.path.dirname(run_dir)),
        "seed": training["seed"],
        "parameters": parameters(spec_path),
        "iterations": iterations,
        "minutes": f"{float(last['elapsed_seconds']) / 60:.2f}",
        "val_eval": training.get("val_eval", "batches"),
        "logged_best_val": f"{float(best['val_loss']):.4f}",
        "logged_best_at": best["iteration"],
        "logged_best_minute": f"{float(best['elapsed_seconds']) / 60:.1f}",
        "logged_final_val": f"{float(last['val_loss']):.4f}",
        "best_checkpoint_val": f"{best_val:.4f}",
        "final_checkpoint_val": f"{final_val:.4f}",
        "run_dir": run_dir,
    }


def main(run_dirs):
    writer = csv.DictWriter(sys.stdout, COLUMNS, lineterminator="\n")
    writer.writeheader()
    for run_dir in run_dirs:
        writer.writerow(row(run_dir.rstrip("/")))


if __name__ == "__main__":
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    main(sys.argv[1:])
