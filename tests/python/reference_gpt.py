"""An independent plain-PyTorch implementation of the gptbuild model family.

It is written from the architecture's description and the papers, not translated from the Rust
sources, so that `crosscheck.py` can compare the two: when a checkpoint written by gptbuild, loaded
here with `load_state_dict(strict=True)`, gives the same logits as gptbuild did for the same ids,
then gptbuild's tensors have the names and shapes this file expects and its forward pass computes
what the papers say. The reading of the spec is strict: an unknown key, an unknown `kind`, a
missing key or a value of the wrong type is a ValueError naming it, so a feature of gptbuild that
this reference does not know fails the cross-check instead of passing unnoticed.

`build_model(spec, vocab_size)` builds the model of `spec["model"]`; `load_checkpoint(path)` reads
a gptbuild checkpoint (a safetensors file whose metadata holds the resolved spec and the
vocabulary) into it. The model's forward maps ids `[B, T]` (int64) to logits `[B, T, V]`. Both
return the model in evaluation mode, which the cross-check uses; `model.train()` switches on
dropout at gptbuild's three sites (the embeddings, the attention weights, each sub-layer's output
before the residual add), so the same model can also be trained, as `bench/pytorch_step.py` does.
"""

import math
import re

import torch
import torch.nn.functional as F
import yaml
from safetensors import safe_open
from safetensors.torch import load_file
from torch import nn

FORMAT = "gptbuild/1"


class Yaml12Loader(yaml.SafeLoader):
    """PyYAML's SafeLoader, which follows YAML 1.1, taught YAML 1.2's floats: gptbuild writes
    `1e-5`, which YAML 1.1 reads as a string (its floats need a dot)."""


Yaml12Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(
        r"""^(?:[-+]?(?:[0-9]+\.[0-9]*|\.[0-9]+)(?:[eE][-+]?[0-9]+)?
            |[-+]?[0-9]+[eE][-+]?[0-9]+
            |[-+]?\.(?:inf|Inf|INF)
            |\.(?:nan|NaN|NAN))$""",
        re.VERBOSE,
    ),
    list("-+0123456789."),
)


# ------------------------------------------------------------------------------------------------
# Strict reading of the spec


def _fields(node, where, required=(), optional=()):
    """Checks that `node` is a mapping with every `required` key and no key outside `required` and
    `optional`; returns it."""
    if not isinstance(node, dict):
        raise ValueError(f"{where}: expected a mapping, got {node!r}")
    for key in node:
        if key not in required and key not in optional:
            raise ValueError(f"{where}: unknown key `{key}`")
    for key in required:
        if key not in node:
            raise ValueError(f"{where}: missing key `{key}`")
    return node


def _kind(node, where, known):
    """The `kind` of `node`, which must be one of `known`."""
    if not isinstance(node, dict) or "kind" not in node:
        raise ValueError(f"{where}: expected a mapping with a `kind`, got {node!r}")
    kind = node["kind"]
    if kind not in known:
        raise ValueError(f"{where}.kind: unknown kind `{kind}` "
                         f"(this reference knows {', '.join(known)})")
    return kind


def _choice(node, key, where, known):
    value = node[key]
    if value not in known:
        raise ValueError(f"{where}.{key}: unknown value `{value}` "
                         f"(this reference knows {', '.join(known)})")
    return value


def _int(node, key, where):
    value = node[key]
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{where}.{key}: expected a positive integer, got {value!r}")
    return value


def _float(node, key, where):
    value = node[key]
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"{where}.{key}: expected a number, got {value!r}")
    return float(value)


def _probability(node, key, where, default):
    """`node[key]` (or `default` when absent) as a dropout probability in [0, 1)."""
    value = node.get(key, default)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value < 1:
        raise ValueError(f"{where}.{key}: expected a probability in [0, 1), got {value!r}")
    return float(value)


def _bool(node, key, where):
    value = node[key]
    if not isinstance(value, bool):
        raise ValueError(f"{where}.{key}: expected true or false, got {value!r}")
    return value


# ------------------------------------------------------------------------------------------------
# Normalisation


