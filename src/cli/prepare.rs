//! `gptbuild prepare`: tokenize a corpus once into nanoGPT's layout (`train.bin`, `val.bin`, the
//! tokenizer), so that runs whose `data.path` names the directory train from memory-mapped files.

use std::io::Write;
use std::path::PathBuf;

use indicatif::{ProgressBar, ProgressStyle};

use crate::data::prepared::prepare;
use crate::data::read_corpus;
use crate::error::{Error, Result};
use crate::spec::{find_spec, Spec};

/// `gptbuild prepare`'s arguments.
#[derive(Debug, clap::Args)]
pub struct PrepareArgs {
    /// The corpus: a text file or a directory of .txt files.
    pub corpus: PathBuf,
    /// The spec whose `data` section (tokenizer, train_fraction) to prepare with.
    #[arg(long)]
    pub spec: String,
    /// The directory to write.
    #[arg(long)]
    pub out: PathBuf,
}

pub fn execute(args: PrepareArgs, out: &mut dyn Write) -> Result<()> {
    let spec = Spec::load(&find_spec(&args.spec)?)?;
    let text = read_corpus(&args.corpus)?;
    let progress = ProgressBar::new(4);
    if let Ok(style) = ProgressStyle::with_template("{bar:20} {pos}/{len} {msg}") {
        progress.set_style(style);
    }
    let counts = prepare(
        &text,
        spec.data.train_fraction,
        spec.data.tokenizer.as_ref(),
        &args.out,
        |step| {
            progress.set_message(step.to_string());
            progress.inc(1);
        },
    );
    progress.finish_and_clear();
    let [train, val] = counts?;
    writeln!(
        out,
        "{}: {train} training and {val} validation tokens",
        args.out.display()
    )
    .map_err(Error::io("writing the summary"))?;
    Ok(())
}
