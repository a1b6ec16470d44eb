//! What the machine can bear, checked before anything is started or allocated.
//!
//! A number a user types must not take the machine down. `threads: 100000` makes libtorch's OpenMP
//! start 100,000 threads, and until they exist every other program on the machine fails to fork (the
//! stuck process even ignores SIGTERM). A batch or context whose activations exceed the memory
//! ends in the kernel's out-of-memory killer, which may pick any process, not just ours. So both are
//! refused up front, with the number asked for and the limit:
//!
//! - [`set_threads`] caps libtorch's intra-op threads at [`THREADS_PER_CORE`] per available core
//!   (more than one per core only adds contention; a few per core is still allowed for
//!   experiments).
//! - [`MemoryEstimate`] adds up what training, evaluation or generation keeps alive at its peak:
//!   the weights with their gradients and AdamW's state, the activations autograd saves for the
//!   backward pass, the attention scores, the logits. It is a deliberately generous estimate (it
//!   assumes the attention scores are materialised even where a fused kernel avoids it), and a run
//!   is refused only when it exceeds the memory the kernel reports as available, so a run that
//!   fits is never turned away for a rounding error.
//!
//! The limits are the *machine's*, not the spec's: a spec trained with 32 threads on a large
//! machine stays valid on a laptop (its checkpoint still loads there), and only starting it with
//! more threads than the laptop can bear is refused.

use crate::error::{Error, Result};
use crate::layers::block::ResolvedBlock;
use crate::layers::Dims;
use crate::spec::{ResolvedModel, Spec};

/// The most libtorch threads allowed per available core.
pub const THREADS_PER_CORE: i64 = 4;

/// Tokens per forward pass when evaluating: big enough to amortise per-call overhead, small enough
/// that the attention weights of a large model fit comfortably in memory.
pub const EVALUATION_TOKENS: i64 = 1 << 15;

/// Bytes in one fp32 value: activations and weights are fp32 (bf16 only narrows the products).
const FLOAT_BYTES: u64 = 4;

/// The cores this process may run on (its CPU affinity), at least 1.
pub fn available_cores() -> i64 {
    std::thread::available_parallelism().map_or(1, |n| n.get() as i64)
}

/// The largest thread count [`set_threads`] accepts on this machine.
pub fn max_threads() -> i64 {
    THREADS_PER_CORE * available_cores()
}

/// Sets libtorch's intra-op thread count, `0` keeping its default (one per core). `field` names
/// where the number came from (`--threads`, `training.threads`), for the error.
pub fn set_threads(requested: i64, field: &str) -> Result<()> {
    let limit = max_threads();
    if requested < 0 || requested > limit {
        return Err(Error::Limit {
            field: field.to_string(),
            message: format!(
                "must be between 0 (libtorch's default) and {limit} ({THREADS_PER_CORE} per \
                 available core, {} here), got {requested}",
                available_cores()
            ),
        });
    }
    if requested > 0 {
        // Bounded above, so it fits an i32.
        tch::set_num_threads(requested as i32);
    }
    Ok(())
}

/// Sets the thread count a command asks for: `--threads` when given, else the spec's
/// `training.threads`; the error names whichever it was.
pub fn set_threads_from(flag: Option<i64>, spec: i64) -> Result<()> {
    match flag {
        Some(threads) => set_threads(threads, "--threads"),
        // A spec written for a larger machine: say how to run it here anyway.
        None => set_threads(spec, "training.threads").map_err(|error| match error {
            Error::Limit { field, message } => Error::Limit {
                field,
                message: format!("{message}; lower it, or override it with --threads N"),
            },
            other => other,
        }),
    }
}

/// The memory a piece of work needs at its peak, and what it is.
#[derive(Debug, Clone, PartialEq)]
pub struct MemoryEstimate {
    pub bytes: u64,
    /// What was estimated, for the error: "training (batch 64 × context 256)".
    pub what: String,
    /// What would make it fit, for the error.
    pub remedy: &'static str,
}

/// How a model's work is made smaller.
const SMALLER_MODEL: &str = "lower the batch size, the context length or the model's width";

