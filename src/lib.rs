//! hookgate: a webhook-verifying reverse proxy.
//!
//! hookgate stands in front of an application, buffers each webhook, verifies
//! the provider's signature and timestamp over the exact bytes received,
//! deduplicates by message id, and forwards only verified requests, byte for
//! byte. Everything else is answered by hookgate and never reaches the app.
//!
//! # Layout
//!
//! Data flows one way, down this list: a module uses only modules below it
//! (checked by reading each file's `use crate::` lines; there is no circle).
//!
//! - `cli`      the command line: `run`, `check`, `sign`, `demo`; exit codes
//! - `demo`     the built-in end-to-end demonstration
//! - `sign`     `hookgate sign`: a provider's headers for a body, or a curl command
//! - `report`   `hookgate check --json`: the resolved config as JSON, secrets as sources only
//! - `app`      the composition root: builds every part below from `Config`
//! - `reload`   SIGHUP and file watching: rebuild, validate, swap atomically
//! - `admin`    `/metrics`, `/healthz`, `/readyz` on the admin port
//! - `server`   accept -> hand to the least-busy worker thread (one runtime
//!   per core) -> TLS -> hyper-util auto builder -> graceful drain
//! - `proxy`    one request: route -> shape -> body -> verify -> admit ->
//!   replay -> forward, and the single place outcomes become responses,
//!   metrics and log lines
//! - `queue`    `delivery = "queue"`: store on disk (redb) or in Redis
//!   Streams (shared by replicas), answer 202, deliver in order per route
//!   with retries; dead letters; `hookgate queue`
//! - `dedup`    the replay step: a claim's answer for this route; settling it
//! - `outcome`  each `Reason`'s status and label; each step's error's `Reason`
//! - `route`    path -> `Route`, built once from `Config`; the reloadable `Runtime`
//! - `forward`  the upstream client (one per worker): exact bytes, hop-by-hop
//!   policy, timeout
//! - `tls`      PEM -> rustls `ServerConfig` (ALPN h2 + http/1.1), cert reload,
//!   the upstream client's `ClientConfig`
//! - `strict`   request shape: one valid `Host`, `chunked` only, guarded
//!   headers sent once and never named in `Connection`
//! - `body`     read the body within `max_body`, `body_timeout` and `max_buffered`
//! - `detach`   a forward that, dropped unfinished, runs to its end in a task
//! - `config`   raw TOML -> validated `Config`, typed once; `Secret` with redacted `Debug`
//! - `attest`   `Hookgate-Attestation` for verified forwards; inbound
//!   `Hookgate-*` headers removed
//! - `replay`   the seen-id store: delivery-aware claims over an LRU, or Redis
//! - `redis_link` reaching Redis (replay store and queue): bounded calls, reconnects
//! - `verify`   the one signature engine; `verify::providers` is the catalog
//! - `metrics`  an owned Prometheus registry; labels from config and enums
//! - `logline`  the JSON shape of a log line, written field by field
//! - `logsink`  log lines to stderr, batched when it is not a terminal

pub mod admin;
pub mod app;
pub mod attest;
pub mod body;
pub mod cli;
pub mod config;
pub mod dedup;
pub mod demo;
pub mod detach;
pub mod forward;
pub mod logline;
pub mod logsink;
pub mod metrics;
pub mod outcome;
pub mod proxy;
pub mod queue;
mod redis_link;
pub mod reload;
pub mod replay;
pub mod report;
pub mod route;
pub mod server;
pub mod sign;
pub mod strict;
pub mod tls;
pub mod verify;
