//! The spec: *what* to build and how to train it, as written in YAML. It is the single source of
//! truth — parsed strictly (unknown keys are errors), resolved (every default and derived size
//! written out) and validated before anything is built, then stored with every run and checkpoint.

pub mod schedule;
pub mod schema;

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result, SpecError};
use crate::layers::block::BlockSpec;
use crate::layers::init::InitScheme;
use crate::layers::position::learned::Learned;
use crate::layers::precision::Precision;
use crate::layers::{require_size, Dims, NormKind, PositionKind};
use crate::spec::schedule::ScheduleSpec;

/// Where bare spec names (`task06.yaml`, `task06`) are looked up.
pub const ARCHITECTURES_DIR: &str = "architectures";

#[derive(Debug, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Spec {
    /// Names the run directory `runs/<name>/`; defaults to the file's stem.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default)]
    pub data: DataSpec,
    pub model: ModelSpec,
    #[serde(default)]
    pub training: TrainingSpec,
    #[serde(default)]
    pub sampling: SamplingSpec,
}

#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DataSpec {
    /// The corpus; `--data` and `GPTBUILD_DATA` take precedence.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<PathBuf>,
    /// The first `train_fraction` of the tokens train, the rest validate.
    #[serde(default = "default_train_fraction")]
    pub train_fraction: f64,
}

#[derive(Debug, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ModelSpec {
    /// Longest context, in characters.
    pub block_size: i64,
    /// Width of the residual stream.
    pub n_embd: i64,
    /// Dropout probability (Srivastava et al. 2014) at every site unless a site sets its own:
    /// `attention_dropout` and `residual_dropout` default to it.
    #[serde(default)]
    pub dropout: f64,
    /// Dropout on the attention weights (which tokens a token listens to).
    #[serde(default)]
    pub attention_dropout: Option<f64>,
    /// Dropout on each sub-layer's output, before it joins the residual stream.
    #[serde(default)]
    pub residual_dropout: Option<f64>,
    /// Dropout on the summed token and position embeddings (GPT-2); 0 by default, as in the course.
    #[serde(default)]
    pub embedding_dropout: f64,
    /// Initialisation: `pytorch` (the course) or `gpt2` (N(0, 0.02), residual projections scaled
    /// by 1/√(2·n_layer)).
    #[serde(default)]
    pub init: InitScheme,
    #[serde(default = "default_position")]
    pub position: Box<dyn PositionKind>,
    /// How many copies of `block` to stack (default 1); with `blocks`, their number.
    #[serde(default)]
    pub n_layer: Option<i64>,
    /// The block every layer of the stack copies.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub block: Option<BlockSpec>,
    /// Or an explicit stack of blocks that may differ from one another, bottom first.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub blocks: Option<Vec<BlockSpec>>,
    /// A normalisation after the last block, before the language-model head.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub final_norm: Option<Box<dyn NormKind>>,
    /// Use the token embedding matrix as the language-model head's weights too (Press & Wolf
    /// 2016, arXiv 1608.05859): one `[vocab, C]` matrix reads characters in and writes them out.
    #[serde(default)]
    pub tie_embeddings: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TrainingSpec {
    #[serde(default = "default_batch_size")]
    pub batch_size: i64,
    #[serde(default = "default_max_iters")]
    pub max_iters: i64,
    /// Evaluate at iteration 0, every `eval_interval` iterations and at the last one.
    #[serde(default = "default_eval_interval")]
    pub eval_interval: i64,
    /// Batches per split averaged by each evaluation.
    #[serde(default = "default_eval_iters")]
    pub eval_iters: i64,
    /// How evaluations measure the validation loss: `batches` (`eval_iters` random batches, as
    /// the course; about ±0.01 of noise at 100 batches of 12) or `whole_split` (every character
    /// once, as `gptbuild evaluate` does: exact, so the best checkpoint is chosen by its true
    /// loss rather than by a lucky draw). The training loss is always estimated from batches.
    #[serde(default)]
    pub val_eval: ValEval,
    #[serde(default = "default_learning_rate")]
    pub learning_rate: f64,
    /// Warm-up and decay of the learning rate; constant by default, as in the course.
    #[serde(default)]
    pub schedule: ScheduleSpec,
    #[serde(default)]
    pub adamw: AdamWSpec,
    /// Rescale each step's gradient to at most this global L2 norm (Pascanu et al. 2013,
    /// arXiv 1211.5063); none by default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub grad_clip: Option<f64>,
    /// Stop after this many minutes of wall time (with a final evaluation), even before
    /// `max_iters`; at most ten years.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_minutes: Option<f64>,
    /// Also keep the checkpoint with the lowest validation loss (`best.safetensors`): these
    /// models overfit Tiny Shakespeare after a while, so the best is not always the last.
    #[serde(default = "default_keep_best")]
    pub keep_best: bool,
    /// Seeds initialisation, dropout and batch sampling.
    #[serde(default = "default_seed")]
    pub seed: u64,
    /// libtorch intra-op threads; 0 keeps libtorch's default (one per core). At most 4 per
    /// available core of the machine that runs it, checked when training, evaluation or a
    /// benchmark starts.
    #[serde(default)]
    pub threads: i64,
    #[serde(default)]
    pub device: DeviceSpec,
    /// `fp32`, or `bf16` mixed precision: matrix products in bf16, weights, optimizer state,
    /// norms, softmax and loss in fp32.
    #[serde(default)]
    pub precision: Precision,
}

