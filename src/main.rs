//! The `hookgate` binary: parse the command line and hand over to `cli::run`.

/// mimalloc instead of glibc malloc: under load, glibc's allocator (arena
/// contention, `malloc_consolidate`) was a tenth of hookgate's CPU (BENCHMARKS.md).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    hookgate::cli::main()
}
