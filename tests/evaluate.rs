//! Whole-split evaluation: the window plan scores every character exactly once, and the score it
//! computes in batches equals the loss computed one character at a time from the context the
//! plan promises (the full context with stride 1, back-to-back windows with the default stride).

mod common;

use common::spec_from;
use common::tolerance::{self, assert_fp32_close_scalar, model_depth, FP32};
use gptbuild::data::vocab::Vocabulary;
use gptbuild::data::{Dataset, Split};
use gptbuild::model::Gpt;
use gptbuild::spec::{TrainingSpec, ValEval};
use gptbuild::train::evaluate::{score_split, WindowPlan};
use gptbuild::train::Trainer;
use tch::nn::VarStore;
use tch::{Device, Kind, Tensor};

#[test]
fn the_window_plan_scores_every_character_once() {
    for len in [9, 10, 17, 33, 100, 101, 257] {
        for block_size in [1, 2, 3, 8] {
            for stride in 1..=block_size {
                let plan = WindowPlan::new(len, block_size, stride);
                let case = format!("len {len}, block {block_size}, stride {stride}");
                let mut times_scored = vec![0; len as usize];
                for (i, window) in plan.windows.iter().enumerate() {
                    assert!(
                        window.offset >= 0 && window.offset + block_size < len,
                        "{case}: window {window:?} leaves the split"
                    );
                    assert!((0..block_size).contains(&window.scored_from), "{case}");
                    if i > 0 {
                        // Every character after the first window keeps the promised context.
                        assert!(window.scored_from >= block_size - stride, "{case}");
                    }
                    for position in window.scored_from..block_size {
                        times_scored[(window.offset + position + 1) as usize] += 1;
                    }
                }
                assert_eq!(times_scored[0], 0, "{case}: nothing predicts the first");
                assert!(
                    times_scored[1..].iter().all(|&n| n == 1),
                    "{case}: {times_scored:?}"
                );
                assert_eq!(plan.scored_tokens(), len - 1, "{case}");
            }
        }
    }
}

/// A small model with rotary positions (so that context really matters) and its dataset.
fn model_and_data(text: &str) -> (VarStore, Gpt, Dataset, Vec<i64>) {
    let spec = spec_from(
        "model:
  block_size: 8
  n_embd: 16
  position: {kind: rope}
  n_layer: 2
  block:
    attention: {kind: multi_head, n_head: 2}
    feed_forward: {kind: mlp}
    norm: {kind: layernorm}
    norm_placement: pre
",
    );
    let vocab = Vocabulary::from_text(text);
    let _rng = common::torch_rng();
    tch::manual_seed(5);
    let vs = VarStore::new(Device::Cpu);
    let model = Gpt::new(&vs.root(), &spec, vocab.len() as i64);
    let dataset = Dataset::new(text, &vocab, 0.5, 8, Device::Cpu).unwrap();
    let val: Vec<i64> = vocab.encode(&text[text.len() / 2..]).unwrap();
    (vs, model, dataset, val)
}

/// Mean loss of predicting each `tokens[i]` from `tokens[context_start(i)..i]`, one at a time.
fn one_at_a_time(model: &Gpt, tokens: &[i64], context_start: impl Fn(usize) -> usize) -> f64 {
    tch::no_grad(|| {
        let total: f64 = (1..tokens.len())
            .map(|i| {
                let context = Tensor::from_slice(&tokens[context_start(i)..i]).unsqueeze(0);
                let logits = model.forward_t(&context, false).select(1, -1).squeeze();
                let log_probs = logits.log_softmax(-1, Kind::Float);
                -log_probs.double_value(&[tokens[i]])
            })
            .sum();
        total / (tokens.len() - 1) as f64
    })
}

#[test]
fn scores_equal_one_prediction_at_a_time_with_the_planned_context() {
    // 2 × (4 windows of 8, plus the first character): the validation half has no ragged end.
    let text = "First Citizen: we are accounted p".repeat(2);
    let (_vs, model, dataset, val) = model_and_data(&text);
    assert_eq!(val.len(), 33);

    let full_context = one_at_a_time(&model, &val, |i| i.saturating_sub(8));
    let back_to_back = one_at_a_time(&model, &val, |i| (i - 1) / 8 * 8);
    // Losses of a 2-layer model, averaged: rounding relative to the loss, a layer more for the mean.
    let depth = model_depth(2) + 1.0;
    // The mutation check: scoring with the wrong context is caught by a wide margin.
    assert!(
        (full_context - back_to_back).abs() > 100.0 * tolerance::bound(FP32, depth, full_context),
        "the test needs the two contexts to give losses the bound tells apart"
    );

    let stride_1 = score_split(&model, &dataset, Split::Val, 1);
    assert_eq!(stride_1.tokens, 32);
    assert_fp32_close_scalar(stride_1.loss, full_context, depth, "stride 1");
    let stride_8 = score_split(&model, &dataset, Split::Val, 8);
    assert_eq!(stride_8.windows, 4);
    assert_fp32_close_scalar(stride_8.loss, back_to_back, depth, "stride 8");
}

#[test]
fn a_ragged_end_is_scored_with_the_context_before_it() {
    // The validation half is 40 characters: 4 windows of 8 leave 7 characters, which a last window
    // ending at the split's end scores after the characters before them.
    let text = "To be, or not to be, that is the question:".repeat(2);
    let text = &text[..80];
    let (_vs, model, dataset, val) = model_and_data(text);
    assert_eq!(val.len(), 40);
    let expected = one_at_a_time(&model, &val, |i| {
        if i <= 32 {
            (i - 1) / 8 * 8
        } else {
            40 - 1 - 8
        }
    });
    let score = score_split(&model, &dataset, Split::Val, 8);
    assert_eq!((score.windows, score.tokens), (5, 39));
    assert_fp32_close_scalar(score.loss, expected, model_depth(2) + 1.0, "ragged end");
}

#[test]
fn training_can_measure_validation_on_the_whole_split() {
    let text = "To be, or not to be, that is the question:".repeat(2);
    let evaluate = |val_eval, seed| {
        let (vs, model, dataset, _) = model_and_data(&text);
        let training = TrainingSpec {
            batch_size: 4,
            eval_iters: 3,
            val_eval,
            seed,
            ..TrainingSpec::default()
        };
        let mut trainer = Trainer::new(model, vs, &dataset, &training);
        let evaluation = trainer
            .evaluate()
            .expect("one process cannot fail to evaluate");
        let whole = score_split(&trainer.model, &dataset, Split::Val, 8).loss;
        (evaluation.val_loss, whole)
    };
    // The same weights (model_and_data seeds them), evaluated with two evaluation seeds.
    let (exact_1, whole) = evaluate(ValEval::WholeSplit, 1);
    let (exact_2, _) = evaluate(ValEval::WholeSplit, 2);
    assert_eq!(exact_1, whole);
    assert_eq!(
        exact_2, whole,
        "the whole split does not depend on the seed"
    );
    let (sampled_1, _) = evaluate(ValEval::Batches, 1);
    let (sampled_2, _) = evaluate(ValEval::Batches, 2);
    assert_ne!(sampled_1, sampled_2, "random batches do");
}
