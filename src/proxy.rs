//! One request: route -> body -> verify -> replay -> forward, and the single
//! place where outcomes become responses, metrics and the request's log line.

use std::sync::Arc;
use std::time::{Instant, SystemTime};

use arc_swap::ArcSwap;
use bytes::Bytes;
use http::header::{self, HeaderValue};
use http::{Request, Response, StatusCode};
use http_body_util::{Either, Full};
use hyper::body::Incoming;
use tokio::sync::Semaphore;

use crate::body::{self, BodyError};
use crate::config::{Config, ConfigError, Mode, OnStoreError};
use crate::detach::Detach;
use crate::forward::{ForwardError, Forwarder, Origin, UpstreamBody};
use crate::metrics::{Metrics, Outcome, Reason, RouteMetrics};
use crate::replay::{Claim, Store, Ticket};
use crate::route::{Route, RouteTable};
use crate::strict::{self, Malformed};
use crate::verify::{Input, Pass, Payload, Rejection, Verified};

/// Responses are either hookgate's own JSON or the application's streamed body.
pub type ProxyBody = Either<Full<Bytes>, UpstreamBody>;

/// What can change on reload: swapped atomically as one value.
pub struct Runtime {
    pub routes: RouteTable,
    pub max_body: u64,
    pub body_timeout: std::time::Duration,
    pub on_store_error: OnStoreError,
}

impl Runtime {
    /// Builds the request-time state from a configuration (at start and on reload).
    pub fn build(config: &Config, metrics: &Metrics) -> Result<Runtime, ConfigError> {
        Ok(Runtime {
            routes: RouteTable::build(config, metrics)?,
            max_body: config.limits.max_body,
            body_timeout: config.limits.body_timeout,
            on_store_error: config.replay.on_store_error,
        })
    }
}

/// The clock verification is given; tests pass a fixed one.
pub type Clock = fn() -> SystemTime;

/// The request path's shared state: one per process, used by every worker.
/// The upstream client is per worker and handed to [`Proxy::handle`].
pub struct Proxy {
    runtime: ArcSwap<Runtime>,
    store: Arc<Store>,
    metrics: Arc<Metrics>,
    unmatched: RouteMetrics,
    inflight: Semaphore,
    /// `limits.max_buffered`: bytes of bodies held at once, across all requests.
    buffered: body::Budget,
    clock: Clock,
}

/// How a request ended, before it becomes a response.
// Built once per request and moved into `finish`: boxing the large variant
// would cost an allocation on every forwarded request to save a few bytes of stack.
#[allow(clippy::large_enum_variant)]
enum End {
    /// The application's response, its body bounded by `upstream.timeout`.
    Forwarded(Response<UpstreamBody>),
    Duplicate,
    Rejected(Reason),
}

impl Proxy {
    pub fn new(
        runtime: Runtime,
        store: Arc<Store>,
        metrics: Arc<Metrics>,
        max_inflight: usize,
        max_buffered: u64,
        clock: Clock,
    ) -> Self {
        let unmatched = metrics.route("unmatched", &[]);
        let buffered = body::Budget::new(max_buffered, metrics.buffered_bytes.clone());
        Proxy {
            runtime: ArcSwap::from_pointee(runtime),
            store,
            metrics,
            unmatched,
            inflight: Semaphore::new(max_inflight),
            buffered,
            clock,
        }
    }

