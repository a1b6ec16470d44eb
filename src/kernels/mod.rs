//! Kernels libtorch lacks, written in C++ against the same libtorch (compiled by `build.rs` with
//! the `cc` crate) and reached through small `extern "C"` functions: each C++ file here has its
//! Rust side beside it, which is the only code that calls it.
//!
//! - [`causal_attention`]: causal self-attention with dropout on the attention weights, for the
//!   CPU, whose mask is a hash of (key, row, column) rather than a stored draw; short sequences
//!   one head at a time (`attention_per_head.cpp`), where libtorch's calls cost more than the
//!   arithmetic of their tiny matrices.
//! - [`dropout`]: dropout with that same mask, for the CPU; the key's source; the mask itself.
//! - [`adamw`]: AdamW's step in one pass over the optimizer's flat buffers, for the CPU.
//! - [`rms_norm`]: RMSNorm in one pass each way, for the CPU.
//! - [`linear`]: the fp32 affine map through oneDNN's products, for AMD CPUs, where MKL's are
//!   half as fast.
//!
//! `counter_mask.h` holds the mask's hash and the vectorisable helpers both share.

pub mod adamw;
pub mod causal_attention;
pub mod dropout;
pub mod linear;
pub mod rms_norm;

use std::ffi::c_char;

use tch::Tensor;
use torch_sys::C_tensor;

/// Room for a C++ exception's message.
const ERROR_BYTES: usize = 1024;

/// A kernel refused its inputs or failed; the message is C++'s.
#[derive(Debug, thiserror::Error)]
#[error("{kernel}: {message}")]
pub struct KernelError {
    pub kernel: &'static str,
    pub message: String,
}

/// Calls a C++ entry point that hands back a new tensor: `body` gets the place for it and an error
/// buffer; a nonzero status becomes a [`KernelError`] with the message the C++ side wrote.
fn new_tensor(
    kernel: &'static str,
    body: impl FnOnce(*mut *mut C_tensor, *mut c_char, usize) -> std::ffi::c_int,
) -> Result<Tensor, KernelError> {
    let mut out: *mut C_tensor = std::ptr::null_mut();
    status(kernel, |error, len| body(&mut out, error, len))?;
    if out.is_null() {
        return Err(KernelError {
            kernel,
            message: "returned no tensor".into(),
        });
    }
    // SAFETY: on success the entry point stored a new at::Tensor in `out`, which we now own.
    Ok(unsafe { Tensor::from_ptr(out) })
}

/// Calls a C++ entry point that reports only a status: `body` gets an error buffer; a nonzero
/// status becomes a [`KernelError`] with the message the C++ side wrote.
fn status(
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
