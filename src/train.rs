//! Training: draw a batch, predict every next character, step AdamW down the cross-entropy; every
//! `eval_interval` iterations (and at the first and last) estimate the loss on both splits.

use tch::nn::VarStore;
use tch::{Device, Reduction};

use crate::data::{Dataset, Split, SplitMix64};
use crate::error::{Error, Result};
use crate::model::Gpt;
use crate::optim::AdamW;
use crate::spec::{DeviceSpec, TrainingSpec};

/// Tokens per forward pass during evaluation: big enough to amortise per-call overhead, small
/// enough that the attention weights of a large model fit comfortably in memory.
const EVAL_TOKENS_PER_FORWARD: i64 = 1 << 15;

/// The batch-sampling stream of training; evaluations use streams `1 + iteration`.
const TRAIN_STREAM: u64 = 0;

/// Average losses on both splits at one iteration.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Evaluation {
    pub iteration: i64,
    pub train_loss: f64,
    pub val_loss: f64,
}

impl Evaluation {
    /// The course's log line.
    pub fn log_line(&self) -> String {
        format!(
            "Epoch {}: avg train loss {:.4} | avg val loss {:.4}",
            self.iteration, self.train_loss, self.val_loss
        )
    }
}

/// Whether the loop evaluates before the step of `iteration`: the first, every `eval_interval`-th
/// and the last, as in the course.
pub fn is_eval_iteration(iteration: i64, training: &TrainingSpec) -> bool {
    iteration % training.eval_interval == 0 || iteration == training.max_iters - 1
}

/// The device a spec asks for, or an error if it is not there.
pub fn select_device(wanted: DeviceSpec) -> Result<Device> {
    match wanted {
        DeviceSpec::Cpu => Ok(Device::Cpu),
        DeviceSpec::Auto => Ok(Device::cuda_if_available()),
        DeviceSpec::Cuda if tch::Cuda::is_available() => Ok(Device::Cuda(0)),
        DeviceSpec::Cuda => Err(Error::Device(
            "the spec asks for cuda, but libtorch sees no GPU".into(),
        )),
    }
}

/// A model, its optimizer and the data, advanced one iteration at a time.
pub struct Trainer<'a> {
    pub model: Gpt,
    pub var_store: VarStore,
    optimizer: AdamW,
    dataset: &'a Dataset,
    training: TrainingSpec,
    rng: SplitMix64,
}

impl<'a> Trainer<'a> {
    pub fn new(
        model: Gpt,
        var_store: VarStore,
        dataset: &'a Dataset,
        training: &TrainingSpec,
    ) -> Self {
        let optimizer = AdamW::new(var_store.trainable_variables(), training.adamw.clone());
        let rng = SplitMix64::stream(training.seed, TRAIN_STREAM);
        Trainer {
            model,
            var_store,
            optimizer,
            dataset,
            training: training.clone(),
            rng,
        }
    }

    /// Iterations completed so far.
    pub fn iteration(&self) -> i64 {
        self.optimizer.steps()
    }

    /// One optimisation step on a fresh training batch.
    pub fn step(&mut self) {
        let (x, y) = self
            .dataset
            .batch(Split::Train, self.training.batch_size, &mut self.rng);
        let logits = self.model.forward_t(&x, true);
        let loss = Gpt::loss(&logits, &y);
        self.optimizer.minimise(&loss, self.training.learning_rate);
    }

    /// Mean loss over `eval_iters` random batches of each split, without dropout or gradients.
    /// The batches depend only on the seed and the iteration, not on how training got there.
    pub fn evaluate(&self) -> Evaluation {
        let iteration = self.iteration();
        let mut rng = SplitMix64::stream(self.training.seed, 1 + iteration as u64);
        let mut split_loss = |split| {
            let count = self.training.eval_iters * self.training.batch_size;
            let offsets = self.dataset.random_offsets(split, count, &mut rng);
            mean_loss(&self.model, self.dataset, split, &offsets)
        };
        let train_loss = split_loss(Split::Train);
        let val_loss = split_loss(Split::Val);
        Evaluation {
            iteration,
            train_loss,
            val_loss,
        }
    }

    /// Trains to `max_iters`, calling `on_eval` with each evaluation as it happens.
    pub fn train(
        &mut self,
        mut on_eval: impl FnMut(&Evaluation) -> Result<()>,
    ) -> Result<Vec<Evaluation>> {
        let mut evaluations = Vec::new();
        while self.iteration() < self.training.max_iters {
            if is_eval_iteration(self.iteration(), &self.training) {
                let evaluation = self.evaluate();
                on_eval(&evaluation)?;
                evaluations.push(evaluation);
            }
            self.step();
        }
        Ok(evaluations)
    }
}

/// Mean next-token loss of the model over windows at `offsets`, in chunks, without gradients.
fn mean_loss(model: &Gpt, dataset: &Dataset, split: Split, offsets: &[i64]) -> f64 {
    let per_forward = (EVAL_TOKENS_PER_FORWARD / model.dims().block_size).max(1) as usize;
    let block_size = model.dims().block_size as f64;
    tch::no_grad(|| {
        let total: f64 = offsets
            .chunks(per_forward)
            .map(|chunk| {
                let (x, y) = dataset.batch_at(split, chunk);
                Gpt::loss_with(&model.forward_t(&x, false), &y, Reduction::Sum).double_value(&[])
            })
            .sum();
        total / (offsets.len() as f64 * block_size)
    })
}
