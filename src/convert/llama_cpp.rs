//! llama.cpp's GGUF files of the Llama and GPT-2 families: the metadata its loader reads, the
//! tensors in its names, and the tokenizer in GGUF's own terms (`tokenizer.ggml.*`). The format
//! itself is [`gguf`](super::gguf).
//!
//! Two layouts differ from ours. llama.cpp rotates Llama's queries and keys in the interleaved
//! layout (pairs `(2i, 2i + 1)`), ours and transformers' in the rotate-half one (pairs
//! `(i, i + hs/2)`), so each head's q and k rows are permuted; and a byte-level BPE vocabulary
//! stores its tokens as GPT-2's printable stand-ins for bytes (a space is `Ġ`).

use std::collections::BTreeSet;
use std::path::Path;

use serde_json::Value as Json;
use tch::Tensor;

use crate::artifacts::checkpoint::LoadedModel;
use crate::convert::architecture::{self, Architecture, Family};
use crate::convert::gguf::{self, Metadata, TensorEntry, TensorType, Value, Q8_0_BLOCK};
use crate::data::tokenizer::StoredTokenizer;
use crate::error::{Error, Result};

/// Why a model or its tokenizer cannot go to llama.cpp: the field in the way and what it needs.
fn refusal(checkpoint: &Path, message: String) -> Error {
    Error::Export {
        path: checkpoint.to_path_buf(),
        format: "GGUF",
        message,
    }
}

/// Writes `loaded` (read from `checkpoint`) as a GGUF file `out`, its matrices in `tensor_type`
/// (norms and biases stay F32, as llama.cpp's converter keeps them). Returns the family.
pub fn export(
    loaded: &LoadedModel,
    checkpoint: &Path,
    out: &Path,
    tensor_type: TensorType,
) -> Result<Architecture> {
    let refuse = |message: String| refusal(checkpoint, message);
    let vocab_size = loaded.tokenizer.vocab_size() as i64;
    let arch =
        architecture::of_spec(&loaded.spec, vocab_size).map_err(|e| refuse(e.to_string()))?;
    if arch.family == Family::Gpt2 && arch.activation != "gelu_tanh" {
        return Err(refuse(format!(
            "model.block.feed_forward.activation: llama.cpp's GPT-2 computes GELU's tanh \
             approximation; train with activation: gelu_tanh (this model has {})",
            arch.activation
        )));
    }
    let (metadata, tensors) = contents(&arch, loaded, tensor_type).map_err(refuse)?;
    crate::files::write_whole(out, &gguf::serialize(&metadata, &tensors))?;
    Ok(arch)
}

/// The metadata and tensors of the GGUF file of `loaded`, a model of `arch`.
pub fn contents(
    arch: &Architecture,
    loaded: &LoadedModel,
    tensor_type: TensorType,
) -> std::result::Result<(Metadata, Vec<TensorEntry>), String> {
    let mut metadata = model_metadata(arch, loaded.spec.name(), tensor_type);
    metadata.extend(tokenizer_metadata(
        &loaded.tokenizer.stored(),
        loaded.tokenizer.vocab_size(),
    )?);
    Ok((metadata, tensors(arch, loaded, tensor_type)?))
}

/// `general.file_type`: what most tensors are stored as (llama.cpp's `llama_ftype`).
fn file_type(tensor_type: TensorType) -> u32 {
    match tensor_type {
        TensorType::F32 => 0,
        TensorType::F16 => 1,
        TensorType::Q8_0 => 7,
        TensorType::BF16 => 32,
    }
}

