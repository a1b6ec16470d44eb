#!/usr/bin/env python3
"""Summarises a `gptbuild sweep` results table over seeds, as a markdown table.

Trials that differ only in `training.seed` form one row: mean ± sample std of the best and the final
validation loss, and of the validation loss at a few early evaluations (read from each trial's
metrics.csv), so that a difference between rows can be judged against the seed-to-seed spread.
Mapping values (`{"kind":"rope"}`) are shortened to the `kind`s they contain.

Usage: bench/sweep_table.py RESULTS.csv [--at 250,500,1000] [--baseline ROW_LABEL]
"""

import argparse
import csv
import json
import statistics
import sys
from collections import defaultdict
from pathlib import Path

FIXED = ("trial", "best_val_loss", "final_val_loss", "iterations", "seconds", "run_dir")
SEED = "training.seed"


def short(value):
    """`{"kind":"multi_head";...}` -> `multi_head+mlp+layernorm`: the kinds a mapping names."""
    if not value.startswith(("{", "[")):
        return value
    kinds = []

    def walk(node):
        if isinstance(node, dict):
            if "kind" in node:
                kinds.append(str(node["kind"]))
            for child in node.values():
                walk(child)
        elif isinstance(node, list):
            for child in node:
                walk(child)

    walk(json.loads(value.replace(";", ",")))
    return "+".join(kinds) if kinds else value


def val_at(run_dir, iterations):
    """Validation loss at each of `iterations` from a run's metrics.csv (None where absent)."""
    path = Path(run_dir) / "metrics.csv"
    losses = {}
    if path.is_file():
        with path.open() as f:
            for row in csv.DictReader(f):
                losses[int(row["iteration"])] = float(row["val_loss"])
    return [losses.get(i) for i in iterations]


def mean_std(values):
    values = [v for v in values if v is not None]
    if not values:
        return "–"
    if len(values) == 1:
        return f"{values[0]:.4f}"
    return f"{statistics.mean(values):.4f} ± {statistics.stdev(values):.4f}"


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("results")
    p.add_argument("--at", default="250,500,1000", help="iterations of the early columns")
    args = p.parse_args()
    at = [int(i) for i in args.at.split(",") if i]
    with open(args.results) as f:
        rows = list(csv.DictReader(f))
    if not rows:
        sys.exit(f"{args.results}: no trials")
    varied = [c for c in rows[0] if c not in FIXED and c != SEED]
    groups = defaultdict(list)
    for row in rows:
        groups[tuple(short(row[c]) for c in varied)].append(row)

    header = [*varied, "seeds", *(f"val @{i}" for i in at), "best val", "final val"]
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))
    for key, trials in groups.items():
        early = [val_at(t["run_dir"], at) for t in trials]
        cells = [
            *key,
            str(len(trials)),
            *(mean_std([e[i] for e in early]) for i in range(len(at))),
            mean_std([float(t["best_val_loss"]) for t in trials]),
            mean_std([float(t["final_val_loss"]) for t in trials]),
        ]
        print("| " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
