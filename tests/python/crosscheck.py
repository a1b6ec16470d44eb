"""Cross-checks gptbuild's forward pass against the independent reference in `reference_gpt.py`.

Usage: crosscheck.py DIR

For every case `DIR/NAME.io.safetensors` (tensors `ids`, int64 [B, T], and `logits`, float32
[B, T, V], the logits gptbuild computed for those ids) the checkpoint `DIR/NAME.safetensors` is
loaded into the reference, which recomputes the logits in fp32, evaluation mode. A case passes when
the largest absolute difference is at most the case's `bound` (a scalar in the io file: fp32
rounding for the model's depth and the logits' magnitude, see tests/common/tolerance.rs; 1e-4 if
absent); one line is printed per case. Passing shows that
gptbuild's checkpoint names every tensor the reference expects, with the same shape and meaning,
and that its forward pass computes what the reference does. The exit status is 1 if any case fails
(a case that cannot be loaded fails, with its error) or if DIR holds no cases, 0 otherwise.
"""

import sys
from pathlib import Path

import torch
from safetensors.torch import load_file

from reference_gpt import load_checkpoint

DEFAULT_BOUND = 1e-4
IO_SUFFIX = ".io.safetensors"


def check(directory, name):
    """Returns `(passed, detail)` for the case `name` in `directory`."""
    model, _, _ = load_checkpoint(directory / f"{name}.safetensors")
    io = load_file(str(directory / f"{name}{IO_SUFFIX}"))
    expected = io["logits"].float()
    with torch.no_grad():
        actual = model(io["ids"].long())
    if actual.shape != expected.shape:
        return False, f"logits shape {tuple(actual.shape)}, expected {tuple(expected.shape)}"
    bound = io["bound"].item() if "bound" in io else DEFAULT_BOUND
    diff = (actual - expected).abs().max().item()
    # Written so that a NaN difference fails.
    return diff <= bound, f"max|diff| = {diff:.1e} (bound {bound:.1e}, {diff / bound:.3f} of it)"


def main(argv):
    if len(argv) != 2:
        print(f"usage: {argv[0]} DIR", file=sys.stderr)
        return 2
    directory = Path(argv[1])
    names = sorted(path.name[: -len(IO_SUFFIX)] for path in directory.glob(f"*{IO_SUFFIX}"))
    if not names:
        print(f"FAIL no cases (*{IO_SUFFIX}) in {directory}")
        return 1
    failures = 0
    for name in names:
        try:
            passed, detail = check(directory, name)
        except Exception as error:  # a case that cannot be loaded fails; go on with the others
            passed, detail = False, f"{type(error).__name__}: {' '.join(str(error).split())}"
        failures += not passed
        print(f"{'ok  ' if passed else 'FAIL'} {name}  {detail}", flush=True)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
