//! The command line. `main.rs` only calls [`main`]; every command is a short function over the
//! library, and every failure comes back as an [`Error`] for `main` to print as one line.

use crate::layers::precision::Precision;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};
use tch::nn::VarStore;
use tch::Device;

use crate::artifacts::checkpoint;
use crate::artifacts::run_dir::{self, RUNS_DIR};
use crate::data::{locate_corpus, read_corpus, Dataset, Split};
use crate::error::{Error, Result};
use crate::generate::stream::{stream, SampleRequest, StreamEnd};
use crate::interrupt::{self, EXIT_INTERRUPTED};
use crate::model::summary::{parameter_table, FlopsPerToken};
use crate::model::Gpt;
use crate::resources::{self, MemoryEstimate};
use crate::spec::schema::spec_schema;
use crate::spec::Decoding;
use crate::spec::{find_spec, DeviceSpec, Spec};
use crate::train::evaluate::score_split;
use crate::train::select_device;
use crate::workflow::plot::{self, Curve, PlotStyle, XAxis};
use crate::workflow::run::{run, RunOptions, BEST_CHECKPOINT_FILE, CHECKPOINT_FILE};

/// Exit code for a failed command (usage errors exit with clap's 2).
pub const EXIT_FAILURE: u8 = 1;

#[derive(Debug, Parser)]
#[command(
    name = "gptbuild",
    version,
    about = "Build, train and sample GPT language models from YAML specs",
    after_help = "SPEC is a file, or a bare name looked up in architectures/ (task06, task06.yaml).\n\
                  Exit codes: 0 success (also when the reader of the output goes away), 1 an error \
                  (one line on stderr), 2 a malformed command line, 130 stopped by Ctrl-C or SIGTERM."
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Train a spec, print the course's log, save a checkpoint and print a sample.
    ///
    /// A checkpoint is saved after every evaluation; Ctrl-C or SIGTERM stops after the current
    /// step with a checkpoint (exit 130), and --resume continues from it.
    ///
    /// Examples:
    ///   gptbuild run architectures/task06.yaml
    ///   gptbuild run task05 --iters 2000 --seed 3 --threads 1
    ///   gptbuild run task07 --resume
    #[command(verbatim_doc_comment)]
    Run {
        /// Spec file, or a bare name looked up in architectures/ (task06, task06.yaml).
        spec: String,
        #[command(flatten)]
        overrides: Overrides,
    },
    /// Generate text from a trained model, streaming it as it is written.
    ///
    /// Examples:
    ///   gptbuild sample --spec task06 --tokens 300
    ///   gptbuild sample --spec task07.yaml --forever --top-k 20      (Ctrl-C stops it)
    ///   gptbuild sample --checkpoint runs/task06/RUN/model.safetensors --prompt "ROMEO:"
    #[command(verbatim_doc_comment)]
    Sample(SampleArgs),
    /// Print a spec's layer/parameter table without training.
    ///
    /// Example: gptbuild inspect task05
    Inspect {
        spec: String,
        /// Vocabulary size to build with (Tiny Shakespeare has 65 characters).
        #[arg(long, default_value_t = 65,
              value_parser = clap::value_parser!(i64).range(1..=crate::layers::MAX_SIZE))]
        vocab_size: i64,
    },
    /// Draw the loss curves of runs into one PNG (validation solid, training dashed).
    ///
    /// A directory of runs (runs/task06) stands for its latest run.
    ///
    /// Examples:
    ///   gptbuild plot runs/task0* --out course.png
    ///   gptbuild plot runs/task06 --reference task06
    #[command(verbatim_doc_comment)]
    Plot {
        /// Run directories (holding metrics.csv), or directories of runs.
        #[arg(required_unless_present = "reference")]
        runs: Vec<PathBuf>,
        /// Also draw the course's curve for this task (task01 … task07); repeatable.
        #[arg(long, value_name = "TASK")]
        reference: Vec<String>,
        /// The PNG to write.
        #[arg(long, default_value = "loss.png")]
        out: PathBuf,
        /// Image width in pixels.
        #[arg(long, default_value_t = 1000)]
        width: u32,
        /// Image height in pixels.
        #[arg(long, default_value_t = 640)]
        height: u32,
        /// The horizontal axis: iterations, or wall-clock minutes.
        #[arg(long, value_enum, default_value = "iteration")]
        x: XAxis,
        /// Draw validation curves only.
        #[arg(long)]
        val_only: bool,
        /// Legend labels for the runs, in order (default: the run directories).
        #[arg(long)]
        label: Vec<String>,
        /// The caption.
        #[arg(long)]
        title: Option<String>,
        /// Upper end of the loss axis (zooms in on the late part of the curves).
        #[arg(long)]
        y_max: Option<f64>,
    },
    /// Search hyperparameters: train every combination (or a random sample) of a sweep file's
    /// values, each within a budget; write a results table and the best spec beside it.
    ///
    /// Finished trials are recorded as they end: run it again to resume an interrupted sweep.
    ///
    /// Example:
    ///   gptbuild sweep sweeps/task06-lr.yaml
    #[command(verbatim_doc_comment)]
    Sweep {
        /// The sweep file (YAML: base, search, budget, set, vary).
        sweep: PathBuf,
        /// Corpus file (else $GPTBUILD_DATA, the spec's data.path, data/tinyshakespeare.txt, download).
        #[arg(long)]
        data: Option<PathBuf>,
        /// Where run directories are created (the trials go to RUNS_DIR/sweeps/NAME/).
        #[arg(long)]
        runs_dir: Option<PathBuf>,
    },
    /// Time training steps of a spec's model: ms per step, tokens/s and MFU against a matmul peak
    /// measured in the same run. Run it on a quiet machine.
    ///
    /// Examples:
    ///   gptbuild bench task06 --steps 50
    ///   gptbuild bench task07 --steps 5 --threads 2
    ///   gptbuild bench task07 --steps 5 --precision bf16
    #[command(verbatim_doc_comment)]
    Bench {
        spec: String,
        /// Timed steps (the median is reported), at least 1.
        #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u64).range(1..))]
        steps: u64,
        /// Untimed steps first.
        #[arg(long, default_value_t = 3)]
        warmup: u64,
        /// libtorch threads (default: the spec's training.threads).
        #[arg(long)]
        threads: Option<i64>,
        #[arg(long, value_enum)]
        device: Option<DeviceArg>,
        /// fp32 or bf16 mixed precision (default: the spec's training.precision); the matmul
        /// peak is measured in the same dtype.
        #[arg(long, value_enum)]
        precision: Option<Precision>,
    },
    /// Score a trained model on every character of a split, not on random batches: the number to
    /// compare models by (the training log's estimate wobbles by about ±0.01).
    ///
    /// The default stride (the context length) cuts the split into back-to-back windows, which
    /// measures what the training log estimates; a smaller stride gives each character more
    /// context (stride 1: all of it, at the context length times the cost).
    ///
    /// Examples:
    ///   gptbuild evaluate --spec task07-cpu                 (best checkpoint of the latest run)
    ///   gptbuild evaluate --checkpoint runs/task06/RUN/model.safetensors --split both
    ///   gptbuild evaluate --spec task06 --stride 1
    #[command(verbatim_doc_comment)]
    Evaluate(EvaluateArgs),
    /// Print the JSON Schema of a spec, for editors (see the README for the hook-up).
    ///
    /// Example: gptbuild schema > schema/spec.schema.json
    Schema,
    /// Check a spec and print it resolved (every default and derived size written out).
    ///
    /// Example: gptbuild validate my-spec.yaml
    Validate { spec: String },
}

