//! The delivery loop: forwards stored requests with a `Forwarder` of its own
//! (the same client and byte-for-byte rules as a normal forward), one at a
//! time per route so each route's requests arrive in the order received,
//! at most `concurrency` at once across routes; retries with backoff, and
//! dead-letters what cannot be delivered.
//!
//! Order per route is strict: the oldest record of a route blocks the ones
//! after it until it is delivered or dead-lettered, because an application
//! must not see `updated` before `created`.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use http::{HeaderName, HeaderValue, Request, StatusCode};
use http_body_util::{BodyExt, Limited};
use rand::Rng;
use tokio::sync::{watch, OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinSet;

use super::record::{instant, millis};
use super::{Heads, Queue, Stored};
use crate::attest::AttestationKey;
use crate::config;
use crate::forward::{ForwardError, Forwarder, Origin, ResponseBody};
use crate::metrics::{Attempt, Metrics, QueueMetrics};
use crate::verify::Pass;

/// Recording a delivery's outcome, when the store refuses it: first wait, and the longest.
const RECORD_RETRY_FIRST: Duration = Duration::from_millis(200);
const RECORD_RETRY_MAX: Duration = Duration::from_secs(10);

/// How one attempt ended.
enum Verdict {
    Delivered,
    /// Worth retrying (connection error, timeout, 5xx, 408, 409, 429), after at least this long.
    Retry(String, Option<Duration>),
    /// Retrying cannot help (another 4xx, a 3xx, an unreadable record).
    Final(String),
}

pub struct Deliverer {
    queue: Arc<Queue>,
    forwarder: Forwarder,
    settings: config::Queue,
    attestation: Option<AttestationKey>,
    metrics: Arc<Metrics>,
    /// Each route's series, resolved once (a stored route no longer configured included).
    routes: std::sync::Mutex<HashMap<String, QueueMetrics>>,
}

impl Deliverer {
    pub fn new(
        queue: Arc<Queue>,
        forwarder: Forwarder,
        settings: config::Queue,
        attestation: Option<AttestationKey>,
        metrics: Arc<Metrics>,
        routes: &[String],
    ) -> Deliverer {
        let resolved = routes
            .iter()
            .map(|r| (r.clone(), metrics.queue(r)))
            .collect();
        Deliverer {
            queue,
            forwarder,
            settings,
            attestation,
            metrics,
            routes: std::sync::Mutex::new(resolved),
        }
    }

    fn route_metrics(&self, route: &str) -> QueueMetrics {
        let mut routes = self
            .routes
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        routes
            .entry(route.to_string())
            .or_insert_with(|| self.metrics.queue(route))
            .clone()
    }

    /// Delivers until `shutdown`; then lets deliveries in flight finish within
    /// `grace` and leaves everything else stored for the next start.
    pub async fn run(self: Arc<Self>, mut shutdown: watch::Receiver<bool>, grace: Duration) {
        let permits = Arc::new(Semaphore::new(self.settings.concurrency));
        let poll = self.queue.store().poll();
        let mut busy: HashSet<String> = HashSet::new();
        let mut tasks: JoinSet<String> = JoinSet::new();
        // Routes that had a head at the last read: a record stored behind
        // one of them changes nothing until that head is settled.
        let mut known: HashSet<String> = HashSet::new();
        let mut rescan = true;
        let mut until = tokio::time::Instant::now();
        while !*shutdown.borrow() {
            if rescan {
                self.queue.take_fresh();
                let due = self
                    .start_due(&permits, &mut busy, &mut tasks, &mut known)
                    .await;
                until = tokio::time::Instant::now() + due.unwrap_or(poll).min(poll);
            } else {
                // Records stored behind waiting heads: only the depths moved.
                self.depth_gauges().await;
            }
            tokio::select! {
                changed = shutdown.changed() => {
                    // The gateway was dropped without a shutdown: stop too.
                    if changed.is_err() { break; }
                    rescan = true;
                }
                () = self.queue.stored().notified() => {
                    let fresh = self.queue.take_fresh();
                    rescan = fresh.all || !fresh.routes.is_subset(&known);
                }
                Some(done) = tasks.join_next(), if !tasks.is_empty() => {
                    if let Ok(route) = done { busy.remove(&route); }
                    rescan = true;
                }
                () = tokio::time::sleep_until(until) => rescan = true,
            }
        }
        let n = tasks.len();
        tracing::info!(in_flight = n, "queue: stopping deliveries");
        let store = self.queue.store();
        let drained = tokio::time::timeout(grace, async {
            // The leases of the routes still in flight are kept meanwhile
            // (redis): another replica must not start their next delivery.
            let mut renew = tokio::time::interval(poll);
            loop {
                tokio::select! {
                    done = tasks.join_next() => if done.is_none() { break },
                    _ = renew.tick() => store.renew().await,
                }
            }
        })
        .await;
        if drained.is_err() {
            tracing::warn!(
                "queue: deliveries still in flight after shutdown_grace; they stay stored"
            );
            tasks.abort_all();
        }
        self.queue.store().release().await;
    }

    /// Starts the head of each idle route that is due; returns how long until
    /// the next one not yet due. `known` becomes the routes that have a head.
    async fn start_due(
        self: &Arc<Self>,
        permits: &Arc<Semaphore>,
        busy: &mut HashSet<String>,
        tasks: &mut JoinSet<String>,
        known: &mut HashSet<String>,
    ) -> Option<Duration> {
        while let Some(done) = tasks.try_join_next() {
            if let Ok(route) = done {
                busy.remove(&route);
            }
        }
        let heads = match self.queue.store().heads().await {
            Ok(heads) => heads,
            Err(e) => {
                tracing::error!(error = %e, "queue: cannot read the store");
                return None;
            }
        };
        let Heads { due, set_aside } = heads;
        for s in set_aside {
            // Kept byte for byte among the dead letters; its route goes on.
            tracing::error!(
                route = %s.route, id = s.id, bytes = s.bytes, why = %s.why,
                "queue: a stored record does not decode; moved to the dead letters"
            );
            self.route_metrics(&s.route).undecodable.inc();
        }
        self.gauges(&due).await;
        known.clear();
        known.extend(due.iter().map(|h| h.record.route.clone()));
        let now = millis(SystemTime::now());
        let mut next: Option<Duration> = None;
        for head in due {
            if busy.contains(&head.record.route) {
                continue;
            }
            if head.record.next_attempt > now {
                let d = Duration::from_millis(head.record.next_attempt - now);
                next = Some(next.map_or(d, |n| n.min(d)));
                continue;
            }
            let Ok(permit) = Arc::clone(permits).try_acquire_owned() else {
                break;
            };
            busy.insert(head.record.route.clone());
            tasks.spawn(Arc::clone(self).deliver(head, permit));
        }
        next
    }

    /// Every known route's depth and oldest age.
    async fn gauges(&self, heads: &[Stored]) {
        let now = SystemTime::now();
        for route in self.depth_gauges().await {
            let oldest = heads
                .iter()
                .find(|h| h.record.route == route)
                .and_then(|h| now.duration_since(instant(h.record.accepted_at)).ok())
                .map_or(0, |d| d.as_secs());
            self.route_metrics(&route)
                .oldest_seconds
                .set(i64::try_from(oldest).unwrap_or(i64::MAX));
        }
    }

    /// Every known route's depth (a route with nothing pending reads 0);
    /// returns the routes known, none when the store could not count.
    async fn depth_gauges(&self) -> Vec<String> {
        let depths = match self.queue.store().depths().await {
            Ok(d) => d,
            Err(e) => {
                tracing::warn!(error = %e, "queue: cannot count the stored records");
                return Vec::new();
            }
        };
        // Resolved first, so that the loop below sees every route stored.
        for route in depths.keys() {
            self.route_metrics(route);
        }
        let known: Vec<String> = self
            .routes
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .keys()
            .cloned()
            .collect();
        for route in &known {
            let depth = depths.get(route).copied().unwrap_or(0);
            self.route_metrics(route)
                .depth
                .set(i64::try_from(depth).unwrap_or(i64::MAX));
        }
        known
    }

    /// One attempt at one record, and what it means for the record.
    async fn deliver(self: Arc<Self>, head: Stored, _permit: OwnedSemaphorePermit) -> String {
        let route = head.record.route.clone();
        let verdict = match request(&head.record, self.attestation.as_ref()) {
            Ok((parts, body, origin)) => {
                // The record was stored only after it verified (see `queue::accept`).
                let sent = self
                    .forwarder
                    .forward(Pass::stored(), parts, body, origin)
                    .await;
                self.verdict(sent).await
            }
            Err(why) => Verdict::Final(why),
        };
        self.settle(head, verdict).await;
        route
    }

    async fn verdict(&self, sent: Result<http::Response<ResponseBody>, ForwardError>) -> Verdict {
        let resp = match sent {
            Ok(resp) => resp,
            Err(ForwardError::Unavailable) => {
                return Verdict::Retry("upstream unavailable".into(), None)
            }
            Err(ForwardError::Timeout) => return Verdict::Retry("upstream timeout".into(), None),
        };
        let status = resp.status();
        let retry_after = resp
            .headers()
            .get(http::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| retry_after(v, SystemTime::now()));
        // Read (a bounded part of) the answer, so the connection can be reused.
        let body = Limited::new(
            self.forwarder
                .bounded(resp.into_body(), tokio::time::Instant::now()),
            64 << 10,
        );
        let _ = body.collect().await;
        let error = format!("status {}", status.as_u16());
        match status {
            s if s.is_success() => Verdict::Delivered,
            s if s.is_server_error()
                || s == StatusCode::REQUEST_TIMEOUT
                || s == StatusCode::CONFLICT
                || s == StatusCode::TOO_MANY_REQUESTS =>
            {
                Verdict::Retry(error, retry_after)
            }
            _ => Verdict::Final(error),
        }
    }

    /// Deletes, reschedules or dead-letters the record after an attempt.
    async fn settle(&self, mut head: Stored, verdict: Verdict) {
        let id = head.id;
        let record = &mut head.record;
        let metrics = self.route_metrics(&record.route);
        let now = SystemTime::now();
        record.attempts = record.attempts.saturating_add(1);
        let age = now
            .duration_since(instant(record.accepted_at))
            .unwrap_or_default();
        let result = match verdict {
            Verdict::Delivered => Attempt::Delivered,
            Verdict::Retry(error, retry_after)
                if record.attempts < self.settings.max_attempts && age < self.settings.max_age =>
            {
                let wait = backoff(&self.settings, record.attempts)
                    .max(retry_after.map_or(Duration::ZERO, |d| d.min(self.settings.max_age)));
                record.next_attempt = millis(now + wait);
                record.last_error = error;
                Attempt::Failed
            }
            Verdict::Retry(error, _) | Verdict::Final(error) => {
                record.last_error = error;
                Attempt::DeadLettered
            }
        };
        metrics.attempt(result);
        tracing::info!(
            route = %record.route, id, attempts = record.attempts, result = result.as_str(),
            error = %record.last_error, "queue delivery"
        );
        // The outcome is recorded before the route moves on. A store that
        // cannot record it (a full disk, Redis away) is asked again, with
        // backoff, while the route waits: the request is not delivered again
        // meanwhile. Only a shutdown first leaves it to the next start's
        // delivery (the at-least-once window).
        let store = self.queue.store();
        let mut wait = RECORD_RETRY_FIRST;
        loop {
            let saved = match result {
                Attempt::Delivered => store.delivered(&head).await,
                Attempt::Failed => store.retry_later(&head).await,
                Attempt::DeadLettered => store.dead_letter(&head).await,
            };
            let Err(e) = saved else { return };
            tracing::error!(
                route = %head.record.route, id, error = %e, retry_in = ?wait,
                "queue: cannot record a delivery's result; its route waits until it can"
            );
            tokio::time::sleep(wait).await;
            wait = (wait * 2).min(RECORD_RETRY_MAX);
        }
    }
}

/// `retry_initial` doubled per attempt up to `retry_max`, with jitter: a
/// random wait in the upper half, never below `retry_initial`, so replicas
/// and routes that failed together do not retry together.
fn backoff(settings: &config::Queue, attempts: u32) -> Duration {
    let exp = attempts.saturating_sub(1).min(32);
    let base = settings
        .retry_initial
        .saturating_mul(1u32 << exp.min(31))
        .min(settings.retry_max);
    let hi = u64::try_from(base.as_millis()).unwrap_or(u64::MAX);
    let lo = (hi / 2).max(u64::try_from(settings.retry_initial.as_millis()).unwrap_or(0));
    Duration::from_millis(rand::rng().random_range(lo.min(hi)..=hi))
}

/// `Retry-After` (RFC 9110 §10.2.3): delay-seconds or an HTTP-date; a date
/// already past means now.
fn retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    let value = value.trim();
    if let Ok(secs) = value.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let at = httpdate::parse_http_date(value).ok()?;
    Some(at.duration_since(now).unwrap_or(Duration::ZERO))
}