/// The general keys and the family's hyperparameters, under `general.architecture`'s name.
pub fn model_metadata(
    arch: &Architecture,
    name: &str,
    tensor_type: TensorType,
) -> Vec<(String, Value)> {
    let prefix = arch.family.model_type();
    let u32_of = |n: i64| Value::U32(n as u32);
    let mut keys = vec![
        (
            "general.architecture".to_string(),
            Value::String(prefix.to_string()),
        ),
        ("general.name".to_string(), Value::String(name.to_string())),
        (
            "general.file_type".to_string(),
            Value::U32(file_type(tensor_type)),
        ),
        (format!("{prefix}.context_length"), u32_of(arch.block_size)),
        (format!("{prefix}.embedding_length"), u32_of(arch.n_embd)),
        (format!("{prefix}.block_count"), u32_of(arch.n_layer)),
        (
            format!("{prefix}.feed_forward_length"),
            u32_of(arch.hidden_size),
        ),
        (
            format!("{prefix}.attention.head_count"),
            u32_of(arch.n_head),
        ),
    ];
    match arch.family {
        Family::Llama => keys.extend([
            (
                format!("{prefix}.attention.head_count_kv"),
                u32_of(arch.n_kv_head),
            ),
            (
                format!("{prefix}.attention.key_length"),
                u32_of(arch.head_size),
            ),
            (
                format!("{prefix}.attention.value_length"),
                u32_of(arch.head_size),
            ),
            (
                format!("{prefix}.rope.dimension_count"),
                u32_of(arch.head_size),
            ),
            (
                format!("{prefix}.rope.freq_base"),
                Value::F32(arch.rope_theta as f32),
            ),
            (
                format!("{prefix}.attention.layer_norm_rms_epsilon"),
                Value::F32(arch.norm_eps as f32),
            ),
            (format!("{prefix}.vocab_size"), u32_of(arch.vocab_size)),
        ]),
        Family::Gpt2 => keys.push((
            format!("{prefix}.attention.layer_norm_epsilon"),
            Value::F32(arch.norm_eps as f32),
        )),
    }
    keys
}

/// GPT-2's printable stand-in for each byte (`bytes_to_unicode` in its encoder): printable
/// Latin-1 bytes stand for themselves, the others for the code points from U+0100 on, in order.
pub fn byte_stand_in(byte: u8) -> char {
    let printable = |b: u8| (b'!'..=b'~').contains(&b) || (0xA1..=0xAC).contains(&b) || b >= 0xAE;
    if printable(byte) {
        return byte as char;
    }
    let rank = (0..byte).filter(|&b| !printable(b)).count() as u32;
    char::from_u32(256 + rank).unwrap_or('\u{FFFD}')
}

/// The `tokenizer.ggml.*` keys of a tokenizer: byte-level BPE (GPT-2's: tokens as byte stand-ins,
/// merges in rank order) for a BPE `tokenizer.json` and for the character vocabulary (each
/// character its own token, no merges: every character must be one byte, since llama.cpp's BPE
/// reads text as bytes).
pub fn tokenizer_metadata(
    stored: &StoredTokenizer,
    vocab_size: usize,
) -> std::result::Result<Metadata, String> {
    let GgufVocabulary {
        tokens,
        types,
        merges,
        pre,
        end_of_text,
    } = match stored {
        StoredTokenizer::Characters(chars) => {
            let wide: BTreeSet<char> = chars.chars().filter(|c| c.len_utf8() > 1).collect();
            if !wide.is_empty() {
                let shown: String = wide.iter().take(12).collect();
                return Err(format!(
                    "data.tokenizer: llama.cpp's tokenizer reads text as bytes, and these \
                     characters of the vocabulary are several bytes each, which a character \
                     vocabulary has no tokens for: {shown:?}; train with `kind: bpe` to export"
                ));
            }
            let tokens: Vec<String> = chars
                .bytes()
                .map(|b| byte_stand_in(b).to_string())
                .collect();
            GgufVocabulary {
                types: vec![1; tokens.len()],
                tokens,
                merges: Vec::new(),
                pre: "default",
                end_of_text: None,
            }
        }
        StoredTokenizer::HuggingFace(json) => {
            let parsed: Json =
                serde_json::from_str(json).map_err(|e| format!("data.tokenizer: {e}"))?;
            byte_level_bpe(&parsed, vocab_size)?
        }
    };
    let mut keys = vec![
        (
            "tokenizer.ggml.model".to_string(),
            Value::String("gpt2".into()),
        ),
        ("tokenizer.ggml.pre".to_string(), Value::String(pre.into())),
        (
            "tokenizer.ggml.tokens".to_string(),
            Value::Array(tokens.into_iter().map(Value::String).collect()),
        ),
        (
            "tokenizer.ggml.token_type".to_string(),
            Value::Array(types.into_iter().map(Value::I32).collect()),
        ),
        (
            "tokenizer.ggml.merges".to_string(),
            Value::Array(merges.into_iter().map(Value::String).collect()),
        ),
    ];
    // Without these keys llama.cpp takes token 11 for both: name the vocabulary's own, if any.
    if let Some(id) = end_of_text {
        for key in ["tokenizer.ggml.eos_token_id", "tokenizer.ggml.bos_token_id"] {
            keys.push((key.to_string(), Value::U32(id as u32)));
        }
    }
    keys.push((
        "tokenizer.ggml.add_bos_token".to_string(),
        Value::Bool(false),
    ));
    keys.push((
        "tokenizer.ggml.add_eos_token".to_string(),
        Value::Bool(false),
    ));
    Ok(keys)
}

