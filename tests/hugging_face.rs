//! Models that leave and enter through Hugging Face transformers, checked by transformers itself
//! (`tests/python/hugging_face.py`, with the `transformers` pinned in requirements.txt):
//! - export: random Llama- and GPT-2-shaped specs (every knob the families have: grouped KV
//!   heads, biases, RoPE bases, activations, tied heads), the corpus's characters and a trained
//!   byte-level BPE as tokenizers. transformers' logits equal ours within fp32 rounding
//!   (`common::tolerance`), its tokenizer gives our ids for the corpus and tricky text, and its
//!   greedy `generate` continues a prompt with our greedy tokens (what `Sampler` with top-k 1,
//!   i.e. `gptbuild sample --top-k 1`, writes);
//! - import: random models transformers builds from a config (fp32, bf16 and fp16 files, tied and
//!   untied, sharded) give transformers' logits after `import`;
//! - the round trip import(export(checkpoint)) gives back the same tensors and model section;
//! - fine-tuning starts from the imported weights (`training.init_from`);
//! - each check has a mutation that must fail, and bad input is one error naming the file.
#![cfg(feature = "cli")]

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::families::{
    assert_nothing_written, bpe_case, corpus, export, gptbuild, greedy, random_family_spec, texts,
    trained_like, write_case_tensors,
};
use common::tolerance::{self, model_depth, FP32};
use common::{python, repo_root, spec_from};
use gptbuild::artifacts::checkpoint;
use gptbuild::convert::hugging_face;
use gptbuild::data::tokenizer::Tokenizer;
use gptbuild::data::vocab::Vocabulary;
use gptbuild::model::Gpt;
use gptbuild::spec::Spec;
use tch::nn::VarStore;
use tch::{Device, Kind, Tensor};

/// Writes case `name` for the transformers check: the exported directory `dir/NAME/`, random ids
/// with our logits and their bound, our ids of `texts`, and our greedy continuation of a prompt.
fn write_export_case(
    dir: &Path,
    name: &str,
    spec: &Spec,
    tokenizer: &dyn Tokenizer,
    texts: &[String],
    seed: i64,
) {
    let checkpoint_path = dir.join(format!("{name}.gptbuild.safetensors"));
    let (_vs, model) = trained_like(spec, tokenizer, seed, &checkpoint_path);
    let loaded = checkpoint::load(&checkpoint_path, Device::Cpu).expect("checkpoint loads");
    hugging_face::export(&loaded, &checkpoint_path, &dir.join(name))
        .unwrap_or_else(|e| panic!("{name} exports: {e}"));
    let vocab = tokenizer.vocab_size() as i64;
    let ids = Tensor::randint(
        vocab,
        [2, spec.model.block_size],
        (Kind::Int64, Device::Cpu),
    );
    let logits = tch::no_grad(|| model.forward_t(&ids, false));
    let bound = tolerance::bound(
        FP32,
        model_depth(spec.model.n_layer()),
        tolerance::scale(&logits),
    );
    write_case_tensors(dir, name, &ids, &logits, bound);
    let token_ids: Vec<Vec<i64>> = texts
        .iter()
        .map(|t| tokenizer.encode(t).expect("the text is in the vocabulary"))
        .collect();
    let prompt = tokenizer.encode("ROMEO:\n").expect("the prompt encodes");
    // Within the context: past it we slide the window, which transformers does not.
    let room = spec.model.block_size as usize - prompt.len();
    let continuation = greedy(&model, &prompt, room.min(16), spec.model.block_size);
    // What `gptbuild sample --top-k 1` writes (the library's sampler, with the KV cache).
    let sampled = gptbuild::Sampler::new(&model, tokenizer)
        .decoding(gptbuild::Decoding {
            top_k: Some(1),
            ..Default::default()
        })
        .sample("ROMEO:\n", continuation.len() as u64)
        .expect("samples");
    assert_eq!(
        sampled,
        tokenizer.decode(&continuation),
        "{name}: top-k 1 is not greedy"
    );
    let case = serde_json::json!({
        "texts": texts, "token_ids": token_ids, "prompt": prompt, "continuation": continuation,
    });
    std::fs::write(dir.join(format!("{name}.case.json")), case.to_string()).expect("case written");
}

