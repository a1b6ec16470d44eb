//! gptbuild: decoder-only GPT language models from declarative YAML specs, trained, evaluated
//! and sampled with libtorch through tch. The command line (`gptbuild run task07`) is one user of
//! this library; a program is another:
//!
//! ```
//! use gptbuild::prelude::*;
//!
//! # fn main() -> gptbuild::Result<()> {
//! let spec = Spec::from_yaml("
//! model: {block_size: 8, n_embd: 16, n_layer: 1,
//!         block: {attention: {kind: multi_head, n_head: 2}, feed_forward: {kind: mlp}}}
//! training: {batch_size: 8, max_iters: 20, eval_interval: 10, eval_iters: 2, threads: 1}
//! ")
//! .map_err(Error::Usage)?;
//! let text = "To be, or not to be, that is the question. ".repeat(20);
//! let (tokenizer, dataset) = Dataset::from_text(&text, &spec, Device::Cpu)?;
//! let mut trainer = Trainer::for_spec(&spec, &dataset, tokenizer.vocab_size(), Device::Cpu)?;
//! let mut last = None;
//! trainer.train(&mut on_evaluation(|e| last = Some(e.val_loss)))?;
//! assert!(last.is_some_and(f64::is_finite));
//! let line = Sampler::new(&trainer.model, tokenizer.as_ref()).sample("To be", 20)?;
//! assert!(!line.is_empty());
//! # Ok(())
//! # }
//! ```
//!
//! Where to start:
//!
//! | type | what |
//! |---|---|
//! | [`Spec`] | what to build and how to train it: parsed from YAML, validated, resolved |
//! | [`Dataset`], [`Tokenizer`] | a corpus split and encoded, batches drawn from it |
//! | [`Gpt`] | the model a spec describes |
//! | [`Trainer`] | AdamW steps and evaluations, reported to an [`Observer`] ([`on_evaluation`], [`Quietly`]) |
//! | [`Sampler`] | text from a trained model, whole or streamed |
//! | [`save_checkpoint`], [`load_checkpoint`] | a model with its spec and tokenizer, in one safetensors file |
//! | [`layers`] | the layer kinds a spec names, and how to add one from your own crate |
//! | [`Error`] | every failure, as a value |
//!
//! The examples (`examples/` in the repository) train from a spec, sample from a checkpoint,
//! add a layer kind from outside the crate and embed a model in an application loop.
//!
//! Features: `cpu-kernels` (default: gptbuild's C++ kernels for the CPU; without them every layer
//! runs its libtorch formulation), `distributed` (default: data-parallel training over c10d;
//! needs Gloo's headers to build), `cli` (default: the `gptbuild` command line and its workflows),
//! `download` (with `cli`: Tiny Shakespeare fetched when no corpus is found). A library user
//! wants `default-features = false, features = ["cpu-kernels"]`.
//!
//! The folders are the pipeline, and data flows one way through them: `spec` → `layers`,
//! `model` → `data` → `train`, `generate` → `artifacts` → `workflow` → `cli`; `ops` chooses who
//! computes each operation (a C++ kernel or libtorch). Everything not listed above is public only
//! for the project's own tests and command line, hidden from these docs, and may change in any
//! release.
#![warn(missing_docs)]

pub use artifacts::checkpoint::{load as load_checkpoint, save as save_checkpoint, LoadedModel};
pub use data::tokenizer::Tokenizer;
pub use data::{Dataset, Split};
pub use device::{load_cuda_backend, select as select_device, CudaBackend};
pub use error::{Error, Result, SpecError};
pub use generate::sampler::Sampler;
pub use interrupt::request as request_stop;
pub use model::summary::parameter_table;
pub use model::Gpt;
pub use spec::{Decoding, DeviceSpec, Spec};
pub use tch::Device;
pub use train::{on_evaluation, Evaluation, Observer, Quietly, Stop, Trainer};

/// What [`register_kind!`] expands to needs, reachable from a user's crate.
#[doc(hidden)]
pub mod __private {
    pub use inventory;
    pub use schemars;
}

/// The types a program needs most, in one `use gptbuild::prelude::*`.
pub mod prelude {
    pub use crate::{
        load_checkpoint, on_evaluation, save_checkpoint, Dataset, Device, Error, Gpt, Observer,
        Quietly, Result, Sampler, Spec, Tokenizer, Trainer,
    };
}

#[doc(hidden)]
pub mod allocator;
#[doc(hidden)]
pub mod artifacts;
#[cfg(feature = "cli")]
#[doc(hidden)]
pub mod cli;
#[doc(hidden)]
pub mod convert;
#[doc(hidden)]
pub mod data;
#[doc(hidden)]
pub mod device;
#[doc(hidden)]
pub mod distributed;
#[doc(hidden)]
pub mod error;
#[doc(hidden)]
pub mod files;
#[doc(hidden)]
pub mod generate;
#[doc(hidden)]
pub mod interrupt;
#[cfg(feature = "cpu-kernels")]
#[doc(hidden)]
pub mod kernels;
pub mod layers;
#[doc(hidden)]
pub mod model;
#[doc(hidden)]
pub mod ops;
#[doc(hidden)]
pub mod registry;
#[doc(hidden)]
pub mod resources;
#[doc(hidden)]
pub mod spec;
#[doc(hidden)]
pub mod train;
#[doc(hidden)]
pub mod validate;
#[cfg(feature = "cli")]
#[doc(hidden)]
pub mod workflow;
