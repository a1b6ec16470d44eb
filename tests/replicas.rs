//! The data-parallel seam of the training step: two replicas, each drawing its half of every batch
//! and averaging its gradient with the other's, compute the gradient one process computes on the
//! whole batch, and stay in lockstep. (Here the replicas are threads exchanging gradients through
//! memory; a multi-process implementation exchanges them through c10d.)

mod common;

use std::sync::{Arc, Barrier, Mutex};

use common::tolerance::{bound, compare, model_depth, FP32};
use common::{corpus_path, spec_from, VOCAB_SIZE};
use gptbuild::data::vocab::Vocabulary;
use gptbuild::data::Dataset;
use gptbuild::model::Gpt;
use gptbuild::train::replicas::{Averaged, Replicas, Requests};
use gptbuild::train::Trainer;
use tch::nn::VarStore;
use tch::{Device, Kind, Tensor};

/// Each step's gradients of one replica: its own (from its share of the batch) and the mean.
type Log = Arc<Mutex<Vec<(Tensor, Tensor)>>>;

/// Replica `rank` of `world_size` threads: each puts its gradient in the shared slots and takes
/// the mean once all are there.
struct InMemory {
    rank: usize,
    world_size: usize,
    slots: Arc<Mutex<Vec<Option<Tensor>>>>,
    barrier: Arc<Barrier>,
    log: Log,
}

impl InMemory {
    /// Every replica's `tensor`, in rank order, once all have handed theirs in.
    fn exchange(&self, tensor: &Tensor) -> Vec<Tensor> {
        self.slots.lock().unwrap()[self.rank] = Some(tensor.copy());
        self.barrier.wait();
        let all = self
            .slots
            .lock()
            .unwrap()
            .iter()
            .map(|slot| slot.as_ref().expect("every replica handed one in").copy())
            .collect();
        // Nobody overwrites a slot before all have read them.
        self.barrier.wait();
        all
    }

    fn summed(&self, tensor: &Tensor) -> Tensor {
        let all = self.exchange(tensor);
        all.into_iter()
            .reduce(|sum, t| sum + t)
            .expect("at least one replica")
    }
}

impl Replicas for InMemory {
    fn rank(&self) -> usize {
        self.rank
    }

    fn world_size(&self) -> usize {
        self.world_size
    }

    fn average_gradient(
        &mut self,
        flat_gradient: Tensor,
        requests: Requests,
    ) -> gptbuild::Result<Averaged> {
        let flags = self.summed(&Tensor::from_slice(&requests.to_values()));
        let mean = self.summed(&flat_gradient) / self.world_size as f64;
        self.log.lock().unwrap().push((flat_gradient, mean.copy()));
        let sums = Vec::<f32>::try_from(flags).unwrap();
        Ok(Averaged {
            gradient: mean,
            requests: Requests::from_sums(&sums),
        })
    }

    fn sum(&mut self, values: &[f64]) -> gptbuild::Result<Vec<f64>> {
        let sums = self.summed(&Tensor::from_slice(values));
        Ok(Vec::<f64>::try_from(sums).unwrap())
    }

    fn broadcast_from_first(&mut self, tensor: &mut Tensor) -> gptbuild::Result<()> {
        let first = self.exchange(tensor).swap_remove(0);
        tensor.copy_(&first);
        Ok(())
    }
}

/// Two blocks, no dropout (so the replicas draw nothing from libtorch's shared generator).
const SPEC: &str = "model:\n  block_size: 8\n  n_embd: 16\n  n_layer: 2\n  block:\n    attention: \
                    {kind: multi_head, n_head: 2}\n    feed_forward: {kind: mlp}\n    \
                    norm_placement: pre\n  final_norm: {kind: layernorm}\n\
                    training: {batch_size: 8, learning_rate: 1.0e-2, seed: 3}\n";

/// Trains replica `rank` for `steps` steps from fixed weights; returns its final weights.
fn train_replica(replica: InMemory, steps: usize) -> Vec<Tensor> {
    with_trainer(replica, SPEC, |trainer, variables| {
        for _ in 0..steps {
            trainer.step().expect("in-memory replicas cannot fail");
        }
        variables.iter().map(|(_, t)| t.copy()).collect()
    })
}

/// Runs `work` on a trainer of `spec` with fixed weights (the same in every replica) that is
/// `replica`, and on its variables sorted by name.
fn with_trainer<R>(
    replica: InMemory,
    spec: &str,
    work: impl FnOnce(&mut Trainer, &[(String, Tensor)]) -> R,
) -> R {
    let text = std::fs::read_to_string(corpus_path()).unwrap();
    let vocab = Vocabulary::from_text(&text);
    let dataset = Dataset::new(&text, &vocab, 0.9, 8, Device::Cpu).unwrap();
    let spec = spec_from(spec);
    let vs = VarStore::new(Device::Cpu);
    let model = Gpt::new(&vs.root(), &spec, VOCAB_SIZE);
    // The same weights in every replica, from a formula rather than the shared generator.
    let mut variables: Vec<(String, Tensor)> = vs.variables().into_iter().collect();
    variables.sort_by(|a, b| a.0.cmp(&b.0));
    tch::no_grad(|| {
        for (i, (_, variable)) in variables.iter_mut().enumerate() {
            let values = Tensor::arange(variable.numel() as i64, (Kind::Float, Device::Cpu));
            let values = ((values * 0.37 + i as f64).sin() * 0.2).view(variable.size().as_slice());
            variable.copy_(&values);
        }
    });
    let mut trainer = Trainer::new(model, vs, &dataset, &spec.training)
        .with_replicas(Box::new(replica))
        .expect("8 windows split between 1 or 2 replicas");
    work(&mut trainer, &variables)
}

