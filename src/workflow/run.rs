//! `gptbuild run`: spec in, trained model, log, checkpoint and sample out.
//!
//! Writes to `runs/<spec-name>/<run-id>/`: `spec.yaml` (resolved), `metrics.csv` (one row per
//! evaluation), `model.safetensors` (weights + spec + vocabulary), `training.safetensors`
//! (optimizer moments, step, batch sampler state: what resuming needs), `best.safetensors` (the
//! weights with the lowest validation loss so far, unless `keep_best: false`) and `sample.txt`.
//!
//! Under `torchrun` (or with its variables set by hand, [`crate::distributed::launch`]) the same
//! run is data-parallel: every process joins one c10d group and trains its share of each batch.
//! Rank 0 is the run as one process would be (its directory, log, metrics, checkpoints, progress
//! bar, sample); it restores a checkpoint when resuming and hands its weights and state to the
//! others, which print and write nothing. The spec's `batch_size` stays the global batch, so a
//! checkpoint does not depend on how many processes trained it: a run resumes on any number.

use std::io::Write;
use std::path::{Path, PathBuf};

use tch::nn::VarStore;
use tch::Device;

use crate::artifacts::checkpoint;
use crate::artifacts::metrics::Metrics;
use crate::artifacts::run_dir::{
    self, RunLock, CHECKPOINT_FILE, METRICS_FILE, SAMPLE_FILE, SPEC_FILE, TRAINING_STATE_FILE,
};
use crate::data::tokenizer::{StoredTokenizer, Tokenizer};
use crate::data::{training_data, Dataset, Split};
use crate::distributed::{C10dReplicas, Launch};
use crate::error::{Error, Result};
use crate::files::write_whole;
use crate::generate::sample::generate;
use crate::layers::precision::Precision;
use crate::model::Gpt;
use crate::resources::{self, MemoryEstimate};
use crate::spec::{DeviceSpec, Spec, WrittenSpec};
use crate::train::replicas::Replicas;
use crate::train::{shares_for, Evaluation, Trainer};
use crate::workflow::recorder::{Follower, Recorder};

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
    /// The run directory (rank 0's; empty on the other ranks of a multi-process run, which
    /// write nothing).
    pub dir: PathBuf,
    /// This process's rank in a multi-process run, else 0.
    pub rank: usize,
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
    /// Applies the overrides to a spec as written, before it is resolved: a derived value (the
    /// cosine's `decay_iters` defaults to `max_iters`) follows the overridden one.
    pub fn apply(&self, spec: &mut WrittenSpec) {
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
    }
}

/// Trains the spec at `spec_path`, printing the course's log to `out`, then samples from the model.
///
/// A checkpoint (weights + training state) is saved after every evaluation with finite losses, so
/// a crash loses at most one evaluation interval; Ctrl-C / SIGTERM (once [`crate::interrupt`] is
/// installed) stop after the current step with a checkpoint, and `resume` continues from it. A NaN
/// or infinite loss stops the run with [`Error::Diverged`], keeping the last good checkpoint. What
/// happens at each evaluation is the [`Recorder`]'s business.
pub fn run(spec_path: &Path, options: &RunOptions, out: &mut dyn Write) -> Result<RunOutcome> {
    let launch = Launch::from_env()?;
    let spec = Spec::load_with(spec_path, |written| options.apply(written))?;
    let device = crate::device::select(spec.training.device)?;
    let device = launch
        .as_ref()
        .map_or(device, |launch| launch.device_for(device));
    resources::set_threads_from(options.threads, spec.training.threads)?;
    let default_threads = options.threads.unwrap_or(spec.training.threads) == 0;
    if let Some(threads) = launch
        .as_ref()
        .filter(|_| default_threads)
        .and_then(|launch| launch.default_threads(resources::available_cores()))
    {
        // "One thread per core" shared among this machine's processes, not one per core each.
        resources::set_threads(threads, "training.threads")?;
    }
    let (tokenizer, dataset) = training_data(
        options.data.as_deref(),
        spec.data.path.as_deref(),
        spec.data.train_fraction,
        spec.data.tokenizer.as_ref(),
        spec.model.block_size,
        device,
    )?;
    MemoryEstimate::training(&spec, tokenizer.vocab_size() as i64).check(device)?;

    let replicas = launch
        .as_ref()
        .map(|launch| C10dReplicas::join(launch, device))
        .transpose()?;
    let rank = launch.as_ref().map_or(0, |launch| launch.rank);
    if rank != 0 {
        let replicas = replicas.ok_or_else(|| Error::Usage("a rank without a group".into()))?;
        return follow(&spec, tokenizer.as_ref(), &dataset, device, replicas);
    }
    // Held until the run returns: one writer per run directory.
    let (dir, _lock, trainer, metrics) =
        start_or_resume(&spec, options, tokenizer.as_ref(), &dataset, device)?;
    // Checked before the replicas meet, as the other ranks check it (`follow`).
    let trainer = trainer.with_thread_split(shares_for(&spec.training, device))?;
    let mut trainer = match replicas {
        Some(replicas) => {
            let mut trainer = trainer.with_replicas(Box::new(replicas))?;
            trainer.synchronize_replicas(
                &replica_spec(&spec),
                data_fingerprint(tokenizer.as_ref(), &dataset),
            )?;
            trainer
        }
        None => trainer,
    };
    let metrics = metrics.with_characters_per_token(characters_per_token(&dataset));
    write_whole(&dir.join(SPEC_FILE), spec.to_yaml().as_bytes())?;
    let mut recorder = Recorder::new(out, &dir, &spec, tokenizer.as_ref(), metrics, &trainer);
    let stop = trainer.train(&mut recorder);
    recorder.finish_progress();
    let stop = stop?;
    recorder.save(&trainer)?;
    let evaluations = recorder.into_evaluations();
    let finished = stop.completed();
    let mut sample = String::new();
    if finished {
        sample = sample_after_training(&trainer.model, &spec, tokenizer.as_ref(), device, out)?;
        write_whole(&dir.join(SAMPLE_FILE), sample.as_bytes())?;
    }
    Ok(RunOutcome {
        dir,
        rank,
        evaluations,
        sample,
        finished,
        iteration: trainer.iteration(),
    })
}

