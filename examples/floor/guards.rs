//! floor+guards: floor+verify plus, in their plainest form on hyper and tokio,
//! the protections and the observability hookgate keeps on every request
//! (DESIGN §4, §6), so that what they cost is measured apart from hookgate's
//! code:
//!
//! - hyper's header read timeout (10 s, `TokioTimer`), against slowloris;
//! - an in-flight cap (a `Semaphore` shared by the workers, `try_acquire`,
//!   503 when full) with its gauge;
//! - a body budget (`limits.max_buffered`: a shared `Semaphore` of bytes,
//!   reserved by the declared length) with its gauge;
//! - the body due within a `body_timeout` of the request's start, the
//!   application's answer within an `upstream.timeout` of its sending
//!   (tokio's `timeout_at`);
//! - Prometheus metrics shared by the workers, as hookgate's are: the request
//!   counter, the request and upstream duration histograms (hookgate's
//!   buckets), the upstream status-class counter and the secret-match counter.
//!
//! `FLOOR_GUARDS` (a comma-separated list of `timer`, `limits`, `deadlines`,
//! `metrics`; all four when unset) keeps only some, so that each one's price
//! can be told apart. `lean` in the list keeps the same limits and metrics
//! without their shared writes on every request: the limits are counters
//! taken and handed back with one atomic add each (tokio's `Semaphore` locks
//! its waiters' mutex on every release, though nothing here ever waits), their
//! gauges are read from them when scraped instead of moved per request, and
//! each worker counts and observes into its own `prometheus::local` copies,
//! flushed into the shared families every `FLUSH_EVERY` requests (and, in a
//! real design, on every scrape). `coarse` puts every deadline (hyper's header
//! read timeout included) on the worker's coarse clock (`coarse.rs`).
//!
//! Clock readings as hookgate takes them: the request's start (which also
//! dates the body's deadline), the sending, the answer's arrival, the end (the
//! duration, the log line). What is left out: routes, the response body's
//! deadline (its sleep registers only when the body is not already there, and
//! `ok\n` always is), attestation, X-Forwarded-For.

use std::cell::RefCell;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use bytes::Bytes;
use http::{request, HeaderValue, Request, StatusCode};
use http_body_util::{BodyExt, Either};
use hyper::body::Incoming;
use prometheus::local::{LocalHistogram, LocalIntCounter};
use prometheus::{Histogram, HistogramOpts, IntCounter, IntGauge, Registry};
use tokio::sync::Semaphore;
use tokio::time::Instant;

use crate::coarse;
use crate::gate::{self, Gate};
use crate::{admit, answer, send, Reply, Upstream};

/// hookgate's defaults for the same limits.
pub(crate) const HEADER_TIMEOUT: Duration = Duration::from_secs(10);
const BODY_TIMEOUT: Duration = Duration::from_secs(10);
const UPSTREAM_TIMEOUT: Duration = Duration::from_secs(30);
const MAX_INFLIGHT: usize = 1024;
const MAX_BUFFERED: usize = 64 << 20;

/// hookgate's latency buckets.
const LATENCY: [f64; 15] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 25.0,
];

/// Which guards are on (`FLOOR_GUARDS`).
#[derive(Clone, Copy)]
pub(crate) struct On {
    /// hyper's header read timeout.
    pub(crate) timer: bool,
    /// The in-flight cap and the body budget.
    limits: bool,
    /// The body's and the answer's deadlines.
    deadlines: bool,
    /// Every metric update.
    metrics: bool,
    /// Limits and metrics without shared writes per request.
    lean: bool,
    /// Every deadline on the worker's coarse clock (`coarse.rs`).
    pub(crate) coarse: bool,
}

impl On {
    fn from_env() -> Result<Self, String> {
        let list = std::env::var("FLOOR_GUARDS")
            .unwrap_or_else(|_| "timer,limits,deadlines,metrics".into());
        let mut on = On {
            timer: false,
            limits: false,
            deadlines: false,
            metrics: false,
            lean: false,
            coarse: false,
        };
        for part in list.split(',').filter(|p| !p.is_empty()) {
            match part {
                "timer" => on.timer = true,
                "limits" => on.limits = true,
                "deadlines" => on.deadlines = true,
                "metrics" => on.metrics = true,
                "lean" => on.lean = true,
                "coarse" => on.coarse = true,
                other => return Err(format!("FLOOR_GUARDS: unknown guard {other:?}")),
            }
        }
        Ok(on)
    }
}

/// State every worker shares, as hookgate's limits and metrics are shared.
pub(crate) struct Guards {
    pub(crate) on: On,
    inflight: Semaphore,
    buffered: Semaphore,
    inflight_gauge: IntGauge,
    buffered_gauge: IntGauge,
    requests: IntCounter,
    request_duration: Histogram,
    upstream_duration: Histogram,
    upstream_2xx: IntCounter,
    secret_matches: IntCounter,
    /// `lean`'s limits: what is taken of `MAX_INFLIGHT` and `MAX_BUFFERED`.
    inflight_taken: Taken,
    buffered_taken: Taken,
    /// Holds the families, as hookgate's registry does (never scraped here).
    _registry: Registry,
}

