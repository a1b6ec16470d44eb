//! Checkpoints: the model's tensors in a safetensors file, named by their variable paths, with the
//! resolved spec (YAML) and the tokenizer (the characters, or a `tokenizer.json`) in the file's metadata — everything needed to rebuild
//! and sample the model, readable from PyTorch with `safetensors.torch.load_file`.
//!
//! Beside it, `training.safetensors` holds what resuming needs besides the weights: the optimizer's
//! moments, the step counter and the batch sampler's state.
//!
//! Files are written under a temporary name and renamed, so a crash never leaves half a checkpoint;
//! a run's weights and training state are written as one ([`save_resumable`]), so a failure
//! between the two (a full disk) never leaves a pair that does not match.

use std::borrow::Cow;
use std::collections::HashMap;
use std::path::Path;

use safetensors::tensor::{Dtype, SafeTensors, View};
use tch::nn::VarStore;
use tch::{Device, Kind, Tensor};

use crate::data::tokenizer::{StoredTokenizer, Tokenizer};
use crate::error::{Error, Result};
use crate::files::{write_all_whole, write_whole};
use crate::model::Gpt;
use crate::spec::Spec;
use crate::train::TrainingState;

/// Identifies our checkpoints among other safetensors files.
pub const FORMAT: &str = "gptbuild/1";

/// Identifies a training-state file.
pub const TRAINING_FORMAT: &str = "gptbuild-training/1";

/// A model rebuilt from a checkpoint, with what it was trained from.
#[derive(Debug)]
pub struct LoadedModel {
    pub spec: Spec,
    pub tokenizer: Box<dyn Tokenizer>,
    /// Training iterations the weights had seen.
    pub iteration: i64,
    pub var_store: VarStore,
    pub model: Gpt,
}

/// Metadata keys of the tokenizer: the character vocabulary (every checkpoint before other
/// tokenizers existed has it), or a Hugging Face `tokenizer.json`.
const VOCAB_KEY: &str = "vocab";
const TOKENIZER_KEY: &str = "tokenizer";

/// Writes every variable of `vs` plus spec, tokenizer and iteration to `path`, atomically.
pub fn save(
    path: &Path,
    vs: &VarStore,
    spec: &Spec,
    tokenizer: &dyn Tokenizer,
    iteration: i64,
) -> Result<()> {
    let bytes = serialize_model(path, vs, spec, tokenizer, iteration)?;
    write_whole(path, &bytes)
}

/// Writes a resumable checkpoint: the weights (as [`save`]) to `model_path` and the training state
/// (the optimizer's moments, the step, the batch sampler's state) to `state_path`, as one: both are written before either replaces
/// its previous version, so a failure (a full disk) leaves the previous pair whole and matching.
pub fn save_resumable(
    (model_path, state_path): (&Path, &Path),
    vs: &VarStore,
    spec: &Spec,
    tokenizer: &dyn Tokenizer,
    state: &TrainingState,
) -> Result<()> {
    let model = serialize_model(model_path, vs, spec, tokenizer, state.step)?;
    let training = serialize_training_state(state_path, state)?;
    // The state first: a resumed run checks that the two files agree.
    write_all_whole(&[(state_path, &training), (model_path, &model)])
}

/// The bytes of a checkpoint of `vs` (see [`save`]); `path` names it in errors.
fn serialize_model(
    path: &Path,
    vs: &VarStore,
    spec: &Spec,
    tokenizer: &dyn Tokenizer,
    iteration: i64,
) -> Result<Vec<u8>> {
    let mut tensors: Vec<(String, HostTensor)> = vs
        .variables()
        .into_iter()
        .map(|(name, t)| (name, HostTensor::from_tensor(&t)))
        .collect();
    tensors.sort_by(|a, b| a.0.cmp(&b.0));
    let stored = match tokenizer.stored() {
        StoredTokenizer::Characters(chars) => (VOCAB_KEY, chars),
        StoredTokenizer::HuggingFace(json) => (TOKENIZER_KEY, json),
    };
    let metadata = HashMap::from([
        ("format".to_string(), FORMAT.to_string()),
        ("spec".to_string(), spec.to_yaml()),
        (stored.0.to_string(), stored.1),
        ("iteration".to_string(), iteration.to_string()),
    ]);
    serialize(path, tensors, metadata)
}

