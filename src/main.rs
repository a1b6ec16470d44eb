//! The `gptbuild` binary: everything lives in the library; see `gptbuild --help`.
fn main() -> std::process::ExitCode {
    gptbuild::cli::main()
}