/// Runs `hugging_face.py ARGS`: (success, its output).
fn transformers(args: &[&str]) -> (bool, String) {
    let output = Command::new(python())
        .arg(repo_root().join("tests/python/hugging_face.py"))
        .args(args)
        .env("HF_HUB_OFFLINE", "1")
        .env("TRANSFORMERS_VERBOSITY", "error")
        .output()
        .expect("python runs");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (output.status.success(), text)
}

#[test]
fn exported_models_are_what_transformers_computes_tokenizes_and_generates() {
    let _rng = common::torch_rng();
    let dir = tempfile::tempdir().expect("temp dir");
    let corpus = corpus();
    let vocab = Vocabulary::from_text(&corpus);
    let char_texts = texts(&corpus, &vocab.as_string());
    for seed in 0..4 {
        for family in ["llama", "gpt2"] {
            let spec = spec_from(&random_family_spec(family, seed));
            write_export_case(
                dir.path(),
                &format!("{family}-{seed}"),
                &spec,
                &vocab,
                &char_texts,
                seed as i64,
            );
        }
    }
    // Every architecture file that maps onto a family (the course's have head biases: none yet).
    let mut exportable = 0;
    for path in common::architecture_files() {
        let spec = common::in_fp32(&common::load_spec(&path));
        if gptbuild::convert::architecture::of_spec(&spec, vocab.len() as i64).is_ok() {
            let name = path.file_stem().unwrap().to_string_lossy().into_owned();
            write_export_case(dir.path(), &name, &spec, &vocab, &char_texts, 1);
            exportable += 1;
        }
    }
    // A byte-level BPE trained here: transformers must split tricky text as we do.
    let (bpe_spec, bpe, bpe_texts) = bpe_case("gpt2", &char_texts);
    write_export_case(
        dir.path(),
        "gpt2-bpe",
        &bpe_spec,
        bpe.as_ref(),
        &bpe_texts,
        9,
    );

    let dir_arg = dir.path().to_str().expect("utf-8 path");
    let (passed, report) = transformers(&["check", dir_arg]);
    eprintln!("{report}");
    assert!(passed, "transformers disagrees with the export:\n{report}");
    assert_eq!(report.matches("ok  ").count(), 9 + exportable, "{report}");

    // Each mutation is an export mistake transformers must catch.
    for (case, mutation) in [
        ("gpt2-0", "conv1d"),
        ("llama-0", "rotate_half"),
        ("llama-1", "head_bias"),
    ] {
        let (passed, report) =
            transformers(&["check", dir_arg, "--only", case, "--mutate", mutation]);
        eprintln!("mutation {mutation}: {report}");
        assert!(
            !passed && report.contains("FAIL") && report.contains("max|diff|"),
            "mutation {mutation} of {case} did not fail on the logits:\n{report}"
        );
    }
}

/// The random transformers models the import test reads: (name, family, config, dtype, sharded).
const MODELS: [(&str, &str, &str, &str, bool); 5] = [
    (
        "llama-fp32-untied",
        "llama",
        r#"{"vocab_size": 65, "hidden_size": 32, "intermediate_size": 48, "num_hidden_layers": 2,
            "num_attention_heads": 4, "num_key_value_heads": 2, "head_dim": 8,
            "max_position_embeddings": 32, "rms_norm_eps": 1e-5, "rope_theta": 500.0,
            "tie_word_embeddings": false, "attention_bias": false}"#,
        "float32",
        false,
    ),
    (
        "llama-bf16-tied-bias",
        "llama",
        r#"{"vocab_size": 65, "hidden_size": 48, "intermediate_size": 40, "num_hidden_layers": 2,
            "num_attention_heads": 4, "num_key_value_heads": 4, "max_position_embeddings": 24,
            "rms_norm_eps": 1e-6, "tie_word_embeddings": true, "attention_bias": true}"#,
        "bfloat16",
        false,
    ),
    (
        "gpt2-fp32-untied",
        "gpt2",
        r#"{"vocab_size": 65, "n_positions": 32, "n_embd": 48, "n_layer": 2, "n_head": 4,
            "activation_function": "gelu_new", "tie_word_embeddings": false}"#,
        "float32",
        false,
    ),
    (
        "gpt2-bf16-tied-sharded",
        "gpt2",
        r#"{"vocab_size": 65, "n_positions": 24, "n_embd": 32, "n_layer": 3, "n_head": 2,
            "n_inner": 40, "activation_function": "relu"}"#,
        "bfloat16",
        true,
    ),
    (
        "gpt2-fp16-gelu",
        "gpt2",
        r#"{"vocab_size": 65, "n_positions": 16, "n_embd": 32, "n_layer": 1, "n_head": 4,
            "activation_function": "gelu"}"#,
        "float16",
        false,
    ),
];

