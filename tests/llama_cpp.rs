//! The GGUF export checked by llama.cpp itself (`tests/python/llama_cpp_check.py`, with
//! `llama-cpp-python` and llama.cpp's `gguf` reader): for random Llama- and GPT-2-shaped specs in
//! f32, f16, bf16 and q8_0, and for the corpus's characters and a trained byte-level BPE,
//! - the `gguf` reader finds every metadata key and tensor shape the export meant to write;
//! - llama.cpp's logits at every position equal ours, computed from the weights as the file
//!   stores them, within the file type's rounding (`common::tolerance`: fp32, or f16, bf16 and
//!   Q8_0 for llama.cpp's rounding of activations to the weights' type; GPT-2's GELU reads an f16
//!   table, so GPT-2 is held to f16's bound at least);
//! - llama.cpp's tokenizer gives our ids for the corpus and tricky text;
//! - its greedy continuation of a prompt is ours (f32).
//!
//! Mutations that must fail: a wrong RoPE dimension count, q/k rows left in the rotate-half
//! layout (no permutation), a merge list out of order. Bad input is one error line and no file.
#![cfg(feature = "cli")]

mod common;

use std::path::Path;
use std::process::Command;

use common::families::{
    assert_nothing_written, bpe_case, corpus, export, greedy, random_family_spec, texts,
    trained_like, write_case_tensors,
};
use common::tolerance::{self, model_depth, Format};
use common::{python, repo_root, spec_from};
use gptbuild::artifacts::checkpoint;
use gptbuild::convert::architecture;
use gptbuild::convert::gguf::{self, TensorType, Value};
use gptbuild::convert::llama_cpp;
use gptbuild::data::tokenizer::Tokenizer;
use gptbuild::data::vocab::Vocabulary;
use gptbuild::spec::Spec;
use tch::{Device, Kind, Tensor};

/// The bound's format for logits llama.cpp computes from a file of `tensor_type`.
fn format_of(tensor_type: TensorType, gpt2: bool) -> Format {
    match tensor_type {
        TensorType::F32 if gpt2 => tolerance::F16,
        TensorType::F32 => tolerance::FP32,
        TensorType::F16 => tolerance::F16,
        TensorType::BF16 => tolerance::BF16,
        TensorType::Q8_0 => tolerance::Q8_0,
    }
}

fn json_of(value: &Value) -> serde_json::Value {
    match value {
        Value::U32(v) => serde_json::json!(v),
        Value::I32(v) => serde_json::json!(v),
        Value::F32(v) => serde_json::json!(*v as f64),
        Value::Bool(v) => serde_json::json!(v),
        Value::String(v) => serde_json::json!(v),
        Value::Array(items) => serde_json::Value::Array(items.iter().map(json_of).collect()),
    }
}

/// A case's mutation: what a wrong export would have written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mutation {
    None,
    RopeDimensions,
    NoQkPermutation,
    MergesReversed,
}

