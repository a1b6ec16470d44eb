//! Where tensors live: the device a spec or a flag asks for, waiting for a GPU's queued work, and
//! what this binary's libtorch can reach — printed by `gptbuild devices`, so that "why is my GPU
//! not used" has an answer before any training starts.

use std::fmt;

use tch::Device;

use crate::error::{Error, Result};
use crate::spec::DeviceSpec;

/// The `lib/` directory of the libtorch this binary was linked against (its RUNPATH; a
/// `LD_LIBRARY_PATH` set at run time takes precedence).
pub const LIBTORCH_LIB: &str = env!("GPTBUILD_LIBTORCH_LIB");

/// Loads libtorch's CUDA backend (`libtorch_cuda.so`, beside the libtorch this crate was built
/// against) into the process if it is not there yet, so that `tch::Cuda::is_available()` can
/// find a GPU. gptbuild's own binaries link it; a program built on the library gets it here,
/// from [`select`], [`crate::Trainer::for_spec`] and [`crate::load_checkpoint`], without flags
/// of its own. A CPU-only libtorch has no such library: nothing to do. Safe to call often.
pub fn load_cuda_backend() -> CudaBackend {
    static LOADED: std::sync::OnceLock<()> = std::sync::OnceLock::new();
    LOADED.get_or_init(|| {
        if CudaBackend::of_this_process() == CudaBackend::NotLoaded {
            let path = std::path::Path::new(LIBTORCH_LIB).join("libtorch_cuda.so");
            if let Ok(path) = std::ffi::CString::new(path.as_os_str().as_encoded_bytes()) {
                // SAFETY: a NUL-terminated path; the library stays loaded for the process's life
                // (its static initialisers register the CUDA backend with libtorch).
                let _ = unsafe { libc::dlopen(path.as_ptr(), libc::RTLD_NOW | libc::RTLD_GLOBAL) };
            }
        }
    });
    CudaBackend::of_this_process()
}

/// The device `wanted` names, or an error saying why it is not there.
pub fn select(wanted: DeviceSpec) -> Result<Device> {
    load_cuda_backend();
    match wanted {
        DeviceSpec::Cpu => Ok(Device::Cpu),
        DeviceSpec::Auto => {
            if CudaBackend::of_this_process() == CudaBackend::NotLoaded {
                eprintln!(
                    "warning: libtorch_cuda.so is not loaded in this process, so `auto` cannot \
                     find a GPU (a link defect; `gptbuild devices` shows it)"
                );
            }
            Ok(Device::cuda_if_available())
        }
        DeviceSpec::Cuda if tch::Cuda::is_available() => Ok(Device::Cuda(0)),
        DeviceSpec::Cuda => Err(Error::Device(match CudaBackend::of_this_process() {
            CudaBackend::NotBuilt => format!(
                "the spec asks for cuda, but the libtorch this binary was built against \
                 ({LIBTORCH_LIB}) has no CUDA backend; build against a CUDA torch wheel"
            ),
            CudaBackend::NotLoaded => "the spec asks for cuda, but libtorch_cuda.so is not \
                 loaded in this process (a link defect; `gptbuild devices` shows it)"
                .into(),
            CudaBackend::Loaded | CudaBackend::Unknown => {
                "the spec asks for cuda, but libtorch sees no GPU (`gptbuild devices`; is the \
                 driver visible, CUDA_VISIBLE_DEVICES set?)"
                    .into()
            }
        })),
    }
}

/// Waits for the work queued on `device`, so that a wall-clock time measures it (a no-op on the
/// CPU, whose operations return when they are done).
pub fn synchronize(device: Device) {
    if let Device::Cuda(index) = device {
        tch::Cuda::synchronize(index as i64);
    }
}

/// Whether libtorch's CUDA backend is in this process.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CudaBackend {
    /// The libtorch the binary was built against has no `libtorch_cuda.so` (a CPU-only build).
    NotBuilt,
    /// `libtorch_cuda.so` is mapped into this process: CUDA works wherever a GPU is visible.
    Loaded,
    /// The library exists but is not loaded: `device: cuda` could never work (the defect that
    /// `build.rs` fixes).
    NotLoaded,
    /// Not a Linux process map to look in.
    Unknown,
}

