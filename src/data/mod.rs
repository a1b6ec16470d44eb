//! The corpus and the batches drawn from it.
//!
//! Finding the corpus, in order: `--data`, the environment variable `GPTBUILD_DATA`, the spec's
//! `data.path`, `data/tinyshakespeare.txt`, and finally a download of the canonical public copy,
//! kept only if its sha256 matches. A corpus is a text file or a directory of `.txt` files. The
//! first 90% of the characters train, the rest validate, each encoded by the spec's tokenizer; a
//! batch is `batch_size` windows of `block_size + 1` tokens at uniformly random offsets, the
//! targets being the inputs shifted by one.

pub mod prepared;
pub mod tokenizer;
pub mod vocab;

use std::io::Read;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};
use tch::{Device, Kind, Tensor};

use crate::data::prepared::{MappedIds, PreparedCorpus};
use crate::data::tokenizer::{Tokenizer, TokenizerKind};
use crate::error::{Error, Result};
use crate::resources::MemoryEstimate;

/// Environment variable naming the corpus file.
pub const DATA_ENV: &str = "GPTBUILD_DATA";
/// Environment variable overriding the download address (mirrors, tests).
pub const DATA_URL_ENV: &str = "GPTBUILD_DATA_URL";
/// Where the corpus is looked for, and downloaded to, relative to the working directory.
pub const DEFAULT_CORPUS_PATH: &str = "data/tinyshakespeare.txt";
/// The canonical public copy of Tiny Shakespeare (Karpathy's char-rnn).
pub const CORPUS_URL: &str =
    "https://raw.githubusercontent.com/karpathy/char-rnn/master/data/tinyshakespeare/input.txt";
/// sha256 of that copy (1,115,394 bytes).
pub const CORPUS_SHA256: &str = "86c4e6aa9db7c042ec79f339dcb96d42b0075e16b8fc2e86bf0ca57e2dc565ed";

/// The corpus text: found (or downloaded) by [`locate_corpus`], then read by [`read_corpus`].
pub fn load_corpus(cli: Option<&Path>, spec: Option<&Path>) -> Result<String> {
    read_corpus(&locate_corpus(cli, spec)?)
}

/// The tokenizer and the dataset a run trains on: a prepared directory's, memory-mapped (its
/// split was fixed when it was prepared), or the corpus text split at `train_fraction` and
/// encoded by the tokenizer `kind` makes of it.
pub fn training_data(
    cli: Option<&Path>,
    spec: Option<&Path>,
    train_fraction: f64,
    kind: &dyn TokenizerKind,
    block_size: i64,
    device: Device,
) -> Result<(Box<dyn Tokenizer>, Dataset)> {
    let path = locate_corpus(cli, spec)?;
    if prepared::is_prepared(&path) {
        return Dataset::from_prepared(PreparedCorpus::open(&path, kind)?, block_size, device);
    }
    let text = read_corpus(&path)?;
    let tokenizer = kind.make(&text, split_text(&text, train_fraction).0)?;
    let dataset = Dataset::new(
        &text,
        tokenizer.as_ref(),
        train_fraction,
        block_size,
        device,
    )?;
    Ok((tokenizer, dataset))
}

/// The dataset a trained model is scored on, encoded by its own `tokenizer`: as
/// [`training_data`], and a prepared directory must hold that same tokenizer.
pub fn scoring_data(
    cli: Option<&Path>,
    spec: Option<&Path>,
    train_fraction: f64,
    (kind, tokenizer): (&dyn TokenizerKind, &dyn Tokenizer),
    block_size: i64,
    device: Device,
) -> Result<Dataset> {
    let path = locate_corpus(cli, spec)?;
    if prepared::is_prepared(&path) {
        let corpus = PreparedCorpus::open(&path, kind)?;
        if corpus.tokenizer.stored() != tokenizer.stored() {
            return Err(Error::Corpus {
                path,
                message: "was prepared with another tokenizer than the model's".into(),
            });
        }
        return Ok(Dataset::from_prepared(corpus, block_size, device)?.1);
    }
    let text = read_corpus(&path)?;
    Dataset::new(&text, tokenizer, train_fraction, block_size, device)
}

