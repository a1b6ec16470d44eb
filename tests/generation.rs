//! Generation with the KV cache gives the same next-token distribution as recomputing the window
//! from scratch, before and after the window slides, for every architecture; sampling is
//! reproducible from its seed.

mod common;

use common::random_spec::random_spec;
use common::tolerance::{assert_fp32_close, compare, model_depth, FP32};
use common::{architecture_files, build, in_fp32, load_spec, spec_from, VOCAB_SIZE};
use gptbuild::generate::context::Context;
use gptbuild::generate::sample::generate;
use gptbuild::model::Gpt;
use gptbuild::spec::Decoding;
use tch::{Device, Tensor};

/// Next-token logits `[vocab]` from a full forward pass over `window`.
fn recomputed(model: &Gpt, window: &[i64]) -> Tensor {
    let ids = Tensor::from_slice(window).unsqueeze(0);
    tch::no_grad(|| model.forward_t(&ids, false))
        .select(1, -1)
        .squeeze_dim(0)
}

/// A fixed pseudo-random text of `len` tokens.
fn text(len: usize) -> Vec<i64> {
    (0..len as i64)
        .map(|i| (i * 7919 + i * i * 31) % VOCAB_SIZE)
        .collect()
}

/// Feeds `tokens` one at a time (after `prompt`) to a cached context and checks, at every step
/// where `check(step)` holds, that its logits equal a full recompute over its window.
fn assert_cache_matches_recompute(model: &Gpt, prompt: &[i64], tokens: &[i64], label: &str) {
    let block_size = model.dims().block_size as usize;
    let mut cached = Context::new(model, Device::Cpu, true);
    let mut slid = false;
    let mut logits = cached.push(prompt);
    let mut previous_len = cached.window().len();
    let depth = model_depth(model.dims().n_layer);
    let check = |step: usize, logits: &Tensor, window: Vec<i64>| {
        assert!(window.len() <= block_size, "{label}: window over the block");
        assert_fp32_close(
            logits,
            &recomputed(model, &window),
            depth,
            &format!(
                "{label} step {step} (window {}): cached logits",
                window.len()
            ),
        );
    };
    check(0, &logits, cached.window());
    for (step, &token) in tokens.iter().enumerate() {
        logits = cached.push(&[token]);
        let window = cached.window();
        let slide = window.len() <= previous_len;
        slid |= slide;
        previous_len = window.len();
        // Every step of small models; around the slides and every 17th step of large ones.
        if block_size <= 32 || slide || step % 17 == 0 || window.len() + 1 == block_size {
            check(step + 1, &logits, window);
        }
    }
    assert!(slid, "{label}: the window never slid");
}

/// The same for random specs: relative positions (RoPE, ALiBi), grouped key/value heads, QK-norm,
/// both attention formulations, explicit block lists.
#[test]
fn the_cache_matches_a_full_recompute_for_random_architectures() {
    let _rng = common::torch_rng();
    for seed in 0..24 {
        let spec = spec_from(&random_spec(seed));
        let (_vs, model) = build(&spec, seed as i64);
        let tokens = text(spec.model.block_size as usize * 2 + 3);
        let label = format!("random spec {seed}");
        assert_cache_matches_recompute(&model, &tokens[..2], &tokens[2..], &label);
    }
}

#[test]
fn the_cache_matches_a_full_recompute_before_and_after_the_window_slides() {
    let _rng = common::torch_rng();
    for path in architecture_files() {
        // fp32, whose rounding the bound is (a bf16 file's cache is bf16's: tests/precision.rs).
        let spec = in_fp32(&load_spec(&path));
        let (_vs, model) = build(&spec, 5);
        let block_size = spec.model.block_size as usize;
        let label = path.file_name().unwrap().to_string_lossy().into_owned();
        // Start from one token, run well past two slides.
        let tokens = text(block_size * 2 + 3);
        assert_cache_matches_recompute(&model, &tokens[..1], &tokens[1..], &label);
        // A prompt longer than the block, then more tokens.
        let long = text(block_size + block_size / 2 + 2);
        assert_cache_matches_recompute(
            &model,
            &long,
            &text(block_size + 1),
            &format!("{label} after a long prompt"),
        );
    }
}

