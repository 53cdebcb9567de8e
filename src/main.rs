//! The `gcm-ccs` command-line tool.

mod cli;

/// mimalloc instead of the system allocator: the relay and `send` allocate and free across
/// runtime threads, where glibc's malloc spent about a third of the relay's CPU
/// (benches/README.md, figure 9).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    cli::main()
}