/// The bytes of a training-state file ([`load_training_state`] reads it); `path` names it in
/// errors.
fn serialize_training_state(path: &Path, state: &TrainingState) -> Result<Vec<u8>> {
    let tensors = vec![
        (
            "exp_avg".to_string(),
            HostTensor::from_tensor(&state.exp_avg),
        ),
        (
            "exp_avg_sq".to_string(),
            HostTensor::from_tensor(&state.exp_avg_sq),
        ),
    ];
    let last_evaluation = state
        .last_evaluation
        .map(|i| i.to_string())
        .unwrap_or_default();
    let metadata = HashMap::from([
        ("format".to_string(), TRAINING_FORMAT.to_string()),
        ("step".to_string(), state.step.to_string()),
        ("batch_rng".to_string(), state.batch_rng.to_string()),
        ("last_evaluation".to_string(), last_evaluation),
    ]);
    serialize(path, tensors, metadata)
}

/// Reads a [`TrainingState`] onto `device`. Foreign or damaged files are errors, never panics.
pub fn load_training_state(path: &Path, device: Device) -> Result<TrainingState> {
    let (bytes, meta) = read_with_format(path, TRAINING_FORMAT, "a gptbuild training state")?;
    let bad = |message: String| checkpoint_error(path, message);
    let number = |key: &str| -> Result<&str> {
        meta.get(key)
            .map(String::as_str)
            .ok_or_else(|| bad(format!("metadata lacks `{key}`")))
    };
    let step = number("step")?
        .parse()
        .map_err(|_| bad("step is not a number".into()))?;
    let batch_rng = number("batch_rng")?
        .parse()
        .map_err(|_| bad("batch_rng is not a number".into()))?;
    let last_evaluation = match number("last_evaluation")? {
        "" => None,
        text => Some(
            text.parse()
                .map_err(|_| bad("last_evaluation is not a number".into()))?,
        ),
    };
    let file =
        SafeTensors::deserialize(&bytes).map_err(|e| bad(format!("unreadable tensors ({e})")))?;
    let moment = |name: &str| -> Result<Tensor> {
        let view = file
            .tensor(name)
            .map_err(|_| bad(format!("tensor `{name}` is missing")))?;
        if view.dtype() != Dtype::F32 || view.shape().len() != 1 {
            return Err(bad(format!("tensor `{name}` is not a flat F32 vector")));
        }
        let shape = [view.shape()[0] as i64];
        Ok(Tensor::from_data_size(view.data(), &shape, Kind::Float).to_device(device))
    };
    Ok(TrainingState {
        exp_avg: moment("exp_avg")?,
        exp_avg_sq: moment("exp_avg_sq")?,
        step,
        batch_rng,
        last_evaluation,
    })
}

/// Reads a safetensors file whose metadata says `format`: its bytes and its metadata.
fn read_with_format(
    path: &Path,
    format: &str,
    what: &str,
) -> Result<(Vec<u8>, HashMap<String, String>)> {
    let bytes =
        crate::files::read_bytes(path).map_err(|e| checkpoint_error(path, e.to_string()))?;
    let (_, header) = SafeTensors::read_metadata(&bytes)
        .map_err(|e| checkpoint_error(path, format!("not a safetensors file ({e})")))?;
    let meta = header.metadata().clone().unwrap_or_default();
    if meta.get("format").map(String::as_str) != Some(format) {
        return Err(checkpoint_error(
            path,
            format!("not {what} (no `format: {format}` in its metadata)"),
        ));
    }
    Ok((bytes, meta))
}

/// Serialises tensors and metadata as a safetensors file; `path` names it in errors.
pub(crate) fn serialize(
    path: &Path,
    tensors: Vec<(String, HostTensor)>,
    metadata: HashMap<String, String>,
) -> Result<Vec<u8>> {
    safetensors::serialize(tensors, Some(metadata))
        .map_err(|e| checkpoint_error(path, format!("cannot serialise: {e}")))
}

/// Fails unless `checkpoint` holds the model `spec` describes (same resolved model section).
pub fn ensure_same_model(checkpoint: &Path, spec: &Spec, trained: &Spec) -> Result<()> {
    if serde_norway::to_string(&spec.model).ok() == serde_norway::to_string(&trained.model).ok() {
        return Ok(());
    }
    Err(checkpoint_error(
        checkpoint,
        format!(
            "holds a different model than spec {} describes (its model section differs from \
             the one this checkpoint was trained with)",
            spec.name()
        ),
    ))
}