/// A vocabulary in GGUF's terms: tokens by id, their types, merges in rank order, and the
/// pre-tokenizer llama.cpp splits text with first.
struct GgufVocabulary {
    tokens: Vec<String>,
    types: Vec<i32>,
    merges: Vec<String>,
    pre: &'static str,
    /// The special token generation ends at (GPT-2's `<|endoftext|>`), if the vocabulary has one.
    end_of_text: Option<u64>,
}

/// The vocabulary of a byte-level BPE `tokenizer.json`.
fn byte_level_bpe(
    tokenizer: &Json,
    vocab_size: usize,
) -> std::result::Result<GgufVocabulary, String> {
    let model = &tokenizer["model"];
    // llama.cpp's "gpt-2" pre-tokenizer is GPT-2's regex, then bytes as printable stand-ins:
    // exactly a lone ByteLevel step with its regex and no prefix space, and no normaliser.
    let pre = &tokenizer["pre_tokenizer"];
    let gpt2_byte_level = pre["type"] == "ByteLevel"
        && pre["use_regex"].as_bool().unwrap_or(true)
        && !pre["add_prefix_space"].as_bool().unwrap_or(false)
        && tokenizer["normalizer"].is_null();
    if model["type"] != "BPE" || !gpt2_byte_level {
        return Err(format!(
            "data.tokenizer: llama.cpp reads GPT-2's byte-level BPE (a lone ByteLevel \
             pre-tokenizer with its regex, no prefix space, no normaliser) and single-byte \
             characters; this tokenizer.json is a {} model with a {} pre-tokenizer{}",
            model["type"].as_str().unwrap_or("?"),
            pre["type"].as_str().unwrap_or("missing"),
            if tokenizer["normalizer"].is_null() {
                ""
            } else {
                " and a normaliser"
            }
        ));
    }
    let vocab = model["vocab"]
        .as_object()
        .ok_or("data.tokenizer: the BPE model has no vocab")?;
    let mut tokens = vec![None; vocab_size];
    let mut types = vec![1i32; vocab_size];
    // Token types: 1 normal, 3 control (special tokens), 4 user-defined (added, kept whole).
    let mut place = |token: &str, id: Option<u64>, kind: i32| -> std::result::Result<(), String> {
        let id = id.ok_or(format!("data.tokenizer: token {token:?} has no id"))?;
        let slot = usize::try_from(id)
            .ok()
            .filter(|&i| i < vocab_size)
            .ok_or(format!(
            "data.tokenizer: token {token:?} has id {id}, beyond the model's {vocab_size} tokens"
        ))?;
        tokens[slot] = Some(token.to_string());
        types[slot] = kind;
        Ok(())
    };
    for (token, id) in vocab {
        place(token, id.as_u64(), 1)?;
    }
    let mut end_of_text = None;
    for added in tokenizer["added_tokens"].as_array().into_iter().flatten() {
        let content = added["content"].as_str().unwrap_or_default();
        let special = added["special"].as_bool().unwrap_or(false);
        place(content, added["id"].as_u64(), if special { 3 } else { 4 })?;
        if special && end_of_text.is_none() {
            end_of_text = added["id"].as_u64();
        }
    }
    let tokens = tokens
        .into_iter()
        .enumerate()
        .map(|(id, t)| t.ok_or(format!("data.tokenizer: no token has id {id}")))
        .collect::<std::result::Result<Vec<_>, _>>()?;
    // Merges are "a b" strings (older files) or ["a", "b"] pairs (newer), in rank order.
    let merges = model["merges"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|merge| match merge {
            Json::String(pair) => Ok(pair.clone()),
            Json::Array(pair) if pair.len() == 2 => Ok(format!(
                "{} {}",
                pair[0].as_str().unwrap_or_default(),
                pair[1].as_str().unwrap_or_default()
            )),
            other => Err(format!("data.tokenizer: a merge is {other}")),
        })
        .collect::<std::result::Result<Vec<_>, _>>()?;
    Ok(GgufVocabulary {
        tokens,
        types,
        merges,
        pre: "gpt-2",
        end_of_text,
    })
}