/// AdamW (Loshchilov & Hutter 2017, arXiv 1711.05101); defaults are PyTorch's.
#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AdamWSpec {
    #[serde(default = "default_beta1")]
    pub beta1: f64,
    #[serde(default = "default_beta2")]
    pub beta2: f64,
    #[serde(default = "default_adam_eps")]
    pub eps: f64,
    #[serde(default = "default_weight_decay")]
    pub weight_decay: f64,
    /// Which parameters decay: `all` (PyTorch's AdamW, the course) or only `matrices` (weights
    /// of linear layers and embeddings, not biases and norm gains; GPT-2/nanoGPT practice).
    #[serde(default)]
    pub weight_decay_on: DecayTarget,
}

/// `training.val_eval`: how the validation loss of an evaluation is measured.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum ValEval {
    /// The mean over `eval_iters` random batches.
    #[default]
    Batches,
    /// Every character of the split once, in back-to-back windows.
    WholeSplit,
}

/// The parameters weight decay applies to.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum DecayTarget {
    #[default]
    All,
    Matrices,
}

#[derive(
    Debug,
    Clone,
    Copy,
    Default,
    PartialEq,
    Eq,
    Serialize,
    Deserialize,
    schemars::JsonSchema,
    clap::ValueEnum,
)]
#[serde(rename_all = "lowercase")]
pub enum DeviceSpec {
    /// CUDA when libtorch sees a GPU, else the CPU.
    #[default]
    Auto,
    Cpu,
    Cuda,
}

#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SamplingSpec {
    /// Characters generated after training.
    #[serde(default = "default_tokens")]
    pub tokens: i64,
    /// Divides the logits: below 1 sharper, above 1 more adventurous.
    #[serde(default = "default_temperature")]
    pub temperature: f64,
    /// Draw only among the k most likely characters.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub top_k: Option<i64>,
    /// Draw only among the most likely characters whose probabilities add up to p (nucleus).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub top_p: Option<f64>,
    #[serde(default = "default_seed")]
    pub seed: u64,
}

