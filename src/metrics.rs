//! Prometheus metrics: an owned `Registry`; every label value comes from config or a fixed enum.
//!
//! Per-route handles are resolved once when the route table is built, so the
//! request path increments plain counters without hashing label values, and
//! no request can create a series (an unknown path is `route="unmatched"`).

// Every enum match here names each variant: a new one must be decided, not defaulted.
#![warn(clippy::wildcard_enum_match_arm)]

use std::sync::Arc;
use std::time::SystemTime;

use enum_map::EnumMap;
use prometheus::{
    Encoder, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge,
    IntGaugeVec, Opts, Registry, TextEncoder,
};

mod expiry;
mod labels;
pub use expiry::SecretExpiries;
use expiry::{ExpiryCollector, SecretExpiry};
pub use labels::{Attempt, Outcome, Reason, StoreOp};

/// The replay store's per-operation handles, resolved once (networked stores only).
#[derive(Clone)]
pub struct StoreMetrics {
    duration: EnumMap<StoreOp, Histogram>,
    errors: EnumMap<StoreOp, IntCounter>,
}

impl StoreMetrics {
    pub fn observe(&self, op: StoreOp, seconds: f64, ok: bool) {
        self.duration[op].observe(seconds);
        if !ok {
            self.errors[op].inc();
        }
    }
}

/// One route's queue series (DESIGN §8), resolved once per route.
#[derive(Clone)]
pub struct QueueMetrics {
    /// Records stored and not yet delivered or dead-lettered.
    pub depth: IntGauge,
    /// Age of the oldest such record, in seconds (0 when none).
    pub oldest_seconds: IntGauge,
    attempts: EnumMap<Attempt, IntCounter>,
    pub dead_letters: IntCounter,
    /// Stored values that did not decode, moved to the dead letters as they were.
    pub undecodable: IntCounter,
}

impl QueueMetrics {
    pub fn attempt(&self, result: Attempt) {
        self.attempts[result].inc();
        if result == Attempt::DeadLettered {
            self.dead_letters.inc();
        }
    }
}

/// Counts one unit of a gauge while it lives: `hookgate_inflight_requests`
/// stays right even when a client hangs up and hyper drops the request future.
pub struct GaugeGuard<'a>(&'a IntGauge);

impl<'a> GaugeGuard<'a> {
    pub fn new(gauge: &'a IntGauge) -> Self {
        gauge.inc();
        GaugeGuard(gauge)
    }
}

impl Drop for GaugeGuard<'_> {
    fn drop(&mut self) {
        self.0.dec();
    }
}

const CLASSES: [&str; 4] = ["2xx", "3xx", "4xx", "5xx"];

/// All of hookgate's metric families, registered in one owned registry.
pub struct Metrics {
    registry: Registry,
    requests: IntCounterVec,
    rejections: IntCounterVec,
    shadow_rejections: IntCounterVec,
    request_duration: HistogramVec,
    upstream_duration: HistogramVec,
    upstream_responses: IntCounterVec,
    secret_matches: IntCounterVec,
    secret_expiry: Arc<SecretExpiry>,
    store_duration: HistogramVec,
    store_errors: IntCounterVec,
    queue_depth: IntGaugeVec,
    queue_oldest: IntGaugeVec,
    queue_attempts: IntCounterVec,
    queue_dead_letters: IntCounterVec,
    queue_undecodable: IntCounterVec,
    pub inflight: IntGauge,
    pub replay_entries: IntGauge,
    pub config_reloads: IntCounterVec,
    pub tls_handshake_errors: IntCounter,
    /// `accept(2)` failures on the public listener (EMFILE, ENFILE, ...).
    pub accept_errors: IntCounter,
    /// Public connections that ended with an I/O or protocol error (resets,
    /// header timeouts, malformed requests), after the TLS handshake.
    pub connection_errors: IntCounter,
    pub open_connections: IntGauge,
    /// Body bytes reserved against `limits.max_buffered` right now.
    pub buffered_bytes: IntGauge,
}

/// A route's counters, resolved once.
#[derive(Clone)]
pub struct RouteMetrics {
    requests: EnumMap<Outcome, IntCounter>,
    rejections: EnumMap<Reason, IntCounter>,
    shadow_rejections: EnumMap<Reason, IntCounter>,
    /// `reason="duplicate"`: a repeat enforce mode would have answered 200.
    shadow_duplicates: IntCounter,
    pub request_duration: Histogram,
    pub upstream_duration: Histogram,
    upstream_responses: Vec<IntCounter>,
    secret_matches: Vec<IntCounter>,
    /// Keeps this route's `hookgate_secret_expiry_seconds` series alive (never read).
    _expiries: SecretExpiries,
}

