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
//! The library directory and whether CUDA was linked are passed on to the crate
//! (`GPTBUILD_LIBTORCH_LIB`, `GPTBUILD_LIBTORCH_CUDA`), for `gptbuild devices` and the test that
//! holds the link in place.
use std::path::Path;

fn main() {
    println!("cargo:rerun-if-env-changed=DEP_TCH_LIBTORCH_LIB");
    let dir = std::env::var("DEP_TCH_LIBTORCH_LIB").unwrap_or_default();
    let linux = std::env::var("CARGO_CFG_TARGET_OS").is_ok_and(|os| os == "linux");
    let cuda = linux && !dir.is_empty() && Path::new(&dir).join("libtorch_cuda.so").is_file();
    if !dir.is_empty() {
        println!("cargo:rustc-link-arg=-Wl,-rpath,{dir}");
        // A wheel swapped at the same path (CPU-only for CUDA) changes the directory.
        println!("cargo:rerun-if-changed={dir}");
    }
    if cuda {
        println!("cargo:rustc-link-arg=-Wl,--no-as-needed,-L{dir},-ltorch_cuda,--as-needed");
    }
    println!("cargo:rustc-env=GPTBUILD_LIBTORCH_LIB={dir}");
    println!(
        "cargo:rustc-env=GPTBUILD_LIBTORCH_CUDA={}",
        if cuda { "linked" } else { "absent" }
    );
}