fn default_train_fraction() -> f64 {
    0.9
}
fn default_position() -> Box<dyn PositionKind> {
    Box::new(Learned {})
}
fn default_batch_size() -> i64 {
    32
}
fn default_max_iters() -> i64 {
    5000
}
fn default_eval_interval() -> i64 {
    500
}
fn default_eval_iters() -> i64 {
    200
}
fn default_learning_rate() -> f64 {
    1e-3
}
fn default_beta1() -> f64 {
    0.9
}
fn default_beta2() -> f64 {
    0.999
}
fn default_adam_eps() -> f64 {
    1e-8
}
fn default_weight_decay() -> f64 {
    0.01
}
fn default_keep_best() -> bool {
    true
}
fn default_seed() -> u64 {
    1337
}
fn default_tokens() -> i64 {
    500
}
fn default_temperature() -> f64 {
    1.0
}

impl Default for DataSpec {
    fn default() -> Self {
        DataSpec {
            path: None,
            train_fraction: default_train_fraction(),
        }
    }
}

impl Default for TrainingSpec {
    fn default() -> Self {
        TrainingSpec {
            batch_size: default_batch_size(),
            max_iters: default_max_iters(),
            eval_interval: default_eval_interval(),
            eval_iters: default_eval_iters(),
            val_eval: ValEval::default(),
            learning_rate: default_learning_rate(),
            schedule: ScheduleSpec::default(),
            adamw: AdamWSpec::default(),
            grad_clip: None,
            max_minutes: None,
            keep_best: default_keep_best(),
            seed: default_seed(),
            threads: 0,
            device: DeviceSpec::Auto,
            precision: Precision::Fp32,
        }
    }
}

impl Default for AdamWSpec {
    fn default() -> Self {
        AdamWSpec {
            beta1: default_beta1(),
            beta2: default_beta2(),
            eps: default_adam_eps(),
            weight_decay: default_weight_decay(),
            weight_decay_on: DecayTarget::All,
        }
    }
}

impl Default for SamplingSpec {
    fn default() -> Self {
        SamplingSpec {
            tokens: default_tokens(),
            temperature: default_temperature(),
            top_k: None,
            top_p: None,
            seed: default_seed(),
        }
    }
}

impl Spec {
    /// Reads, parses and resolves a spec file. `name` defaults to the file stem.
    pub fn load(path: &Path) -> Result<Spec> {
        let text = std::fs::read_to_string(path).map_err(|source| Error::SpecRead {
            path: path.to_path_buf(),
            source,
        })?;
        let mut spec = Spec::parse(&text).map_err(|message| Error::SpecSyntax {
            path: path.to_path_buf(),
            message,
        })?;
        if spec.name.is_none() {
            spec.name = path
                .file_stem()
                .map(|stem| stem.to_string_lossy().into_owned());
        }
        spec.resolve().map_err(|source| Error::SpecInvalid {
            path: path.to_path_buf(),
            source,
        })?;
        Ok(spec)
    }

    /// Parses YAML text strictly, without resolving. The error is one line naming the field.
    pub fn parse(text: &str) -> std::result::Result<Spec, String> {
        if text.trim().is_empty()
            || text
                .lines()
                .all(|l| l.trim().is_empty() || l.trim_start().starts_with('#'))
        {
            return Err("the file is empty; a spec needs at least a `model` section".into());
        }
        serde_norway::from_str(text).map_err(|e| tidy_yaml_error(&e.to_string()))
    }

    /// Parses and resolves YAML text (for specs that do not come from a file).
    pub fn from_yaml(text: &str) -> std::result::Result<Spec, String> {
        let mut spec = Spec::parse(text)?;
        spec.resolve().map_err(|e| e.to_string())?;
        Ok(spec)
    }

    /// The resolved spec as YAML: every default and derived size written out.
    pub fn to_yaml(&self) -> String {
        // Serialising plain data with registered kinds cannot fail; keep the error visible if it does.
        serde_norway::to_string(self)
            .unwrap_or_else(|e| format!("# could not serialise spec: {e}\n"))
    }

    /// The name runs are filed under.
    pub fn name(&self) -> &str {
        self.name.as_deref().unwrap_or("spec")
    }

