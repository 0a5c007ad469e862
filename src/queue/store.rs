//! The queue's store, one of two backends behind one async API: `disk` (an
//! embedded redb file, one gateway) or `redis` (Redis Streams shared by
//! several replicas). The request path, the delivery loop and the `queue`
//! commands call only this; each method names what happened to a record
//! (delivered, retry later, dead letter, redrive, drop), so each backend can
//! do it in one transaction or script.
//!
//! - `disk`   the redb file: tables, counters, group commit (`batch`)
//! - `redis`  streams, a consumer group, per-route leases, Lua scripts

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use super::record::{Corrupt, Record};
use crate::config;

mod batch;
mod disk;
mod redis;

pub use disk::{Change, DiskStore};
pub use redis::RedisQueue;

/// Which table a record is in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Table {
    Pending,
    Dead,
}

#[derive(Debug, Clone, thiserror::Error)]
pub enum StoreError {
    #[error("the queue store {0} is in use by another process (a running gateway?)")]
    Locked(PathBuf),
    #[error("queue store: {0}")]
    Db(String),
    #[error("queue store (redis): {0}")]
    Redis(String),
    #[error(transparent)]
    Corrupt(#[from] Corrupt),
}

/// A record and where it is stored.
#[derive(Debug, Clone)]
pub struct Stored {
    pub id: u64,
    pub table: Table,
    pub record: Record,
    /// The stored value did not decode: its size in bytes. `record` is then a
    /// stand-in naming the route, with `last_error` saying why; the value
    /// itself is kept as it was, and is never redriven.
    pub undecodable: Option<u64>,
}

impl Stored {
    /// Decodes a stored value; one that does not decode becomes a stand-in.
    pub(crate) fn decode(id: u64, table: Table, route: &str, bytes: &[u8]) -> Stored {
        match Record::decode(bytes) {
            Ok(record) => Stored {
                id,
                table,
                record,
                undecodable: None,
            },
            Err(e) => Stored {
                id,
                table,
                record: Record {
                    route: route.to_string(),
                    method: "-".into(),
                    uri: "(undecodable)".into(),
                    headers: Vec::new(),
                    body: Vec::new(),
                    replay_id: [0; 32],
                    peer: IpAddr::V4(Ipv4Addr::UNSPECIFIED),
                    tls: false,
                    accepted_at: 0,
                    attempts: 0,
                    next_attempt: 0,
                    last_error: format!("undecodable: {e}"),
                },
                undecodable: Some(bytes.len() as u64),
            },
        }
    }
}

/// A head that did not decode and was moved to the dead letters as it was.
#[derive(Debug, Clone)]
pub struct SetAside {
    pub route: String,
    pub id: u64,
    pub bytes: u64,
    pub why: String,
}

/// What the delivery loop may deliver now: each route's oldest record (with
/// `redis`, of the routes whose lease this replica holds).
#[derive(Debug, Default)]
pub struct Heads {
    pub due: Vec<Stored>,
    /// Heads found undecodable and dead-lettered by this call.
    pub set_aside: Vec<SetAside>,
}

/// The open store; which backend is its own business.
pub struct Store(Backend);

enum Backend {
    Disk {
        db: Arc<DiskStore>,
        writer: batch::Writer,
    },
    Redis(Box<RedisQueue>),
}

impl Store {
    /// Opens the store `[queue]` names. Disk: the file, and its writer thread.
    /// Redis: prepares the connection without connecting (Redis may be down
    /// at start; each call then fails until it answers). Inside a runtime.
    pub fn open(q: &config::Queue) -> Result<Store, StoreError> {
        match &q.store {
            config::QueueBackend::Disk { path } => {
                let db = Arc::new(DiskStore::open(path, q.max_bytes)?);
                let writer = batch::Writer::start(Arc::clone(&db))?;
                Ok(Store(Backend::Disk { db, writer }))
            }
            config::QueueBackend::Redis(r) => Ok(Store(Backend::Redis(Box::new(RedisQueue::new(
                r,
                q.max_bytes,
            )?)))),
        }
    }

    /// For the start-up log line: the directory, or the Redis key prefix (never the URL).
    pub fn describe(&self) -> String {
        match &self.0 {
            Backend::Disk { db, .. } => format!("disk, {} bytes stored", db.used_bytes()),
            Backend::Redis(r) => format!("redis, keys {}, consumer {}", r.keys(), r.consumer()),
        }
    }

    /// How often the delivery loop looks for work when nothing wakes it:
    /// another replica's accepts (redis) wake nothing here.
    pub fn poll(&self) -> Duration {
        match &self.0 {
            Backend::Disk { .. } => Duration::from_secs(1),
            Backend::Redis(_) => Duration::from_millis(250),
        }
    }

    /// Stores `record` durably: `Some(id)` once committed (disk: fsync'd;
    /// redis: acknowledged by Redis), `None` when it does not fit `max_bytes`.
    pub async fn push(&self, record: Record) -> Result<Option<u64>, StoreError> {
        match &self.0 {
            Backend::Disk { writer, .. } => writer.push(record).await,
            Backend::Redis(r) => r.push(&record).await,
        }
    }

