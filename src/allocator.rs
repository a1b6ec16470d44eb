//! Freed memory stays in the process, so that a training step does not pay the kernel to zero it
//! again.
//!
//! A step allocates and frees the same large tensors every time: at the task 7 shape each attention
//! layer's `[B, H, T, T]` weights are 50–100 MB. glibc's `malloc` serves every block above its mmap
//! threshold (at most 32 MiB) with a fresh `mmap` and returns it with `munmap` when freed, so each
//! step page-faults its activations in anew and the kernel clears every page first
//! (`clear_page_erms` was 6–14% of a bf16 task 7 step in `perf`, on an AMD EPYC Zen 4). With mmap
//! off for large blocks and trimming off, freed blocks go back to malloc's heap and the next step
//! reuses them: the bf16 step went from 7.7 to 6.4 s there. The process's peak memory is the same
//! (it is what the step needs at its peak); it is only not handed back to the system until exit.
//! `mallopt(3)` documents both settings. (PyTorch users get the same effect by preloading jemalloc
//! or tcmalloc.)

/// Keeps freed memory for reuse (glibc only; elsewhere nothing to do). Call once, early.
pub fn retain_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only sets malloc's parameters; both values are documented in mallopt(3):
    // M_MMAP_MAX 0 disables mmap for large requests, M_TRIM_THRESHOLD -1 disables trimming.
    unsafe {
        libc::mallopt(libc::M_MMAP_MAX, 0);
        libc::mallopt(libc::M_TRIM_THRESHOLD, -1);
    }
}
