//! The argument group of the commands that read a trained model (`sample`, `evaluate`): a
//! checkpoint file, or the best checkpoint of the latest run of a spec.

use std::path::{Path, PathBuf};

use tch::Device;

use crate::artifacts::checkpoint;
use crate::artifacts::run_dir::{self, BEST_CHECKPOINT_FILE, CHECKPOINT_FILE, RUNS_DIR};
use crate::error::{Error, Result};
use crate::spec::{find_spec, Spec};

/// Which trained model a command reads: a checkpoint file, or the latest run of a spec.
#[derive(Debug, clap::Args)]
pub struct TrainedModel {
    /// Use the best checkpoint (lowest validation loss) of the latest run of this spec; with
    /// --checkpoint, check that the checkpoint holds this spec's model.
    #[arg(long, required_unless_present = "checkpoint")]
    pub spec: Option<String>,
    /// Use this checkpoint file.
    #[arg(long)]
    pub checkpoint: Option<PathBuf>,
    /// Where runs are kept.
    #[arg(long, default_value = RUNS_DIR)]
    pub runs_dir: PathBuf,
}

/// The best checkpoint (lowest validation loss) of the latest run of `spec`, else its latest.
fn latest_checkpoint(runs_dir: &Path, spec: &Spec) -> Result<PathBuf> {
    let dir = run_dir::latest_with(runs_dir, spec.name(), CHECKPOINT_FILE).ok_or_else(|| {
        Error::Checkpoint {
            path: runs_dir.join(spec.name()),
            message: format!(
                "no trained run of {0}; train it first with `gptbuild run {0}`",
                spec.name()
            ),
        }
    })?;
    let best = dir.join(BEST_CHECKPOINT_FILE);
    Ok(if best.is_file() {
        best
    } else {
        dir.join(CHECKPOINT_FILE)
    })
}

impl TrainedModel {
    /// Loads `--checkpoint`, or else the best checkpoint of the latest run of `--spec`; with
    /// both, checks that the checkpoint holds the spec's model.
    pub fn load(self, device: Device) -> Result<(PathBuf, checkpoint::LoadedModel)> {
        let spec = self
            .spec
            .map(|name| Spec::load(&find_spec(&name)?))
            .transpose()?;
        let path = match (self.checkpoint, &spec) {
            (Some(path), _) => path,
            (None, Some(spec)) => latest_checkpoint(&self.runs_dir, spec)?,
            (None, None) => return Err(Error::Usage("give --spec or --checkpoint".into())),
        };
        let loaded = checkpoint::load(&path, device)?;
        if let Some(spec) = &spec {
            checkpoint::ensure_same_model(&path, spec, &loaded.spec)?;
        }
        Ok((path, loaded))
    }
}
