//! Sampling: repeatedly feed the model its own output. Each step crops the context to the last
//! `block_size` tokens (all the model can see), turns the logits of the last position into
//! probabilities (softened or sharpened by the temperature) and draws the next token.

use tch::{Device, Kind, Tensor};

use crate::model::Gpt;

/// Generates up to `count` tokens after `context` (which must not be empty), calling `on_token` with
/// each as soon as it is drawn; generation stops early when `on_token` returns false. Draws from
/// libtorch's generator: seed it for reproducible text.
pub fn generate(
    model: &Gpt,
    context: &[i64],
    count: i64,
    temperature: f64,
    device: Device,
    mut on_token: impl FnMut(i64) -> bool,
) -> Vec<i64> {
    let block_size = model.dims().block_size as usize;
    let mut tokens = context.to_vec();
    tch::no_grad(|| {
        for _ in 0..count {
            let window = &tokens[tokens.len().saturating_sub(block_size)..];
            let ids = Tensor::from_slice(window).to_device(device).unsqueeze(0);
            let logits = model.forward_t(&ids, false).select(1, -1).squeeze_dim(0);
            let probs = (logits / temperature).softmax(-1, Kind::Float);
            let next = probs.multinomial(1, true).int64_value(&[0]);
            tokens.push(next);
            if !on_token(next) {
                break;
            }
        }
    });
    tokens
}