    /// The model sizes, once the vocabulary is known.
    /// The sizes and settings the layers are built from, with the training's precision.
    pub fn dims(&self, vocab_size: i64) -> Dims {
        Dims {
            compute: self.training.precision.compute_kind(),
            ..self.model.dims(vocab_size)
        }
    }

    /// Fills in every default and derived size and checks that the spec describes a model that can
    /// be built and trained. Errors name the field by its full path.
    pub fn resolve(&mut self) -> std::result::Result<(), SpecError> {
        if let Some(name) = &self.name {
            validate_name(name)?;
        }
        self.data.validate().map_err(|e| e.within("data"))?;
        self.model.resolve().map_err(|e| e.within("model"))?;
        self.training.validate().map_err(|e| e.within("training"))?;
        self.sampling.validate().map_err(|e| e.within("sampling"))
    }
}

impl DataSpec {
    fn validate(&self) -> std::result::Result<(), SpecError> {
        let f = self.train_fraction;
        if f > 0.0 && f < 1.0 {
            Ok(())
        } else {
            Err(SpecError::new(
                "train_fraction",
                format!("must be strictly between 0 and 1, got {f}"),
            ))
        }
    }
}

impl ModelSpec {
    fn resolve(&mut self) -> std::result::Result<(), SpecError> {
        require_size("block_size", self.block_size)?;
        require_size("n_embd", self.n_embd)?;
        let n_layer = self.resolve_stack()?;
        self.n_layer = Some(n_layer);
        require_probability("dropout", self.dropout)?;
        let attention_dropout = *self.attention_dropout.get_or_insert(self.dropout);
        require_probability("attention_dropout", attention_dropout)?;
        let residual_dropout = *self.residual_dropout.get_or_insert(self.dropout);
        require_probability("residual_dropout", residual_dropout)?;
        require_probability("embedding_dropout", self.embedding_dropout)?;
        // The vocabulary is not known yet; no layer validates against it.
        let dims = self.dims(1);
        self.position
            .resolve(&dims)
            .map_err(|e| e.within("position"))?;
        let position = &self.position;
        let check_block = |block: &mut BlockSpec, field: &str| {
            block.resolve(&dims).map_err(|e| e.within(field))?;
            position
                .check_head_size(block.attention.head_size(&dims))
                .map_err(|e| e.within("position"))
        };
        match (&mut self.block, &mut self.blocks) {
            (Some(block), _) => check_block(block, "block")?,
            (None, Some(blocks)) => {
                for (i, block) in blocks.iter_mut().enumerate() {
                    check_block(block, &format!("blocks.{i}"))?;
                }
            }
            (None, None) => {}
        }
        if let Some(norm) = &mut self.final_norm {
            norm.resolve().map_err(|e| e.within("final_norm"))?;
        }
        Ok(())
    }

    /// Checks that the stack is given one way, `block` × `n_layer` or a `blocks` list, and
    /// returns its depth.
    fn resolve_stack(&self) -> std::result::Result<i64, SpecError> {
        let n_layer = match (&self.block, &self.blocks) {
            (Some(_), Some(_)) => {
                return Err(SpecError::new(
                    "blocks",
                    "give either `block` (copied n_layer times) or a `blocks` list, not both",
                ))
            }
            (None, None) => {
                return Err(SpecError::new(
                    "block",
                    "is missing: give `block` (copied n_layer times) or a `blocks` list",
                ))
            }
            (Some(_), None) => self.n_layer.unwrap_or(1),
            (None, Some(blocks)) => {
                let listed = blocks.len() as i64;
                match self.n_layer {
                    Some(n_layer) if n_layer != listed => {
                        return Err(SpecError::new(
                            "n_layer",
                            format!("is {n_layer} but `blocks` lists {listed} blocks"),
                        ))
                    }
                    _ => listed,
                }
            }
        };
        require_size("n_layer", n_layer)?;
        Ok(n_layer)
    }

    /// The blocks of the stack, bottom first.
    pub fn stack(&self) -> Vec<&BlockSpec> {
        match (&self.blocks, &self.block) {
            (Some(blocks), _) => blocks.iter().collect(),
            (None, Some(block)) => vec![block; self.n_layer() as usize],
            (None, None) => Vec::new(),
        }
    }

