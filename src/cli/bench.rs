//! `gptbuild bench`: time training steps of a spec's model.

use std::io::Write;

use crate::distributed::{C10dReplicas, Launch};
use crate::error::{Error, Result};
use crate::layers::precision::Precision;
use crate::resources;
use crate::spec::{find_spec, DeviceSpec, Spec};
use crate::train::replicas::{Replicas, SingleProcess};
use crate::workflow::bench::{bench, MAX_STEPS};

/// `gptbuild bench`'s arguments.
#[derive(Debug, clap::Args)]
pub struct BenchArgs {
    pub spec: String,
    /// Timed steps (the median is reported), 1 to 1,000,000.
    #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u64).range(1..=MAX_STEPS))]
    pub steps: u64,
    /// Untimed steps first, up to 1,000,000.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u64).range(0..=MAX_STEPS))]
    pub warmup: u64,
    /// libtorch threads (default: the spec's training.threads).
    #[arg(long)]
    pub threads: Option<i64>,
    #[arg(long, value_enum)]
    pub device: Option<DeviceSpec>,
    /// fp32 or bf16 mixed precision (default: the spec's training.precision); the matmul
    /// peak is measured in the same dtype.
    #[arg(long, value_enum)]
    pub precision: Option<Precision>,
}

pub fn execute(args: BenchArgs, out: &mut dyn Write) -> Result<()> {
    let spec = Spec::load_with(&find_spec(&args.spec)?, |written| {
        written.training.precision = args.precision.unwrap_or(written.training.precision);
    })?;
    resources::set_threads_from(args.threads, spec.training.threads)?;
    let launch = Launch::from_env()?;
    let device = crate::device::select(args.device.unwrap_or(spec.training.device))?;
    let device = launch
        .as_ref()
        .map_or(device, |launch| launch.device_for(device));
    let report = match &launch {
        None => bench(&spec, args.steps, args.warmup, device, &mut SingleProcess)?,
        Some(launch) => {
            let mut replicas = C10dReplicas::join(launch, device)?;
            let report = bench(&spec, args.steps, args.warmup, device, &mut replicas)?;
            if replicas.rank() != 0 {
                // Rank 0 reports for all.
                return Ok(());
            }
            report
        }
    };
    write!(out, "{}", report.table()).map_err(Error::io("writing the report"))
}
