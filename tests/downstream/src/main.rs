//! Trains a tiny model through gptbuild's library, then reports what its process has loaded:
//! libtorch's CUDA backend (which the library loads itself) and each OpenMP runtime mapped.
use gptbuild::prelude::*;

fn main() -> gptbuild::Result<()> {
    let spec = Spec::from_yaml(
        "model: {block_size: 8, n_embd: 16, n_layer: 1, block: {attention: {kind: head}}}\n\
         training: {batch_size: 4, max_iters: 10, eval_interval: 5, eval_iters: 1, threads: 2}\n",
    )
    .map_err(Error::Usage)?;
    let text = "the quick brown fox jumps over the lazy dog. ".repeat(10);
    let device = gptbuild::select_device(gptbuild::DeviceSpec::Auto)?;
    let (tokenizer, dataset) = Dataset::from_text(&text, &spec, device)?;
    let mut trainer = Trainer::for_spec(&spec, &dataset, tokenizer.vocab_size(), device)?;
    let mut loss = f64::NAN;
    trainer.train(&mut on_evaluation(|e| loss = e.val_loss))?;
    println!("trained on {device:?}: val loss {loss:.4}");
    let maps = std::fs::read_to_string("/proc/self/maps").map_err(Error::io("/proc/self/maps"))?;
    let mut libraries: Vec<&str> = maps
        .lines()
        .filter_map(|l| l.split_whitespace().nth(5))
        .collect();
    libraries.sort_unstable();
    libraries.dedup();
    for library in libraries {
        let name = library.rsplit('/').next().unwrap_or(library);
        if name.starts_with("libgomp") || name.starts_with("libiomp") || name == "libtorch_cuda.so"
        {
            println!("mapped: {library}");
        }
    }
    Ok(())
}
