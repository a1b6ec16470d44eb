#!/usr/bin/env python3
"""The course's GPT ("Let's build GPT", gpt.py) in plain eager PyTorch, driven by a gptbuild spec.

This is the baseline for the speed benchmark in bench/compare_course.sh: it builds the model a
gptbuild YAML spec describes, trains it with the course's loop and hyperparameters, samples from it,
and prints the same log lines as `gptbuild run`, so the two can be timed and compared side by side.
It deliberately keeps the course's code shape (Head, MultiHeadAttention, FeedForward, Block, a
Python-level get_batch, PyTorch default initialisation) rather than optimising it: the point is to
measure what the course's own code costs.

Usage: course_pytorch.py SPEC.yaml --data PATH [--seed N] [--iters N] [--threads N]
Log on stdout; `wall_seconds: X.XXX` on stderr.
"""

import time

# Started before importing torch: the gptbuild binary's wall time includes loading libtorch too.
START = time.perf_counter()

import argparse
import sys
from dataclasses import dataclass
from typing import Optional

import torch
import torch.nn as nn
import torch.nn.functional as F
import yaml


# ---------------------------------------------------------------------------------------------
# Spec: the subset of gptbuild's YAML format the course models need, with the same defaults and
# the same strictness (unknown keys are errors, so a typo cannot silently train another model).
# ---------------------------------------------------------------------------------------------


class SpecError(Exception):
    pass


