//! Which published model family a spec's model is, in that family's own terms — or the first
//! field in the way. Two families map exactly onto a gptbuild block stack:
//!
//! | family | positions | norm | attention | feed-forward | head |
//! |---|---|---|---|---|---|
//! | Llama (`LlamaForCausalLM`) | RoPE, rotate-half | RMSNorm, pre | grouped KV heads, q/k/v/o biases all or none | SwiGLU, no biases | no bias, tied or not |
//! | GPT-2 (`GPT2LMHeadModel`) | learned | LayerNorm, pre | one KV head per head, biases | MLP with biases: ReLU, GELU or GELU-tanh | no bias, tied or not |
//!
//! Both read a final norm of the blocks' kind and add each sub-layer to the residual stream. The
//! spec is read in its resolved, written-out form (what `gptbuild validate` prints), so every
//! size is stated and a kind of one's own simply maps onto no family.

use crate::spec::Spec;

/// A published model family.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Family {
    /// Meta's LLaMA (Touvron et al. 2023, arXiv 2302.13971), as transformers' `LlamaForCausalLM`.
    Llama,
    /// OpenAI's GPT-2 (Radford et al. 2019), as transformers' `GPT2LMHeadModel`.
    Gpt2,
}

impl Family {
    /// The transformers class (`architectures` in `config.json`).
    pub fn class(self) -> &'static str {
        match self {
            Family::Llama => "LlamaForCausalLM",
            Family::Gpt2 => "GPT2LMHeadModel",
        }
    }

    /// `model_type` in `config.json`.
    pub fn model_type(self) -> &'static str {
        match self {
            Family::Llama => "llama",
            Family::Gpt2 => "gpt2",
        }
    }
}

/// A model in the terms a family's configuration states it.
#[derive(Debug, Clone, PartialEq)]
pub struct Architecture {
    pub family: Family,
    pub vocab_size: i64,
    /// Context length (`max_position_embeddings`, `n_positions`).
    pub block_size: i64,
    pub n_embd: i64,
    pub n_layer: i64,
    pub n_head: i64,
    pub n_kv_head: i64,
    pub head_size: i64,
    /// The feed-forward's hidden width (`intermediate_size`, `n_inner`).
    pub hidden_size: i64,
    /// Every norm's epsilon (the blocks' and the final one agree).
    pub norm_eps: f64,
    /// RoPE's base (Llama).
    pub rope_theta: f64,
    /// The MLP's non-linearity as the spec names it (GPT-2): `relu`, `gelu` or `gelu_tanh`.
    pub activation: String,
    /// Biases on the attention's projections (GPT-2 always; Llama's `attention_bias`).
    pub attention_bias: bool,
    pub tie_embeddings: bool,
    pub attention_dropout: f64,
    pub residual_dropout: f64,
    pub embedding_dropout: f64,
}

/// Why a model maps onto no family: the first field in the way, and what it would need.
#[derive(Debug, Clone, PartialEq)]
pub struct Unmappable {
    /// Relative to the spec (`model.head_bias`).
    pub field: String,
    pub needs: String,
}

impl std::fmt::Display for Unmappable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.field, self.needs)
    }
}

fn unmappable(field: &str, needs: impl Into<String>) -> Unmappable {
    Unmappable {
        field: format!("model.{field}"),
        needs: needs.into(),
    }
}