/// Each tensor of the model in llama.cpp's names and layouts, encoded.
pub fn tensors(
    arch: &Architecture,
    loaded: &LoadedModel,
    tensor_type: TensorType,
) -> std::result::Result<Vec<TensorEntry>, String> {
    let variables: std::collections::HashMap<String, Tensor> =
        loaded.var_store.variables().into_iter().collect();
    let mut entries = Vec::new();
    for (ours, theirs, transform) in tensor_names(arch) {
        let tensor = variables
            .get(&ours)
            .ok_or(format!("the model has no tensor `{ours}`"))?;
        let tensor = match transform {
            Transform::Same => tensor.shallow_clone(),
            Transform::Rows(start, count) => tensor.narrow(0, start, count),
            Transform::RopeRows(start, count) => {
                interleaved_rope_rows(&tensor.narrow(0, start, count), arch.head_size)
            }
        };
        entries.push(entry(theirs, &tensor, tensor_type));
    }
    Ok(entries)
}

/// The rows of each head of a query or key matrix (or bias) reordered from the rotate-half layout
/// (pairs `(i, i + hs/2)`) to the interleaved one (pairs `(2i, 2i + 1)`) that llama.cpp rotates.
pub fn interleaved_rope_rows(t: &Tensor, head_size: i64) -> Tensor {
    let size = t.size();
    let heads = size[0] / head_size;
    let mut shape = vec![heads, 2, head_size / 2];
    shape.extend(&size[1..]);
    t.reshape(&shape).transpose(1, 2).reshape(&size)
}

/// A tensor in the type asked for where llama.cpp's converter would store it so: matrices (and
/// Q8_0 only where rows are whole blocks, else F16); vectors (norms, biases) in F32.
fn entry(name: String, t: &Tensor, asked: TensorType) -> TensorEntry {
    let tensor_type = stored_type(t, asked);
    TensorEntry {
        name,
        shape: t.size(),
        tensor_type,
        bytes: tensor_type.encode(t),
    }
}

/// The type a tensor of `t`'s shape is stored in when `asked` is: vectors (norms, biases) F32,
/// matrices `asked`, except Q8_0 for rows that are not whole blocks, which are F16.
pub fn stored_type(t: &Tensor, asked: TensorType) -> TensorType {
    match (t.dim(), asked) {
        (1, _) => TensorType::F32,
        (_, TensorType::Q8_0) if t.size()[t.dim() - 1] % Q8_0_BLOCK != 0 => TensorType::F16,
        (_, asked) => asked,
    }
}

/// What an export does to one of our tensors before writing it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transform {
    Same,
    /// Rows `start..start + count` (a part of our `qkv` matrix).
    Rows(i64, i64),
    /// Those rows, then permuted for llama.cpp's RoPE ([`interleaved_rope_rows`]).
    RopeRows(i64, i64),
}