def fields(value, allowed, where):
    """Returns the mapping `value` ({} when absent) after rejecting keys the format does not define."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise SpecError(f"{where}: expected a mapping, got {value!r}")
    unknown = sorted(set(value) - set(allowed))
    if unknown:
        raise SpecError(f"{where}: unknown key(s) {', '.join(unknown)}; allowed: {', '.join(allowed)}")
    return value


def kind_fields(value, kinds, where):
    """Checks a `{kind: K, ...}` section against the keys kind K allows; returns (K, section)."""
    if not isinstance(value, dict) or value.get("kind") not in kinds:
        raise SpecError(f"{where}: expected {{kind: ...}} with kind one of {', '.join(kinds)}")
    kind = value["kind"]
    return kind, fields(value, ("kind",) + kinds[kind], where)


def required(section, key, where):
    if key not in section:
        raise SpecError(f"{where}: missing required key {key}")
    return section[key]


def positive_int(value, where):
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise SpecError(f"{where}: must be an integer of at least 1, got {value!r}")
    return value


def number(value, where):
    # PyYAML (YAML 1.1) reads `1e-5` as a string where serde_yaml reads a float; accept both.
    try:
        return float(value)
    except (TypeError, ValueError):
        raise SpecError(f"{where}: expected a number, got {value!r}") from None


@dataclass
class ModelConfig:
    block_size: int
    n_embd: int
    dropout: float
    n_layer: int
    n_head: int  # 1 for a single head
    head_size: int
    multi_head: bool  # False: one bare Head, as in the course's first step
    projection: bool
    ff_hidden: Optional[int]  # None: no feed-forward; 0: Linear(C, C) + ReLU; else the MLP width
    residual: bool
    norm_eps: Optional[float]  # None: no LayerNorm inside blocks (norm_placement: none)
    final_norm_eps: Optional[float]


@dataclass
class Spec:
    model: ModelConfig
    data_path: Optional[str]
    train_fraction: float
    batch_size: int
    max_iters: int
    eval_interval: int
    eval_iters: int
    learning_rate: float
    betas: tuple
    adam_eps: float
    weight_decay: float
    seed: int
    threads: int
    device: str
    sample_tokens: int
    temperature: float
    sample_seed: Optional[int]


def layernorm_eps(value, where):
    _, norm = kind_fields(value, {"layernorm": ("eps",)}, where)
    return number(norm.get("eps", 1e-5), f"{where}.eps")


def parse_model(raw):
    m = fields(raw, ("block_size", "n_embd", "dropout", "position", "n_layer", "block", "final_norm"),
               "model")
    n_embd = positive_int(required(m, "n_embd", "model"), "model.n_embd")
    kind_fields(required(m, "position", "model"), {"learned": ()}, "model.position")

    b = fields(required(m, "block", "model"),
               ("attention", "feed_forward", "residual", "norm", "norm_placement"), "model.block")
    attn_kind, attn = kind_fields(required(b, "attention", "model.block"),
                                  {"head": ("head_size",), "multi_head": ("n_head", "head_size", "projection")},
                                  "model.block.attention")
    if attn_kind == "head":
        n_head, projection = 1, False
        head_size = positive_int(attn.get("head_size", n_embd), "model.block.attention.head_size")
    else:
        n_head = positive_int(required(attn, "n_head", "model.block.attention"), "model.block.attention.n_head")
        if "head_size" not in attn and n_embd % n_head:
            raise SpecError(f"model.block.attention: n_embd ({n_embd}) is not divisible by n_head ({n_head}); "
                            "give head_size explicitly")
        head_size = positive_int(attn.get("head_size", n_embd // n_head), "model.block.attention.head_size")
        projection = bool(attn.get("projection", True))
    if not projection and n_head * head_size != n_embd:
        raise SpecError(f"model.block.attention: outputs {n_head * head_size} channels but the block needs "
                        f"n_embd = {n_embd}; add `projection: true` or change head_size/n_head")

    ff_kind, ff = kind_fields(b.get("feed_forward", {"kind": "none"}),
                              {"none": (), "linear": (), "mlp": ("hidden_multiplier", "hidden_size")},
                              "model.block.feed_forward")
    ff_hidden = {"none": None, "linear": 0}.get(ff_kind)
    if ff_kind == "mlp":
        if "hidden_multiplier" in ff and "hidden_size" in ff:
            raise SpecError("model.block.feed_forward: give either hidden_multiplier or hidden_size, not both")
        if "hidden_size" in ff:
            ff_hidden = positive_int(ff["hidden_size"], "model.block.feed_forward.hidden_size")
        else:
            ff_hidden = n_embd * positive_int(ff.get("hidden_multiplier", 4),
                                              "model.block.feed_forward.hidden_multiplier")

    placement = b.get("norm_placement", "none")
    if placement not in ("none", "pre"):
        raise SpecError(f"model.block.norm_placement: expected none or pre, got {placement!r}")
    if placement == "none" and "norm" in b:
        raise SpecError("model.block.norm: is set but norm_placement is none, so it would never be used")
    norm_eps = layernorm_eps(b.get("norm", {"kind": "layernorm"}), "model.block.norm") if placement == "pre" else None

    return ModelConfig(
        block_size=positive_int(required(m, "block_size", "model"), "model.block_size"),
        n_embd=n_embd,
        dropout=number(m.get("dropout", 0.0), "model.dropout"),
        n_layer=positive_int(required(m, "n_layer", "model"), "model.n_layer"),
        n_head=n_head,
        head_size=head_size,
        multi_head=attn_kind == "multi_head",
        projection=projection,
        ff_hidden=ff_hidden,
        residual=bool(b.get("residual", True)),
        norm_eps=norm_eps,
        final_norm_eps=layernorm_eps(m["final_norm"], "model.final_norm") if "final_norm" in m else None,
    )


def load_spec(path):
    with open(path, encoding="utf-8") as f:
        raw = fields(yaml.safe_load(f), ("name", "data", "model", "training", "sampling"), "spec")
    data = fields(raw.get("data"), ("path", "train_fraction"), "data")
    t = fields(required(raw, "training", "spec"),
               ("batch_size", "max_iters", "eval_interval", "eval_iters", "learning_rate", "adamw",
                "seed", "threads", "device"), "training")
    adamw = fields(t.get("adamw"), ("beta1", "beta2", "eps", "weight_decay"), "training.adamw")
    s = fields(raw.get("sampling"), ("tokens", "temperature", "seed"), "sampling")
    device = t.get("device", "auto")
    if device not in ("auto", "cpu", "cuda"):
        raise SpecError(f"training.device: expected auto, cpu or cuda, got {device!r}")
    return Spec(
        model=parse_model(required(raw, "model", "spec")),
        data_path=data.get("path"),
        train_fraction=number(data.get("train_fraction", 0.9), "data.train_fraction"),
        batch_size=positive_int(required(t, "batch_size", "training"), "training.batch_size"),
        max_iters=positive_int(required(t, "max_iters", "training"), "training.max_iters"),
        eval_interval=positive_int(required(t, "eval_interval", "training"), "training.eval_interval"),
        eval_iters=positive_int(required(t, "eval_iters", "training"), "training.eval_iters"),
        learning_rate=number(required(t, "learning_rate", "training"), "training.learning_rate"),
        betas=(number(adamw.get("beta1", 0.9), "training.adamw.beta1"),
               number(adamw.get("beta2", 0.999), "training.adamw.beta2")),
        adam_eps=number(adamw.get("eps", 1e-8), "training.adamw.eps"),
        weight_decay=number(adamw.get("weight_decay", 0.01), "training.adamw.weight_decay"),
        seed=int(t.get("seed", 1337)),
        threads=int(t.get("threads", 0)),
        device=device,
        sample_tokens=positive_int(s.get("tokens", 500), "sampling.tokens"),
        temperature=number(s.get("temperature", 1.0), "sampling.temperature"),
        sample_seed=s.get("seed"),
    )


# ---------------------------------------------------------------------------------------------
# Model: the course's classes, generalised only as far as the spec's options require.
# ---------------------------------------------------------------------------------------------


class Head(nn.Module):
    """One head of causal self-attention."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.key = nn.Linear(cfg.n_embd, cfg.head_size, bias=False)
        self.query = nn.Linear(cfg.n_embd, cfg.head_size, bias=False)
        self.value = nn.Linear(cfg.n_embd, cfg.head_size, bias=False)
        self.register_buffer("tril", torch.tril(torch.ones(cfg.block_size, cfg.block_size)))
        self.dropout = nn.Dropout(cfg.dropout)

    def forward(self, x):
        B, T, C = x.shape
        k = self.key(x)  # (B, T, hs)
        q = self.query(x)  # (B, T, hs)
        wei = q @ k.transpose(-2, -1) * k.shape[-1] ** -0.5  # (B, T, T)
        wei = wei.masked_fill(self.tril[:T, :T] == 0, float("-inf"))
        wei = F.softmax(wei, dim=-1)
        wei = self.dropout(wei)
        v = self.value(x)  # (B, T, hs)
        return wei @ v


