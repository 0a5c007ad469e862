//! Measures what 1M remembered ids cost in the memory replay store: resident memory
//! (VmRSS from /proc/self/status) before and after filling it, and the time taken.
//!
//! `cargo run --release --example replay_memory [-- COUNT]`; BENCHMARKS.md quotes the result.
#![allow(clippy::unwrap_used)]

use std::pin::pin;
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use hookgate::replay::{Claim, MemoryStore, Store};

/// The binary's allocator: glibc's malloc rounds a 48-byte entry up to a 64-byte
/// chunk where jemalloc has a 48-byte size class, so measuring under glibc
/// would not be measuring hookgate.
#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// A /proc/self/status field in KiB (Linux only), 0 where unavailable.
fn status_kib(field: &str) -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

/// The memory store's calls complete on first poll; no runtime needed.
fn ready<F: std::future::Future>(f: F) -> F::Output {
    let mut cx = Context::from_waker(Waker::noop());
    match pin!(f).poll(&mut cx) {
        Poll::Ready(v) => v,
        Poll::Pending => panic!("the memory store never waits"),
    }
}

fn main() {
    let count: usize = std::env::args()
        .nth(1)
        .map(|a| a.parse().unwrap())
        .unwrap_or(1_000_000);
    let before = status_kib("VmRSS:");
    // Capacity is split evenly over the store's shards and ids do not spread
    // perfectly, so 10% headroom keeps every one of the `count` ids resident.
    let store = std::sync::Arc::new(Store::Memory(MemoryStore::new(
        count + count / 10,
        Duration::from_secs(24 * 3600),
        Duration::from_secs(30),
    )));
    let allocated = status_kib("VmRSS:");
    let start = Instant::now();
    for i in 0..count as u64 {
        let mut id = [0u8; 32];
        id[..8].copy_from_slice(&i.to_le_bytes());
        match ready(store.claim("route", &id)).unwrap() {
            Claim::Claimed(t) => ready(store.delivered(t, tokio::time::Instant::now())).unwrap(),
            other => panic!("id {i}: {other:?}"),
        }
    }
    let took = start.elapsed();
    let after = status_kib("VmRSS:");
    assert_eq!(store.entries(), count, "every id must be resident");
    let mib = |kib: u64| kib as f64 / 1024.0;
    println!("ids resident:         {}", store.entries());
    println!("RSS before the store: {:.1} MiB", mib(before));
    println!("RSS, empty store:     {:.1} MiB", mib(allocated));
    println!("RSS, store full:      {:.1} MiB", mib(after));
    println!(
        "store cost:           {:.1} MiB ({:.0} bytes per id)",
        mib(after - before),
        (after - before) as f64 * 1024.0 / count as f64
    );
    println!("peak RSS (VmHWM):     {:.1} MiB", mib(status_kib("VmHWM:")));
    println!(
        "fill time:            {:.2} s ({:.0} ns per claim+delivered)",
        took.as_secs_f64(),
        took.as_nanos() as f64 / count as f64
    );
}
