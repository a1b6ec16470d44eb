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

use serde_norway::Value;
use tch::{Device, Tensor};

use crate::error::{Error, Result};

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

/// The first replica's `text` on every replica: its length, then its bytes, broadcast on `device`.
pub fn broadcast_text(replicas: &mut dyn Replicas, text: &str, device: Device) -> Result<String> {
    let mut len = Tensor::from_slice(&[text.len() as i64]).to_device(device);
    replicas.broadcast_from_first(&mut len)?;
    let len = len.to_device(Device::Cpu).int64_value(&[0]).max(0) as usize;
    // Every replica sends (or receives into) a buffer of the first one's length.
    let mut bytes = text.as_bytes().to_vec();
    bytes.resize(len, 0);
    let mut buffer = Tensor::from_slice(&bytes).to_device(device);
    replicas.broadcast_from_first(&mut buffer)?;
    let bytes = Vec::<u8>::try_from(buffer.to_device(Device::Cpu))?;
    Ok(String::from_utf8_lossy(&bytes).into_owned())
}

/// Checks that every replica trains the same resolved spec (`spec`, YAML): the first replica's
/// is sent to all, each compares it with its own, and all learn which differ. A replica whose spec
/// differs fails naming the first field that differs, with its value and the first replica's;
/// the others fail naming the ranks that differ. All replicas make the same calls, so none is
/// left waiting.
pub fn same_spec(replicas: &mut dyn Replicas, spec: &str, device: Device) -> Result<()> {
    let first = broadcast_text(replicas, spec, device)?;
    let (rank, world_size) = (replicas.rank(), replicas.world_size());
    let difference = first_difference(&first, spec);
    let mut differs = vec![0.0; world_size];
    differs[rank] = f64::from(u8::from(difference.is_some()));
    let differing: Vec<usize> = replicas
        .sum(&differs)?
        .iter()
        .enumerate()
        .filter(|(_, &n)| n > 0.5)
        .map(|(rank, _)| rank)
        .collect();
    if differing.is_empty() {
        return Ok(());
    }
    let message = match difference {
        Some(FieldDifference { field, first, here }) => format!(
            "this process's spec differs from rank 0's at {field}: {here} here, {first} on rank \
             0; give every rank the same spec and command-line options"
        ),
        None => format!(
            "the processes do not train the same spec: rank{} {} differ{} from rank 0 (each \
             names the first field that differs); give every rank the same spec and \
             command-line options",
            if differing.len() == 1 { "" } else { "s" },
            differing
                .iter()
                .map(usize::to_string)
                .collect::<Vec<_>>()
                .join(", "),
            if differing.len() == 1 { "s" } else { "" },
        ),
    };
    Err(Error::Distributed { rank, message })
}

/// Where two specs first differ: the field's path and both values, as YAML on one line.
#[derive(Debug, PartialEq)]
pub struct FieldDifference {
    pub field: String,
    pub first: String,
    pub here: String,
}

/// The first field, in the order the first spec lists them, whose value differs between the YAML
/// documents `first` and `here`; `None` if they are equal.
pub fn first_difference(first: &str, here: &str) -> Option<FieldDifference> {
    let parse = |text: &str| serde_norway::from_str::<Value>(text).unwrap_or(Value::Null);
    let (first, here) = (parse(first), parse(here));
    difference_at(String::new(), &first, &here)
}

/// The first difference between `a` and `b`, under the field path `path`.
fn difference_at(path: String, a: &Value, b: &Value) -> Option<FieldDifference> {
    if a == b {
        return None;
    }
    let field = |key: &str| match path.is_empty() {
        true => key.to_string(),
        false => format!("{path}.{key}"),
    };
    match (a, b) {
        (Value::Mapping(a_map), Value::Mapping(b_map)) => {
            let keys = a_map
                .keys()
                .chain(b_map.keys().filter(|key| !a_map.contains_key(*key)));
            for key in keys {
                let name = one_line(key);
                let absent = Value::Null;
                let (a_value, b_value) = (
                    a_map.get(key).unwrap_or(&absent),
                    b_map.get(key).unwrap_or(&absent),
                );
                if let Some(difference) = difference_at(field(&name), a_value, b_value) {
                    return Some(difference);
                }
            }
            None
        }
        (Value::Sequence(a_items), Value::Sequence(b_items)) if a_items.len() == b_items.len() => {
            a_items
                .iter()
                .zip(b_items)
                .enumerate()
                .find_map(|(i, (a, b))| difference_at(field(&i.to_string()), a, b))
        }
        _ => Some(FieldDifference {
            field: if path.is_empty() {
                "the spec".into()
            } else {
                path
            },
            first: one_line(a),
            here: one_line(b),
        }),
    }
}

/// A YAML value on one line (`0.001`, `{kind: rope}`), or `absent` for a missing one.
fn one_line(value: &Value) -> String {
    match value {
        Value::Null => "absent".into(),
        Value::String(text) => text.clone(),
        other => serde_norway::to_string(other)
            .map(|yaml| yaml.trim().replace('\n', " "))
            .unwrap_or_default(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_differing_field_is_named_with_both_values() {
        let first = "name: task06\ntraining:\n  learning_rate: 0.001\n  seed: 1\n\
                     model:\n  blocks: [{kind: a}, {kind: b}]\n";
        assert_eq!(first_difference(first, first), None);
        let other_rate = first.replace("0.001", "0.002");
        assert_eq!(
            first_difference(first, &other_rate),
            Some(FieldDifference {
                field: "training.learning_rate".into(),
                first: "0.001".into(),
                here: "0.002".into(),
            })
        );
        let other_block = first.replace("kind: b", "kind: c");
        assert_eq!(
            first_difference(first, &other_block).map(|d| d.field),
            Some("model.blocks.1.kind".into())
        );
        let extra = format!("{first}sampling: {{top_k: 1}}\n");
        let difference = first_difference(first, &extra).expect("differs");
        assert_eq!(
            (difference.field.as_str(), difference.first.as_str()),
            ("sampling", "absent")
        );
        assert_eq!(difference.here, "top_k: 1");
    }

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
