//! `gptbuild run`: spec in, trained model, log, checkpoint and sample out.
//!
//! Writes to `runs/<spec-name>/<run-id>/`: `spec.yaml` (resolved), `metrics.csv` (one row per
//! evaluation), `model.safetensors` (weights + spec + vocabulary), `training.safetensors`
//! (optimizer moments, step, batch sampler state: what resuming needs), `best.safetensors` (the
//! weights with the lowest validation loss so far, unless `keep_best: false`) and `sample.txt`.

use crate::layers::precision::Precision;
use std::io::Write;
use std::path::{Path, PathBuf};

use std::time::{Duration, Instant};

use tch::nn::VarStore;
use tch::Device;

use crate::artifacts::checkpoint;
use crate::artifacts::metrics::Metrics;
use crate::artifacts::run_dir;
use crate::data::vocab::Vocabulary;
use crate::data::{locate_corpus, read_corpus, Dataset};
use crate::error::{Error, Result};
use crate::files::write_whole;
use crate::generate::sample::generate;
use crate::interrupt;
use crate::model::Gpt;
use crate::resources::{self, MemoryEstimate};
use crate::spec::{DeviceSpec, Spec};
use crate::train::{select_device, Evaluation, Trainer};
use crate::workflow::progress::Progress;

/// The checkpoint's file name inside a run directory.
pub const CHECKPOINT_FILE: &str = "model.safetensors";

/// The checkpoint with the lowest validation loss so far, beside the latest one.
pub const BEST_CHECKPOINT_FILE: &str = "best.safetensors";

/// The training state's file name inside a run directory (what resuming needs besides weights).
pub const TRAINING_STATE_FILE: &str = "training.safetensors";

/// The spec fields a run can override, from the command line (`gptbuild run`'s flags) or a caller;
/// the resolved spec records the result.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct RunOptions {
    /// Corpus file (else $GPTBUILD_DATA, the spec's data.path, data/tinyshakespeare.txt, download).
    #[arg(long)]
    pub data: Option<PathBuf>,
    /// Where run directories are created.
    #[arg(long)]
    pub runs_dir: Option<PathBuf>,
    /// Training iterations.
    #[arg(long = "iters", value_name = "ITERS")]
    pub max_iters: Option<i64>,
    /// Iterations between evaluations.
    #[arg(long)]
    pub eval_interval: Option<i64>,
    /// Batches per split in each evaluation.
    #[arg(long)]
    pub eval_iters: Option<i64>,
    /// Seed for initialisation, batches, dropout and the sample.
    #[arg(long)]
    pub seed: Option<u64>,
    /// libtorch threads (0: one per core).
    #[arg(long)]
    pub threads: Option<i64>,
    #[arg(long, value_enum)]
    pub device: Option<DeviceSpec>,
    /// Continue the latest run of this spec from its last checkpoint (optimizer state, step
    /// counter and random streams included); starts a new run if there is none.
    #[arg(long)]
    pub resume: bool,
    /// Stop training after this many minutes of wall time, with a final evaluation.
    #[arg(long)]
    pub max_minutes: Option<f64>,
    /// Matrix products in fp32, or bf16 mixed precision (fp32 weights, norms, softmax and loss).
    #[arg(long, value_enum)]
    pub precision: Option<Precision>,
}

/// What a run produced.
#[derive(Debug)]
pub struct RunOutcome {
    pub dir: PathBuf,
    /// The evaluations of this invocation (a resumed run's earlier ones are in `metrics.csv`).
    pub evaluations: Vec<Evaluation>,
    /// The sample, or empty if the run was interrupted.
    pub sample: String,
    /// False if the run stopped early on Ctrl-C / SIGTERM; its checkpoint can be resumed.
    pub finished: bool,
    /// Iterations completed.
    pub iteration: i64,
}