/// (our name, llama.cpp's name, transform) for every tensor of a model of `arch`.
pub fn tensor_names(arch: &Architecture) -> Vec<(String, String, Transform)> {
    let mut names = Vec::new();
    let mut same = |ours: String, theirs: String| names.push((ours, theirs, Transform::Same));
    same("token_embedding.weight".into(), "token_embd.weight".into());
    if arch.family == Family::Gpt2 {
        same("position.weight".into(), "position_embd.weight".into());
    }
    let params: &[&str] = if arch.attention_bias {
        &["weight", "bias"]
    } else {
        &["weight"]
    };
    let (q, kv) = (
        arch.n_head * arch.head_size,
        arch.n_kv_head * arch.head_size,
    );
    let mut layers = Vec::new();
    for i in 0..arch.n_layer {
        let (ours, theirs) = (format!("blocks.{i}"), format!("blk.{i}"));
        for param in params {
            let qkv = format!("{ours}.attn.qkv.{param}");
            match arch.family {
                Family::Llama => {
                    layers.push((
                        qkv.clone(),
                        format!("{theirs}.attn_q.{param}"),
                        Transform::RopeRows(0, q),
                    ));
                    layers.push((
                        qkv.clone(),
                        format!("{theirs}.attn_k.{param}"),
                        Transform::RopeRows(q, kv),
                    ));
                    layers.push((
                        qkv,
                        format!("{theirs}.attn_v.{param}"),
                        Transform::Rows(q + kv, kv),
                    ));
                }
                Family::Gpt2 => {
                    layers.push((qkv, format!("{theirs}.attn_qkv.{param}"), Transform::Same))
                }
            }
            layers.push((
                format!("{ours}.attn.proj.{param}"),
                format!("{theirs}.attn_output.{param}"),
                Transform::Same,
            ));
        }
        let norm_params: &[&str] = match arch.family {
            Family::Llama => &["weight"],
            Family::Gpt2 => &["weight", "bias"],
        };
        for param in norm_params {
            for (mine, hers) in [("ln1", "attn_norm"), ("ln2", "ffn_norm")] {
                layers.push((
                    format!("{ours}.{mine}.{param}"),
                    format!("{theirs}.{hers}.{param}"),
                    Transform::Same,
                ));
            }
        }
        let feed_forward: &[(&str, &str)] = match arch.family {
            Family::Llama => &[
                ("gate.weight", "ffn_gate.weight"),
                ("up.weight", "ffn_up.weight"),
                ("down.weight", "ffn_down.weight"),
            ],
            Family::Gpt2 => &[
                ("expand.weight", "ffn_up.weight"),
                ("expand.bias", "ffn_up.bias"),
                ("contract.weight", "ffn_down.weight"),
                ("contract.bias", "ffn_down.bias"),
            ],
        };
        for (mine, hers) in feed_forward {
            layers.push((
                format!("{ours}.ffwd.{mine}"),
                format!("{theirs}.{hers}"),
                Transform::Same,
            ));
        }
    }
    names.extend(layers);
    let final_params: &[&str] = match arch.family {
        Family::Llama => &["weight"],
        Family::Gpt2 => &["weight", "bias"],
    };
    for param in final_params {
        names.push((
            format!("final_norm.{param}"),
            format!("output_norm.{param}"),
            Transform::Same,
        ));
    }
    if !arch.tie_embeddings {
        names.push((
            "lm_head.weight".into(),
            "output.weight".into(),
            Transform::Same,
        ));
    }
    names
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A byte-level BPE `tokenizer.json` of `vocab` (token → id) with `extra` JSON fields.
    fn bpe_json(vocab: &str, added: &str, pre: &str, normalizer: &str) -> StoredTokenizer {
        StoredTokenizer::HuggingFace(format!(
            r#"{{"normalizer": {normalizer}, "pre_tokenizer": {pre}, "added_tokens": [{added}],
                "model": {{"type": "BPE", "vocab": {{{vocab}}}, "merges": ["a b"]}}}}"#
        ))
    }

    const BYTE_LEVEL: &str =
        r#"{"type": "ByteLevel", "add_prefix_space": false, "use_regex": true}"#;

    fn keys(metadata: &Metadata) -> Vec<&str> {
        metadata.iter().map(|(k, _)| k.as_str()).collect()
    }

    #[test]
    fn a_special_end_of_text_token_is_named_and_added_tokens_keep_their_types() {
        let stored = bpe_json(
            r#""a": 0, "b": 1, "ab": 2"#,
            r#"{"id": 3, "content": "<|endoftext|>", "special": true},
               {"id": 4, "content": "<user>", "special": false}"#,
            BYTE_LEVEL,
            "null",
        );
        let metadata = tokenizer_metadata(&stored, 5).unwrap();
        let value = |key: &str| {
            metadata
                .iter()
                .find(|(k, _)| k == key)
                .map(|(_, v)| v.clone())
        };
        assert_eq!(value("tokenizer.ggml.eos_token_id"), Some(Value::U32(3)));
        assert_eq!(
            value("tokenizer.ggml.token_type"),
            Some(Value::Array([1, 1, 1, 3, 4].map(Value::I32).to_vec()))
        );
        // The character vocabulary has no such token: llama.cpp's default stands.
        let chars = tokenizer_metadata(&StoredTokenizer::Characters("\n ab".into()), 4).unwrap();
        assert!(!keys(&chars).contains(&"tokenizer.ggml.eos_token_id"));
    }

    #[test]
    fn tokenizers_llama_cpp_would_split_otherwise_are_refused() {
        let vocab = r#""a": 0, "b": 1"#;
        for (pre, normalizer, says) in [
            (
                r#"{"type": "Metaspace"}"#,
                "null",
                "Metaspace pre-tokenizer",
            ),
            (
                r#"{"type": "ByteLevel", "add_prefix_space": true}"#,
                "null",
                "no prefix space",
            ),
            (BYTE_LEVEL, r#"{"type": "NFC"}"#, "and a normaliser"),
        ] {
            let error = tokenizer_metadata(&bpe_json(vocab, "", pre, normalizer), 2).unwrap_err();
            assert!(error.contains(says), "{error}");
        }
        let beyond = bpe_json(
            vocab,
            r#"{"id": 4000000000, "content": "x", "special": true}"#,
            BYTE_LEVEL,
            "null",
        );
        let error = tokenizer_metadata(&beyond, 2).unwrap_err();
        assert!(error.contains("beyond the model's 2 tokens"), "{error}");
    }
}
