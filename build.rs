//! Links every binary (the CLI, tests, examples) to libtorch the way users need it:
//!
//! - an rpath to libtorch's `lib/`, so that nobody has to export `LD_LIBRARY_PATH` (torch-sys
//!   publishes the directory it linked against as `DEP_TCH_LIBTORCH_LIB`; its `links` key is
//!   "tch"). It is a RUNPATH, so `LD_LIBRARY_PATH` still wins: a binary built here runs against
//!   another machine's torch by pointing that variable at its `lib/`.
//! - `libtorch_cuda.so` as a NEEDED library whenever that libtorch has one. torch-sys asks for it,
//!   but the linker's `--as-needed` drops it, since no symbol of it is referenced: libtorch's CUDA
//!   backend registers itself from that library's static initialisers, so without it
//!   `tch::Cuda::is_available()` is false on every GPU machine. On a machine without a GPU the
//!   library loads and stays idle. A CPU-only libtorch has no such file and links as before.
//!
//! - with the `distributed` feature, the C++ seam to c10d, libtorch's distributed engine
//!   (`src/distributed/c10d.cpp`), compiled with the `cc` crate against the headers of that same libtorch. Gloo's own headers, which the
//!   wheel lacks, come from Debian's `libgloo-dev` (scripts/env.sh installs it); libtorch already
//!   contains Gloo's code. With a CUDA libtorch, and NCCL's and CUDA's headers beside it (the
//!   `nvidia-nccl` and `nvidia-cuda-runtime` wheels torch depends on, and `nvidia-cuda-crt` and
//!   `nvidia-cuda-cccl`, which requirements.txt adds), NCCL groups are compiled in as well.
//!
//! - with the `cpu-kernels` feature, the kernels libtorch lacks (`src/kernels/*.cpp`: causal
//!   attention with dropout for the CPU, RMSNorm, AdamW, the oneDNN linear map),
//!   compiled the same way, always optimised (`-O3`), since the tests must run the code users run;
//!   with them the parallel region that trains a batch's shares side by side
//!   (`src/train/thread_split.cpp`).
//!
//! The library directory and whether CUDA was linked are passed on to the crate
//! (`GPTBUILD_LIBTORCH_LIB`, `GPTBUILD_LIBTORCH_CUDA`), for `gptbuild devices` and the test that
//! holds the link in place.
use std::path::{Path, PathBuf};

fn main() {
    println!("cargo:rerun-if-env-changed=DEP_TCH_LIBTORCH_LIB");
    let dir = std::env::var("DEP_TCH_LIBTORCH_LIB").unwrap_or_default();
    let linux = std::env::var("CARGO_CFG_TARGET_OS").is_ok_and(|os| os == "linux");
    let cuda = linux && !dir.is_empty() && Path::new(&dir).join("libtorch_cuda.so").is_file();
    // For the build scripts of crates that depend on gptbuild (`links = "gptbuild"`): their
    // binaries need the same rpath, and Cargo passes link arguments to no one but this package's
    // own targets. The one line a user's build.rs needs (README, "Library"):
    // println!("cargo:rustc-link-arg=-Wl,-rpath,{}", std::env::var("DEP_GPTBUILD_LIBTORCH_LIB").unwrap());
    println!("cargo:libtorch_lib={dir}");
    if !dir.is_empty() {
        println!("cargo:rustc-link-arg=-Wl,-rpath,{dir}");
        // A wheel swapped at the same path (CPU-only for CUDA) changes the directory.
        println!("cargo:rerun-if-changed={dir}");
    }
    if cuda {
        println!("cargo:rustc-link-arg=-Wl,--no-as-needed,-L{dir},-ltorch_cuda,--as-needed");
    }
    let feature = |name: &str| std::env::var_os(format!("CARGO_FEATURE_{name}")).is_some();
    if !dir.is_empty() && feature("DISTRIBUTED") {
        compile_c10d_seam(Path::new(&dir), cuda);
    }
    if !dir.is_empty() && feature("CPU_KERNELS") {
        compile_kernels(Path::new(&dir));
    }
    println!("cargo:rustc-env=GPTBUILD_LIBTORCH_LIB={dir}");
    println!(
        "cargo:rustc-env=GPTBUILD_LIBTORCH_CUDA={}",
        if cuda { "linked" } else { "absent" }
    );
}

/// The file holding the C++ seam.
const C10D_SEAM: &str = "src/distributed/c10d.cpp";

/// Where a Debian system keeps Gloo's headers (`libgloo-dev`); `GPTBUILD_GLOO_INCLUDE` names
/// another include directory (CI points it at an empty one to show that a build without the
/// `distributed` feature never reads them).
const GLOO_INCLUDE: &str = "/usr/include";

