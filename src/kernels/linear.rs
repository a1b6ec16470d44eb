//! The fp32 affine map `x Wᵀ + b` on the CPU through oneDNN's matrix multiplication
//! (`linear.cpp`), where libtorch would call MKL's `sgemm`.
//!
//! Why: MKL chooses its code by the CPU's vendor. On AMD processors it runs its AVX2 kernels even
//! where the CPU has AVX-512, so an fp32 product there runs at half the speed the CPU allows: on
//! an AMD EPYC Zen 5, one core multiplied a model's shapes (768 × 128 by 128 × 512, and 1024³) at
//! about 100 GFLOP/s through MKL and 220 through oneDNN, which libtorch contains for its bf16
//! products and which picks its kernels by the instructions the CPU has. On Intel processors MKL
//! already uses AVX-512, so there the plain product stays.
//!
//! [`crate::ops::linear`] uses the kernel where [`supports`] says so;
//! `tests/kernels.rs` holds it equal to the plain product, values and gradients.
//! `GPTBUILD_FP32_MATMUL=onednn` or `=mkl` overrides the choice by vendor (for measurements and
//! tests); `gptbuild devices` prints which one runs.

use std::sync::OnceLock;

use tch::{Device, Kind, Tensor};
use torch_sys::C_tensor;

use super::{new_tensor, KernelError};

extern "C" {
    fn gptbuild_linear(
        x: *const C_tensor,
        weight: *const C_tensor,
        bias: *const C_tensor,
        out: *mut *mut C_tensor,
        error: *mut std::ffi::c_char,
        error_len: usize,
    ) -> std::ffi::c_int;
}

/// The environment variable that overrides which library multiplies fp32 matrices on the CPU.
pub const OVERRIDE: &str = "GPTBUILD_FP32_MATMUL";

/// Whether fp32 products go through oneDNN (this kernel) on this machine and in this process:
/// on AMD processors with AVX-512 (as oneDNN's fp32 products need: F, BW, VL and DQ), not
/// elsewhere (MKL, libtorch's own); `GPTBUILD_FP32_MATMUL=onednn` asks for oneDNN wherever the CPU
/// allows it, `=mkl` for MKL. Decided once per process.
pub fn fp32_products_through_onednn() -> bool {
    static CHOICE: OnceLock<bool> = OnceLock::new();
    *CHOICE.get_or_init(|| {
        let wanted = std::env::var(OVERRIDE).ok();
        match wanted.as_deref() {
            Some("mkl") => false,
            Some("onednn") => onednn_runs_fp32(),
            _ => amd() && onednn_runs_fp32(),
        }
    })
}

/// The smallest product (rows × in × out multiply-adds) worth sending to oneDNN. Each oneDNN call
/// costs about 20 µs of set-up that MKL does not pay: on the Zen 5 above, at 2 threads, a product
/// of 256 × 32 × 128 (about a million) took 15 µs through MKL and 26 through oneDNN, one of
/// 512 × 64 × 256 (8 million) 91 and 59. Below this the course's small specs (tasks 2–6) stay
/// on MKL, where they were faster.
pub const MIN_PRODUCT: i64 = 1 << 22;

/// Whether the kernel takes these and runs here: fp32 on the CPU, `weight` `[out, in]` with `in`
/// the last dimension of `x`, a bias of one value per output, a product of at least
/// [`MIN_PRODUCT`], and oneDNN chosen for this machine.
pub fn supports(x: &Tensor, weight: &Tensor, bias: Option<&Tensor>) -> bool {
    let cpu_fp32 = |t: &Tensor| t.device() == Device::Cpu && t.kind() == Kind::Float;
    let product = (x.numel() as i64).saturating_mul(weight.size().first().copied().unwrap_or(0));
    fp32_products_through_onednn()
        && product >= MIN_PRODUCT
        && cpu_fp32(x)
        && cpu_fp32(weight)
        && weight.dim() == 2
        && x.dim() >= 1
        && x.size().last() == weight.size().get(1)
        && bias.is_none_or(|b| cpu_fp32(b) && b.dim() == 1 && b.size()[0] == weight.size()[0])
}

/// `x Wᵀ + b`, differentiable in all three. Fails where oneDNN cannot run fp32 products (a CPU
/// without AVX-512): ask [`supports`] first.
pub fn linear(x: &Tensor, weight: &Tensor, bias: Option<&Tensor>) -> Result<Tensor, KernelError> {
    let bias = bias.map_or(std::ptr::null(), |b| b.as_ptr());
    new_tensor("linear", |out, error, len| {
        // SAFETY: the tensors are live for the call (`bias` may be null); `out` receives a tensor
        // only on success.
        unsafe { gptbuild_linear(x.as_ptr(), weight.as_ptr(), bias, out, error, len) }
    })
}

/// Whether oneDNN multiplies fp32 here, so that [`linear`] runs: the CPU has the AVX-512 subsets
/// libtorch asks for (F, BW, VL, DQ) and oneDNN agrees, which it does not when its instruction
/// set is capped (`ONEDNN_MAX_CPU_ISA`, as `scripts/test-kernels` sets to mimic an older CPU).
/// Asked once per process, with a 1 × 1 product.
pub fn onednn_runs_fp32() -> bool {
    static RUNS: OnceLock<bool> = OnceLock::new();
    *RUNS.get_or_init(|| {
        let one = Tensor::ones([1, 1], (Kind::Float, Device::Cpu));
        avx512() && tch::no_grad(|| linear(&one, &one, None)).is_ok()
    })
}

/// Whether this CPU has AVX-512 F, BW, VL and DQ.
fn avx512() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::arch::is_x86_feature_detected!("avx512f")
            && std::arch::is_x86_feature_detected!("avx512bw")
            && std::arch::is_x86_feature_detected!("avx512vl")
            && std::arch::is_x86_feature_detected!("avx512dq")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// Whether this CPU is AMD's (its CPUID vendor string is "AuthenticAMD").
fn amd() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        // Leaf 0: the vendor string, on every x86-64 processor.
        let leaf = std::arch::x86_64::__cpuid(0);
        let vendor: Vec<u8> = [leaf.ebx, leaf.edx, leaf.ecx]
            .iter()
            .flat_map(|register| register.to_le_bytes())
            .collect();
        vendor == b"AuthenticAMD"
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}
