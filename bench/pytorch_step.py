#!/usr/bin/env python3
"""Times one training step of a spec's model in plain eager PyTorch: the counterpart of
`gptbuild bench`, for `compare_step.sh`.

Usage: pytorch_step.py SPEC_RESOLVED.yaml [--steps 20] [--warmup 3] [--threads N]
                       [--precision fp32|bf16-autocast] [--seed S] [--device cpu|cuda]
                       [--compile]

SPEC_RESOLVED.yaml is a resolved spec, as `gptbuild validate SPEC` prints it. The model is
`reference_gpt.build_model(spec, 65)` (the independent PyTorch implementation the cross-check
uses), with PyTorch's default initialisation, in training mode (dropout as the spec sets it). One
step is what a PyTorch user writes: forward on a fixed random batch of the spec's shape
(`training.batch_size` x `model.block_size`, 65 tokens), cross-entropy, `zero_grad(set_to_none=True)`,
backward, gradient clipping if `training.grad_clip` is set, `torch.optim.AdamW` step (PyTorch's
default implementation on the CPU, `fused=True` on CUDA, as nanoGPT's train.py chooses there)
with `training.learning_rate` and `training.adamw` (`weight_decay_on: matrices` decays only
parameters of two or more dimensions, as gptbuild does). `bf16-autocast`
runs the forward pass and the loss under `torch.autocast(DEVICE, dtype=torch.bfloat16)`.
`--device cuda` runs it on the first GPU (the timing waits for the GPU's queue, as `gptbuild
bench` does); `--compile` wraps the model in `torch.compile` (the warm-up steps compile it).

After `--warmup` untimed steps it times `--steps` steps and prints the first lines of
`gptbuild bench`'s report in the same format:

    steps timed         20
    ms per step         median 39.93, min 37.21, max 43.28
    tokens per second   6411

`--threads` defaults to the spec's `training.threads` (0: PyTorch's default), `--precision` to the
spec's `training.precision` (bf16 meaning bf16-autocast), `--seed` to `training.seed`.
"""

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests" / "python"))
from reference_gpt import Yaml12Loader, build_model  # noqa: E402

# Tiny Shakespeare's vocabulary, as `gptbuild bench` uses: the benchmark needs no corpus.
VOCAB_SIZE = 65
PRECISIONS = ("fp32", "bf16-autocast")


def setting(section, key, where):
    if not isinstance(section, dict) or key not in section:
        raise SystemExit(f"error: {where}.{key} missing (is this a resolved spec? "
                         f"`gptbuild validate SPEC` prints one)")
    return section[key]


def optimizer_for(model, training, fused):
    """AdamW with the spec's settings; `weight_decay_on: matrices` decays only the 2-D (and
    larger) parameters: linear and embedding weights, not biases and norm gains. `fused` picks
    PyTorch's one-kernel implementation (CUDA), as nanoGPT does on a GPU."""
    adamw = setting(training, "adamw", "training")
    decay = float(setting(adamw, "weight_decay", "training.adamw"))
    target = setting(adamw, "weight_decay_on", "training.adamw")
    params = list(model.parameters())
    if target == "all":
        groups = [{"params": params, "weight_decay": decay}]
    elif target == "matrices":
        groups = [{"params": [p for p in params if p.dim() >= 2], "weight_decay": decay},
                  {"params": [p for p in params if p.dim() < 2], "weight_decay": 0.0}]
    else:
        raise SystemExit(f"error: training.adamw.weight_decay_on: unknown value {target!r}")
    return torch.optim.AdamW(
        groups,
        lr=float(setting(training, "learning_rate", "training")),
        betas=(float(setting(adamw, "beta1", "training.adamw")),
               float(setting(adamw, "beta2", "training.adamw"))),
        eps=float(setting(adamw, "eps", "training.adamw")),
        fused=fused or None,
    )


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("spec", type=Path, help="a resolved spec (gptbuild validate SPEC)")
    parser.add_argument("--steps", type=int, default=20, help="timed steps (the median is reported)")
    parser.add_argument("--warmup", type=int, default=3, help="untimed steps first")
    parser.add_argument("--threads", type=int, help="intra-op threads (default: training.threads)")
    parser.add_argument("--precision", choices=PRECISIONS,
                        help="default: the spec's training.precision")
    parser.add_argument("--seed", type=int, help="default: training.seed")
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    parser.add_argument("--compile", action="store_true", help="torch.compile the model")
    args = parser.parse_args(argv)
    device = torch.device(args.device)
    synchronize = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)

    spec = yaml.load(args.spec.read_text(), Loader=Yaml12Loader)
    training = setting(spec, "training", "spec")
    threads = args.threads if args.threads is not None else int(training.get("threads", 0))
    if threads > 0:
        torch.set_num_threads(threads)
    precision = args.precision or {"fp32": "fp32", "bf16": "bf16-autocast"}[
        setting(training, "precision", "training")]
    torch.manual_seed(args.seed if args.seed is not None else int(setting(training, "seed", "training")))

    model = build_model(spec, VOCAB_SIZE).to(device).train()
    optimizer = optimizer_for(model, training, fused=device.type == "cuda")
    forward = torch.compile(model) if args.compile else model
    grad_clip = training.get("grad_clip")
    batch = int(setting(training, "batch_size", "training"))
    block = model.block_size
    x = torch.randint(VOCAB_SIZE, (batch, block), device=device)
    y = torch.randint(VOCAB_SIZE, (batch, block), device=device)
    autocast = precision == "bf16-autocast"

    def step():
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=autocast):
            logits = forward(x)
            loss = F.cross_entropy(logits.view(-1, VOCAB_SIZE), y.view(-1))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if grad_clip is not None:
            torch.nn.utils.clip_grad_norm_(model.parameters(), float(grad_clip))
        optimizer.step()
        synchronize()

    for _ in range(args.warmup):
        step()
    times = []
    for _ in range(max(args.steps, 1)):
        started = time.perf_counter()
        step()
        times.append((time.perf_counter() - started) * 1000.0)

    median = statistics.median(times)
    print(f"steps timed         {len(times)}")
    print(f"ms per step         median {median:.2f}, min {min(times):.2f}, max {max(times):.2f}")
    print(f"tokens per second   {batch * block / (median / 1000.0):.0f}")


if __name__ == "__main__":
    main()