impl RunOptions {
    /// Applies the overrides to a loaded spec and re-validates it.
    pub fn apply(&self, spec: &mut Spec, spec_path: &Path) -> Result<()> {
        let training = &mut spec.training;
        training.max_iters = self.max_iters.unwrap_or(training.max_iters);
        training.eval_interval = self.eval_interval.unwrap_or(training.eval_interval);
        training.eval_iters = self.eval_iters.unwrap_or(training.eval_iters);
        training.seed = self.seed.unwrap_or(training.seed);
        training.threads = self.threads.unwrap_or(training.threads);
        training.device = self.device.unwrap_or(training.device);
        training.max_minutes = self.max_minutes.or(training.max_minutes);
        training.precision = self.precision.unwrap_or(training.precision);
        if let Some(seed) = self.seed {
            spec.sampling.seed = seed;
        }
        spec.resolve().map_err(|source| Error::SpecInvalid {
            path: spec_path.to_path_buf(),
            source,
        })
    }
}

/// Trains the spec at `spec_path`, printing the course's log to `out`, then samples from the model.
///
/// A checkpoint (weights + training state) is saved after every evaluation with finite losses, so
/// a crash loses at most one evaluation interval; Ctrl-C / SIGTERM (once [`crate::interrupt`] is
/// installed) stop after the current step with a checkpoint, and `resume` continues from it. A NaN
/// or infinite loss stops the run with [`Error::Diverged`], keeping the last good checkpoint.
pub fn run(spec_path: &Path, options: &RunOptions, out: &mut dyn Write) -> Result<RunOutcome> {
    let mut spec = Spec::load(spec_path)?;
    options.apply(&mut spec, spec_path)?;
    let device = select_device(spec.training.device)?;
    let threads_field = match options.threads {
        Some(_) => "--threads",
        None => "training.threads",
    };
    resources::set_threads(spec.training.threads, threads_field)?;

    let corpus_path = locate_corpus(options.data.as_deref(), spec.data.path.as_deref())?;
    let text = read_corpus(&corpus_path)?;
    let vocab = Vocabulary::from_text(&text);
    let dataset = Dataset::new(
        &text,
        &vocab,
        spec.data.train_fraction,
        spec.model.block_size,
        device,
    )?;
    MemoryEstimate::training(&spec, vocab.len() as i64).check(device)?;

    let runs_root = options
        .runs_dir
        .clone()
        .unwrap_or_else(|| PathBuf::from(run_dir::RUNS_DIR));
    let resumable = options
        .resume
        .then(|| run_dir::latest_with(&runs_root, spec.name(), TRAINING_STATE_FILE))
        .flatten();
    let (dir, mut trainer, mut metrics) = match resumable {
        Some(dir) => {
            let (trainer, metrics) = resume(&dir, &spec, &vocab, &dataset, device)?;
            eprintln!(
                "resuming {} at iteration {}",
                dir.display(),
                trainer.iteration()
            );
            (dir, trainer, metrics)
        }
        None => {
            if options.resume {
                eprintln!("nothing to resume for {}: starting a new run", spec.name());
            }
            let dir = run_dir::create(&runs_root, spec.name())?;
            tch::manual_seed(spec.training.seed as i64);
            let var_store = VarStore::new(device);
            let dims = spec.dims(vocab.len() as i64);
            let model = Gpt::try_new(&var_store.root(), &spec.model, dims)?;
            let trainer = Trainer::new(model, var_store, &dataset, &spec.training);
            (dir, trainer, Metrics::new())
        }
    };
    write_whole(&dir.join("spec.yaml"), spec.to_yaml().as_bytes())?;

    let save = |trainer: &Trainer| -> Result<()> {
        checkpoint::save_training_state(&dir.join(TRAINING_STATE_FILE), &trainer.state())?;
        checkpoint::save(
            &dir.join(CHECKPOINT_FILE),
            &trainer.var_store,
            &spec,
            &vocab,
            trainer.iteration(),
        )
    };
    let progress = Progress::new(
        trainer.iteration(),
        spec.training.max_iters,
        spec.training.batch_size * spec.model.block_size,
    );
    let mut evaluations = Vec::new();
    let mut last_good = None;
    let mut best_val = metrics.best_val_loss();
    // Logs an evaluation, records it, and checkpoints the model (and the best one so far).
    let mut record = |trainer: &Trainer, evaluation: &Evaluation| -> Result<()> {
        progress.suspend(|| -> Result<()> {
            writeln!(out, "{}", evaluation.log_line()).map_err(Error::io("writing the log"))?;
            out.flush().map_err(Error::io("writing the log"))
        })?;
        metrics.record(evaluation);
        write_whole(&dir.join("metrics.csv"), metrics.csv().as_bytes())?;
        evaluations.push(*evaluation);
        if !evaluation.is_finite() {
            return Err(Error::Diverged {
                iteration: evaluation.iteration,
                dir: dir.clone(),
                last_good,
            });
        }
        save(trainer)?;
        last_good = Some(evaluation.iteration);
        if spec.training.keep_best && best_val.is_none_or(|best| evaluation.val_loss < best) {
            best_val = Some(evaluation.val_loss);
            checkpoint::save(
                &dir.join(BEST_CHECKPOINT_FILE),
                &trainer.var_store,
                &spec,
                &vocab,
                trainer.iteration(),
            )?;
        }
        Ok(())
    };
    let started = Instant::now();
    let budget = spec
        .training
        .max_minutes
        .and_then(|minutes| Duration::try_from_secs_f64(minutes * 60.0).ok());
    let mut out_of_time = false;
    let finished = trainer.train(&mut record, |trainer| {
        progress.step(trainer);
        out_of_time = budget.is_some_and(|budget| started.elapsed() >= budget);
        Ok(!interrupt::requested() && !out_of_time)
    });
    progress.finish();
    let mut finished = finished?;
    if !finished && out_of_time && !interrupt::requested() {
        // The time budget ends training like the last iteration would: with an evaluation.
        if !trainer.evaluated_now() {
            let evaluation = trainer.evaluate();
            record(&trainer, &evaluation)?;
        }
        finished = true;
    }
    save(&trainer)?;
    if !finished {
        return Ok(RunOutcome {
            dir,
            evaluations,
            sample: String::new(),
            finished,
            iteration: trainer.iteration(),
        });
    }

    let sampling = &spec.sampling;
    writeln!(
        out,
        "Sampling {} tokens from a trained model:",
        sampling.tokens
    )
    .map_err(Error::io("writing the log"))?;
    tch::manual_seed(sampling.seed as i64);
    let mut tokens = vec![0];
    generate(
        &trainer.model,
        &[0],
        Some(sampling.tokens.max(0) as u64),
        &sampling.decoding(),
        true,
        device,
        |token| {
            tokens.push(token);
            true
        },
    );
    let sample = vocab.decode(&tokens);
    writeln!(out, "{sample}").map_err(Error::io("writing the sample"))?;
    write_whole(&dir.join("sample.txt"), sample.as_bytes())?;
    Ok(RunOutcome {
        dir,
        evaluations,
        sample,
        finished,
        iteration: trainer.iteration(),
    })
}

