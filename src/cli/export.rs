//! `gptbuild export`: a trained model in another program's format.

use std::io::Write;
use std::path::{Path, PathBuf};

use tch::Device;

use crate::artifacts::checkpoint;
use crate::artifacts::run_dir::{BEST_CHECKPOINT_FILE, CHECKPOINT_FILE};
use crate::convert::hugging_face;
use crate::error::{Error, Result};

/// `gptbuild export`'s arguments.
#[derive(Debug, clap::Args)]
pub struct ExportArgs {
    /// A checkpoint file, or a run directory (its best checkpoint, else its latest).
    pub checkpoint: PathBuf,
    /// The format to write: `hf`, a Hugging Face transformers directory.
    #[arg(long, value_enum)]
    pub format: ExportFormat,
    /// Where to write it; must not exist yet.
    #[arg(long)]
    pub out: PathBuf,
}

/// A format `gptbuild export` writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ExportFormat {
    /// A transformers directory (`LlamaForCausalLM` or `GPT2LMHeadModel`).
    Hf,
}

/// The checkpoint a path names: the file itself, or a run directory's best checkpoint.
fn checkpoint_of(path: &Path) -> PathBuf {
    if path.is_dir() {
        let best = path.join(BEST_CHECKPOINT_FILE);
        if best.is_file() {
            return best;
        }
        return path.join(CHECKPOINT_FILE);
    }
    path.to_path_buf()
}

/// Reads the checkpoint and writes it in the format asked for.
pub fn execute(args: ExportArgs, out: &mut dyn Write) -> Result<()> {
    let path = checkpoint_of(&args.checkpoint);
    let loaded = checkpoint::load(&path, Device::Cpu)?;
    match args.format {
        ExportFormat::Hf => {
            let arch = hugging_face::export(&loaded, &path, &args.out)?;
            writeln!(
                out,
                "wrote {} as a {} ({} layers, width {}, vocabulary {}) to {}",
                path.display(),
                arch.family.class(),
                arch.n_layer,
                arch.n_embd,
                arch.vocab_size,
                args.out.display()
            )
            .map_err(Error::io("writing the summary"))
        }
    }
}
