//! Prometheus metrics: an owned `Registry`; every label value comes from config or a fixed enum.
//!
//! Per-route handles are resolved once when the route table is built, so the
//! request path increments plain counters without hashing label values, and
//! no request can create a series (an unknown path is `route="unmatched"`).
//!
//! `hookgate_secret_expiry_seconds` is computed when scraped, from the
//! `not_after` of the secrets of every route table still alive: a table
//! dropped after a reload takes its series with it.

use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::time::SystemTime;

use prometheus::core::{Collector, Desc};
use prometheus::proto::MetricFamily;
use prometheus::{
    Encoder, GaugeVec, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge,
    Opts, Registry, TextEncoder,
};

/// The `outcome` label of `hookgate_requests_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Forwarded,
    Rejected,
    Duplicate,
    UpstreamError,
}

impl Outcome {
    pub const ALL: [Outcome; 4] = [
        Outcome::Forwarded,
        Outcome::Rejected,
        Outcome::Duplicate,
        Outcome::UpstreamError,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Forwarded => "forwarded",
            Outcome::Rejected => "rejected",
            Outcome::Duplicate => "duplicate",
            Outcome::UpstreamError => "upstream_error",
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// Every answer hookgate gives itself: the `reason` label and the JSON `error` string.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    NoRoute,
    MethodNotAllowed,
    BodyTooLarge,
    Timeout,
    BadRequest,
    MissingSignature,
    InvalidSignature,
    StaleTimestamp,
    InFlight,
    UpstreamUnavailable,
    UpstreamTimeout,
    ReplayStoreUnavailable,
    Overloaded,
    NotImplemented,
}

impl Reason {
    pub const ALL: [Reason; 14] = [
        Reason::NoRoute,
        Reason::MethodNotAllowed,
        Reason::BodyTooLarge,
        Reason::Timeout,
        Reason::BadRequest,
        Reason::MissingSignature,
        Reason::InvalidSignature,
        Reason::StaleTimestamp,
        Reason::InFlight,
        Reason::UpstreamUnavailable,
        Reason::UpstreamTimeout,
        Reason::ReplayStoreUnavailable,
        Reason::Overloaded,
        Reason::NotImplemented,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Reason::NoRoute => "no_route",
            Reason::MethodNotAllowed => "method_not_allowed",
            Reason::BodyTooLarge => "body_too_large",
            Reason::Timeout => "timeout",
            Reason::BadRequest => "bad_request",
            Reason::MissingSignature => "missing_signature",
            Reason::InvalidSignature => "invalid_signature",
            Reason::StaleTimestamp => "stale_timestamp",
            Reason::InFlight => "in_flight",
            Reason::UpstreamUnavailable => "upstream_unavailable",
            Reason::UpstreamTimeout => "upstream_timeout",
            Reason::ReplayStoreUnavailable => "replay_store_unavailable",
            Reason::Overloaded => "overloaded",
            Reason::NotImplemented => "not_implemented",
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// The `op` label of the replay store's latency and error metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoreOp {
    Claim,
    Delivered,
    Release,
    Ping,
}

impl StoreOp {
    pub const ALL: [StoreOp; 4] = [
        StoreOp::Claim,
        StoreOp::Delivered,
        StoreOp::Release,
        StoreOp::Ping,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            StoreOp::Claim => "claim",
            StoreOp::Delivered => "delivered",
            StoreOp::Release => "release",
            StoreOp::Ping => "ping",
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// The replay store's per-operation handles, resolved once (networked stores only).
#[derive(Clone)]
pub struct StoreMetrics {
    duration: Vec<Histogram>,
    errors: Vec<IntCounter>,
}

impl StoreMetrics {
    pub fn observe(&self, op: StoreOp, seconds: f64, ok: bool) {
        self.duration[op.index()].observe(seconds);
        if !ok {
            self.errors[op.index()].inc();
        }
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
    requests: Vec<IntCounter>,
    rejections: Vec<IntCounter>,
    /// Indexed like `Reason::ALL`, then one for `duplicate`.
    shadow_rejections: Vec<IntCounter>,
    pub request_duration: Histogram,
    pub upstream_duration: Histogram,
    upstream_responses: Vec<IntCounter>,
    secret_matches: Vec<IntCounter>,
    /// Keeps this route's `hookgate_secret_expiry_seconds` series alive (never read).
    _expiries: SecretExpiries,
}

impl RouteMetrics {
    pub fn request(&self, outcome: Outcome) {
        self.requests[outcome.index()].inc();
    }

    pub fn rejection(&self, reason: Reason) {
        self.rejections[reason.index()].inc();
    }

    /// A `mode = "shadow"` route let through what enforce mode would have
    /// answered itself (`None`: a duplicate it would have answered 200).
    pub fn shadow_rejection(&self, reason: Option<Reason>) {
        let i = reason.map_or(Reason::ALL.len(), Reason::index);
        if let Some(c) = self.shadow_rejections.get(i) {
            c.inc();
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

/// One secret's end, as its route table declared it.
struct ExpiryEntry {
    route: String,
    secret: String,
    not_after: SystemTime,
}

/// A route's secrets' ends: the series of `hookgate_secret_expiry_seconds`
/// exist while a handle lives (the route table holds it).
#[derive(Clone, Default)]
pub struct SecretExpiries {
    _held: Vec<Arc<ExpiryEntry>>,
}

/// The collector behind `hookgate_secret_expiry_seconds{route,secret}`:
/// seconds from the scrape until each secret's `not_after` (negative once it
/// has passed), for secrets that have one.
struct SecretExpiry {
    gauge: GaugeVec,
    /// Registration order: a later table's entry (after a reload) wins.
    entries: Mutex<Vec<Weak<ExpiryEntry>>>,
    clock: fn() -> SystemTime,
}

impl SecretExpiry {
    fn new(clock: fn() -> SystemTime) -> Self {
        SecretExpiry {
            gauge: must(GaugeVec::new(
                Opts::new(
                    "hookgate_secret_expiry_seconds",
                    "Seconds until a route secret's not_after (negative once passed); absent for a secret without one.",
                ),
                &["route", "secret"],
            )),
            entries: Mutex::new(Vec::new()),
            clock,
        }
    }

    fn register(&self, route: &str, secrets: &[(String, SystemTime)]) -> SecretExpiries {
        let handles: Vec<Arc<ExpiryEntry>> = secrets
            .iter()
            .map(|(secret, not_after)| {
                Arc::new(ExpiryEntry {
                    route: route.to_string(),
                    secret: secret.clone(),
                    not_after: *not_after,
                })
            })
            .collect();
        // A poisoned lock only means another scrape panicked; the list is still whole.
        let mut entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        entries.retain(|w| w.strong_count() > 0);
        entries.extend(handles.iter().map(Arc::downgrade));
        SecretExpiries { _held: handles }
    }
}

/// The registry owns a `Box<dyn Collector>`; `Metrics` keeps the other `Arc`.
struct ExpiryCollector(Arc<SecretExpiry>);

impl Collector for ExpiryCollector {
    fn desc(&self) -> Vec<&Desc> {
        self.0.gauge.desc()
    }

    fn collect(&self) -> Vec<MetricFamily> {
        let inner = &self.0;
        // Held across reset + set + collect, so concurrent scrapes do not interleave.
        let mut entries = inner.entries.lock().unwrap_or_else(PoisonError::into_inner);
        entries.retain(|w| w.strong_count() > 0);
        inner.gauge.reset();
        let now = (inner.clock)();
        for e in entries.iter().filter_map(Weak::upgrade) {
            let seconds = match e.not_after.duration_since(now) {
                Ok(left) => left.as_secs_f64(),
                Err(past) => -past.duration().as_secs_f64(),
            };
            inner
                .gauge
                .with_label_values(&[e.route.as_str(), e.secret.as_str()])
                .set(seconds);
        }
        inner.gauge.collect()
    }
}

fn must<T>(r: prometheus::Result<T>) -> T {
    // Registration only fails on a duplicate or malformed name; every name
    // here is a fixed literal registered once, so this cannot happen.
    match r {
        Ok(v) => v,
        Err(e) => unreachable!("metric definition: {e}"),
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let registry = Registry::new();
        let buckets = vec![
            0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
            25.0,
        ];
        let requests = must(IntCounterVec::new(
            Opts::new("hookgate_requests_total", "Requests by route and outcome."),
            &["route", "outcome"],
        ));
        let rejections = must(IntCounterVec::new(
            Opts::new(
                "hookgate_rejections_total",
                "Requests hookgate answered itself, by route and reason.",
            ),
            &["route", "reason"],
        ));
        let shadow_rejections = must(IntCounterVec::new(
            Opts::new(
                "hookgate_shadow_rejections_total",
                "Requests a mode = \"shadow\" route forwarded that enforce mode would have answered itself, by route and reason.",
            ),
            &["route", "reason"],
        ));
        let request_duration = must(HistogramVec::new(
            HistogramOpts::new(
                "hookgate_request_duration_seconds",
                "Whole request duration, from headers received to response headers sent.",
            )
            .buckets(buckets.clone()),
            &["route"],
        ));
        let upstream_duration = must(HistogramVec::new(
            HistogramOpts::new(
                "hookgate_upstream_duration_seconds",
                "Time the application took to answer a forwarded request.",
            )
            .buckets(buckets),
            &["route"],
        ));
        let store_duration = must(HistogramVec::new(
            HistogramOpts::new(
                "hookgate_replay_store_duration_seconds",
                "Round trips to the replay store (Redis), by operation, failures included.",
            )
            // A store round trip is sub-millisecond on a healthy network.
            .buckets(vec![
                0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
                1.0, 2.5,
            ]),
            &["op"],
        ));
        let store_errors = must(IntCounterVec::new(
            Opts::new(
                "hookgate_replay_store_errors_total",
                "Replay store (Redis) operations that failed or timed out, by operation.",
            ),
            &["op"],
        ));
        let upstream_responses = must(IntCounterVec::new(
            Opts::new(
                "hookgate_upstream_responses_total",
                "Application responses by route and status class.",
            ),
            &["route", "class"],
        ));
        let secret_matches = must(IntCounterVec::new(
            Opts::new(
                "hookgate_secret_matches_total",
                "Which secret of a route's list verified each request (position or name).",
            ),
            &["route", "secret"],
        ));
        let secret_expiry = Arc::new(SecretExpiry::new(SystemTime::now));
        let inflight = must(IntGauge::new(
            "hookgate_inflight_requests",
            "Requests being processed now.",
        ));
        let replay_entries = must(IntGauge::new(
            "hookgate_replay_entries",
            "Ids held by the replay store (memory store).",
        ));
        let config_reloads = must(IntCounterVec::new(
            Opts::new(
                "hookgate_config_reloads_total",
                "Configuration reloads by result.",
            ),
            &["result"],
        ));
        let tls_handshake_errors = must(IntCounter::new(
            "hookgate_tls_handshake_errors_total",
            "TLS handshakes that failed.",
        ));
        let accept_errors = must(IntCounter::new(
            "hookgate_accept_errors_total",
            "Failed accepts on the public listener (e.g. out of file descriptors).",
        ));
        let connection_errors = must(IntCounter::new(
            "hookgate_connection_errors_total",
            "Public connections that ended with an error (reset, header timeout, bad request).",
        ));
        let open_connections = must(IntGauge::new(
            "hookgate_open_connections",
            "Public connections open now (limits.max_connections caps it).",
        ));
        let buffered_bytes = must(IntGauge::new(
            "hookgate_buffered_bytes",
            "Request body bytes held now (limits.max_buffered caps it).",
        ));
        for c in [
            Box::new(requests.clone()) as Box<dyn prometheus::core::Collector>,
            Box::new(rejections.clone()),
            Box::new(shadow_rejections.clone()),
            Box::new(request_duration.clone()),
            Box::new(upstream_duration.clone()),
            Box::new(upstream_responses.clone()),
            Box::new(secret_matches.clone()),
            Box::new(ExpiryCollector(Arc::clone(&secret_expiry))),
            Box::new(store_duration.clone()),
            Box::new(store_errors.clone()),
            Box::new(inflight.clone()),
            Box::new(replay_entries.clone()),
            Box::new(config_reloads.clone()),
            Box::new(tls_handshake_errors.clone()),
            Box::new(accept_errors.clone()),
            Box::new(connection_errors.clone()),
            Box::new(open_connections.clone()),
            Box::new(buffered_bytes.clone()),
        ] {
            must(registry.register(c));
        }
        #[cfg(target_os = "linux")]
        must(registry.register(Box::new(
            prometheus::process_collector::ProcessCollector::for_self(),
        )));
        for result in ["success", "failure"] {
            config_reloads.with_label_values(&[result]);
        }
        Metrics {
            registry,
            requests,
            rejections,
            shadow_rejections,
            request_duration,
            upstream_duration,
            upstream_responses,
            secret_matches,
            secret_expiry,
            store_duration,
            store_errors,
            inflight,
            replay_entries,
            config_reloads,
            tls_handshake_errors,
            accept_errors,
            connection_errors,
            open_connections,
            buffered_bytes,
        }
    }

    /// Resolves (and so creates at zero) every series of one route.
    pub fn route(&self, route: &str, secret_labels: &[String]) -> RouteMetrics {
        RouteMetrics {
            requests: Outcome::ALL
                .iter()
                .map(|o| self.requests.with_label_values(&[route, o.as_str()]))
                .collect(),
            rejections: Reason::ALL
                .iter()
                .map(|r| self.rejections.with_label_values(&[route, r.as_str()]))
                .collect(),
            shadow_rejections: Reason::ALL
                .iter()
                .map(|r| r.as_str())
                .chain(["duplicate"])
                .map(|r| self.shadow_rejections.with_label_values(&[route, r]))
                .collect(),
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
            duration: StoreOp::ALL
                .iter()
                .map(|op| self.store_duration.with_label_values(&[op.as_str()]))
                .collect(),
            errors: StoreOp::ALL
                .iter()
                .map(|op| self.store_errors.with_label_values(&[op.as_str()]))
                .collect(),
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

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use std::time::{Duration, UNIX_EPOCH};

    use super::*;

    fn fixed_now() -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(1_796_083_200)
    }

    fn values(c: &ExpiryCollector) -> Vec<(String, String, f64)> {
        let mut out = Vec::new();
        for family in c.collect() {
            for m in family.get_metric() {
                let label = |n: &str| {
                    m.get_label()
                        .iter()
                        .find(|l| l.name() == n)
                        .map(|l| l.value().to_string())
                        .unwrap()
                };
                out.push((label("route"), label("secret"), m.get_gauge().get_value()));
            }
        }
        out.sort_by(|a, b| a.1.cmp(&b.1));
        out
    }

    #[test]
    fn expiry_is_seconds_to_not_after_at_scrape_and_lives_with_its_table() {
        let c = ExpiryCollector(Arc::new(SecretExpiry::new(fixed_now)));
        let now = fixed_now();
        let week = Duration::from_secs(7 * 86_400);
        let table = c.0.register(
            "levers",
            &[
                ("old".into(), now + week),
                ("older".into(), now - Duration::from_secs(60)),
            ],
        );
        assert_eq!(
            values(&c),
            vec![
                ("levers".into(), "old".into(), 604_800.0),
                ("levers".into(), "older".into(), -60.0),
            ]
        );
        // A reload builds a new table: while both live, the newer entry wins;
        // once the old one is dropped, only the new table's series remain.
        let reloaded = c.0.register("levers", &[("old".into(), now + week + week)]);
        assert_eq!(values(&c)[0].2, 2.0 * 604_800.0);
        drop(table);
        assert_eq!(
            values(&c),
            vec![("levers".into(), "old".into(), 1_209_600.0)]
        );
        drop(reloaded);
        assert!(values(&c).is_empty());
    }

    #[test]
    fn the_gauge_is_in_the_exposition_only_for_secrets_with_an_end() {
        let m = Metrics::new();
        assert!(!m.encode().contains("hookgate_secret_expiry_seconds{"));
        let _held = m.secret_expiries(
            "r",
            &[("0".into(), SystemTime::now() + Duration::from_secs(3600))],
        );
        let text = m.encode();
        let line = text
            .lines()
            .find(|l| l.starts_with("hookgate_secret_expiry_seconds{"))
            .unwrap();
        assert!(
            line.contains(r#"route="r""#) && line.contains(r#"secret="0""#),
            "{line}"
        );
        let v: f64 = line.rsplit(' ').next().unwrap().parse().unwrap();
        assert!((3500.0..=3600.0).contains(&v), "{line}");
    }
}
