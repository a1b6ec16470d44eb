//! `gptbuild inspect`: a spec's layer/parameter table, FLOPs per token and training memory,
//! without training.

use std::io::Write;

use tch::nn::VarStore;
use tch::Device;

use crate::error::{Error, Result};
use crate::model::summary::{parameter_table, FlopsPerToken};
use crate::model::Gpt;
use crate::resources::MemoryEstimate;
use crate::spec::{find_spec, Spec};

/// `gptbuild inspect`'s arguments.
#[derive(Debug, clap::Args)]
pub struct InspectArgs {
    pub spec: String,
    /// Vocabulary size to build with (Tiny Shakespeare has 65 characters).
    #[arg(long, default_value_t = 65,
          value_parser = clap::value_parser!(i64).range(1..=crate::layers::MAX_SIZE))]
    pub vocab_size: i64,
}

/// Builds the model on the CPU (after checking its weights fit) and prints its table.
pub fn execute(args: InspectArgs, out: &mut dyn Write) -> Result<()> {
    let spec = Spec::load(&find_spec(&args.spec)?)?;
    let vocab_size = args.vocab_size;
    MemoryEstimate::weights(&spec.model, vocab_size).check(Device::Cpu)?;
    let vs = VarStore::new(Device::Cpu);
    let _model = Gpt::try_new(&vs.root(), &spec, vocab_size)?;
    let flops = FlopsPerToken::of(&vs, &spec.model);
    let memory = MemoryEstimate::training(&spec, vocab_size);
    writeln!(
        out,
        "{}FLOPs per token (full context of {}): forward {}, training step {}\n\
         memory to train, at most about: {} for {}",
        parameter_table(&vs),
        spec.model.block_size,
        flops.forward,
        flops.training,
        memory.gib(),
        memory.what,
    )
    .map_err(Error::io("writing the table"))
}