    /// Swaps in a reloaded configuration; requests already running keep the old one.
    pub fn swap(&self, runtime: Runtime) {
        self.runtime.store(Arc::new(runtime));
        self.store
            .set_on_store_error(self.runtime.load().on_store_error);
    }

    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.metrics
    }

    pub fn store(&self) -> &Arc<Store> {
        &self.store
    }

    /// Handles one request end to end; never fails (every error is a response).
    /// `forwarder` is the calling worker's own upstream client.
    pub async fn handle(
        self: Arc<Self>,
        req: Request<Incoming>,
        origin: Origin,
        forwarder: Arc<Forwarder>,
    ) -> Response<ProxyBody> {
        let start = Instant::now();
        let runtime = self.runtime.load_full();
        // The path is forwarded as received: one the application might
        // normalise onto another route (`/webhooks/../admin`) never leaves here.
        if !crate::route::is_clean_path(req.uri().path()) {
            return self.finish(None, End::Rejected(Reason::BadRequest), None, start);
        }
        let Some(route) = runtime.routes.find(req.uri().path()).cloned() else {
            return self.finish(None, End::Rejected(Reason::NoRoute), None, start);
        };
        let (end, message_id) = self
            .pipeline(&runtime, &route, req, origin, &forwarder)
            .await;
        self.finish(Some(&route), end, message_id.as_deref(), start)
    }

    async fn pipeline(
        self: &Arc<Self>,
        runtime: &Runtime,
        route: &Arc<Route>,
        req: Request<Incoming>,
        origin: Origin,
        forwarder: &Arc<Forwarder>,
    ) -> (End, Option<String>) {
        let (mut parts, incoming) = req.into_parts();
        if let Err(m) = strict::framing(&parts) {
            return (End::Rejected(malformed_reason(m)), None);
        }
        if !route.methods.contains(&parts.method) {
            return (End::Rejected(Reason::MethodNotAllowed), None);
        }
        if let Err(m) = strict::guarded_headers(&parts.headers, &route.guarded) {
            return (End::Rejected(malformed_reason(m)), None);
        }
        let read = body::read(
            incoming,
            body::declared_length(&parts.headers),
            runtime.max_body,
            runtime.body_timeout,
            &self.buffered,
        )
        .await;
        // `reservation` keeps the body's bytes counted against `max_buffered`
        // for as long as they are held: until the forward below is done.
        let (blocks, reservation) = match read {
            Ok(b) => b,
            Err(BodyError::TooLarge) => return (End::Rejected(Reason::BodyTooLarge), None),
            Err(BodyError::Timeout) => return (End::Rejected(Reason::Timeout), None),
            Err(BodyError::Incomplete) => return (End::Rejected(Reason::BadRequest), None),
            Err(BodyError::BudgetSpent) => return (End::Rejected(Reason::Overloaded), None),
        };

        let path_and_query = parts
            .uri
            .path_and_query()
            .map_or("/", http::uri::PathAndQuery::as_str);
        let input = Input {
            method: &parts.method,
            path_and_query,
            headers: &parts.headers,
            body: Payload::Blocks(&blocks),
            public_url: route.public_url.as_deref(),
        };
        let verdict = route.verifier.verify(&input, (self.clock)());
        // In-flight slots are held by verified requests being forwarded, not
        // by bodies still arriving (DESIGN §4): slow unsigned uploads are
        // bounded by body_timeout, max_buffered and max_connections instead.
        let admitted = match &verdict {
            Ok(_) => true,
            Err(_) => route.mode == Mode::Shadow,
        };
        let _slot = if admitted {
            let Ok(permit) = self.inflight.try_acquire() else {
                return (End::Rejected(Reason::Overloaded), None);
            };
            Some((permit, InflightGauge::new(&self.metrics.inflight)))
        } else {
            None
        };
        let attested = verdict.as_ref().ok().map(|v| *v.replay_id());
        let (pass, ticket, message_id) = match verdict {
            Ok(verified) => {
                let message_id = verified.message_id().map(str::to_string);
                let ticket = match self.claim(runtime, route, &verified).await {
                    Ok(ticket) => ticket,
                    Err(end) => return (end, message_id),
                };
                (verified.pass(), ticket, message_id)
            }
            Err(rejection) => {
                let reason = rejection_reason(rejection);
                match route.mode {
                    Mode::Enforce => return (End::Rejected(reason), None),
                    Mode::Shadow => {
                        // Shadow mode: counted (in its own family, so the
                        // rejection alerts keep meaning "the app was protected")
                        // and logged as enforce would reject it, then forwarded
                        // without a replay check.
                        route.metrics.shadow_rejection(Some(reason));
                        tracing::warn!(
                            route = %route.name,
                            reason = reason.as_str(),
                            "shadow mode: would have rejected; forwarding anyway"
                        );
                        (Pass::shadow_unverified(), None, None)
                    }
                }
            }
        };

        // Inbound Hookgate-* headers never reach the app; a verified request gets an attestation.
        let (key, now) = (route.attestation.as_deref(), (self.clock)());
        crate::attest::attest(
            &mut parts.headers,
            key,
            &route.name,
            attested.as_ref(),
            &blocks,
            now,
        );

        // Forwarded in this task, but never cancelled halfway: a provider that
        // hangs up mid-request must not leave its id claimed but never
        // settled, so a dropped forward finishes in a task of its own.
        let this = Arc::clone(self);
        let route_for_task = Arc::clone(route);
        let upstream = Arc::clone(forwarder);
        let forward = Detach::new(async move {
            let started = Instant::now();
            let result = upstream.forward(pass, parts, blocks, origin).await;
            drop(reservation);
            let metrics = &route_for_task.metrics;
            if let Ok(resp) = &result {
                metrics
                    .upstream_duration
                    .observe(started.elapsed().as_secs_f64());
                metrics.upstream_status(resp.status());
            }
            if let Some(ticket) = ticket {
                let accepted = matches!(&result, Ok(r) if r.status().is_success());
                let settled = if accepted {
                    this.store.delivered(ticket).await
                } else {
                    this.store.release(ticket).await
                };
                if let Err(e) = settled {
                    tracing::warn!(route = %route_for_task.name, error = %e, "replay store could not record the outcome");
                }
            }
            result
        });
        let end = match forward.await {
            Ok(resp) => End::Forwarded(resp.map(|b| forwarder.bounded(b))),
            Err(e) => End::Rejected(forward_reason(e)),
        };
        (end, message_id)
    }

    /// Claims the verified id: the ticket to settle after forwarding (`None`
    /// when forwarding without a replay check), or how the request ends here.
    async fn claim(
        &self,
        runtime: &Runtime,
        route: &Route,
        verified: &Verified,
    ) -> Result<Option<Ticket>, End> {
        route.metrics.secret_matched(verified.secret_index());
        let message_id = verified.message_id();

        let ticket = match self.store.claim(&route.name, verified.replay_id()).await {
            Ok(Claim::Claimed(t)) => Some(t),
            // Shadow mode changes nothing the application sees: a repeat is
            // counted as enforce mode would answer it, and forwarded.
            Ok(Claim::Duplicate) if route.mode == Mode::Shadow => {
                route.metrics.shadow_rejection(None);
                tracing::warn!(route = %route.name, message_id, "shadow mode: would have answered duplicate; forwarding anyway");
                None
            }
            Ok(Claim::InFlight) if route.mode == Mode::Shadow => {
                route.metrics.shadow_rejection(Some(Reason::InFlight));
                tracing::warn!(route = %route.name, message_id, "shadow mode: would have answered in_flight; forwarding anyway");
                None
            }
            Ok(Claim::Duplicate) => return Err(End::Duplicate),
            Ok(Claim::InFlight) => return Err(End::Rejected(Reason::InFlight)),
            Err(e) => match runtime.on_store_error {
                OnStoreError::Reject => {
                    tracing::warn!(route = %route.name, error = %e, "replay store failed: rejecting");
                    return Err(End::Rejected(Reason::ReplayStoreUnavailable));
                }
                OnStoreError::Allow => {
                    tracing::warn!(route = %route.name, error = %e, "replay store failed: forwarding without the replay check (on_store_error = allow)");
                    None
                }
            },
        };
        Ok(ticket)
    }

    /// The one place an outcome becomes a response, a metric and a log line.
    fn finish(
        &self,
        route: Option<&Arc<Route>>,
        end: End,
        message_id: Option<&str>,
        start: Instant,
    ) -> Response<ProxyBody> {
        let (metrics, name) = match route {
            Some(r) => (&r.metrics, r.name.as_str()),
            None => (&self.unmatched, "unmatched"),
        };
        let (outcome, reason, response) = match end {
            End::Forwarded(resp) => {
                let mut resp = resp.map(Either::Right);
                // The provider talks to hookgate, not to the app: an app answering
                // over HTTP/1.0 must not downgrade hookgate's own connection.
                *resp.version_mut() = http::Version::default();
                (Outcome::Forwarded, None, resp)
            }
            End::Duplicate => (
                Outcome::Duplicate,
                None,
                json(StatusCode::OK, r#"{"status":"duplicate"}"#),
            ),
            End::Rejected(reason) => {
                let (outcome, status) = reason_status(reason);
                let mut resp = json(status, &format!(r#"{{"error":"{}"}}"#, reason.as_str()));
                match reason {
                    Reason::Overloaded | Reason::ReplayStoreUnavailable => {
                        resp.headers_mut()
                            .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
                    }
                    Reason::MethodNotAllowed => {
                        if let Some(allow) = route.and_then(|r| allow_header(r)) {
                            resp.headers_mut().insert(header::ALLOW, allow);
                        }
                    }
                    Reason::NoRoute
                    | Reason::BodyTooLarge
                    | Reason::Timeout
                    | Reason::BadRequest
                    | Reason::MissingSignature
                    | Reason::InvalidSignature
                    | Reason::StaleTimestamp
                    | Reason::InFlight
                    | Reason::UpstreamUnavailable
                    | Reason::UpstreamTimeout
                    | Reason::NotImplemented => {}
                }
                (outcome, Some(reason), resp)
            }
        };
        let elapsed = start.elapsed();
        metrics.request(outcome);
        if let Some(reason) = reason {
            metrics.rejection(reason);
        }
        metrics.request_duration.observe(elapsed.as_secs_f64());
        tracing::info!(
            route = name,
            outcome = outcome.as_str(),
            reason = reason.map(Reason::as_str),
            status = response.status().as_u16(),
            duration_ms = elapsed.as_secs_f64() * 1000.0,
            message_id,
            "request"
        );
        response
    }
}

/// Keeps `hookgate_inflight_requests` right even when a client hangs up and
/// hyper drops the request future midway.
struct InflightGauge<'a>(&'a prometheus::IntGauge);

impl<'a> InflightGauge<'a> {
    fn new(gauge: &'a prometheus::IntGauge) -> Self {
        gauge.inc();
        InflightGauge(gauge)
    }
}

impl Drop for InflightGauge<'_> {
    fn drop(&mut self) {
        self.0.dec();
    }
}