/// Which trained model a command reads: a checkpoint file, or the latest run of a spec.
#[derive(Debug, clap::Args)]
pub struct TrainedModel {
    /// Use the best checkpoint (lowest validation loss) of the latest run of this spec; with
    /// --checkpoint, check that the checkpoint holds this spec's model.
    #[arg(long, required_unless_present = "checkpoint")]
    pub spec: Option<String>,
    /// Use this checkpoint file.
    #[arg(long)]
    pub checkpoint: Option<PathBuf>,
    /// Where runs are kept.
    #[arg(long, default_value = RUNS_DIR)]
    pub runs_dir: PathBuf,
}

/// `gptbuild sample`'s arguments. Decoding settings default to the trained spec's `sampling`.
#[derive(Debug, clap::Args)]
pub struct SampleArgs {
    #[command(flatten)]
    pub model: TrainedModel,
    /// Characters to generate [default: the spec's sampling.tokens].
    #[arg(long, conflicts_with = "forever")]
    pub tokens: Option<u64>,
    /// Generate until Ctrl-C, SIGTERM or a closed pipe.
    #[arg(long)]
    pub forever: bool,
    /// Text to continue (every character must be in the model's vocabulary).
    #[arg(long, default_value = "")]
    pub prompt: String,
    /// Below 1 sharper, above 1 more adventurous.
    #[arg(long)]
    pub temperature: Option<f64>,
    /// Draw only among the K most likely characters.
    #[arg(long, value_name = "K")]
    pub top_k: Option<i64>,
    /// Draw only among the most likely characters whose probabilities add up to P (0 < P <= 1).
    #[arg(long, value_name = "P")]
    pub top_p: Option<f64>,
    /// Same seed, same text.
    #[arg(long)]
    pub seed: Option<u64>,
    /// Recompute the whole context window for every character instead of using the KV cache.
    #[arg(long)]
    pub no_cache: bool,
    /// Print characters per second to stderr at the end.
    #[arg(long)]
    pub stats: bool,
}

