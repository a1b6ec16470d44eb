//! `gptbuild run`: spec in, trained model, log, checkpoint and sample out.
//!
//! Writes to `runs/<spec-name>/<run-id>/`: `spec.yaml` (resolved), `metrics.csv` (one row per
//! evaluation), `model.safetensors` (weights + spec + vocabulary) and `sample.txt`.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;

use tch::nn::VarStore;

use crate::checkpoint;
use crate::data::{locate_corpus, read_corpus, Dataset};
use crate::error::{Error, Result};
use crate::model::Gpt;
use crate::run_dir;
use crate::sample::generate;
use crate::spec::{DeviceSpec, Spec};
use crate::train::{select_device, Evaluation, Trainer};
use crate::vocab::Vocabulary;

/// The checkpoint's file name inside a run directory.
pub const CHECKPOINT_FILE: &str = "model.safetensors";

/// Command-line choices that override the spec (the resolved spec records the result).
#[derive(Debug, Clone, Default)]
pub struct RunOptions {
    pub data: Option<PathBuf>,
    pub runs_dir: Option<PathBuf>,
    pub max_iters: Option<i64>,
    pub eval_interval: Option<i64>,
    pub eval_iters: Option<i64>,
    pub seed: Option<u64>,
    pub threads: Option<i64>,
    pub device: Option<DeviceSpec>,
}

/// What a finished run produced.
#[derive(Debug)]
pub struct RunOutcome {
    pub dir: PathBuf,
    pub evaluations: Vec<Evaluation>,
    pub sample: String,
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
pub fn run(spec_path: &Path, options: &RunOptions, out: &mut dyn Write) -> Result<RunOutcome> {
    let mut spec = Spec::load(spec_path)?;
    options.apply(&mut spec, spec_path)?;
    let device = select_device(spec.training.device)?;
    if spec.training.threads > 0 {
        tch::set_num_threads(spec.training.threads as i32);
    }

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

    let runs_root = options
        .runs_dir
        .clone()
        .unwrap_or_else(|| PathBuf::from(run_dir::RUNS_DIR));
    let dir = run_dir::create(&runs_root, spec.name())?;
    write_file(&dir.join("spec.yaml"), spec.to_yaml().as_bytes())?;

    tch::manual_seed(spec.training.seed as i64);
    let var_store = VarStore::new(device);
    let model = Gpt::new(
        &var_store.root(),
        &spec.model,
        spec.dims(vocab.len() as i64),
    );
    let mut trainer = Trainer::new(model, var_store, &dataset, &spec.training);

    let mut metrics = String::from("iteration,train_loss,val_loss,elapsed_seconds\n");
    let started = Instant::now();
    let evaluations = trainer.train(|evaluation| {
        writeln!(out, "{}", evaluation.log_line()).map_err(Error::io("writing the log"))?;
        out.flush().map_err(Error::io("writing the log"))?;
        let Evaluation {
            iteration,
            train_loss,
            val_loss,
        } = evaluation;
        let elapsed = started.elapsed().as_secs_f64();
        metrics.push_str(&format!(
            "{iteration},{train_loss:.6},{val_loss:.6},{elapsed:.3}\n"
        ));
        write_file(&dir.join("metrics.csv"), metrics.as_bytes())
    })?;
    checkpoint::save(
        &dir.join(CHECKPOINT_FILE),
        &trainer.var_store,
        &spec,
        &vocab,
        trainer.iteration(),
    )?;

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
    write_file(&dir.join("sample.txt"), sample.as_bytes())?;
    Ok(RunOutcome {
        dir,
        evaluations,
        sample,
    })
}

fn write_file(path: &Path, bytes: &[u8]) -> Result<()> {
    std::fs::write(path, bytes).map_err(Error::io(format!("writing {}", path.display())))
}