/// Compiles the c10d seam against libtorch (`lib` is its library directory) into a static
/// library linked into the crate; with NCCL when `cuda` and NCCL's headers are found.
fn compile_c10d_seam(lib: &Path, cuda: bool) {
    println!("cargo:rerun-if-changed={C10D_SEAM}");
    println!("cargo:rerun-if-env-changed=GPTBUILD_GLOO_INCLUDE");
    let include = std::env::var("GPTBUILD_GLOO_INCLUDE").unwrap_or_else(|_| GLOO_INCLUDE.into());
    let header = Path::new(&include).join("gloo/algorithm.h");
    println!("cargo:rerun-if-changed={}", header.display());
    if !header.is_file() {
        panic!(
            "Gloo's headers are missing ({}): install Debian's libgloo-dev \
             (`apt-get install libgloo-dev`; scripts/env.sh does it), or build without the \
             `distributed` feature",
            header.display()
        );
    }
    let torch = torch_dir(lib);
    let mut build = against_libtorch(&torch);
    build
        .file(C10D_SEAM)
        .include(&include)
        .define("USE_C10D_GLOO", None);
    let nccl = cuda.then(|| cuda_headers(&torch)).flatten();
    if cuda && nccl.is_none() {
        println!(
            "cargo:warning=libtorch has CUDA, but CUDA's or NCCL's headers are missing beside it \
             (pip install -r requirements.txt): multi-GPU training (NCCL) is left out"
        );
    }
    if let Some(headers) = &nccl {
        build
            .includes(headers)
            .define("USE_C10D_NCCL", None)
            .define("GPTBUILD_NCCL", None);
    }
    build.compile("gptbuild_c10d");
    // After the seam on the link line, so that its references resolve (the linker drops a
    // library that satisfies nothing yet under --as-needed).
    for library in ["torch_cpu", "c10"] {
        println!("cargo:rustc-link-lib=dylib={library}");
    }
    if nccl.is_some() {
        for library in ["torch_cuda", "c10_cuda"] {
            println!("cargo:rustc-link-lib=dylib={library}");
        }
    }
    println!(
        "cargo:rustc-env=GPTBUILD_C10D_NCCL={}",
        if nccl.is_some() { "compiled" } else { "absent" }
    );
}

/// The kernels' C++ files, and the parallel region of `training.thread_split: batch`, which needs
/// the same OpenMP runtime.
const KERNELS: &[&str] = &[
    "src/kernels/adamw.cpp",
    "src/kernels/attention_per_head.cpp",
    "src/kernels/causal_attention.cpp",
    "src/kernels/dropout.cpp",
    "src/kernels/linear.cpp",
    "src/kernels/rms_norm.cpp",
    "src/train/thread_split.cpp",
];

/// Compiles the kernels libtorch lacks into a static library linked into the crate.
fn compile_kernels(lib: &Path) {
    let mut build = against_libtorch(&torch_dir(lib));
    for file in KERNELS {
        println!("cargo:rerun-if-changed={file}");
        build.file(file);
    }
    build.opt_level(3);
    let openmp = libtorch_openmp(lib);
    // With OpenMP, ATen's `parallel_for` in the kernels splits rows across libtorch's threads;
    // without it (`_OPENMP` undefined) the header runs every call inline on one thread. Either
    // way the SIMD pragmas apply.
    build.flag(if openmp.is_some() {
        "-fopenmp"
    } else {
        "-fopenmp-simd"
    });
    build.compile("gptbuild_kernels");
    if let Some(runtime) = openmp {
        // libtorch's own runtime, by its file name: one thread pool for libtorch and the kernels.
        println!("cargo:rustc-link-search=native={}", lib.display());
        println!("cargo:rustc-link-lib=dylib:+verbatim={runtime}");
    }
    for library in ["torch_cpu", "c10"] {
        println!("cargo:rustc-link-lib=dylib={library}");
    }
}

/// The OpenMP runtime libtorch was built with, when its library directory `lib` ships it (the
/// torch wheels for Linux do: `libgomp.so.1`). The kernels link that same file, so that their
/// parallel loops share libtorch's thread pool; a second runtime would bring a second pool.
fn libtorch_openmp(lib: &Path) -> Option<&'static str> {
    const RUNTIME: &str = "libgomp.so.1";
    lib.join(RUNTIME).is_file().then_some(RUNTIME)
}

/// The torch package directory of libtorch's library directory `lib`: `lib` may pass through a
/// link (.venv/libtorch), and its real place is beside the NCCL and CUDA wheels.
fn torch_dir(lib: &Path) -> PathBuf {
    let lib = std::fs::canonicalize(lib).unwrap_or_else(|_| lib.to_path_buf());
    lib.parent().map(Path::to_path_buf).unwrap_or(lib)
}

/// A C++17 build against the headers of the libtorch in `torch`, with its ABI.
fn against_libtorch(torch: &Path) -> cc::Build {
    // The exception guard every entry point includes.
    println!("cargo:rerun-if-changed=src/seam.h");
    for header in ["counter_mask.h", "attention_per_head.h"] {
        println!("cargo:rerun-if-changed=src/kernels/{header}");
    }
    let include = torch.join("include");
    let mut build = cc::Build::new();
    build
        .cpp(true)
        .include(&include)
        .include(include.join("torch/csrc/api/include"))
        .flag("-std=c++17")
        .define("_GLIBCXX_USE_CXX11_ABI", "1")
        // libtorch's headers are not warning-clean under -Wall; ours are kept clean by review.
        .warnings(false);
    build
}

/// The include directories of CUDA's runtime and NCCL shipped as wheels beside torch's
/// (`site-packages/nvidia/*/include`), if both are there.
fn cuda_headers(torch: &Path) -> Option<Vec<PathBuf>> {
    let nvidia = torch.parent()?.join("nvidia");
    let with = |header: &str| -> Option<PathBuf> {
        std::fs::read_dir(&nvidia)
            .ok()?
            .flatten()
            .map(|entry| entry.path().join("include"))
            .find(|include| include.join(header).is_file())
    };
    // cuda_runtime.h needs crt/ and nv/ (the nvidia-cuda-crt and -cccl wheels, in
    // requirements.txt).
    Some(vec![
        with("crt/host_config.h")?,
        with("nv/target")?,
        with("nccl.h")?,
    ])
}
