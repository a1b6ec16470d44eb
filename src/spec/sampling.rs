//! `sampling:`: how the sample after training is drawn — how many characters, and the decoding
//! settings ([`Decoding`]: temperature, top-k, top-p) that `gptbuild sample` also takes from the
//! command line.

use serde::{Deserialize, Serialize};

use crate::error::SpecError;
use crate::spec::training::DEFAULT_SEED;

// Every field may be left out: `SamplingSpec::default` stands in.
#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct SamplingSpec {
    /// Characters generated after training.
    pub tokens: i64,
    /// Divides the logits: below 1 sharper, above 1 more adventurous.
    pub temperature: f64,
    /// Draw only among the k most likely characters.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub top_k: Option<i64>,
    /// Draw only among the most likely characters whose probabilities add up to p (nucleus).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub top_p: Option<f64>,
    pub seed: u64,
}

impl Default for SamplingSpec {
    fn default() -> Self {
        SamplingSpec {
            tokens: 500,
            temperature: 1.0,
            top_k: None,
            top_p: None,
            seed: DEFAULT_SEED,
        }
    }
}

/// How a token is drawn from next-token logits.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Decoding {
    /// Logits are divided by it: below 1 sharper, above 1 flatter. Positive.
    pub temperature: f64,
    /// Draw only among the `k` most likely tokens (Fan et al. 2018, arXiv 1805.04833).
    pub top_k: Option<i64>,
    /// Draw only among the smallest set of most likely tokens whose probabilities add up to at
    /// least `p` ("nucleus sampling", Holtzman et al. 2019, arXiv 1904.09751). In (0, 1].
    pub top_p: Option<f64>,
}

impl Default for Decoding {
    fn default() -> Self {
        Decoding {
            temperature: 1.0,
            top_k: None,
            top_p: None,
        }
    }
}

impl Decoding {
    /// Checks the settings, naming the offending one (`temperature`, `top_k`, `top_p`).
    pub fn validate(&self) -> Result<(), SpecError> {
        if !(self.temperature > 0.0 && self.temperature.is_finite()) {
            return Err(SpecError::new(
                "temperature",
                format!("must be a positive number, got {}", self.temperature),
            ));
        }
        if let Some(k) = self.top_k.filter(|&k| k < 1) {
            return Err(SpecError::new(
                "top_k",
                format!("must be at least 1, got {k}"),
            ));
        }
        if let Some(p) = self.top_p.filter(|&p| !(p > 0.0 && p <= 1.0)) {
            return Err(SpecError::new(
                "top_p",
                format!("must be in (0, 1], got {p}"),
            ));
        }
        Ok(())
    }
}

impl SamplingSpec {
    pub(super) fn validate(&self) -> std::result::Result<(), SpecError> {
        if self.tokens < 0 {
            return Err(SpecError::new(
                "tokens",
                format!("must be 0 or more, got {}", self.tokens),
            ));
        }
        self.decoding().validate()
    }

    /// How the sample's characters are drawn.
    pub fn decoding(&self) -> Decoding {
        Decoding {
            temperature: self.temperature,
            top_k: self.top_k,
            top_p: self.top_p,
        }
    }
}
