//! The character-level vocabulary: every distinct character of the corpus, sorted, numbered from 0.
//! Tiny Shakespeare has 65. Stored with every checkpoint, since the ids mean nothing without it.

use std::collections::BTreeSet;

use crate::error::{Error, Result};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Vocabulary {
    chars: Vec<char>,
}

impl Vocabulary {
    /// The sorted set of characters in `text`.
    pub fn from_text(text: &str) -> Self {
        let set: BTreeSet<char> = text.chars().collect();
        Vocabulary {
            chars: set.into_iter().collect(),
        }
    }

    /// Rebuilds a vocabulary from its characters in id order (as stored in a checkpoint).
    pub fn from_chars(chars: Vec<char>) -> Result<Self, String> {
        if chars.is_empty() {
            return Err("the vocabulary is empty".into());
        }
        if chars.windows(2).any(|w| w[0] >= w[1]) {
            return Err("the vocabulary is not a sorted set of distinct characters".into());
        }
        Ok(Vocabulary { chars })
    }

    pub fn len(&self) -> usize {
        self.chars.len()
    }

    pub fn is_empty(&self) -> bool {
        self.chars.is_empty()
    }

    /// The characters in id order.
    pub fn chars(&self) -> &[char] {
        &self.chars
    }

    /// The characters in id order, as one string.
    pub fn as_string(&self) -> String {
        self.chars.iter().collect()
    }

    /// Ids of the characters of `text`; a character outside the vocabulary is an error.
    pub fn encode(&self, text: &str) -> Result<Vec<i64>> {
        text.chars()
            .map(|c| {
                self.chars
                    .binary_search(&c)
                    .map(|id| id as i64)
                    .map_err(|_| Error::OutOfVocabulary { character: c })
            })
            .collect()
    }

    /// The text of a sequence of ids; ids outside the vocabulary (which a model cannot produce)
    /// become U+FFFD rather than a panic.
    pub fn decode(&self, ids: &[i64]) -> String {
        ids.iter()
            .map(|&id| {
                usize::try_from(id)
                    .ok()
                    .and_then(|i| self.chars.get(i))
                    .copied()
                    .unwrap_or('\u{FFFD}')
            })
            .collect()
    }
}
