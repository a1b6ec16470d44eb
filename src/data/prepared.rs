//! Prepared token files, nanoGPT's layout (its `prepare.py` → `train.bin`/`val.bin`): a corpus
//! tokenized once by `gptbuild prepare`, then trained from without being read into memory. The
//! files are memory-mapped (`memmap2`): the operating system pages in the windows a batch draws,
//! so a corpus larger than RAM trains.
//!
//! A prepared directory holds `train.bin` and `val.bin` (token ids, little-endian `uint16`, or
//! `uint32` when the vocabulary has more than 65,536 tokens), the tokenizer (`tokenizer.json`, or
//! `vocab.txt` for the character vocabulary) and `prepared.yaml` (the id width, the tokenizer as
//! the spec wrote it and the characters of text of each split, for bits per character).

use std::path::Path;

use memmap2::Mmap;
use serde::{Deserialize, Serialize};

use crate::data::tokenizer::{StoredTokenizer, Tokenizer, TokenizerKind};
use crate::data::{split_text, Split};
use crate::error::{Error, Result};
use crate::files::write_whole;

pub const TRAIN_FILE: &str = "train.bin";
pub const VAL_FILE: &str = "val.bin";
pub const META_FILE: &str = "prepared.yaml";
pub const TOKENIZER_JSON_FILE: &str = "tokenizer.json";
pub const VOCAB_FILE: &str = "vocab.txt";
const FORMAT: &str = "gptbuild-prepared/1";

/// How wide each id is in the files.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum IdWidth {
    Uint16,
    Uint32,
}

impl IdWidth {
    /// The narrowest width that holds every id of a vocabulary of `vocab_size`.
    pub fn for_vocab(vocab_size: usize) -> IdWidth {
        if vocab_size <= 1 << 16 {
            IdWidth::Uint16
        } else {
            IdWidth::Uint32
        }
    }

    fn name(self) -> &'static str {
        match self {
            IdWidth::Uint16 => "uint16",
            IdWidth::Uint32 => "uint32",
        }
    }

    fn bytes(self) -> usize {
        match self {
            IdWidth::Uint16 => 2,
            IdWidth::Uint32 => 4,
        }
    }
}

/// `prepared.yaml`.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Meta {
    format: String,
    ids: IdWidth,
    vocab_size: usize,
    /// `data.tokenizer` of the spec it was prepared with, as YAML.
    tokenizer: String,
    /// Characters of text of the training and validation splits.
    characters: [i64; 2],
}

/// Whether `dir` is a prepared directory (rather than a text file or a directory of texts).
pub fn is_prepared(dir: &Path) -> bool {
    dir.join(META_FILE).is_file()
}

/// Tokenizes `text` as `data.tokenizer` says (trained on the first `train_fraction` of it) and
/// writes a prepared directory at `out`. Returns the number of tokens per split.
pub fn prepare(
    text: &str,
    train_fraction: f64,
    kind: &dyn TokenizerKind,
    out: &Path,
    mut step: impl FnMut(&str),
) -> Result<[usize; 2]> {
    std::fs::create_dir_all(out).map_err(Error::io(format!("creating {}", out.display())))?;
    let (train_text, val_text) = split_text(text, train_fraction);
    step("training the tokenizer");
    let tokenizer = kind.make(text, train_text)?;
    let width = IdWidth::for_vocab(tokenizer.vocab_size());
    let mut counts = [0; 2];
    for (i, (file, part)) in [(TRAIN_FILE, train_text), (VAL_FILE, val_text)]
        .into_iter()
        .enumerate()
    {
        step(&format!("encoding {file}"));
        let ids = tokenizer.encode(part)?;
        counts[i] = ids.len();
        let mut bytes = Vec::with_capacity(ids.len() * width.bytes());
        for id in ids {
            match width {
                IdWidth::Uint16 => bytes.extend_from_slice(&(id as u16).to_le_bytes()),
                IdWidth::Uint32 => bytes.extend_from_slice(&(id as u32).to_le_bytes()),
            }
        }
        write_whole(&out.join(file), &bytes)?;
    }
    step("writing the tokenizer");
    match tokenizer.stored() {
        StoredTokenizer::Characters(chars) => write_whole(&out.join(VOCAB_FILE), chars.as_bytes())?,
        StoredTokenizer::HuggingFace(json) => {
            write_whole(&out.join(TOKENIZER_JSON_FILE), json.as_bytes())?
        }
    }
    let meta = Meta {
        format: FORMAT.into(),
        ids: width,
        vocab_size: tokenizer.vocab_size(),
        tokenizer: kind_yaml(kind),
        characters: [
            train_text.chars().count() as i64,
            val_text.chars().count() as i64,
        ],
    };
    let yaml = serde_norway::to_string(&meta)
        .map_err(|e| Error::Usage(format!("writing {META_FILE}: {e}")))?;
    write_whole(&out.join(META_FILE), yaml.as_bytes())?;
    Ok(counts)
}

fn kind_yaml(kind: &dyn TokenizerKind) -> String {
    serde_norway::to_string(kind).unwrap_or_default()
}