impl RouteMetrics {
    pub fn request(&self, outcome: Outcome) {
        self.requests[outcome].inc();
    }

    pub fn rejection(&self, reason: Reason) {
        self.rejections[reason].inc();
    }

    /// A `mode = "shadow"` route let through what enforce mode would have
    /// answered itself (`None`: a duplicate it would have answered 200).
    pub fn shadow_rejection(&self, reason: Option<Reason>) {
        match reason {
            Some(reason) => self.shadow_rejections[reason].inc(),
            None => self.shadow_duplicates.inc(),
        }
    }

    pub fn upstream_status(&self, status: http::StatusCode) {
        let class = match status.as_u16() {
            0..=299 => 0,
            300..=399 => 1,
            400..=499 => 2,
            _ => 3,
        };
        self.upstream_responses[class].inc();
    }

    pub fn secret_matched(&self, index: usize) {
        if let Some(c) = self.secret_matches.get(index) {
            c.inc();
        }
    }

    /// These handles, holding the route's secret expiry series (see `Metrics::secret_expiries`).
    pub fn with_expiries(self, expiries: SecretExpiries) -> Self {
        RouteMetrics {
            _expiries: expiries,
            ..self
        }
    }
}

pub(crate) fn must<T>(r: prometheus::Result<T>) -> T {
    // Registration only fails on a duplicate or malformed name; every name
    // here is a fixed literal registered once, so this cannot happen.
    match r {
        Ok(v) => v,
        Err(e) => unreachable!("metric definition: {e}"),
    }
}

/// Creates a family and registers it in `registry`.
fn registered<C>(registry: &Registry, made: prometheus::Result<C>) -> C
where
    C: prometheus::core::Collector + Clone + 'static,
{
    let c = must(made);
    must(registry.register(Box::new(c.clone())));
    c
}