/// Makes [`MODELS`] with transformers into `dir`.
fn make_models(dir: &Path) {
    let lines: Vec<String> = MODELS
        .iter()
        .enumerate()
        .map(|(seed, (name, family, config, dtype, shards))| {
            let config: serde_json::Value = serde_json::from_str(config).expect("config JSON");
            serde_json::json!({"name": name, "family": family, "config": config, "dtype": dtype,
                               "shards": shards, "seed": seed})
            .to_string()
        })
        .collect();
    std::fs::write(dir.join("models.json"), lines.join("\n")).expect("models.json written");
    let (made, report) = transformers(&["make", dir.to_str().expect("utf-8 path")]);
    assert!(made, "transformers could not make the models:\n{report}");
}

/// Our logits for the case's ids from the imported checkpoint, transformers' logits, the bound,
/// the ids and the loaded model.
struct Imported {
    ours: Tensor,
    theirs: Tensor,
    bound: f64,
    ids: Tensor,
    loaded: checkpoint::LoadedModel,
}

fn imported_logits(dir: &Path, name: &str, checkpoint_path: &Path) -> Imported {
    let loaded = checkpoint::load(checkpoint_path, Device::Cpu).expect("imported checkpoint loads");
    let case =
        Tensor::read_safetensors(dir.join(format!("{name}.case.safetensors"))).expect("case");
    let get = |key: &str| {
        case.iter()
            .find(|(k, _)| k == key)
            .map(|(_, t)| t.shallow_clone())
            .unwrap_or_else(|| panic!("the case has no {key}"))
    };
    let ids = get("ids");
    let ours = tch::no_grad(|| loaded.model.forward_t(&ids, false));
    let theirs = get("logits");
    let bound = tolerance::bound(
        FP32,
        model_depth(loaded.spec.model.n_layer()),
        tolerance::scale(&ours).max(tolerance::scale(&theirs)),
    );
    Imported {
        ours,
        theirs,
        bound,
        ids,
        loaded,
    }
}

fn max_difference(a: &Tensor, b: &Tensor) -> f64 {
    (a - b).abs().max().double_value(&[])
}

#[test]
fn imported_transformers_models_compute_what_transformers_computes() {
    let _rng = common::torch_rng();
    let dir = tempfile::tempdir().expect("temp dir");
    make_models(dir.path());
    for (name, family, ..) in MODELS {
        let out = dir.path().join(format!("{name}.imported"));
        let imported = hugging_face::import(&dir.path().join(name), &out, None)
            .unwrap_or_else(|e| panic!("{name} imports: {e}"));
        assert!(imported.spec_path.is_file() && out.join("tokenizer.json").is_file());
        let Imported {
            ours,
            theirs,
            bound,
            ids,
            loaded,
        } = imported_logits(dir.path(), name, &imported.checkpoint_path);
        let difference = max_difference(&ours, &theirs);
        eprintln!(
            "{name}: max|diff| {difference:.1e} = {:.3} of the bound",
            difference / bound
        );
        assert!(
            difference <= bound,
            "{name}: logits differ by {difference}, bound {bound}"
        );

        // The mutation: a GPT-2 Conv1D weight read without its transpose, or Llama's q/k rows
        // read in the interleaved layout instead of rotate-half.
        let variables = loaded.var_store.variables();
        tch::no_grad(|| {
            if family == "gpt2" {
                let mut weight = variables["blocks.0.attn.proj.weight"].shallow_clone();
                let transposed = weight.transpose(0, 1).copy();
                weight.copy_(&transposed);
            } else {
                let mut weight = variables["blocks.0.attn.qkv.weight"].shallow_clone();
                let head_size = imported.architecture.head_size;
                let rows = weight.size()[0];
                let interleaved = weight
                    .view([rows / head_size, 2, head_size / 2, -1])
                    .transpose(1, 2)
                    .reshape([rows, -1]);
                weight.copy_(&interleaved);
            }
        });
        let mutated = tch::no_grad(|| loaded.model.forward_t(&ids, false));
        assert!(
            max_difference(&mutated, &theirs) > bound,
            "{name}: the mutated import still matches transformers"
        );
    }
}