impl Guards {
    pub(crate) fn new() -> Result<Self, Box<dyn std::error::Error>> {
        let r = Registry::new();
        let gauge = |name: &str| -> Result<IntGauge, prometheus::Error> {
            let g = IntGauge::new(name, name)?;
            r.register(Box::new(g.clone()))?;
            Ok(g)
        };
        let counter = |name: &str| -> Result<IntCounter, prometheus::Error> {
            let c = IntCounter::new(name, name)?;
            r.register(Box::new(c.clone()))?;
            Ok(c)
        };
        let histogram = |name: &str| -> Result<Histogram, prometheus::Error> {
            let h = Histogram::with_opts(HistogramOpts::new(name, name).buckets(LATENCY.to_vec()))?;
            r.register(Box::new(h.clone()))?;
            Ok(h)
        };
        Ok(Guards {
            on: On::from_env()?,
            inflight: Semaphore::new(MAX_INFLIGHT),
            buffered: Semaphore::new(MAX_BUFFERED),
            inflight_gauge: gauge("inflight")?,
            buffered_gauge: gauge("buffered_bytes")?,
            requests: counter("requests")?,
            request_duration: histogram("request_duration")?,
            upstream_duration: histogram("upstream_duration")?,
            upstream_2xx: counter("upstream_2xx")?,
            secret_matches: counter("secret_matches")?,
            inflight_taken: Taken::new(MAX_INFLIGHT),
            buffered_taken: Taken::new(MAX_BUFFERED),
            _registry: r,
        })
    }
}

/// A limit only ever tried, never waited on: what is taken of `max`, one
/// atomic add to take and one to give back. Its gauge is this count, read
/// when scraped.
struct Taken {
    now: AtomicUsize,
    max: usize,
}

/// Part of a [`Taken`] limit, given back when dropped.
struct Held<'a> {
    limit: &'a Taken,
    n: usize,
}

impl Taken {
    fn new(max: usize) -> Self {
        Taken {
            now: AtomicUsize::new(0),
            max,
        }
    }

    fn try_take(&self, n: usize) -> Option<Held<'_>> {
        let before = self.now.fetch_add(n, Ordering::Relaxed);
        let held = Held { limit: self, n };
        (before + n <= self.max).then_some(held)
    }
}

impl Drop for Held<'_> {
    fn drop(&mut self) {
        self.limit.now.fetch_sub(self.n, Ordering::Relaxed);
    }
}

/// Requests a worker counts before it flushes its local metrics.
const FLUSH_EVERY: u32 = 64;

/// One worker's own copies of the request metrics (`lean`).
struct Locals {
    requests: LocalIntCounter,
    request_duration: LocalHistogram,
    upstream_duration: LocalHistogram,
    upstream_2xx: LocalIntCounter,
    secret_matches: LocalIntCounter,
    unflushed: u32,
}

impl Locals {
    fn new(g: &Guards) -> Self {
        Locals {
            requests: g.requests.local(),
            request_duration: g.request_duration.local(),
            upstream_duration: g.upstream_duration.local(),
            upstream_2xx: g.upstream_2xx.local(),
            secret_matches: g.secret_matches.local(),
            unflushed: 0,
        }
    }

    /// One request counted; every `FLUSH_EVERY`, all into the shared families.
    fn counted(&mut self) {
        self.unflushed += 1;
        if self.unflushed >= FLUSH_EVERY {
            self.requests.flush();
            self.request_duration.flush();
            self.upstream_duration.flush();
            self.upstream_2xx.flush();
            self.secret_matches.flush();
            self.unflushed = 0;
        }
    }
}

thread_local! {
    /// This worker's [`Locals`], made at its first request.
    static LOCALS: RefCell<Option<Locals>> = const { RefCell::new(None) };
}

impl Guards {
    /// Runs `f` on this worker's local metrics.
    fn local(&self, f: impl FnOnce(&mut Locals)) {
        LOCALS.with_borrow_mut(|l| f(l.get_or_insert_with(|| Locals::new(self))));
    }

    /// A request ended after `took` seconds.
    fn count_request(&self, took: f64) {
        if self.on.metrics && self.on.lean {
            self.local(|l| {
                l.requests.inc();
                l.request_duration.observe(took);
                l.counted();
            });
        } else if self.on.metrics {
            self.requests.inc();
            self.request_duration.observe(took);
        }
    }

    /// A signature matched the secret.
    fn count_match(&self) {
        if self.on.metrics && self.on.lean {
            self.local(|l| l.secret_matches.inc());
        } else if self.on.metrics {
            self.secret_matches.inc();
        }
    }

    /// The application answered after `took` seconds, `ok` if with a 2xx.
    fn count_answer(&self, took: f64, ok: bool) {
        if self.on.metrics && self.on.lean {
            self.local(|l| {
                l.upstream_duration.observe(took);
                if ok {
                    l.upstream_2xx.inc();
                }
            });
        } else if self.on.metrics {
            self.upstream_duration.observe(took);
            if ok {
                self.upstream_2xx.inc();
            }
        }
    }
}

