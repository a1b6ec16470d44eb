//! The command line: one file per command, each holding its arguments and a short `execute` over
//! the library ([`crate::workflow`] and the stages); this file lists the commands with their help,
//! and turns every failure into one line on stderr. `main.rs` only calls [`main`].

use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::error::{Error, Result};
use crate::interrupt::EXIT_INTERRUPTED;

pub mod bench;
pub mod devices;
pub mod evaluate;
pub mod export;
pub mod import;
pub mod inspect;
pub mod plot;
pub mod prepare;
pub mod run;
pub mod sample;
pub mod schema;
pub mod sweep;
pub mod trained_model;
pub mod values;

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
    /// Under torchrun (or with RANK, WORLD_SIZE, MASTER_ADDR, MASTER_PORT set) it trains
    /// data-parallel over c10d: batch_size stays the global batch, rank 0 writes and prints;
    /// GPTBUILD_DIST_TIMEOUT (seconds, default 300) bounds the wait for another rank.
    ///
    /// Examples:
    ///   gptbuild run architectures/task06.yaml
    ///   gptbuild run task05 --iters 2000 --seed 3 --threads 1
    ///   gptbuild run task07 --resume
    ///   torchrun --no-python --standalone --nproc-per-node 2 gptbuild run task06
    #[command(verbatim_doc_comment)]
    Run(run::RunArgs),
    /// Generate text from a trained model, streaming it as it is written.
    ///
    /// Examples:
    ///   gptbuild sample --spec task06 --tokens 300
    ///   gptbuild sample --spec task07.yaml --forever --top-k 20      (Ctrl-C stops it)
    ///   gptbuild sample --checkpoint runs/task06/RUN/model.safetensors --prompt "ROMEO:"
    #[command(verbatim_doc_comment)]
    Sample(sample::SampleArgs),
    /// Print a spec's layer/parameter table without training.
    ///
    /// Example: gptbuild inspect task05
    Inspect(inspect::InspectArgs),
    /// Draw the loss curves of runs into one PNG (validation solid, training dashed).
    ///
    /// A directory of runs (runs/task06) stands for its latest run.
    ///
    /// Examples:
    ///   gptbuild plot runs/task0* --out course.png
    ///   gptbuild plot runs/task06 --reference task06
    ///   gptbuild plot runs/tokenizers/15min/*/seed1337/* --y bits-per-character --x minutes
    #[command(verbatim_doc_comment)]
    Plot(plot::PlotArgs),
    /// Search hyperparameters: train every combination (or a random sample) of a sweep file's
    /// values, each within a budget; write a results table and the best spec beside it.
    ///
    /// Finished trials are recorded as they end: run it again to resume an interrupted sweep.
    ///
    /// Example:
    ///   gptbuild sweep sweeps/task06-lr.yaml
    #[command(verbatim_doc_comment)]
    Sweep(sweep::SweepArgs),
    /// Time training steps of a spec's model: ms per step, tokens/s and MFU against a matmul peak
    /// measured in the same run. Run it on a quiet machine.
    ///
    /// Examples:
    ///   gptbuild bench task06 --steps 50
    ///   gptbuild bench task07 --steps 5 --threads 2
    ///   gptbuild bench task07 --steps 5 --precision bf16
    ///   torchrun --no-python --standalone --nproc-per-node 2 gptbuild bench task07 --steps 3
    #[command(verbatim_doc_comment)]
    Bench(bench::BenchArgs),
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
    Evaluate(evaluate::EvaluateArgs),
    /// Tokenize a corpus once into train.bin / val.bin (uint16 or uint32 ids) and its tokenizer,
    /// as a spec's data section says; a spec whose data.path names the directory trains from the
    /// memory-mapped files, so a corpus larger than memory trains.
    ///
    /// Example:
    ///   gptbuild prepare my-corpus/ --spec my-bpe.yaml --out prepared/my-corpus
    #[command(verbatim_doc_comment)]
    Prepare(prepare::PrepareArgs),
    /// Write a trained model in another program's format: `hf`, a Hugging Face transformers
    /// directory that `AutoModelForCausalLM.from_pretrained` loads (Llama- and GPT-2-shaped specs
    /// with `head_bias: false`; any other spec is refused, naming the field in the way).
    ///
    /// Examples:
    ///   gptbuild export runs/task07-cpu-bf16/RUN --format hf --out exported/task07
    ///   gptbuild export runs/my-llama/RUN/model.safetensors --format hf --out exported/my-llama
    #[command(verbatim_doc_comment)]
    Export(export::ExportArgs),
    /// Read a Hugging Face GPT2LMHeadModel or LlamaForCausalLM directory (fp32, fp16 or bf16,
    /// sharded or not) into a gptbuild spec and checkpoint, to sample from or fine-tune
    /// (`training.init_from`).
    ///
    /// Example:
    ///   gptbuild import hf/gpt2 --out imported/gpt2
    #[command(verbatim_doc_comment)]
    Import(import::ImportArgs),
    /// Print what this binary's libtorch can run on: its directory, the CUDA backend and the GPUs
    /// it sees, and the CPU's matrix units (the first thing to run on a new machine).
    ///
    /// Example: gptbuild devices
    Devices,
    /// Print the JSON Schema of a spec, for editors (see the README for the hook-up).
    ///
    /// Example: gptbuild schema > schema/spec.schema.json
    Schema,
    /// Check a spec and print it resolved (every default and derived size written out).
    ///
    /// Example: gptbuild validate my-spec.yaml
    Validate { spec: String },
}

/// Parses the arguments, runs the command and turns any error into one line on stderr.
pub fn main() -> ExitCode {
    crate::allocator::retain_freed_memory();
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
        Command::Run(args) => run::execute(args, &mut out),
        Command::Sample(args) => sample::execute(args, &mut out),
        Command::Evaluate(args) => evaluate::execute(args, &mut out),
        Command::Prepare(args) => prepare::execute(args, &mut out),
        Command::Inspect(args) => inspect::execute(args, &mut out),
        Command::Plot(args) => plot::execute(args),
        Command::Sweep(args) => sweep::execute(args, &mut out),
        Command::Bench(args) => bench::execute(args, &mut out),
        Command::Export(args) => export::execute(args, &mut out),
        Command::Import(args) => import::execute(args, &mut out),
        Command::Devices => devices::execute(&mut out),
        Command::Schema => schema::schema(&mut out),
        Command::Validate { spec } => schema::validate(&spec, &mut out),
    }
}