impl MemoryEstimate {
    /// Training: weights, gradients, AdamW's two moments and its flat copy, plus a training
    /// step's saved activations, and the evaluations that run between steps.
    pub fn training(spec: &Spec, vocab_size: i64) -> Self {
        let dims = spec.dims(vocab_size);
        let (batch, block) = (spec.training.batch_size, spec.model.block_size);
        let tokens = saturating(batch, block);
        let weights = parameter_estimate(&spec.model, &dims).saturating_mul(5 * FLOAT_BYTES);
        let step = tokens.saturating_mul(training_floats_per_token(&spec.model, &dims));
        // The training log's evaluation draws `eval_iters × batch_size` window offsets up front.
        let windows = saturating(spec.training.eval_iters, batch).saturating_mul(24);
        let evaluation = Self::inference_activations(&spec.model, &dims, EVALUATION_TOKENS as u64);
        MemoryEstimate {
            bytes: weights
                .saturating_add(step.saturating_mul(FLOAT_BYTES).max(evaluation))
                .saturating_add(windows),
            what: format!("training (batch {batch} × context {block})"),
            remedy: SMALLER_MODEL,
        }
    }

    /// Scoring or generating without gradients: the weights, one forward pass's transient
    /// activations over `tokens` tokens (at least one whole context window).
    pub fn inference(model: &ResolvedModel, vocab_size: i64, tokens: u64, what: &str) -> Self {
        let dims = model.dims(vocab_size, tch::Kind::Float);
        let weights = parameter_estimate(model, &dims).saturating_mul(FLOAT_BYTES);
        MemoryEstimate {
            bytes: weights.saturating_add(Self::inference_activations(model, &dims, tokens)),
            what: what.to_string(),
            remedy: SMALLER_MODEL,
        }
    }

    /// Reading a corpus of `bytes` bytes: the text, its token ids (8 bytes per character), their
    /// copy in the dataset's tensors, and the list of windows a whole-split evaluation at stride 1
    /// walks (16 bytes per character).
    pub fn corpus(bytes: u64) -> Self {
        MemoryEstimate {
            bytes: bytes.saturating_mul(33),
            what: format!("reading a corpus of {bytes} bytes"),
            remedy: "use a smaller corpus",
        }
    }

    /// Just the weights (building a model, as `gptbuild inspect` does).
    pub fn weights(model: &ResolvedModel, vocab_size: i64) -> Self {
        let dims = model.dims(vocab_size, tch::Kind::Float);
        MemoryEstimate {
            bytes: parameter_estimate(model, &dims).saturating_mul(FLOAT_BYTES),
            what: format!(
                "the model (n_embd {}, {} blocks)",
                dims.n_embd, dims.n_layer
            ),
            remedy: SMALLER_MODEL,
        }
    }

    /// The estimate in GiB, for people.
    pub fn gib(&self) -> String {
        gib(self.bytes)
    }

    /// Bytes of the activations alive at once in a forward pass without autograd: one layer's
    /// worth, plus the logits and their log-softmax.
    fn inference_activations(model: &ResolvedModel, dims: &Dims, tokens: u64) -> u64 {
        let tokens = tokens.max(dims.block_size as u64);
        let widest_block = model
            .stack()
            .iter()
            .map(|block| {
                let (width, heads) = attention_shape(block);
                (4 * dims.n_embd as u64)
                    .saturating_add(3 * width)
                    .saturating_add(saturating(2 * heads as i64, dims.block_size))
                    .saturating_add(block.feed_forward.activation_width(dims) as u64)
            })
            .max()
            .unwrap_or(0);
        let per_token = widest_block.saturating_add(2 * dims.vocab_size as u64);
        tokens.saturating_mul(per_token).saturating_mul(FLOAT_BYTES)
    }

    /// Refuses the work when it cannot fit in the memory this machine has available. Only the CPU's
    /// memory is known here; work on a GPU is left to its allocator, which fails cleanly.
    pub fn check(&self, device: tch::Device) -> Result<()> {
        if device != tch::Device::Cpu {
            return Ok(());
        }
        match available_memory() {
            Some(available) if self.bytes > available => Err(Error::OutOfMemory {
                what: self.what.clone(),
                needed: gib(self.bytes),
                available: gib(available),
                remedy: self.remedy,
            }),
            _ => Ok(()),
        }
    }
}