/// Writes case `name`: the GGUF file of a model of `spec` (weights moved from their initial
/// values) in `tensor_type`, with our logits computed from the weights as stored, the metadata
/// and shapes to find, our ids of `texts`, and our greedy continuation of a prompt.
#[allow(clippy::too_many_arguments)]
fn write_case(
    dir: &Path,
    name: &str,
    spec: &Spec,
    tokenizer: &dyn Tokenizer,
    texts: &[String],
    seed: i64,
    tensor_type: TensorType,
    mutation: Mutation,
) {
    let path = dir.join(format!("{name}.safetensors"));
    trained_like(spec, tokenizer, seed, &path);
    let loaded = checkpoint::load(&path, Device::Cpu).expect("loads");
    let arch = architecture::of_spec(&loaded.spec, tokenizer.vocab_size() as i64).expect("maps");
    let (mut metadata, mut tensors) =
        llama_cpp::contents(&arch, &loaded, tensor_type).expect("exports");
    match mutation {
        Mutation::None => {}
        Mutation::RopeDimensions => {
            let key = "llama.rope.dimension_count";
            let entry = metadata
                .iter_mut()
                .find(|(k, _)| k == key)
                .expect("the key");
            entry.1 = Value::U32(arch.head_size as u32 / 2);
        }
        Mutation::NoQkPermutation => {
            let variables = loaded.var_store.variables();
            let (q, kv) = (
                arch.n_head * arch.head_size,
                arch.n_kv_head * arch.head_size,
            );
            for t in tensors.iter_mut() {
                // blk.N.attn_q.weight, blk.N.attn_k.weight: our rows as they are.
                let parts: Vec<&str> = t.name.split('.').collect();
                let (start, count) = match parts.as_slice() {
                    ["blk", _, "attn_q", "weight"] => (0, q),
                    ["blk", _, "attn_k", "weight"] => (q, kv),
                    _ => continue,
                };
                let qkv = &variables[&format!("blocks.{}.attn.qkv.weight", parts[1])];
                let rows = qkv.narrow(0, start, count);
                t.bytes = t.tensor_type.encode(&rows);
            }
        }
        Mutation::MergesReversed => {
            let entry = metadata
                .iter_mut()
                .find(|(k, _)| k == "tokenizer.ggml.merges")
                .expect("merges");
            if let Value::Array(merges) = &mut entry.1 {
                merges.reverse();
            }
        }
    }
    // What the file holds, as the exporter (mutated or not) meant it: llama.cpp must judge.
    let expected_metadata: serde_json::Map<String, serde_json::Value> = metadata
        .iter()
        .map(|(k, v)| (k.clone(), json_of(v)))
        .collect();
    let shapes: serde_json::Map<String, serde_json::Value> = tensors
        .iter()
        .map(|t| {
            (
                t.name.clone(),
                serde_json::json!(t.shape.iter().rev().collect::<Vec<_>>()),
            )
        })
        .collect();
    std::fs::write(
        dir.join(format!("{name}.gguf")),
        gguf::serialize(&metadata, &tensors),
    )
    .expect("written");

    // Our logits from the weights as the file stores them.
    tch::no_grad(|| {
        for (_, mut variable) in loaded.var_store.variables() {
            let stored = llama_cpp::stored_type(&variable, tensor_type).round_trip(&variable);
            variable.copy_(&stored);
        }
    });
    let t = spec.model.block_size.min(24);
    let ids = Tensor::randint(
        tokenizer.vocab_size() as i64,
        [t],
        (Kind::Int64, Device::Cpu),
    );
    let logits = tch::no_grad(|| loaded.model.forward_t(&ids.unsqueeze(0), false)).squeeze_dim(0);
    let format = format_of(tensor_type, arch.family == architecture::Family::Gpt2);
    let bound = tolerance::bound(format, model_depth(arch.n_layer), tolerance::scale(&logits));
    write_case_tensors(dir, name, &ids, &logits, bound);
    let prompt = tokenizer.encode("ROMEO:\n").expect("the prompt encodes");
    let continuation = if tensor_type == TensorType::F32 {
        let room = spec.model.block_size as usize - prompt.len();
        greedy(&loaded.model, &prompt, room.min(16), spec.model.block_size)
    } else {
        Vec::new()
    };
    let case = serde_json::json!({
        "metadata": expected_metadata,
        "tensors": shapes,
        "texts": texts,
        "token_ids": texts.iter().map(|t| tokenizer.encode(t).expect("encodes")).collect::<Vec<_>>(),
        "prompt": prompt,
        "continuation": continuation,
    });
    std::fs::write(dir.join(format!("{name}.case.json")), case.to_string()).expect("written");
}

/// Runs the llama.cpp check over `dir` (or one case): (success, report).
fn llama_cpp_check(dir: &Path, only: Option<&str>) -> (bool, String) {
    let mut command = Command::new(python());
    command
        .arg(repo_root().join("tests/python/llama_cpp_check.py"))
        .arg(dir);
    if let Some(name) = only {
        command.args(["--only", name]);
    }
    let output = command.output().expect("python runs");
    let report = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (output.status.success(), report)
}

/// `yaml` with its MLP's activation replaced by `activation`.
fn with_activation(yaml: &str, activation: &str) -> String {
    ["gelu_tanh", "gelu", "relu"]
        .iter()
        .fold(yaml.to_string(), |yaml, old| {
            yaml.replace(
                &format!("activation: {old}}}"),
                &format!("activation: {activation}}}"),
            )
        })
}

/// A random spec of `family` whose GPT-2 computes GELU as llama.cpp does.
fn gguf_spec(family: &str, seed: u64) -> Spec {
    spec_from(&with_activation(
        &random_family_spec(family, seed),
        "gelu_tanh",
    ))
}

