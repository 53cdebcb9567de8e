//! The `gcm-ccs` command-line tool.

mod cli;

fn main() -> std::process::ExitCode {
    cli::main()
}