/// A block's attention: the width of all its queries, and its number of query heads.
fn attention_shape(block: &ResolvedBlock) -> (u64, u64) {
    let width = block.attention.query_width() as u64;
    (width, width / block.attention.head_size().max(1) as u64)
}

/// fp32 values a training step keeps per token: the embeddings, and per block its norms, queries,
/// keys and values (and their rotated copies), the attention scores with their softmax and dropout
/// mask, the heads' output, the feed-forward's hidden activations, the residual sums; then the
/// logits, their log-softmax and gradient.
fn training_floats_per_token(model: &ResolvedModel, dims: &Dims) -> u64 {
    let c = dims.n_embd as u64;
    let blocks = model.stack().iter().fold(0u64, |sum, block| {
        let (width, heads) = attention_shape(block);
        let per_block = (8 * c)
            .saturating_add(6 * width)
            .saturating_add(saturating(3 * heads as i64, dims.block_size))
            .saturating_add(2 * block.feed_forward.activation_width(dims) as u64);
        sum.saturating_add(per_block)
    });
    (3 * c)
        .saturating_add(blocks)
        .saturating_add(3 * dims.vocab_size as u64)
}

/// An upper estimate of the parameter count, from the spec alone (before anything is built):
/// embedding and head, learned positions, and per block its query/key/value and output
/// projections, the feed-forward's matrices, their biases and the norms' gains (a test holds it
/// between the real count and 2.5 times it for every architecture).
pub fn parameter_estimate(model: &ResolvedModel, dims: &Dims) -> u64 {
    let c = dims.n_embd as u64;
    let blocks = model.stack().iter().fold(0u64, |sum, block| {
        let width = block.attention.query_width() as u64;
        let feed_forward = block.feed_forward.activation_width(dims) as u64;
        // Weights, then biases and norm gains.
        let per_block = c
            .saturating_mul(width.saturating_mul(4))
            .saturating_add(c.saturating_mul(feed_forward.saturating_mul(2)))
            .saturating_add(3 * width + feed_forward + 8 * c);
        sum.saturating_add(per_block)
    });
    let vocab = dims.vocab_size as u64;
    c.saturating_mul(2 * vocab + dims.block_size as u64)
        .saturating_add(vocab + 4 * c)
        .saturating_add(blocks)
}

/// `a · b` for sizes that are positive and bounded, saturating instead of overflowing.
fn saturating(a: i64, b: i64) -> u64 {
    (a.max(0) as u64).saturating_mul(b.max(0) as u64)
}

fn gib(bytes: u64) -> String {
    format!("{:.2} GiB", bytes as f64 / (1u64 << 30) as f64)
}

/// The memory this process can still use: the kernel's `MemAvailable`, or a cgroup's limit less
/// its usage when that is smaller; `None` where neither can be read (the check is then skipped).
pub fn available_memory() -> Option<u64> {
    let meminfo = std::fs::read_to_string("/proc/meminfo").ok();
    let system = meminfo.as_deref().and_then(|text| {
        text.lines()
            .find_map(|line| line.strip_prefix("MemAvailable:"))
            .and_then(|rest| rest.trim().strip_suffix("kB"))
            .and_then(|kib| kib.trim().parse::<u64>().ok())
            .map(|kib| kib * 1024)
    });
    let read =
        |path: &str| -> Option<u64> { std::fs::read_to_string(path).ok()?.trim().parse().ok() };
    let cgroup = read("/sys/fs/cgroup/memory.max")
        .zip(read("/sys/fs/cgroup/memory.current"))
        .map(|(limit, used)| limit.saturating_sub(used));
    match (system, cgroup) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thread_counts_beyond_the_limit_are_refused_without_starting_threads() {
        let error = set_threads(100_000, "--threads").unwrap_err().to_string();
        assert!(error.starts_with("--threads: must be between 0"), "{error}");
        assert!(error.contains(&max_threads().to_string()), "{error}");
        assert!(set_threads(-1, "training.threads").is_err());
        assert!(set_threads(i64::MAX, "training.threads").is_err());
    }

    #[test]
    fn the_available_memory_is_read_on_linux() {
        let bytes = available_memory().expect("/proc/meminfo is readable");
        assert!(bytes > 1 << 20, "{bytes}");
    }
}