/// A rank other than 0: trains in step with rank 0 from rank 0's weights and state, writing
/// nothing.
fn follow(
    spec: &Spec,
    tokenizer: &dyn Tokenizer,
    dataset: &Dataset,
    device: Device,
    replicas: C10dReplicas,
) -> Result<RunOutcome> {
    let rank = replicas.rank();
    let mut trainer = fresh_trainer(spec, tokenizer, dataset, device)?
        .with_replicas(Box::new(replicas))?
        .with_thread_split(shares_for(&spec.training, device))?;
    trainer.synchronize_replicas(&replica_spec(spec), data_fingerprint(tokenizer, dataset))?;
    let stop = trainer.train(&mut Follower { rank })?;
    Ok(RunOutcome {
        dir: PathBuf::new(),
        rank,
        evaluations: Vec::new(),
        sample: String::new(),
        finished: stop.completed(),
        iteration: trainer.iteration(),
    })
}

/// The resolved spec every process of a run must share, as YAML: all of it but
/// `training.threads`, which each machine may set for its own cores.
fn replica_spec(spec: &Spec) -> String {
    let mut value = serde_norway::to_value(spec).unwrap_or_default();
    if let Some(training) = value
        .get_mut("training")
        .and_then(serde_norway::Value::as_mapping_mut)
    {
        training.remove("threads");
    }
    serde_norway::to_string(&value).unwrap_or_default()
}

/// What identifies the training data among the processes of a run: the tokenizer and the sizes
/// of the splits, hashed.
fn data_fingerprint(tokenizer: &dyn Tokenizer, dataset: &Dataset) -> u64 {
    use sha2::{Digest, Sha256};
    let mut hash = Sha256::new();
    let stored = match tokenizer.stored() {
        StoredTokenizer::Characters(chars) => format!("characters:{chars}"),
        StoredTokenizer::HuggingFace(json) => format!("tokenizer.json:{json}"),
    };
    hash.update(stored.as_bytes());
    for split in [Split::Train, Split::Val] {
        hash.update(dataset.len(split).to_le_bytes());
        hash.update(dataset.scored_characters(split).to_le_bytes());
    }
    let digest = hash.finalize();
    u64::from_le_bytes(digest[..8].try_into().unwrap_or_default())
}

/// A trainer for `spec` with freshly initialised weights (seeded by the spec), or the weights of
/// `training.init_from`.
fn fresh_trainer<'d>(
    spec: &Spec,
    tokenizer: &dyn Tokenizer,
    dataset: &'d Dataset,
    device: Device,
) -> Result<Trainer<'d>> {
    tch::manual_seed(spec.training.seed as i64);
    let var_store = VarStore::new(device);
    let model = Gpt::try_new(&var_store.root(), spec, tokenizer.vocab_size() as i64)?;
    if let Some(path) = &spec.training.init_from {
        checkpoint::init_from(path, &var_store, spec, tokenizer)?;
    }
    Ok(Trainer::new(model, var_store, dataset, &spec.training))
}

