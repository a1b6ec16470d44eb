//! `training:`: batches, iterations, evaluations, the optimizer (AdamW) and its schedule,
//! clipping, the wall-time budget, the seed, threads, device and precision; defaults are the
//! course's.

use serde::{Deserialize, Serialize};

use crate::error::SpecError;
use crate::layers::precision::Precision;
use crate::spec::schedule::{Schedule, ScheduleSpec};
use crate::validate::{require_count, require_positive_real, require_size};

// `training:`, resolved (the default type parameter: its schedule a `Schedule`) or as written
// (`WrittenTraining`: a `ScheduleSpec`). Every field may be left out: the course's value
// (`WrittenTraining::default`) stands in.
#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, default)]
#[schemars(
    rename = "TrainingSpec",
    bound = "S: schemars::JsonSchema + Default + Serialize"
)]
pub struct TrainingSpec<S = Schedule> {
    pub batch_size: i64,
    pub max_iters: i64,
    /// Evaluate at iteration 0, every `eval_interval` iterations and at the last one.
    pub eval_interval: i64,
    /// Batches per split averaged by each evaluation.
    pub eval_iters: i64,
    /// How evaluations measure the validation loss: `batches` (`eval_iters` random batches, as
    /// the course; about ±0.01 of noise at 100 batches of 12) or `whole_split` (every character
    /// once, as `gptbuild evaluate` does: exact, so the best checkpoint is chosen by its true
    /// loss rather than by a lucky draw). The training loss is always estimated from batches.
    pub val_eval: ValEval,
    pub learning_rate: f64,
    /// Warm-up and decay of the learning rate; constant by default, as in the course.
    pub schedule: S,
    pub adamw: AdamWSpec,
    /// Rescale each step's gradient to at most this global L2 norm (Pascanu et al. 2013,
    /// arXiv 1211.5063); none by default.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub grad_clip: Option<f64>,
    /// Stop after this many minutes of wall time (with a final evaluation), even before
    /// `max_iters`; at most ten years.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_minutes: Option<f64>,
    /// Also keep the checkpoint with the lowest validation loss (`best.safetensors`): these
    /// models overfit Tiny Shakespeare after a while, so the best is not always the last.
    pub keep_best: bool,
    /// Seeds initialisation, dropout and batch sampling.
    pub seed: u64,
    /// libtorch intra-op threads; 0 keeps libtorch's default (one per core). At most 4 per
    /// available core of the machine that runs it, checked when training, evaluation or a
    /// benchmark starts.
    pub threads: i64,
    /// How those threads share a training step on the CPU: `operations` (libtorch's way: every
    /// matrix product, norm and softmax split across all of them) or `batch` (each thread trains
    /// its own share of the batch alone, from the forward pass to the gradient, and the shares'
    /// gradients are averaged in memory: what as many single-threaded processes would compute,
    /// without the processes). `batch` pays on small models, whose operations are too small to
    /// split well; the batch must divide evenly among the threads. A GPU's step ignores it.
    pub thread_split: ThreadSplit,
    pub device: DeviceSpec,
    /// `fp32`, or `bf16` mixed precision: matrix products in bf16, weights, optimizer state,
    /// norms, softmax and loss in fp32.
    pub precision: Precision,
    /// Start from this checkpoint's weights instead of initialising them: fine-tuning (an
    /// imported GPT-2 or Llama, or a model of one's own). It must hold this spec's model (the
    /// dropouts, `init` and `fused` may differ) and the tokenizer `data.tokenizer` makes. A
    /// resumed run continues from its own checkpoint instead.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub init_from: Option<std::path::PathBuf>,
}

/// AdamW (Loshchilov & Hutter 2017, arXiv 1711.05101); defaults are PyTorch's.
#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct AdamWSpec {
    pub beta1: f64,
    pub beta2: f64,
    pub eps: f64,
    pub weight_decay: f64,
    /// Which parameters decay: `all` (PyTorch's AdamW, the course) or only `matrices` (weights
    /// of linear layers and embeddings, not biases and norm gains; GPT-2/nanoGPT practice).
    pub weight_decay_on: DecayTarget,
}

/// `training.val_eval`: how the validation loss of an evaluation is measured.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum ValEval {
    /// The mean over `eval_iters` random batches.
    #[default]
    Batches,
    /// Every character of the split once, in back-to-back windows.
    WholeSplit,
}

