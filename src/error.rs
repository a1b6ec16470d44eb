//! Every way gptbuild can fail, as values. `main` prints one line per error and picks the exit
//! code; nothing user-controlled is allowed to panic.

use std::path::PathBuf;

/// The crate-wide result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// A problem with a spec, naming the offending field by its YAML path (`model.block.attention`).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct SpecError {
    /// Dotted path of the field, e.g. `training.learning_rate`.
    pub field: String,
    /// What is wrong and, where possible, what would be right.
    pub message: String,
}

impl SpecError {
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            message: message.into(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("spec {path}: {source}")]
    SpecRead {
        path: PathBuf,
        source: std::io::Error,
    },

    #[error("spec {path}: {message}")]
    SpecSyntax { path: PathBuf, message: String },

    #[error("spec {path}: {source}")]
    SpecInvalid { path: PathBuf, source: SpecError },

    #[error("no spec named {name:?}: not a file here, nor in architectures/")]
    SpecNotFound { name: String },

    #[error("corpus {path}: {message}")]
    Corpus { path: PathBuf, message: String },

    #[error("tokenizer {path}: {message}")]
    Tokenizer { path: PathBuf, message: String },

    #[error("the {split} split has {len} tokens, too few for block_size {block_size}")]
    CorpusTooShort {
        split: &'static str,
        len: usize,
        block_size: i64,
    },

    #[error("download of {url} failed: {message}")]
    Download { url: String, message: String },

    #[error("download of {url} has sha256 {actual}, expected {expected}; the file was not kept")]
    Checksum {
        url: String,
        expected: String,
        actual: String,
    },

    #[error("text contains {character:?}, which is not in the model's vocabulary")]
    OutOfVocabulary { character: char },

    #[error("checkpoint {path}: {message}")]
    Checkpoint { path: PathBuf, message: String },

    #[error("{0}")]
    Usage(String),

    /// A model that cannot be written in another program's format, or the output in the way.
    #[error("cannot export {path} as {format}: {message}")]
    Export {
        path: PathBuf,
        format: &'static str,
        message: String,
    },

    /// Another program's model that cannot be read in: `path` is the file at fault.
    #[error("import {path}: {message}")]
    Import { path: PathBuf, message: String },

    #[error("device: {0}")]
    Device(String),

    /// Another process is writing the run directory (its lock is held).
    #[error(
        "run directory {} is in use by {}: another `gptbuild run` is training it; wait for it \
         to end or stop it first (reading it with sample, evaluate or plot is fine)",
        dir.display(),
        match holder { Some(pid) => format!("process {pid}"), None => "another process".to_string() }
    )]
    RunInUse { dir: PathBuf, holder: Option<u32> },

    /// Data-parallel training could not start, or lost a replica (rank is this process's).
    #[error("distributed training, rank {rank}: {message}")]
    Distributed { rank: usize, message: String },

    /// A number beyond what this machine can bear (threads): refused before anything starts.
    #[error("{field}: {message}")]
    Limit { field: String, message: String },

    /// Work whose tensors cannot fit in the memory available, refused before allocating them.
    #[error(
        "{what} needs about {needed} of memory, more than the {available} available on this \
         machine; {remedy}"
    )]
    OutOfMemory {
        what: String,
        needed: String,
        available: String,
        remedy: &'static str,
    },

    #[error("{context}: {source}")]
    Io {
        context: String,
        source: std::io::Error,
    },

    /// A NaN or infinite loss: training cannot recover, so it stops.
    #[error("training diverged: the loss is not a number at iteration {iteration}; {}", match last_good {
        Some(good) => format!("the last good checkpoint (iteration {good}) is kept in {}", dir.display()),
        None => "no checkpoint was good enough to keep; lower training.learning_rate".to_string(),
    })]
    Diverged {
        iteration: i64,
        dir: PathBuf,
        last_good: Option<i64>,
    },

    /// Ctrl-C or SIGTERM ended the command cleanly; `main` exits 130 without a message.
    #[error("interrupted")]
    Interrupted,

    #[error("libtorch: {0}")]
    Torch(#[from] tch::TchError),

    /// One of gptbuild's own kernels (`crate::kernels`) refused its inputs or failed.
    #[cfg(feature = "cpu-kernels")]
    #[error("kernel {0}")]
    Kernel(#[from] crate::kernels::KernelError),
}

impl Error {
    /// Wraps an I/O error with what we were doing when it happened.
    pub fn io(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> Error {
        let context = context.into();
        move |source| Error::Io { context, source }
    }
}

impl SpecError {
    /// Prefixes the field path with the enclosing section: `head_size` within `model.block.attention`.
    pub fn within(mut self, section: &str) -> Self {
        self.field = if self.field.is_empty() {
            section.to_string()
        } else {
            format!("{section}.{}", self.field)
        };
        self
    }
}
