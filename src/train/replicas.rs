//! The seam for data-parallel training: where the gradients of several processes are combined
//! and how a batch is shared among them. Each process (a *replica*) holds the whole model, draws its
//! share of every batch, and averages its gradient with the others' before the update, so all
//! replicas take the same step (PyTorch's DistributedDataParallel; nanoGPT's DDP).
//!
//! One process ([`SingleProcess`]) draws the whole batch and combines nothing: training is exactly
//! what it was before replicas existed. Several processes combine through c10d
//! ([`crate::distributed`]); nothing else in the training step changes.
//!
//! What the replicas exchange, and when (every replica makes the same calls in the same order, or
//! the collectives would pair up wrongly and hang until the timeout):
//! - at the start and after restoring a checkpoint: the first replica's parameters and training
//!   state ([`Replicas::broadcast_from_first`]);
//! - every step: the gradient, with each replica's requests riding along ("stop now": Ctrl-C;
//!   "out of time": the wall-time budget), so that all stop after the same step, whatever their
//!   signals' and clocks' timing ([`Replicas::average_gradient`]);
//! - every evaluation: summed losses and token counts of each replica's share of the windows
//!   ([`Replicas::sum`]).

use tch::Tensor;

use crate::error::Result;

/// What a replica asks of all when it hands in its gradient; each is granted if any replica asks.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Requests {
    /// Stop after this step (Ctrl-C, SIGTERM).
    pub stop: bool,
    /// The wall-time budget has run out.
    pub out_of_time: bool,
}

impl Requests {
    /// How many numbers [`Requests::to_values`] makes.
    pub const LEN: usize = 2;

    /// The requests as numbers, 1 for a request, to be summed over the replicas.
    pub fn to_values(self) -> [f32; Self::LEN] {
        [
            f32::from(u8::from(self.stop)),
            f32::from(u8::from(self.out_of_time)),
        ]
    }

    /// The requests of some replica, from the sums of [`Requests::to_values`].
    pub fn from_sums(sums: &[f32]) -> Self {
        let asked = |i: usize| sums.get(i).is_some_and(|&n| n > 0.5);
        Requests {
            stop: asked(0),
            out_of_time: asked(1),
        }
    }
}

/// A gradient averaged over the replicas, and what any of them requested.
#[derive(Debug)]
pub struct Averaged {
    pub gradient: Tensor,
    pub requests: Requests,
}

/// The other processes training the same model.
pub trait Replicas {
    /// This process's place among the replicas, `0 .. world_size`.
    fn rank(&self) -> usize;
    /// How many replicas share each batch.
    fn world_size(&self) -> usize;
    /// How many values past the gradient's end [`Replicas::average_gradient`] wants free, to send
    /// its own numbers in the same exchange ([`crate::train::optim::AdamW::flat_gradient`] leaves
    /// that room).
    fn room_after_gradient(&self) -> usize {
        0
    }
    /// The mean of every replica's flat gradient (each laid out like the parameters and followed
    /// by [`Replicas::room_after_gradient`] free values), and the requests of all; called once per
    /// step, before clipping and the update. The averaged gradient has the parameters' length.
    fn average_gradient(&mut self, flat_gradient: Tensor, requests: Requests) -> Result<Averaged>;
    /// The element-wise sums of every replica's `values` (losses and counts of an evaluation).
    fn sum(&mut self, values: &[f64]) -> Result<Vec<f64>>;
    /// Overwrites `tensor` with the first replica's (same shape and kind on every replica).
    fn broadcast_from_first(&mut self, tensor: &mut Tensor) -> Result<()>;
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

    fn average_gradient(&mut self, flat_gradient: Tensor, requests: Requests) -> Result<Averaged> {
        Ok(Averaged {
            gradient: flat_gradient,
            requests,
        })
    }

    fn sum(&mut self, values: &[f64]) -> Result<Vec<f64>> {
        Ok(values.to_vec())
    }

    fn broadcast_from_first(&mut self, _tensor: &mut Tensor) -> Result<()> {
        Ok(())
    }
}

/// The part of a batch's `offsets` (or an evaluation's windows) that replica `rank` of
/// `world_size` works on: every replica draws the same global batch (same seed, same generator)
/// and keeps its contiguous share, so together they cover what one process would have. Shares
/// differ by at most one item; a training batch is a multiple of the world size
/// ([`crate::train::Trainer`] requires it), so that its shares are equal and the mean of the
/// replicas' mean gradients is the whole batch's. Dropout masks are each replica's own, so with
/// dropout the replicas are equivalent to one process in distribution, not bit for bit.
pub fn shard<T>(items: &[T], rank: usize, world_size: usize) -> &[T] {
    let world_size = world_size.max(1);
    let bound = |r: usize| (r.min(world_size) * items.len()) / world_size;
    &items[bound(rank)..bound(rank + 1)]
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
        // Uneven (the windows of a whole split): sizes differ by at most one, nothing is lost.
        let shards: Vec<&[i64]> = (0..5).map(|rank| shard(&batch, rank, 5)).collect();
        assert_eq!(shards.concat(), batch);
        assert!(shards.iter().all(|s| s.len() == 2 || s.len() == 3));
    }

    #[test]
    fn one_process_leaves_the_gradient_as_it_is() {
        let gradient = Tensor::from_slice(&[1.0f32, -2.0]);
        let requests = Requests {
            stop: true,
            out_of_time: false,
        };
        let averaged = SingleProcess
            .average_gradient(gradient.shallow_clone(), requests)
            .expect("nothing to fail");
        assert!(averaged.gradient.equal(&gradient));
        assert_eq!(averaged.requests, requests);
    }

    #[test]
    fn requests_survive_the_sum_over_replicas() {
        for stop in [false, true] {
            for out_of_time in [false, true] {
                let asked = Requests { stop, out_of_time };
                let other = Requests::default().to_values();
                let sums: Vec<f32> = asked
                    .to_values()
                    .iter()
                    .zip(other)
                    .map(|(a, b)| a + b)
                    .collect();
                assert_eq!(Requests::from_sums(&sums), asked);
            }
        }
    }
}