class LayerNorm(nn.Module):
    """Layer normalisation (Ba, Kiros & Hinton 2016, arXiv 1607.06450): zero mean and unit variance
    over the last dimension, then a learned gain and bias."""

    def __init__(self, width, eps):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(width))
        self.bias = nn.Parameter(torch.zeros(width))
        self.eps = eps

    def forward(self, x):
        return F.layer_norm(x, self.weight.shape, self.weight, self.bias, self.eps)


class RMSNorm(nn.Module):
    """Root-mean-square normalisation (Zhang & Sennrich 2019, arXiv 1910.07467): divide by the RMS
    over the last dimension, then a learned gain; no re-centring, no bias."""

    def __init__(self, width, eps):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(width))
        self.eps = eps

    def forward(self, x):
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps) * self.weight


def build_norm(node, where, width):
    kind = _kind(node, where, ("layernorm", "rmsnorm"))
    _fields(node, where, required=("kind", "eps"))
    norm = LayerNorm if kind == "layernorm" else RMSNorm
    return norm(width, _float(node, "eps", where))


# ------------------------------------------------------------------------------------------------
# Positions


class LearnedPosition(nn.Module):
    """Learned absolute positions (GPT, Radford et al. 2018): one trained vector per position,
    added to the token embeddings."""

    def __init__(self, block_size, n_embd):
        super().__init__()
        # Initialised as PyTorch initialises an nn.Embedding: N(0, 1).
        self.weight = nn.Parameter(torch.randn(block_size, n_embd))

    def forward(self, t):
        return self.weight[:t]