#[test]
fn import_of_an_export_gives_back_the_same_tensors_and_model() {
    let _rng = common::torch_rng();
    let dir = tempfile::tempdir().expect("temp dir");
    let vocab = Vocabulary::from_text(&corpus());
    for (seed, family) in [(5, "llama"), (6, "gpt2"), (7, "llama"), (8, "gpt2")] {
        let spec = spec_from(&random_family_spec(family, seed));
        let path = dir.path().join(format!("{family}-{seed}.safetensors"));
        let (vs, _model) = trained_like(&spec, &vocab, seed as i64, &path);
        let loaded = checkpoint::load(&path, Device::Cpu).expect("loads");
        let exported = dir.path().join(format!("{family}-{seed}.hf"));
        hugging_face::export(&loaded, &path, &exported).expect("exports");
        let imported = hugging_face::import(
            &exported,
            &dir.path().join(format!("{family}-{seed}.back")),
            None,
        )
        .expect("imports");
        let back = checkpoint::load(&imported.checkpoint_path, Device::Cpu).expect("loads back");
        assert_eq!(
            serde_norway::to_string(&back.spec.model).unwrap(),
            serde_norway::to_string(&spec.model).unwrap(),
            "{family}-{seed}: the model section changed"
        );
        let back_variables = back.var_store.variables();
        for (name, tensor) in vs.variables() {
            assert!(
                tensor.equal(&back_variables[&name]),
                "{family}-{seed}: {name} changed"
            );
        }
        assert_eq!(back_variables.len(), vs.variables().len());
        let text: String = corpus().chars().take(3000).collect();
        assert_eq!(
            back.tokenizer.encode(&text).unwrap(),
            vocab.encode(&text).unwrap()
        );
    }
}

/// A GPT-2-shaped export of a random model with the corpus's characters, in `dir/NAME`.
fn exported_gpt2(dir: &Path, name: &str) -> PathBuf {
    let vocab = Vocabulary::from_text(&corpus());
    let spec = spec_from(&random_family_spec("gpt2", 11));
    let path = dir.join(format!("{name}.safetensors"));
    trained_like(&spec, &vocab, 11, &path);
    let loaded = checkpoint::load(&path, Device::Cpu).expect("loads");
    hugging_face::export(&loaded, &path, &dir.join(name)).expect("exports");
    dir.join(name)
}

