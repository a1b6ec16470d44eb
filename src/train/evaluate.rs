//! Scoring a model on the corpus: the mean next-character loss over windows of the text.
//!
//! Training estimates the loss from `eval_iters` random batches, which is cheap but noisy: with
//! 100 batches of 12 windows two evaluations of the same model differ by about ±0.01, and the best
//! of a run's evaluations is biased low because it is a minimum over noisy numbers. `gptbuild
//! evaluate` scores a checkpoint on *every* character of a split instead, so a number can be
//! compared with another to the third decimal.
//!
//! A [`WindowPlan`] walks the split with windows of `block_size` characters, `stride` apart; each
//! character after the first is scored exactly once, by the first window that predicts it:
//! - `stride == block_size` (the default) cuts the split into back-to-back windows. Characters are
//!   predicted from 0 to `block_size - 1` characters of context, the same mixture the random
//!   batches of training see, so the number is what the training log estimates.
//! - a smaller stride scores each character (after the first window) with at least
//!   `block_size - stride` characters of context; `stride 1` gives every prediction the full
//!   context, the model's best case, at `block_size` times the cost.

use tch::{Kind, Reduction, Tensor};

use crate::data::{Dataset, Split};
use crate::model::Gpt;
use crate::resources::EVALUATION_TOKENS;

/// `cross_entropy`'s marker for a target to leave out of the sum.
const IGNORED_TARGET: i64 = -100;

/// One window of the text: the characters `offset .. offset + block_size` predict the next ones;
/// only predictions at positions `scored_from ..` count (the earlier ones were scored before).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    pub offset: i64,
    pub scored_from: i64,
}

impl Window {
    /// A window whose every prediction counts.
    pub fn whole(offset: i64) -> Self {
        Window {
            offset,
            scored_from: 0,
        }
    }
}

/// The windows that score every character of a split (but the first, which nothing predicts)
/// exactly once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WindowPlan {
    pub windows: Vec<Window>,
    pub block_size: i64,
    pub stride: i64,
}

impl WindowPlan {
    /// Windows `stride` apart over a split of `len` tokens; the last one is moved back to end at
    /// the split's end. Needs `1 <= stride <= block_size < len` (checked by the caller).
    pub fn new(len: i64, block_size: i64, stride: i64) -> Self {
        assert!(
            (1..=block_size).contains(&stride) && block_size < len,
            "window plan: stride {stride}, block {block_size}, length {len}"
        );
        // A window at `offset` predicts targets `offset + 1 ..= offset + block_size`.
        let last_offset = len - 1 - block_size;
        let mut windows = vec![Window::whole(0)];
        let mut scored_up_to = block_size; // every target index <= this is scored
        while scored_up_to < len - 1 {
            let offset = (scored_up_to + stride - block_size).min(last_offset);
            windows.push(Window {
                offset,
                scored_from: scored_up_to - offset,
            });
            scored_up_to = offset + block_size;
        }
        WindowPlan {
            windows,
            block_size,
            stride,
        }
    }

    /// Characters scored: every one of the split but the first.
    pub fn scored_tokens(&self) -> i64 {
        self.windows
            .iter()
            .map(|w| self.block_size - w.scored_from)
            .sum()
    }
}

/// The score of a model on one split.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SplitScore {
    pub split: Split,
    /// Mean cross-entropy per scored token, in nats.
    pub loss: f64,
    pub tokens: i64,
    /// The total negative log-likelihood in bits over the characters of text the scored tokens
    /// stand for: comparable across tokenizers (for characters, `loss / ln 2`).
    pub bits_per_character: f64,
    pub windows: usize,
}

/// Scores `model` on every character of `split`, windows `stride` apart (see the module docs).
pub fn score_split(model: &Gpt, dataset: &Dataset, split: Split, stride: i64) -> SplitScore {
    let plan = WindowPlan::new(dataset.len(split), model.dims().block_size, stride);
    let (sum, tokens) = summed_loss(model, dataset, split, &plan.windows);
    SplitScore {
        split,
        loss: sum / tokens as f64,
        tokens,
        bits_per_character: sum / std::f64::consts::LN_2 / dataset.scored_characters(split) as f64,
        windows: plan.windows.len(),
    }
}

/// Summed next-token loss over the scored positions of `windows`, and how many there were; in
/// chunks, without dropout or gradients. Sums, not means, so that replicas scoring shares of the
/// same windows can add theirs up (the training log's estimate is this over random windows).
pub fn summed_loss(model: &Gpt, dataset: &Dataset, split: Split, windows: &[Window]) -> (f64, i64) {
    let block_size = model.dims().block_size;
    let per_forward = (EVALUATION_TOKENS / block_size).max(1) as usize;
    tch::no_grad(|| {
        windows
            .chunks(per_forward)
            .map(|chunk| {
                let offsets: Vec<i64> = chunk.iter().map(|w| w.offset).collect();
                let (x, y) = dataset.batch_at(split, &offsets);
                let scored: i64 = chunk.iter().map(|w| block_size - w.scored_from).sum();
                let y = match chunk.iter().any(|w| w.scored_from > 0) {
                    false => y,
                    true => {
                        let from: Vec<i64> = chunk.iter().map(|w| w.scored_from).collect();
                        let from = Tensor::from_slice(&from).to_device(y.device()).unsqueeze(1);
                        let positions =
                            Tensor::arange(block_size, (Kind::Int64, y.device())).unsqueeze(0);
                        y.masked_fill(&positions.lt_tensor(&from), IGNORED_TARGET)
                    }
                };
                let logits = model.forward_t(&x, false);
                let sum = Gpt::loss_with(&logits, &y, Reduction::Sum).double_value(&[]);
                (sum, scored)
            })
            .fold((0.0, 0), |(s, n), (chunk_sum, chunk_n)| {
                (s + chunk_sum, n + chunk_n)
            })
    })
}