/// `gptbuild evaluate`'s arguments.
#[derive(Debug, clap::Args)]
pub struct EvaluateArgs {
    #[command(flatten)]
    pub model: TrainedModel,
    /// The split to score.
    #[arg(long, value_enum, default_value = "val")]
    pub split: SplitArg,
    /// Characters between the starts of consecutive windows, 1 to the context length
    /// [default: the context length].
    #[arg(long)]
    pub stride: Option<i64>,
    /// Corpus file (else $GPTBUILD_DATA, the spec's data.path, data/tinyshakespeare.txt, download).
    #[arg(long)]
    pub data: Option<PathBuf>,
    /// libtorch threads (default: the trained spec's training.threads).
    #[arg(long)]
    pub threads: Option<i64>,
    #[arg(long, value_enum, default_value = "auto")]
    pub device: DeviceArg,
}

/// The splits `gptbuild evaluate` can score.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum SplitArg {
    Val,
    Train,
    Both,
}

impl SplitArg {
    fn splits(self) -> &'static [Split] {
        match self {
            SplitArg::Val => &[Split::Val],
            SplitArg::Train => &[Split::Train],
            SplitArg::Both => &[Split::Train, Split::Val],
        }
    }
}

/// Spec fields a run can override from the command line.
#[derive(Debug, clap::Args)]
pub struct Overrides {
    /// Corpus file (else $GPTBUILD_DATA, the spec's data.path, data/tinyshakespeare.txt, download).
    #[arg(long)]
    pub data: Option<PathBuf>,
    /// Training iterations.
    #[arg(long)]
    pub iters: Option<i64>,
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
    pub device: Option<DeviceArg>,
    /// Where run directories are created.
    #[arg(long)]
    pub runs_dir: Option<PathBuf>,
    /// Stop training after this many minutes of wall time, with a final evaluation.
    #[arg(long)]
    pub max_minutes: Option<f64>,
    /// Continue the latest run of this spec from its last checkpoint (optimizer state, step
    /// counter and random streams included); starts a new run if there is none.
    #[arg(long)]
    pub resume: bool,
    /// Matrix products in fp32, or bf16 mixed precision (fp32 weights, norms, softmax and loss).
    #[arg(long, value_enum)]
    pub precision: Option<Precision>,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum DeviceArg {
    Auto,
    Cpu,
    Cuda,
}

impl From<DeviceArg> for DeviceSpec {
    fn from(arg: DeviceArg) -> Self {
        match arg {
            DeviceArg::Auto => DeviceSpec::Auto,
            DeviceArg::Cpu => DeviceSpec::Cpu,
            DeviceArg::Cuda => DeviceSpec::Cuda,
        }
    }
}

/// Parses the arguments, runs the command and turns any error into one line on stderr.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    match execute(cli.command) {
        Ok(()) => ExitCode::SUCCESS,
        // A reader that went away (`| head`) is not an error worth reporting.
        Err(Error::Io { source, .. }) if source.kind() == std::io::ErrorKind::BrokenPipe => {
            ExitCode::SUCCESS
        }
        Err(Error::Interrupted) => ExitCode::from(EXIT_INTERRUPTED),
        Err(error) => {
            eprintln!("error: {error}");
            ExitCode::from(EXIT_FAILURE)
        }
    }
}