#[test]
fn bad_transformers_directories_are_one_error_naming_the_file_and_field() {
    let dir = tempfile::tempdir().expect("temp dir");
    let source = exported_gpt2(dir.path(), "good");
    let copy = |name: &str| {
        let to = dir.path().join(name);
        std::fs::create_dir(&to).expect("dir");
        for entry in std::fs::read_dir(&source).expect("readable") {
            let entry = entry.expect("entry");
            std::fs::copy(entry.path(), to.join(entry.file_name())).expect("copied");
        }
        to
    };
    let edit_config = |dir: &Path, edit: &dyn Fn(&mut serde_json::Value)| {
        let path = dir.join("config.json");
        let mut config: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        edit(&mut config);
        std::fs::write(path, config.to_string()).unwrap();
    };

    let empty = dir.path().join("empty");
    std::fs::create_dir(&empty).unwrap();

    let lying = copy("lying");
    edit_config(&lying, &|c| c["n_embd"] = serde_json::json!(64));

    let unknown = copy("unknown");
    edit_config(&unknown, &|c| {
        c["model_type"] = serde_json::json!("mistral")
    });

    let truncated = copy("truncated");
    let weights = truncated.join("model.safetensors");
    let bytes = std::fs::read(&weights).unwrap();
    std::fs::write(&weights, &bytes[..bytes.len() / 2]).unwrap();

    let missing_shard = copy("missing-shard");
    std::fs::rename(
        missing_shard.join("model.safetensors"),
        missing_shard.join("model-00001-of-00002.safetensors"),
    )
    .unwrap();
    let index = serde_json::json!({"weight_map": {
        "transformer.wte.weight": "model-00001-of-00002.safetensors",
        "transformer.wpe.weight": "model-00002-of-00002.safetensors"}});
    std::fs::write(
        missing_shard.join("model.safetensors.index.json"),
        index.to_string(),
    )
    .unwrap();

    let small_tokenizer = copy("small-tokenizer");
    std::fs::write(
        small_tokenizer.join("tokenizer.json"),
        gptbuild::convert::char_tokenizer::tokenizer_json("abcdefghij"),
    )
    .unwrap();

    for (input, file, says) in [
        (&empty, "config.json", "not a transformers model directory"),
        (&lying, "model.safetensors", "config.json's sizes give"),
        (&unknown, "config.json", "`model_type` \"mistral\""),
        (
            &truncated,
            "model.safetensors",
            "not a whole safetensors file",
        ),
        (
            &missing_shard,
            "model-00002-of-00002.safetensors",
            "cannot read the weights",
        ),
        (
            &small_tokenizer,
            "tokenizer.json",
            "has 10 tokens, but config.json's vocab_size",
        ),
    ] {
        let out = dir.path().join("out");
        let (code, _, stderr) = gptbuild(&[
            "import",
            input.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
        ]);
        assert_eq!(code, 1, "{stderr}");
        assert_eq!(stderr.lines().count(), 1, "one line: {stderr}");
        assert!(stderr.starts_with("error: import "), "{stderr}");
        assert!(
            stderr.contains(file) && stderr.contains(says),
            "expected {file} and {says:?}: {stderr}"
        );
        assert_nothing_written(&out);
    }
}

#[test]
fn a_spec_of_no_family_is_refused_naming_the_field_and_nothing_is_written() {
    let dir = tempfile::tempdir().expect("temp dir");
    let vocab = Vocabulary::from_text(&corpus());
    let out = dir.path().join("out");
    for (yaml, says) in [
        (
            std::fs::read_to_string(repo_root().join("architectures/task06.yaml")).unwrap(),
            "model.head_bias: the Llama and GPT-2 heads have no bias; train with head_bias: false",
        ),
        (
            random_family_spec("llama", 1).replace("kind: rope, theta", "kind: alibi, unused"),
            "model.position: `kind: alibi` maps onto no family",
        ),
        (
            random_family_spec("gpt2", 1).replace("norm_placement: pre", "norm_placement: post"),
            "model.block.norm_placement",
        ),
    ] {
        let yaml = yaml
            .replace(", unused: 10000.0}", "}")
            .replace(", unused: 500.0}", "}");
        let spec = spec_from(&yaml);
        let path = dir.path().join("model.safetensors");
        trained_like(&spec, &vocab, 0, &path);
        let (code, stderr) = export("hf", &path, &out);
        assert_eq!(code, 1, "{stderr}");
        assert_eq!(stderr.lines().count(), 1, "one line: {stderr}");
        assert!(stderr.contains(says), "expected {says:?}: {stderr}");
        assert_nothing_written(&out);
    }
    // An output that cannot be written: one line, nothing left.
    let spec = spec_from(&random_family_spec("gpt2", 2));
    let path = dir.path().join("model.safetensors");
    trained_like(&spec, &vocab, 0, &path);
    let blocker = dir.path().join("a-file");
    std::fs::write(&blocker, "").unwrap();
    let (code, stderr) = export("hf", &path, &blocker.join("out"));
    assert_eq!((code, stderr.lines().count()), (1, 1), "{stderr}");
    assert!(std::fs::metadata(&blocker).unwrap().is_file());
}