class MultiHeadAttention(nn.Module):
    """Several heads in parallel, concatenated, optionally projected back to n_embd."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.heads = nn.ModuleList([Head(cfg) for _ in range(cfg.n_head)])
        # The course's step 2 has no projection; it arrives with the residual connections.
        self.proj = nn.Linear(cfg.n_head * cfg.head_size, cfg.n_embd) if cfg.projection else None
        self.dropout = nn.Dropout(cfg.dropout)

    def forward(self, x):
        out = torch.cat([h(x) for h in self.heads], dim=-1)
        if self.proj is not None:
            out = self.dropout(self.proj(out))
        return out


class FeedForward(nn.Module):
    """Per-token computation: the course's Linear(C, C) + ReLU step, or the 4x MLP of the paper."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        if cfg.ff_hidden == 0:
            self.net = nn.Sequential(nn.Linear(cfg.n_embd, cfg.n_embd), nn.ReLU())
        else:
            self.net = nn.Sequential(
                nn.Linear(cfg.n_embd, cfg.ff_hidden),
                nn.ReLU(),
                nn.Linear(cfg.ff_hidden, cfg.n_embd),
                nn.Dropout(cfg.dropout),
            )

    def forward(self, x):
        return self.net(x)


class Block(nn.Module):
    """Communication (attention) followed by computation (feed-forward)."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.sa = MultiHeadAttention(cfg) if cfg.multi_head else Head(cfg)
        self.ffwd = FeedForward(cfg) if cfg.ff_hidden is not None else None
        pre_norm = cfg.norm_eps is not None
        self.ln1 = nn.LayerNorm(cfg.n_embd, eps=cfg.norm_eps) if pre_norm else None
        self.ln2 = nn.LayerNorm(cfg.n_embd, eps=cfg.norm_eps) if pre_norm else None
        self.residual = cfg.residual

    def sublayer(self, x, norm, f):
        out = f(x if norm is None else norm(x))
        return x + out if self.residual else out

    def forward(self, x):
        x = self.sublayer(x, self.ln1, self.sa)
        if self.ffwd is not None:
            x = self.sublayer(x, self.ln2, self.ffwd)
        return x


class GPTLanguageModel(nn.Module):
    def __init__(self, cfg: ModelConfig, vocab_size: int):
        super().__init__()
        self.block_size = cfg.block_size
        self.token_embedding_table = nn.Embedding(vocab_size, cfg.n_embd)
        self.position_embedding_table = nn.Embedding(cfg.block_size, cfg.n_embd)
        self.blocks = nn.Sequential(*[Block(cfg) for _ in range(cfg.n_layer)])
        self.ln_f = nn.Identity() if cfg.final_norm_eps is None else nn.LayerNorm(cfg.n_embd, eps=cfg.final_norm_eps)
        self.lm_head = nn.Linear(cfg.n_embd, vocab_size)

    def forward(self, idx, targets=None):
        B, T = idx.shape
        tok_emb = self.token_embedding_table(idx)  # (B, T, C)
        pos_emb = self.position_embedding_table(torch.arange(T, device=idx.device))  # (T, C)
        x = self.blocks(tok_emb + pos_emb)
        logits = self.lm_head(self.ln_f(x))  # (B, T, vocab_size)
        if targets is None:
            return logits, None
        B, T, C = logits.shape
        return logits, F.cross_entropy(logits.view(B * T, C), targets.view(B * T))

    @torch.no_grad()
    def generate(self, idx, max_new_tokens, temperature):
        for _ in range(max_new_tokens):
            logits, _ = self(idx[:, -self.block_size:])
            probs = F.softmax(logits[:, -1, :] / temperature, dim=-1)
            idx = torch.cat((idx, torch.multinomial(probs, num_samples=1)), dim=1)
        return idx


# ---------------------------------------------------------------------------------------------
# Training: the course's loop.
# ---------------------------------------------------------------------------------------------


def get_batch(data, block_size, batch_size, device):
    ix = torch.randint(len(data) - block_size, (batch_size,))
    x = torch.stack([data[i:i + block_size] for i in ix])
    y = torch.stack([data[i + 1:i + block_size + 1] for i in ix])
    return x.to(device), y.to(device)


@torch.no_grad()
def estimate_loss(model, splits, spec, device):
    out = {}
    model.eval()
    for name, data in splits.items():
        losses = torch.zeros(spec.eval_iters)
        for k in range(spec.eval_iters):
            _, loss = model(*get_batch(data, spec.model.block_size, spec.batch_size, device))
            losses[k] = loss.item()
        out[name] = losses.mean()
    model.train()
    return out


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("spec", help="gptbuild YAML spec")
    p.add_argument("--data", help="corpus text file (default: the spec's data.path)")
    p.add_argument("--seed", type=int, help="override training.seed")
    p.add_argument("--iters", type=int, help="override training.max_iters")
    p.add_argument("--threads", type=int, help="override training.threads (0 = torch default)")
    return p.parse_args()


def main():
    args = parse_args()
    try:
        spec = load_spec(args.spec)
    except SpecError as e:
        sys.exit(f"{args.spec}: {e}")
    seed = spec.seed if args.seed is None else args.seed
    max_iters = spec.max_iters if args.iters is None else args.iters
    threads = spec.threads if args.threads is None else args.threads
    data_path = args.data or spec.data_path
    if not data_path:
        sys.exit("no corpus: pass --data PATH or set data.path in the spec")
    if threads > 0:
        torch.set_num_threads(threads)
    device = ("cuda" if torch.cuda.is_available() else "cpu") if spec.device == "auto" else spec.device

    with open(data_path, encoding="utf-8") as f:
        text = f.read()
    chars = sorted(set(text))
    stoi = {ch: i for i, ch in enumerate(chars)}
    data = torch.tensor([stoi[c] for c in text], dtype=torch.long)
    n = int(spec.train_fraction * len(data))
    splits = {"train": data[:n], "val": data[n:]}

    torch.manual_seed(seed)
    model = GPTLanguageModel(spec.model, len(chars)).to(device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=spec.learning_rate, betas=spec.betas,
                                  eps=spec.adam_eps, weight_decay=spec.weight_decay)

    for iter in range(max_iters):
        # Evaluated before this iteration's step, so "Epoch 0" is the untrained model.
        if iter % spec.eval_interval == 0 or iter == max_iters - 1:
            losses = estimate_loss(model, splits, spec, device)
            print(f"Epoch {iter}: avg train loss {losses['train']:.4f} | avg val loss {losses['val']:.4f}",
                  flush=True)
        xb, yb = get_batch(splits["train"], spec.model.block_size, spec.batch_size, device)
        _, loss = model(xb, yb)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    # Sampling seed only when the spec asks for one; otherwise continue the training RNG stream,
    # as the course does. Dropout is off while sampling (eval mode).
    if spec.sample_seed is not None:
        torch.manual_seed(int(spec.sample_seed))
    model.eval()
    print(f"Sampling {spec.sample_tokens} tokens from a trained model:")
    context = torch.zeros((1, 1), dtype=torch.long, device=device)
    sampled = model.generate(context, spec.sample_tokens, spec.temperature)[0, 1:].tolist()
    print("".join(chars[i] for i in sampled), flush=True)
    print(f"wall_seconds: {time.perf_counter() - START:.3f}", file=sys.stderr)


if __name__ == "__main__":
    main()