/// Request and upstream latency: 0.5 ms to 25 s.
const LATENCY: [f64; 15] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 25.0,
];
/// A replay store round trip is sub-millisecond on a healthy network.
const STORE_LATENCY: [f64; 14] = [
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
];

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let r = Registry::new();
        let counters = |name: &str, help: &str, labels: &[&str]| {
            registered(&r, IntCounterVec::new(Opts::new(name, help), labels))
        };
        let histograms = |name: &str, help: &str, buckets: &[f64], labels: &[&str]| {
            let opts = HistogramOpts::new(name, help).buckets(buckets.to_vec());
            registered(&r, HistogramVec::new(opts, labels))
        };
        let counter = |name: &str, help: &str| registered(&r, IntCounter::new(name, help));
        let gauge = |name: &str, help: &str| registered(&r, IntGauge::new(name, help));
        let gauges = |name: &str, help: &str, labels: &[&str]| {
            registered(&r, IntGaugeVec::new(Opts::new(name, help), labels))
        };
        let metrics = Metrics {
            requests: counters("hookgate_requests_total", "Requests by route and outcome.", &["route", "outcome"]),
            rejections: counters("hookgate_rejections_total", "Requests hookgate answered itself, by route and reason.", &["route", "reason"]),
            shadow_rejections: counters("hookgate_shadow_rejections_total", "Requests a mode = \"shadow\" route forwarded that enforce mode would have answered itself, by route and reason.", &["route", "reason"]),
            request_duration: histograms("hookgate_request_duration_seconds", "Whole request duration, from headers received to response headers sent.", &LATENCY, &["route"]),
            upstream_duration: histograms("hookgate_upstream_duration_seconds", "Time the application took to answer a forwarded request.", &LATENCY, &["route"]),
            upstream_responses: counters("hookgate_upstream_responses_total", "Application responses by route and status class.", &["route", "class"]),
            secret_matches: counters("hookgate_secret_matches_total", "Which secret of a route's list verified each request (position or name).", &["route", "secret"]),
            store_duration: histograms("hookgate_replay_store_duration_seconds", "Round trips to the replay store (Redis), by operation, failures included.", &STORE_LATENCY, &["op"]),
            store_errors: counters("hookgate_replay_store_errors_total", "Replay store (Redis) operations that failed or timed out, by operation.", &["op"]),
            queue_depth: gauges("hookgate_queue_depth", "Requests stored for delivery (delivery = \"queue\"), not yet delivered or dead-lettered.", &["route"]),
            queue_oldest: gauges("hookgate_queue_oldest_seconds", "Age of the oldest request waiting for delivery, in seconds.", &["route"]),
            queue_attempts: counters("hookgate_queue_attempts_total", "Delivery attempts of stored requests, by result.", &["route", "result"]),
            queue_dead_letters: counters("hookgate_queue_dead_letters_total", "Stored requests dead-lettered (kept, no longer retried).", &["route"]),
            queue_undecodable: counters("hookgate_queue_undecodable_total", "Stored values that did not decode, moved to the dead letters as they were.", &["route"]),
            inflight: gauge("hookgate_inflight_requests", "Requests being processed now."),
            replay_entries: gauge("hookgate_replay_entries", "Ids held by the replay store (memory store)."),
            config_reloads: counters("hookgate_config_reloads_total", "Configuration reloads by result.", &["result"]),
            tls_handshake_errors: counter("hookgate_tls_handshake_errors_total", "TLS handshakes that failed."),
            accept_errors: counter("hookgate_accept_errors_total", "Failed accepts on the public listener (e.g. out of file descriptors)."),
            connection_errors: counter("hookgate_connection_errors_total", "Public connections that ended with an error (reset, header timeout, bad request)."),
            open_connections: gauge("hookgate_open_connections", "Public connections open now (limits.max_connections caps it)."),
            buffered_bytes: gauge("hookgate_buffered_bytes", "Request body bytes held now (limits.max_buffered caps it)."),
            secret_expiry: Arc::new(SecretExpiry::new(SystemTime::now)),
            registry: r.clone(),
        };
        must(r.register(Box::new(ExpiryCollector(Arc::clone(
            &metrics.secret_expiry,
        )))));
        #[cfg(target_os = "linux")]
        must(r.register(Box::new(
            prometheus::process_collector::ProcessCollector::for_self(),
        )));
        for result in ["success", "failure"] {
            metrics.config_reloads.with_label_values(&[result]);
        }
        metrics
    }

    /// Resolves (and so creates at zero) every series of one route.
    pub fn route(&self, route: &str, secret_labels: &[String]) -> RouteMetrics {
        RouteMetrics {
            requests: EnumMap::from_fn(|o: Outcome| {
                self.requests.with_label_values(&[route, o.as_str()])
            }),
            rejections: EnumMap::from_fn(|r: Reason| {
                self.rejections.with_label_values(&[route, r.as_str()])
            }),
            shadow_rejections: EnumMap::from_fn(|r: Reason| {
                self.shadow_rejections
                    .with_label_values(&[route, r.as_str()])
            }),
            shadow_duplicates: self
                .shadow_rejections
                .with_label_values(&[route, "duplicate"]),
            request_duration: self.request_duration.with_label_values(&[route]),
            upstream_duration: self.upstream_duration.with_label_values(&[route]),
            upstream_responses: CLASSES
                .iter()
                .map(|c| self.upstream_responses.with_label_values(&[route, c]))
                .collect(),
            secret_matches: secret_labels
                .iter()
                .map(|s| self.secret_matches.with_label_values(&[route, s]))
                .collect(),
            _expiries: SecretExpiries::default(),
        }
    }

    /// Declares the `not_after` of a route's secrets (label, instant) for
    /// `hookgate_secret_expiry_seconds`; the series last while the returned
    /// handle does (give it to `RouteMetrics::with_expiries`).
    pub fn secret_expiries(&self, route: &str, secrets: &[(String, SystemTime)]) -> SecretExpiries {
        self.secret_expiry.register(route, secrets)
    }

    /// Resolves (and so creates at zero) the replay store's series; only a
    /// networked store calls this, so the memory store exports none of them.
    pub fn store(&self) -> StoreMetrics {
        StoreMetrics {
            duration: EnumMap::from_fn(|op: StoreOp| {
                self.store_duration.with_label_values(&[op.as_str()])
            }),
            errors: EnumMap::from_fn(|op: StoreOp| {
                self.store_errors.with_label_values(&[op.as_str()])
            }),
        }
    }

    /// Resolves (and so creates at zero) one route's queue series.
    pub fn queue(&self, route: &str) -> QueueMetrics {
        QueueMetrics {
            depth: self.queue_depth.with_label_values(&[route]),
            oldest_seconds: self.queue_oldest.with_label_values(&[route]),
            attempts: EnumMap::from_fn(|a: Attempt| {
                self.queue_attempts.with_label_values(&[route, a.as_str()])
            }),
            dead_letters: self.queue_dead_letters.with_label_values(&[route]),
            undecodable: self.queue_undecodable.with_label_values(&[route]),
        }
    }

    /// The Prometheus text exposition of every metric.
    pub fn encode(&self) -> String {
        let mut buf = Vec::new();
        // Encoding into a Vec cannot fail on I/O; a failure would be a
        // malformed family, which fixed definitions rule out.
        if let Err(e) = TextEncoder::new().encode(&self.registry.gather(), &mut buf) {
            tracing::error!(error = %e, "encoding metrics failed");
        }
        String::from_utf8_lossy(&buf).into_owned()
    }

    pub fn reload(&self, ok: bool) {
        self.config_reloads
            .with_label_values(&[if ok { "success" } else { "failure" }])
            .inc();
    }
}