    /// The depth of the stack.
    pub fn n_layer(&self) -> i64 {
        match &self.blocks {
            Some(blocks) => blocks.len() as i64,
            None => self.n_layer.unwrap_or(1),
        }
    }

    /// The sizes and settings the layers are built from (dropouts as resolved).
    pub fn dims(&self, vocab_size: i64) -> Dims {
        Dims {
            vocab_size,
            block_size: self.block_size,
            n_embd: self.n_embd,
            n_layer: self.n_layer(),
            attention_dropout: self.attention_dropout.unwrap_or(self.dropout),
            residual_dropout: self.residual_dropout.unwrap_or(self.dropout),
            init: self.init,
            compute: tch::Kind::Float,
        }
    }
}

/// The longest wall-time budget a spec may give, in minutes: ten years, far beyond any run, and
/// small enough to be a `Duration`.
pub const MAX_MINUTES: f64 = 10.0 * 365.25 * 24.0 * 60.0;

/// Checks a dropout probability: in [0, 1).
fn require_probability(field: &str, p: f64) -> std::result::Result<(), SpecError> {
    if (0.0..1.0).contains(&p) {
        Ok(())
    } else {
        Err(SpecError::new(field, format!("must be in [0, 1), got {p}")))
    }
}

impl TrainingSpec {
    fn validate(&mut self) -> std::result::Result<(), SpecError> {
        require_size("batch_size", self.batch_size)?;
        require_count("max_iters", self.max_iters)?;
        require_count("eval_interval", self.eval_interval)?;
        require_size("eval_iters", self.eval_iters)?;
        require_positive_real("learning_rate", self.learning_rate)?;
        if let Some(clip) = self.grad_clip {
            require_positive_real("grad_clip", clip)?;
        }
        if let Some(minutes) = self.max_minutes {
            require_positive_real("max_minutes", minutes)?;
            if minutes > MAX_MINUTES {
                return Err(SpecError::new(
                    "max_minutes",
                    format!("must be at most {MAX_MINUTES} (ten years), got {minutes:e}"),
                ));
            }
        }
        self.schedule
            .resolve(self.learning_rate, self.max_iters)
            .map_err(|e| e.within("schedule"))?;
        if self.threads < 0 {
            return Err(SpecError::new(
                "threads",
                format!(
                    "must be 0 (libtorch's default) or more, got {}",
                    self.threads
                ),
            ));
        }
        self.adamw.validate().map_err(|e| e.within("adamw"))
    }
}

impl AdamWSpec {
    fn validate(&self) -> std::result::Result<(), SpecError> {
        for (field, beta) in [("beta1", self.beta1), ("beta2", self.beta2)] {
            if !(0.0..1.0).contains(&beta) {
                return Err(SpecError::new(
                    field,
                    format!("must be in [0, 1), got {beta}"),
                ));
            }
        }
        require_positive_real("eps", self.eps)?;
        if !(self.weight_decay >= 0.0 && self.weight_decay.is_finite()) {
            return Err(SpecError::new(
                "weight_decay",
                format!("must be 0 or more, got {}", self.weight_decay),
            ));
        }
        Ok(())
    }
}

/// How a token is drawn from next-token logits.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Decoding {
    /// Logits are divided by it: below 1 sharper, above 1 flatter. Positive.
    pub temperature: f64,
    /// Draw only among the `k` most likely tokens (Fan et al. 2018, arXiv 1805.04833).
    pub top_k: Option<i64>,
    /// Draw only among the smallest set of most likely tokens whose probabilities add up to at
    /// least `p` ("nucleus sampling", Holtzman et al. 2019, arXiv 1904.09751). In (0, 1].
    pub top_p: Option<f64>,
}

impl Default for Decoding {
    fn default() -> Self {
        Decoding {
            temperature: 1.0,
            top_k: None,
            top_p: None,
        }
    }
}

