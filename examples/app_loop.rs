//! A model inside an application loop: trained once at start-up, then every line typed on
//! standard input is continued by the model, until `quit` or the end of the input.
//! `cargo run --release --example app_loop` (Tiny Shakespeare from $GPTBUILD_DATA).
use std::io::BufRead;

use gptbuild::prelude::*;

const SPEC: &str = "
model: {block_size: 32, n_embd: 32, n_layer: 2, position: {kind: rope},
        block: {attention: {kind: multi_head, n_head: 4}, feed_forward: {kind: mlp},
                norm: {kind: rmsnorm}, norm_placement: pre}, final_norm: {kind: rmsnorm}}
training: {batch_size: 16, max_iters: 200, eval_interval: 200, eval_iters: 5, threads: 1}
sampling: {temperature: 0.8, top_k: 10}
";

fn main() -> gptbuild::Result<()> {
    let spec = Spec::from_yaml(SPEC).map_err(Error::Usage)?;
    let path = std::env::var("GPTBUILD_DATA").unwrap_or("data/tinyshakespeare.txt".into());
    let text = std::fs::read_to_string(&path).map_err(Error::io(format!("reading {path}")))?;
    let (tokenizer, dataset) = Dataset::from_text(&text, &spec, Device::Cpu)?;
    let mut trainer = Trainer::for_spec(&spec, &dataset, tokenizer.vocab_size(), Device::Cpu)?;
    trainer.train(&mut Quietly)?;
    let sampler =
        Sampler::new(&trainer.model, tokenizer.as_ref()).decoding(spec.sampling.decoding());
    eprintln!("ready: type a line (quit to stop)");
    for line in std::io::stdin().lock().lines() {
        let line = line.map_err(Error::io("reading standard input"))?;
        if line.trim() == "quit" {
            break;
        }
        // Characters outside the corpus's vocabulary are an error, said and survived.
        match sampler.sample(&line, 40) {
            Ok(continuation) => println!("{line}{continuation}"),
            Err(error) => println!("({error})"),
        }
    }
    Ok(())
}
