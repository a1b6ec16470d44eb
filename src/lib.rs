//! gptbuild: decoder-only GPT language models from declarative YAML specs, trained on a character
//! corpus (Tiny Shakespeare) with libtorch through tch.
//!
//! The folders are the pipeline, and data flows one way through them:
//!
//! | stage | what |
//! |---|---|
//! | [`spec`] | what to build and how to train it: parsed, validated, resolved; its JSON Schema |
//! | [`layers`] | the transformer, one concept per file, grouped by family |
//! | [`model`] | the GPT assembled from the layers; its parameter table and FLOPs |
//! | [`data`] | the corpus (found, downloaded, verified), its vocabulary, batches |
//! | [`train`] | the trainer, AdamW, evaluation over windows of the corpus |
//! | [`distributed`] | data-parallel training: several processes as replicas, over c10d |
//! | [`generate`] | sampling, the sliding context with its KV cache, streaming text |
//! | [`artifacts`] | what a run leaves on disk: checkpoints, run directories, metrics |
//! | [`workflow`] | the commands' work composed from the stages: run, sweep, bench, plot |
//! | [`cli`] | the command line |
//!
//! Beside them, used by all: [`allocator`] (freed memory kept for the next step), [`error`] (every failure as a value), [`files`] (written whole or not
//! at all), [`resources`] (what the machine can bear), [`device`] (CPU or GPU, and what libtorch reaches), [`interrupt`] (Ctrl-C), [`kernels`] (C++ kernels libtorch lacks), [`registry`] (the layer kinds' schemas), [`validate`] (the checks every spec field goes through).

pub mod allocator;
pub mod artifacts;
pub mod cli;
pub mod data;
pub mod device;
pub mod distributed;
pub mod error;
pub mod files;
pub mod generate;
pub mod interrupt;
pub mod kernels;
pub mod layers;
pub mod model;
pub mod registry;
pub mod resources;
pub mod spec;
pub mod train;
pub mod validate;
pub mod workflow;

pub use error::{Error, Result};
