//! `model:`: the architecture — context length, width, depth, dropout sites, initialisation, the
//! positional scheme and the blocks (one `block` copied `n_layer` times, or a `blocks` list) — and
//! how it resolves ([`ModelSpec`] as written → [`ResolvedModel`]): defaults written out, every kind
//! checked against the sizes it will build with.

use serde::{Deserialize, Serialize};

use crate::error::SpecError;
use crate::layers::block::{BlockSpec, ResolvedBlock};
use crate::layers::init::InitScheme;
use crate::layers::position::learned::Learned;
use crate::layers::{Dims, NormKind, PositionKind, ResolvedNorm, ResolvedPosition};
use crate::validate::{require_probability, require_size};

// The `model:` section as written: sizes and sites a spec may leave out are `Option`s here.
#[derive(Debug, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ModelSpec {
    /// Longest context, in characters.
    pub block_size: i64,
    /// Width of the residual stream.
    pub n_embd: i64,
    /// Dropout probability (Srivastava et al. 2014) at every site unless a site sets its own:
    /// `attention_dropout` and `residual_dropout` default to it.
    #[serde(default)]
    pub dropout: f64,
    /// Dropout on the attention weights (which tokens a token listens to).
    #[serde(default)]
    pub attention_dropout: Option<f64>,
    /// Dropout on each sub-layer's output, before it joins the residual stream.
    #[serde(default)]
    pub residual_dropout: Option<f64>,
    /// Dropout on the summed token and position embeddings (GPT-2); 0 by default, as in the course.
    #[serde(default)]
    pub embedding_dropout: f64,
    /// Initialisation: `pytorch` (the course) or `gpt2` (N(0, 0.02), residual projections scaled
    /// by 1/√(2·n_layer)).
    #[serde(default)]
    pub init: InitScheme,
    #[serde(default = "default_position")]
    pub position: Box<dyn PositionKind>,
    /// How many copies of `block` to stack (default 1); with `blocks`, their number.
    #[serde(default)]
    pub n_layer: Option<i64>,
    /// The block every layer of the stack copies.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub block: Option<BlockSpec>,
    /// Or an explicit stack of blocks that may differ from one another, bottom first.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub blocks: Option<Vec<BlockSpec>>,
    /// A normalisation after the last block, before the language-model head.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub final_norm: Option<Box<dyn NormKind>>,
    /// Use the token embedding matrix as the language-model head's weights too (Press & Wolf
    /// 2016, arXiv 1608.05859): one `[vocab, C]` matrix reads characters in and writes them out.
    #[serde(default)]
    pub tie_embeddings: bool,
    /// A bias on the language-model head's logits, as the course's `nn.Linear` has (the
    /// default); LLaMA's and GPT-2's heads have none (`head_bias: false`), which the Hugging Face
    /// and GGUF exports need.
    #[serde(default = "yes", skip_serializing_if = "is_true")]
    pub head_bias: bool,
}

fn yes() -> bool {
    true
}

/// Written out only when it is not the default, so the specs and checkpoints from before the
/// field existed read and write as they did.
fn is_true(value: &bool) -> bool {
    *value
}

fn default_position() -> Box<dyn PositionKind> {
    Box::new(Learned {})
}

/// The architecture resolved: every dropout site's probability, the depth, and each kind with
/// its sizes worked out. What the model is built from and what is stored with a run; it
/// serialises as the `model:` section written out in full, which resolves to itself again.
#[derive(Debug, Serialize)]
pub struct ResolvedModel {
    pub block_size: i64,
    pub n_embd: i64,
    pub dropout: f64,
    pub attention_dropout: f64,
    pub residual_dropout: f64,
    pub embedding_dropout: f64,
    pub init: InitScheme,
    pub position: Box<dyn ResolvedPosition>,
    pub n_layer: i64,
    /// `block:` copied `n_layer` times, or a `blocks:` list, as the spec gave it.
    #[serde(flatten)]
    pub stack: Stack,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub final_norm: Option<Box<dyn ResolvedNorm>>,
    pub tie_embeddings: bool,
    #[serde(skip_serializing_if = "is_true")]
    pub head_bias: bool,
}

/// How the spec gave the stack: one block copied, or a list.
#[derive(Debug, Serialize)]
pub enum Stack {
    #[serde(rename = "block")]
    Repeated(ResolvedBlock),
    #[serde(rename = "blocks")]
    Listed(Vec<ResolvedBlock>),
}

