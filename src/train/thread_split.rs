//! `training.thread_split: batch`: the CPU's threads share a training step by the batch, not by
//! the operation. Each thread takes its share of the batch and computes that share's loss and
//! gradient alone, from the forward pass to the last product of the backward pass; the shares'
//! gradients are then averaged. It is data parallelism inside one process: what as many
//! single-threaded replicas ([`super::replicas`]) compute, with the gradients added in memory
//! instead of exchanged.
//!
//! Why: libtorch splits every operation across its threads, and on a small model each operation
//! is too short for that to pay. A product of the nanoGPT CPU shape (768 tokens × 128 wide) takes
//! a quarter of a millisecond, so the threads meet at a barrier hundreds of times a step, and one
//! thread training half the batch is almost as fast as two threads training all of it (README,
//! "bf16 and the CPU kernels"). Split by the batch, the threads meet once.
//!
//! What stays exactly as with replicas: share `i` of a process that is replica `rank` of `world`
//! is replica `rank · n + i` of `world · n`; it draws that replica's rows of the batch and seeds
//! its dropout keys as that replica would ([`crate::kernels::dropout::ThreadKeys`]), so one
//! process of two threads trains as two processes of one thread do, and the run is as
//! reproducible and resumable as any other. The threads are libtorch's own (one OpenMP region,
//! `thread_split.cpp`), so nothing starts threads beyond `training.threads`.

use std::ffi::{c_int, c_void};
use std::panic::AssertUnwindSafe;
use std::sync::{Mutex, PoisonError};

use tch::{Kind, Tensor};

use crate::kernels::dropout::ThreadKeys;
use crate::model::Gpt;
use crate::train::optim::AdamW;

extern "C" {
    fn gptbuild_thread_split(
        n: c_int,
        job: extern "C" fn(*mut c_void, c_int),
        context: *mut c_void,
    ) -> c_int;
}

/// One thread's share of a batch: its inputs, targets and the seed of its dropout keys.
pub struct Share {
    pub x: Tensor,
    pub y: Tensor,
    pub dropout_seed: u64,
}

/// The gradient of a batch trained by shares, one thread each, and its loss.
pub struct SplitGradient {
    /// The mean of the shares' flat gradients ([`AdamW::flat_gradient`], with `room` zeros after
    /// the parameters): the gradient of the mean loss over the batch, as the shares are equal.
    pub gradient: Tensor,
    /// The mean of the shares' losses, detached.
    pub loss: Tensor,
}

/// Trains each share on its own thread at once and averages what they computed. The shares must
/// be equal in size (the mean of their mean losses is then the batch's mean loss).
pub fn split_gradient(
    model: &Gpt,
    optimizer: &AdamW,
    shares: &[Share],
    room: usize,
) -> SplitGradient {
    let job = |i: usize| {
        let share = &shares[i];
        let _keys = ThreadKeys::seeded(share.dropout_seed);
        let loss = Gpt::loss(&model.forward_t(&share.x, true), &share.y);
        (optimizer.flat_gradient(&loss, room), loss.detach())
    };
    // SAFETY: the shares only read what they share — the model's parameters and AdamW's list of
    // them, libtorch tensors nobody writes during the region (the forward pass's one cache, RoPE's
    // table, sits behind a mutex), and their own share — and each builds its own autograd graph,
    // which libtorch's engine runs on the calling thread. Dropout keys come from each thread's
    // own generator (`ThreadKeys`), not from libtorch's shared one.
    // (Fewer threads than shares only where the OpenMP runtime gives fewer: each still runs once.)
    let (results, _threads) = unsafe { side_by_side(shares.len(), job) };
    let n = results.len() as f64;
    let (gradients, losses): (Vec<Tensor>, Vec<Tensor>) = results.into_iter().unzip();
    tch::no_grad(|| {
        // Added in place, in share order: no new buffer the size of the model each step.
        let mut gradients = gradients.into_iter();
        let mut gradient = gradients.next().expect("at least one share");
        for other in gradients {
            gradient += other;
        }
        gradient *= 1.0 / n;
        SplitGradient {
            gradient,
            loss: Tensor::stack(&losses, 0).mean(Kind::Float),
        }
    })
}

