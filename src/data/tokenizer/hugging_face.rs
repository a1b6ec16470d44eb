//! A Hugging Face tokenizer (the `tokenizers` crate) behind our [`Tokenizer`] interface: what the
//! `bpe` kind trains and the `file` kind loads. Checkpoints store its `tokenizer.json`.

use crate::data::tokenizer::{StoredTokenizer, Tokenizer};
use crate::error::{Error, Result};

#[derive(Debug)]
pub struct HuggingFace {
    inner: tokenizers::Tokenizer,
    /// Its `tokenizer.json`, compact: what a checkpoint stores.
    json: String,
}

impl HuggingFace {
    /// Parses a `tokenizer.json`; the error is the parser's message.
    pub fn from_json(json: &str) -> std::result::Result<Self, String> {
        let inner: tokenizers::Tokenizer = json
            .parse()
            .map_err(|e| format!("not a tokenizer.json the tokenizers crate can read ({e})"))?;
        let json = inner
            .to_string(false)
            .map_err(|e| format!("cannot serialise the tokenizer ({e})"))?;
        if inner.get_vocab_size(true) == 0 {
            return Err("the tokenizer has an empty vocabulary".into());
        }
        Ok(HuggingFace { inner, json })
    }
}

impl Tokenizer for HuggingFace {
    fn vocab_size(&self) -> usize {
        self.inner.get_vocab_size(true)
    }

    fn encode(&self, text: &str) -> Result<Vec<i64>> {
        let encoding = self
            .inner
            .encode(text, false)
            .map_err(|e| Error::Usage(format!("the tokenizer cannot encode the text: {e}")))?;
        Ok(encoding.get_ids().iter().map(|&id| id as i64).collect())
    }

    fn decode(&self, ids: &[i64]) -> String {
        // Ids come from the model, whose output layer has exactly `vocab_size` entries.
        let ids: Vec<u32> = ids.iter().map(|&id| id as u32).collect();
        self.inner
            .decode(&ids, false)
            .unwrap_or_else(|_| "\u{FFFD}".repeat(ids.len()))
    }

    fn stored(&self) -> StoredTokenizer {
        StoredTokenizer::HuggingFace(self.json.clone())
    }
}