/// The request a record stands for, as the forwarder takes it.
fn request(
    record: &super::Record,
    key: Option<&AttestationKey>,
) -> Result<(http::request::Parts, Vec<Bytes>, Origin), String> {
    let (mut parts, ()) = Request::builder()
        .method(record.method.as_str())
        .uri(record.uri.as_str())
        .body(())
        .map_err(|e| format!("stored request is invalid: {e}"))?
        .into_parts();
    for (name, value) in &record.headers {
        let name = HeaderName::from_bytes(name).map_err(|e| format!("stored header: {e}"))?;
        let value = HeaderValue::from_bytes(value).map_err(|e| format!("stored header: {e}"))?;
        parts.headers.append(name, value);
    }
    let body = vec![Bytes::copy_from_slice(&record.body)];
    crate::attest::attest(
        &mut parts.headers,
        key,
        &record.route,
        Some(&record.replay_id),
        &body,
        SystemTime::now(),
    );
    let origin = Origin::new(record.peer, record.tls);
    Ok((parts, body, origin))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_takes_seconds_or_an_http_date() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(784_111_777); // Sun, 06 Nov 1994 08:49:37 GMT
        assert_eq!(retry_after(" 120 ", now), Some(Duration::from_secs(120)));
        assert_eq!(
            retry_after("Sun, 06 Nov 1994 08:51:37 GMT", now),
            Some(Duration::from_secs(120))
        );
        assert_eq!(
            retry_after("Sun, 06 Nov 1994 08:00:00 GMT", now),
            Some(Duration::ZERO)
        );
        assert_eq!(retry_after("soon", now), None);
        assert_eq!(retry_after("-5", now), None);
    }

    #[test]
    fn backoff_doubles_with_jitter_within_initial_and_max() {
        let s = config::Queue {
            store: config::QueueBackend::Disk { path: "q".into() },
            max_bytes: 1,
            max_attempts: 20,
            max_age: Duration::from_secs(3600),
            retry_initial: Duration::from_millis(100),
            retry_max: Duration::from_secs(1),
            concurrency: 1,
        };
        for _ in 0..50 {
            assert_eq!(backoff(&s, 1), Duration::from_millis(100));
            let third = backoff(&s, 3);
            assert!(third >= Duration::from_millis(200) && third <= Duration::from_millis(400));
            let late = backoff(&s, 40);
            assert!(late >= Duration::from_millis(500) && late <= Duration::from_secs(1));
        }
    }
}
