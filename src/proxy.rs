//! One request: route -> body -> verify -> replay -> forward, and the single
//! place where outcomes become responses, metrics and the request's log line.

// Every enum match here names each variant: a new one must be decided, not defaulted.
#![warn(clippy::wildcard_enum_match_arm)]

use std::sync::Arc;
use std::time::SystemTime;

use arc_swap::ArcSwap;
use bytes::Bytes;
use http::{request, Request, Response, StatusCode};
use http_body_util::Either;
use hyper::body::Incoming;
use tokio::sync::Semaphore;
// tokio's clock (std's outside tests): each reading below serves every use
// that falls at that moment (a reading costs ~80 ns where `rdtsc` traps).
use tokio::time::Instant;

use crate::body;
use crate::config::{Delivery, Mode};
use crate::dedup::{self, Repeat};
use crate::detach::Detach;
use crate::forward::{Forwarder, Origin, UpstreamBody};
use crate::metrics::{GaugeGuard, Metrics, Outcome, Reason, RouteMetrics};
use crate::outcome;
use crate::replay::{Store, Ticket};
use crate::route::Route;
pub use crate::route::Runtime;
use crate::strict;
use crate::verify::{Input, Pass, Rejection, Verified};

pub use crate::outcome::ProxyBody;

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
    /// `[queue]`: where `delivery = "queue"` routes store what they accept.
    queue: Option<Arc<crate::queue::Queue>>,
}

/// A verified (or shadow) request on its way to the application, with what
/// must live exactly as long as its forward.
struct Outgoing {
    pass: Pass,
    parts: request::Parts,
    blocks: Vec<Bytes>,
    reservation: body::Reservation,
    ticket: Option<Ticket>,
    origin: Origin,
}

/// The pass to forward with, the replay ticket to settle, the id to log.
type Decided = (Pass, Option<Ticket>, Option<String>);

/// An in-flight slot and its gauge, held until the response is handed back.
type Slot<'a> = (tokio::sync::SemaphorePermit<'a>, GaugeGuard<'a>);

