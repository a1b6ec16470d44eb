//! The one line a program on gptbuild needs: its binary finds libtorch without LD_LIBRARY_PATH.
fn main() {
    println!(
        "cargo:rustc-link-arg=-Wl,-rpath,{}",
        std::env::var("DEP_GPTBUILD_LIBTORCH_LIB").unwrap_or_default()
    );
}
