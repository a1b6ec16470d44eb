//! `gptbuild sample`: stream text from a trained model.

use std::io::Write;

use super::trained_model::TrainedModel;
use crate::device;
use crate::error::{Error, Result};
use crate::generate::stream::{stream, SampleRequest, StreamEnd};
use crate::interrupt;
use crate::resources::MemoryEstimate;
use crate::spec::{Decoding, DeviceSpec};

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
    /// Text to continue (with the character vocabulary, every character must be in it).
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
    /// Where to generate. The CPU is the default: one token at a time, a small model's step is
    /// a few kernel launches that a GPU cannot hide; `cuda` (or `auto`) for large models.
    #[arg(long, value_enum, default_value = "cpu")]
    pub device: DeviceSpec,
}

/// `gptbuild sample`: finds the checkpoint, checks the request, streams the text.
pub fn execute(args: SampleArgs, out: &mut dyn Write) -> Result<()> {
    let device = device::select(args.device)?;
    let (_, loaded) = args.model.load(device)?;
    let block_size = loaded.spec.model.block_size;
    MemoryEstimate::inference(
        &loaded.spec.model,
        loaded.tokenizer.vocab_size() as i64,
        block_size as u64,
        &format!("generation (context {block_size})"),
    )
    .check(device)?;
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