/// Status and outcome label of each of hookgate's own answers (DESIGN §4).
fn reason_status(reason: Reason) -> (Outcome, StatusCode) {
    match reason {
        Reason::NoRoute => (Outcome::Rejected, StatusCode::NOT_FOUND),
        Reason::MethodNotAllowed => (Outcome::Rejected, StatusCode::METHOD_NOT_ALLOWED),
        Reason::BodyTooLarge => (Outcome::Rejected, StatusCode::PAYLOAD_TOO_LARGE),
        Reason::Timeout => (Outcome::Rejected, StatusCode::REQUEST_TIMEOUT),
        Reason::BadRequest => (Outcome::Rejected, StatusCode::BAD_REQUEST),
        Reason::MissingSignature | Reason::InvalidSignature | Reason::StaleTimestamp => {
            (Outcome::Rejected, StatusCode::UNAUTHORIZED)
        }
        Reason::InFlight => (Outcome::Rejected, StatusCode::CONFLICT),
        Reason::UpstreamUnavailable => (Outcome::UpstreamError, StatusCode::BAD_GATEWAY),
        Reason::UpstreamTimeout => (Outcome::UpstreamError, StatusCode::GATEWAY_TIMEOUT),
        Reason::ReplayStoreUnavailable | Reason::Overloaded => {
            (Outcome::Rejected, StatusCode::SERVICE_UNAVAILABLE)
        }
        Reason::NotImplemented => (Outcome::Rejected, StatusCode::NOT_IMPLEMENTED),
    }
}

fn malformed_reason(m: Malformed) -> Reason {
    match m {
        Malformed::Ambiguous => Reason::BadRequest,
        Malformed::UnsupportedCoding => Reason::NotImplemented,
    }
}

fn rejection_reason(r: Rejection) -> Reason {
    match r {
        Rejection::MissingSignature => Reason::MissingSignature,
        Rejection::InvalidSignature => Reason::InvalidSignature,
        Rejection::StaleTimestamp => Reason::StaleTimestamp,
    }
}

fn forward_reason(e: ForwardError) -> Reason {
    match e {
        ForwardError::Unavailable => Reason::UpstreamUnavailable,
        ForwardError::Timeout => Reason::UpstreamTimeout,
    }
}

fn allow_header(route: &Route) -> Option<HeaderValue> {
    let list: Vec<&str> = route.methods.iter().map(http::Method::as_str).collect();
    HeaderValue::from_str(&list.join(", ")).ok()
}

/// hookgate's own answers: small JSON bodies.
pub fn json(status: StatusCode, body: &str) -> Response<ProxyBody> {
    let mut resp = Response::new(Either::Left(Full::new(Bytes::copy_from_slice(
        body.as_bytes(),
    ))));
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    resp
}
