//! Durable delivery (`delivery = "queue"`, DESIGN §8): a verified request is
//! stored on disk, committed, before the provider gets `202`; a delivery loop
//! then forwards it to the application until it answers 2xx, or dead-letters it.
//!
//! The store is [redb](https://docs.rs/redb): pure Rust (no C library to
//! build or audit), ACID with each commit fsync'd before it returns (so a
//! `202` survives kill -9 and power loss), maintained, and a single file that
//! is simple to put on a volume and back up. Its file lock also tells the
//! `hookgate queue` commands that a gateway is running on the same store.
//!
//! Accepts are group-committed: the request path hands each record to one
//! writer thread through a channel with a oneshot for the answer; the writer
//! takes everything waiting, stores it in one write transaction and one fsync,
//! and answers each. Under load many requests share one fsync; alone, a
//! request waits for its own.
//!
//! - `record`   one stored request and its delivery state; its bytes
//! - `store`    the redb file: pending and dead-lettered tables, `max_bytes`
//! - `deliver`  the delivery loop: order per route, retries, dead letters, drain
//! - `command`  `hookgate queue list|show|redrive|drop` on the store
//! - `remote`   the same commands through a running gateway's admin listener

use std::path::Path;
use std::sync::Arc;
use std::time::SystemTime;

use bytes::Bytes;
use http::request;
use tokio::sync::{mpsc, oneshot, Notify};

mod command;
mod deliver;
mod record;
mod remote;
mod store;

pub use command::{run as command_run, Args};
pub use deliver::Deliverer;
pub use record::Record;
pub use remote::{announce as announce_admin, serve as serve_command, Reply as CommandReply};
pub use store::{Store, StoreError, Stored, Table};

use crate::detach::Detach;
use crate::forward::Origin;
use crate::metrics::Reason;
use crate::replay::{Store as ReplayStore, Ticket};
use crate::route::Route;

/// Records handed to the writer at once, at most (one transaction).
const BATCH: usize = 512;

type Pending = (Record, oneshot::Sender<Result<(), Reason>>);

/// The open queue: its store, the writer's channel, the delivery loop's wake-up.
pub struct Queue {
    store: Arc<Store>,
    writer: mpsc::Sender<Pending>,
    /// Woken after each commit, so a new record is delivered at once.
    stored: Arc<Notify>,
}

impl Queue {
    /// Opens the store at `dir` and starts its writer thread, which ends when
    /// the last `Queue` handle is dropped.
    pub fn open(dir: &Path, max_bytes: u64) -> Result<Queue, StoreError> {
        let store = Arc::new(Store::open(dir, max_bytes)?);
        let (tx, rx) = mpsc::channel(BATCH * 4);
        let stored = Arc::new(Notify::new());
        let (s, n) = (Arc::clone(&store), Arc::clone(&stored));
        std::thread::Builder::new()
            .name("hookgate-queue-writer".into())
            .spawn(move || write_loop(&s, rx, &n))
            .map_err(|e| StoreError::Db(format!("cannot start the writer thread: {e}")))?;
        Ok(Queue {
            store,
            writer: tx,
            stored,
        })
    }

    pub fn store(&self) -> &Arc<Store> {
        &self.store
    }

    pub(crate) fn stored(&self) -> &Arc<Notify> {
        &self.stored
    }

    /// Stores `record` durably: `Ok` once it is committed to disk.
    pub async fn push(&self, record: Record) -> Result<(), Reason> {
        let (tx, rx) = oneshot::channel();
        if self.writer.send((record, tx)).await.is_err() {
            return Err(Reason::QueueUnavailable);
        }
        rx.await.unwrap_or(Err(Reason::QueueUnavailable))
    }
}

/// The writer thread: one transaction per batch of what is waiting.
fn write_loop(store: &Store, mut rx: mpsc::Receiver<Pending>, stored: &Notify) {
    while let Some(first) = rx.blocking_recv() {
        let mut batch = vec![first];
        while batch.len() < BATCH {
            match rx.try_recv() {
                Ok(p) => batch.push(p),
                // Nothing more waiting (or no sender left): commit what there is.
                Err(mpsc::error::TryRecvError::Empty | mpsc::error::TryRecvError::Disconnected) => {
                    break
                }
            }
        }
        let (records, replies): (Vec<Record>, Vec<_>) = batch.into_iter().unzip();
        match store.insert(&records) {
            Ok(ids) => {
                for (id, reply) in ids.into_iter().zip(replies) {
                    let _ = reply.send(id.map(|_| ()).ok_or(Reason::QueueFull));
                }
                stored.notify_one();
            }
            Err(e) => {
                tracing::error!(error = %e, records = records.len(), "queue: storing failed; answering 503");
                for reply in replies {
                    let _ = reply.send(Err(Reason::QueueUnavailable));
                }
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
            crate::dedup::settle(&store, &route, ticket, stored.is_ok()).await;
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
