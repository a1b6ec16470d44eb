//! Properties of the architecture knobs beyond the course: relative positions (RoPE, ALiBi),
//! grouped key/value heads, QK-norm, GPT-2 initialisation, dropout per site, explicit block lists.

mod common;

use common::tolerance::{self, assert_fp32_close, model_depth, FP32};
use common::{build, spec_from, VOCAB_SIZE};
use gptbuild::layers::position::alibi::{slopes, Alibi};
use gptbuild::layers::position::none::NoPositions;
use gptbuild::layers::position::rope::Rope;
use gptbuild::layers::{Dims, PositionalEncoding, ResolvedPosition};
use tch::nn::VarStore;
use tch::{Device, Kind, Tensor};

fn dims(block_size: i64) -> Dims {
    spec_from(&format!(
        "model:\n  block_size: {block_size}\n  n_embd: 16\n  block: {{attention: {{kind: head}}}}\n"
    ))
    .dims(VOCAB_SIZE)
}

fn max_difference(a: &Tensor, b: &Tensor) -> f64 {
    (a - b).abs().max().double_value(&[])
}

/// RoPE: the score of a query at position m and a key at position n depends only on m − n, and
/// rotating keeps every vector's length.
#[test]
fn rope_scores_depend_only_on_the_offset() {
    let _rng = common::torch_rng();
    tch::manual_seed(3);
    let vs = VarStore::new(Device::Cpu);
    let rope = Rope::default().build(&vs.root(), &dims(64));
    let (q, k) = (
        Tensor::randn([1, 1, 8], (Kind::Float, Device::Cpu)),
        Tensor::randn([1, 1, 8], (Kind::Float, Device::Cpu)),
    );
    let score = |m: i64, n: i64| {
        (rope.rotate(&q, m) * rope.rotate(&k, n))
            .sum(Kind::Float)
            .double_value(&[])
    };
    let norm = |x: &Tensor| x.square().sum(Kind::Float).double_value(&[]).sqrt();
    for (m, n) in [(5, 2), (9, 3), (0, 0), (40, 40)] {
        for shift in [1, 7, 20] {
            let (a, b) = (score(m, n), score(m + shift, n + shift));
            // A dot product of two rotated vectors: rounding relative to |q|·|k|, and an fp32
            // angle carries an error growing with the position, so the depth grows with it too.
            let depth = 2.0 + (m.max(n) + shift) as f64;
            let bound = tolerance::bound(FP32, depth, norm(&q) * norm(&k));
            assert!(
                (a - b).abs() <= bound,
                "({m},{n}) {a} vs shifted by {shift}: {b} (bound {bound:.2e})"
            );
        }
    }
    // The mutation check: a position off by one changes the score far beyond the bound.
    assert!(
        (score(5, 2) - score(5, 3)).abs()
            > 100.0 * tolerance::bound(FP32, 8.0, norm(&q) * norm(&k)),
        "a different offset should change the score"
    );
    let rotated = rope.rotate(&q, 17);
    // One rotation, then a sum of squares: two layers of rounding on |q|.
    assert!((norm(&rotated) - norm(&q)).abs() <= tolerance::bound(FP32, 2.0, norm(&q)));
    // Position 0 is the identity.
    assert!(max_difference(&rope.rotate(&q, 0), &q) < 1e-7);
}

/// ALiBi: the bias of head h is −m_h·(i − j) with the paper's slopes: 2^(−8(h+1)/n) for a power of
/// two n, and for 6 heads the slopes of 4 heads then every other slope of 8.
#[test]
fn alibi_biases_are_the_papers_slopes_times_distance() {
    let expected8: Vec<f64> = (1..=8).map(|h| 0.5f64.powi(h)).collect();
    assert_eq!(slopes(8), expected8);
    let two = |e: i32| 2f64.powi(-e);
    assert_eq!(
        slopes(6),
        vec![two(2), two(4), two(6), two(8), two(1), two(3)]
    );
    assert_eq!(slopes(1), vec![two(8)]);

    let vs = VarStore::new(Device::Cpu);
    let alibi = Alibi::default().build(&vs.root(), &dims(16));
    assert!(NoPositions.score_bias(4, 0, 2, 2).is_none() && NoPositions.embedding(0, 2).is_none());
    // Queries at positions 5..8 over keys 0..8, 4 heads.
    let bias = alibi.score_bias(4, 5, 3, 8).expect("alibi biases scores");
    assert_eq!(bias.size(), [4, 3, 8]);
    let slopes4 = slopes(4);
    for h in 0..4 {
        for row in 0..3 {
            let i = 5 + row;
            for j in 0..=i {
                let value = bias.double_value(&[h, row, j]);
                let expected = -slopes4[h as usize] * (i - j) as f64;
                assert!((value - expected).abs() < 1e-6, "h{h} i{i} j{j}: {value}");
            }
        }
    }
    assert!(alibi.embedding(0, 4).is_none(), "alibi adds no vectors");
}

