//! gptbuild: decoder-only GPT language models from declarative YAML specs, trained on a character
//! corpus (Tiny Shakespeare) with libtorch through tch.
//!
//! The flow: [`spec`] (what to build, validated) → [`layers`] / [`model`] (the built network) →
//! [`train`] (AdamW from [`optim`] on batches from [`data`]) → [`checkpoint`] and [`sample`]
//! (over a sliding [`context`] with a KV cache). [`run`] ties them together for `gptbuild run`,
//! [`stream`] for `gptbuild sample`; [`evaluate`] scores a checkpoint on a whole split. [`cli`] is
//! the command line, [`interrupt`] its Ctrl-C.

pub mod bench;
pub mod checkpoint;
pub mod cli;
pub mod context;
pub mod data;
pub mod error;
pub mod evaluate;
pub mod interrupt;
pub mod layers;
pub mod metrics;
pub mod model;
pub mod optim;
pub mod plot;
pub mod precision;
pub mod progress;
pub mod resources;
pub mod run;
pub mod run_dir;
pub mod sample;
pub mod schedule;
pub mod schema;
pub mod spec;
pub mod stream;
pub mod summary;
pub mod sweep;
pub mod train;
pub mod vocab;

pub use error::{Error, Result};