/// Finds the corpus file, downloading it if no local copy is named or present.
pub fn locate_corpus(cli: Option<&Path>, spec: Option<&Path>) -> Result<PathBuf> {
    let from_env = std::env::var_os(DATA_ENV)
        .filter(|v| !v.is_empty())
        .map(PathBuf::from);
    if let Some(named) = cli
        .map(Path::to_path_buf)
        .or(from_env)
        .or_else(|| spec.map(Path::to_path_buf))
    {
        return Ok(named);
    }
    let default = PathBuf::from(DEFAULT_CORPUS_PATH);
    if default.is_file() {
        return Ok(default);
    }
    download_corpus(&default)?;
    Ok(default)
}

/// Downloads Tiny Shakespeare to `dest` (from `GPTBUILD_DATA_URL` if set), verified.
#[cfg(feature = "download")]
fn download_corpus(dest: &Path) -> Result<()> {
    let url = std::env::var(DATA_URL_ENV).unwrap_or_else(|_| CORPUS_URL.to_string());
    eprintln!(
        "downloading Tiny Shakespeare from {url} to {}",
        dest.display()
    );
    download_verified(&url, CORPUS_SHA256, dest)
}

/// Without the `download` feature there is nothing to download with: say where to put the corpus.
#[cfg(not(feature = "download"))]
fn download_corpus(dest: &Path) -> Result<()> {
    Err(Error::Corpus {
        path: dest.to_path_buf(),
        message: format!(
            "no corpus found: name one (the spec's data.path, ${DATA_ENV}) or put Tiny \
             Shakespeare here (this build does not download: the `download` feature)"
        ),
    })
}

/// Downloads `url` to `dest` if and only if its sha256 is `sha256` (lower-case hex). The file is
/// written under a temporary name and renamed, so `dest` never holds a partial or wrong download.
#[cfg(feature = "download")]
pub fn download_verified(url: &str, sha256: &str, dest: &Path) -> Result<()> {
    let failed = |message: String| Error::Download {
        url: url.to_string(),
        message,
    };
    let response = ureq::get(url)
        .timeout(std::time::Duration::from_secs(60))
        .call()
        .map_err(|e| failed(e.to_string()))?;
    let mut bytes = Vec::new();
    response
        .into_reader()
        .take(64 << 20)
        .read_to_end(&mut bytes)
        .map_err(|e| failed(e.to_string()))?;
    let actual = sha256_hex(&bytes);
    if actual != sha256 {
        return Err(Error::Checksum {
            url: url.to_string(),
            expected: sha256.to_string(),
            actual,
        });
    }
    if let Some(dir) = dest.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(Error::io(format!("creating {}", dir.display())))?;
    }
    crate::files::write_whole(dest, &bytes)
}

/// Lower-case hex sha256 of `bytes`.
pub fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Reads the corpus as UTF-8 text: a file, or a directory whose `.txt` files are read in name
/// order and joined (a directory without any, and missing, empty and non-UTF-8 files, are errors
/// naming the file).
pub fn read_corpus(path: &Path) -> Result<String> {
    if !path.is_dir() {
        return read_text_file(path);
    }
    let corpus_error = |message: String| Error::Corpus {
        path: path.to_path_buf(),
        message,
    };
    let mut files: Vec<PathBuf> = std::fs::read_dir(path)
        .map_err(|e| corpus_error(e.to_string()))?
        .filter_map(|entry| entry.ok().map(|entry| entry.path()))
        .filter(|file| file.is_file() && file.extension().is_some_and(|ext| ext == "txt"))
        .collect();
    files.sort();
    if files.is_empty() {
        return Err(corpus_error("the directory holds no .txt files".into()));
    }
    let total = files
        .iter()
        .filter_map(|file| std::fs::metadata(file).ok())
        .map(|meta| meta.len())
        .sum();
    MemoryEstimate::corpus(total).check(Device::Cpu)?;
    let mut text = String::new();
    for file in &files {
        text.push_str(&read_text_file(file)?);
    }
    Ok(text)
}

