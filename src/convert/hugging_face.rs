//! Hugging Face transformers directories: a trained model written as one
//! (`AutoModelForCausalLM.from_pretrained(DIR)` loads it with no custom code), and one read in as
//! a gptbuild spec and checkpoint.
//!
//! A directory holds `config.json` (the family's sizes), `model.safetensors` (or shards listed in
//! `model.safetensors.index.json`) in the family's tensor names and layouts
//! ([`tensor_layout`]), `generation_config.json`, and the tokenizer (`tokenizer.json`,
//! `tokenizer_config.json`). Either way the output is written to a temporary directory beside it
//! and renamed when whole, so a failure leaves nothing at `--out`.

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};

use safetensors::tensor::{Dtype, SafeTensors};
use serde_json::{json, Value};
use tch::nn::VarStore;
use tch::{Device, Kind, Tensor};

use crate::artifacts::checkpoint::{self, HostTensor, LoadedModel};
use crate::convert::architecture::{self, tensor_layout, Architecture, Family, Stored};
use crate::convert::char_tokenizer;
use crate::data::tokenizer::hugging_face::HuggingFace;
use crate::data::tokenizer::{StoredTokenizer, Tokenizer};
use crate::error::{Error, Result};
use crate::model::Gpt;
use crate::spec::Spec;

pub const CONFIG_FILE: &str = "config.json";
pub const WEIGHTS_FILE: &str = "model.safetensors";
pub const WEIGHTS_INDEX_FILE: &str = "model.safetensors.index.json";
pub const TOKENIZER_FILE: &str = "tokenizer.json";
pub const TOKENIZER_CONFIG_FILE: &str = "tokenizer_config.json";
pub const GENERATION_CONFIG_FILE: &str = "generation_config.json";
/// The imported spec, beside its checkpoint ([`WEIGHTS_FILE`], in gptbuild's format).
pub const SPEC_FILE: &str = "spec.yaml";

/// Writes `loaded` (read from `checkpoint`) as a transformers directory `out`, which must not
/// exist yet. Returns the family it was written as.
pub fn export(loaded: &LoadedModel, checkpoint: &Path, out: &Path) -> Result<Architecture> {
    let refuse = |message: String| Error::Export {
        path: checkpoint.to_path_buf(),
        format: "a Hugging Face model",
        message,
    };
    let vocab_size = loaded.tokenizer.vocab_size() as i64;
    let arch =
        architecture::of_spec(&loaded.spec, vocab_size).map_err(|e| refuse(e.to_string()))?;
    let variables: HashMap<String, Tensor> = loaded.var_store.variables().into_iter().collect();
    let mut tensors = Vec::new();
    for (ours, stored) in tensor_layout(&arch) {
        let tensor = variables
            .get(&ours)
            .ok_or_else(|| refuse(format!("the model has no tensor `{ours}`")))?;
        match stored {
            Stored::Renamed(theirs) => tensors.push((theirs, HostTensor::from_tensor(tensor))),
            Stored::Transposed(theirs) => {
                tensors.push((theirs, HostTensor::from_tensor(&tensor.transpose(0, 1))))
            }
            Stored::Split(parts) => {
                let sizes: Vec<i64> = parts.iter().map(|(_, rows)| *rows).collect();
                for ((theirs, _), part) in parts.iter().zip(tensor.split_with_sizes(&sizes, 0)) {
                    tensors.push((theirs.clone(), HostTensor::from_tensor(&part)));
                }
            }
        }
    }
    tensors.sort_by(|a, b| a.0.cmp(&b.0));
    let metadata = HashMap::from([("format".to_string(), "pt".to_string())]);
    let weights = checkpoint::serialize(&out.join(WEIGHTS_FILE), tensors, metadata)?;
    let tokenizer = match loaded.tokenizer.stored() {
        StoredTokenizer::Characters(chars) => char_tokenizer::tokenizer_json(&chars),
        StoredTokenizer::HuggingFace(json) => json,
    };
    let sampling = &loaded.spec.sampling;
    // transformers samples from the 50 likeliest tokens unless told otherwise: 0 is "all of them".
    let mut generation = json!({
        "do_sample": true,
        "temperature": sampling.temperature,
        "top_k": sampling.top_k.unwrap_or(0),
    });
    if let Some(top_p) = sampling.top_p {
        generation["top_p"] = json!(top_p);
    }
    let files: Vec<(&str, Vec<u8>)> = vec![
        (CONFIG_FILE, pretty(&config_json(&arch))),
        (GENERATION_CONFIG_FILE, pretty(&generation)),
        (WEIGHTS_FILE, weights),
        (TOKENIZER_FILE, tokenizer.into_bytes()),
        (
            TOKENIZER_CONFIG_FILE,
            pretty(&json!({
                "tokenizer_class": "PreTrainedTokenizerFast",
                "clean_up_tokenization_spaces": false,
                "model_max_length": arch.block_size,
            })),
        ),
    ];
    write_directory(out, &files).map_err(|e| match e {
        Error::Usage(message) => refuse(message),
        other => other,
    })?;
    Ok(arch)
}

