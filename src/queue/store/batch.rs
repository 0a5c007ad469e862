//! Group commit for the disk store: the request path hands each record to one
//! writer thread through a channel with a oneshot for the answer; the writer
//! takes everything waiting, stores it in one write transaction and one fsync,
//! and answers each. Under load many requests share one fsync; alone, a
//! request waits for its own.

use std::sync::Arc;

use tokio::sync::{mpsc, oneshot};

use super::disk::DiskStore;
use super::StoreError;
use crate::queue::record::Record;

/// Records handed to the writer at once, at most (one transaction).
const BATCH: usize = 512;

type Reply = Result<Option<u64>, StoreError>;
type Pending = (Record, oneshot::Sender<Reply>);

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
        let gone = || StoreError::Db("the queue writer has stopped".into());
        self.tx.send((record, tx)).await.map_err(|_| gone())?;
        rx.await.map_err(|_| gone())?
    }
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
        let (records, replies): (Vec<Record>, Vec<_>) = batch.into_iter().unzip();
        match store.insert(&records) {
            Ok(ids) => {
                for (id, reply) in ids.into_iter().zip(replies) {
                    let _ = reply.send(Ok(id));
                }
            }
            Err(e) => {
                let e = e.to_string();
                for reply in replies {
                    let _ = reply.send(Err(StoreError::Db(e.clone())));
                }
            }
        }
    }
}
