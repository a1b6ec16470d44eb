//! Decoding a stream of generated ids into text as it grows. One id at a time is not enough: a
//! byte-level token may end in the middle of a multi-byte character (its text is only complete
//! with the next token), and some decoders change a token's text by what precedes it (a leading
//! space). So the decoder keeps the last few ids it has written as context, decodes context and
//! new ids together, and writes what the new ids added, once it ends on a whole character.

use crate::data::tokenizer::Tokenizer;

/// Ids of context kept before the new ones.
const CONTEXT: usize = 4;
/// Ids held back waiting for a character to complete before writing them anyway (a UTF-8
/// character is at most 4 bytes, so a well-formed stream completes long before).
const MAX_PENDING: usize = 8;

pub struct StreamDecoder<'t> {
    tokenizer: &'t dyn Tokenizer,
    context: Vec<i64>,
    pending: Vec<i64>,
}

impl<'t> StreamDecoder<'t> {
    pub fn new(tokenizer: &'t dyn Tokenizer) -> Self {
        StreamDecoder::after(tokenizer, &[])
    }

    /// A decoder for ids that follow `written` (a prompt already written out).
    pub fn after(tokenizer: &'t dyn Tokenizer, written: &[i64]) -> Self {
        StreamDecoder {
            tokenizer,
            context: written[written.len().saturating_sub(CONTEXT)..].to_vec(),
            pending: Vec::new(),
        }
    }

    /// The text `id` completes: empty while a character is still incomplete.
    pub fn push(&mut self, id: i64) -> String {
        self.pending.push(id);
        let before = self.tokenizer.decode(&self.context);
        let ids: Vec<i64> = self.context.iter().chain(&self.pending).copied().collect();
        let text = self.tokenizer.decode(&ids);
        if text.ends_with('\u{FFFD}') && self.pending.len() < MAX_PENDING {
            return String::new();
        }
        let added = match text.strip_prefix(before.as_str()) {
            Some(added) => added.to_string(),
            None => self.tokenizer.decode(&self.pending),
        };
        self.context = ids[ids.len().saturating_sub(CONTEXT)..].to_vec();
        self.pending.clear();
        added
    }

    /// Whatever is still held back (an incomplete character at the end of the stream).
    pub fn finish(&mut self) -> String {
        let rest = self.tokenizer.decode(&self.pending);
        self.pending.clear();
        rest
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::vocab::Vocabulary;

    #[test]
    fn characters_stream_one_by_one() {
        let vocab = Vocabulary::from_text("héllo wörld");
        let ids = Tokenizer::encode(&vocab, "wörld héllo").unwrap();
        let mut decoder = StreamDecoder::new(&vocab);
        let text: String = ids.iter().map(|&id| decoder.push(id)).collect();
        assert_eq!(text + &decoder.finish(), "wörld héllo");
    }
}