fn pretty(value: &Value) -> Vec<u8> {
    let mut text = serde_json::to_string_pretty(value).unwrap_or_else(|_| value.to_string());
    text.push('\n');
    text.into_bytes()
}

/// The family's `config.json` for `arch`.
pub fn config_json(arch: &Architecture) -> Value {
    match arch.family {
        Family::Llama => json!({
            "architectures": [arch.family.class()],
            "model_type": arch.family.model_type(),
            "vocab_size": arch.vocab_size,
            "hidden_size": arch.n_embd,
            "intermediate_size": arch.hidden_size,
            "num_hidden_layers": arch.n_layer,
            "num_attention_heads": arch.n_head,
            "num_key_value_heads": arch.n_kv_head,
            "head_dim": arch.head_size,
            "hidden_act": "silu",
            "max_position_embeddings": arch.block_size,
            "rms_norm_eps": arch.norm_eps,
            "rope_theta": arch.rope_theta,
            "rope_parameters": {"rope_type": "default", "rope_theta": arch.rope_theta},
            "attention_bias": arch.attention_bias,
            "attention_dropout": arch.attention_dropout,
            "mlp_bias": false,
            "tie_word_embeddings": arch.tie_embeddings,
            "initializer_range": 0.02,
            "use_cache": true,
            "bos_token_id": null,
            "eos_token_id": null,
            "pad_token_id": null,
            "dtype": "float32",
        }),
        Family::Gpt2 => json!({
            "architectures": [arch.family.class()],
            "model_type": arch.family.model_type(),
            "vocab_size": arch.vocab_size,
            "n_positions": arch.block_size,
            "n_embd": arch.n_embd,
            "n_layer": arch.n_layer,
            "n_head": arch.n_head,
            "n_inner": arch.hidden_size,
            "activation_function": match arch.activation.as_str() {
                "gelu_tanh" => "gelu_new",
                other => other,
            },
            "resid_pdrop": arch.residual_dropout,
            "embd_pdrop": arch.embedding_dropout,
            "attn_pdrop": arch.attention_dropout,
            "layer_norm_epsilon": arch.norm_eps,
            "initializer_range": 0.02,
            "scale_attn_weights": true,
            "scale_attn_by_inverse_layer_idx": false,
            "reorder_and_upcast_attn": false,
            "tie_word_embeddings": arch.tie_embeddings,
            "use_cache": true,
            "bos_token_id": null,
            "eos_token_id": null,
            "dtype": "float32",
        }),
    }
}

