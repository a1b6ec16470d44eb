//! A checkpoint loaded (`gptbuild run` writes them, as does the `train_from_spec` example), its
//! text streamed to the terminal as it is drawn, with the spec's own decoding settings:
//! `cargo run --release --example sample_from_checkpoint -- runs/task06/RUN/model.safetensors`.
use std::io::Write;

use gptbuild::prelude::*;

fn main() -> gptbuild::Result<()> {
    let path = std::env::args()
        .nth(1)
        .ok_or_else(|| Error::Usage("usage: sample_from_checkpoint CHECKPOINT".into()))?;
    let loaded = load_checkpoint(path.as_ref(), Device::Cpu)?;
    println!("{} at iteration {}", loaded.spec.name(), loaded.iteration);
    tch::manual_seed(loaded.spec.sampling.seed as i64);
    let sampler = Sampler::new(&loaded.model, loaded.tokenizer.as_ref())
        .decoding(loaded.spec.sampling.decoding());
    let mut out = std::io::stdout().lock();
    sampler.stream("\n", Some(200), |text| {
        // Flushed at once: the text appears as it is drawn; a closed pipe ends the stream.
        write!(out, "{text}").and_then(|()| out.flush()).is_ok()
    })?;
    println!();
    Ok(())
}
