//! Data-parallel training across processes, GPUs and machines, on PyTorch's own distributed
//! engine: c10d, with Gloo moving CPU tensors and NCCL moving CUDA ones, launched by `torchrun`
//! exactly as a PyTorch DDP script is.
//!
//! | file | job |
//! |---|---|
//! | [`launch`] | the environment torchrun sets (rank, world size, where the ranks meet) |
//! | `c10d` | the C++ seam (`c10d.cpp`, compiled by `build.rs` with the `distributed` feature): a process group, its collectives |
//! | [`replicas`] | [`crate::train::replicas::Replicas`] over that group: what a training step exchanges |
//!
//! What one run is, with N processes: every rank holds the whole model and draws the same global
//! batch, trains on its 1/N of it, and averages its gradient with the others' before clipping,
//! so all take the step one process would take on the whole batch. Rank 0 owns the run directory
//! and all output; see [`crate::workflow::run`].

#[cfg(feature = "distributed")]
pub mod c10d;
pub mod launch;
pub mod replicas;

pub use launch::Launch;
pub use replicas::C10dReplicas;