/// One regular UTF-8 text file, checked to fit in memory first.
fn read_text_file(path: &Path) -> Result<String> {
    let corpus_error = |message: String| Error::Corpus {
        path: path.to_path_buf(),
        message,
    };
    // A regular file only: a device or a pipe has no size to check and may never end.
    let (file, size) = crate::files::open_regular(path).map_err(|e| corpus_error(e.to_string()))?;
    MemoryEstimate::corpus(size).check(Device::Cpu)?;
    let mut bytes = Vec::new();
    file.take(size)
        .read_to_end(&mut bytes)
        .map_err(|e| corpus_error(e.to_string()))?;
    if bytes.is_empty() {
        return Err(corpus_error("the file is empty".into()));
    }
    String::from_utf8(bytes).map_err(|e| corpus_error(format!("not UTF-8 text ({e})")))
}

/// Which part of the corpus to draw from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Split {
    Train,
    Val,
}

/// The encoded corpus, split in two, ready to serve batches.
#[derive(Debug)]
pub struct Dataset {
    train: Tokens,
    val: Tokens,
    /// Characters of text each split's tokens after the first stand for: what whole-split
    /// scores, which predict every token but the first, cover (bits per character).
    scored_characters: [i64; 2],
    block_size: i64,
}

/// A split's ids: in a tensor (on the training device), or mapped from a prepared file and
/// gathered on the host per batch.
#[derive(Debug)]
enum Tokens {
    Memory(Tensor),
    Mapped(MappedIds, Device),
}

/// A split of `len` tokens must hold at least one window of `block_size + 1`.
fn require_longer_than_block(split: &'static str, len: usize, block_size: i64) -> Result<()> {
    if len as i64 <= block_size {
        return Err(Error::CorpusTooShort {
            split,
            len,
            block_size,
        });
    }
    Ok(())
}

/// The first `train_fraction` of the characters of `text` (the training split's text) and the rest.
pub fn split_text(text: &str, train_fraction: f64) -> (&str, &str) {
    let n_train = (train_fraction * text.chars().count() as f64) as usize;
    let at = text
        .char_indices()
        .nth(n_train)
        .map_or(text.len(), |(at, _)| at);
    text.split_at(at)
}

impl Dataset {
    /// The tokenizer `spec` asks for (`data.tokenizer`, trained on the training split where it
    /// learns one) and the dataset of `text` split and encoded as `spec` says (`data.train_fraction`,
    /// `model.block_size`), on `device`: a corpus from any string, not only from a file.
    pub fn from_text(
        text: &str,
        spec: &crate::spec::Spec,
        device: Device,
    ) -> Result<(Box<dyn Tokenizer>, Dataset)> {
        let fraction = spec.data.train_fraction;
        let tokenizer = spec
            .data
            .tokenizer
            .make(text, split_text(text, fraction).0)?;
        let dataset = Dataset::new(
            text,
            tokenizer.as_ref(),
            fraction,
            spec.model.block_size,
            device,
        )?;
        Ok((tokenizer, dataset))
    }

