//! Training: draw a batch, predict every next character, step AdamW down the cross-entropy; every
//! `eval_interval` iterations (and at the first and last) estimate the loss on both splits.

pub mod evaluate;
pub mod optim;
pub mod replicas;
#[cfg(feature = "cpu-kernels")]
pub mod thread_split;

use std::time::{Duration, Instant};

use tch::nn::VarStore;
use tch::Tensor;

use crate::data::{Dataset, Split, SplitMix64};
use crate::error::{Error, Result};
use crate::interrupt;
use crate::model::Gpt;
use crate::spec::{ThreadSplit, TrainingSpec, ValEval};
use crate::train::evaluate::{summed_loss, Window, WindowPlan};
use crate::train::optim::AdamW;
use crate::train::replicas::{shard, Replicas, Requests, SingleProcess};

/// The batch-sampling stream of training; evaluations use streams `1 + iteration`.
const TRAIN_STREAM: u64 = 0;

/// Mixed into the seed for the per-iteration dropout seeds, so they share no stream with batches.
const DROPOUT_SALT: u64 = 0xD50F_0A7E_5EED_0001;

/// Mixed in once per replica rank, so that replicas draw different dropout masks (rank 0, and so
/// a single process, draws what it always drew).
const REPLICA_SALT: u64 = 0x9E37_79B9_7F4A_7C15;

/// The seed of libtorch's generator (dropout) for the step of `iteration` on replica `rank`: a
/// function of the seed and the iteration alone, so a resumed run draws the masks it would have
/// drawn, and different on every replica (rank 0, and so a single process, unchanged by ranks).
pub fn dropout_seed(seed: u64, iteration: i64, rank: usize) -> u64 {
    let replica_salt = REPLICA_SALT.wrapping_mul(rank as u64);
    SplitMix64::stream(seed ^ DROPOUT_SALT ^ replica_salt, iteration as u64).next_u64()
}

/// Checks that a batch divides evenly among `world_size` replicas of `shares` threads each, so
/// that every share is the same size and none is empty.
fn check_batch_split(training: &TrainingSpec, world_size: usize, shares: usize) -> Result<()> {
    let batch_size = training.batch_size;
    let parts = world_size.saturating_mul(shares);
    if parts == 0 || batch_size % parts as i64 != 0 {
        let threads = if shares == 1 {
            String::new()
        } else {
            format!(" of {shares} threads each (training.thread_split: batch: {parts} shares)")
        };
        return Err(Error::Usage(format!(
            "training.batch_size ({batch_size}) must be a multiple of the {world_size} \
             replicas{threads} training together"
        )));
    }
    Ok(())
}

/// How many shares a step on `device` splits its batch into: libtorch's thread count under
/// `thread_split: batch` on the CPU (set from `training.threads` or `--threads` before this is
/// asked), else 1, one computation.
pub fn shares_for(training: &TrainingSpec, device: tch::Device) -> usize {
    match (training.thread_split, device) {
        (ThreadSplit::Batch, tch::Device::Cpu) => tch::get_num_threads().max(1) as usize,
        _ => 1,
    }
}

