//! `gptbuild devices`: what this binary's libtorch can run on.

use std::io::Write;

use crate::device::DeviceReport;
use crate::error::{Error, Result};

/// Prints the libtorch directory, its CUDA backend, the GPUs it sees and the CPU.
pub fn execute(out: &mut dyn Write) -> Result<()> {
    write!(out, "{}", DeviceReport::of_this_process().table())
        .map_err(Error::io("writing the device report"))
}
