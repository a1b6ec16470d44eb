//! Text ↔ token ids: the interface the rest of the pipeline sees. The dataset encodes the corpus
//! through it, generation decodes through it and checkpoints store it, so a new tokenizer is a new
//! file here, not a change to training.
//!
//! | kind | file | what |
//! |---|---|---|
//! | `char` | [`characters`] | every distinct character of the corpus, one token each (the course) |
//! | `bpe` | [`bpe`] | byte-level byte-pair encoding (Sennrich et al. 2016; GPT-2's byte level) trained on the training split |
//! | `file` | [`file`] | any Hugging Face `tokenizer.json` |
//!
//! The loss per token is not comparable across tokenizers (a longer token is harder to predict
//! and worth more text), so evaluations also report **bits per character**: the total negative
//! log-likelihood in bits over the number of characters of the text it scored.

pub mod bpe;
pub mod characters;
pub mod file;
pub mod hugging_face;
pub mod stream;

use std::fmt::Debug;

use crate::data::vocab::Vocabulary;
use crate::error::{Result, SpecError};
use hugging_face::HuggingFace;
pub use stream::StreamDecoder;

/// A trained tokenizer.
pub trait Tokenizer: Debug + Send + Sync {
    /// How many distinct token ids there are: the model's vocabulary size.
    fn vocab_size(&self) -> usize;
    /// The ids of `text`; an error names what cannot be encoded.
    fn encode(&self, text: &str) -> Result<Vec<i64>>;
    /// The text of `ids` (a byte-level token may hold part of a character: an incomplete one
    /// decodes to U+FFFD; [`StreamDecoder`] waits for the rest instead).
    fn decode(&self, ids: &[i64]) -> String;
    /// The id generation starts from when there is no prompt: a newline where the tokenizer has
    /// one on its own.
    fn start_token(&self) -> i64 {
        match self.encode("\n").as_deref() {
            Ok([id]) => *id,
            _ => 0,
        }
    }
    /// What a checkpoint stores to rebuild it.
    fn stored(&self) -> StoredTokenizer;
}

/// A tokenizer as a checkpoint's metadata holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoredTokenizer {
    /// The characters in id order (the `vocab` field, as every checkpoint has had).
    Characters(String),
    /// A Hugging Face `tokenizer.json` (the `tokenizer` field).
    HuggingFace(String),
}

impl StoredTokenizer {
    /// Rebuilds the tokenizer; the error says what is wrong with the stored form.
    pub fn rebuild(&self) -> std::result::Result<Box<dyn Tokenizer>, String> {
        match self {
            StoredTokenizer::Characters(chars) => {
                Ok(Box::new(Vocabulary::from_chars(chars.chars().collect())?))
            }
            StoredTokenizer::HuggingFace(json) => Ok(Box::new(HuggingFace::from_json(json)?)),
        }
    }
}

/// `data.tokenizer` as written: how to make the tokenizer of a corpus. Each kind registers itself
/// (`register_kind!(Tokenizer, …)`).
#[typetag::serde(tag = "kind")]
pub trait TokenizerKind: Debug + Send + Sync {
    /// Checks the kind's fields.
    fn validate(&self) -> std::result::Result<(), SpecError>;
    /// The tokenizer for a corpus whose whole text is `text` and whose training split is
    /// `training` (what a learned tokenizer may learn from).
    fn make(&self, text: &str, training: &str) -> Result<Box<dyn Tokenizer>>;
}

/// What a tokenizer kind's file implements; [`register_kind!`](crate::register_kind) turns it
/// into a [`TokenizerKind`].
pub trait MakeTokenizer {
    fn validate(&self) -> std::result::Result<(), SpecError> {
        Ok(())
    }
    fn make(&self, text: &str, training: &str) -> Result<Box<dyn Tokenizer>>;
}

/// The default: the course's character vocabulary.
pub fn default_kind() -> Box<dyn TokenizerKind> {
    Box::new(characters::Characters {})
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
        let stored = tokenizer.stored();
        assert_eq!(stored, StoredTokenizer::Characters(" benort".into()));
        assert_eq!(stored.rebuild().unwrap().stored(), stored);
    }
}