/// Reads a family's `config.json` (at `path`, for errors) as an architecture.
pub fn architecture_of_config(config: &Value, path: &Path) -> Result<Architecture> {
    let bad = |message: String| Error::Import {
        path: path.to_path_buf(),
        message,
    };
    let present = |key: &str| config.get(key).filter(|v| !v.is_null());
    let size = |key: &str| -> Result<i64> {
        match present(key).and_then(Value::as_i64) {
            Some(n) if n > 0 => Ok(n),
            _ => Err(bad(format!("`{key}` is missing or not a positive integer"))),
        }
    };
    let size_or = |key: &str, default: i64| -> Result<i64> {
        match present(key) {
            Some(_) => size(key),
            None if default > 0 => Ok(default),
            None => Err(bad(format!(
                "`{key}` is missing, and the sizes it defaults from give {default}"
            ))),
        }
    };
    let number_or = |key: &str, default: f64| -> Result<f64> {
        match present(key) {
            None => Ok(default),
            Some(v) => v
                .as_f64()
                .ok_or_else(|| bad(format!("`{key}` is not a number: {v}"))),
        }
    };
    let flag_or = |key: &str, default: bool| -> Result<bool> {
        match present(key) {
            None => Ok(default),
            Some(v) => v
                .as_bool()
                .ok_or_else(|| bad(format!("`{key}` is not true or false: {v}"))),
        }
    };
    let model_type = present("model_type").and_then(Value::as_str).unwrap_or("");
    match model_type {
        "llama" => {
            let n_embd = size("hidden_size")?;
            let n_head = size("num_attention_heads")?;
            let act = present("hidden_act")
                .and_then(Value::as_str)
                .unwrap_or("silu");
            if act != "silu" {
                return Err(bad(format!(
                    "`hidden_act` is {act:?}; gptbuild's SwiGLU gates with SiLU (\"silu\")"
                )));
            }
            if flag_or("mlp_bias", false)? {
                return Err(bad(
                    "`mlp_bias` is true; gptbuild's SwiGLU has no biases".into()
                ));
            }
            let rope = present("rope_parameters").or_else(|| present("rope_scaling"));
            let rope_type = rope
                .and_then(|r| r.get("rope_type").or_else(|| r.get("type")))
                .and_then(Value::as_str)
                .unwrap_or("default");
            if rope_type != "default" {
                return Err(bad(format!(
                    "RoPE type {rope_type:?} (scaled RoPE) is not gptbuild's; only \"default\" maps"
                )));
            }
            let rope_theta = match rope
                .and_then(|r| r.get("rope_theta"))
                .and_then(Value::as_f64)
            {
                Some(theta) => theta,
                None => number_or("rope_theta", 10000.0)?,
            };
            let n_kv_head = size_or("num_key_value_heads", n_head)?;
            if n_head % n_kv_head != 0 {
                return Err(bad(format!(
                    "`num_key_value_heads` ({n_kv_head}) does not divide `num_attention_heads` ({n_head})"
                )));
            }
            Ok(Architecture {
                family: Family::Llama,
                vocab_size: size("vocab_size")?,
                block_size: size("max_position_embeddings")?,
                n_embd,
                n_layer: size("num_hidden_layers")?,
                n_head,
                n_kv_head,
                head_size: size_or("head_dim", n_embd / n_head)?,
                hidden_size: size("intermediate_size")?,
                norm_eps: number_or("rms_norm_eps", 1e-6)?,
                rope_theta,
                activation: String::new(),
                attention_bias: flag_or("attention_bias", false)?,
                tie_embeddings: flag_or("tie_word_embeddings", false)?,
                attention_dropout: number_or("attention_dropout", 0.0)?,
                residual_dropout: 0.0,
                embedding_dropout: 0.0,
            })
        }
        "gpt2" => {
            let n_embd = size("n_embd")?;
            let n_head = size("n_head")?;
            if n_embd % n_head != 0 {
                return Err(bad(format!(
                    "`n_embd` ({n_embd}) is not a multiple of `n_head` ({n_head})"
                )));
            }
            let activation = match present("activation_function").and_then(Value::as_str).unwrap_or("gelu_new") {
                "gelu_new" | "gelu_pytorch_tanh" => "gelu_tanh",
                "gelu" => "gelu",
                "relu" => "relu",
                other => {
                    return Err(bad(format!(
                        "`activation_function` {other:?} is not one of gptbuild's (relu, gelu, gelu_new)"
                    )))
                }
            };
            if !flag_or("scale_attn_weights", true)?
                || flag_or("scale_attn_by_inverse_layer_idx", false)?
            {
                return Err(bad(
                    "attention scores scaled otherwise than by 1/√head_size (`scale_attn_weights`, \
                     `scale_attn_by_inverse_layer_idx`) are not gptbuild's"
                        .into(),
                ));
            }
            if flag_or("add_cross_attention", false)? {
                return Err(bad(
                    "`add_cross_attention` is true: a decoder-only model has none".into(),
                ));
            }
            Ok(Architecture {
                family: Family::Gpt2,
                vocab_size: size("vocab_size")?,
                block_size: size("n_positions")?,
                n_embd,
                n_layer: size("n_layer")?,
                n_head,
                n_kv_head: n_head,
                head_size: n_embd / n_head,
                hidden_size: size_or("n_inner", n_embd.saturating_mul(4))?,
                norm_eps: number_or("layer_norm_epsilon", 1e-5)?,
                rope_theta: 0.0,
                activation: activation.to_string(),
                attention_bias: true,
                tie_embeddings: flag_or("tie_word_embeddings", true)?,
                attention_dropout: number_or("attn_pdrop", 0.1)?,
                residual_dropout: number_or("resid_pdrop", 0.1)?,
                embedding_dropout: number_or("embd_pdrop", 0.1)?,
            })
        }
        "" => Err(bad(
            "`model_type` is missing: not a transformers model config".into(),
        )),
        other => Err(bad(format!(
            "`model_type` {other:?} is not a family gptbuild reads (llama, gpt2)"
        ))),
    }
}

