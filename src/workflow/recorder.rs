//! The run's policy, in one place: what happens at each evaluation and step of training. The
//! recorder prints the course's log line, appends to `metrics.csv`, stops a diverged run (keeping
//! the last good checkpoint), saves the checkpoint and training state, keeps the best checkpoint so
//! far, moves the progress bar, and stops the loop on Ctrl-C. In a multi-process run the first
//! replica records and the others follow ([`Follower`]).

use std::io::Write;
use std::path::{Path, PathBuf};

use crate::artifacts::checkpoint;
use crate::artifacts::metrics::Metrics;
use crate::artifacts::run_dir::{
    BEST_CHECKPOINT_FILE, CHECKPOINT_FILE, METRICS_FILE, TRAINING_STATE_FILE,
};
use crate::data::tokenizer::Tokenizer;
use crate::error::{Error, Result};
use crate::files::write_whole;
use crate::spec::Spec;
use crate::train::{Evaluation, Observer, Trainer};
use crate::workflow::progress::Progress;

/// Observes one run's training, writing into its directory.
pub struct Recorder<'r> {
    out: &'r mut dyn Write,
    dir: PathBuf,
    spec: &'r Spec,
    tokenizer: &'r dyn Tokenizer,
    metrics: Metrics,
    progress: Progress,
    /// This invocation's evaluations.
    evaluations: Vec<Evaluation>,
    /// The iteration of the last checkpoint with finite losses.
    last_good: Option<i64>,
    best_val: Option<f64>,
}

impl<'r> Recorder<'r> {
    /// A recorder continuing `metrics` (empty for a new run) for a trainer at `trainer`'s iteration.
    pub fn new(
        out: &'r mut dyn Write,
        dir: &Path,
        spec: &'r Spec,
        tokenizer: &'r dyn Tokenizer,
        metrics: Metrics,
        trainer: &Trainer,
    ) -> Self {
        let tokens_per_step = spec.training.batch_size * spec.model.block_size;
        let progress = Progress::new(
            trainer.iteration(),
            spec.training.max_iters,
            tokens_per_step,
        );
        Recorder {
            out,
            dir: dir.to_path_buf(),
            spec,
            tokenizer,
            best_val: metrics.best_val_loss(),
            metrics,
            progress,
            evaluations: Vec::new(),
            last_good: None,
        }
    }

    /// The log line, on the output the run prints to (between progress bar redraws).
    fn log(&mut self, line: &str) -> Result<()> {
        let out = &mut self.out;
        self.progress.suspend(|| -> Result<()> {
            writeln!(out, "{line}").map_err(Error::io("writing the log"))?;
            out.flush().map_err(Error::io("writing the log"))
        })
    }

    /// Saves the weights (with the spec and vocabulary) and the training state, as one: if either
    /// cannot be written, the previous checkpoint stays whole.
    pub fn save(&self, trainer: &Trainer) -> Result<()> {
        checkpoint::save_resumable(
            (
                &self.dir.join(CHECKPOINT_FILE),
                &self.dir.join(TRAINING_STATE_FILE),
            ),
            &trainer.var_store,
            self.spec,
            self.tokenizer,
            &trainer.state(),
        )
    }

    fn save_weights(&self, trainer: &Trainer, file: &str) -> Result<()> {
        let path = self.dir.join(file);
        let iteration = trainer.iteration();
        checkpoint::save(
            &path,
            &trainer.var_store,
            self.spec,
            self.tokenizer,
            iteration,
        )
    }

    /// This invocation's evaluations, in order.
    pub fn into_evaluations(self) -> Vec<Evaluation> {
        self.evaluations
    }

    /// Takes the progress bar off the terminal.
    pub fn finish_progress(&self) {
        self.progress.finish();
    }
}

impl Observer for Recorder<'_> {
    fn evaluated(&mut self, trainer: &Trainer, evaluation: &Evaluation) -> Result<()> {
        self.log(&evaluation.log_line())?;
        self.metrics.record(evaluation);
        write_whole(&self.dir.join(METRICS_FILE), self.metrics.csv().as_bytes())?;
        self.evaluations.push(*evaluation);
        if !evaluation.is_finite() {
            return Err(Error::Diverged {
                iteration: evaluation.iteration,
                dir: self.dir.clone(),
                last_good: self.last_good,
            });
        }
        self.save(trainer)?;
        self.last_good = Some(evaluation.iteration);
        let best = self.best_val.is_none_or(|best| evaluation.val_loss < best);
        if self.spec.training.keep_best && best {
            self.best_val = Some(evaluation.val_loss);
            self.save_weights(trainer, BEST_CHECKPOINT_FILE)?;
        }
        Ok(())
    }

    fn stepped(&mut self, trainer: &Trainer) -> Result<bool> {
        self.progress.step(trainer);
        Ok(!trainer.stop_requested())
    }
}

/// What a replica other than the first observes: nothing to write (rank 0 writes the run), but
/// the same decisions to take, at the same iterations, so that all replicas stop together.
pub struct Follower {
    pub rank: usize,
}

impl Observer for Follower {
    fn evaluated(&mut self, _trainer: &Trainer, evaluation: &Evaluation) -> Result<()> {
        match evaluation.is_finite() {
            true => Ok(()),
            false => Err(Error::Distributed {
                rank: self.rank,
                message: format!(
                    "the loss diverged at iteration {}; rank 0 says which checkpoint is kept",
                    evaluation.iteration
                ),
            }),
        }
    }

    fn stepped(&mut self, trainer: &Trainer) -> Result<bool> {
        Ok(!trainer.stop_requested())
    }
}
