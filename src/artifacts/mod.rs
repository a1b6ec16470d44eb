//! What a run leaves on disk, each written whole or not at all: checkpoints ([`checkpoint`]: weights,
//! spec and vocabulary in one safetensors file, and the training state beside them), run directories
//! ([`run_dir`]) and the evaluation log ([`metrics`]).

pub mod checkpoint;
pub mod metrics;
pub mod run_dir;
