//! Bakes an rpath to libtorch into every binary (the CLI, tests, examples), so that users never
//! have to export `LD_LIBRARY_PATH`. torch-sys publishes the directory it linked against as
//! `DEP_TCH_LIBTORCH_LIB` (its `links` key is "tch").
fn main() {
    println!("cargo:rerun-if-env-changed=DEP_TCH_LIBTORCH_LIB");
    if let Ok(dir) = std::env::var("DEP_TCH_LIBTORCH_LIB") {
        println!("cargo:rustc-link-arg=-Wl,-rpath,{dir}");
    }
}