/// A spec with grouped key/value heads is the ungrouped model whose heads in a group share
/// their key and value weights, with fewer parameters.
#[test]
fn grouped_key_value_heads_equal_full_heads_with_shared_weights() {
    let _rng = common::torch_rng();
    for fused in [false, true] {
        let spec = |kv: i64| {
            spec_from(&format!(
                "model:\n  block_size: 8\n  n_embd: 16\n  position: {{kind: rope}}\n  block:\n    attention: \
                 {{kind: multi_head, n_head: 4, n_kv_head: {kv}, fused: {fused}}}\n    \
                 feed_forward: {{kind: mlp}}\n    norm_placement: pre\n"
            ))
        };
        let (vs_grouped, grouped) = build(&spec(2), 1);
        let (vs_full, full) = build(&spec(4), 2);
        tch::no_grad(|| {
            let hs = 4;
            for (name, mut target) in vs_full.variables() {
                let source = &vs_grouped.variables()[&name];
                if name.ends_with("qkv.weight") {
                    // Grouped rows: 4 query heads, 2 key heads, 2 value heads. Full: 4 of each,
                    // query heads 0 and 1 sharing key/value head 0, heads 2 and 3 head 1.
                    let head = |from: i64| source.narrow(0, from * hs, hs);
                    let rows: Vec<Tensor> = (0..4)
                        .map(head)
                        .chain([4, 4, 5, 5].map(head))
                        .chain([6, 6, 7, 7].map(head))
                        .collect();
                    target.copy_(&Tensor::cat(&rows, 0));
                } else {
                    target.copy_(source);
                }
            }
            let ids = Tensor::randint(VOCAB_SIZE, [2, 8], (Kind::Int64, Device::Cpu));
            assert_fp32_close(
                &grouped.forward_t(&ids, false),
                &full.forward_t(&ids, false),
                model_depth(1),
                &format!("fused {fused}"),
            );
        });
        let qkv = |vs: &VarStore| vs.variables()["blocks.0.attn.qkv.weight"].size();
        assert_eq!(qkv(&vs_grouped), [(4 + 2 * 2) * 4, 16]);
        assert_eq!(qkv(&vs_full), [(4 + 2 * 4) * 4, 16]);
    }
}

/// Henry et al.'s QK-norm makes the scores independent of the scale of queries and keys: with no
/// biases, scaling the input scales the attention output (through the values) and nothing else.
#[test]
fn l2_qk_norm_makes_attention_scores_scale_invariant() {
    let _rng = common::torch_rng();
    let output = |qk_norm: &str, scale: f64| {
        let spec = spec_from(&format!(
            "model:\n  block_size: 8\n  n_embd: 16\n  position: {{kind: none}}\n  block:\n    attention: \
             {{kind: multi_head, n_head: 2, projection: false, qk_norm: {qk_norm}}}\n    residual: false\n"
        ));
        let vs = VarStore::new(Device::Cpu);
        tch::manual_seed(4);
        let attention = spec.model.stack()[0]
            .attention
            .build(&vs.root(), &spec.dims(VOCAB_SIZE));
        tch::manual_seed(5);
        let x = Tensor::randn([1, 8, 16], (Kind::Float, Device::Cpu));
        tch::no_grad(|| attention.forward_t(&(x * scale), &NoPositions, false)) / scale
    };
    let relative = |a: &Tensor, b: &Tensor| max_difference(a, b) / b.abs().max().double_value(&[]);
    // Projections, normalisation, softmax, the values: a few layers of relative rounding.
    assert!(relative(&output("l2", 100.0), &output("l2", 1.0)) <= tolerance::bound(FP32, 4.0, 1.0));
    assert!(
        relative(&output("none", 100.0), &output("none", 1.0)) > 1e-2,
        "without QK-norm the scale changes the softmax"
    );
}