class SinusoidalPosition(nn.Module):
    """Fixed sinusoidal positions (Vaswani et al. 2017, arXiv 1706.03762, §3.5):
    PE[p, 2i] = sin(p / base^(2i/C)), PE[p, 2i+1] = cos(p / base^(2i/C)), added."""

    def __init__(self, n_embd, base):
        super().__init__()
        self.n_embd = n_embd
        self.base = base

    def forward(self, t):
        c = self.n_embd
        position = torch.arange(t, dtype=torch.float64)[:, None]
        even_channel = torch.arange(0, c, 2, dtype=torch.float64)
        angle = position / self.base ** (even_channel / c)
        table = torch.empty(t, c, dtype=torch.float64)
        table[:, 0::2] = torch.sin(angle)
        table[:, 1::2] = torch.cos(angle[:, : c // 2])
        return table.float()


class RotaryEmbedding(nn.Module):
    """Rotary position embedding (RoFormer, Su et al. 2021, arXiv 2104.09864), "rotate-half"
    pairing: channel i of a head is rotated with channel i + hs/2 by the angle
    p · theta^(-2i/hs), so that query-key products depend only on relative position."""

    def __init__(self, head_size, theta):
        super().__init__()
        self.head_size = head_size
        self.theta = theta

    def forward(self, x):
        """`x [.., T, hs]` with position p at index p of dimension -2."""
        half = self.head_size // 2
        pair = torch.arange(half, dtype=torch.float64)
        inverse_frequency = self.theta ** (-2 * pair / self.head_size)
        angle = torch.arange(x.shape[-2], dtype=torch.float64)[:, None] * inverse_frequency
        cos, sin = torch.cos(angle).to(x.dtype), torch.sin(angle).to(x.dtype)
        x1, x2 = x[..., :half], x[..., half:]
        return torch.cat((x1 * cos - x2 * sin, x2 * cos + x1 * sin), dim=-1)


def alibi_slopes(n_head):
    """ALiBi's slope per head, as the paper's reference code `get_slopes` computes them."""
    if math.log2(n_head).is_integer():
        return [2 ** (-8 * (h + 1) / n_head) for h in range(n_head)]
    power = 2 ** math.floor(math.log2(n_head))
    return alibi_slopes(power) + alibi_slopes(2 * power)[0::2][: n_head - power]


class AlibiBias(nn.Module):
    """Attention with linear biases (ALiBi, Press, Smith & Lewis 2021, arXiv 2108.12409): head h's
    score of query i for key j is lowered by m_h · (i - j), a fixed slope per head."""

    def __init__(self, n_head):
        super().__init__()
        self.slopes = alibi_slopes(n_head)

    def forward(self, t):
        """The `[H, T, T]` bias (its entries above the diagonal are masked out afterwards)."""
        position = torch.arange(t, dtype=torch.float32)
        distance = position[:, None] - position[None, :]
        return -torch.tensor(self.slopes, dtype=torch.float32)[:, None, None] * distance


def build_additive_position(node, block_size, n_embd):
    """The module whose output is added to the token embeddings, or None for `none`, `rope` and
    `alibi` (the last two act inside attention)."""
    where = "model.position"
    kind = _kind(node, where, ("learned", "sinusoidal", "none", "rope", "alibi"))
    if kind == "learned":
        _fields(node, where, required=("kind",))
        return LearnedPosition(block_size, n_embd)
    if kind == "sinusoidal":
        _fields(node, where, required=("kind", "base"))
        return SinusoidalPosition(n_embd, _float(node, "base", where))
    if kind == "rope":
        _fields(node, where, required=("kind", "theta"))
        _float(node, "theta", where)
    else:
        _fields(node, where, required=("kind",))
    return None


# ------------------------------------------------------------------------------------------------
# Attention


class CausalSelfAttention(nn.Module):
    """Causal multi-head self-attention (Vaswani et al. 2017, arXiv 1706.03762), with grouped
    key/value heads (GQA, Ainslie et al. 2023, arXiv 2305.13245) and optional query-key
    normalisation: `l2` with a learned per-head gain (Henry et al. 2020, arXiv 2010.04245) or
    `rmsnorm` per head (as in Dehghani et al. 2023, arXiv 2302.05442). In training mode, dropout
    on the attention weights and, when there is an output projection, on its output."""

    def __init__(self, n_embd, n_head, n_kv_head, head_size, projection, qkv_bias, projection_bias,
                 qk_norm, rope, alibi, attention_dropout, residual_dropout):
        super().__init__()
        self.n_head, self.n_kv_head, self.head_size = n_head, n_kv_head, head_size
        self.qkv = nn.Linear(n_embd, (n_head + 2 * n_kv_head) * head_size, bias=qkv_bias)
        self.proj = (nn.Linear(n_head * head_size, n_embd, bias=projection_bias)
                     if projection else None)
        self.qk_norm = qk_norm
        if qk_norm == "rmsnorm":
            self.q_norm = RMSNorm(head_size, 1e-6)
            self.k_norm = RMSNorm(head_size, 1e-6)
        elif qk_norm == "l2":
            self.qk_gain = nn.Parameter(torch.ones(n_head))
        self.rope = rope
        self.alibi = alibi
        self.attention_dropout = attention_dropout
        # Without a projection the heads' output joins the residual stream as it is, undropped.
        self.residual_dropout = nn.Dropout(residual_dropout) if projection else None

    def forward(self, x):
        b, t, _ = x.shape
        h, h_kv, hs = self.n_head, self.n_kv_head, self.head_size
        q, k, v = self.qkv(x).split([h * hs, h_kv * hs, h_kv * hs], dim=-1)
        q = q.view(b, t, h, hs).transpose(1, 2)
        k = k.view(b, t, h_kv, hs).transpose(1, 2)
        v = v.view(b, t, h_kv, hs).transpose(1, 2)
        scale = None  # scaled_dot_product_attention's default: 1/sqrt(hs)
        if self.qk_norm == "rmsnorm":
            q, k = self.q_norm(q), self.k_norm(k)
        elif self.qk_norm == "l2":
            q = q / q.norm(dim=-1, keepdim=True).clamp_min(1e-12) * self.qk_gain[:, None, None]
            k = k / k.norm(dim=-1, keepdim=True).clamp_min(1e-12)
            scale = 1.0  # the learned gain sets the temperature
        if self.rope is not None:
            q, k = self.rope(q), self.rope(k)
        # softmax(q kᵀ · scale + mask) v over all heads at once, with dropout on the weights.
        # enable_gqa: query head i uses key/value head i // (h / h_kv), as
        # k.repeat_interleave(h // h_kv, dim=1) would arrange them.
        attend = dict(dropout_p=self.attention_dropout if self.training else 0.0, scale=scale,
                      enable_gqa=h_kv < h)
        if self.alibi is None:
            out = F.scaled_dot_product_attention(q, k, v, is_causal=True, **attend)
        else:
            # A float mask is added to the scores: the bias where a query may look, -inf above
            # the diagonal (the future).
            future = torch.ones(t, t, dtype=torch.bool).triu(diagonal=1)
            mask = self.alibi(t).masked_fill(future, float("-inf"))
            out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, **attend)
        out = out.transpose(1, 2).reshape(b, t, h * hs)
        return self.residual_dropout(self.proj(out)) if self.proj is not None else out


def build_attention(node, where, n_embd, position, dropout):
    kind = _kind(node, where, ("head", "multi_head"))
    if kind == "head":
        _fields(node, where, required=("kind", "head_size"))
        n_head, n_kv_head = 1, 1
        head_size = _int(node, "head_size", where)
        projection, qkv_bias, projection_bias, qk_norm = False, False, False, "none"
    else:
        _fields(node, where,
                required=("kind", "n_head", "n_kv_head", "head_size", "projection", "qkv_bias",
                          "projection_bias", "qk_norm"),
                optional=("fused",))
        n_head = _int(node, "n_head", where)
        n_kv_head = _int(node, "n_kv_head", where)
        head_size = _int(node, "head_size", where)
        projection = _bool(node, "projection", where)
        qkv_bias = _bool(node, "qkv_bias", where)
        projection_bias = _bool(node, "projection_bias", where)
        qk_norm = _choice(node, "qk_norm", where, ("none", "l2", "rmsnorm"))
        if n_head % n_kv_head:
            raise ValueError(f"{where}: n_head ({n_head}) is not a multiple of "
                             f"n_kv_head ({n_kv_head})")
    if not projection and n_head * head_size != n_embd:
        raise ValueError(f"{where}: outputs {n_head * head_size} channels without a projection, "
                         f"but n_embd is {n_embd}")
    rope = None
    if position["kind"] == "rope":
        if head_size % 2:
            raise ValueError(f"{where}.head_size: rope needs an even head size, got {head_size}")
        rope = RotaryEmbedding(head_size, float(position["theta"]))
    alibi = AlibiBias(n_head) if position["kind"] == "alibi" else None
    return CausalSelfAttention(n_embd, n_head, n_kv_head, head_size, projection, qkv_bias,
                               projection_bias, qk_norm, rope, alibi, dropout["attention"],
                               dropout["residual"])


# ------------------------------------------------------------------------------------------------
# Feed-forward


class LinearReLU(nn.Module):
    """One Linear(C, C) followed by a ReLU: the smallest per-token computation (the "computation"
    step of Karpathy's "Let's build GPT" lecture, before the 4C MLP). No dropout, as in the
    lecture at that step."""

    def __init__(self, n_embd):
        super().__init__()
        self.linear = nn.Linear(n_embd, n_embd)

    def forward(self, x):
        return F.relu(self.linear(x))


class MLP(nn.Module):
    """The position-wise feed-forward network (Vaswani et al. 2017, arXiv 1706.03762, §3.3):
    expand, ReLU or GELU (Hendrycks & Gimpel 2016, arXiv 1606.08415: exact, or GPT-2's tanh form),
    contract, dropout (training mode only)."""

    def __init__(self, n_embd, hidden_size, activation, dropout):
        super().__init__()
        self.expand = nn.Linear(n_embd, hidden_size)
        self.contract = nn.Linear(hidden_size, n_embd)
        self.activation = {
            "relu": F.relu,
            "gelu": F.gelu,
            # GPT-2's tanh approximation of GELU (Hendrycks & Gimpel 2016, §2).
            "gelu_tanh": lambda x: F.gelu(x, approximate="tanh"),
        }[activation]
        self.dropout = nn.Dropout(dropout)

    def forward(self, x):
        return self.dropout(self.contract(self.activation(self.expand(x))))


class SwiGLU(nn.Module):
    """SwiGLU (Shazeer 2020, "GLU Variants Improve Transformer", arXiv 2002.05202):
    down(SiLU(gate(x)) ⊙ up(x)), no biases; then dropout (training mode only)."""

    def __init__(self, n_embd, hidden_size, dropout):
        super().__init__()
        self.gate = nn.Linear(n_embd, hidden_size, bias=False)
        self.up = nn.Linear(n_embd, hidden_size, bias=False)
        self.down = nn.Linear(hidden_size, n_embd, bias=False)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x):
        return self.dropout(self.down(F.silu(self.gate(x)) * self.up(x)))


