//! `training.thread_split: batch`: a batch trained in shares side by side, one thread each, gives
//! the gradient its replicas give one after the other — each share's rows, each share's dropout
//! keys from libtorch's generator seeded as that replica's process would seed it — averaged.
#![cfg(feature = "cpu-kernels")]

mod common;

use common::tolerance::{compare, model_depth, FP32};
use common::{build, spec_from};
use gptbuild::data::vocab::Vocabulary;
use gptbuild::data::Dataset;
use gptbuild::kernels::dropout::{draw_key, ThreadKeys};
use gptbuild::model::Gpt;
use gptbuild::train::optim::AdamW;
use gptbuild::train::thread_split::{split_gradient, Share};
use gptbuild::train::Trainer;
use tch::{Device, Kind, Tensor};

/// Two pre-LN blocks with dropout everywhere the spec allows (embeddings, attention weights,
/// residual branches), fused attention: every kind of key the CPU draws.
const SPEC: &str = "model:\n  block_size: 16\n  n_embd: 32\n  n_layer: 2\n  dropout: 0.2\n  \
                    block:\n    attention: {kind: multi_head, n_head: 4, fused: true}\n    \
                    feed_forward: {kind: mlp}\n    norm_placement: pre\n  \
                    final_norm: {kind: layernorm}\ntraining: {batch_size: 8}\n";

/// Random token ids `[rows, 16]` from a formula, not from libtorch's generator.
fn tokens(rows: i64, salt: i64) -> Tensor {
    let n = rows * 16;
    ((Tensor::arange(n, (Kind::Int64, Device::Cpu)) * 7919 + salt * 104_729).remainder(65))
        .view([rows, 16])
}

/// The shares' gradient and loss computed one after the other on this thread, each after seeding
/// libtorch's own generator with the share's seed: what separate processes compute.
fn one_after_the_other(model: &Gpt, optimizer: &AdamW, shares: &[Share]) -> (Tensor, Tensor) {
    let results: Vec<(Tensor, Tensor)> = shares
        .iter()
        .map(|share| {
            tch::manual_seed(share.dropout_seed as i64);
            let loss = Gpt::loss(&model.forward_t(&share.x, true), &share.y);
            (optimizer.flat_gradient(&loss, 0), loss.detach())
        })
        .collect();
    let n = results.len() as f64;
    let gradient = results
        .iter()
        .map(|r| r.0.shallow_clone())
        .reduce(|a, b| a + b)
        .unwrap()
        / n;
    let loss = results.iter().map(|r| r.1.double_value(&[])).sum::<f64>() / n;
    (gradient, Tensor::from(loss as f32))
}

fn shares(seeds: &[u64]) -> Vec<Share> {
    seeds
        .iter()
        .enumerate()
        .map(|(i, &seed)| Share {
            x: tokens(4, i as i64),
            y: tokens(4, i as i64 + 10),
            dropout_seed: seed,
        })
        .collect()
}

#[test]
fn shares_side_by_side_give_what_their_replicas_give_one_after_the_other() {
    let _rng = common::torch_rng();
    let spec = spec_from(SPEC);
    let (vs, model) = build(&spec, 7);
    let optimizer = AdamW::new(vs.trainable_variables(), spec.training.adamw.clone());
    let shares = shares(&[11, 12]);
    let split = split_gradient(&model, &optimizer, &shares, 0);
    let (gradient, loss) = one_after_the_other(&model, &optimizer, &shares);
    // The same products and sums, split differently among threads: the model's rounding.
    let depth = 2.0 * model_depth(2) + 1.0;
    compare(&split.gradient, &gradient, FP32, depth).assert("gradient of the split batch");
    compare(&split.loss, &loss, FP32, model_depth(2) + 1.0).assert("loss of the split batch");
    assert!(
        gradient.abs().max().double_value(&[]) > 0.0,
        "a zero gradient"
    );
    // The mutation checks: other keys (shares' seeds swapped) drop other units, and either share's
    // gradient alone is not the mean.
    let (swapped, _) = one_after_the_other(&model, &optimizer, &self::shares(&[12, 11]));
    assert!(!compare(&split.gradient, &swapped, FP32, depth).is_close());
    let (first_alone, _) = one_after_the_other(&model, &optimizer, &shares[..1]);
    assert!(!compare(&split.gradient, &first_alone, FP32, depth).is_close());
    // And it is reproducible to the bit: each thread's keys are its own.
    let again = split_gradient(&model, &optimizer, &shares, 0);
    assert!(again.gradient.equal(&split.gradient), "two runs differ");
}

#[test]
fn a_threads_own_keys_are_those_libtorchs_generator_gives_after_seeding() {
    let _rng = common::torch_rng();
    tch::manual_seed(42);
    let shared: Vec<u64> = (0..4).map(|_| draw_key()).collect();
    tch::manual_seed(7);
    let own: Vec<u64> = {
        let _keys = ThreadKeys::seeded(42);
        (0..4).map(|_| draw_key()).collect()
    };
    assert_eq!(own, shared);
    // Libtorch's generator was left alone meanwhile, and is used again once the keys are dropped.
    let after: u64 = draw_key();
    tch::manual_seed(7);
    assert_eq!(after, draw_key());
}

#[test]
fn room_after_the_gradient_stays_zero() {
    let _rng = common::torch_rng();
    let spec = spec_from(SPEC);
    let (vs, model) = build(&spec, 7);
    let optimizer = AdamW::new(vs.trainable_variables(), spec.training.adamw.clone());
    let split = split_gradient(&model, &optimizer, &shares(&[1, 2]), 3);
    let n = split.gradient.numel() as i64;
    let room = split.gradient.narrow(0, n - 3, 3);
    assert!(room.equal(&Tensor::zeros([3], (Kind::Float, Device::Cpu))));
}

#[test]
fn a_batch_that_does_not_divide_among_the_threads_is_refused() {
    let text = std::fs::read_to_string(common::corpus_path()).unwrap();
    let vocab = Vocabulary::from_text(&text);
    let dataset = Dataset::new(&text, &vocab, 0.9, 16, Device::Cpu).unwrap();
    let spec = spec_from(&SPEC.replace("batch_size: 8", "batch_size: 6"));
    let trainer = |threads: usize| {
        let (vs, model) = build(&spec, 7);
        Trainer::new(model, vs, &dataset, &spec.training).with_thread_split(threads)
    };
    assert!(trainer(3).is_ok());
    let error = trainer(4)
        .err()
        .expect("6 rows among 4 threads")
        .to_string();
    assert!(
        error.contains("batch_size (6) must be a multiple of the 1 replicas of 4 threads each"),
        "{error}"
    );
}