/// Runs one command, writing its normal output to stdout.
pub fn execute(command: Command) -> Result<()> {
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    match command {
        Command::Run { spec, overrides } => {
            let options = RunOptions {
                data: overrides.data,
                runs_dir: overrides.runs_dir,
                max_iters: overrides.iters,
                eval_interval: overrides.eval_interval,
                eval_iters: overrides.eval_iters,
                seed: overrides.seed,
                threads: overrides.threads,
                device: overrides.device.map(DeviceSpec::from),
                resume: overrides.resume,
                max_minutes: overrides.max_minutes,
                precision: overrides.precision,
            };
            interrupt::install()?;
            let outcome = run(&find_spec(&spec)?, &options, &mut out)?;
            if !outcome.finished {
                eprintln!(
                    "interrupted after iteration {}; checkpoint saved in {}\n\
                     continue with: gptbuild run {spec} --resume",
                    outcome.iteration,
                    outcome.dir.display()
                );
                return Err(Error::Interrupted);
            }
            eprintln!("run saved in {}", outcome.dir.display());
            Ok(())
        }
        Command::Sample(args) => sample(args, &mut out),
        Command::Evaluate(args) => evaluate(args, &mut out),
        Command::Inspect { spec, vocab_size } => {
            let spec = Spec::load(&find_spec(&spec)?)?;
            MemoryEstimate::weights(&spec.model, vocab_size).check(Device::Cpu)?;
            let vs = VarStore::new(Device::Cpu);
            let _model = Gpt::try_new(&vs.root(), &spec.model, spec.dims(vocab_size))?;
            let flops = FlopsPerToken::of(&vs, &spec.model);
            let memory = MemoryEstimate::training(&spec, vocab_size);
            writeln!(
                out,
                "{}FLOPs per token (full context of {}): forward {}, training step {}\n\
                 memory to train, at most about: {} for {}",
                parameter_table(&vs),
                spec.model.block_size,
                flops.forward,
                flops.training,
                memory.gib(),
                memory.what,
            )
            .map_err(Error::io("writing the table"))
        }
        Command::Plot {
            runs,
            reference,
            out,
            width,
            height,
            x,
            val_only,
            label,
            title,
            y_max,
        } => {
            if label.len() > runs.len() {
                return Err(Error::Usage(format!(
                    "{} labels for {} runs",
                    label.len(),
                    runs.len()
                )));
            }
            if x == XAxis::Minutes && !reference.is_empty() {
                return Err(Error::Usage(
                    "the course's reference curves have no wall-clock times; use --x iteration"
                        .into(),
                ));
            }
            let mut curves = runs
                .iter()
                .map(|dir| Curve::of_run(dir, x))
                .collect::<Result<Vec<_>>>()?;
            for (curve, name) in curves.iter_mut().zip(label) {
                curve.label = name;
            }
            for task in &reference {
                curves.push(Curve::reference(task)?);
            }
            let style = PlotStyle {
                x_axis: x,
                val_only,
                title,
                y_max,
            };
            plot::draw(
                &curves,
                &out,
                (width.clamp(200, 8000), height.clamp(150, 8000)),
                &style,
            )?;
            eprintln!("wrote {}", out.display());
            Ok(())
        }
        Command::Sweep {
            sweep,
            data,
            runs_dir,
        } => {
            interrupt::install()?;
            crate::workflow::sweep::sweep(&sweep, data, runs_dir, &mut out).map(|_| ())
        }
        Command::Bench {
            spec,
            steps,
            warmup,
            threads,
            device,
            precision,
        } => {
            let mut spec = Spec::load(&find_spec(&spec)?)?;
            spec.training.precision = precision.unwrap_or(spec.training.precision);
            match threads {
                Some(threads) => resources::set_threads(threads, "--threads")?,
                None => resources::set_threads(spec.training.threads, "training.threads")?,
            }
            let device = select_device(device.map_or(spec.training.device, DeviceSpec::from))?;
            let report = crate::workflow::bench::bench(&spec, steps, warmup, device)?;
            write!(out, "{}", report.table()).map_err(Error::io("writing the report"))
        }
        Command::Schema => {
            let schema = serde_json::to_string_pretty(&spec_schema())
                .map_err(|e| Error::Usage(format!("cannot write the schema: {e}")))?;
            writeln!(out, "{schema}").map_err(Error::io("writing the schema"))
        }
        Command::Validate { spec } => {
            let spec = Spec::load(&find_spec(&spec)?)?;
            write!(out, "{}", spec.to_yaml()).map_err(Error::io("writing the spec"))
        }
    }
}

/// The best checkpoint (lowest validation loss) of the latest run of `spec`, else its latest.
fn latest_checkpoint(runs_dir: &Path, spec: &Spec) -> Result<PathBuf> {
    let dir = run_dir::latest_with(runs_dir, spec.name(), CHECKPOINT_FILE).ok_or_else(|| {
        Error::Checkpoint {
            path: runs_dir.join(spec.name()),
            message: format!(
                "no trained run of {0}; train it first with `gptbuild run {0}`",
                spec.name()
            ),
        }
    })?;
    let best = dir.join(BEST_CHECKPOINT_FILE);
    Ok(if best.is_file() {
        best
    } else {
        dir.join(CHECKPOINT_FILE)
    })
}

