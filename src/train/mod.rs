//! Training: draw a batch, predict every next character, step AdamW down the cross-entropy; every
//! `eval_interval` iterations (and at the first and last) estimate the loss on both splits.

pub mod evaluate;
pub mod optim;
pub mod replicas;

use std::time::{Duration, Instant};

use tch::nn::VarStore;
use tch::Tensor;

use crate::data::{Dataset, Split, SplitMix64};
use crate::error::{Error, Result};
use crate::model::Gpt;
use crate::spec::{TrainingSpec, ValEval};
use crate::train::evaluate::{mean_loss, score_split};
use crate::train::optim::AdamW;
use crate::train::replicas::{shard, Replicas, SingleProcess};

/// The batch-sampling stream of training; evaluations use streams `1 + iteration`.
const TRAIN_STREAM: u64 = 0;

/// Mixed into the seed for the per-iteration dropout seeds, so they share no stream with batches.
const DROPOUT_SALT: u64 = 0xD50F_0A7E_5EED_0001;

/// Average losses on both splits at one iteration.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Evaluation {
    pub iteration: i64,
    pub train_loss: f64,
    pub val_loss: f64,
}

impl Evaluation {
    /// Whether both losses are numbers: a NaN or infinite loss means training diverged.
    pub fn is_finite(&self) -> bool {
        self.train_loss.is_finite() && self.val_loss.is_finite()
    }

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

/// Everything besides the weights that a resumed run needs to continue exactly where it stopped.
#[derive(Debug)]
pub struct TrainingState {
    /// AdamW's first and second moments, flat, laid out like the parameters.
    pub exp_avg: Tensor,
    pub exp_avg_sq: Tensor,
    /// Iterations completed.
    pub step: i64,
    /// The batch sampler's generator state.
    pub batch_rng: u64,
    /// The iteration of the last evaluation, so that a resumed run does not evaluate it twice.
    pub last_evaluation: Option<i64>,
}

/// A model, its optimizer and the data, advanced one iteration at a time.
///
/// Every random draw of training is a function of the seed and the iteration: batches come from
/// a generator whose state is saved with the checkpoint, and libtorch's generator (dropout) is
/// reseeded from `(seed, iteration)` before each step. So a run stopped and resumed computes the
/// same losses as one that never stopped.
pub struct Trainer<'a> {
    pub model: Gpt,
    pub var_store: VarStore,
    optimizer: AdamW,
    dataset: &'a Dataset,
    training: TrainingSpec,
    rng: SplitMix64,
    last_evaluation: Option<i64>,
    /// The loss of the last step (detached), for progress reports.
    last_loss: Option<Tensor>,
    /// The other processes training the same model (none, by default).
    replicas: Box<dyn Replicas>,
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
            last_evaluation: None,
            last_loss: None,
            replicas: Box::new(SingleProcess),
        }
    }

    /// Trains as one of several replicas: each step draws this replica's share of the batch and
    /// averages the gradient with the others' ([`replicas`]). The batch size must be a multiple
    /// of the world size, so that every replica's share is the same and none is empty.
    pub fn with_replicas(mut self, replicas: Box<dyn Replicas>) -> Result<Self> {
        let (world_size, batch_size) = (replicas.world_size(), self.training.batch_size);
        if world_size == 0 || batch_size % world_size as i64 != 0 {
            return Err(Error::Usage(format!(
                "training.batch_size ({batch_size}) must be a multiple of the {world_size} \
                 replicas training together"
            )));
        }
        self.replicas = replicas;
        Ok(self)
    }

    /// Iterations completed so far.
    pub fn iteration(&self) -> i64 {
        self.optimizer.steps()
    }

    /// The loss of the last training step, if there was one (reading it waits for the device).
    pub fn last_loss(&self) -> Option<f64> {
        self.last_loss.as_ref().map(|loss| loss.double_value(&[]))
    }

    /// The state to save beside the weights.
    pub fn state(&self) -> TrainingState {
        let (exp_avg, exp_avg_sq, step) = self.optimizer.state();
        TrainingState {
            exp_avg: exp_avg.shallow_clone(),
            exp_avg_sq: exp_avg_sq.shallow_clone(),
            step,
            batch_rng: self.rng.state(),
            last_evaluation: self.last_evaluation,
        }
    }

    /// Continues from a saved state (the weights are restored separately, into the model).
    pub fn restore(&mut self, state: &TrainingState) -> std::result::Result<(), String> {
        self.optimizer
            .restore(&state.exp_avg, &state.exp_avg_sq, state.step)?;
        self.rng = SplitMix64::new(state.batch_rng);
        self.last_evaluation = state.last_evaluation;
        Ok(())
    }

    /// One optimisation step on a fresh training batch (this replica's share of it).
    pub fn step(&mut self) {
        let (rank, world_size) = (self.replicas.rank(), self.replicas.world_size());
        let offsets =
            self.dataset
                .random_offsets(Split::Train, self.training.batch_size, &mut self.rng);
        let (x, y) = self
            .dataset
            .batch_at(Split::Train, shard(&offsets, rank, world_size));
        let dropout_seed =
            SplitMix64::stream(self.training.seed ^ DROPOUT_SALT, self.iteration() as u64)
                .next_u64();
        tch::manual_seed(dropout_seed as i64);
        let logits = self.model.forward_t(&x, true);
        let loss = Gpt::loss(&logits, &y);
        let lr = self
            .training
            .schedule
            .learning_rate(self.training.learning_rate, self.iteration());
        // Where the replicas' gradients meet (one process: unchanged).
        let gradient = self
            .replicas
            .average_gradient(self.optimizer.flat_gradient(&loss));
        self.optimizer
            .update(&gradient, lr, self.training.grad_clip);
        self.last_loss = Some(loss.detach());
    }

    /// Whether the model was evaluated at its current iteration.
    pub fn evaluated_now(&self) -> bool {
        self.last_evaluation == Some(self.iteration())
    }

    /// Whether the loop evaluates before the next step: at the first, every `eval_interval`-th
    /// and the last iteration, unless that evaluation already happened (before a resume).
    pub fn evaluation_due(&self) -> bool {
        let iteration = self.iteration();
        is_eval_iteration(iteration, &self.training) && self.last_evaluation != Some(iteration)
    }

    /// Mean loss over `eval_iters` random batches of each split (or the whole validation split,
    /// see `training.val_eval`), without dropout or gradients. The batches depend only on the
    /// seed and the iteration, not on how training got there.
    pub fn evaluate(&mut self) -> Evaluation {
        let iteration = self.iteration();
        let mut rng = SplitMix64::stream(self.training.seed, 1 + iteration as u64);
        let mut split_loss = |split| {
            let count = self.training.eval_iters * self.training.batch_size;
            let offsets = self.dataset.random_offsets(split, count, &mut rng);
            mean_loss(&self.model, self.dataset, split, &offsets)
        };
        let train_loss = split_loss(Split::Train);
        let val_loss = match self.training.val_eval {
            ValEval::Batches => split_loss(Split::Val),
            ValEval::WholeSplit => {
                let block_size = self.model.dims().block_size;
                score_split(&self.model, self.dataset, Split::Val, block_size).loss
            }
        };
        self.last_evaluation = Some(iteration);
        Evaluation {
            iteration,
            train_loss,
            val_loss,
        }
    }

    /// Trains to `max_iters` (or until the wall-time budget, `training.max_minutes`, runs out),
    /// reporting every evaluation and every step to `observer`, which may also stop the loop.
    /// An evaluation comes before the step of the first, every `eval_interval`-th and the last
    /// iteration, and when the budget ends training (as the last iteration would have).
    pub fn train(&mut self, observer: &mut dyn Observer) -> Result<Stop> {
        let started = Instant::now();
        let budget = self
            .training
            .max_minutes
            .and_then(|minutes| Duration::try_from_secs_f64(minutes * 60.0).ok());
        let max_iters = self.training.max_iters;
        while self.iteration() < max_iters {
            if self.evaluation_due() {
                let evaluation = self.evaluate();
                observer.evaluated(self, &evaluation)?;
            }
            self.step();
            if !observer.stepped(self)? {
                return Ok(match self.iteration() >= max_iters {
                    true => Stop::Finished,
                    false => Stop::Interrupted,
                });
            }
            let out_of_time = budget.is_some_and(|budget| started.elapsed() >= budget);
            if out_of_time && self.iteration() < max_iters {
                if !self.evaluated_now() {
                    let evaluation = self.evaluate();
                    observer.evaluated(self, &evaluation)?;
                }
                return Ok(Stop::OutOfTime);
            }
        }
        Ok(Stop::Finished)
    }
}

/// How [`Trainer::train`] ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stop {
    /// `max_iters` reached.
    Finished,
    /// The wall-time budget ran out; the model was evaluated where it stopped.
    OutOfTime,
    /// The observer asked to stop (Ctrl-C); a checkpoint lets the run resume.
    Interrupted,
}

impl Stop {
    /// Whether training ended as planned (all iterations, or all the time it was given).
    pub fn completed(self) -> bool {
        self != Stop::Interrupted
    }
}

/// What the training loop reports to: the run's logging, metrics and checkpoints
/// ([`crate::workflow::recorder`]), or a test's.
pub trait Observer {
    /// After each evaluation; an error (e.g. a diverged loss) stops training.
    fn evaluated(&mut self, trainer: &Trainer, evaluation: &Evaluation) -> Result<()>;
    /// After each step; `false` stops training (Ctrl-C).
    fn stepped(&mut self, trainer: &Trainer) -> Result<bool>;
}