/// GPT-2 initialisation: weights N(0, 0.02), residual projections N(0, 0.02/√(2·n_layer)),
/// biases zero; the default keeps PyTorch's (embeddings N(0, 1)).
#[test]
fn gpt2_init_scales_the_residual_projections() {
    let _rng = common::torch_rng();
    let yaml = |init: &str| {
        format!(
            "model:\n  block_size: 16\n  n_embd: 128\n  n_layer: 8\n  init: {init}\n  block:\n    \
             attention: {{kind: multi_head, n_head: 4}}\n    feed_forward: {{kind: mlp}}\n    \
             norm_placement: pre\n"
        )
    };
    let (vs, _) = build(&spec_from(&yaml("gpt2")), 1);
    let std = |name: &str| vs.variables()[name].std(true).double_value(&[]);
    let residual = 0.02 / (2.0f64 * 8.0).sqrt();
    for (name, expected) in [
        ("token_embedding.weight", 0.02),
        ("position.weight", 0.02),
        ("blocks.3.attn.qkv.weight", 0.02),
        ("blocks.3.ffwd.expand.weight", 0.02),
        ("blocks.3.attn.proj.weight", residual),
        ("blocks.3.ffwd.contract.weight", residual),
        ("lm_head.weight", 0.02),
    ] {
        let actual = std(name);
        assert!(
            (actual / expected - 1.0).abs() < 0.05,
            "{name}: std {actual}, expected {expected}"
        );
    }
    for bias in [
        "blocks.3.attn.proj.bias",
        "blocks.3.ffwd.expand.bias",
        "lm_head.bias",
    ] {
        assert_eq!(
            vs.variables()[bias].abs().max().double_value(&[]),
            0.0,
            "{bias}"
        );
    }
    let (vs, _) = build(&spec_from(&yaml("pytorch")), 1);
    let embedding_std = vs.variables()["token_embedding.weight"]
        .std(true)
        .double_value(&[]);
    assert!((embedding_std - 1.0).abs() < 0.05, "{embedding_std}");
}

/// `dropout` is the default of each site; a site set to 0 switches that dropout off, so with every
/// site at 0 training mode computes exactly what evaluation does.
#[test]
fn dropout_sites_are_independent() {
    let _rng = common::torch_rng();
    let base = "model:\n  block_size: 8\n  n_embd: 16\n  dropout: 0.5\n  block:\n    attention: \
                {kind: multi_head, n_head: 2}\n    feed_forward: {kind: mlp}\n";
    let resolved = spec_from(base).to_yaml();
    assert!(resolved.contains("attention_dropout: 0.5"), "{resolved}");
    assert!(resolved.contains("residual_dropout: 0.5"), "{resolved}");
    assert!(resolved.contains("embedding_dropout: 0.0"), "{resolved}");

    let train_equals_eval = |extra: &str| {
        let spec = spec_from(&base.replace(
            "  dropout: 0.5\n",
            &format!("  dropout: 0.5\n  attention_dropout: 0.0\n  residual_dropout: 0.0\n{extra}"),
        ));
        let (_vs, model) = build(&spec, 2);
        let ids = Tensor::randint(VOCAB_SIZE, [2, 8], (Kind::Int64, Device::Cpu));
        tch::no_grad(|| max_difference(&model.forward_t(&ids, true), &model.forward_t(&ids, false)))
            == 0.0
    };
    assert!(train_equals_eval(""));
    assert!(!train_equals_eval("  embedding_dropout: 0.3\n"));
    let only = |site: &str| base.replace("  dropout: 0.5\n", &format!("  {site}: 0.3\n"));
    for site in ["attention_dropout", "residual_dropout"] {
        let (_vs, model) = build(&spec_from(&only(site)), 2);
        let ids = Tensor::randint(VOCAB_SIZE, [2, 8], (Kind::Int64, Device::Cpu));
        let difference = tch::no_grad(|| {
            max_difference(&model.forward_t(&ids, true), &model.forward_t(&ids, false))
        });
        assert!(difference > 0.0, "{site} alone should drop something");
    }
}

/// An explicit list of blocks builds each block as written, bottom first.
#[test]
fn an_explicit_block_list_builds_differing_blocks() {
    let spec = spec_from(
        "model:\n  block_size: 8\n  n_embd: 16\n  blocks:\n  - attention: {kind: multi_head, n_head: 4}\n    \
         feed_forward: {kind: swiglu}\n  - attention: {kind: multi_head, n_head: 2, n_kv_head: 1}\n    \
         feed_forward: {kind: mlp}\n  - attention: {kind: head, head_size: 16}\n",
    );
    assert_eq!(spec.model.n_layer(), 3);
    let (vs, _model) = build(&spec, 1);
    let names = vs.variables();
    assert!(names.contains_key("blocks.0.ffwd.gate.weight"));
    assert!(names.contains_key("blocks.1.ffwd.expand.weight"));
    assert!(!names.contains_key("blocks.2.ffwd.expand.weight"));
    assert_eq!(names["blocks.1.attn.qkv.weight"].size(), [(2 + 2) * 8, 16]);
    assert_eq!(names["blocks.2.attn.qkv.weight"].size(), [3 * 16, 16]);
    let resolved = spec.to_yaml();
    assert!(
        resolved.contains("n_layer: 3") && resolved.contains("blocks:"),
        "{resolved}"
    );
}