/// The val loss `gptbuild evaluate` prints for a checkpoint on a corpus.
fn evaluated_val_loss(checkpoint_path: &Path, data: &Path) -> f64 {
    let (code, stdout, stderr) = gptbuild(&[
        "evaluate",
        "--checkpoint",
        checkpoint_path.to_str().unwrap(),
        "--data",
        data.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{stderr}");
    let line = stdout
        .lines()
        .find(|l| l.starts_with("val loss "))
        .expect("a val loss line");
    line.split_whitespace()
        .nth(2)
        .and_then(|v| v.parse().ok())
        .expect("a number")
}

#[test]
fn fine_tuning_starts_from_the_imported_weights_and_learns() {
    let _rng = common::torch_rng();
    let dir = tempfile::tempdir().expect("temp dir");
    let exported = exported_gpt2(dir.path(), "pretrained");
    let imported_dir = dir.path().join("imported");
    let imported = hugging_face::import(&exported, &imported_dir, None).expect("imports");
    let data = dir.path().join("corpus.txt");
    std::fs::write(&data, corpus().chars().take(40_000).collect::<String>()).unwrap();

    let model = checkpoint::load(&imported.checkpoint_path, Device::Cpu)
        .unwrap()
        .spec
        .model;
    let model_yaml = serde_norway::to_string(&model)
        .unwrap()
        .replace('\n', "\n  ");
    let spec_yaml = |init_from: bool| {
        format!(
            "name: finetune\ndata: {{tokenizer: {{kind: file, path: {:?}}}}}\nmodel:\n  {model_yaml}\n\
             training: {{batch_size: 8, max_iters: 40, eval_interval: 40, eval_iters: 2, \
             val_eval: whole_split, learning_rate: 0.003, threads: 1{}}}\n",
            imported_dir.join("tokenizer.json"),
            if init_from {
                format!(", init_from: {:?}", imported.checkpoint_path)
            } else {
                String::new()
            }
        )
    };
    let run = |init_from: bool| {
        let path = dir.path().join(format!("finetune-{init_from}.yaml"));
        std::fs::write(&path, spec_yaml(init_from)).unwrap();
        let options = gptbuild::workflow::run::RunOptions {
            data: Some(data.clone()),
            runs_dir: Some(dir.path().join("runs")),
            seed: Some(3),
            threads: Some(1),
            device: Some(gptbuild::spec::DeviceSpec::Cpu),
            ..Default::default()
        };
        let mut log = Vec::new();
        gptbuild::workflow::run::run(&path, &options, &mut log).expect("the run succeeds")
    };
    let tuned = run(true);
    let fresh = run(false);
    let start = tuned.evaluations[0].val_loss;
    // Iteration 0 is the imported model itself: what `evaluate` measures on the same split.
    let imported_loss = evaluated_val_loss(&imported.checkpoint_path, &data);
    assert!(
        (start - imported_loss).abs() <= 1e-4 + 1e-3 * imported_loss,
        "{start} vs {imported_loss}"
    );
    assert!(
        (fresh.evaluations[0].val_loss - start).abs() > 0.01,
        "init_from changed nothing"
    );
    let end = tuned.evaluations.last().unwrap().val_loss;
    assert!(
        end < start - 0.05,
        "fine-tuning did not learn: {start} -> {end}"
    );

    // Another model section is refused, naming the field.
    let path = dir.path().join("other.yaml");
    std::fs::write(
        &path,
        spec_yaml(true).replacen("block_size: ", "block_size: 1", 1),
    )
    .unwrap();
    let (code, _, stderr) = gptbuild(&[
        "run",
        path.to_str().unwrap(),
        "--data",
        data.to_str().unwrap(),
        "--runs-dir",
        dir.path().join("runs").to_str().unwrap(),
        "--threads",
        "1",
    ]);
    assert_eq!(code, 1, "{stderr}");
    assert!(
        stderr.contains("training.init_from: the checkpoint's model has model.block_size"),
        "{stderr}"
    );
    // The refused run left no run directory behind: the two runs above are all there is.
    let runs = std::fs::read_dir(dir.path().join("runs/finetune"))
        .unwrap()
        .count();
    assert_eq!(runs, 2, "a refused run left a directory");
}

/// GPT-2 small's config, as the Hub has it.
const GPT2_SMALL: &str = r#"{"model_type": "gpt2", "architectures": ["GPT2LMHeadModel"],
  "vocab_size": 50257, "n_positions": 1024, "n_ctx": 1024, "n_embd": 768, "n_layer": 12,
  "n_head": 12, "n_inner": null, "activation_function": "gelu_new", "resid_pdrop": 0.1,
  "embd_pdrop": 0.1, "attn_pdrop": 0.1, "layer_norm_epsilon": 1e-05, "initializer_range": 0.02,
  "bos_token_id": 50256, "eos_token_id": 50256}"#;

/// GPT-2's real sizes, shapes only: its config reads as the fine-tuning example's model section,
/// which builds GPT-2 small's 124,439,808 parameters.
#[test]
fn gpt2_small_s_config_is_the_fine_tuning_example_s_model() {
    let config: serde_json::Value = serde_json::from_str(GPT2_SMALL).unwrap();
    let arch =
        hugging_face::architecture_of_config(&config, Path::new("config.json")).expect("reads");
    let from_config = spec_from(&arch.model_yaml());
    let example = repo_root().join("examples/finetune-shakespeare.yaml");
    let written = std::fs::read_to_string(&example).unwrap();
    // The example names files `gptbuild import` writes; its model section is what matters here.
    let example = spec_from(&written);
    assert_eq!(
        serde_norway::to_string(&example.model).unwrap(),
        serde_norway::to_string(&from_config.model).unwrap()
    );
    let vs = VarStore::new(Device::Cpu);
    Gpt::new(&vs.root(), &from_config, arch.vocab_size);
    let parameters: i64 = vs
        .trainable_variables()
        .iter()
        .map(|t| t.numel() as i64)
        .sum();
    assert_eq!(parameters, 124_439_808);
}

/// The Hub's GPT-2 files name the base model's tensors (`h.0.attn.c_attn.weight`, no
/// `transformer.`) and carry the causal-mask buffers `h.N.attn.bias`; they import all the same.
/// `--block-size` shortens the context, keeping the first position vectors.
#[test]
fn the_hub_s_gpt2_layout_imports_and_the_context_can_be_shortened() {
    let dir = tempfile::tempdir().expect("temp dir");
    let exported = exported_gpt2(dir.path(), "hub-like");
    let weights = exported.join("model.safetensors");
    let mut tensors: Vec<(String, Tensor)> = Tensor::read_safetensors(&weights)
        .unwrap()
        .into_iter()
        .map(|(name, t)| (name.trim_start_matches("transformer.").to_string(), t))
        .collect();
    let block_size = tensors
        .iter()
        .find(|(n, _)| n == "wpe.weight")
        .unwrap()
        .1
        .size()[0];
    tensors.push((
        "h.0.attn.bias".into(),
        Tensor::ones([1, 1, block_size, block_size], (Kind::Float, Device::Cpu)).tril(0),
    ));
    Tensor::write_safetensors(&tensors, &weights).unwrap();
    let original = checkpoint::load(&dir.path().join("hub-like.safetensors"), Device::Cpu).unwrap();
    let original = original.var_store.variables();

    let imported =
        hugging_face::import(&exported, &dir.path().join("whole"), None).expect("imports");
    let whole = checkpoint::load(&imported.checkpoint_path, Device::Cpu).unwrap();
    for (name, tensor) in whole.var_store.variables() {
        assert!(tensor.equal(&original[&name]), "{name} changed");
    }

    let short =
        hugging_face::import(&exported, &dir.path().join("short"), Some(8)).expect("imports");
    let short = checkpoint::load(&short.checkpoint_path, Device::Cpu).unwrap();
    assert_eq!(short.spec.model.block_size, 8);
    let positions = &short.var_store.variables()["position.weight"];
    assert!(positions.equal(&original["position.weight"].narrow(0, 0, 8)));
}
