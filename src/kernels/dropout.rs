//! Dropout (Srivastava et al. 2014) on the CPU with a counter-based mask (`dropout.cpp`): element
//! `(row, column)` of `x` (a row is a run of the last dimension) survives when a hash of
//! `(key, row, column)` is at least `p·2³²`, and survivors are scaled by `1 / (1 - p)`.
//!
//! Why: libtorch's CPU dropout draws its mask with `bernoulli_` (about 8 ns an element), stores it
//! for the backward pass and multiplies in a second pass. Here each direction is one pass, and the
//! mask is recomputed rather than kept. [`dropout_keep`] returns the mask a key gives, which is how
//! the tests compare this and the attention kernel with the plain formulations.

use tch::{Device, Kind, Tensor};
use torch_sys::C_tensor;

use super::{new_tensor, KernelError};

extern "C" {
    fn gptbuild_draw_key() -> u64;
    fn gptbuild_seed_thread_keys(seed: u64);
    fn gptbuild_forget_thread_keys();
    fn gptbuild_dropout(
        x: *const C_tensor,
        p: f64,
        key: u64,
        out: *mut *mut C_tensor,
        error: *mut std::ffi::c_char,
        error_len: usize,
    ) -> std::ffi::c_int;
    fn gptbuild_dropout_keep(
        key: u64,
        rows: i64,
        cols: i64,
        p: f64,
        out: *mut *mut C_tensor,
        error: *mut std::ffi::c_char,
        error_len: usize,
    ) -> std::ffi::c_int;
}

/// Whether the kernels take this tensor: on the CPU, fp32 or bf16.
pub fn supports(x: &Tensor) -> bool {
    x.device() == Device::Cpu && matches!(x.kind(), Kind::Float | Kind::BFloat16)
}

/// A fresh key for one call's mask, from libtorch's CPU generator: `tch::manual_seed` decides it,
/// as it decides every other random draw, so a seeded run is reproducible and resumes exactly.
pub fn draw_key() -> u64 {
    // SAFETY: takes nothing; locks the generator while it draws.
    unsafe { gptbuild_draw_key() }
}

/// While it lives, [`draw_key`] on this thread draws from a generator of the thread's own, seeded
/// with `seed`: the keys libtorch's generator gives after `tch::manual_seed(seed)`, without touching
/// it. Threads that train shares of one batch side by side ([`crate::train::thread_split`]) each
/// hold one, so that each draws what a process training its share would draw, whatever the other
/// threads do meanwhile. They do not nest: dropping one returns the thread to libtorch's
/// generator, not to an outer one.
pub struct ThreadKeys {
    /// Bound to the thread that seeded it: not `Send`.
    _thread: std::marker::PhantomData<*const ()>,
}

impl ThreadKeys {
    pub fn seeded(seed: u64) -> Self {
        // SAFETY: sets a thread-local of the C++ side; takes and keeps nothing of ours.
        unsafe { gptbuild_seed_thread_keys(seed) };
        ThreadKeys {
            _thread: std::marker::PhantomData,
        }
    }
}

impl Drop for ThreadKeys {
    fn drop(&mut self) {
        // SAFETY: clears the thread-local that `seeded` set on this same thread.
        unsafe { gptbuild_forget_thread_keys() };
    }
}

/// `x` with each element zeroed with probability `p` (by `key`'s mask) and the rest scaled by
/// `1 / (1 - p)`; differentiable (the gradient goes through the same mask).
pub fn dropout(x: &Tensor, p: f64, key: u64) -> Result<Tensor, KernelError> {
    new_tensor("dropout", |out, error, len| {
        // SAFETY: `x` is live for the call; `out` receives a tensor only on success.
        unsafe { gptbuild_dropout(x.as_ptr(), p, key, out, error, len) }
    })
}

/// The mask the kernels apply with this `key` and `p` to a tensor of `shape`: bool, true = kept.
pub fn dropout_keep(key: u64, shape: &[i64], p: f64) -> Result<Tensor, KernelError> {
    let cols = shape.last().copied().unwrap_or(1);
    let rows = shape[..shape.len().saturating_sub(1)].iter().product();
    new_tensor("dropout mask", |out, error, len| {
        // SAFETY: `out` receives a tensor only on success.
        unsafe { gptbuild_dropout_keep(key, rows, cols, p, out, error, len) }
    })
    .map(|mask| mask.view(shape))
}