/// `training.thread_split`: how the CPU threads share a training step.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum ThreadSplit {
    /// libtorch splits each operation across the threads.
    #[default]
    Operations,
    /// Each thread computes the gradient of its share of the batch alone; the gradients are
    /// averaged.
    Batch,
}

/// The parameters weight decay applies to.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum DecayTarget {
    #[default]
    All,
    Matrices,
}

#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum DeviceSpec {
    /// CUDA when libtorch sees a GPU, else the CPU.
    #[default]
    Auto,
    Cpu,
    Cuda,
}

/// The seed of training and of the sample after it, unless the spec gives one.
pub const DEFAULT_SEED: u64 = 1337;

/// The training section as written.
pub type WrittenTraining = TrainingSpec<ScheduleSpec>;

impl<S: Default> Default for TrainingSpec<S> {
    fn default() -> Self {
        TrainingSpec {
            batch_size: 32,
            max_iters: 5000,
            eval_interval: 500,
            eval_iters: 200,
            val_eval: ValEval::default(),
            learning_rate: 1e-3,
            schedule: S::default(),
            adamw: AdamWSpec::default(),
            grad_clip: None,
            max_minutes: None,
            keep_best: true,
            seed: DEFAULT_SEED,
            threads: 0,
            thread_split: ThreadSplit::Operations,
            device: DeviceSpec::Auto,
            precision: Precision::Fp32,
            init_from: None,
        }
    }
}

impl Default for AdamWSpec {
    fn default() -> Self {
        AdamWSpec {
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            weight_decay: 0.01,
            weight_decay_on: DecayTarget::All,
        }
    }
}

/// The longest wall-time budget a spec may give, in minutes: ten years, far beyond any run, and
/// small enough to be a `Duration`.
pub const MAX_MINUTES: f64 = 10.0 * 365.25 * 24.0 * 60.0;

impl WrittenTraining {
    /// Checks the fields and resolves the schedule.
    pub(super) fn resolve(self) -> std::result::Result<TrainingSpec, SpecError> {
        require_size("batch_size", self.batch_size)?;
        require_count("max_iters", self.max_iters)?;
        require_count("eval_interval", self.eval_interval)?;
        require_size("eval_iters", self.eval_iters)?;
        require_positive_real("learning_rate", self.learning_rate)?;
        if let Some(clip) = self.grad_clip {
            require_positive_real("grad_clip", clip)?;
        }
        if let Some(minutes) = self.max_minutes {
            require_positive_real("max_minutes", minutes)?;
            if minutes > MAX_MINUTES {
                return Err(SpecError::new(
                    "max_minutes",
                    format!("must be at most {MAX_MINUTES} (ten years), got {minutes:e}"),
                ));
            }
        }
        let schedule = self
            .schedule
            .resolve(self.learning_rate, self.max_iters)
            .map_err(|e| e.within("schedule"))?;
        if self.threads < 0 {
            return Err(SpecError::new(
                "threads",
                format!(
                    "must be 0 (libtorch's default) or more, got {}",
                    self.threads
                ),
            ));
        }
        self.adamw.validate().map_err(|e| e.within("adamw"))?;
        Ok(TrainingSpec {
            batch_size: self.batch_size,
            max_iters: self.max_iters,
            eval_interval: self.eval_interval,
            eval_iters: self.eval_iters,
            val_eval: self.val_eval,
            learning_rate: self.learning_rate,
            schedule,
            adamw: self.adamw,
            grad_clip: self.grad_clip,
            max_minutes: self.max_minutes,
            keep_best: self.keep_best,
            seed: self.seed,
            threads: self.threads,
            thread_split: self.thread_split,
            device: self.device,
            precision: self.precision,
            init_from: self.init_from,
        })
    }
}

impl AdamWSpec {
    pub(super) fn validate(&self) -> std::result::Result<(), SpecError> {
        for (field, beta) in [("beta1", self.beta1), ("beta2", self.beta2)] {
            if !(0.0..1.0).contains(&beta) {
                return Err(SpecError::new(
                    field,
                    format!("must be in [0, 1), got {beta}"),
                ));
            }
        }
        require_positive_real("eps", self.eps)?;
        if !(self.weight_decay >= 0.0 && self.weight_decay.is_finite()) {
            return Err(SpecError::new(
                "weight_decay",
                format!("must be 0 or more, got {}", self.weight_decay),
            ));
        }
        Ok(())
    }
}
