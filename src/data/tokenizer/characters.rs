//! `tokenizer: {kind: char}`, the default: one token per character, the corpus's distinct
//! characters sorted (Tiny Shakespeare has 65), exactly the course's vocabulary. Nothing is
//! learned, so it is made from the whole corpus: every character of the validation split has an id.

use serde::{Deserialize, Serialize};

use crate::data::tokenizer::{MakeTokenizer, StoredTokenizer, Tokenizer};
use crate::data::vocab::Vocabulary;
use crate::error::Result;

/// `tokenizer: {kind: char}`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Characters {}

crate::register_kind!(Tokenizer, "char", Characters);

impl MakeTokenizer for Characters {
    fn make(&self, text: &str, _training: &str) -> Result<Box<dyn Tokenizer>> {
        Ok(Box::new(Vocabulary::from_text(text)))
    }
}

impl Tokenizer for Vocabulary {
    fn vocab_size(&self) -> usize {
        self.len()
    }

    fn encode(&self, text: &str) -> Result<Vec<i64>> {
        Vocabulary::encode(self, text)
    }

    fn decode(&self, ids: &[i64]) -> String {
        Vocabulary::decode(self, ids)
    }

    /// The first character (a newline, for Shakespeare), as the course starts.
    fn start_token(&self) -> i64 {
        0
    }

    fn stored(&self) -> StoredTokenizer {
        StoredTokenizer::Characters(self.as_string())
    }
}