    pub async fn heads(&self) -> Result<Heads, StoreError> {
        match &self.0 {
            Backend::Disk { db, .. } => blocking(db, DiskStore::heads).await,
            Backend::Redis(r) => r.heads().await,
        }
    }

    /// Pending records per route.
    pub async fn depths(&self) -> Result<HashMap<String, u64>, StoreError> {
        match &self.0 {
            Backend::Disk { db, .. } => blocking(db, DiskStore::depths).await,
            Backend::Redis(r) => r.depths().await,
        }
    }

    /// Every record of `table`, optionally of one route, oldest first.
    pub async fn list(&self, table: Table, route: Option<&str>) -> Result<Vec<Stored>, StoreError> {
        match &self.0 {
            Backend::Disk { db, .. } => {
                let route = route.map(str::to_string);
                blocking(db, move |db| db.list(table, route.as_deref())).await
            }
            Backend::Redis(r) => r.list(table, route).await,
        }
    }

    /// The record with this id, in either table.
    pub async fn find(&self, id: u64) -> Result<Option<Stored>, StoreError> {
        match &self.0 {
            Backend::Disk { db, .. } => blocking(db, move |db| db.find(id)).await,
            Backend::Redis(r) => r.find(id).await,
        }
    }

    /// The application took it (2xx): gone, its bytes freed.
    pub async fn delivered(&self, s: &Stored) -> Result<(), StoreError> {
        self.remove(s).await.map(|_| ())
    }

    /// Keeps it pending with its new delivery state (attempts, next attempt, error).
    pub async fn retry_later(&self, s: &Stored) -> Result<(), StoreError> {
        match &self.0 {
            Backend::Disk { writer, .. } => writer
                .change(put(Table::Pending, s.id, s.record.clone()))
                .await
                .map(|_| ()),
            Backend::Redis(r) => r.retry_later(s).await,
        }
    }

    /// Moves it to the dead letters with its final delivery state.
    pub async fn dead_letter(&self, s: &Stored) -> Result<(), StoreError> {
        match &self.0 {
            Backend::Disk { writer, .. } => writer
                .change(put(Table::Dead, s.id, s.record.clone()))
                .await
                .map(|_| ()),
            Backend::Redis(r) => r.dead_letter(s).await,
        }
    }

    /// Puts a dead letter back for delivery, due now with no attempts. Disk
    /// keeps its id (and so its place in the route's order); redis appends it
    /// to the route's stream under a new id. `false` for an undecodable one,
    /// or one no longer there.
    pub async fn redrive(&self, s: &Stored, now: u64) -> Result<bool, StoreError> {
        if s.table != Table::Dead || s.undecodable.is_some() {
            return Ok(false);
        }
        let mut record = s.record.clone();
        record.attempts = 0;
        record.next_attempt = now;
        record.last_error.clear();
        match &self.0 {
            Backend::Disk { writer, .. } => writer.change(put(Table::Pending, s.id, record)).await,
            Backend::Redis(r) => r.redrive(s, &record).await,
        }
    }

    /// For `/readyz`: the disk takes writes (after a failed one, checked
    /// with an empty commit); Redis answers a PING.
    pub async fn ready(&self) -> bool {
        match &self.0 {
            Backend::Disk { db, .. } => blocking(db, |db| Ok(db.writable())).await.unwrap_or(false),
            Backend::Redis(r) => r.ready().await,
        }
    }

    /// Deletes it from its table; `false` if it was no longer there.
    pub async fn remove(&self, s: &Stored) -> Result<bool, StoreError> {
        match &self.0 {
            Backend::Disk { writer, .. } => {
                let change = Change::Remove {
                    table: s.table,
                    route: s.record.route.clone(),
                    id: s.id,
                };
                writer.change(change).await
            }
            Backend::Redis(r) => r.remove(s).await,
        }
    }

    /// While deliveries drain at shutdown: keeps this replica's routes
    /// (redis leases) without taking new work.
    pub async fn renew(&self) {
        match &self.0 {
            Backend::Disk { .. } => {}
            Backend::Redis(r) => r.renew().await,
        }
    }

    /// At shutdown: hands this replica's routes over at once (redis leases)
    /// instead of after the lease lapses.
    pub async fn release(&self) {
        match &self.0 {
            Backend::Disk { .. } => {}
            Backend::Redis(r) => r.release().await,
        }
    }
}

/// Runs a disk store call on a blocking thread.
async fn blocking<T, F>(db: &Arc<DiskStore>, f: F) -> Result<T, StoreError>
where
    T: Send + 'static,
    F: FnOnce(&DiskStore) -> Result<T, StoreError> + Send + 'static,
{
    let db = Arc::clone(db);
    tokio::task::spawn_blocking(move || f(&db))
        .await
        .map_err(|e| StoreError::Db(format!("a store call failed: {e}")))?
}

/// A disk change that writes `record` as record `id` of `to`.
fn put(to: Table, id: u64, record: Record) -> Change {
    Change::Put { to, id, record }
}