    /// Splits `text` ([`split_text`]) and encodes each part with `tokenizer`; each split must
    /// hold more than `block_size` tokens. (For the character vocabulary this is the course's
    /// split of the ids: one id per character.)
    pub fn new(
        text: &str,
        tokenizer: &dyn Tokenizer,
        train_fraction: f64,
        block_size: i64,
        device: Device,
    ) -> Result<Self> {
        let (train_text, val_text) = split_text(text, train_fraction);
        let encode = |name: &'static str, part: &str| -> Result<(Tensor, i64)> {
            let ids = tokenizer.encode(part)?;
            require_longer_than_block(name, ids.len(), block_size)?;
            let first = tokenizer.decode(&ids[..1]).chars().count();
            let scored = part.chars().count().saturating_sub(first) as i64;
            Ok((Tensor::from_slice(&ids).to_device(device), scored))
        };
        let (train, train_characters) = encode("training", train_text)?;
        let (val, val_characters) = encode("validation", val_text)?;
        Ok(Dataset {
            train: Tokens::Memory(train),
            val: Tokens::Memory(val),
            scored_characters: [train_characters, val_characters],
            block_size,
        })
    }

    /// Characters of text the tokens of `split` after its first stand for.
    pub fn scored_characters(&self, split: Split) -> i64 {
        match split {
            Split::Train => self.scored_characters[0],
            Split::Val => self.scored_characters[1],
        }
    }

    /// The dataset of a prepared directory, its splits memory-mapped; its tokenizer is returned
    /// beside it. Each split must hold more than `block_size` tokens.
    pub fn from_prepared(
        prepared: PreparedCorpus,
        block_size: i64,
        device: Device,
    ) -> Result<(Box<dyn Tokenizer>, Self)> {
        let PreparedCorpus {
            tokenizer,
            train,
            val,
            characters,
        } = prepared;
        let mut scored_characters = [0; 2];
        for (i, (name, ids)) in [("training", &train), ("validation", &val)]
            .into_iter()
            .enumerate()
        {
            require_longer_than_block(name, ids.len(), block_size)?;
            let first = tokenizer.decode(&[ids.get(0)]).chars().count() as i64;
            scored_characters[i] = (characters[i] - first).max(0);
        }
        let dataset = Dataset {
            train: Tokens::Mapped(train, device),
            val: Tokens::Mapped(val, device),
            scored_characters,
            block_size,
        };
        Ok((tokenizer, dataset))
    }

    /// Number of tokens in a split.
    pub fn len(&self, split: Split) -> i64 {
        match self.tokens(split) {
            Tokens::Memory(ids) => ids.size()[0],
            Tokens::Mapped(ids, _) => ids.len() as i64,
        }
    }

    fn tokens(&self, split: Split) -> &Tokens {
        match split {
            Split::Train => &self.train,
            Split::Val => &self.val,
        }
    }

    /// Random window offsets for a batch: each in `0..len - block_size`, as the course draws them.
    pub fn random_offsets(&self, split: Split, batch_size: i64, rng: &mut SplitMix64) -> Vec<i64> {
        let range = (self.len(split) - self.block_size) as u64;
        (0..batch_size).map(|_| rng.below(range) as i64).collect()
    }

    /// Inputs and targets `[B, block_size]` for windows starting at `offsets`.
    pub fn batch_at(&self, split: Split, offsets: &[i64]) -> (Tensor, Tensor) {
        let windows = match self.tokens(split) {
            Tokens::Memory(data) => {
                let starts = Tensor::from_slice(offsets)
                    .to_device(data.device())
                    .unsqueeze(1);
                let steps =
                    Tensor::arange(self.block_size + 1, (Kind::Int64, data.device())).unsqueeze(0);
                data.take(&(starts + steps))
            }
            Tokens::Mapped(data, device) => {
                let width = self.block_size + 1;
                let ids: Vec<i64> = offsets
                    .iter()
                    .flat_map(|&start| (start..start + width).map(|i| data.get(i as usize)))
                    .collect();
                Tensor::from_slice(&ids)
                    .view([offsets.len() as i64, width])
                    .to_device(*device)
            }
        };
        let x = windows.narrow(1, 0, self.block_size);
        let y = windows.narrow(1, 1, self.block_size);
        (x, y)
    }
}

/// SplitMix64 (Steele, Lea & Flood 2014): a tiny, fast, seedable generator whose whole state is one
/// `u64`, so batch sampling is reproducible and independent of libtorch's generator.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SplitMix64 {
    state: u64,
}

impl SplitMix64 {
    pub fn new(seed: u64) -> Self {
        SplitMix64 { state: seed }
    }

    /// An independent stream for `(seed, stream)`: different streams never share a state sequence
    /// in practice, so e.g. evaluation batches do not depend on how many training batches were drawn.
    pub fn stream(seed: u64, stream: u64) -> Self {
        let mut mixer = SplitMix64::new(stream ^ 0x6A09_E667_F3BC_C909);
        SplitMix64::new(seed ^ mixer.next_u64())
    }

    /// The whole state, to save; [`SplitMix64::new`] with it continues the same sequence.
    pub fn state(&self) -> u64 {
        self.state
    }

    pub fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (Lemire's multiply-shift; the bias, below n/2⁶⁴, is immaterial here).
    pub fn below(&mut self, n: u64) -> u64 {
        ((self.next_u64() as u128 * n as u128) >> 64) as u64
    }
}
