//! The seam for data-parallel training: where the gradients of several processes are combined
//! and how a batch is shared among them. Each process (a *replica*) holds the whole model, draws its
//! share of every batch, and averages its gradient with the others' before the update, so all
//! replicas take the same step (PyTorch's DistributedDataParallel; nanoGPT's DDP).
//!
//! Today there is one process ([`SingleProcess`]): it draws the whole batch and combines nothing,
//! and training is exactly what it was. A multi-process implementation (c10d all-reduce, issue
//! #14) implements [`Replicas`]; nothing else in the training step changes.

use tch::Tensor;

/// The other processes training the same model.
pub trait Replicas {
    /// This process's place among the replicas, `0 .. world_size`.
    fn rank(&self) -> usize;
    /// How many replicas share each batch.
    fn world_size(&self) -> usize;
    /// The mean of every replica's flat gradient (each laid out like the parameters); called once
    /// per step, before clipping and the update.
    fn average_gradient(&mut self, flat_gradient: Tensor) -> Tensor;
}

/// One process: the whole batch is its own, and its gradient is the mean.
#[derive(Debug, Clone, Copy, Default)]
pub struct SingleProcess;

impl Replicas for SingleProcess {
    fn rank(&self) -> usize {
        0
    }

    fn world_size(&self) -> usize {
        1
    }

    fn average_gradient(&mut self, flat_gradient: Tensor) -> Tensor {
        flat_gradient
    }
}

/// The part of a batch's `offsets` that replica `rank` of `world_size` trains on: every replica
/// draws the same global batch (same seed, same generator) and keeps its contiguous share, so
/// together they train on the windows one process would have ([`crate::train::Trainer`] requires
/// the batch size to be a multiple of the world size). Dropout masks are each replica's own, so
/// with dropout the replicas are equivalent to one process in distribution, not bit for bit.
pub fn shard<T>(offsets: &[T], rank: usize, world_size: usize) -> &[T] {
    let per_replica = offsets.len() / world_size.max(1);
    let start = (rank * per_replica).min(offsets.len());
    &offsets[start..(start + per_replica).min(offsets.len())]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shards_of_a_batch_are_disjoint_and_cover_it() {
        let batch: Vec<i64> = (0..12).collect();
        assert_eq!(shard(&batch, 0, 1), &batch[..]);
        let shards: Vec<&[i64]> = (0..3).map(|rank| shard(&batch, rank, 3)).collect();
        assert_eq!(shards, [&batch[0..4], &batch[4..8], &batch[8..12]]);
    }

    #[test]
    fn one_process_leaves_the_gradient_as_it_is() {
        let gradient = Tensor::from_slice(&[1.0f32, -2.0]);
        let averaged = SingleProcess.average_gradient(gradient.shallow_clone());
        assert!(averaged.equal(&gradient));
    }
}
