//! Durable delivery (`delivery = "queue"`, DESIGN §8): a verified request is
//! stored, committed, before the provider gets `202`; a delivery loop then
//! forwards it to the application until it answers 2xx, or dead-letters it.
//!
//! Two stores, one API (`store::Store`). `disk`, the default, is
//! [redb](https://docs.rs/redb): pure Rust (no C library to build or audit),
//! ACID with each commit fsync'd before it returns (so a `202` survives kill
//! -9 and power loss), maintained, and a single file that is simple to put on
//! a volume and back up; its file lock also tells the `hookgate queue`
//! commands that a gateway is running on the same store. Accepts are
//! group-committed (`store::batch`). redb against fjall, measured on this
//! workload: BENCHMARKS.md, "Choosing the queue's embedded store: redb against
//! fjall". `redis` keeps the queue in Redis Streams, so several replicas share
//! it, and what a crashed replica was delivering is taken over by another.
//!
//! - `record`   one stored request and its delivery state; its bytes
//! - `store`    the store API over `disk` (redb) and `redis` (streams)
//! - `deliver`  the delivery loop: order per route, retries, dead letters, drain
//! - `command`  `hookgate queue list|show|redrive|drop` on the store directly
//! - `remote`   the same commands through a running gateway's admin listener

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use bytes::Bytes;
use http::request;
use tokio::sync::Notify;

mod command;
mod deliver;
mod record;
mod remote;
mod store;

pub use command::{run as command_run, Args};
pub use deliver::Deliverer;
pub use record::Record;
pub use remote::{announce as announce_admin, serve as serve_command, Reply as CommandReply};
pub use store::{Change, DiskStore, Heads, RedisQueue, SetAside, Store, StoreError, Stored, Table};

use crate::config;
use crate::detach::Detach;
use crate::forward::Origin;
use crate::metrics::Reason;
use crate::replay::{Store as ReplayStore, Ticket};
use crate::route::Route;

/// The open queue: its store and the delivery loop's wake-up.
pub struct Queue {
    store: Arc<Store>,
    /// Woken after each record stored here, so it is delivered at once.
    stored: Arc<Notify>,
    /// What changed since the delivery loop last looked (see [`Fresh`]).
    fresh: Mutex<Fresh>,
}

/// The routes that got a record since the delivery loop last read the
/// store's heads, or `all` when anything else changed (a redrive). A record
/// stored behind a route's waiting head changes nothing the loop can do, so
/// under load it does not re-read every head after every commit.
#[derive(Default)]
pub(crate) struct Fresh {
    pub(crate) routes: HashSet<String>,
    pub(crate) all: bool,
}

impl Queue {
    /// Opens the store `[queue]` names (inside a runtime).
    pub fn open(settings: &config::Queue) -> Result<Queue, StoreError> {
        Ok(Queue {
            store: Arc::new(Store::open(settings)?),
            stored: Arc::new(Notify::new()),
            fresh: Mutex::new(Fresh::default()),
        })
    }

    pub fn store(&self) -> &Arc<Store> {
        &self.store
    }

    pub(crate) fn stored(&self) -> &Arc<Notify> {
        &self.stored
    }

    /// Wakes the delivery loop: `route` got a record, or (`None`) anything
    /// may have changed.
    pub(crate) fn wake(&self, route: Option<&str>) {
        {
            let mut fresh = self.lock_fresh();
            match route {
                Some(r) if !fresh.routes.contains(r) => {
                    fresh.routes.insert(r.to_string());
                }
                Some(_) => {}
                None => fresh.all = true,
            }
        }
        self.stored.notify_one();
    }

    /// What changed since the last call.
    pub(crate) fn take_fresh(&self) -> Fresh {
        std::mem::take(&mut *self.lock_fresh())
    }

