//! Text from a trained model, for a program: a prompt in, text out, whole or as it is drawn.

use tch::Device;

use crate::data::tokenizer::{StreamDecoder, Tokenizer};
use crate::error::Result;
use crate::generate::sample::generate;
use crate::model::Gpt;
use crate::spec::Decoding;

/// Draws text from `model` with its `tokenizer`, over the KV cache, as `gptbuild sample` does.
/// Seed libtorch's generator (`tch::manual_seed`) for reproducible text.
pub struct Sampler<'m> {
    model: &'m Gpt,
    tokenizer: &'m dyn Tokenizer,
    decoding: Decoding,
    device: Device,
}

impl<'m> Sampler<'m> {
    /// A sampler with the default decoding (temperature 1, no top-k or top-p), on the CPU.
    pub fn new(model: &'m Gpt, tokenizer: &'m dyn Tokenizer) -> Self {
        Sampler {
            model,
            tokenizer,
            decoding: Decoding::default(),
            device: Device::Cpu,
        }
    }

    /// With this temperature, top-k and top-p (a spec's `sampling.decoding()`, say).
    pub fn decoding(mut self, decoding: Decoding) -> Self {
        self.decoding = decoding;
        self
    }

    /// On the device the model's weights are on.
    pub fn device(mut self, device: Device) -> Self {
        self.device = device;
        self
    }

    /// `tokens` tokens after `prompt` (empty: after the start token, a newline for Shakespeare),
    /// decoded; the prompt is not repeated. An error names a character the vocabulary lacks.
    pub fn sample(&self, prompt: &str, tokens: u64) -> Result<String> {
        let mut text = String::new();
        self.stream(prompt, Some(tokens), |piece| {
            text.push_str(piece);
            true
        })?;
        Ok(text)
    }

    /// Calls `on_text` with the text of each token as soon as it is drawn (a byte-level token
    /// that ends inside a character waits for the rest), after `prompt`, until `count` tokens
    /// (`None`: forever) or until `on_text` returns false.
    pub fn stream(
        &self,
        prompt: &str,
        count: Option<u64>,
        mut on_text: impl FnMut(&str) -> bool,
    ) -> Result<()> {
        let context = match prompt {
            "" => vec![self.tokenizer.start_token()],
            text => self.tokenizer.encode(text)?,
        };
        let mut decoder = StreamDecoder::new(self.tokenizer);
        generate(
            self.model,
            &context,
            count,
            &self.decoding,
            true,
            self.device,
            |token| on_text(&decoder.push(token)),
        );
        Ok(())
    }
}