/// What [`import`] wrote.
#[derive(Debug)]
pub struct Imported {
    pub architecture: Architecture,
    /// The spec file, the checkpoint and the tokenizer, inside `out`.
    pub spec_path: PathBuf,
    pub checkpoint_path: PathBuf,
}

/// The prefix of the base model's tensors in a family's `…ForCausalLM` names.
const BASE_PREFIXES: [&str; 2] = ["transformer.", "model."];

/// A tensor's name without the base model's prefix: the Hub's GPT-2 files name the base model's
/// tensors (`h.0.attn.c_attn.weight`), transformers' own saves the whole model's
/// (`transformer.h.0.attn.c_attn.weight`).
fn without_prefix(name: &str) -> &str {
    BASE_PREFIXES
        .iter()
        .find_map(|prefix| name.strip_prefix(prefix))
        .unwrap_or(name)
}

/// Tensors a transformers checkpoint may hold that are not weights: buffers older versions saved
/// (GPT-2's causal mask `h.N.attn.bias` and `masked_bias`, RoPE's `inv_freq`).
fn is_buffer(name: &str) -> bool {
    let name = without_prefix(name);
    name.starts_with("h.") && name.ends_with(".attn.bias")
        || name.ends_with(".attn.masked_bias")
        || name.ends_with("rotary_emb.inv_freq")
}

