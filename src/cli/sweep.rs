//! `gptbuild sweep`: a hyperparameter search from a sweep file, resumable.

use std::io::Write;
use std::path::PathBuf;

use crate::error::Result;
use crate::interrupt;
use crate::workflow::sweep::sweep;

/// `gptbuild sweep`'s arguments.
#[derive(Debug, clap::Args)]
pub struct SweepArgs {
    /// The sweep file (YAML: base, search, budget, set, vary).
    pub sweep: PathBuf,
    /// Corpus file (else $GPTBUILD_DATA, the spec's data.path, data/tinyshakespeare.txt, download).
    #[arg(long)]
    pub data: Option<PathBuf>,
    /// Where run directories are created (the trials go to RUNS_DIR/sweeps/NAME/).
    #[arg(long)]
    pub runs_dir: Option<PathBuf>,
}

pub fn execute(args: SweepArgs, out: &mut dyn Write) -> Result<()> {
    interrupt::install()?;
    if crate::distributed::Launch::from_env()?.is_some() {
        return Err(crate::error::Error::Usage(
            "a sweep runs its trials one process each; launch `gptbuild run` under torchrun \
             for data-parallel training"
                .into(),
        ));
    }
    sweep(&args.sweep, args.data, args.runs_dir, out).map(|_| ())
}