/// The model section's fields that may change when training starts from a checkpoint: the
/// dropouts, the initialisation (the checkpoint replaces it) and whether attention is fused (the
/// same function, computed another way).
const TRAINING_KNOBS: [&str; 6] = [
    "dropout",
    "attention_dropout",
    "residual_dropout",
    "embedding_dropout",
    "init",
    "fused",
];

/// The model section as YAML without [`TRAINING_KNOBS`]: what must equal for weights to carry over.
fn architecture_yaml(spec: &Spec) -> String {
    fn strip(value: &mut serde_norway::Value) {
        match value {
            serde_norway::Value::Mapping(map) => {
                for knob in TRAINING_KNOBS {
                    map.remove(knob);
                }
                map.values_mut().for_each(strip);
            }
            serde_norway::Value::Sequence(items) => items.iter_mut().for_each(strip),
            _ => {}
        }
    }
    let mut model = serde_norway::to_value(&spec.model).unwrap_or(serde_norway::Value::Null);
    strip(&mut model);
    serde_norway::to_string(&model).unwrap_or_default()
}

/// Copies the weights of the checkpoint at `path` into `vs`, the model of `spec` for
/// `tokenizer`: fine-tuning's start (`training.init_from`). The checkpoint must hold the same
/// architecture (up to the dropouts, `init` and `fused`) and the same tokenizer; the error names the first
/// field that differs.
pub fn init_from(path: &Path, vs: &VarStore, spec: &Spec, tokenizer: &dyn Tokenizer) -> Result<()> {
    // Read on the CPU: copying into `vs` moves the weights to its device, one model's worth.
    let loaded = load(path, Device::Cpu)?;
    let bad = |message: String| checkpoint_error(path, message);
    let (ours, theirs) = (architecture_yaml(spec), architecture_yaml(&loaded.spec));
    if let Some(difference) = crate::train::replicas::first_difference(&theirs, &ours) {
        return Err(bad(format!(
            "training.init_from: the checkpoint's model has model.{} = {}, this spec has {}; \
             start from the model section it was trained (or imported) with",
            difference.field, difference.first, difference.here
        )));
    }
    if loaded.tokenizer.stored() != tokenizer.stored() {
        return Err(bad(
            "training.init_from: the checkpoint's tokenizer is not the one data.tokenizer makes; \
             use the tokenizer it was trained with (an imported model's: `kind: file` with its \
             tokenizer.json)"
                .into(),
        ));
    }
    let source: HashMap<String, Tensor> = loaded.var_store.variables().into_iter().collect();
    for (name, var) in vs.variables() {
        let weights = source
            .get(&name)
            .ok_or_else(|| bad(format!("tensor `{name}` is missing")))?;
        tch::no_grad(|| var.shallow_clone().copy_(weights));
    }
    Ok(())
}

/// Reads a checkpoint and rebuilds its model on `device`. Foreign, truncated or inconsistent files
/// are errors, never panics.
pub fn load(path: &Path, device: Device) -> Result<LoadedModel> {
    if device.is_cuda() {
        crate::device::load_cuda_backend();
    }
    let (bytes, meta) = read_with_format(path, FORMAT, "a gptbuild checkpoint")?;
    let bad = |message: String| checkpoint_error(path, message);
    let field = |key: &str| {
        meta.get(key)
            .ok_or_else(|| bad(format!("metadata lacks `{key}`")))
    };
    let spec =
        Spec::from_yaml(field("spec")?).map_err(|e| bad(format!("its spec is invalid: {e}")))?;
    let stored = match meta.get(TOKENIZER_KEY) {
        Some(json) => StoredTokenizer::HuggingFace(json.clone()),
        None => StoredTokenizer::Characters(field(VOCAB_KEY)?.clone()),
    };
    let tokenizer = stored
        .rebuild()
        .map_err(|e| bad(format!("its tokenizer: {e}")))?;
    let iteration = field("iteration")?
        .parse()
        .map_err(|_| bad("iteration is not a number".into()))?;

    let file =
        SafeTensors::deserialize(&bytes).map_err(|e| bad(format!("unreadable tensors ({e})")))?;
    let var_store = VarStore::new(device);
    let model = Gpt::try_new(&var_store.root(), &spec, tokenizer.vocab_size() as i64)
        .map_err(|e| bad(format!("its spec: {e}")))?;
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
        tokenizer,
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
pub(crate) struct HostTensor {
    shape: Vec<usize>,
    bytes: Vec<u8>,
}

impl HostTensor {
    pub(crate) fn from_tensor(t: &Tensor) -> Self {
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