/// The family `spec`'s model belongs to, with a vocabulary of `vocab_size` tokens.
pub fn of_spec(spec: &Spec, vocab_size: i64) -> Result<Architecture, Unmappable> {
    let model = serde_json::to_value(&spec.model)
        .map_err(|e| unmappable("", format!("cannot be read back ({e})")))?;
    let at = |path: &str| path.split('.').fold(&model, |value, key| &value[key]);
    let text = |path: &str| at(path).as_str().unwrap_or("").to_string();
    let int = |path: &str| at(path).as_i64().unwrap_or(0);
    let number = |path: &str| at(path).as_f64().unwrap_or(0.0);
    let flag = |path: &str| at(path).as_bool().unwrap_or(false);

    let family = match text("position.kind").as_str() {
        "rope" => Family::Llama,
        "learned" => Family::Gpt2,
        other => {
            return Err(unmappable(
                "position",
                format!(
                    "`kind: {other}` maps onto no family: Llama rotates (`kind: rope`), GPT-2 \
                     learns positions (`kind: learned`)"
                ),
            ))
        }
    };
    let (norm, feed_forward) = match family {
        Family::Llama => ("rmsnorm", "swiglu"),
        Family::Gpt2 => ("layernorm", "mlp"),
    };
    let name = match family {
        Family::Llama => "Llama",
        Family::Gpt2 => "GPT-2",
    };
    if at("head_bias").as_bool() != Some(false) {
        return Err(unmappable(
            "head_bias",
            "the Llama and GPT-2 heads have no bias; train with head_bias: false",
        ));
    }
    if at("blocks").is_array() {
        return Err(unmappable(
            "blocks",
            "the families repeat one block: write `block:` with `n_layer`",
        ));
    }
    if !flag("block.residual") {
        return Err(unmappable(
            "block.residual",
            "the families add each sub-layer to the residual stream: residual: true",
        ));
    }
    if text("block.norm_placement") != "pre" || at("block.norm").is_null() {
        return Err(unmappable(
            "block.norm_placement",
            "the families normalise before each sub-layer: a block norm with norm_placement: pre",
        ));
    }
    if text("block.norm.kind") != norm {
        return Err(unmappable(
            "block.norm",
            format!("{name} with these positions normalises with `kind: {norm}`"),
        ));
    }
    if text("final_norm.kind") != norm || number("final_norm.eps") != number("block.norm.eps") {
        return Err(unmappable(
            "final_norm",
            format!("{name} ends with the blocks' norm: final_norm: {{kind: {norm}}}, same eps"),
        ));
    }
    if text("block.attention.kind") != "multi_head"
        || !flag("block.attention.projection")
        || text("block.attention.qk_norm") != "none"
    {
        return Err(unmappable(
            "block.attention",
            "the families use `kind: multi_head` with projection: true and qk_norm: none",
        ));
    }
    if text("block.feed_forward.kind") != feed_forward {
        return Err(unmappable(
            "block.feed_forward",
            format!("{name} with these positions has `kind: {feed_forward}`"),
        ));
    }
    let n_embd = int("n_embd");
    let n_head = int("block.attention.n_head");
    let n_kv_head = int("block.attention.n_kv_head");
    let head_size = int("block.attention.head_size");
    let qkv_bias = flag("block.attention.qkv_bias");
    let projection_bias = flag("block.attention.projection_bias");
    let activation = text("block.feed_forward.activation");
    match family {
        Family::Llama if qkv_bias != projection_bias => {
            return Err(unmappable(
                "block.attention.projection_bias",
                "Llama's attention_bias puts biases on q, k, v and the output projection alike: \
                 make qkv_bias and projection_bias equal",
            ))
        }
        Family::Gpt2 if n_kv_head != n_head => {
            return Err(unmappable(
                "block.attention.n_kv_head",
                "GPT-2 has one key/value head per query head: n_kv_head = n_head",
            ))
        }
        Family::Gpt2 if n_head * head_size != n_embd => {
            return Err(unmappable(
                "block.attention.head_size",
                format!(
                    "GPT-2's heads split the width: head_size = n_embd / n_head = {}",
                    n_embd / n_head.max(1)
                ),
            ))
        }
        Family::Gpt2 if !(qkv_bias && projection_bias) => {
            return Err(unmappable(
                "block.attention.qkv_bias",
                "GPT-2's attention has biases: qkv_bias: true and projection_bias: true",
            ))
        }
        _ => {}
    }
    Ok(Architecture {
        family,
        vocab_size,
        block_size: int("block_size"),
        n_embd,
        n_layer: int("n_layer"),
        n_head,
        n_kv_head,
        head_size,
        hidden_size: int("block.feed_forward.hidden_size"),
        norm_eps: number("block.norm.eps"),
        rope_theta: number("position.theta"),
        activation: if family == Family::Gpt2 {
            activation
        } else {
            String::new()
        },
        attention_bias: qkv_bias,
        tie_embeddings: flag("tie_embeddings"),
        attention_dropout: number("attention_dropout"),
        residual_dropout: number("residual_dropout"),
        embedding_dropout: number("embedding_dropout"),
    })
}

impl Architecture {
    /// The `model:` section of a spec that builds exactly this model (YAML, flow style).
    pub fn model_yaml(&self) -> String {
        let (position, norm, feed_forward) = match self.family {
            Family::Llama => (
                format!("{{kind: rope, theta: {:?}}}", self.rope_theta),
                "rmsnorm",
                format!("{{kind: swiglu, hidden_size: {}}}", self.hidden_size),
            ),
            Family::Gpt2 => (
                "{kind: learned}".to_string(),
                "layernorm",
                format!(
                    "{{kind: mlp, hidden_size: {}, activation: {}}}",
                    self.hidden_size, self.activation
                ),
            ),
        };
        let norm = format!("{{kind: {norm}, eps: {:e}}}", self.norm_eps);
        format!(
            "model:\n  block_size: {}\n  n_embd: {}\n  attention_dropout: {:?}\n  \
             residual_dropout: {:?}\n  embedding_dropout: {:?}\n  init: gpt2\n  position: {position}\n  \
             n_layer: {}\n  block:\n    attention: {{kind: multi_head, n_head: {}, n_kv_head: {}, \
             head_size: {}, projection: true, qkv_bias: {}, projection_bias: {}, fused: true}}\n    \
             feed_forward: {feed_forward}\n    residual: true\n    norm: {norm}\n    \
             norm_placement: pre\n  final_norm: {norm}\n  tie_embeddings: {}\n  head_bias: false\n",
            self.block_size,
            self.n_embd,
            self.attention_dropout,
            self.residual_dropout,
            self.embedding_dropout,
            self.n_layer,
            self.n_head,
            self.n_kv_head,
            self.head_size,
            self.attention_bias,
            self.attention_bias,
            self.tie_embeddings,
        )
    }
}

