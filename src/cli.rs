//! The command line. `main.rs` only calls [`main`]; every command is a short function over the
//! library, and every failure comes back as an [`Error`] for `main` to print as one line.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};
use tch::nn::VarStore;
use tch::Device;

use crate::checkpoint::{self, LoadedModel};
use crate::error::{Error, Result};
use crate::model::Gpt;
use crate::run::{run, RunOptions, CHECKPOINT_FILE};
use crate::run_dir::{self, RUNS_DIR};
use crate::sample::generate;
use crate::spec::{find_spec, DeviceSpec, Spec};
use crate::summary::parameter_table;

/// Exit code for a failed command (usage errors exit with clap's 2).
pub const EXIT_FAILURE: u8 = 1;

#[derive(Debug, Parser)]
#[command(
    name = "gptbuild",
    version,
    about = "Build, train and sample GPT language models from YAML specs"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Train a spec, print the course's log, save a checkpoint and print a sample.
    ///
    /// Example: gptbuild run architectures/task06.yaml
    Run {
        /// Spec file, or a bare name looked up in architectures/ (task06, task06.yaml).
        spec: String,
        #[command(flatten)]
        overrides: Overrides,
    },
    /// Generate text from a trained model.
    ///
    /// Example: gptbuild sample --spec task06 --tokens 300
    Sample {
        /// Use the latest run of this spec; with --checkpoint, check that it holds this spec's model.
        #[arg(long, required_unless_present = "checkpoint")]
        spec: Option<String>,
        /// Use this checkpoint file.
        #[arg(long)]
        checkpoint: Option<PathBuf>,
        /// Characters to generate.
        #[arg(long, default_value_t = 500)]
        tokens: i64,
        /// Text to start from (every character must be in the model's vocabulary).
        #[arg(long)]
        prompt: Option<String>,
        /// Below 1 sharper, above 1 more adventurous.
        #[arg(long, default_value_t = 1.0)]
        temperature: f64,
        /// Same seed, same text.
        #[arg(long, default_value_t = 1337)]
        seed: u64,
        /// Where runs are kept.
        #[arg(long, default_value = RUNS_DIR)]
        runs_dir: PathBuf,
    },
    /// Print a spec's layer/parameter table without training.
    ///
    /// Example: gptbuild inspect task05
    Inspect {
        spec: String,
        /// Vocabulary size to build with (Tiny Shakespeare has 65 characters).
        #[arg(long, default_value_t = 65)]
        vocab_size: i64,
    },
    /// Check a spec and print it resolved (every default and derived size written out).
    ///
    /// Example: gptbuild validate my-spec.yaml
    Validate { spec: String },
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
            };
            let outcome = run(&find_spec(&spec)?, &options, &mut out)?;
            eprintln!("run saved in {}", outcome.dir.display());
            Ok(())
        }
        Command::Sample {
            spec,
            checkpoint,
            tokens,
            prompt,
            temperature,
            seed,
            runs_dir,
        } => {
            let spec = spec
                .map(|name| Spec::load(&find_spec(&name)?))
                .transpose()?;
            let path = match (checkpoint, &spec) {
                (Some(path), _) => path,
                (None, Some(spec)) => latest_checkpoint(&runs_dir, spec)?,
                (None, None) => unreachable!("clap requires --spec or --checkpoint"),
            };
            let loaded = checkpoint::load(&path, Device::Cpu)?;
            if let Some(spec) = &spec {
                ensure_same_model(&path, spec, &loaded.spec)?;
            }
            sample_model(
                &loaded,
                tokens,
                prompt.as_deref(),
                temperature,
                seed,
                &mut out,
            )
        }
        Command::Inspect { spec, vocab_size } => {
            let spec = Spec::load(&find_spec(&spec)?)?;
            let vs = VarStore::new(Device::Cpu);
            let _model = Gpt::new(&vs.root(), &spec.model, spec.dims(vocab_size));
            write!(out, "{}", parameter_table(&vs)).map_err(Error::io("writing the table"))
        }
        Command::Validate { spec } => {
            let spec = Spec::load(&find_spec(&spec)?)?;
            write!(out, "{}", spec.to_yaml()).map_err(Error::io("writing the spec"))
        }
    }
}

/// The checkpoint of the latest finished run of `spec`.
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
    Ok(dir.join(CHECKPOINT_FILE))
}

/// A checkpoint is only sampled as `spec` if it holds the model `spec` describes now.
fn ensure_same_model(path: &Path, spec: &Spec, trained: &Spec) -> Result<()> {
    if serde_norway::to_string(&spec.model).ok() == serde_norway::to_string(&trained.model).ok() {
        return Ok(());
    }
    Err(Error::Checkpoint {
        path: path.to_path_buf(),
        message: format!(
            "holds a different model than spec {} describes; train it again or sample the \
             checkpoint alone with --checkpoint",
            spec.name()
        ),
    })
}

fn sample_model(
    loaded: &LoadedModel,
    tokens: i64,
    prompt: Option<&str>,
    temperature: f64,
    seed: u64,
    out: &mut dyn Write,
) -> Result<()> {
    if !(temperature > 0.0 && temperature.is_finite()) {
        return Err(Error::Usage(format!(
            "--temperature must be a positive number, got {temperature}"
        )));
    }
    let context = match prompt {
        Some(text) if !text.is_empty() => loaded.vocab.encode(text)?,
        _ => vec![0],
    };
    write!(out, "{}", loaded.vocab.decode(&context)).map_err(Error::io("writing the sample"))?;
    tch::manual_seed(seed as i64);
    let mut failure = None;
    generate(
        &loaded.model,
        &context,
        tokens.max(0),
        temperature,
        Device::Cpu,
        |token| {
            let written =
                write!(out, "{}", loaded.vocab.decode(&[token])).and_then(|_| out.flush());
            failure = written.err();
            failure.is_none()
        },
    );
    if let Some(source) = failure {
        return Err(Error::Io {
            context: "writing the sample".into(),
            source,
        });
    }
    writeln!(out).map_err(Error::io("writing the sample"))
}
