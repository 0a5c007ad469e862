//! hookgate: a webhook-verifying reverse proxy.
//!
//! hookgate stands in front of an application, buffers each webhook, verifies
//! the provider's signature and timestamp over the exact bytes received,
//! deduplicates by message id, and forwards only verified requests, byte for
//! byte. Everything else is answered by hookgate and never reaches the app.
//!
//! # Layout
//!
//! Data flows one way, down this list:
//!
//! - `cli`      the command line: `run`, `check`, `sign`, `demo`; exit codes
//! - `config`   raw TOML -> validated `Config`; `Secret` with redacted `Debug`
//! - `app`      the composition root: builds every part below from `Config`
//! - `server`   accept -> hand to the least-busy worker thread (one runtime
//!   per core) -> TLS -> hyper-util auto builder -> graceful drain
//! - `tls`      PEM -> rustls `ServerConfig` (ALPN h2 + http/1.1), cert reload,
//!   the upstream client's `ClientConfig`
//! - `reload`   SIGHUP and file watching: rebuild, validate, swap atomically
//! - `admin`    `/metrics`, `/healthz`, `/readyz` on the admin port
//! - `proxy`    one request: route -> body -> verify -> replay -> forward, and
//!   the single place outcomes become responses, metrics and log lines
//! - `route`    path -> `Route`, built once from `Config`
//! - `strict`   request shape: one valid `Host`, `chunked` only, guarded
//!   headers sent once and never named in `Connection`
//! - `body`     read the body within `max_body` and `body_timeout`
//! - `verify`   the one signature engine; `verify::providers` is the catalog
//! - `replay`   the seen-id store: delivery-aware claims over an LRU
//! - `detach`   a forward that, dropped unfinished, runs to its end in a task
//! - `forward`  the upstream client: exact bytes, hop-by-hop policy, timeout
//! - `attest`   `Hookgate-Attestation` for verified forwards; inbound
//!   `Hookgate-*` headers removed
//! - `metrics`  an owned Prometheus registry; labels from config and enums
//! - `sign`     `hookgate sign`: a provider's headers for a body, or a curl command
//! - `demo`     the built-in end-to-end demonstration
//! - `logsink`  log lines to stderr, batched when it is not a terminal

pub mod admin;
pub mod app;
pub mod attest;
pub mod body;
pub mod cli;
pub mod config;
pub mod demo;
pub mod detach;
pub mod forward;
pub mod logsink;
pub mod metrics;
pub mod proxy;
pub mod reload;
pub mod replay;
pub mod route;
pub mod server;
pub mod sign;
pub mod strict;
pub mod tls;
pub mod verify;
