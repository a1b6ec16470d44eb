//! What the export and import tests share: random specs of the families llama.cpp and
//! transformers know, models with moved weights saved as checkpoints, greedy continuations, text
//! to tokenize, and the binary.

use std::path::Path;
use std::process::Command;

use gptbuild::artifacts::checkpoint;
use gptbuild::data::tokenizer::Tokenizer;
use gptbuild::model::Gpt;
use gptbuild::spec::Spec;
use tch::nn::VarStore;
use tch::{Device, Tensor};

use super::corpus_path;
use super::random_spec::Rng;

pub fn corpus() -> String {
    std::fs::read_to_string(corpus_path()).expect("the corpus is readable")
}

/// A random spec of the Llama or GPT-2 family. Its training-only knobs (`init`, `fused`, the
/// dropouts) are the ones `import` writes, so that the round trip can compare whole model sections.
pub fn random_family_spec(family: &str, seed: u64) -> String {
    let mut rng = Rng::new(seed);
    let n_head = *rng.pick(&[2i64, 4]);
    let head_size = *rng.pick(&[8i64, 12]);
    let n_layer = 1 + rng.below(3);
    let block_size = *rng.pick(&[16, 24, 32]);
    let tie = rng.chance(50);
    let eps = *rng.pick(&["1.0e-5", "1.0e-6"]);
    let (position, attention, feed_forward, norm) = if family == "llama" {
        let n_kv_head = *rng.pick(&[1, 2, n_head]);
        let bias = rng.chance(30);
        (
            format!("{{kind: rope, theta: {}}}", rng.pick(&["10000.0", "500.0"])),
            format!(
                "{{kind: multi_head, n_head: {n_head}, n_kv_head: {n_kv_head}, head_size: \
                 {head_size}, qkv_bias: {bias}, projection_bias: {bias}, fused: true}}"
            ),
            format!("{{kind: swiglu, hidden_size: {}}}", rng.pick(&[40, 64])),
            format!("{{kind: rmsnorm, eps: {eps}}}"),
        )
    } else {
        let n_embd = n_head * head_size;
        (
            "{kind: learned}".to_string(),
            format!(
                "{{kind: multi_head, n_head: {n_head}, head_size: {head_size}, qkv_bias: true, \
                 projection_bias: true, fused: true}}"
            ),
            format!(
                "{{kind: mlp, hidden_size: {}, activation: {}}}",
                rng.pick(&[4 * n_embd, 50]),
                rng.pick(&["relu", "gelu", "gelu_tanh"])
            ),
            format!("{{kind: layernorm, eps: {eps}}}"),
        )
    };
    let n_embd = if family == "llama" {
        *rng.pick(&[32, 48])
    } else {
        n_head * head_size
    };
    format!(
        "model:\n  block_size: {block_size}\n  n_embd: {n_embd}\n  init: gpt2\n  \
         position: {position}\n  n_layer: {n_layer}\n  block:\n    attention: {attention}\n    \
         feed_forward: {feed_forward}\n    residual: true\n    norm: {norm}\n    \
         norm_placement: pre\n  final_norm: {norm}\n  tie_embeddings: {tie}\n  head_bias: false\n\
         training: {{threads: 1}}\n"
    )
}

/// The model of `spec` for `tokenizer`, seeded, its weights moved away from their initial values
/// so that a bias of zeros or a gain of ones cannot hide a mistake; saved as a checkpoint.
pub fn trained_like(
    spec: &Spec,
    tokenizer: &dyn Tokenizer,
    seed: i64,
    path: &Path,
) -> (VarStore, Gpt) {
    tch::manual_seed(seed);
    let vs = VarStore::new(Device::Cpu);
    let model = Gpt::new(&vs.root(), spec, tokenizer.vocab_size() as i64);
    tch::no_grad(|| {
        for (_, mut variable) in vs.variables() {
            let noise = Tensor::randn_like(&variable) * 0.1;
            let _ = variable.g_add_(&noise);
        }
    });
    checkpoint::save(path, &vs, spec, tokenizer, 0).expect("checkpoint written");
    (vs, model)
}