def build_feed_forward(node, where, n_embd, dropout):
    """The feed-forward module, or None for `kind: none` (no second sub-layer)."""
    kind = _kind(node, where, ("none", "linear", "mlp", "swiglu"))
    if kind == "mlp":
        _fields(node, where, required=("kind", "hidden_size", "activation"))
        return MLP(n_embd, _int(node, "hidden_size", where),
                   _choice(node, "activation", where, ("relu", "gelu", "gelu_tanh")), dropout["residual"])
    if kind == "swiglu":
        _fields(node, where, required=("kind", "hidden_size"))
        return SwiGLU(n_embd, _int(node, "hidden_size", where), dropout["residual"])
    _fields(node, where, required=("kind",))
    return LinearReLU(n_embd) if kind == "linear" else None


# ------------------------------------------------------------------------------------------------
# Block and model


class Block(nn.Module):
    """A decoder block: attention, then feed-forward, each optionally in a residual connection (He
    et al. 2015, arXiv 1512.03385) and normalised before the sub-layer (pre-LN, Xiong et al. 2020,
    arXiv 2002.04745) or after the residual add (post-LN, the original Transformer)."""

    def __init__(self, node, where, n_embd, position, dropout):
        super().__init__()
        _fields(node, where, required=("attention", "feed_forward", "residual", "norm_placement"),
                optional=("norm",))
        self.residual = _bool(node, "residual", where)
        self.placement = _choice(node, "norm_placement", where, ("none", "pre", "post"))
        if (self.placement == "none") != ("norm" not in node):
            raise ValueError(f"{where}: `norm` must be given exactly when norm_placement is pre or "
                             f"post (norm_placement is {self.placement})")
        normalised = self.placement != "none"
        def norm():
            return build_norm(node["norm"], f"{where}.norm", n_embd) if normalised else None

        self.ln1 = norm()
        self.attn = build_attention(node["attention"], f"{where}.attention", n_embd, position,
                                    dropout)
        self.ffwd = build_feed_forward(node["feed_forward"], f"{where}.feed_forward", n_embd,
                                       dropout)
        self.ln2 = norm() if self.ffwd is not None else None

    def _sublayer(self, x, f, norm):
        def add(y):
            return x + y if self.residual else y

        if self.placement == "pre":
            return add(f(norm(x)))
        if self.placement == "post":
            return norm(add(f(x)))
        return add(f(x))

    def forward(self, x):
        x = self._sublayer(x, self.attn, self.ln1)
        if self.ffwd is not None:
            x = self._sublayer(x, self.ffwd, self.ln2)
        return x