/// Reads the transformers directory `dir` into `out` (which must not exist yet): `spec.yaml`
/// (the model section that builds it, the tokenizer as `kind: file`), `model.safetensors` (a
/// gptbuild checkpoint) and `tokenizer.json`. `block_size` shortens the context (a Llama's
/// `max_position_embeddings` may be 128k positions, more than a CPU's memory holds masks for; a
/// GPT-2 keeps its first position vectors).
pub fn import(dir: &Path, out: &Path, block_size: Option<i64>) -> Result<Imported> {
    let bad = |path: PathBuf, message: String| Error::Import { path, message };
    let config_path = dir.join(CONFIG_FILE);
    let config_text = crate::files::read_text(&config_path).map_err(|e| {
        bad(
            config_path.clone(),
            format!("not a transformers model directory ({e})"),
        )
    })?;
    let config: Value = serde_json::from_str(&config_text)
        .map_err(|e| bad(config_path.clone(), format!("not JSON ({e})")))?;
    let mut arch = architecture_of_config(&config, &config_path)?;
    if let Some(block_size) = block_size {
        if !(1..=arch.block_size).contains(&block_size) {
            return Err(Error::Usage(format!(
                "--block-size {block_size}: the model's context is 1 to {} positions",
                arch.block_size
            )));
        }
        arch.block_size = block_size;
    }

    let tokenizer_path = dir.join(TOKENIZER_FILE);
    let tokenizer_json = crate::files::read_text(&tokenizer_path).map_err(|e| {
        bad(
            tokenizer_path.clone(),
            format!("cannot read it ({e}); save the model's fast tokenizer with it"),
        )
    })?;
    let tokenizer =
        HuggingFace::from_json(&tokenizer_json).map_err(|e| bad(tokenizer_path.clone(), e))?;
    if tokenizer.vocab_size() as i64 != arch.vocab_size {
        return Err(bad(
            tokenizer_path,
            format!(
                "has {} tokens, but config.json's vocab_size (the embedding's rows) is {}",
                tokenizer.vocab_size(),
                arch.vocab_size
            ),
        ));
    }

    let name = dir
        .canonicalize()
        .ok()
        .and_then(|d| d.file_name().map(|n| n.to_string_lossy().into_owned()))
        .unwrap_or_else(|| "imported".into());
    // The tokenizer's path absolute, so the spec works from any directory; JSON strings are YAML.
    let tokenizer_out = std::path::absolute(out.join(TOKENIZER_FILE))
        .map_err(Error::io(format!("resolving {}", out.display())))?;
    let quoted = |text: &str| serde_json::to_string(text).unwrap_or_default();
    let spec_yaml = format!(
        "name: {}\ndata:\n  tokenizer: {{kind: file, path: {}}}\n{}",
        quoted(&name),
        quoted(&tokenizer_out.to_string_lossy()),
        arch.model_yaml()
    );
    let spec = Spec::from_yaml(&spec_yaml).map_err(|e| {
        bad(
            config_path.clone(),
            format!("its sizes make no gptbuild spec: {e}"),
        )
    })?;
    // Before reading gigabytes of weights or allocating the model: does it fit?
    crate::resources::MemoryEstimate::weights(&spec.model, arch.vocab_size)
        .check(Device::Cpu)
        .map_err(|e| bad(config_path.clone(), e.to_string()))?;
    let mut weights = read_weights(dir)?;

    let var_store = VarStore::new(Device::Cpu);
    Gpt::try_new(&var_store.root(), &spec, arch.vocab_size)
        .map_err(|e| bad(config_path.clone(), e.to_string()))?;
    let variables: HashMap<String, Tensor> = var_store.variables().into_iter().collect();
    let layout = tensor_layout(&arch);
    if layout.len() != variables.len() {
        return Err(bad(
            config_path,
            format!(
                "gptbuild builds {} tensors, the family's layout names {}",
                variables.len(),
                layout.len()
            ),
        ));
    }
    for (ours, stored) in layout {
        let var = variables.get(&ours).ok_or_else(|| {
            bad(
                config_path.clone(),
                format!("gptbuild's model has no tensor `{ours}`"),
            )
        })?;
        let mut take = |theirs: &str| -> Result<(PathBuf, Tensor)> {
            let found = weights.remove(theirs);
            found
                .or_else(|| weights.remove(without_prefix(theirs)))
                .ok_or_else(|| bad(weights_path(dir), format!("tensor `{theirs}` is missing")))
        };
        let (source, value) = match stored {
            Stored::Renamed(theirs) => take(&theirs)?,
            Stored::Transposed(theirs) => {
                let (source, t) = take(&theirs)?;
                if t.dim() != 2 {
                    return Err(bad(
                        source,
                        format!("tensor `{theirs}` is {:?}, not a matrix", t.size()),
                    ));
                }
                (source, t.transpose(0, 1))
            }
            Stored::Split(parts) => {
                let mut pieces = Vec::new();
                let mut source = dir.join(WEIGHTS_FILE);
                for (theirs, rows) in &parts {
                    let (file, t) = take(theirs)?;
                    // Each part has the model's columns: only then can they be stacked.
                    let mut expected = var.size();
                    expected[0] = *rows;
                    if t.size() != expected {
                        return Err(bad(
                            file,
                            format!(
                                "tensor `{theirs}` is {:?}; config.json's sizes give {expected:?}",
                                t.size()
                            ),
                        ));
                    }
                    source = file;
                    pieces.push(t);
                }
                (source, Tensor::cat(&pieces, 0))
            }
        };
        // A shorter context than the model was trained with keeps the first positions.
        let value = match value.size().first() {
            Some(&rows) if ours == "position.weight" && rows > var.size()[0] => {
                value.narrow(0, 0, var.size()[0])
            }
            _ => value,
        };
        if value.size() != var.size() {
            return Err(bad(
                source,
                format!(
                    "tensor for `{ours}` is {:?}; config.json's sizes give {:?}",
                    value.size(),
                    var.size()
                ),
            ));
        }
        tch::no_grad(|| var.shallow_clone().copy_(&value));
    }
    let leftover: BTreeSet<String> = weights.into_keys().filter(|n| !is_buffer(n)).collect();
    // A tied model's file may carry the head too: the embedding it equals.
    if let Some(extra) = leftover
        .iter()
        .find(|n| !(arch.tie_embeddings && *n == "lm_head.weight"))
    {
        return Err(bad(
            dir.join(WEIGHTS_FILE),
            format!(
                "tensor `{extra}` is not part of a {} of this config",
                arch.family.class()
            ),
        ));
    }

    let staging = staging_dir(out)?;
    let written = (|| {
        checkpoint::save(
            &staging.join(WEIGHTS_FILE),
            &var_store,
            &spec,
            &tokenizer,
            0,
        )?;
        std::fs::write(staging.join(TOKENIZER_FILE), &tokenizer_json)
            .map_err(Error::io(format!("writing {}", staging.display())))?;
        std::fs::write(staging.join(SPEC_FILE), spec.to_yaml())
            .map_err(Error::io(format!("writing {}", staging.display())))?;
        Ok(())
    })();
    finish_staging(&staging, out, written)?;
    Ok(Imported {
        architecture: arch,
        spec_path: out.join(SPEC_FILE),
        checkpoint_path: out.join(WEIGHTS_FILE),
    })
}