/// `n` tokens after `prompt`, each the most likely one.
pub fn greedy(model: &Gpt, prompt: &[i64], n: usize, block_size: i64) -> Vec<i64> {
    let mut ids = prompt.to_vec();
    for _ in 0..n {
        let start = ids.len().saturating_sub(block_size as usize);
        let input = Tensor::from_slice(&ids[start..]).unsqueeze(0);
        let logits = tch::no_grad(|| model.forward_t(&input, false));
        ids.push(logits.get(0).get(-1).argmax(0, false).int64_value(&[]));
    }
    ids[prompt.len()..].to_vec()
}

/// Text the character vocabulary accepts: slices of the corpus, each character, and edge cases.
pub fn texts(corpus: &str, vocab: &str) -> Vec<String> {
    let chars: Vec<char> = corpus.chars().collect();
    let slice = |from: usize, len: usize| chars[from..from + len].iter().collect::<String>();
    vec![
        slice(0, 2000),
        slice(chars.len() / 2, 1500),
        vocab.to_string(),
        "\n\n\n".into(),
        "   spaced   out   ".into(),
        "O, WHAT?! -- 'tis 3 $&; no.".into(),
    ]
}

/// `gptbuild ARGS`: (exit code, stdout, stderr).
#[cfg(feature = "cli")]
pub fn gptbuild(args: &[&str]) -> (i32, String, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_gptbuild"))
        .args(args)
        .output()
        .expect("gptbuild runs");
    (
        output.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// `gptbuild export CHECKPOINT --format FORMAT --out OUT`: (exit code, stderr).
#[cfg(feature = "cli")]
pub fn export(format: &str, checkpoint: &Path, out: &Path) -> (i32, String) {
    let (code, _, stderr) = gptbuild(&[
        "export",
        checkpoint.to_str().unwrap(),
        "--format",
        format,
        "--out",
        out.to_str().unwrap(),
    ]);
    (code, stderr)
}

/// Nothing at `out`, and no staging directory beside it.
pub fn assert_nothing_written(out: &Path) {
    assert!(!out.exists(), "{} was written", out.display());
    let parent = out.parent().expect("a parent");
    let debris: Vec<_> = std::fs::read_dir(parent)
        .expect("readable")
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains(".partial"))
        .collect();
    assert!(debris.is_empty(), "staging left behind: {debris:?}");
}

/// A spec of `family` (seed 9) whose tokenizer is a byte-level BPE of 320 tokens trained on the
/// corpus's first 100,000 characters, that BPE, and `texts` plus text outside the corpus's
/// alphabet (accents, CJK, an emoji, a tab, CR LF) for it to split.
pub fn bpe_case(family: &str, texts: &[String]) -> (Spec, Box<dyn Tokenizer>, Vec<String>) {
    let spec = super::spec_from(&format!(
        "data: {{tokenizer: {{kind: bpe, vocab_size: 320}}}}\n{}",
        random_family_spec(family, 9)
    ));
    let training: String = corpus().chars().take(100_000).collect();
    let bpe = spec
        .data
        .tokenizer
        .make(&training, &training)
        .expect("BPE trains");
    let mut texts = texts.to_vec();
    texts.push("naïve café — 東京 🙂\tend\r\n".into());
    (spec, bpe, texts)
}

/// Writes `DIR/NAME.case.safetensors`: the ids, our logits for them and the bound another
/// program's logits must keep to.
pub fn write_case_tensors(dir: &Path, name: &str, ids: &Tensor, logits: &Tensor, bound: f64) {
    Tensor::write_safetensors(
        &[
            ("ids", ids),
            ("logits", logits),
            ("bound", &Tensor::from(bound as f32)),
        ],
        dir.join(format!("{name}.case.safetensors")),
    )
    .expect("case written");
}
