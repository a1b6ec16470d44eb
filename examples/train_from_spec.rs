//! A spec from a YAML string, trained a few hundred steps in-process, its losses printed, a line
//! sampled. `cargo run --release --example train_from_spec [-- CHECKPOINT]` (Tiny Shakespeare from
//! $GPTBUILD_DATA; the path, if given, receives the trained model).
use gptbuild::prelude::*;

const SPEC: &str = "
model: {block_size: 16, n_embd: 32, n_layer: 2, position: {kind: learned},
        block: {attention: {kind: multi_head, n_head: 4}, feed_forward: {kind: mlp}}}
training: {batch_size: 16, max_iters: 300, eval_interval: 100, eval_iters: 5, threads: 1}
";

fn main() -> gptbuild::Result<()> {
    let spec = Spec::from_yaml(SPEC).map_err(Error::Usage)?;
    let path = std::env::var("GPTBUILD_DATA").unwrap_or("data/tinyshakespeare.txt".into());
    let text = std::fs::read_to_string(&path).map_err(Error::io(format!("reading {path}")))?;
    let (tokenizer, dataset) = Dataset::from_text(&text, &spec, Device::Cpu)?;
    let mut trainer = Trainer::for_spec(&spec, &dataset, tokenizer.vocab_size(), Device::Cpu)?;
    trainer.train(&mut on_evaluation(|e| println!("{}", e.log_line())))?;
    tch::manual_seed(1);
    let line = Sampler::new(&trainer.model, tokenizer.as_ref()).sample("ROMEO:", 60)?;
    println!("ROMEO:{line}");
    if let Some(out) = std::env::args().nth(1) {
        let iteration = trainer.iteration();
        save_checkpoint(
            out.as_ref(),
            &trainer.var_store,
            &spec,
            tokenizer.as_ref(),
            iteration,
        )?;
        println!("saved {out}");
    }
    Ok(())
}
