//! `gptbuild bench SPEC`: how fast one training step of a spec's model runs here — forward,
//! backward and AdamW on a random batch of the spec's shape — as median, min and max milliseconds
//! after a warm-up, tokens per second, and model FLOP utilisation (MFU) against a matrix-multiply
//! peak measured in the same process, so the number says how much of the machine the step uses.
//!
//! Under torchrun each process times its share of the global batch and the gradient all-reduce
//! between backward and update, as data-parallel training runs it; the report gives the
//! all-reduce's own median beside the step's.

use std::time::Instant;

use tch::nn::VarStore;
use tch::{Device, Kind, Tensor};

use crate::device::synchronize;
use crate::error::{Error, Result};
use crate::layers::precision::Precision;
use crate::model::summary::FlopsPerToken;
use crate::model::Gpt;
use crate::ops;
use crate::resources::MemoryEstimate;
use crate::spec::Spec;
use crate::train::optim::AdamW;
use crate::train::replicas::{Replicas, Requests};
use crate::train::{require_shares_built, shares_for};

/// The most steps a benchmark times (or warms up with): the timings are kept in memory.
pub const MAX_STEPS: u64 = 1_000_000;

/// Tiny Shakespeare's vocabulary: the benchmark needs no corpus.
const VOCAB_SIZE: i64 = 65;

/// What `bench` measured.
#[derive(Debug, Clone, PartialEq)]
pub struct BenchReport {
    pub steps: usize,
    pub median_ms: f64,
    pub min_ms: f64,
    pub max_ms: f64,
    pub tokens_per_second: f64,
    /// Training FLOPs per step (three forward passes' worth).
    pub flops_per_step: f64,
    /// The step's FLOPs over its median time.
    pub achieved_gflops: f64,
    /// Median matrix-multiply throughput measured here, in the step's compute dtype.
    pub peak_gflops: f64,
    /// The compute dtype of the step and of the peak.
    pub precision: Precision,
    /// Processes sharing each batch.
    pub world_size: usize,
    /// Threads that each trained a share of a process's batch (`training.thread_split: batch`);
    /// 1 for one computation whose operations libtorch splits.
    pub shares: usize,
    /// Median milliseconds of the gradient exchange per step (0 for one process).
    pub all_reduce_ms: f64,
}

impl BenchReport {
    /// Model FLOP utilisation: achieved over peak.
    pub fn mfu(&self) -> f64 {
        self.achieved_gflops / self.peak_gflops
    }

    /// The report as printed by `gptbuild bench`.
    pub fn table(&self) -> String {
        format!(
            "steps timed         {}\n\
             ms per step         median {:.2}, min {:.2}, max {:.2}\n\
             tokens per second   {:.0}\n\
             GFLOP per step      {:.3}\n\
             achieved GFLOP/s    {:.1}\n\
             matmul peak GFLOP/s {:.1} ({}, measured now)\n\
             MFU                 {:.1}%\n\
             processes           {}\n\
             thread split        {}\n\
             all-reduce ms/step  {}\n",
            self.steps,
            self.median_ms,
            self.min_ms,
            self.max_ms,
            self.tokens_per_second,
            self.flops_per_step / 1e9,
            self.achieved_gflops,
            self.peak_gflops,
            self.precision.name(),
            100.0 * self.mfu(),
            self.world_size,
            match self.shares {
                1 => "operations (libtorch splits each one)".to_string(),
                n => format!("batch ({n} shares a process, side by side)"),
            },
            match self.world_size {
                1 => "none (one process)".to_string(),
                _ => format!(
                    "median {:.2} ({:.0}% of the step)",
                    self.all_reduce_ms,
                    100.0 * self.all_reduce_ms / self.median_ms
                ),
            }
        )
    }
}

