//! A layer kind defined outside gptbuild: the feed-forward sub-layer with a squared ReLU (So et
//! al. 2021, "Primer", arXiv 2109.08668), registered under `kind: squared_relu`, named by a spec's
//! YAML, trained, and shown in the parameter table.
//! `cargo run --release --example custom_layer`
use gptbuild::layers::{dropout, Dims, Layer, Linear, ResolveKind, ResolvedFeedForward, Role};
use gptbuild::prelude::*;
use serde::{Deserialize, Serialize};
use tch::nn::{self, Module, ModuleT};
use tch::Tensor;

/// `feed_forward: {kind: squared_relu, hidden_size: 128}`.
#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
struct SquaredRelu {
    /// The hidden width.
    hidden_size: i64,
}

gptbuild::register_kind!(FeedForward, "squared_relu", SquaredRelu);

impl ResolveKind for SquaredRelu {
    type Resolved = SquaredRelu;

    fn resolve(&self, _dims: &Dims) -> Result<SquaredRelu, gptbuild::SpecError> {
        gptbuild::layers::require_size("hidden_size", self.hidden_size)?;
        Ok(self.clone())
    }
}

impl ResolvedFeedForward for SquaredRelu {
    fn activation_width(&self, _dims: &Dims) -> i64 {
        self.hidden_size
    }

    fn build(&self, path: &nn::Path, dims: &Dims) -> Option<Layer> {
        let (c, hidden) = (dims.n_embd, self.hidden_size);
        Some(Box::new(SquaredReluLayer {
            up: Linear::new(&(path / "up"), (c, hidden), true, dims, Role::Inner),
            down: Linear::new(
                &(path / "down"),
                (hidden, c),
                true,
                dims,
                Role::ResidualOutput,
            ),
            dropout: dims.residual_dropout,
        }))
    }
}

#[derive(Debug)]
struct SquaredReluLayer {
    up: Linear,
    down: Linear,
    dropout: f64,
}

impl ModuleT for SquaredReluLayer {
    fn forward_t(&self, x: &Tensor, train: bool) -> Tensor {
        let hidden = self.up.forward(x).relu().square();
        dropout(&self.down.forward(&hidden), self.dropout, train)
    }
}

const SPEC: &str = "
model: {block_size: 16, n_embd: 32, n_layer: 2, position: {kind: learned},
        block: {attention: {kind: multi_head, n_head: 4},
                feed_forward: {kind: squared_relu, hidden_size: 128}}}
training: {batch_size: 16, max_iters: 200, eval_interval: 100, eval_iters: 5, threads: 1}
";

fn main() -> gptbuild::Result<()> {
    let spec = Spec::from_yaml(SPEC).map_err(Error::Usage)?;
    let text = "Now is the winter of our discontent made glorious summer. ".repeat(200);
    let (tokenizer, dataset) = Dataset::from_text(&text, &spec, Device::Cpu)?;
    let mut trainer = Trainer::for_spec(&spec, &dataset, tokenizer.vocab_size(), Device::Cpu)?;
    print!("{}", gptbuild::parameter_table(&trainer.var_store));
    trainer.train(&mut on_evaluation(|e| println!("{}", e.log_line())))?;
    // The resolved spec names the kind, as a checkpoint stores it.
    let yaml = spec.to_yaml();
    let line = yaml.lines().find(|l| l.contains("squared_relu"));
    println!(
        "{}",
        line.unwrap_or("(the kind is missing from the resolved spec)")
            .trim()
    );
    Ok(())
}