impl TrainedModel {
    /// Loads `--checkpoint`, or else the best checkpoint of the latest run of `--spec`; with
    /// both, checks that the checkpoint holds the spec's model.
    fn load(self, device: Device) -> Result<(PathBuf, checkpoint::LoadedModel)> {
        let spec = self
            .spec
            .map(|name| Spec::load(&find_spec(&name)?))
            .transpose()?;
        let path = match (self.checkpoint, &spec) {
            (Some(path), _) => path,
            (None, Some(spec)) => latest_checkpoint(&self.runs_dir, spec)?,
            (None, None) => return Err(Error::Usage("give --spec or --checkpoint".into())),
        };
        let loaded = checkpoint::load(&path, device)?;
        if let Some(spec) = &spec {
            checkpoint::ensure_same_model(&path, spec, &loaded.spec)?;
        }
        Ok((path, loaded))
    }
}

/// `gptbuild evaluate`: scores a checkpoint on whole splits of the corpus it was trained on.
fn evaluate(args: EvaluateArgs, out: &mut dyn Write) -> Result<()> {
    let device = select_device(args.device.into())?;
    let (path, loaded) = args.model.load(device)?;
    let block_size = loaded.spec.model.block_size;
    let stride = args.stride.unwrap_or(block_size);
    if !(1..=block_size).contains(&stride) {
        return Err(Error::Usage(format!(
            "--stride: {stride} is not between 1 and the context length {block_size}"
        )));
    }
    match args.threads {
        Some(threads) => resources::set_threads(threads, "--threads")?,
        None => resources::set_threads(loaded.spec.training.threads, "training.threads")?,
    }
    MemoryEstimate::inference(
        &loaded.spec.model,
        loaded.vocab.len() as i64,
        resources::EVALUATION_TOKENS as u64,
        &format!("evaluation (context {block_size})"),
    )
    .check(device)?;
    let corpus = locate_corpus(args.data.as_deref(), loaded.spec.data.path.as_deref())?;
    let text = read_corpus(&corpus)?;
    let dataset = Dataset::new(
        &text,
        &loaded.vocab,
        loaded.spec.data.train_fraction,
        block_size,
        device,
    )?;
    writeln!(out, "{} (iteration {})", path.display(), loaded.iteration)
        .map_err(Error::io("writing the scores"))?;
    for &split in args.split.splits() {
        let score = score_split(&loaded.model, &dataset, split, stride);
        writeln!(
            out,
            "{} loss {:.4} over {} characters ({} windows of {block_size}, stride {stride})",
            match split {
                Split::Train => "train",
                Split::Val => "val",
            },
            score.loss,
            score.tokens,
            score.windows,
        )
        .map_err(Error::io("writing the scores"))?;
    }
    Ok(())
}

/// `gptbuild sample`: finds the checkpoint, checks the request, streams the text.
fn sample(args: SampleArgs, out: &mut dyn Write) -> Result<()> {
    let (_, loaded) = args.model.load(Device::Cpu)?;
    let block_size = loaded.spec.model.block_size;
    MemoryEstimate::inference(
        &loaded.spec.model,
        loaded.vocab.len() as i64,
        block_size as u64,
        &format!("generation (context {block_size})"),
    )
    .check(Device::Cpu)?;
    let defaults = &loaded.spec.sampling;
    let decoding = Decoding {
        temperature: args.temperature.unwrap_or(defaults.temperature),
        top_k: args.top_k.or(defaults.top_k),
        top_p: args.top_p.or(defaults.top_p),
    };
    decoding.validate().map_err(|error| {
        Error::Usage(format!(
            "--{}: {}",
            error.field.replace('_', "-"),
            error.message
        ))
    })?;
    let request = SampleRequest {
        count: match args.forever {
            true => None,
            false => Some(args.tokens.unwrap_or(defaults.tokens.max(0) as u64)),
        },
        prompt: args.prompt,
        decoding,
        seed: args.seed.unwrap_or(defaults.seed),
        cached: !args.no_cache,
    };
    interrupt::install()?;
    let report = stream(&loaded, &request, out)?;
    if args.stats {
        eprintln!(
            "{} characters in {:.2} s: {:.1} characters/s ({})",
            report.tokens,
            report.seconds,
            report.tokens_per_second(),
            if request.cached {
                "KV cache"
            } else {
                "full recompute"
            }
        );
    }
    match report.end {
        StreamEnd::Interrupted => Err(Error::Interrupted),
        StreamEnd::Finished | StreamEnd::ReaderGone => Ok(()),
    }
}
