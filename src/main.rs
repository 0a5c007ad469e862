//! The `hookgate` binary: parse the command line and hand over to `cli::run`.

/// jemalloc, chosen by measuring CPU and memory together (BENCHMARKS.md): glibc
/// malloc cost ~10% more CPU per request under load, and mimalloc held on to
/// freed body buffers (peak RSS 3 MiB per 1 MiB body in flight, 20 MiB idle),
/// which broke the rule that memory is bounded by `max_buffered`.
#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

fn main() -> std::process::ExitCode {
    hookgate::cli::main()
}