/// Times `steps` training steps of `spec`'s model on `device` after `warmup` untimed ones, as
/// one of `replicas` (each takes its share of the batch and exchanges its gradient).
pub fn bench(
    spec: &Spec,
    steps: u64,
    warmup: u64,
    device: Device,
    replicas: &mut dyn Replicas,
) -> Result<BenchReport> {
    if !(1..=MAX_STEPS).contains(&steps) || warmup > MAX_STEPS {
        return Err(Error::Usage(format!(
            "--steps must be 1 to {MAX_STEPS} and --warmup at most {MAX_STEPS}, got {steps} and \
             {warmup}"
        )));
    }
    MemoryEstimate::training(spec, VOCAB_SIZE).check(device)?;
    tch::manual_seed(spec.training.seed as i64);
    let vs = VarStore::new(device);
    let model = Gpt::try_new(&vs.root(), spec, VOCAB_SIZE)?;
    let mut optimizer = AdamW::new(vs.trainable_variables(), spec.training.adamw.clone());
    let (batch, block) = (spec.training.batch_size, spec.model.block_size);
    let world_size = replicas.world_size();
    if batch % world_size as i64 != 0 {
        return Err(Error::Usage(format!(
            "training.batch_size ({batch}) must be a multiple of the {world_size} processes"
        )));
    }
    let shares = shares_for(&spec.training, device);
    require_shares_built(shares)?;
    if batch % (world_size * shares) as i64 != 0 {
        return Err(Error::Usage(format!(
            "training.batch_size ({batch}) must be a multiple of the {world_size} processes' \
             {shares} threads each (training.thread_split: batch)"
        )));
    }
    let share = batch / world_size as i64;
    let x = Tensor::randint(VOCAB_SIZE, [share, block], (Kind::Int64, device));
    let y = Tensor::randint(VOCAB_SIZE, [share, block], (Kind::Int64, device));
    // Under `thread_split: batch`, each thread's rows, as training splits them.
    #[cfg(feature = "cpu-kernels")]
    let split: Vec<crate::train::thread_split::Share> = {
        let per_thread = share / shares as i64;
        (0..shares as i64)
            .map(|i| crate::train::thread_split::Share {
                x: x.narrow(0, i * per_thread, per_thread),
                y: y.narrow(0, i * per_thread, per_thread),
                dropout_seed: spec.training.seed.wrapping_add(i as u64),
            })
            .collect()
    };
    // (step, all-reduce) milliseconds.
    let mut step = || -> Result<(f64, f64)> {
        let started = Instant::now();
        let room = replicas.room_after_gradient();
        let gradient = match shares {
            #[cfg(feature = "cpu-kernels")]
            2.. => {
                crate::train::thread_split::split_gradient(&model, &optimizer, &split, room)
                    .gradient
            }
            _ => {
                let loss = Gpt::loss(&model.forward_t(&x, true), &y);
                optimizer.flat_gradient(&loss, room)
            }
        };
        synchronize(device);
        let exchange = Instant::now();
        let averaged = replicas.average_gradient(gradient, Requests::default())?;
        synchronize(device);
        let exchange_ms = exchange.elapsed().as_secs_f64() * 1000.0;
        let (lr, clip) = (spec.training.learning_rate, spec.training.grad_clip);
        optimizer.update(&averaged.gradient, lr, clip)?;
        synchronize(device);
        Ok((started.elapsed().as_secs_f64() * 1000.0, exchange_ms))
    };
    for _ in 0..warmup {
        step()?;
    }
    let timed = (0..steps).map(|_| step()).collect::<Result<Vec<_>>>()?;
    let mut times: Vec<f64> = timed.iter().map(|t| t.0).collect();
    let mut exchanges: Vec<f64> = timed.iter().map(|t| t.1).collect();
    times.sort_by(f64::total_cmp);
    exchanges.sort_by(f64::total_cmp);
    let median_ms = median(&times);
    let flops_per_step =
        FlopsPerToken::of(&vs, &spec.model).training as f64 * (batch * block) as f64;
    Ok(BenchReport {
        steps: times.len(),
        median_ms,
        min_ms: times[0],
        max_ms: times[times.len() - 1],
        tokens_per_second: (batch * block) as f64 / (median_ms / 1000.0),
        flops_per_step,
        achieved_gflops: flops_per_step / (median_ms / 1000.0) / 1e9,
        peak_gflops: matmul_peak_gflops(device, spec.training.precision.compute_kind()),
        precision: spec.training.precision,
        world_size,
        shares,
        all_reduce_ms: if world_size == 1 {
            0.0
        } else {
            median(&exchanges)
        },
    })
}

/// Median throughput of a square matrix product in `kind`, large enough to be compute-bound: 1024²
/// on a CPU (≈2 GFLOP, milliseconds there), 8192² on a GPU, where a 1024² product is over in
/// microseconds and would time the kernel launch. Through the library the linear layers use: in
/// fp32 on a CPU where they multiply through oneDNN ([`crate::ops::linear`]), oneDNN's
/// product, about twice MKL's on AMD, or the MFU would be measured against the slower library.
pub fn matmul_peak_gflops(device: Device, kind: Kind) -> f64 {
    let n = if device.is_cuda() { 8192i64 } else { 1024 };
    let a = Tensor::randn([n, n], (kind, device));
    let b = Tensor::randn([n, n], (kind, device));
    let product = || match device == Device::Cpu && kind == Kind::Float {
        // The layers' own call (a·bᵀ rather than a·b: the same product size).
        true => ops::linear(&a, &b, None),
        false => a.matmul(&b),
    };
    let _ = product();
    synchronize(device);
    let mut rates: Vec<f64> = (0..7)
        .map(|_| {
            let started = Instant::now();
            let _ = product();
            synchronize(device);
            2.0 * (n * n * n) as f64 / started.elapsed().as_secs_f64() / 1e9
        })
        .collect();
    rates.sort_by(f64::total_cmp);
    median(&rates)
}

/// The middle of sorted values.
fn median(sorted: &[f64]) -> f64 {
    let n = sorted.len();
    if n % 2 == 1 {
        sorted[n / 2]
    } else {
        (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0
    }
}

#[cfg(test)]
mod tests {
    use super::median;

    #[test]
    fn the_median_is_the_middle() {
        assert_eq!(median(&[1.0, 2.0, 9.0]), 2.0);
        assert_eq!(median(&[1.0, 2.0, 4.0, 9.0]), 3.0);
    }
}