#[test]
fn gguf_exports_are_what_llama_cpp_reads_computes_tokenizes_and_generates() {
    let _rng = common::torch_rng();
    let dir = tempfile::tempdir().expect("temp dir");
    let corpus = corpus();
    let vocab = Vocabulary::from_text(&corpus);
    let char_texts = texts(&corpus, &vocab.as_string());
    let mut cases = 0;
    for (seed, family, tensor_type) in [
        (0, "llama", TensorType::F32),
        (1, "llama", TensorType::F32),
        (2, "gpt2", TensorType::F32),
        (3, "gpt2", TensorType::F32),
        (4, "llama", TensorType::F16),
        (5, "gpt2", TensorType::BF16),
        (6, "llama", TensorType::Q8_0),
        (7, "gpt2", TensorType::Q8_0),
    ] {
        let name = format!("{family}-{seed}-{tensor_type:?}");
        let spec = gguf_spec(family, seed);
        write_case(
            dir.path(),
            &name,
            &spec,
            &vocab,
            &char_texts,
            seed as i64,
            tensor_type,
            Mutation::None,
        );
        cases += 1;
    }
    // Llama with biases on q, k, v and the output projection (transformers' attention_bias).
    let biased = random_family_spec("llama", 0).replace(
        "qkv_bias: false, projection_bias: false",
        "qkv_bias: true, projection_bias: true",
    );
    assert!(biased.contains("qkv_bias: true"), "{biased}");
    write_case(
        dir.path(),
        "llama-attention-bias",
        &spec_from(&biased),
        &vocab,
        &char_texts,
        10,
        TensorType::F32,
        Mutation::None,
    );
    cases += 1;
    let (bpe_spec, bpe, bpe_texts) = bpe_case("llama", &char_texts);
    write_case(
        dir.path(),
        "llama-bpe",
        &bpe_spec,
        bpe.as_ref(),
        &bpe_texts,
        9,
        TensorType::F32,
        Mutation::None,
    );
    cases += 1;

    let (passed, report) = llama_cpp_check(dir.path(), None);
    eprintln!("{report}");
    assert!(passed, "llama.cpp disagrees with the export:\n{report}");
    assert_eq!(report.matches("ok  ").count(), cases, "{report}");

    // Each mutation is an export mistake llama.cpp must catch.
    let mutated = tempfile::tempdir().expect("temp dir");
    let llama = gguf_spec("llama", 0);
    for (name, mutation, spec, tokenizer, texts) in [
        (
            "rope-dimensions",
            Mutation::RopeDimensions,
            &llama,
            &vocab as &dyn Tokenizer,
            &char_texts,
        ),
        (
            "no-qk-permutation",
            Mutation::NoQkPermutation,
            &llama,
            &vocab as &dyn Tokenizer,
            &char_texts,
        ),
        (
            "merges-reversed",
            Mutation::MergesReversed,
            &bpe_spec,
            bpe.as_ref(),
            &bpe_texts,
        ),
    ] {
        write_case(
            mutated.path(),
            name,
            spec,
            tokenizer,
            texts,
            0,
            TensorType::F32,
            mutation,
        );
        let (passed, report) = llama_cpp_check(mutated.path(), Some(name));
        eprintln!("mutation {name}: {report}");
        assert!(
            !passed && report.contains("FAIL"),
            "mutation {name} passed:\n{report}"
        );
    }
}

#[test]
fn what_llama_cpp_cannot_read_is_one_error_line_and_no_file() {
    let dir = tempfile::tempdir().expect("temp dir");
    let vocab = Vocabulary::from_text(&corpus());
    let out = dir.path().join("model.gguf");
    let with_accents = Vocabulary::from_text("naïve café, déjà vu\n");
    let cases: [(String, &dyn Tokenizer, &str); 4] = [
        (
            std::fs::read_to_string(repo_root().join("architectures/task06.yaml")).unwrap(),
            &vocab,
            "as GGUF: model.head_bias: the Llama and GPT-2 heads have no bias",
        ),
        (
            with_activation(&random_family_spec("gpt2", 1), "relu"),
            &vocab,
            "model.block.feed_forward.activation: llama.cpp's GPT-2 computes GELU's tanh",
        ),
        (
            with_activation(&random_family_spec("gpt2", 3), "gelu"),
            &vocab,
            "model.block.feed_forward.activation",
        ),
        (
            random_family_spec("llama", 2),
            &with_accents,
            "data.tokenizer: llama.cpp's tokenizer reads text as bytes",
        ),
    ];
    for (yaml, tokenizer, says) in cases {
        let spec = spec_from(&yaml);
        let path = dir.path().join("model.safetensors");
        trained_like(&spec, tokenizer, 0, &path);
        let (code, stderr) = export("gguf", &path, &out);
        assert_eq!(code, 1, "{stderr}");
        assert_eq!(stderr.lines().count(), 1, "one line: {stderr}");
        assert!(stderr.contains(says), "expected {says:?}: {stderr}");
        assert_nothing_written(&out);
    }
    // A checkpoint without its spec, and an output that cannot be written.
    let bare = dir.path().join("bare.safetensors");
    Tensor::write_safetensors(
        &[(
            "token_embedding.weight",
            &Tensor::zeros([4, 4], (Kind::Float, Device::Cpu)),
        )],
        &bare,
    )
    .unwrap();
    let (code, stderr) = export("gguf", &bare, &out);
    assert_eq!((code, stderr.lines().count()), (1, 1), "{stderr}");
    assert!(stderr.starts_with("error: checkpoint"), "{stderr}");
    assert_nothing_written(&out);
    let spec = gguf_spec("llama", 4);
    let path = dir.path().join("model.safetensors");
    trained_like(&spec, &vocab, 0, &path);
    let blocker = dir.path().join("a-file");
    std::fs::write(&blocker, "").unwrap();
    let (code, stderr) = export("gguf", &path, &blocker.join("model.gguf"));
    assert_eq!((code, stderr.lines().count()), (1, 1), "{stderr}");
    let (code, stderr) = export("gguf", &path, &out);
    assert_eq!(code, 0, "{stderr}");
    assert!(out.is_file());
}