class LanguageModelHead(nn.Module):
    """Logits from the residual stream, `x Wᵀ + b`; with tied embeddings (Press & Wolf 2016,
    arXiv 1608.05859) W is the token embedding matrix and only the bias is the head's own; with
    `head_bias: false` (LLaMA's and GPT-2's heads) there is no b."""

    def __init__(self, n_embd, vocab_size, tied, bias):
        super().__init__()
        # Initialised as PyTorch initialises an nn.Linear(n_embd, vocab_size): U(-1/√C, 1/√C)
        # (which is what kaiming_uniform_ with a = √5 gives for the weight).
        bound = n_embd ** -0.5
        self.weight = (None if tied else
                       nn.Parameter(torch.empty(vocab_size, n_embd).uniform_(-bound, bound)))
        self.bias = (nn.Parameter(torch.empty(vocab_size).uniform_(-bound, bound)) if bias
                     else None)

    def forward(self, x, embedding_weight):
        weight = embedding_weight if self.weight is None else self.weight
        return F.linear(x, weight, self.bias)


class GPT(nn.Module):
    """A decoder-only transformer language model (GPT, Radford et al. 2018; GPT-2, 2019): token
    embeddings, positions (then dropout, training mode only), a stack of blocks, an optional final
    norm, the language-model head.

    Dropout (Srivastava et al. 2014) probabilities come from the model section as gptbuild
    resolves them: `attention_dropout` and `residual_dropout` default to `dropout` (itself 0 by
    default), `embedding_dropout` to 0."""

    def __init__(self, model, vocab_size):
        super().__init__()
        where = "model"
        _fields(model, where,
                required=("block_size", "n_embd", "position", "n_layer", "tie_embeddings"),
                optional=("block", "blocks", "final_norm", "init", "dropout", "attention_dropout",
                          "residual_dropout", "embedding_dropout", "head_bias"))
        self.block_size = _int(model, "block_size", where)
        n_embd = _int(model, "n_embd", where)
        n_layer = _int(model, "n_layer", where)
        if ("block" in model) == ("blocks" in model):
            raise ValueError(f"{where}: give exactly one of `block` and `blocks`")
        if "block" in model:
            block_specs = [(model["block"], f"{where}.block")] * n_layer
        else:
            if not isinstance(model["blocks"], list) or len(model["blocks"]) != n_layer:
                raise ValueError(f"{where}.blocks: expected a list of n_layer ({n_layer}) blocks")
            block_specs = [(node, f"{where}.blocks[{i}]") for i, node in enumerate(model["blocks"])]
        position = model["position"]
        default_dropout = _probability(model, "dropout", where, 0.0)
        dropout = {site: _probability(model, f"{site}_dropout", where, default_dropout)
                   for site in ("attention", "residual")}

        self.token_embedding = nn.Embedding(vocab_size, n_embd)
        self.position = build_additive_position(position, self.block_size, n_embd)
        self.embedding_dropout = nn.Dropout(_probability(model, "embedding_dropout", where, 0.0))
        self.blocks = nn.ModuleList(Block(node, block_where, n_embd, position, dropout)
                                    for node, block_where in block_specs)
        final_norm = model.get("final_norm")
        self.final_norm = (None if final_norm is None
                           else build_norm(final_norm, f"{where}.final_norm", n_embd))
        head_bias = _bool(model, "head_bias", where) if "head_bias" in model else True
        self.lm_head = LanguageModelHead(n_embd, vocab_size, _bool(model, "tie_embeddings", where),
                                         head_bias)

    def forward(self, ids):
        t = ids.shape[1]
        if t > self.block_size:
            raise ValueError(f"{t} positions, but block_size is {self.block_size}")
        x = self.token_embedding(ids)
        if self.position is not None:
            x = x + self.position(t)
        x = self.embedding_dropout(x)
        for block in self.blocks:
            x = block(x)
        if self.final_norm is not None:
            x = self.final_norm(x)
        return self.lm_head(x, self.token_embedding.weight)


