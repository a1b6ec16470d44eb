//! The Rust side of the C++ seam to c10d (`c10d.cpp` beside this file, compiled by `build.rs`):
//! a [`ProcessGroup`] that owns the C++ group and turns each call's failure into an
//! [`Error::Distributed`]. Every collective blocks until it is complete on this rank; a peer that
//! died or stopped answering surfaces here as an error (Gloo notices a closed connection at once,
//! a silent peer after the group's timeout), never as a hang.

use std::ffi::{c_char, c_int, c_void, CString};

use tch::Tensor;

use crate::distributed::launch::Rendezvous;
use crate::error::{Error, Result};

/// Room for the C++ side's error message.
const ERROR_BYTES: usize = 2048;

extern "C" {
    fn gptbuild_c10d_has_nccl() -> c_int;
    #[allow(clippy::too_many_arguments)]
    fn gptbuild_c10d_group_new(
        host: *const c_char,
        port: u16,
        rank: c_int,
        world_size: c_int,
        store_is_served: c_int,
        prefix: *const c_char,
        timeout_ms: i64,
        cuda_device: c_int,
        error: *mut c_char,
        error_len: usize,
    ) -> *mut c_void;
    fn gptbuild_c10d_all_reduce_sum(
        group: *mut c_void,
        tensor: *mut torch_sys::C_tensor,
        error: *mut c_char,
        error_len: usize,
    ) -> c_int;
    fn gptbuild_c10d_broadcast(
        group: *mut c_void,
        tensor: *mut torch_sys::C_tensor,
        root: c_int,
        error: *mut c_char,
        error_len: usize,
    ) -> c_int;
    fn gptbuild_c10d_group_free(group: *mut c_void);
}

/// Whether this build can make NCCL groups (for CUDA tensors).
pub fn has_nccl() -> bool {
    // SAFETY: takes nothing, returns a constant.
    unsafe { gptbuild_c10d_has_nccl() != 0 }
}

/// The transport a group moves tensors with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// Gloo: CPU tensors, over TCP.
    Gloo,
    /// NCCL: CUDA tensors on this GPU.
    Nccl { device: usize },
}

/// This process's membership of a c10d process group.
#[derive(Debug)]
pub struct ProcessGroup {
    group: *mut c_void,
    rank: usize,
    world_size: usize,
}

// SAFETY: the C++ group may be used from any one thread at a time; `&mut self` on every
// collective ensures that.
unsafe impl Send for ProcessGroup {}

impl ProcessGroup {
    /// Joins the group described by `rendezvous`: returns once every rank has arrived, or fails
    /// after the timeout.
    pub fn join(rendezvous: &Rendezvous, backend: Backend) -> Result<Self> {
        let rank = rendezvous.rank;
        let fail = |message: String| Error::Distributed { rank, message };
        let c_string = |what: &str, text: &str| {
            CString::new(text).map_err(|_| fail(format!("{what} {text:?} holds a NUL byte")))
        };
        let host = c_string("host", &rendezvous.host)?;
        let prefix = c_string("store prefix", &rendezvous.prefix)?;
        let to_int = |what: &str, n: usize| {
            c_int::try_from(n).map_err(|_| fail(format!("{what} {n} is out of range")))
        };
        let cuda_device = match backend {
            Backend::Gloo => -1,
            Backend::Nccl { device } => to_int("GPU", device)?,
        };
        let timeout_ms = i64::try_from(rendezvous.timeout.as_millis()).unwrap_or(i64::MAX);
        let mut error = [0 as c_char; ERROR_BYTES];
        // SAFETY: the strings outlive the call; `error` is a writable buffer of the given length.
        let group = unsafe {
            gptbuild_c10d_group_new(
                host.as_ptr(),
                rendezvous.port,
                to_int("rank", rank)?,
                to_int("world size", rendezvous.world_size)?,
                c_int::from(rendezvous.store_is_served),
                prefix.as_ptr(),
                timeout_ms,
                cuda_device,
                error.as_mut_ptr(),
                error.len(),
            )
        };
        if group.is_null() {
            return Err(fail(format!(
                "could not join the group at {}:{} as rank {rank} of {}: {}",
                rendezvous.host,
                rendezvous.port,
                rendezvous.world_size,
                message(&error)
            )));
        }
        Ok(ProcessGroup {
            group,
            rank,
            world_size: rendezvous.world_size,
        })
    }

    pub fn rank(&self) -> usize {
        self.rank
    }

    pub fn world_size(&self) -> usize {
        self.world_size
    }

    /// Replaces `tensor` (contiguous) with its sum over the ranks.
    pub fn all_reduce_sum(&mut self, tensor: &mut Tensor) -> Result<()> {
        let group = self.group;
        self.call("all-reduce", tensor, |tensor, error, len| {
            // SAFETY: `group` is live (owned by self); `tensor` points at a live at::Tensor.
            unsafe { gptbuild_c10d_all_reduce_sum(group, tensor, error, len) }
        })
    }

    /// Replaces `tensor` (contiguous, same shape on every rank) with rank `root`'s.
    pub fn broadcast(&mut self, tensor: &mut Tensor, root: usize) -> Result<()> {
        let (group, root) = (self.group, root as c_int);
        self.call("broadcast", tensor, |tensor, error, len| {
            // SAFETY: as in all_reduce_sum.
            unsafe { gptbuild_c10d_broadcast(group, tensor, root, error, len) }
        })
    }

    fn call(
        &mut self,
        what: &str,
        tensor: &mut Tensor,
        collective: impl FnOnce(*mut torch_sys::C_tensor, *mut c_char, usize) -> c_int,
    ) -> Result<()> {
        if !tensor.is_contiguous() {
            return Err(Error::Distributed {
                rank: self.rank,
                message: format!("{what} of a non-contiguous tensor"),
            });
        }
        let mut error = [0 as c_char; ERROR_BYTES];
        let status = collective(tensor.as_mut_ptr(), error.as_mut_ptr(), error.len());
        self.check(what, status, &error)
    }

    fn check(&self, what: &str, status: c_int, error: &[c_char]) -> Result<()> {
        match status {
            0 => Ok(()),
            _ => Err(Error::Distributed {
                rank: self.rank,
                message: format!("{what} failed (another rank stopped?): {}", message(error)),
            }),
        }
    }
}

impl Drop for ProcessGroup {
    fn drop(&mut self) {
        // SAFETY: made by gptbuild_c10d_group_new, freed once.
        unsafe { gptbuild_c10d_group_free(self.group) }
    }
}

/// The NUL-terminated message the C++ side wrote into `buffer`, on one line.
fn message(buffer: &[c_char]) -> String {
    let bytes: Vec<u8> = buffer
        .iter()
        .take_while(|&&c| c != 0)
        .map(|&c| c as u8)
        .collect();
    let text = String::from_utf8_lossy(&bytes);
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}
