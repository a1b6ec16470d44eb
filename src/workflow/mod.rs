//! The commands' work, composed from the pipeline's stages: training a spec end to end ([`run`],
//! whose policy at each evaluation is the [`recorder`]'s, with its [`progress`] bar), hyperparameter searches ([`sweep`]), step timing ([`bench`](mod@bench)) and loss
//! curves ([`plot`]). The command line ([`crate::cli`]) only parses arguments and calls these.

pub mod bench;
pub mod plot;
pub mod progress;
pub mod recorder;
pub mod run;
pub mod sweep;
