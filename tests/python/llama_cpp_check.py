"""Checks gptbuild's GGUF export with llama.cpp itself (llama-cpp-python) and with llama.cpp's own
`gguf` reader.

Usage: llama_cpp_check.py DIR [--only NAME]

Every case is `DIR/NAME.gguf`, written by `gptbuild export --format gguf`, beside
`DIR/NAME.case.safetensors` (`ids` [T] int64, gptbuild's `logits` [T, V] for them, computed from
the weights as the file stores them, and `bound`, the tolerance for the file's type) and
`DIR/NAME.case.json` (`metadata`: keys with the values the file must hold; `tensors`: names with
their shapes in ggml's order; `texts` with gptbuild's `token_ids`; a `prompt` and gptbuild's greedy
`continuation`, ids). A case passes when
- llama.cpp's `gguf` reader finds every key with its value and every tensor with its shape;
- llama.cpp's logits for the ids (every position; its key/value cache in f32) are within the bound
  of gptbuild's;
- llama.cpp's tokenizer gives gptbuild's ids for every text (and detokenizes them back);
- llama.cpp's most likely token after the prompt, again and again, is gptbuild's continuation.
One line per case with the largest difference as a share of the bound; exit 1 if any fails.
"""

import json
import sys
import numpy as np
from gguf import GGUFReader
from llama_cpp import Llama
from safetensors.numpy import load_file

from cases import run_cases

GGML_TYPE_F32 = 0


def metadata_problem(path, case):
    reader = GGUFReader(str(path))
    for key, expected in case["metadata"].items():
        if key not in reader.fields:
            return f"metadata lacks {key}"
        actual = reader.fields[key].contents()
        if isinstance(expected, float):
            if not np.isclose(actual, expected, rtol=1e-6):
                return f"{key} = {actual}, expected {expected}"
        elif actual != expected:
            return f"{key} = {str(actual)[:80]}, expected {str(expected)[:80]}"
    shapes = {t.name: [int(d) for d in t.shape] for t in reader.tensors}
    if shapes != case["tensors"]:
        return f"tensors {shapes}, expected {case['tensors']}"
    return None


def check(directory, name):
    path = directory / f"{name}.gguf"
    case = json.loads((directory / f"{name}.case.json").read_text())
    problem = metadata_problem(path, case)
    if problem:
        return False, f"gguf reader: {problem}"
    io = load_file(str(directory / f"{name}.case.safetensors"))
    ids, expected, bound = io["ids"].tolist(), io["logits"], float(io["bound"])
    # The key/value cache in f32 (llama.cpp's default is f16): only the file's own rounding then.
    llm = Llama(model_path=str(path), n_ctx=len(ids), n_batch=len(ids), n_threads=2,
                logits_all=True, type_k=GGML_TYPE_F32, type_v=GGML_TYPE_F32, verbose=False)
    llm.eval(ids)
    logits = np.array(llm.scores[: len(ids)], dtype=np.float32)
    if logits.shape != expected.shape:
        return False, f"logits {logits.shape}, gptbuild {expected.shape}"
    diff = float(np.abs(logits - expected).max())
    detail = f"max|diff| {diff:.1e} = {diff / bound:.3f} of the bound"
    if not diff <= bound:
        return False, detail
    for text, want in zip(case["texts"], case["token_ids"]):
        got = llm.tokenize(text.encode("utf-8"), add_bos=False, special=False)
        if got != want:
            at = next((i for i, (a, b) in enumerate(zip(got, want)) if a != b), min(len(got), len(want)))
            return False, (f"tokenizer: {text[:40]!r} differs at token {at}: "
                           f"{got[at:at + 6]}, gptbuild {want[at:at + 6]}")
        back = llm.detokenize(got).decode("utf-8", errors="replace")
        if back != text:
            return False, f"detokenize: {text[:40]!r} comes back as {back[:40]!r}"
    llm.reset()
    llm.eval(case["prompt"])
    continuation = []
    for _ in case["continuation"]:
        token = int(np.argmax(llm.scores[llm.n_tokens - 1]))
        continuation.append(token)
        llm.eval([token])
    if continuation != case["continuation"]:
        return False, f"greedy: {continuation[:10]}..., gptbuild {case['continuation'][:10]}..."
    return True, detail + f"; {len(case['texts'])} texts' ids, {len(continuation)} greedy tokens"


def main(argv):
    if len(argv) < 2:
        print(__doc__, file=sys.stderr)
        return 2
    return run_cases(argv[1:], lambda directory, name, _options: check(directory, name))


if __name__ == "__main__":
    sys.exit(main(sys.argv))
