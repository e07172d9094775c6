//! The `barrack` binary; everything lives in the library so tests can reach the command tree.

fn main() -> std::process::ExitCode {
    barrack_cli::main()
}
