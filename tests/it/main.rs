//! The one integration test binary: every suite is a module here, so the crate and the shared
//! helpers in `support` compile once.
//!
//! - `gateway`, `providers`, `vectors`, `properties`: one webhook's path, every provider, the
//!   official vectors and property tests over the engine
//! - `server`, `observability`, `redis_store`: TLS, limits, signals and reload; metrics and logs;
//!   the Redis replay store across replicas
//! - `windows_attest`: secret validity windows and the `Hookgate-Attestation` header, with the
//!   README's Node and Python checks
//! - `check_json`: `hookgate check --json` as a deploy check reads it, secrets never in it
//! - `hostile`: the hostile-input suite (raw HTTP/1.1 bytes, raw HTTP/2 frames, smuggling, memory)
//! - `queue`: durable delivery (`delivery = "queue"`), kill -9 included, and `hookgate queue`
//! - `queue_redis`: the Redis queue store shared by replicas, kill -9 of one included
//! - `faults`: the fault-injection suite (short run here; the full run is `--ignored`)
//! - `support`: the recording upstream, in-process gateways, child processes (hookgate, redis-server), signers
//!
//! Run one suite with a filter: `cargo test --test it server::`. proptest reads and writes the
//! property tests' regressions in `tests/proptest-regressions/properties.txt` (it takes `tests/it`,
//! which holds `main.rs`, for the crate root and keeps them beside it).
#![allow(clippy::unwrap_used)]
// The crate's lints are for `src/`: here helpers are `pub` for sibling suites, and a
// scenario test (a fault run, a log check) reads best top to bottom in one function.
#![allow(unreachable_pub, clippy::too_many_lines)]

mod support;

mod check_json;
mod faults;
mod gateway;
mod hostile;
mod observability;
mod properties;
mod providers;
mod queue;
mod queue_redis;
mod redis_store;
mod server;
mod vectors;
mod windows_attest;
