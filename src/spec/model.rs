//! `model:`: the architecture — context length, width, depth, dropout sites, initialisation, the
//! positional scheme and the blocks (one `block` copied `n_layer` times, or a `blocks` list) — and
//! how it resolves: defaults written out, every kind checked against the sizes it will build with.

use serde::{Deserialize, Serialize};

use crate::error::SpecError;
use crate::layers::block::BlockSpec;
use crate::layers::init::InitScheme;
use crate::layers::position::learned::Learned;
use crate::layers::{Dims, NormKind, PositionKind};
use crate::validate::{require_probability, require_size};

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
}

fn default_position() -> Box<dyn PositionKind> {
    Box::new(Learned {})
}

impl ModelSpec {
    pub(super) fn resolve(&mut self) -> std::result::Result<(), SpecError> {
        require_size("block_size", self.block_size)?;
        require_size("n_embd", self.n_embd)?;
        let n_layer = self.resolve_stack()?;
        self.n_layer = Some(n_layer);
        require_probability("dropout", self.dropout)?;
        let attention_dropout = *self.attention_dropout.get_or_insert(self.dropout);
        require_probability("attention_dropout", attention_dropout)?;
        let residual_dropout = *self.residual_dropout.get_or_insert(self.dropout);
        require_probability("residual_dropout", residual_dropout)?;
        require_probability("embedding_dropout", self.embedding_dropout)?;
        // The vocabulary is not known yet; no layer validates against it.
        // Resolution checks sizes only: the vocabulary and the compute kind do not matter to it.
        let dims = self.dims(1, tch::Kind::Float);
        self.position
            .resolve(&dims)
            .map_err(|e| e.within("position"))?;
        let position = &self.position;
        let check_block = |block: &mut BlockSpec, field: &str| {
            block.resolve(&dims).map_err(|e| e.within(field))?;
            position
                .check_head_size(block.attention.head_size(&dims))
                .map_err(|e| e.within("position"))
        };
        match (&mut self.block, &mut self.blocks) {
            (Some(block), _) => check_block(block, "block")?,
            (None, Some(blocks)) => {
                for (i, block) in blocks.iter_mut().enumerate() {
                    check_block(block, &format!("blocks.{i}"))?;
                }
            }
            (None, None) => {}
        }
        if let Some(norm) = &mut self.final_norm {
            norm.resolve().map_err(|e| e.within("final_norm"))?;
        }
        Ok(())
    }

    /// Checks that the stack is given one way, `block` × `n_layer` or a `blocks` list, and
    /// returns its depth.
    fn resolve_stack(&self) -> std::result::Result<i64, SpecError> {
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

    /// The blocks of the stack, bottom first.
    pub fn stack(&self) -> Vec<&BlockSpec> {
        match (&self.blocks, &self.block) {
            (Some(blocks), _) => blocks.iter().collect(),
            (None, Some(block)) => vec![block; self.n_layer() as usize],
            (None, None) => Vec::new(),
        }
    }

    /// The depth of the stack.
    pub fn n_layer(&self) -> i64 {
        match &self.blocks {
            Some(blocks) => blocks.len() as i64,
            None => self.n_layer.unwrap_or(1),
        }
    }

    /// The sizes and settings the layers are built from (dropouts as resolved), with products in
    /// `compute` (the training section's precision decides it: [`crate::spec::Spec::dims`]).
    pub fn dims(&self, vocab_size: i64, compute: tch::Kind) -> Dims {
        Dims {
            vocab_size,
            block_size: self.block_size,
            n_embd: self.n_embd,
            n_layer: self.n_layer(),
            attention_dropout: self.attention_dropout.unwrap_or(self.dropout),
            residual_dropout: self.residual_dropout.unwrap_or(self.dropout),
            init: self.init,
            compute,
        }
    }
}
