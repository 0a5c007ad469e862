//! Group commit for the disk store: the request path hands each record, and
//! the delivery loop each delivery's outcome (a record delivered, retried or
//! dead-lettered), to one writer thread through a channel with a oneshot for
//! the answer; the writer takes everything waiting, writes it in one write
//! transaction and one fsync, and answers each. Under load many requests and
//! deliveries share one fsync; alone, each waits for its own.

use std::sync::Arc;

use tokio::sync::{mpsc, oneshot};

use super::disk::{Change, DiskStore};
use super::StoreError;
use crate::queue::record::Record;

/// Records handed to the writer at once, at most (one transaction).
const BATCH: usize = 512;

type Reply = Result<Option<u64>, StoreError>;

/// What the writer is handed: a record to store, or a change to one.
enum Pending {
    Insert(Record, oneshot::Sender<Reply>),
    Change(Change, oneshot::Sender<Result<bool, StoreError>>),
}

/// The writer thread's inbox; the thread ends when this is dropped.
pub(super) struct Writer {
    tx: mpsc::Sender<Pending>,
}

impl Writer {
    pub(super) fn start(db: Arc<DiskStore>) -> Result<Writer, StoreError> {
        let (tx, rx) = mpsc::channel(BATCH * 4);
        std::thread::Builder::new()
            .name("hookgate-queue-writer".into())
            .spawn(move || write_loop(&db, rx))
            .map_err(|e| StoreError::Db(format!("cannot start the writer thread: {e}")))?;
        Ok(Writer { tx })
    }

    /// `Some(id)` once committed to disk, `None` when it does not fit `max_bytes`.
    pub(super) async fn push(&self, record: Record) -> Reply {
        let (tx, rx) = oneshot::channel();
        self.tx
            .send(Pending::Insert(record, tx))
            .await
            .map_err(|_| gone())?;
        rx.await.map_err(|_| gone())?
    }

    /// `true` once committed to disk, `false` when it did not apply (the
    /// record is no longer there).
    pub(super) async fn change(&self, change: Change) -> Result<bool, StoreError> {
        let (tx, rx) = oneshot::channel();
        self.tx
            .send(Pending::Change(change, tx))
            .await
            .map_err(|_| gone())?;
        rx.await.map_err(|_| gone())?
    }
}

fn gone() -> StoreError {
    StoreError::Db("the queue writer has stopped".into())
}

/// The writer thread: one transaction per batch of what is waiting.
fn write_loop(store: &DiskStore, mut rx: mpsc::Receiver<Pending>) {
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
        let (mut records, mut inserted) = (Vec::new(), Vec::new());
        let (mut changes, mut changed) = (Vec::new(), Vec::new());
        for p in batch {
            match p {
                Pending::Insert(r, reply) => {
                    records.push(r);
                    inserted.push(reply);
                }
                Pending::Change(c, reply) => {
                    changes.push(c);
                    changed.push(reply);
                }
            }
        }
        match store.write(&records, &changes) {
            Ok((ids, applied)) => {
                for (id, reply) in ids.into_iter().zip(inserted) {
                    let _ = reply.send(Ok(id));
                }
                for (ok, reply) in applied.into_iter().zip(changed) {
                    let _ = reply.send(Ok(ok));
                }
            }
            Err(e) => {
                for reply in inserted {
                    let _ = reply.send(Err(e.clone()));
                }
                for reply in changed {
                    let _ = reply.send(Err(e.clone()));
                }
            }
        }
    }
}
