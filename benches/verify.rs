//! Criterion benches: signature verification per built-in provider and body size, and the
//! replay store's claim + delivered with 1M ids resident.
//!
//! Run with `cargo bench --bench verify`; BENCHMARKS.md holds the method and latest numbers.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::hint::black_box;
use std::pin::pin;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};
use std::time::{Duration, SystemTime};

use base64::Engine;
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use hookgate::replay::{Claim, MemoryStore, Store};
use hookgate::verify::{providers, Input, Message, Payload, Verifier};
use http::{HeaderMap, Method};

const SIZES: &[(usize, &str)] = &[(1024, "1KiB"), (16 * 1024, "16KiB"), (1024 * 1024, "1MiB")];
const PATH: &str = "/webhooks/bench";
const PUBLIC_URL: &str = "https://hooks.example.com/webhooks/bench";

/// A body that looks like a webhook: JSON, printable, `len` bytes. It carries
/// `webhookTimestamp` (ms) for providers that put the timestamp in the body (Linear).
fn body(len: usize, now: SystemTime) -> Vec<u8> {
    let ms = now
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis();
    let head = format!(r#"{{"type":"invoice.paid","webhookTimestamp":{ms},"data":{{"pad":""#);
    let tail = br#""}}"#;
    let mut b = Vec::with_capacity(len);
    b.extend_from_slice(head.as_bytes());
    while b.len() < len.saturating_sub(tail.len()) {
        b.push(b'a' + (b.len() % 26) as u8);
    }
    b.extend_from_slice(tail);
    b
}

/// A verifier for `name` and the headers it signed for `body`, or `None` when no
/// secret form tried here can both build the key and sign (such a provider is
/// reported as skipped rather than silently dropped).
///
/// Secrets are tried by shape instead of matching on the key encoding, so a
/// provider added to the catalog is benched without touching this file.
fn signed(name: &str, body: &[u8], now: SystemTime) -> Option<(Verifier, HeaderMap)> {
    let raw = [0x42u8; 32];
    let b64 = base64::engine::general_purpose::STANDARD.encode(raw);
    let secrets = [
        format!("whsec_{b64}"),
        b64.clone(),
        hex::encode(raw),
        "bench-secret-0123456789abcdef".to_string(),
    ];
    for secret in &secrets {
        let scheme = providers::builtin(name)?;
        let Ok(verifier) = Verifier::new(scheme, &[secret.as_bytes()], None) else {
            continue;
        };
        let msg = Message {
            body,
            id: "msg_2Lh9KZ8bench",
            timestamp: now,
            method: &Method::POST,
            path_and_query: PATH,
            public_url: Some(PUBLIC_URL),
        };
        let mut headers = HeaderMap::new();
        for (k, v) in verifier.try_sign(0, &msg).ok()? {
            headers.append(k, v.parse().ok()?);
        }
        if verifier.verify(&input(&headers, body), now).is_ok() {
            return Some((verifier, headers));
        }
    }
    None
}

fn input<'a>(headers: &'a HeaderMap, body: &'a [u8]) -> Input<'a> {
    Input {
        method: &Method::POST,
        path_and_query: PATH,
        headers,
        body: Payload::Whole(body),
        public_url: Some(PUBLIC_URL),
    }
}

fn verify(c: &mut Criterion) {
    let now = SystemTime::now();
    for name in providers::NAMES {
        let mut group = c.benchmark_group(format!("verify/{name}"));
        for &(len, label) in SIZES {
            let b = body(len, now);
            let Some((verifier, headers)) = signed(name, &b, now) else {
                eprintln!("verify/{name}: skipped (no secret form here can sign for it)");
                break;
            };
            group.throughput(Throughput::Bytes(len as u64));
            if len >= 1024 * 1024 {
                group.sample_size(20);
            }
            group.bench_function(label, |bench| {
                bench.iter(|| {
                    verifier
                        .verify(black_box(&input(&headers, &b)), now)
                        .unwrap()
                })
            });
        }
        group.finish();
    }
}

/// Drives a future that never waits: the memory store's calls complete on first poll.
fn ready<F: std::future::Future>(f: F) -> F::Output {
    let mut cx = Context::from_waker(Waker::noop());
    match pin!(f).poll(&mut cx) {
        Poll::Ready(v) => v,
        Poll::Pending => panic!("the memory store never waits"),
    }
}

fn replay_id(i: u64) -> [u8; 32] {
    let mut id = [0u8; 32];
    id[..8].copy_from_slice(&i.to_le_bytes());
    id
}

fn claim_and_deliver(store: &Arc<Store>, i: u64) {
    match ready(store.claim("bench", &replay_id(i))) {
        Ok(Claim::Claimed(t)) => ready(store.delivered(t, tokio::time::Instant::now())).unwrap(),
        other => panic!("id {i}: expected a fresh claim, got {other:?}"),
    }
}

fn replay(c: &mut Criterion) {
    const RESIDENT: u64 = 1_000_000;
    // Capacity equal to the resident count: every new id evicts the oldest,
    // which is the steady state of a long-running gateway.
    let store = Arc::new(Store::Memory(MemoryStore::new(
        RESIDENT as usize,
        Duration::from_secs(24 * 3600),
        Duration::from_secs(30),
    )));
    for i in 0..RESIDENT {
        claim_and_deliver(&store, i);
    }
    let mut group = c.benchmark_group("replay/memory-1M-resident");
    group.throughput(Throughput::Elements(1));
    let mut next = RESIDENT;
    group.bench_function("claim+delivered (new id, evicts)", |b| {
        b.iter(|| {
            claim_and_deliver(&store, next);
            next += 1;
        })
    });
    // Probe the newer half of the resident ids in a scattered order (7919 is
    // prime), so lookups are not served from one warm cache line.
    let newest = next - 1;
    let mut k = 0u64;
    group.bench_function("claim (resident id -> duplicate)", |b| {
        b.iter(|| {
            k += 1;
            let i = newest - (k * 7919) % (RESIDENT / 2);
            let c = ready(store.claim("bench", &replay_id(i))).unwrap();
            assert_eq!(c, Claim::Duplicate);
        })
    });
    group.finish();
}

criterion_group!(benches, verify, replay);
criterion_main!(benches);
