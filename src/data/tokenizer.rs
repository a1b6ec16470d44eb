//! Text ↔ token ids: the interface the rest of the pipeline sees. The dataset encodes the corpus
//! through it and generation decodes through it, so a new tokenizer (byte-pair encoding, any
//! `tokenizer.json`) is a new implementation of this trait, not a change to training. The
//! character vocabulary of the course ([`Vocabulary`]) is the first.

use crate::data::vocab::Vocabulary;
use crate::error::Result;

pub trait Tokenizer {
    /// How many distinct token ids there are: the model's vocabulary size.
    fn vocab_size(&self) -> usize;
    /// The ids of `text`; an error names what cannot be encoded.
    fn encode(&self, text: &str) -> Result<Vec<i64>>;
    /// The text of `ids`.
    fn decode(&self, ids: &[i64]) -> String;
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
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_character_vocabulary_round_trips_through_the_interface() {
        let vocab = Vocabulary::from_text("to be or not");
        let tokenizer: &dyn Tokenizer = &vocab;
        assert_eq!(tokenizer.vocab_size(), 7);
        let ids = tokenizer.encode("not to be").unwrap();
        assert_eq!(tokenizer.decode(&ids), "not to be");
        assert!(tokenizer.encode("xyz").is_err());
    }
}
