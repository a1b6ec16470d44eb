//! `gptbuild run`: train a spec, print the course's log, save checkpoints, print a sample.

use std::io::Write;

use crate::error::{Error, Result};
use crate::interrupt;
use crate::spec::find_spec;
use crate::workflow::run::{run, RunOptions};

/// `gptbuild run`'s arguments: the spec, and the fields the command line may override.
#[derive(Debug, clap::Args)]
pub struct RunArgs {
    /// Spec file, or a bare name looked up in architectures/ (task06, task06.yaml).
    pub spec: String,
    #[command(flatten)]
    pub options: RunOptions,
}

/// Trains; after Ctrl-C, says where the checkpoint is and how to continue.
pub fn execute(args: RunArgs, out: &mut dyn Write) -> Result<()> {
    interrupt::install()?;
    let outcome = run(&find_spec(&args.spec)?, &args.options, out)?;
    // The other ranks of a multi-process run are silent: rank 0 speaks for the run.
    if outcome.rank != 0 {
        return match outcome.finished {
            true => Ok(()),
            false => Err(Error::Interrupted),
        };
    }
    if !outcome.finished {
        eprintln!(
            "interrupted after iteration {}; checkpoint saved in {}\n\
             continue with: gptbuild run {} --resume",
            outcome.iteration,
            outcome.dir.display(),
            args.spec
        );
        return Err(Error::Interrupted);
    }
    eprintln!("run saved in {}", outcome.dir.display());
    Ok(())
}