/// Rebuilds the trainer of the run in `dir` from its checkpoint and training state, checking that
/// they belong together, to `spec`'s model and to this corpus.
fn resume<'d>(
    dir: &Path,
    spec: &Spec,
    vocab: &Vocabulary,
    dataset: &'d Dataset,
    device: Device,
) -> Result<(Trainer<'d>, Metrics)> {
    let model_path = dir.join(CHECKPOINT_FILE);
    let loaded = checkpoint::load(&model_path, device)?;
    checkpoint::ensure_same_model(&model_path, spec, &loaded.spec)?;
    let mismatch = |message: String| Error::Checkpoint {
        path: model_path.clone(),
        message,
    };
    if &loaded.vocab != vocab {
        return Err(mismatch(
            "was trained on a corpus with a different vocabulary".into(),
        ));
    }
    let state = checkpoint::load_training_state(&dir.join(TRAINING_STATE_FILE), device)?;
    if state.step != loaded.iteration {
        return Err(mismatch(format!(
            "holds iteration {} but the training state beside it is at {}",
            loaded.iteration, state.step
        )));
    }
    let mut trainer = Trainer::new(loaded.model, loaded.var_store, dataset, &spec.training);
    trainer.restore(&state).map_err(mismatch)?;
    let metrics = Metrics::read(&dir.join("metrics.csv"), state.last_evaluation)?;
    Ok((trainer, metrics))
}