def build_model(spec, vocab_size):
    """The model of `spec["model"]` (a resolved gptbuild spec) for `vocab_size` tokens, in
    evaluation mode (call `.train()` for dropout), with PyTorch's default initialisation (the
    course's: what nn.Linear, nn.Embedding and the norms start from, whatever the spec's `init`)
    until a state dict is loaded."""
    if not isinstance(spec, dict) or "model" not in spec:
        raise ValueError("spec: missing key `model`")
    return GPT(spec["model"], vocab_size).eval()


def load_checkpoint(path):
    """Reads a gptbuild checkpoint: returns `(model, spec, vocab)`, the model in evaluation mode
    with every tensor of the file loaded (strictly: no tensor missing, none left over)."""
    with safe_open(str(path), framework="pt") as f:
        metadata = f.metadata() or {}
    if metadata.get("format") != FORMAT:
        raise ValueError(f"{path}: not a gptbuild checkpoint (metadata format is "
                         f"{metadata.get('format')!r}, expected {FORMAT!r})")
    for key in ("spec", "vocab"):
        if key not in metadata:
            raise ValueError(f"{path}: metadata lacks `{key}`")
    spec = yaml.load(metadata["spec"], Loader=Yaml12Loader)
    vocab = metadata["vocab"]
    model = build_model(spec, len(vocab))
    model.load_state_dict(load_file(str(path)), strict=True)
    return model, spec, vocab