impl CudaBackend {
    /// Looks for `libtorch_cuda.so` among the libraries mapped into this process.
    pub fn of_this_process() -> CudaBackend {
        if env!("GPTBUILD_LIBTORCH_CUDA") != "linked" {
            return CudaBackend::NotBuilt;
        }
        match mapped_libraries() {
            Some(paths) if paths.iter().any(|p| p.ends_with("/libtorch_cuda.so")) => {
                CudaBackend::Loaded
            }
            Some(_) => CudaBackend::NotLoaded,
            None => CudaBackend::Unknown,
        }
    }
}

impl fmt::Display for CudaBackend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            CudaBackend::NotBuilt => "none (a CPU-only libtorch)",
            CudaBackend::Loaded => "libtorch_cuda.so loaded",
            CudaBackend::NotLoaded => "libtorch_cuda.so present but NOT loaded",
            CudaBackend::Unknown => "unknown (no /proc/self/maps)",
        })
    }
}

/// What this machine offers the matrix products, from `/proc/cpuinfo` (Linux; empty elsewhere).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CpuInfo {
    /// The first processor's model name.
    pub model: Option<String>,
    /// The instruction sets that decide fp32 and bf16 speed: AVX2, AVX-512, AVX512-BF16, AMX.
    pub matrix_features: Vec<&'static str>,
}

impl CpuInfo {
    pub fn of_this_machine() -> CpuInfo {
        std::fs::read_to_string("/proc/cpuinfo")
            .map(|text| CpuInfo::parse(&text))
            .unwrap_or_default()
    }

    /// The model name and features of the first processor listed in a `/proc/cpuinfo` text.
    pub fn parse(cpuinfo: &str) -> CpuInfo {
        let field = |name: &str| {
            cpuinfo.lines().find_map(|line| {
                let (key, value) = line.split_once(':')?;
                (key.trim() == name).then(|| value.trim().to_string())
            })
        };
        let flags = field("flags").unwrap_or_default();
        let flags: Vec<&str> = flags.split_whitespace().collect();
        let matrix_features = [
            ("avx2", "AVX2"),
            ("avx512f", "AVX-512"),
            ("avx512_bf16", "AVX512-BF16"),
            ("amx_bf16", "AMX-BF16"),
        ]
        .into_iter()
        .filter(|(flag, _)| flags.contains(flag))
        .map(|(_, name)| name)
        .collect();
        CpuInfo {
            model: field("model name"),
            matrix_features,
        }
    }
}

/// The directory of the `libtorch_cpu.so` mapped into this process: where libtorch was loaded from
/// (`LD_LIBRARY_PATH` may have chosen another than [`LIBTORCH_LIB`]); `None` off Linux.
pub fn loaded_libtorch_lib() -> Option<String> {
    mapped_libraries()?
        .into_iter()
        .find(|path| path.ends_with("/libtorch_cpu.so"))
        .and_then(|path| {
            let dir = std::path::Path::new(&path).parent()?;
            Some(dir.display().to_string())
        })
}

/// The files mapped into this process (the path column of `/proc/self/maps`); `None` off Linux.
fn mapped_libraries() -> Option<Vec<String>> {
    let maps = std::fs::read_to_string("/proc/self/maps").ok()?;
    let paths = maps
        .lines()
        .filter_map(|line| line.split_whitespace().nth(5))
        .map(str::to_string)
        .collect();
    Some(paths)
}

/// `gptbuild devices`: the libtorch, its CUDA backend and GPUs, and the CPU.
#[derive(Debug, Clone)]
pub struct DeviceReport {
    /// Built against.
    pub libtorch_lib: &'static str,
    /// Loaded from, when it can be told.
    pub loaded_from: Option<String>,
    pub cuda_backend: CudaBackend,
    pub cuda_devices: i64,
    pub cudnn: bool,
    pub cpu: CpuInfo,
    pub cpu_threads: i32,
    /// Which library multiplies fp32 matrices on the CPU ([`crate::ops::linear`]).
    pub fp32_products: crate::ops::Fp32Products,
    /// Whether multi-GPU training (c10d's NCCL) was compiled in; Gloo (CPU) always is.
    pub nccl: bool,
}