#[test]
fn the_cache_holds_the_whole_block_until_it_is_full() {
    let _rng = common::torch_rng();
    let spec = spec_from(
        "model:\n  block_size: 6\n  n_embd: 8\n  block: {attention: {kind: multi_head, n_head: 2}}\n",
    );
    let (_vs, model) = build(&spec, 1);
    let mut cached = Context::new(&model, Device::Cpu, true);
    let mut uncached = Context::new(&model, Device::Cpu, false);
    let tokens = text(20);
    let mut lengths = Vec::new();
    for (i, &token) in tokens.iter().enumerate() {
        let a = cached.push(&[token]);
        let b = uncached.push(&[token]);
        lengths.push(cached.window().len());
        assert_eq!(uncached.window(), tokens[(i + 1).saturating_sub(6)..=i]);
        if i < 6 {
            // Until the first slide both see the same window.
            assert_fp32_close(&a, &b, model_depth(1), &format!("step {i}"));
        }
    }
    // Grows to the block, then restarts from half of it and grows again.
    assert_eq!(
        lengths,
        [1, 2, 3, 4, 5, 6, 3, 4, 5, 6, 3, 4, 5, 6, 3, 4, 5, 6, 3, 4]
    );
}

#[test]
fn the_same_seed_gives_the_same_text() {
    let _rng = common::torch_rng();
    let spec = load_spec(&common::repo_root().join("architectures/task05.yaml"));
    let (_vs, model) = build(&spec, 2);
    let decoding = Decoding {
        temperature: 0.8,
        top_k: Some(10),
        top_p: Some(0.95),
    };
    let sample = |seed: i64, cached: bool, count: u64| {
        tch::manual_seed(seed);
        let mut tokens = Vec::new();
        generate(
            &model,
            &[0],
            Some(count),
            &decoding,
            cached,
            Device::Cpu,
            |token| {
                tokens.push(token);
                true
            },
        );
        tokens
    };
    let first = sample(1, true, 100);
    assert_eq!(first.len(), 100);
    assert!(first.iter().all(|&t| (0..VOCAB_SIZE).contains(&t)));
    assert_eq!(first, sample(1, true, 100));
    assert_ne!(first, sample(2, true, 100));
    assert_eq!(
        first[..30],
        sample(1, true, 30),
        "a prefix of a longer sample"
    );
    assert!(sample(1, true, 0).is_empty());
}

#[test]
fn generation_stops_when_asked() {
    let _rng = common::torch_rng();
    let spec = load_spec(&common::repo_root().join("architectures/task01.yaml"));
    let (_vs, model) = build(&spec, 3);
    let mut seen = 0;
    // Forever, until the callback says stop.
    generate(
        &model,
        &[1, 2, 3],
        None,
        &Decoding::default(),
        true,
        Device::Cpu,
        |_| {
            seen += 1;
            seen < 1000
        },
    );
    assert_eq!(seen, 1000);
}

#[test]
fn top_k_of_one_is_greedy() {
    let _rng = common::torch_rng();
    let spec = load_spec(&common::repo_root().join("architectures/task02.yaml"));
    let (_vs, model) = build(&spec, 4);
    let greedy = Decoding {
        top_k: Some(1),
        ..Decoding::default()
    };
    let mut context = Context::new(&model, Device::Cpu, true);
    let mut logits = context.push(&[0]);
    generate(
        &model,
        &[0],
        Some(40),
        &greedy,
        true,
        Device::Cpu,
        |token| {
            assert_eq!(token, logits.argmax(-1, false).int64_value(&[]));
            logits = context.push(&[token]);
            true
        },
    );
}

/// The bound above still catches an off-by-one window: cached logits compared with a recompute that
/// left out the oldest token of the window (so every position moves by one) differ far beyond
/// rounding, for every architecture file.
#[test]
fn a_window_off_by_one_is_caught() {
    let _rng = common::torch_rng();
    for path in architecture_files() {
        let spec = in_fp32(&load_spec(&path));
        let (_vs, model) = build(&spec, 5);
        let tokens = text(spec.model.block_size as usize);
        let mut cached = Context::new(&model, Device::Cpu, true);
        let logits = cached.push(&tokens);
        let window = cached.window();
        let comparison = compare(
            &logits,
            &recomputed(&model, &window[1..]),
            FP32,
            model_depth(spec.model.n_layer()),
        );
        assert!(
            comparison.difference > 100.0 * comparison.bound,
            "{}: an off-by-one window should be caught: {comparison:?}",
            path.display()
        );
    }
}