/// What names the directory's weights in errors: the shards' index, else the one file.
fn weights_path(dir: &Path) -> PathBuf {
    let index = dir.join(WEIGHTS_INDEX_FILE);
    if index.exists() {
        index
    } else {
        dir.join(WEIGHTS_FILE)
    }
}

/// Every tensor of the directory's safetensors file or shards, as fp32, with the file it came from.
fn read_weights(dir: &Path) -> Result<HashMap<String, (PathBuf, Tensor)>> {
    let bad = |path: &Path, message: String| Error::Import {
        path: path.to_path_buf(),
        message,
    };
    let index_path = dir.join(WEIGHTS_INDEX_FILE);
    let files: Vec<PathBuf> = if index_path.exists() {
        let text =
            crate::files::read_text(&index_path).map_err(|e| bad(&index_path, e.to_string()))?;
        let index: Value =
            serde_json::from_str(&text).map_err(|e| bad(&index_path, format!("not JSON ({e})")))?;
        let map = index
            .get("weight_map")
            .and_then(Value::as_object)
            .ok_or_else(|| bad(&index_path, "has no `weight_map`".into()))?;
        let shards: BTreeSet<&str> = map.values().filter_map(Value::as_str).collect();
        shards
            .into_iter()
            .map(|shard| {
                let path = Path::new(shard);
                if path.components().count() != 1 {
                    return Err(bad(
                        &index_path,
                        format!("shard {shard:?} is not a file name in the directory"),
                    ));
                }
                Ok(dir.join(path))
            })
            .collect::<Result<_>>()?
    } else {
        vec![dir.join(WEIGHTS_FILE)]
    };
    let mut weights = HashMap::new();
    for file in files {
        let bytes = crate::files::read_bytes(&file)
            .map_err(|e| bad(&file, format!("cannot read the weights ({e})")))?;
        let tensors = SafeTensors::deserialize(&bytes)
            .map_err(|e| bad(&file, format!("not a whole safetensors file ({e})")))?;
        for (name, view) in tensors.tensors() {
            let kind = match view.dtype() {
                Dtype::F32 => Kind::Float,
                Dtype::F16 => Kind::Half,
                Dtype::BF16 => Kind::BFloat16,
                other => {
                    return Err(bad(
                        &file,
                        format!("tensor `{name}` is {other:?}; gptbuild reads F32, F16 and BF16"),
                    ))
                }
            };
            let shape: Vec<i64> = view.shape().iter().map(|&d| d as i64).collect();
            let tensor = Tensor::from_data_size(view.data(), &shape, kind).to_kind(Kind::Float);
            weights.insert(name, (file.clone(), tensor));
        }
    }
    Ok(weights)
}

/// A fresh directory beside `out` to write into; `out` itself must not exist.
fn staging_dir(out: &Path) -> Result<PathBuf> {
    if out.exists() {
        return Err(Error::Usage(format!(
            "{} already exists; choose another --out or remove it",
            out.display()
        )));
    }
    let name = out
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .ok_or_else(|| Error::Usage(format!("--out {} names no directory", out.display())))?;
    let staging = out.with_file_name(format!(".{name}.partial-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&staging);
    std::fs::create_dir(&staging).map_err(Error::io(format!("creating {}", staging.display())))?;
    Ok(staging)
}

/// Renames `staging` to `out` if `written` succeeded; removes it either way on failure.
fn finish_staging(staging: &Path, out: &Path, written: Result<()>) -> Result<()> {
    let renamed = written.and_then(|()| {
        std::fs::rename(staging, out).map_err(Error::io(format!(
            "renaming {} to {}",
            staging.display(),
            out.display()
        )))
    });
    if renamed.is_err() {
        let _ = std::fs::remove_dir_all(staging);
    }
    renamed
}

/// Writes `files` into a new directory `out`, whole or not at all.
fn write_directory(out: &Path, files: &[(&str, Vec<u8>)]) -> Result<()> {
    let staging = staging_dir(out)?;
    let written = files.iter().try_for_each(|(name, bytes)| {
        std::fs::write(staging.join(name), bytes).map_err(Error::io(format!(
            "writing {}",
            staging.join(name).display()
        )))
    });
    finish_staging(&staging, out, written)
}