/// Calls `job(i)` for every `i` in `0..n`, at once, one call per thread of libtorch's OpenMP pool
/// (`thread_split.cpp`), and returns the results in order of `i` with the number of threads that
/// ran them. A panic in a call is caught on its thread and resumed here, after the region.
///
/// # Safety
/// `job` runs on several threads at once: everything it reads must be safe to read from all of
/// them, and nothing one call writes may be read or written by another.
pub unsafe fn side_by_side<T: Send, F: Fn(usize) -> T>(n: usize, job: F) -> (Vec<T>, usize) {
    let context = Context {
        job: &job,
        slots: (0..n).map(|_| Mutex::new(None)).collect(),
    };
    let count = c_int::try_from(n).expect("a thread count fits an int");
    // SAFETY: `call::<T, F>` reads `context` as the `Context<T, F>` it is; the region ends
    // before this returns, so `context` outlives every call; the caller vouches for `job` running
    // on several threads at once.
    let threads = unsafe {
        gptbuild_thread_split(
            count,
            call::<T, F>,
            &context as *const Context<T, F> as *mut c_void,
        )
    };
    let results = context
        .slots
        .into_iter()
        .enumerate()
        .map(
            |(i, slot)| match slot.into_inner().unwrap_or_else(PoisonError::into_inner) {
                Some(Ok(value)) => value,
                Some(Err(panic)) => std::panic::resume_unwind(panic),
                None => panic!("share {i} of {n} never ran"),
            },
        )
        .collect();
    (results, threads.max(1) as usize)
}

/// What the threads of [`side_by_side`] share: the job, and a slot for each call's result (or
/// its panic).
struct Context<'a, T, F> {
    job: &'a F,
    slots: Vec<Mutex<Option<std::thread::Result<T>>>>,
}

/// The C++ region's callback: runs call `i` of the job in `context`, a `Context<T, F>`.
extern "C" fn call<T, F: Fn(usize) -> T>(context: *mut c_void, i: c_int) {
    // SAFETY: `side_by_side` passes its `Context<T, F>`, alive until the region has ended.
    let context = unsafe { &*(context as *const Context<T, F>) };
    let i = i as usize;
    // A panic must not unwind into C++: caught here, resumed after the region.
    let result = std::panic::catch_unwind(AssertUnwindSafe(|| (context.job)(i)));
    *context.slots[i]
        .lock()
        .unwrap_or_else(PoisonError::into_inner) = Some(result);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_share_runs_once_and_results_keep_their_order() {
        let ran = Mutex::new(Vec::new());
        // SAFETY: the job only locks `ran`.
        let (results, threads) = unsafe {
            side_by_side(5, |i| {
                ran.lock().unwrap().push(i);
                i * 10
            })
        };
        assert_eq!(results, [0, 10, 20, 30, 40]);
        let mut ran = ran.into_inner().unwrap();
        ran.sort_unstable();
        assert_eq!(ran, [0, 1, 2, 3, 4]);
        assert!((1..=5).contains(&threads));
    }

    #[test]
    fn a_panic_in_a_share_reaches_the_caller() {
        let caught = std::panic::catch_unwind(|| {
            // SAFETY: the job touches nothing shared.
            unsafe {
                side_by_side(2, |i| {
                    assert!(i != 1, "share 1 fails");
                    i
                })
            }
        });
        let message = caught.expect_err("the panic comes through");
        let text = message
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| message.downcast_ref::<&str>().map(|s| s.to_string()));
        assert_eq!(text.as_deref(), Some("share 1 fails"));
    }
}
