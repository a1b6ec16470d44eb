"""Checks gptbuild's Hugging Face export with transformers itself, and makes random transformers
models for gptbuild's import to read.

Usage:
  hugging_face.py check DIR [--only NAME] [--mutate conv1d|rotate_half|head_bias]
  hugging_face.py make DIR

`check`: every case `DIR/NAME/` is a directory `gptbuild export --format hf` wrote, beside
`DIR/NAME.case.safetensors` (`ids` [B, T] int64 and gptbuild's `logits` for them, `bound` the
fp32 rounding bound for the model's depth and the logits' scale) and `DIR/NAME.case.json`
(`texts`, gptbuild's `token_ids` of each, a `prompt` and gptbuild's greedy `continuation`, ids).
transformers loads the directory with `AutoModelForCausalLM` and `AutoTokenizer`, no custom code;
its logits must be within the bound, its tokenizer must give gptbuild's ids for every text and
decode them back, and `generate(do_sample=False)` must continue the prompt with gptbuild's
tokens. A mutation changes what transformers computes the way a wrong export would (a GPT-2
Conv1D weight left untransposed, q/k rows in the interleaved rather than rotate-half layout, a
head bias dropped) and must make the check fail. One line per case; exit 1 if any fails.

`make`: for every line of `DIR/models.json` (`name`, `family` llama|gpt2, `config` overrides,
`dtype` float32|bfloat16|float16, `shards` true for a sharded save, `seed`, optionally `chars`, the
tokenizer's characters in id order), a random model that
transformers itself builds from the config (weights perturbed from their initialisation so that
no zero bias or unit gain hides a mistake), saved with `save_pretrained` to `DIR/NAME/` with a
character tokenizer of the config's vocabulary (tokenizer.json), and `DIR/NAME.case.safetensors`
with random `ids` and transformers' `logits` for them, computed in fp32 from the saved weights.
"""

import json
import sys
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file
from tokenizers import Tokenizer, decoders, models
from transformers.utils import logging as transformers_logging

from cases import run_cases
from transformers import (AutoModelForCausalLM, AutoTokenizer, GPT2Config, GPT2LMHeadModel,
                          LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast)


def mutate(model, how):
    """Changes `model` in place the way a wrong export would."""
    with torch.no_grad():
        for name, param in model.named_parameters():
            if how == "conv1d" and name.endswith("attn.c_proj.weight"):
                param.copy_(param.t().clone())
            if how == "rotate_half" and (name.endswith("q_proj.weight") or name.endswith("k_proj.weight")):
                # Rows (i, i + hs/2) of each head read as interleaved pairs (2i, 2i + 1).
                head_size = model.config.head_dim
                heads = param.shape[0] // head_size
                w = param.view(heads, 2, head_size // 2, -1)
                param.copy_(w.transpose(1, 2).reshape(param.shape).clone())


def check(directory, name, how):
    model = AutoModelForCausalLM.from_pretrained(directory / name).eval()
    tokenizer = AutoTokenizer.from_pretrained(directory / name)
    if how:
        mutate(model, how)
    io = load_file(str(directory / f"{name}.case.safetensors"))
    case = json.loads((directory / f"{name}.case.json").read_text())
    with torch.no_grad():
        logits = model(io["ids"].long()).logits.float()
    expected = io["logits"].float()
    if how == "head_bias":
        # gptbuild's logits had a bias the export dropped.
        expected = expected + torch.linspace(-1, 1, expected.shape[-1])
    if logits.shape != expected.shape:
        return False, f"logits {tuple(logits.shape)}, gptbuild {tuple(expected.shape)}"
    bound = io["bound"].item()
    diff = (logits - expected).abs().max().item()
    detail = f"{type(model).__name__}: max|diff| {diff:.1e} = {diff / bound:.3f} of the bound"
    if not diff <= bound:
        return False, detail
    for text, ids in zip(case["texts"], case["token_ids"]):
        theirs = tokenizer(text, add_special_tokens=False)["input_ids"]
        if theirs != ids:
            return False, f"tokenizer: {text[:40]!r} gives {theirs[:12]}..., gptbuild {ids[:12]}..."
        if tokenizer.decode(theirs) != text:
            return False, f"tokenizer: {text[:40]!r} decodes to {tokenizer.decode(theirs)[:40]!r}"
    prompt = torch.tensor([case["prompt"]])
    with torch.no_grad():
        out = model.generate(prompt, attention_mask=torch.ones_like(prompt), do_sample=False,
                             max_new_tokens=len(case["continuation"]), pad_token_id=0)
    continuation = out[0, prompt.shape[1]:].tolist()
    if continuation != case["continuation"]:
        return False, f"greedy: {continuation[:10]}..., gptbuild {case['continuation'][:10]}..."
    return True, detail + f"; {len(case['texts'])} texts' ids and {len(continuation)} greedy tokens equal"


def character_tokenizer(vocab_size, chars=None):
    """A tokenizer.json of `vocab_size` single characters (BPE, no merges, fused decoding): `chars`
    in id order, else `!`, `"`, `#`, …"""
    chars = list(chars) if chars else [chr(0x21 + i) for i in range(vocab_size)]
    tokenizer = Tokenizer(models.BPE(vocab={c: i for i, c in enumerate(chars)}, merges=[]))
    tokenizer.decoder = decoders.Fuse()
    return tokenizer


def make(directory, entry):
    torch.manual_seed(entry["seed"])
    if entry["family"] == "llama":
        model = LlamaForCausalLM(LlamaConfig(**entry["config"]))
    else:
        model = GPT2LMHeadModel(GPT2Config(**entry["config"]))
    with torch.no_grad():
        for param in model.parameters():
            param.add_(torch.randn_like(param) * 0.1)
    dtype = getattr(torch, entry.get("dtype", "float32"))
    model = model.to(dtype).eval()
    out = directory / entry["name"]
    shard = {"max_shard_size": "20KB"} if entry.get("shards") else {}
    model.save_pretrained(out, **shard)
    tokenizer = character_tokenizer(model.config.vocab_size, entry.get("chars"))
    fast = PreTrainedTokenizerFast(tokenizer_object=tokenizer)
    fast.save_pretrained(out)
    # The reference logits come from the weights as saved, in fp32.
    reloaded = AutoModelForCausalLM.from_pretrained(out, dtype=torch.float32).eval()
    t = min(reloaded.config.max_position_embeddings if entry["family"] == "llama"
            else reloaded.config.n_positions, 24)
    ids = torch.randint(0, model.config.vocab_size, (2, t))
    with torch.no_grad():
        logits = reloaded(ids).logits.float().contiguous()
    save_file({"ids": ids, "logits": logits}, str(directory / f"{entry['name']}.case.safetensors"))
    return f"{entry['name']}: {type(model).__name__} {entry.get('dtype', 'float32')}" + \
        (" sharded" if entry.get("shards") else "")


def main(argv):
    transformers_logging.disable_progress_bar()
    if len(argv) < 3 or argv[1] not in ("check", "make"):
        print(__doc__, file=sys.stderr)
        return 2
    directory = Path(argv[2])
    if argv[1] == "make":
        for line in (directory / "models.json").read_text().splitlines():
            if line.strip():
                print("made", make(directory, json.loads(line)), flush=True)
        return 0
    return run_cases(argv[2:], lambda d, name, options: check(d, name, options.get("--mutate")))


if __name__ == "__main__":
    sys.exit(main(sys.argv))