/// Characters of text per token of the validation split: what converts its loss per token to bits
/// per character.
fn characters_per_token(dataset: &Dataset) -> f64 {
    let tokens = (dataset.len(Split::Val) - 1).max(1);
    dataset.scored_characters(Split::Val) as f64 / tokens as f64
}

/// The run directory (locked for this process), trainer and metrics: the latest run of the spec
/// continued (with `--resume`, when there is one), else a new run with freshly initialised weights.
fn start_or_resume<'d>(
    spec: &Spec,
    options: &RunOptions,
    tokenizer: &dyn Tokenizer,
    dataset: &'d Dataset,
    device: Device,
) -> Result<(PathBuf, RunLock, Trainer<'d>, Metrics)> {
    let runs_root = options
        .runs_dir
        .clone()
        .unwrap_or_else(|| PathBuf::from(run_dir::RUNS_DIR));
    let resumable = options
        .resume
        .then(|| run_dir::latest_with(&runs_root, spec.name(), TRAINING_STATE_FILE))
        .flatten();
    if let Some(dir) = resumable {
        // Before reading its checkpoint: another process may be writing it.
        let lock = run_dir::lock(&dir)?;
        let (trainer, metrics) = resume(&dir, spec, tokenizer, dataset, device)?;
        eprintln!(
            "resuming {} at iteration {}",
            dir.display(),
            trainer.iteration()
        );
        return Ok((dir, lock, trainer, metrics));
    }
    if options.resume {
        eprintln!("nothing to resume for {}: starting a new run", spec.name());
    }
    // The model first: a checkpoint `init_from` cannot start from leaves no empty run behind.
    let trainer = fresh_trainer(spec, tokenizer, dataset, device)?;
    let dir = run_dir::create(&runs_root, spec.name())?;
    let lock = run_dir::lock(&dir)?;
    Ok((dir, lock, trainer, Metrics::new()))
}

/// The course's sample after training: `sampling.tokens` characters from a newline, printed.
fn sample_after_training(
    model: &Gpt,
    spec: &Spec,
    tokenizer: &dyn Tokenizer,
    device: Device,
    out: &mut dyn Write,
) -> Result<String> {
    let sampling = &spec.sampling;
    let io = Error::io("writing the log");
    writeln!(
        out,
        "Sampling {} tokens from a trained model:",
        sampling.tokens
    )
    .map_err(io)?;
    tch::manual_seed(sampling.seed as i64);
    let start = tokenizer.start_token();
    let mut tokens = vec![start];
    let count = Some(sampling.tokens.max(0) as u64);
    generate(
        model,
        &[start],
        count,
        &sampling.decoding(),
        true,
        device,
        |token| {
            tokens.push(token);
            true
        },
    );
    let sample = tokenizer.decode(&tokens);
    writeln!(out, "{sample}").map_err(Error::io("writing the sample"))?;
    Ok(sample)
}

/// Rebuilds the trainer of the run in `dir` from its checkpoint and training state, checking that
/// they belong together, to `spec`'s model and to this corpus.
fn resume<'d>(
    dir: &Path,
    spec: &Spec,
    tokenizer: &dyn Tokenizer,
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
    if loaded.tokenizer.stored() != tokenizer.stored() {
        return Err(mismatch(
            "was trained with a different tokenizer (or on a corpus with a different vocabulary)"
                .into(),
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
    let metrics = Metrics::read(&dir.join(METRICS_FILE), state.last_evaluation)?;
    Ok((trainer, metrics))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::schedule::AfterWarmup;

    /// Overrides are written values: a default derived from one follows it. (Before the written
    /// and resolved types were split, `--iters` changed `max_iters` after the cosine's
    /// `decay_iters` had already been set from the spec's.)
    #[test]
    fn the_cosine_ends_at_the_overridden_iterations() {
        let yaml = "model: {block_size: 8, n_embd: 8, block: {attention: {kind: head}}}\n\
                    training: {max_iters: 5000, schedule: {decay: cosine}}\n";
        let mut written = WrittenSpec::parse(yaml).expect("a valid spec");
        let options = RunOptions {
            max_iters: Some(100),
            ..RunOptions::default()
        };
        options.apply(&mut written);
        let spec = written.resolve().expect("still valid");
        assert_eq!(spec.training.max_iters, 100);
        match spec.training.schedule.after_warmup {
            AfterWarmup::Cosine { end, .. } => assert_eq!(end, 100),
            AfterWarmup::Constant => panic!("the cosine stays"),
        }
    }
}
