//! `gptbuild evaluate`: score a trained model on every token of a split, with the split's bits
//! per character (comparable across tokenizers).

use std::io::Write;
use std::path::PathBuf;

use clap::ValueEnum;

use super::trained_model::TrainedModel;
use crate::data::{scoring_data, Split};
use crate::device;
use crate::error::{Error, Result};
use crate::resources::{self, MemoryEstimate};
use crate::spec::DeviceSpec;
use crate::train::evaluate::score_split;

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
    pub device: DeviceSpec,
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

/// `gptbuild evaluate`: scores a checkpoint on whole splits of the corpus it was trained on.
pub fn execute(args: EvaluateArgs, out: &mut dyn Write) -> Result<()> {
    let device = device::select(args.device)?;
    let (path, loaded) = args.model.load(device)?;
    let block_size = loaded.spec.model.block_size;
    let stride = args.stride.unwrap_or(block_size);
    if !(1..=block_size).contains(&stride) {
        return Err(Error::Usage(format!(
            "--stride: {stride} is not between 1 and the context length {block_size}"
        )));
    }
    resources::set_threads_from(args.threads, loaded.spec.training.threads)?;
    MemoryEstimate::inference(
        &loaded.spec.model,
        loaded.tokenizer.vocab_size() as i64,
        resources::EVALUATION_TOKENS as u64,
        &format!("evaluation (context {block_size})"),
    )
    .check(device)?;
    let dataset = scoring_data(
        args.data.as_deref(),
        loaded.spec.data.path.as_deref(),
        loaded.spec.data.train_fraction,
        (
            loaded.spec.data.tokenizer.as_ref(),
            loaded.tokenizer.as_ref(),
        ),
        block_size,
        device,
    )?;
    writeln!(out, "{} (iteration {})", path.display(), loaded.iteration)
        .map_err(Error::io("writing the scores"))?;
    for &split in args.split.splits() {
        let score = score_split(&loaded.model, &dataset, split, stride);
        writeln!(
            out,
            "{} loss {:.4} over {} tokens, bits per character {:.4} ({} windows of \
             {block_size}, stride {stride})",
            match split {
                Split::Train => "train",
                Split::Val => "val",
            },
            score.loss,
            score.tokens,
            score.bits_per_character,
            score.windows,
        )
        .map_err(Error::io("writing the scores"))?;
    }
    Ok(())
}