/// What one request's steps share.
struct Ctx<'a> {
    gate: &'a Gate,
    guards: &'a Guards,
    client: &'a Upstream,
    upstream: &'static str,
    /// The request's start: its duration and its body's deadline count from it.
    start: Instant,
}

/// One request verified, claimed, forwarded, settled, counted and logged,
/// within the limits.
pub(crate) async fn serve(
    gate: &Gate,
    guards: &Guards,
    client: Upstream,
    upstream: &'static str,
    req: Request<Incoming>,
) -> Result<Reply, std::convert::Infallible> {
    let cx = Ctx {
        gate,
        guards,
        client: &client,
        upstream,
        start: Instant::now(),
    };
    let (parts, body) = req.into_parts();
    let id = parts.headers.get("svix-id").cloned();
    let on = guards.on;
    let (outcome, resp) = if on.limits && on.lean {
        match guards.inflight_taken.try_take(1) {
            Some(_held) => cx.within_budget(parts, body).await,
            None => ("rejected", answer(StatusCode::SERVICE_UNAVAILABLE, b"")),
        }
    } else if on.limits {
        match guards.inflight.try_acquire() {
            Ok(_permit) => {
                if on.metrics {
                    guards.inflight_gauge.inc();
                }
                let decided = cx.within_budget(parts, body).await;
                if on.metrics {
                    guards.inflight_gauge.dec();
                }
                decided
            }
            Err(_) => ("rejected", answer(StatusCode::SERVICE_UNAVAILABLE, b"")),
        }
    } else {
        cx.verified(parts, body).await
    };
    let took = cx.start.elapsed();
    guards.count_request(took.as_secs_f64());
    gate::log_took(
        outcome,
        resp.status().as_u16(),
        took,
        id.as_ref().map(HeaderValue::as_bytes),
    );
    Ok(resp)
}

impl Ctx<'_> {
    /// `f`, or `Err(())` once `due` has passed (with `deadlines` on; on the
    /// worker's coarse clock with `coarse`).
    async fn by<F: std::future::Future>(&self, due: Instant, f: F) -> Result<F::Output, ()> {
        let on = self.guards.on;
        if on.deadlines && on.coarse {
            coarse::within(due.into_std(), f).await
        } else if on.deadlines {
            tokio::time::timeout_at(due, f).await.map_err(|_| ())
        } else {
            Ok(f.await)
        }
    }

    /// The body's declared length reserved against the budget while it is held.
    async fn within_budget(&self, parts: request::Parts, body: Incoming) -> (&'static str, Reply) {
        let guards = self.guards;
        let declared = parts
            .headers
            .get(http::header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u32>().ok())
            .unwrap_or(0);
        if guards.on.lean {
            let Some(_held) = guards.buffered_taken.try_take(declared as usize) else {
                return ("rejected", answer(StatusCode::SERVICE_UNAVAILABLE, b""));
            };
            return self.verified(parts, body).await;
        }
        let Ok(_reserved) = guards.buffered.try_acquire_many(declared) else {
            return ("rejected", answer(StatusCode::SERVICE_UNAVAILABLE, b""));
        };
        if guards.on.metrics {
            guards.buffered_gauge.add(i64::from(declared));
        }
        let decided = self.verified(parts, body).await;
        if guards.on.metrics {
            guards.buffered_gauge.sub(i64::from(declared));
        }
        decided
    }

    /// The body read by its deadline, verified and claimed, then forwarded.
    async fn verified(&self, parts: request::Parts, body: Incoming) -> (&'static str, Reply) {
        let body = match self.by(self.start + BODY_TIMEOUT, body.collect()).await {
            Ok(Ok(b)) => b.to_bytes(),
            Ok(Err(_)) => return ("rejected", answer(StatusCode::BAD_REQUEST, b"")),
            Err(_) => return ("rejected", answer(StatusCode::REQUEST_TIMEOUT, b"")),
        };
        let key = match admit(self.gate, &parts.headers, &body) {
            Ok(key) => key,
            Err((outcome, status, body)) => return (outcome, answer(status, body)),
        };
        self.guards.count_match();
        self.forward(key, parts, body).await
    }

    /// Sent, answered within `upstream.timeout` of the sending, timed, settled.
    async fn forward(
        &self,
        key: [u8; 16],
        parts: request::Parts,
        body: Bytes,
    ) -> (&'static str, Reply) {
        let started = Instant::now();
        let sent = send(self.client, self.upstream, parts, body);
        match self.by(started + UPSTREAM_TIMEOUT, sent).await {
            Ok(Ok(resp)) => {
                let arrived = Instant::now();
                let ok = resp.status().is_success();
                let took = (arrived - started).as_secs_f64();
                self.guards.count_answer(took, ok);
                self.gate.settle(key, ok);
                ("forwarded", resp.map(Either::Left))
            }
            Ok(Err(_)) => {
                self.gate.settle(key, false);
                ("upstream_error", answer(StatusCode::BAD_GATEWAY, b""))
            }
            Err(_) => {
                self.gate.settle(key, false);
                ("upstream_error", answer(StatusCode::GATEWAY_TIMEOUT, b""))
            }
        }
    }
}