/// The token ids of one split, mapped from its file.
#[derive(Debug)]
pub struct MappedIds {
    map: Mmap,
    width: IdWidth,
}

impl MappedIds {
    /// Number of ids.
    pub fn len(&self) -> usize {
        self.map.len() / self.width.bytes()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The id at `index` (< `len`).
    pub fn get(&self, index: usize) -> i64 {
        let at = index * self.width.bytes();
        let bytes = &self.map[at..at + self.width.bytes()];
        match self.width {
            IdWidth::Uint16 => u16::from_le_bytes([bytes[0], bytes[1]]) as i64,
            IdWidth::Uint32 => u32::from_le_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]) as i64,
        }
    }
}

/// A prepared directory, opened: its tokenizer and its mapped splits.
#[derive(Debug)]
pub struct PreparedCorpus {
    pub tokenizer: Box<dyn Tokenizer>,
    pub train: MappedIds,
    pub val: MappedIds,
    /// Characters of text of each split.
    pub characters: [i64; 2],
}

impl PreparedCorpus {
    /// Opens the prepared directory `dir`, checking that it was prepared with `kind` (the spec's
    /// `data.tokenizer`), that its files are whole and that every id is in the vocabulary.
    pub fn open(dir: &Path, kind: &dyn TokenizerKind) -> Result<PreparedCorpus> {
        let bad = |file: &str, message: String| Error::Corpus {
            path: dir.join(file),
            message,
        };
        let meta_text = crate::files::read_text(&dir.join(META_FILE))
            .map_err(|e| bad(META_FILE, e.to_string()))?;
        let meta: Meta =
            serde_norway::from_str(&meta_text).map_err(|e| bad(META_FILE, e.to_string()))?;
        if meta.format != FORMAT {
            return Err(bad(META_FILE, format!("is not {FORMAT}")));
        }
        if meta.tokenizer != kind_yaml(kind) {
            return Err(bad(
                META_FILE,
                format!(
                    "was prepared with tokenizer {}, but the spec's data.tokenizer is {}; \
                     prepare it again with this spec",
                    meta.tokenizer.trim(),
                    kind_yaml(kind).trim()
                ),
            ));
        }
        let stored = if dir.join(TOKENIZER_JSON_FILE).is_file() {
            let json = crate::files::read_text(&dir.join(TOKENIZER_JSON_FILE))
                .map_err(|e| bad(TOKENIZER_JSON_FILE, e.to_string()))?;
            StoredTokenizer::HuggingFace(json)
        } else if dir.join(VOCAB_FILE).is_file() {
            let chars = crate::files::read_text(&dir.join(VOCAB_FILE))
                .map_err(|e| bad(VOCAB_FILE, e.to_string()))?;
            StoredTokenizer::Characters(chars)
        } else {
            return Err(bad(
                TOKENIZER_JSON_FILE,
                format!("is missing (and so is {VOCAB_FILE}): the ids mean nothing without it"),
            ));
        };
        let tokenizer = stored.rebuild().map_err(|e| bad(TOKENIZER_JSON_FILE, e))?;
        if tokenizer.vocab_size() != meta.vocab_size {
            return Err(bad(
                META_FILE,
                format!(
                    "says {} tokens but the tokenizer beside it has {}",
                    meta.vocab_size,
                    tokenizer.vocab_size()
                ),
            ));
        }
        if meta.ids == IdWidth::Uint16 && IdWidth::for_vocab(meta.vocab_size) == IdWidth::Uint32 {
            return Err(bad(
                META_FILE,
                format!("uint16 ids cannot hold a vocabulary of {}", meta.vocab_size),
            ));
        }
        let map = |file: &str| -> Result<MappedIds> {
            let path = dir.join(file);
            let (handle, _) =
                crate::files::open_regular(&path).map_err(|e| bad(file, e.to_string()))?;
            // Safety: the file is only read; a prepared directory is not written while training.
            let map = unsafe { Mmap::map(&handle) }.map_err(|e| bad(file, e.to_string()))?;
            if map.len() % meta.ids.bytes() != 0 {
                return Err(bad(
                    file,
                    format!(
                        "its length ({} bytes) is not a whole number of {} ids",
                        map.len(),
                        meta.ids.name()
                    ),
                ));
            }
            let ids = MappedIds {
                map,
                width: meta.ids,
            };
            if let Some(at) = (0..ids.len()).find(|&i| ids.get(i) as usize >= meta.vocab_size) {
                return Err(bad(
                    file,
                    format!(
                        "id {} at position {at} is outside the vocabulary of {}",
                        ids.get(at),
                        meta.vocab_size
                    ),
                ));
            }
            Ok(ids)
        };
        Ok(PreparedCorpus {
            tokenizer,
            train: map(TRAIN_FILE)?,
            val: map(VAL_FILE)?,
            characters: meta.characters,
        })
    }

    /// The mapped ids of `split`.
    pub fn ids(&self, split: Split) -> &MappedIds {
        match split {
            Split::Train => &self.train,
            Split::Val => &self.val,
        }
    }
}
