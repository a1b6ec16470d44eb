//! `gptbuild import`: another program's model as a gptbuild spec and checkpoint.

use std::io::Write;
use std::path::PathBuf;

use crate::convert::hugging_face;
use crate::error::{Error, Result};

/// `gptbuild import`'s arguments.
#[derive(Debug, clap::Args)]
pub struct ImportArgs {
    /// A Hugging Face transformers directory (`GPT2LMHeadModel` or `LlamaForCausalLM`): its
    /// config.json, model.safetensors (or shards with their index) and tokenizer.json.
    pub dir: PathBuf,
    /// Where to write spec.yaml, model.safetensors and tokenizer.json; must not exist yet.
    #[arg(long)]
    pub out: PathBuf,
    /// A shorter context than the model's (`max_position_embeddings`, `n_positions`): what the
    /// spec's block_size will be.
    #[arg(long, value_parser = clap::value_parser!(i64).range(1..=crate::layers::MAX_SIZE))]
    pub block_size: Option<i64>,
}

/// Imports the directory and says what it wrote.
pub fn execute(args: ImportArgs, out: &mut dyn Write) -> Result<()> {
    let imported = hugging_face::import(&args.dir, &args.out, args.block_size)?;
    let arch = &imported.architecture;
    writeln!(
        out,
        "imported a {} ({} layers, width {}, vocabulary {}): spec {}, checkpoint {}",
        arch.family.class(),
        arch.n_layer,
        arch.n_embd,
        arch.vocab_size,
        imported.spec_path.display(),
        imported.checkpoint_path.display()
    )
    .map_err(Error::io("writing the summary"))
}
