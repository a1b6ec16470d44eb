//! The course's character vocabulary as a Hugging Face `tokenizer.json`, so that transformers'
//! `AutoTokenizer` (and our `kind: file`) give exactly our ids for any text the vocabulary
//! accepts, and decode them back.
//!
//! It is a BPE model with no merges: BPE starts from single characters and merges nothing, so
//! each character becomes its own id. There is no normaliser and no pre-tokeniser (spaces and
//! newlines are characters like the others), and the `Fuse` decoder joins the tokens with
//! nothing between them (without a decoder, tokenizers joins them with spaces).

use serde_json::{json, Map, Value};

/// The `tokenizer.json` of a character vocabulary whose id `i` is `chars[i]`.
pub fn tokenizer_json(chars: &str) -> String {
    let vocab: Map<String, Value> = chars
        .chars()
        .enumerate()
        .map(|(id, c)| (c.to_string(), json!(id)))
        .collect();
    let tokenizer = json!({
        "version": "1.0",
        "truncation": null,
        "padding": null,
        "added_tokens": [],
        "normalizer": null,
        "pre_tokenizer": null,
        "post_processor": null,
        "decoder": {"type": "Fuse"},
        "model": {
            "type": "BPE",
            "dropout": null,
            "unk_token": null,
            "continuing_subword_prefix": null,
            "end_of_word_suffix": null,
            "fuse_unk": false,
            "byte_fallback": false,
            "ignore_merges": false,
            "vocab": vocab,
            "merges": [],
        },
    });
    tokenizer.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::tokenizer::hugging_face::HuggingFace;
    use crate::data::tokenizer::Tokenizer;
    use crate::data::vocab::Vocabulary;

    #[test]
    fn gives_the_vocabulary_s_ids_and_decodes_back() {
        let text =
            "First Citizen:\nBefore we proceed any further, hear me speak.\n\n  All: Speak, speak.";
        let vocab = Vocabulary::from_text(text);
        let tokenizer = HuggingFace::from_json(&tokenizer_json(&vocab.as_string())).unwrap();
        assert_eq!(tokenizer.vocab_size(), vocab.len());
        let ids = tokenizer.encode(text).unwrap();
        assert_eq!(ids, vocab.encode(text).unwrap());
        assert_eq!(tokenizer.decode(&ids), text);
    }
}
