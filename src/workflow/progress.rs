//! A progress bar for training on stderr — iteration, latest loss, tokens per second, ETA — shown
//! only when stderr is a terminal, so that logs, pipes and CI output stay exactly the course's
//! lines on stdout.

use std::io::IsTerminal;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::train::Trainer;

/// Steps between loss read-outs: reading the loss waits for the device, so not every step.
const LOSS_EVERY: i64 = 10;

pub struct Progress {
    bar: Option<ProgressBar>,
    tokens_per_step: i64,
}

impl Progress {
    /// A bar from iteration `start` to `total`; hidden unless stderr is a terminal.
    pub fn new(start: i64, total: i64, tokens_per_step: i64) -> Self {
        let bar = std::io::stderr().is_terminal().then(|| {
            let bar = ProgressBar::with_draw_target(
                Some(total.max(0) as u64),
                ProgressDrawTarget::stderr(),
            );
            let style =
                ProgressStyle::with_template("{bar:24.cyan/blue} {pos}/{len} {msg} ETA {eta}")
                    .unwrap_or_else(|_| ProgressStyle::default_bar());
            bar.set_style(style);
            bar.set_position(start.max(0) as u64);
            bar.reset_eta();
            bar
        });
        Progress {
            bar,
            tokens_per_step,
        }
    }

    /// Records a finished step.
    pub fn step(&self, trainer: &Trainer) {
        let Some(bar) = &self.bar else { return };
        let iteration = trainer.iteration();
        bar.set_position(iteration.max(0) as u64);
        if iteration % LOSS_EVERY == 0 {
            let loss = trainer.last_loss().unwrap_or(f64::NAN);
            let tokens_per_second = bar.per_sec() * self.tokens_per_step as f64;
            bar.set_message(format!(
                "| loss {loss:.3} | {:.1}k tok/s |",
                tokens_per_second / 1000.0
            ));
        }
    }

    /// Runs `f` (which prints a log line) with the bar cleared, then redraws it.
    pub fn suspend<R>(&self, f: impl FnOnce() -> R) -> R {
        match &self.bar {
            Some(bar) => bar.suspend(f),
            None => f(),
        }
    }

    /// Removes the bar.
    pub fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}