/// Fails for more than one share in a build without `cpu-kernels`: the shares' threads draw
/// their dropout from the kernels' per-thread generators ([`thread_split`]).
pub fn require_shares_built(shares: usize) -> Result<()> {
    if shares > 1 && !cfg!(feature = "cpu-kernels") {
        return Err(Error::Usage(
            "training.thread_split: batch needs gptbuild built with its CPU kernels (the \
             cpu-kernels feature)"
                .into(),
        ));
    }
    Ok(())
}

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
    /// Threads that each train a share of this process's part of the batch
    /// ([`thread_split`]); 1: one computation, its operations split by libtorch.
    shares: usize,
    /// When the wall-time budget of [`Trainer::train`] runs out, if it has one.
    deadline: Option<Instant>,
    /// What the replicas requested by the last step (a stop, the end of the time budget).
    requests: Requests,
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
            shares: 1,
            deadline: None,
            requests: Requests::default(),
        }
    }

    /// A trainer for `spec` with freshly initialised weights (seeded by `training.seed`), for a
    /// vocabulary of `vocab_size` tokens, on `device`: the model, its variables and AdamW, ready
    /// to [`train`](Trainer::train) on `dataset`. A spec with `training.init_from` is refused.
    pub fn for_spec(
        spec: &crate::spec::Spec,
        dataset: &'a Dataset,
        vocab_size: usize,
        device: tch::Device,
    ) -> Result<Self> {
        if spec.training.init_from.is_some() {
            // Silently starting from fresh weights would train something else than asked.
            return Err(crate::error::Error::Usage(
                "training.init_from: Trainer::for_spec starts from fresh weights; `gptbuild run` \
                 starts from the checkpoint"
                    .into(),
            ));
        }
        crate::device::load_cuda_backend();
        tch::manual_seed(spec.training.seed as i64);
        let var_store = VarStore::new(device);
        let model = Gpt::try_new(&var_store.root(), spec, vocab_size as i64)?;
        Ok(Trainer::new(model, var_store, dataset, &spec.training))
    }

    /// Trains as one of several replicas: each step draws this replica's share of the batch and
    /// averages the gradient with the others' ([`replicas`]). The batch size must be a multiple
    /// of the world size, so that every replica's share is the same and none is empty.
    pub fn with_replicas(mut self, replicas: Box<dyn Replicas>) -> Result<Self> {
        check_batch_split(&self.training, replicas.world_size(), self.shares)?;
        self.replicas = replicas;
        Ok(self)
    }

    /// Trains each step's batch in `threads` shares side by side, one thread each
    /// (`training.thread_split: batch`, [`thread_split`]); 1 keeps one computation. This process's
    /// part of the batch must divide evenly among the threads.
    pub fn with_thread_split(mut self, threads: usize) -> Result<Self> {
        require_shares_built(threads)?;
        check_batch_split(&self.training, self.replicas.world_size(), threads)?;
        self.shares = threads;
        Ok(self)
    }

    /// This replica's place among those training together (0 of 1 for a single process).
    pub fn rank(&self) -> usize {
        self.replicas.rank()
    }

    /// Makes every replica start from the first one's parameters and training state (its fresh
    /// initialisation, or the checkpoint it restored): the parameters, AdamW's moments, the step,
    /// the batch sampler and the last evaluation. A single process has nothing to do.
    ///
    /// `spec` is the resolved spec as YAML (with the command line's overrides applied) and `data`
    /// identifies the training data (the tokenizer and the splits' sizes): replicas that disagree
    /// on either would each apply another update, or average gradients of different corpora, and
    /// drift apart while rank 0 reports its own losses; so all of them stop with an error
    /// instead, the differing ones naming the first field that differs ([`replicas::same_spec`]).
    pub fn synchronize_replicas(&mut self, spec: &str, data: u64) -> Result<()> {
        if self.replicas.world_size() == 1 {
            return Ok(());
        }
        let device = self.optimizer.parameters().device();
        replicas::same_spec(self.replicas.as_mut(), spec, device)?;
        let state = self.state();
        let device = state.exp_avg.device();
        let header = [
            state.step,
            state.batch_rng as i64,
            state.last_evaluation.unwrap_or(-1),
            data as i64,
        ];
        let mut header = Tensor::from_slice(&header).to_device(device);
        self.replicas.broadcast_from_first(&mut header)?;
        let header: Vec<i64> = Vec::<i64>::try_from(header.to_device(tch::Device::Cpu))?;
        let differs = f64::from(u8::from(header[3] != data as i64));
        if self.replicas.sum(&[differs])?[0] > 0.0 {
            return Err(Error::Distributed {
                rank: self.rank(),
                message: "the processes do not train on the same data (another corpus or \
                          tokenizer than rank 0's); give every rank the same corpus"
                    .into(),
            });
        }
        let (mut exp_avg, mut exp_avg_sq) = (state.exp_avg.copy(), state.exp_avg_sq.copy());
        self.replicas.broadcast_from_first(&mut exp_avg)?;
        self.replicas.broadcast_from_first(&mut exp_avg_sq)?;
        let mut parameters = self.optimizer.parameters().copy();
        self.replicas.broadcast_from_first(&mut parameters)?;
        // In place: the model's variables are views into this buffer.
        tch::no_grad(|| {
            self.optimizer
                .parameters()
                .shallow_clone()
                .copy_(&parameters)
        });
        let first = TrainingState {
            exp_avg,
            exp_avg_sq,
            step: header[0],
            batch_rng: header[1] as u64,
            last_evaluation: (header[2] >= 0).then_some(header[2]),
        };
        self.restore(&first).map_err(|message| Error::Distributed {
            rank: self.rank(),
            message,
        })
    }

    /// Whether a stop (Ctrl-C, SIGTERM) was requested of any replica by the last step: all
    /// replicas learn it from the same step's gradient exchange, so all stop after that step.
    pub fn stop_requested(&self) -> bool {
        self.requests.stop
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

    /// One optimisation step on a fresh training batch (this replica's share of it). Fails only
    /// when the replicas cannot exchange their gradients (another process died).
    pub fn step(&mut self) -> Result<()> {
        let (rank, world_size) = (self.replicas.rank(), self.replicas.world_size());
        let offsets =
            self.dataset
                .random_offsets(Split::Train, self.training.batch_size, &mut self.rng);
        let room = self.replicas.room_after_gradient();
        let (gradient, loss) = if self.shares == 1 {
            let (x, y) = self
                .dataset
                .batch_at(Split::Train, shard(&offsets, rank, world_size));
            tch::manual_seed(dropout_seed(self.training.seed, self.iteration(), rank) as i64);
            let loss = Gpt::loss(&self.model.forward_t(&x, true), &y);
            (self.optimizer.flat_gradient(&loss, room), loss)
        } else {
            self.split_gradient(&offsets, room)
        };
        let lr = self
            .training
            .schedule
            .learning_rate(self.training.learning_rate, self.iteration());
        // Where the replicas' gradients meet (one process: unchanged), and their requests.
        let requests = Requests {
            stop: interrupt::requested(),
            out_of_time: self.deadline.is_some_and(|end| Instant::now() >= end),
        };
        let averaged = self.replicas.average_gradient(gradient, requests)?;
        self.optimizer
            .update(&averaged.gradient, lr, self.training.grad_clip)?;
        self.requests = averaged.requests;
        self.last_loss = Some(loss.detach());
        Ok(())
    }

    /// The gradient and loss of the batch at `offsets` trained in [`Trainer::with_thread_split`]'s
    /// shares, one thread each ([`thread_split`]).
    #[cfg(feature = "cpu-kernels")]
    fn split_gradient(&self, offsets: &[i64], room: usize) -> (Tensor, Tensor) {
        use crate::train::thread_split::{split_gradient, Share};
        let (rank, world_size) = (self.replicas.rank(), self.replicas.world_size());
        // Share i of replica `rank` is replica `rank · shares + i` of `world_size · shares`:
        // its rows of the batch, its dropout keys.
        let shares: Vec<Share> = (0..self.shares)
            .map(|i| {
                let replica = rank * self.shares + i;
                let rows = shard(offsets, replica, world_size * self.shares);
                let (x, y) = self.dataset.batch_at(Split::Train, rows);
                let seed = dropout_seed(self.training.seed, self.iteration(), replica);
                Share {
                    x,
                    y,
                    dropout_seed: seed,
                }
            })
            .collect();
        let split = split_gradient(&self.model, &self.optimizer, &shares, room);
        (split.gradient, split.loss)
    }

    /// Without the kernels there are no shares ([`Trainer::with_thread_split`] refuses them).
    #[cfg(not(feature = "cpu-kernels"))]
    fn split_gradient(&self, _offsets: &[i64], _room: usize) -> (Tensor, Tensor) {
        unreachable!("with_thread_split accepts one share only without the cpu-kernels feature")
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
    /// seed and the iteration, not on how training got there. Replicas each score their share of
    /// the windows and add up the sums, so every replica gets the same numbers, those of one
    /// process up to the order of the additions.
    pub fn evaluate(&mut self) -> Result<Evaluation> {
        let iteration = self.iteration();
        let mut rng = SplitMix64::stream(self.training.seed, 1 + iteration as u64);
        let count = self.training.eval_iters * self.training.batch_size;
        let train_windows = self.random_windows(Split::Train, count, &mut rng);
        let val_windows = match self.training.val_eval {
            ValEval::Batches => self.random_windows(Split::Val, count, &mut rng),
            ValEval::WholeSplit => {
                let block_size = self.model.dims().block_size;
                WindowPlan::new(self.dataset.len(Split::Val), block_size, block_size).windows
            }
        };
        let (rank, world_size) = (self.replicas.rank(), self.replicas.world_size());
        let (train_sum, train_tokens) = summed_loss(
            &self.model,
            self.dataset,
            Split::Train,
            shard(&train_windows, rank, world_size),
        );
        let (val_sum, val_tokens) = summed_loss(
            &self.model,
            self.dataset,
            Split::Val,
            shard(&val_windows, rank, world_size),
        );
        let sums =
            self.replicas
                .sum(&[train_sum, train_tokens as f64, val_sum, val_tokens as f64])?;
        self.last_evaluation = Some(iteration);
        Ok(Evaluation {
            iteration,
            train_loss: sums[0] / sums[1],
            val_loss: sums[2] / sums[3],
        })
    }

    /// `count` whole windows at random offsets of `split`.
    fn random_windows(&self, split: Split, count: i64, rng: &mut SplitMix64) -> Vec<Window> {
        let offsets = self.dataset.random_offsets(split, count, rng);
        offsets.into_iter().map(Window::whole).collect()
    }

    /// Trains to `max_iters` (or until the wall-time budget, `training.max_minutes`, runs out),
    /// reporting every evaluation and every step to `observer`, which may also stop the loop.
    /// An evaluation comes before the step of the first, every `eval_interval`-th and the last
    /// iteration, and when the budget ends training (as the last iteration would have).
    pub fn train(&mut self, observer: &mut dyn Observer) -> Result<Stop> {
        let started = Instant::now();
        self.deadline = self
            .training
            .max_minutes
            .and_then(|minutes| Duration::try_from_secs_f64(minutes * 60.0).ok())
            .and_then(|budget| started.checked_add(budget));
        let max_iters = self.training.max_iters;
        while self.iteration() < max_iters {
            if self.evaluation_due() {
                let evaluation = self.evaluate()?;
                observer.evaluated(self, &evaluation)?;
            }
            self.step()?;
            if !observer.stepped(self)? {
                return Ok(match self.iteration() >= max_iters {
                    true => Stop::Finished,
                    false => Stop::Interrupted,
                });
            }
            // Every replica's clock has a say, through the step's exchange, so all stop together.
            if self.requests.out_of_time && self.iteration() < max_iters {
                if !self.evaluated_now() {
                    let evaluation = self.evaluate()?;
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

/// What the training loop reports to: the command line's run (its log, metrics and checkpoints),
/// a test's, or a program's own ([`on_evaluation`] makes one of a closure).
pub trait Observer {
    /// After each evaluation; an error (e.g. a diverged loss) stops training.
    fn evaluated(&mut self, trainer: &Trainer, evaluation: &Evaluation) -> Result<()>;
    /// After each step; `false` stops training (Ctrl-C).
    fn stepped(&mut self, trainer: &Trainer) -> Result<bool>;
}

/// An observer that calls `f` with every evaluation and lets training run to its end: the
/// simplest way to watch the loss from a program.
///
/// ```no_run
/// # fn demo(trainer: &mut gptbuild::Trainer) -> gptbuild::Result<()> {
/// trainer.train(&mut gptbuild::train::on_evaluation(|e| println!("{}", e.log_line())))?;
/// # Ok(())
/// # }
/// ```
pub fn on_evaluation<F: FnMut(&Evaluation)>(f: F) -> impl Observer {
    OnEvaluation(f)
}

/// The observer [`on_evaluation`] makes.
struct OnEvaluation<F>(F);

impl<F: FnMut(&Evaluation)> Observer for OnEvaluation<F> {
    fn evaluated(&mut self, _trainer: &Trainer, evaluation: &Evaluation) -> Result<()> {
        (self.0)(evaluation);
        Ok(())
    }

    fn stepped(&mut self, _trainer: &Trainer) -> Result<bool> {
        Ok(!interrupt::requested())
    }
}

/// An observer that watches nothing: training runs to its end (or to [`interrupt::request`]).
#[derive(Debug, Clone, Copy, Default)]
pub struct Quietly;

impl Observer for Quietly {
    fn evaluated(&mut self, _trainer: &Trainer, _evaluation: &Evaluation) -> Result<()> {
        Ok(())
    }

    fn stepped(&mut self, _trainer: &Trainer) -> Result<bool> {
        Ok(!interrupt::requested())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_replica_draws_its_own_dropout_and_rank_0_draws_what_one_process_did() {
        // One process's seeds, as they were before replicas existed.
        let before = |seed: u64, iteration: i64| {
            SplitMix64::stream(seed ^ DROPOUT_SALT, iteration as u64).next_u64()
        };
        for (seed, iteration) in [(1337, 0), (1337, 41), (7, 4999)] {
            assert_eq!(dropout_seed(seed, iteration, 0), before(seed, iteration));
            let ranks: Vec<u64> = (0..8).map(|r| dropout_seed(seed, iteration, r)).collect();
            let mut distinct = ranks.clone();
            distinct.sort_unstable();
            distinct.dedup();
            assert_eq!(
                distinct.len(),
                ranks.len(),
                "two ranks share masks: {ranks:?}"
            );
            assert_eq!(dropout_seed(seed, iteration, 3), ranks[3], "reproducible");
        }
        assert_ne!(dropout_seed(1337, 1, 1), dropout_seed(1337, 2, 1));
    }
}
