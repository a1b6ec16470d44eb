//! `tokenizer: {kind: file, path: tokenizer.json}`: any tokenizer saved by Hugging Face's
//! `tokenizers` (GPT-2's, LLaMA's, one trained elsewhere), used as it is. The file is read when a
//! run starts; the run's checkpoints carry a copy, so sampling and evaluation need no file.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::data::tokenizer::hugging_face::HuggingFace;
use crate::data::tokenizer::{MakeTokenizer, Tokenizer};
use crate::error::{Error, Result};

/// `tokenizer: {kind: file, path: tokenizer.json}`.
#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TokenizerFile {
    /// A Hugging Face `tokenizer.json`, relative to the working directory.
    pub path: PathBuf,
}

crate::register_kind!(Tokenizer, "file", TokenizerFile);

impl MakeTokenizer for TokenizerFile {
    fn make(&self, _text: &str, _training: &str) -> Result<Box<dyn Tokenizer>> {
        let bad = |message: String| Error::Tokenizer {
            path: self.path.clone(),
            message,
        };
        let json = crate::files::read_text(&self.path).map_err(|e| bad(e.to_string()))?;
        Ok(Box::new(HuggingFace::from_json(&json).map_err(bad)?))
    }
}