impl ModelSpec {
    /// Works out every default and derived size and checks each against the others. Field names
    /// in errors are relative to the section (`block.attention.head_size`).
    pub(super) fn resolve(&self) -> std::result::Result<ResolvedModel, SpecError> {
        require_size("block_size", self.block_size)?;
        require_size("n_embd", self.n_embd)?;
        let n_layer = self.resolve_depth()?;
        require_probability("dropout", self.dropout)?;
        let attention_dropout = self.attention_dropout.unwrap_or(self.dropout);
        require_probability("attention_dropout", attention_dropout)?;
        let residual_dropout = self.residual_dropout.unwrap_or(self.dropout);
        require_probability("residual_dropout", residual_dropout)?;
        require_probability("embedding_dropout", self.embedding_dropout)?;
        // The vocabulary and the compute kind are not known yet, and no size depends on them.
        let dims = Dims {
            vocab_size: 1,
            block_size: self.block_size,
            n_embd: self.n_embd,
            n_layer,
            attention_dropout,
            residual_dropout,
            init: self.init,
            compute: tch::Kind::Float,
        };
        let position = self
            .position
            .resolve(&dims)
            .map_err(|e| e.within("position"))?;
        let resolve_block = |block: &BlockSpec, field: &str| {
            let resolved = block.resolve(&dims).map_err(|e| e.within(field))?;
            position
                .check_head_size(resolved.attention.head_size())
                .map_err(|e| e.within("position"))?;
            Ok::<_, SpecError>(resolved)
        };
        let stack = match (&self.block, &self.blocks) {
            (Some(block), _) => Stack::Repeated(resolve_block(block, "block")?),
            // `resolve_depth` has checked that there is a list.
            (None, blocks) => Stack::Listed(
                blocks
                    .iter()
                    .flatten()
                    .enumerate()
                    .map(|(i, block)| resolve_block(block, &format!("blocks.{i}")))
                    .collect::<std::result::Result<_, _>>()?,
            ),
        };
        let final_norm = match &self.final_norm {
            Some(norm) => Some(norm.resolve(&dims).map_err(|e| e.within("final_norm"))?),
            None => None,
        };
        Ok(ResolvedModel {
            block_size: self.block_size,
            n_embd: self.n_embd,
            dropout: self.dropout,
            attention_dropout,
            residual_dropout,
            embedding_dropout: self.embedding_dropout,
            init: self.init,
            position,
            n_layer,
            stack,
            final_norm,
            tie_embeddings: self.tie_embeddings,
            head_bias: self.head_bias,
        })
    }

    /// Checks that the stack is given one way, `block` × `n_layer` or a `blocks` list, and
    /// returns its depth.
    fn resolve_depth(&self) -> std::result::Result<i64, SpecError> {
        let n_layer = match (&self.block, &self.blocks) {
            (Some(_), Some(_)) => {
                return Err(SpecError::new(
                    "blocks",
                    "give either `block` (copied n_layer times) or a `blocks` list, not both",
                ))
            }
            (None, None) => {
                return Err(SpecError::new(
                    "block",
                    "is missing: give `block` (copied n_layer times) or a `blocks` list",
                ))
            }
            (Some(_), None) => self.n_layer.unwrap_or(1),
            (None, Some(blocks)) => {
                let listed = blocks.len() as i64;
                match self.n_layer {
                    Some(n_layer) if n_layer != listed => {
                        return Err(SpecError::new(
                            "n_layer",
                            format!("is {n_layer} but `blocks` lists {listed} blocks"),
                        ))
                    }
                    _ => listed,
                }
            }
        };
        require_size("n_layer", n_layer)?;
        Ok(n_layer)
    }
}

impl ResolvedModel {
    /// The blocks of the stack, bottom first.
    pub fn stack(&self) -> Vec<&ResolvedBlock> {
        match &self.stack {
            Stack::Repeated(block) => vec![block; self.n_layer as usize],
            Stack::Listed(blocks) => blocks.iter().collect(),
        }
    }

    /// The depth of the stack.
    pub fn n_layer(&self) -> i64 {
        self.n_layer
    }

    /// The sizes and settings the layers are built from, with products in `compute` (the
    /// training section's precision decides it: [`crate::spec::Spec::dims`]).
    pub fn dims(&self, vocab_size: i64, compute: tch::Kind) -> Dims {
        Dims {
            vocab_size,
            block_size: self.block_size,
            n_embd: self.n_embd,
            n_layer: self.n_layer,
            attention_dropout: self.attention_dropout,
            residual_dropout: self.residual_dropout,
            init: self.init,
            compute,
        }
    }
}