/// How one of our tensors is stored in a family's checkpoint.
#[derive(Debug, Clone, PartialEq)]
pub enum Stored {
    /// Under another name, as it is.
    Renamed(String),
    /// Transposed: GPT-2's `Conv1D` keeps its weight `[in, out]` where a linear layer keeps `[out, in]`.
    Transposed(String),
    /// Split along the first dimension into the named parts of these row counts: our one `qkv`
    /// matrix is Llama's `q_proj`, `k_proj`, `v_proj`.
    Split(Vec<(String, i64)>),
}

/// Every tensor of a model of `arch` by our name, and how the family stores it.
pub fn tensor_layout(arch: &Architecture) -> Vec<(String, Stored)> {
    let mut layout = Vec::new();
    let renamed = |ours: String, theirs: String| (ours, Stored::Renamed(theirs));
    match arch.family {
        Family::Llama => {
            layout.push(renamed(
                "token_embedding.weight".into(),
                "model.embed_tokens.weight".into(),
            ));
            let (q, kv) = (
                arch.n_head * arch.head_size,
                arch.n_kv_head * arch.head_size,
            );
            for i in 0..arch.n_layer {
                let (ours, theirs) = (format!("blocks.{i}"), format!("model.layers.{i}"));
                let mut params = vec!["weight"];
                if arch.attention_bias {
                    params.push("bias");
                }
                for param in &params {
                    layout.push((
                        format!("{ours}.attn.qkv.{param}"),
                        Stored::Split(vec![
                            (format!("{theirs}.self_attn.q_proj.{param}"), q),
                            (format!("{theirs}.self_attn.k_proj.{param}"), kv),
                            (format!("{theirs}.self_attn.v_proj.{param}"), kv),
                        ]),
                    ));
                    layout.push(renamed(
                        format!("{ours}.attn.proj.{param}"),
                        format!("{theirs}.self_attn.o_proj.{param}"),
                    ));
                }
                for (mine, hers) in [
                    ("ln1", "input_layernorm"),
                    ("ln2", "post_attention_layernorm"),
                ] {
                    layout.push(renamed(
                        format!("{ours}.{mine}.weight"),
                        format!("{theirs}.{hers}.weight"),
                    ));
                }
                for projection in ["gate", "up", "down"] {
                    layout.push(renamed(
                        format!("{ours}.ffwd.{projection}.weight"),
                        format!("{theirs}.mlp.{projection}_proj.weight"),
                    ));
                }
            }
            layout.push(renamed(
                "final_norm.weight".into(),
                "model.norm.weight".into(),
            ));
        }
        Family::Gpt2 => {
            layout.push(renamed(
                "token_embedding.weight".into(),
                "transformer.wte.weight".into(),
            ));
            layout.push(renamed(
                "position.weight".into(),
                "transformer.wpe.weight".into(),
            ));
            for i in 0..arch.n_layer {
                let (ours, theirs) = (format!("blocks.{i}"), format!("transformer.h.{i}"));
                for (mine, hers) in [
                    ("attn.qkv", "attn.c_attn"),
                    ("attn.proj", "attn.c_proj"),
                    ("ffwd.expand", "mlp.c_fc"),
                    ("ffwd.contract", "mlp.c_proj"),
                ] {
                    layout.push((
                        format!("{ours}.{mine}.weight"),
                        Stored::Transposed(format!("{theirs}.{hers}.weight")),
                    ));
                    layout.push(renamed(
                        format!("{ours}.{mine}.bias"),
                        format!("{theirs}.{hers}.bias"),
                    ));
                }
                for (mine, hers) in [("ln1", "ln_1"), ("ln2", "ln_2")] {
                    for param in ["weight", "bias"] {
                        layout.push(renamed(
                            format!("{ours}.{mine}.{param}"),
                            format!("{theirs}.{hers}.{param}"),
                        ));
                    }
                }
            }
            for param in ["weight", "bias"] {
                layout.push(renamed(
                    format!("final_norm.{param}"),
                    format!("transformer.ln_f.{param}"),
                ));
            }
        }
    }
    if !arch.tie_embeddings {
        layout.push(renamed("lm_head.weight".into(), "lm_head.weight".into()));
    }
    layout
}
