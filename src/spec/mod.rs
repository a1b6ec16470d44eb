//! The spec: *what* to build and how to train it, as written in YAML. It is the single source of
//! truth — parsed strictly (unknown keys are errors) into a [`WrittenSpec`], resolved (every default
//! and derived size worked out) and validated into a [`Spec`] before anything is built, then stored
//! with every run and checkpoint.
//!
//! Two types, two stages (as candle's `LlamaConfig` → `Config`): a written type keeps `Option`s for
//! what a user may leave out; its resolved type has none that stand for a default, so builders
//! consume values and derive nothing again. `Option`s that remain mean "absent" (no final norm, no
//! gradient clipping), never "work it out later".

pub mod model;
pub mod sampling;
pub mod schedule;
pub mod schema;
pub mod training;

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::data::tokenizer::{self, TokenizerKind};
use crate::error::{Error, Result, SpecError};
use crate::layers::Dims;

pub use model::{ModelSpec, ResolvedModel, Stack};
pub use sampling::{Decoding, SamplingSpec};
pub use training::{
    AdamWSpec, DecayTarget, DeviceSpec, ThreadSplit, TrainingSpec, ValEval, WrittenTraining,
    MAX_MINUTES,
};

/// Where bare spec names (`task06.yaml`, `task06`) are looked up.
pub const ARCHITECTURES_DIR: &str = "architectures";

// A spec as written in its YAML file: what may be left out is left out. `WrittenSpec::resolve`
// turns it into a `Spec`. (Plain comments: doc comments would become the schema's descriptions.)
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct WrittenSpec {
    /// Names the run directory `runs/<name>/`; defaults to the file's stem.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default)]
    pub data: DataSpec,
    pub model: ModelSpec,
    #[serde(default)]
    pub training: WrittenTraining,
    #[serde(default)]
    pub sampling: SamplingSpec,
}

/// A spec resolved: validated, with every default and derived size of the model worked out
/// ([`ResolvedModel`]). Everything downstream reads this type. It serialises as the spec written
/// out in full (`spec.yaml` of a run, a checkpoint's metadata), which resolves to itself again.
#[derive(Debug, Serialize)]
pub struct Spec {
    /// `None` only for a spec that came from text without a name: runs file it under `spec`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    pub data: DataSpec,
    pub model: ResolvedModel,
    pub training: TrainingSpec,
    pub sampling: SamplingSpec,
}

// Every field may be left out: `DataSpec::default` stands in.
#[derive(Debug, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct DataSpec {
    /// The corpus; `--data` and `GPTBUILD_DATA` take precedence.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub path: Option<PathBuf>,
    /// The first `train_fraction` of the characters train, the rest validate.
    pub train_fraction: f64,
    /// Text to token ids: `char` (one token per character of the corpus, the course), `bpe`
    /// (byte-level BPE with `vocab_size` tokens, trained on the training split) or `file` (any
    /// Hugging Face `tokenizer.json` at `path`).
    pub tokenizer: Box<dyn TokenizerKind>,
}

impl Default for DataSpec {
    fn default() -> Self {
        DataSpec {
            path: None,
            train_fraction: 0.9,
            tokenizer: tokenizer::default_kind(),
        }
    }
}

impl WrittenSpec {
    /// Reads and parses a spec file, without resolving it. `name` defaults to the file stem.
    pub fn read(path: &Path) -> Result<WrittenSpec> {
        let text = crate::files::read_text(path).map_err(|source| Error::SpecRead {
            path: path.to_path_buf(),
            source,
        })?;
        let mut spec = WrittenSpec::parse(&text).map_err(|message| Error::SpecSyntax {
            path: path.to_path_buf(),
            message,
        })?;
        if spec.name.is_none() {
            spec.name = path
                .file_stem()
                .map(|stem| stem.to_string_lossy().into_owned());
        }
        Ok(spec)
    }

    /// Parses YAML text strictly, without resolving. The error is one line naming the field.
    pub fn parse(text: &str) -> std::result::Result<WrittenSpec, String> {
        if text.trim().is_empty()
            || text
                .lines()
                .all(|l| l.trim().is_empty() || l.trim_start().starts_with('#'))
        {
            return Err("the file is empty; a spec needs at least a `model` section".into());
        }
        serde_norway::from_str(text).map_err(|e| tidy_yaml_error(&e.to_string()))
    }

    /// Works out every default and derived size and checks that the spec describes a model that
    /// can be built and trained. Errors name the field by its full path.
    pub fn resolve(self) -> std::result::Result<Spec, SpecError> {
        if let Some(name) = &self.name {
            validate_name(name)?;
        }
        self.data.validate().map_err(|e| e.within("data"))?;
        let model = self.model.resolve().map_err(|e| e.within("model"))?;
        let training = self.training.resolve().map_err(|e| e.within("training"))?;
        self.sampling.validate().map_err(|e| e.within("sampling"))?;
        Ok(Spec {
            name: self.name,
            data: self.data,
            model,
            training,
            sampling: self.sampling,
        })
    }
}

impl Spec {
    /// Reads, parses and resolves a spec file. `name` defaults to the file stem.
    pub fn load(path: &Path) -> Result<Spec> {
        Spec::load_with(path, |_| {})
    }

    /// Reads a spec file, lets `adjust` change the spec as written (command-line overrides,
    /// which then take part in resolution like any written value), and resolves it.
    pub fn load_with(path: &Path, adjust: impl FnOnce(&mut WrittenSpec)) -> Result<Spec> {
        let mut written = WrittenSpec::read(path)?;
        adjust(&mut written);
        written.resolve().map_err(|source| Error::SpecInvalid {
            path: path.to_path_buf(),
            source,
        })
    }

    /// Parses and resolves YAML text (for specs that do not come from a file).
    pub fn from_yaml(text: &str) -> std::result::Result<Spec, String> {
        WrittenSpec::parse(text)?
            .resolve()
            .map_err(|e| e.to_string())
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

    /// The sizes and settings the layers are built from, once the vocabulary is known; products
    /// in the training section's precision.
    pub fn dims(&self, vocab_size: i64) -> Dims {
        self.model
            .dims(vocab_size, self.training.precision.compute_kind())
    }
}

impl DataSpec {
    fn validate(&self) -> std::result::Result<(), SpecError> {
        self.tokenizer
            .validate()
            .map_err(|e| e.within("tokenizer"))?;
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
    // Anything there that is not a file (a device, a pipe) is handed on, to be refused by name.
    if given.exists() && !given.is_dir() {
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