/// What one replica did: each step's (own, mean) gradients, and its final weights.
struct Trained {
    gradients: Vec<(Tensor, Tensor)>,
    weights: Vec<Tensor>,
}

/// Runs `work` in `world_size` replicas side by side (threads); returns each one's result and
/// gradient log, in rank order.
fn in_world<R: Send>(
    world_size: usize,
    work: impl Fn(InMemory) -> R + Sync,
) -> Vec<(R, Vec<(Tensor, Tensor)>)> {
    let slots = Arc::new(Mutex::new(
        (0..world_size).map(|_| None).collect::<Vec<_>>(),
    ));
    let barrier = Arc::new(Barrier::new(world_size));
    let work = &work;
    std::thread::scope(|scope| {
        let handles: Vec<_> = (0..world_size)
            .map(|rank| {
                let log = Log::default();
                let replica = InMemory {
                    rank,
                    world_size,
                    slots: slots.clone(),
                    barrier: barrier.clone(),
                    log: log.clone(),
                };
                (scope.spawn(move || work(replica)), log)
            })
            .collect();
        handles
            .into_iter()
            .map(|(handle, log)| {
                let result = handle.join().expect("the replica works");
                let gradients = std::mem::take(&mut *log.lock().unwrap());
                (result, gradients)
            })
            .collect()
    })
}

/// Trains `world_size` replicas side by side.
fn train_world(world_size: usize, steps: usize) -> Vec<Trained> {
    in_world(world_size, |replica| train_replica(replica, steps))
        .into_iter()
        .map(|(weights, gradients)| Trained { gradients, weights })
        .collect()
}

#[test]
fn two_replicas_compute_the_whole_batchs_gradient_and_stay_in_lockstep() {
    let _rng = common::torch_rng();
    let one = train_world(1, 3);
    let two = train_world(2, 3);
    let whole_batch = &one[0].gradients[0].1;
    // The first step starts from the same weights: the half-batch gradients averaged are the
    // whole batch's gradient, up to rounding (the backward pass through every layer, one more sum).
    let depth = 2.0 * model_depth(2) + 1.0;
    let averaged = &two[0].gradients[0].1;
    compare(averaged, whole_batch, FP32, depth).assert("averaged gradient, step 1");
    assert!(
        whole_batch.abs().max().double_value(&[]) > 0.0,
        "a zero gradient"
    );
    // The mutation check: one replica's own half-batch gradient is not the whole batch's.
    let own_half = &two[0].gradients[0].0;
    assert!(!compare(own_half, whole_batch, FP32, depth).is_close());
    // Both replicas took the same three steps: identical weights, bit for bit.
    assert_eq!(two[0].gradients.len(), 3);
    for (a, b) in two[0].weights.iter().zip(&two[1].weights) {
        assert!(a.equal(b), "the replicas drifted apart");
    }
}

/// Evaluations sharded over replicas: each scores its share of the windows and the sums are
/// added, so every replica reports the loss one process computes over all the windows — for the
/// course's random batches and for the whole validation split (whose 13,943 windows do not
/// divide evenly among 2 or 4).
#[test]
fn replicas_evaluate_their_shares_and_agree_with_one_process() {
    for val_eval in ["batches", "whole_split"] {
        let spec = SPEC.replace(
            "seed: 3}",
            &format!("seed: 3, eval_iters: 3, val_eval: {val_eval}}}"),
        );
        assert_ne!(spec, SPEC);
        let evaluate = |world_size: usize| -> Vec<(f64, f64)> {
            in_world(world_size, |replica| {
                with_trainer(replica, &spec, |trainer, _| {
                    let evaluation = trainer.evaluate().expect("in memory");
                    (evaluation.train_loss, evaluation.val_loss)
                })
            })
            .into_iter()
            .map(|(losses, _)| losses)
            .collect()
        };
        let one = evaluate(1)[0];
        // A mean of about 10^3..10^5 per-token losses (each through the whole model), summed in
        // another order: the model's rounding plus one more sum's, relative to the loss.
        let bound = |loss: f64| bound(FP32, model_depth(2) + 1.0, loss);
        for world_size in [2, 4] {
            let all = evaluate(world_size);
            for (rank, (train, val)) in all.iter().enumerate() {
                assert_eq!(
                    (train, val),
                    (&all[0].0, &all[0].1),
                    "rank {rank} disagrees"
                );
                assert!(
                    (train - one.0).abs() <= bound(one.0),
                    "{val_eval}: {train} vs {}",
                    one.0
                );
                assert!(
                    (val - one.1).abs() <= bound(one.1),
                    "{val_eval}: {val} vs {}",
                    one.1
                );
            }
        }
    }
}
