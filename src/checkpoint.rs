//! Checkpoints: the model's tensors in a safetensors file, named by their variable paths, with the
//! resolved spec (YAML) and the vocabulary in the file's metadata — everything needed to rebuild
//! and sample the model, readable from PyTorch with `safetensors.torch.load_file`.
//!
//! Files are written under a temporary name and renamed, so a crash never leaves half a checkpoint.

use std::borrow::Cow;
use std::collections::HashMap;
use std::path::{Path, PathBuf};

use safetensors::tensor::{Dtype, SafeTensors, View};
use tch::nn::VarStore;
use tch::{Device, Kind, Tensor};

use crate::error::{Error, Result};
use crate::model::Gpt;
use crate::spec::Spec;
use crate::vocab::Vocabulary;

/// Identifies our checkpoints among other safetensors files.
pub const FORMAT: &str = "gptbuild/1";

/// A model rebuilt from a checkpoint, with what it was trained from.
#[derive(Debug)]
pub struct LoadedModel {
    pub spec: Spec,
    pub vocab: Vocabulary,
    /// Training iterations the weights had seen.
    pub iteration: i64,
    pub var_store: VarStore,
    pub model: Gpt,
}

/// Writes every variable of `vs` plus spec, vocabulary and iteration to `path`, atomically.
pub fn save(
    path: &Path,
    vs: &VarStore,
    spec: &Spec,
    vocab: &Vocabulary,
    iteration: i64,
) -> Result<()> {
    let mut tensors: Vec<(String, HostTensor)> = vs
        .variables()
        .into_iter()
        .map(|(name, t)| (name, HostTensor::from_tensor(&t)))
        .collect();
    tensors.sort_by(|a, b| a.0.cmp(&b.0));
    let metadata = HashMap::from([
        ("format".to_string(), FORMAT.to_string()),
        ("spec".to_string(), spec.to_yaml()),
        ("vocab".to_string(), vocab.as_string()),
        ("iteration".to_string(), iteration.to_string()),
    ]);
    let bytes = safetensors::serialize(tensors, Some(metadata))
        .map_err(|e| checkpoint_error(path, format!("cannot serialise: {e}")))?;
    let partial = PathBuf::from(format!("{}.partial", path.display()));
    std::fs::write(&partial, bytes).map_err(Error::io(format!("writing {}", partial.display())))?;
    std::fs::rename(&partial, path).map_err(Error::io(format!("renaming to {}", path.display())))
}

/// Reads a checkpoint and rebuilds its model on `device`. Foreign, truncated or inconsistent files
/// are errors, never panics.
pub fn load(path: &Path, device: Device) -> Result<LoadedModel> {
    let bytes = std::fs::read(path).map_err(|e| checkpoint_error(path, e.to_string()))?;
    let bad = |message: String| checkpoint_error(path, message);
    let (_, header) = SafeTensors::read_metadata(&bytes)
        .map_err(|e| bad(format!("not a safetensors file ({e})")))?;
    let meta = header.metadata().clone().unwrap_or_default();
    if meta.get("format").map(String::as_str) != Some(FORMAT) {
        return Err(bad(format!(
            "not a gptbuild checkpoint (no `format: {FORMAT}` in its metadata)"
        )));
    }
    let field = |key: &str| {
        meta.get(key)
            .ok_or_else(|| bad(format!("metadata lacks `{key}`")))
    };
    let spec =
        Spec::from_yaml(field("spec")?).map_err(|e| bad(format!("its spec is invalid: {e}")))?;
    let vocab = Vocabulary::from_chars(field("vocab")?.chars().collect()).map_err(bad)?;
    let iteration = field("iteration")?
        .parse()
        .map_err(|_| bad("iteration is not a number".into()))?;

    let file =
        SafeTensors::deserialize(&bytes).map_err(|e| bad(format!("unreadable tensors ({e})")))?;
    let var_store = VarStore::new(device);
    let model = Gpt::new(
        &var_store.root(),
        &spec.model,
        spec.dims(vocab.len() as i64),
    );
    let variables = var_store.variables();
    if file.len() != variables.len() {
        return Err(bad(format!(
            "holds {} tensors, its spec builds {}",
            file.len(),
            variables.len()
        )));
    }
    for (name, var) in &variables {
        let view = file
            .tensor(name)
            .map_err(|_| bad(format!("tensor `{name}` is missing")))?;
        let shape: Vec<i64> = view.shape().iter().map(|&d| d as i64).collect();
        if view.dtype() != Dtype::F32 || shape != var.size() {
            return Err(bad(format!(
                "tensor `{name}` is {:?} {shape:?}, the model needs F32 {:?}",
                view.dtype(),
                var.size()
            )));
        }
        let loaded = Tensor::from_data_size(view.data(), &shape, Kind::Float);
        tch::no_grad(|| var.shallow_clone().copy_(&loaded));
    }
    Ok(LoadedModel {
        spec,
        vocab,
        iteration,
        var_store,
        model,
    })
}

fn checkpoint_error(path: &Path, message: String) -> Error {
    Error::Checkpoint {
        path: path.to_path_buf(),
        message,
    }
}

/// A tensor copied to host memory as little-endian f32 bytes, in the form safetensors writes.
struct HostTensor {
    shape: Vec<usize>,
    bytes: Vec<u8>,
}

impl HostTensor {
    fn from_tensor(t: &Tensor) -> Self {
        let host = t.to_device(Device::Cpu).to_kind(Kind::Float).contiguous();
        let shape = host.size().iter().map(|&d| d as usize).collect();
        let numel = host.numel();
        let mut values = vec![0f32; numel];
        host.copy_data(&mut values, numel);
        HostTensor {
            shape,
            bytes: values.iter().flat_map(|v| v.to_le_bytes()).collect(),
        }
    }
}

impl View for HostTensor {
    fn dtype(&self) -> Dtype {
        Dtype::F32
    }
    fn shape(&self) -> &[usize] {
        &self.shape
    }
    fn data(&self) -> Cow<'_, [u8]> {
        Cow::Borrowed(&self.bytes)
    }
    fn data_len(&self) -> usize {
        self.bytes.len()
    }
}