impl Decoding {
    /// Checks the settings, naming the offending one (`temperature`, `top_k`, `top_p`).
    pub fn validate(&self) -> Result<(), SpecError> {
        if !(self.temperature > 0.0 && self.temperature.is_finite()) {
            return Err(SpecError::new(
                "temperature",
                format!("must be a positive number, got {}", self.temperature),
            ));
        }
        if let Some(k) = self.top_k.filter(|&k| k < 1) {
            return Err(SpecError::new(
                "top_k",
                format!("must be at least 1, got {k}"),
            ));
        }
        if let Some(p) = self.top_p.filter(|&p| !(p > 0.0 && p <= 1.0)) {
            return Err(SpecError::new(
                "top_p",
                format!("must be in (0, 1], got {p}"),
            ));
        }
        Ok(())
    }
}

impl SamplingSpec {
    fn validate(&self) -> std::result::Result<(), SpecError> {
        if self.tokens < 0 {
            return Err(SpecError::new(
                "tokens",
                format!("must be 0 or more, got {}", self.tokens),
            ));
        }
        self.decoding().validate()
    }

    /// How the sample's characters are drawn.
    pub fn decoding(&self) -> Decoding {
        Decoding {
            temperature: self.temperature,
            top_k: self.top_k,
            top_p: self.top_p,
        }
    }
}

/// A name becomes a directory under `runs/`: it must stay one plain path component.
fn validate_name(name: &str) -> std::result::Result<(), SpecError> {
    let plain = !name.is_empty()
        && name != "."
        && name != ".."
        && !name.contains(['/', '\\'])
        && !name.chars().any(char::is_control);
    if plain {
        Ok(())
    } else {
        Err(SpecError::new(
            "name",
            format!("{name:?} cannot name a directory under runs/"),
        ))
    }
}

/// A count of iterations: at least 1, no upper bound.
fn require_count(field: &str, value: i64) -> std::result::Result<(), SpecError> {
    if value >= 1 {
        Ok(())
    } else {
        Err(SpecError::new(
            field,
            format!("must be at least 1, got {value}"),
        ))
    }
}

fn require_positive_real(field: &str, value: f64) -> std::result::Result<(), SpecError> {
    if value > 0.0 && value.is_finite() {
        Ok(())
    } else {
        Err(SpecError::new(
            field,
            format!("must be a positive number, got {value}"),
        ))
    }
}

/// serde_norway repeats the path of a field inside a registered kind ("a.b: a.b.c: …"); keep the
/// innermost, most precise one.
fn tidy_yaml_error(message: &str) -> String {
    let mut rest = message;
    while let Some((prefix, tail)) = rest.split_once(": ") {
        let next_path = tail.split(": ").next().unwrap_or("");
        if !prefix.contains(' ') && next_path.starts_with(prefix) && !next_path.contains(' ') {
            rest = tail;
        } else {
            break;
        }
    }
    rest.to_string()
}

/// Finds the spec a user named: a path that exists, else a bare name looked up in `architectures/`
/// (with or without `.yaml`).
pub fn find_spec(name: &str) -> Result<PathBuf> {
    let given = PathBuf::from(name);
    if given.is_file() {
        return Ok(given);
    }
    let bare = given.components().count() == 1;
    if bare {
        let dir = Path::new(ARCHITECTURES_DIR);
        for candidate in [dir.join(name), dir.join(format!("{name}.yaml"))] {
            if candidate.is_file() {
                return Ok(candidate);
            }
        }
    }
    Err(Error::SpecNotFound {
        name: name.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tidy_keeps_the_innermost_path() {
        assert_eq!(
            tidy_yaml_error("model.block: model.block.x: unknown field `y` at line 3 column 5"),
            "model.block.x: unknown field `y` at line 3 column 5"
        );
        assert_eq!(
            tidy_yaml_error("model: invalid type: string"),
            "model: invalid type: string"
        );
    }
}