impl DeviceReport {
    pub fn of_this_process() -> DeviceReport {
        DeviceReport {
            libtorch_lib: LIBTORCH_LIB,
            loaded_from: loaded_libtorch_lib(),
            cuda_backend: CudaBackend::of_this_process(),
            cuda_devices: tch::Cuda::device_count(),
            cudnn: tch::Cuda::cudnn_is_available(),
            cpu: CpuInfo::of_this_machine(),
            cpu_threads: tch::get_num_threads(),
            fp32_products: crate::ops::fp32_products(),
            nccl: cfg!(feature = "distributed") && nccl_compiled(),
        }
    }

    /// The report as `gptbuild devices` prints it.
    pub fn table(&self) -> String {
        let features = match self.cpu.matrix_features.as_slice() {
            [] => "none of AVX2, AVX-512, AVX512-BF16, AMX".to_string(),
            names => names.join(", "),
        };
        let same = |a: &str, b: &str| {
            std::fs::canonicalize(a)
                .ok()
                .zip(std::fs::canonicalize(b).ok())
                .is_some_and(|(a, b)| a == b)
        };
        let loaded = match &self.loaded_from {
            Some(dir) if !same(dir, self.libtorch_lib) => format!(" (loaded from {dir})"),
            _ => String::new(),
        };
        format!(
            "libtorch            {}{loaded}\n\
             CUDA backend        {}\n\
             CUDA devices        {}{}\n\
             CPU                 {}\n\
             CPU matrix units    {features}\n\
             CPU fp32 products   {}\n\
             libtorch threads    {}\n\
             distributed (c10d)  {}\n",
            if self.libtorch_lib.is_empty() {
                "unknown"
            } else {
                self.libtorch_lib
            },
            self.cuda_backend,
            self.cuda_devices,
            if self.cudnn { " (cuDNN available)" } else { "" },
            self.cpu.model.as_deref().unwrap_or("unknown"),
            self.fp32_products.name(),
            self.cpu_threads,
            match self.nccl {
                true => "Gloo for CPU processes, NCCL for GPUs",
                false => "Gloo for CPU processes (NCCL not compiled in)",
            },
        )
    }
}

/// Whether the c10d seam was compiled with NCCL groups.
fn nccl_compiled() -> bool {
    #[cfg(feature = "distributed")]
    {
        crate::distributed::c10d::has_nccl()
    }
    #[cfg(not(feature = "distributed"))]
    {
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpuinfo_gives_the_model_and_the_matrix_features() {
        let text = "processor\t: 0\nmodel name\t: Intel(R) Xeon(R) Processor\n\
                    flags\t\t: fpu sse2 avx2 avx512f avx512_bf16 amx_bf16 amx_tile\n\n\
                    processor\t: 1\nmodel name\t: something else\n";
        let cpu = CpuInfo::parse(text);
        assert_eq!(cpu.model.as_deref(), Some("Intel(R) Xeon(R) Processor"));
        assert_eq!(
            cpu.matrix_features,
            ["AVX2", "AVX-512", "AVX512-BF16", "AMX-BF16"]
        );
        let plain = CpuInfo::parse("model name : AMD EPYC\nflags : fpu sse2 avx2\n");
        assert_eq!(plain.matrix_features, ["AVX2"]);
        assert_eq!(CpuInfo::parse(""), CpuInfo::default());
    }

    #[test]
    fn the_cpu_is_always_there_and_cuda_says_why_not() {
        assert_eq!(select(DeviceSpec::Cpu).unwrap(), Device::Cpu);
        if !tch::Cuda::is_available() {
            assert_eq!(select(DeviceSpec::Auto).unwrap(), Device::Cpu);
            let error = select(DeviceSpec::Cuda).unwrap_err().to_string();
            assert!(error.contains("asks for cuda"), "{error}");
        }
    }
}
