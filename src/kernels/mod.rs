//! Kernels libtorch lacks, written in C++ against the same libtorch (compiled by `build.rs` with
//! the `cc` crate) and reached through small `extern "C"` functions: each C++ file here has its
//! Rust side beside it, which is the only code that calls it.
//!
//! - [`causal_attention`]: causal self-attention with dropout on the attention weights, for the
//!   CPU, whose mask is a hash of (key, row, column) rather than a stored draw.

pub mod causal_attention;

use std::ffi::c_char;

/// Room for a C++ exception's message.
const ERROR_BYTES: usize = 1024;

/// A kernel refused its inputs or failed; the message is C++'s.
#[derive(Debug, thiserror::Error)]
#[error("{kernel}: {message}")]
pub struct KernelError {
    pub kernel: &'static str,
    pub message: String,
}

/// Calls `body` with an error buffer; a nonzero status becomes a [`KernelError`] with the message
/// the C++ side wrote.
fn guarded(
    kernel: &'static str,
    body: impl FnOnce(*mut c_char, usize) -> std::ffi::c_int,
) -> Result<(), KernelError> {
    let mut error = [0 as c_char; ERROR_BYTES];
    match body(error.as_mut_ptr(), error.len()) {
        0 => Ok(()),
        _ => {
            let bytes: Vec<u8> = error
                .iter()
                .take_while(|&&c| c != 0)
                .map(|&c| c as u8)
                .collect();
            Err(KernelError {
                kernel,
                message: String::from_utf8_lossy(&bytes).replace('\n', " "),
            })
        }
    }
}
