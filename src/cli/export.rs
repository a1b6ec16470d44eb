//! `gptbuild export`: a trained model in another program's format.

use std::io::Write;
use std::path::{Path, PathBuf};

use tch::Device;

use crate::artifacts::checkpoint;
use crate::artifacts::run_dir::{BEST_CHECKPOINT_FILE, CHECKPOINT_FILE};
use crate::convert::gguf::TensorType;
use crate::convert::{hugging_face, llama_cpp};
use crate::error::{Error, Result};

/// `gptbuild export`'s arguments.
#[derive(Debug, clap::Args)]
pub struct ExportArgs {
    /// A checkpoint file, or a run directory (its best checkpoint, else its latest).
    pub checkpoint: PathBuf,
    /// The format to write: `hf`, a Hugging Face transformers directory; `gguf`, a llama.cpp
    /// file.
    #[arg(long, value_enum)]
    pub format: ExportFormat,
    /// Where to write it: a directory that must not exist yet (hf), or a file (gguf).
    #[arg(long)]
    pub out: PathBuf,
    /// How a GGUF file stores its matrices (norms and biases stay f32).
    #[arg(long = "type", value_enum, default_value = "f32")]
    pub tensor_type: GgufType,
}

/// `--type`: how a GGUF file stores its matrices.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum GgufType {
    F32,
    F16,
    Bf16,
    /// 8-bit blocks of 32 values with an f16 scale each (matrices whose rows are not whole blocks
    /// are stored f16).
    #[value(name = "q8_0")]
    Q8_0,
}

impl From<GgufType> for TensorType {
    fn from(t: GgufType) -> Self {
        match t {
            GgufType::F32 => TensorType::F32,
            GgufType::F16 => TensorType::F16,
            GgufType::Bf16 => TensorType::BF16,
            GgufType::Q8_0 => TensorType::Q8_0,
        }
    }
}

/// A format `gptbuild export` writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ExportFormat {
    /// A transformers directory (`LlamaForCausalLM` or `GPT2LMHeadModel`).
    Hf,
    /// A llama.cpp GGUF file (`llama` or `gpt2` architecture).
    Gguf,
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
    let (arch, written_as) = match args.format {
        ExportFormat::Hf => {
            let arch = hugging_face::export(&loaded, &path, &args.out)?;
            (arch.clone(), arch.family.class().to_string())
        }
        ExportFormat::Gguf => {
            let tensor_type = TensorType::from(args.tensor_type);
            let arch = llama_cpp::export(&loaded, &path, &args.out, tensor_type)?;
            let written_as = format!("GGUF ({}, {tensor_type:?})", arch.family.model_type());
            (arch, written_as)
        }
    };
    writeln!(
        out,
        "wrote {} as {written_as} ({} layers, width {}, vocabulary {}) to {}",
        path.display(),
        arch.n_layer,
        arch.n_embd,
        arch.vocab_size,
        args.out.display()
    )
    .map_err(Error::io("writing the summary"))
}
