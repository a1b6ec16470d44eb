//! `tokenizer: {kind: bpe, vocab_size: 512}`: byte-pair encoding (Sennrich, Haddow & Birch 2016,
//! arXiv 1508.07909) at the byte level, as GPT-2 (Radford et al. 2019): start from the 256 bytes,
//! so that any text can be encoded, and repeatedly merge the most frequent adjacent pair of tokens
//! into a new one until the vocabulary has `vocab_size` entries. Frequent words become one token;
//! rare ones stay spelled in pieces. Trained with Hugging Face's `tokenizers` on the training split
//! only (the validation split must not shape the vocabulary it is scored with); the same text
//! gives the same merges.

use serde::{Deserialize, Serialize};
use tokenizers::decoders::DecoderWrapper;
use tokenizers::models::bpe::{BpeTrainerBuilder, BPE};
use tokenizers::normalizers::NormalizerWrapper;
use tokenizers::pre_tokenizers::byte_level::ByteLevel;
use tokenizers::pre_tokenizers::PreTokenizerWrapper;
use tokenizers::processors::PostProcessorWrapper;
use tokenizers::TokenizerBuilder;

use crate::data::tokenizer::hugging_face::HuggingFace;
use crate::data::tokenizer::{MakeTokenizer, Tokenizer};
use crate::error::{Error, Result, SpecError};

/// The byte alphabet a byte-level vocabulary starts from.
pub const BYTES: i64 = 256;
/// The largest vocabulary: ids must fit the `uint32` token files.
pub const MAX_VOCAB_SIZE: i64 = u32::MAX as i64;

/// `tokenizer: {kind: bpe, vocab_size: N}`.
#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Bpe {
    /// Tokens in the vocabulary, the 256 bytes included.
    pub vocab_size: i64,
}

crate::register_kind!(Tokenizer, "bpe", Bpe);

impl MakeTokenizer for Bpe {
    fn validate(&self) -> std::result::Result<(), SpecError> {
        if (BYTES..=MAX_VOCAB_SIZE).contains(&self.vocab_size) {
            Ok(())
        } else {
            Err(SpecError::new(
                "vocab_size",
                format!(
                    "must be between {BYTES} (the bytes a byte-level vocabulary starts from) \
                     and {MAX_VOCAB_SIZE}, got {}",
                    self.vocab_size
                ),
            ))
        }
    }

    fn make(&self, _text: &str, training: &str) -> Result<Box<dyn Tokenizer>> {
        let failed =
            |e: tokenizers::Error| Error::Usage(format!("training the BPE tokenizer: {e}"));
        // No space is added before the text, so decoding gives back exactly what was encoded.
        let byte_level = ByteLevel::default().add_prefix_space(false);
        let mut tokenizer = TokenizerBuilder::<
            BPE,
            NormalizerWrapper,
            PreTokenizerWrapper,
            PostProcessorWrapper,
            DecoderWrapper,
        >::new()
        .with_model(BPE::default())
        .with_pre_tokenizer(Some(PreTokenizerWrapper::ByteLevel(byte_level)))
        .with_decoder(Some(DecoderWrapper::ByteLevel(byte_level)))
        .build()
        .map_err(failed)?;
        let mut trainer = BpeTrainerBuilder::new()
            .vocab_size(self.vocab_size as usize)
            .min_frequency(0)
            .show_progress(false)
            .initial_alphabet(ByteLevel::alphabet().into_iter().collect())
            .build();
        // Line by line, newlines kept: the sequences the trainer counts words in.
        tokenizer
            .train(&mut trainer, training.split_inclusive('\n'))
            .map_err(failed)?;
        let json = tokenizer.to_string(false).map_err(failed)?;
        Ok(Box::new(
            HuggingFace::from_json(&json).map_err(Error::Usage)?,
        ))
    }
}