/// How a request ended, before it becomes a response.
// Built once per request and moved into `finish`: boxing the large variant
// would cost an allocation on every forwarded request to save a few bytes of stack.
#[allow(clippy::large_enum_variant)]
enum End {
    /// The application's response, its body bounded by `upstream.timeout`.
    Forwarded(Response<UpstreamBody>),
    Duplicate,
    /// Stored for delivery (`delivery = "queue"`): answered 202.
    Queued,
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
            queue: None,
        }
    }

    /// The queue that `delivery = "queue"` routes store into.
    pub fn with_queue(self, queue: Option<Arc<crate::queue::Queue>>) -> Self {
        Proxy { queue, ..self }
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
            .pipeline(&runtime, &route, req, origin, &forwarder, start)
            .await;
        self.finish(Some(&route), end, message_id.as_deref(), start)
    }

    /// The request path after routing, one step a line; each step either
    /// passes on what the next needs or says how the request ends.
    async fn pipeline(
        self: &Arc<Self>,
        runtime: &Runtime,
        route: &Arc<Route>,
        req: Request<Incoming>,
        origin: Origin,
        forwarder: &Arc<Forwarder>,
        start: Instant,
    ) -> (End, Option<String>) {
        let (mut parts, incoming) = req.into_parts();
        if let Err(reason) = shape(route, &parts) {
            return (End::Rejected(reason), None);
        }
        // `reservation` keeps the body's bytes counted against `max_buffered`
        // for as long as they are held: until the forward is done.
        // The body is due `body_timeout` after its head, read at `start`.
        let due = start + runtime.body_timeout;
        let (blocks, reservation) = match self.read_body(runtime, &parts, incoming, due).await {
            Ok(read) => read,
            Err(reason) => return (End::Rejected(reason), None),
        };
        // One wall-clock read: the time verified against is the time attested.
        let now = (self.clock)();
        let verdict = route.verifier.verify(
            &Input::of(&parts, &blocks, route.public_url.as_deref()),
            now,
        );
        let attested = verdict.as_ref().ok().map(|v| *v.replay_id());
        let _slot = match self.admit(route, &verdict) {
            Ok(slot) => slot,
            Err(reason) => return (End::Rejected(reason), None),
        };
        let (pass, ticket, message_id) = match self.decide(runtime, route, verdict).await {
            Ok(decided) => decided,
            Err(ended) => return ended,
        };
        // Inbound Hookgate-* headers never reach the app; a verified request
        // gets an attestation. The end-to-end headers are settled first, so a
        // client cannot name the attestation in `Connection` to strip it.
        crate::forward::end_to_end(&mut parts);
        if route.delivery == Delivery::Queue {
            let accepted = crate::queue::Accepted::new(parts, blocks, attested, origin);
            let queue = self.queue.clone();
            let end = match crate::queue::enqueue(queue, &self.store, route, accepted, ticket).await
            {
                Ok(()) => End::Queued,
                Err(reason) => End::Rejected(reason),
            };
            return (end, message_id);
        }
        let key = route.attestation.as_deref();
        crate::attest::attest(
            &mut parts.headers,
            key,
            &route.name,
            attested.as_ref(),
            &blocks,
            now,
        );
        let outgoing = Outgoing {
            pass,
            parts,
            blocks,
            reservation,
            ticket,
            origin,
        };
        (self.forward(route, forwarder, outgoing).await, message_id)
    }

    async fn read_body(
        &self,
        runtime: &Runtime,
        parts: &request::Parts,
        incoming: Incoming,
        due: Instant,
    ) -> Result<(Vec<Bytes>, body::Reservation), Reason> {
        let read = body::read(
            incoming,
            body::declared_length(&parts.headers),
            runtime.max_body,
            due,
            &self.buffered,
        )
        .await;
        read.map_err(outcome::body_reason)
    }

    /// Takes an in-flight slot for what will be forwarded. Slots are held by
    /// verified requests being forwarded, not by bodies still arriving
    /// (DESIGN §4): slow unsigned uploads are bounded by body_timeout,
    /// max_buffered and max_connections instead.
    fn admit(
        &self,
        route: &Route,
        verdict: &Result<Verified, Rejection>,
    ) -> Result<Option<Slot<'_>>, Reason> {
        let forwards = match verdict {
            Ok(_) => true,
            Err(_) => route.mode == Mode::Shadow,
        };
        if !forwards {
            return Ok(None);
        }
        let Ok(permit) = self.inflight.try_acquire() else {
            return Err(Reason::Overloaded);
        };
        Ok(Some((permit, GaugeGuard::new(&self.metrics.inflight))))
    }

    /// What a verdict means for this route: the pass to forward with, the
    /// replay ticket to settle and the message id to log, or how it ends.
    async fn decide(
        &self,
        runtime: &Runtime,
        route: &Route,
        verdict: Result<Verified, Rejection>,
    ) -> Result<Decided, (End, Option<String>)> {
        match verdict {
            Ok(verified) => {
                let claimed =
                    dedup::claim(&self.store, runtime.on_store_error, route, &verified).await;
                let pass = verified.pass();
                let message_id = verified.into_message_id();
                match claimed {
                    Ok(ticket) => Ok((pass, ticket, message_id)),
                    Err(Repeat::Duplicate) => Err((End::Duplicate, message_id)),
                    Err(Repeat::Refused(reason)) => Err((End::Rejected(reason), message_id)),
                }
            }
            Err(rejection) => {
                let reason = outcome::rejection_reason(rejection);
                match route.mode {
                    Mode::Enforce => Err((End::Rejected(reason), None)),
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
                        Ok((Pass::shadow_unverified(), None, None))
                    }
                }
            }
        }
    }

    /// Forwards in this task, but never cancelled halfway: a provider that
    /// hangs up mid-request must not leave its id claimed but never settled,
    /// so a dropped forward finishes in a task of its own.
    async fn forward(
        self: &Arc<Self>,
        route: &Arc<Route>,
        forwarder: &Arc<Forwarder>,
        out: Outgoing,
    ) -> End {
        let this = Arc::clone(self);
        let route = Arc::clone(route);
        let upstream = Arc::clone(forwarder);
        // Made here, so the future below holds the request, not its parts too.
        let req = forwarder.request(out.pass, out.parts, out.blocks, &out.origin);
        let (reservation, ticket) = (out.reservation, out.ticket);
        let forward = Detach::new(async move {
            let started = Instant::now();
            let answer = match req {
                Ok(req) => upstream.send(req, started).await,
                Err(e) => Err(e),
            };
            // When the response's head arrived (read by the forwarder), or
            // when it failed: its duration, the start of its body's
            // deadline, and the delivered id's.
            let (result, arrived) = match answer {
                Ok((resp, arrived)) => (Ok(resp), arrived),
                Err(e) => (Err(e), Instant::now()),
            };
            drop(reservation);
            if let Ok(resp) = &result {
                route
                    .metrics
                    .upstream_duration
                    .observe((arrived - started).as_secs_f64());
                route.metrics.upstream_status(resp.status());
            }
            if let Some(ticket) = ticket {
                let accepted = matches!(&result, Ok(r) if r.status().is_success());
                dedup::settle(&this.store, &route, ticket, accepted, arrived).await;
            }
            (result, arrived)
        });
        match forward.await {
            (Ok(resp), arrived) => End::Forwarded(resp.map(|b| forwarder.bounded(b, arrived))),
            (Err(e), _) => End::Rejected(outcome::forward_reason(e)),
        }
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
                outcome::json(StatusCode::OK, r#"{"status":"duplicate"}"#),
            ),
            End::Queued => (
                Outcome::Queued,
                None,
                outcome::json(StatusCode::ACCEPTED, r#"{"status":"queued"}"#),
            ),
            End::Rejected(reason) => {
                let (outcome, resp) = outcome::rejected(reason, route.map(|r| &**r));
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
            // A `str` field, not a format string: the line's formatter then
            // writes it as it is, without `core::fmt`.
            message = "request",
        );
        response
    }
}

/// The request's shape, before its body is read: framing (one valid `Host`,
/// `chunked` only), an accepted method, guarded headers sent once.
fn shape(route: &Route, parts: &request::Parts) -> Result<(), Reason> {
    strict::framing(parts).map_err(outcome::malformed_reason)?;
    if !route.methods.contains(&parts.method) {
        return Err(Reason::MethodNotAllowed);
    }
    strict::guarded_headers(&parts.headers, &route.guarded).map_err(outcome::malformed_reason)
}