    fn lock_fresh(&self) -> std::sync::MutexGuard<'_, Fresh> {
        // Only sets of names are held under it: still usable after a panic.
        self.fresh
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Stores `record` durably: `Ok` once it is committed (disk: fsync'd;
    /// redis: acknowledged). Full: `queue_full`; any store error:
    /// `queue_unavailable`, never a 202.
    pub async fn push(&self, record: Record) -> Result<(), Reason> {
        let route = record.route.clone();
        match self.store.push(record).await {
            Ok(Some(_)) => {
                self.wake(Some(&route));
                Ok(())
            }
            Ok(None) => Err(Reason::QueueFull),
            Err(e) => {
                tracing::error!(error = %e, "queue: storing failed; answering 503");
                Err(Reason::QueueUnavailable)
            }
        }
    }
}

/// A verified request the request path hands to the queue: hop-by-hop
/// headers already removed, its replay id (`None` only for an unverified one,
/// which is never stored).
pub struct Accepted {
    parts: request::Parts,
    blocks: Vec<Bytes>,
    replay_id: Option<[u8; 32]>,
    origin: Origin,
}

impl Accepted {
    pub fn new(
        parts: request::Parts,
        blocks: Vec<Bytes>,
        replay_id: Option<[u8; 32]>,
        origin: Origin,
    ) -> Self {
        Accepted {
            parts,
            blocks,
            replay_id,
            origin,
        }
    }
}

/// The queue step of the request path (DESIGN §8): stores the verified
/// request, committed, then marks its id delivered in the replay store: the
/// queue owns its delivery from here, so a provider's retry of it is a
/// duplicate. Not stored: the claim is released and the provider told to
/// retry later (503, never 2xx). Detached like a forward, so a provider that
/// hangs up cannot leave the claim unsettled or a 202'd record half-decided.
pub async fn enqueue(
    queue: Option<Arc<Queue>>,
    store: &Arc<ReplayStore>,
    route: &Arc<Route>,
    accepted: Accepted,
    ticket: Option<Ticket>,
) -> Result<(), Reason> {
    let (store, route) = (Arc::clone(store), Arc::clone(route));
    Detach::new(async move {
        // Config keeps queue routes verified (never shadow) and requires a
        // [queue] for them; a queue route added by a reload waits for a restart.
        let stored = match (queue, accepted.replay_id) {
            (Some(q), Some(id)) => store_request(&q, &route.name, &accepted, id).await,
            (None, _) | (_, None) => Err(Reason::QueueUnavailable),
        };
        if let Some(ticket) = ticket {
            let at = tokio::time::Instant::now();
            crate::dedup::settle(&store, &route, ticket, stored.is_ok(), at).await;
        }
        if let Err(reason) = stored {
            tracing::warn!(route = %route.name, reason = reason.as_str(), "queue: request not stored");
        }
        stored
    })
    .await
}

/// Stores a verified request as it would be forwarded now (inbound
/// `Hookgate-*` removed; the attestation is made at delivery, when its time
/// is the forward's). Headers keep `HeaderMap`'s order, the order a forward sends.
async fn store_request(
    queue: &Queue,
    route: &str,
    accepted: &Accepted,
    replay_id: [u8; 32],
) -> Result<(), Reason> {
    let Accepted {
        parts,
        blocks,
        origin,
        ..
    } = accepted;
    // `forward::end_to_end` already ran: hop-by-hop headers are gone and
    // `Host` is set; inbound Hookgate-* headers go here.
    let mut headers = parts.headers.clone();
    crate::attest::attest(&mut headers, None, route, None, &[], SystemTime::now());
    let now = record::millis(SystemTime::now());
    let record = Record {
        route: route.to_string(),
        method: parts.method.as_str().to_string(),
        uri: parts
            .uri
            .path_and_query()
            .map_or_else(|| "/".to_string(), |p| p.as_str().to_string()),
        headers: headers
            .iter()
            .map(|(n, v)| (n.as_str().as_bytes().to_vec(), v.as_bytes().to_vec()))
            .collect(),
        body: blocks.concat(),
        replay_id,
        peer: origin.peer,
        tls: origin.tls,
        accepted_at: now,
        attempts: 0,
        next_attempt: now,
        last_error: String::new(),
    };
    queue.push(record).await
}
