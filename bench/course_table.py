"""Summarises bench/course_losses.sh's runs as a markdown table beside the course's numbers.

    python3 bench/course_table.py runs/course-seeds 1 2 3
"""
import csv
import glob
import os
import statistics
import sys

TASKS = ["task01", "task02", "task03", "task04", "task05", "task06"]
REFERENCE = os.path.join(os.path.dirname(__file__), "../../shared/course/reference-losses.csv")


def reference_val_losses():
    with open(REFERENCE) as f:
        return {(r["task"], int(r["iteration"])): float(r["val_loss"]) for r in csv.DictReader(f)}


def val_losses(out, task, seed):
    """Val loss by iteration of the latest run of `task` with `seed`."""
    runs = sorted(glob.glob(f"{out}/seed{seed}/{task}/*/metrics.csv"))
    if not runs:
        sys.exit(f"no run of {task} with seed {seed} under {out}")
    with open(runs[-1]) as f:
        return {int(r["iteration"]): float(r["val_loss"]) for r in csv.DictReader(f)}


def mean_std(xs):
    spread = statistics.stdev(xs) if len(xs) > 1 else 0.0
    return f"{statistics.mean(xs):.4f} ± {spread:.4f}"


def main(out, seeds):
    reference = reference_val_losses()
    print(f"| task | course val @4500 | ours val @4500 (n={len(seeds)}) | ours final val @4999 | final, per seed |")
    print("|---|---|---|---|---|")
    for task in TASKS:
        runs = [val_losses(out, task, seed) for seed in seeds]
        at_4500 = [r[4500] for r in runs]
        final = [r[max(r)] for r in runs]
        per_seed = ", ".join(f"{v:.4f}" for v in final)
        print(f"| {task} | {reference[(task, 4500)]:.4f} | {mean_std(at_4500)} | {mean_std(final)} | {per_seed} |")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2:] or ["1", "2", "3"])
