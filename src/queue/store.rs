//! The disk store: one redb file holding the pending and the dead-lettered
//! requests, keyed `(route, sequence)` so each route's records are read in the
//! order they were received; bounded by `max_bytes` across both tables.
//!
//! Every method blocks (redb is synchronous): the async side calls them on a
//! blocking thread.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use redb::{Database, ReadableTable, ReadableTableMetadata, TableDefinition};

use super::record::{Corrupt, Record};

/// Records waiting for delivery.
const PENDING: TableDefinition<(&str, u64), &[u8]> = TableDefinition::new("pending");
/// Records that will not be retried again until redriven.
const DEAD: TableDefinition<(&str, u64), &[u8]> = TableDefinition::new("dead");

/// Which table a record is in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Table {
    Pending,
    Dead,
}

impl Table {
    fn def(self) -> TableDefinition<'static, (&'static str, u64), &'static [u8]> {
        match self {
            Table::Pending => PENDING,
            Table::Dead => DEAD,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("the queue store {0} is in use by another process (a running gateway?)")]
    Locked(PathBuf),
    #[error("queue store: {0}")]
    Db(String),
    #[error(transparent)]
    Corrupt(#[from] Corrupt),
}

impl<E: Into<redb::Error>> From<E> for StoreError {
    fn from(e: E) -> Self {
        StoreError::Db(e.into().to_string())
    }
}

/// A record and where it is stored.
#[derive(Debug, Clone)]
pub struct Stored {
    pub id: u64,
    pub table: Table,
    pub record: Record,
}

pub struct Store {
    db: Database,
    max_bytes: u64,
    /// Bytes of every stored value, both tables.
    used: AtomicU64,
    next_id: AtomicU64,
    /// Pending records per route.
    depth: Mutex<HashMap<String, u64>>,
}

impl Store {
    /// Opens (creating) `dir/queue.redb`, and counts what it holds.
    pub fn open(dir: &Path, max_bytes: u64) -> Result<Store, StoreError> {
        std::fs::create_dir_all(dir)
            .map_err(|e| StoreError::Db(format!("cannot create {}: {e}", dir.display())))?;
        let file = dir.join("queue.redb");
        let db = match Database::create(&file) {
            Ok(db) => db,
            Err(redb::DatabaseError::DatabaseAlreadyOpen) => return Err(StoreError::Locked(file)),
            Err(e) => return Err(StoreError::Db(format!("{}: {e}", file.display()))),
        };
        let txn = db.begin_write()?;
        txn.open_table(PENDING)?;
        txn.open_table(DEAD)?;
        txn.commit()?;
        let (mut used, mut last, mut depth) = (0u64, 0u64, HashMap::new());
        let read = db.begin_read()?;
        for table in [Table::Pending, Table::Dead] {
            for entry in read.open_table(table.def())?.iter()? {
                let (k, v) = entry?;
                let (route, id) = k.value();
                used += v.value().len() as u64;
                last = last.max(id);
                if table == Table::Pending {
                    *depth.entry(route.to_string()).or_insert(0) += 1;
                }
            }
        }
        drop(read);
        Ok(Store {
            db,
            max_bytes,
            used: AtomicU64::new(used),
            next_id: AtomicU64::new(last + 1),
            depth: Mutex::new(depth),
        })
    }

    /// Stores each record that fits under `max_bytes`, all in one committed
    /// (fsync'd) transaction: `Some(id)` for each stored, `None` for each that
    /// did not fit. Called by the one writer thread only, so the check and the
    /// addition cannot interleave with another insert.
    pub fn insert(&self, records: &[Record]) -> Result<Vec<Option<u64>>, StoreError> {
        let mut used = self.used.load(Ordering::Acquire);
        let mut added = 0u64;
        let mut ids = Vec::with_capacity(records.len());
        let txn = self.db.begin_write()?;
        {
            let mut table = txn.open_table(PENDING)?;
            for record in records {
                let bytes = record.encode();
                let size = bytes.len() as u64;
                if used.saturating_add(size) > self.max_bytes {
                    ids.push(None);
                    continue;
                }
                let id = self.next_id.fetch_add(1, Ordering::AcqRel);
                table.insert((record.route.as_str(), id), bytes.as_slice())?;
                used += size;
                added += size;
                ids.push(Some(id));
            }
        }
        txn.commit()?;
        // Deliveries may have freed bytes meanwhile: add what was stored, not `used`.
        self.used.fetch_add(added, Ordering::AcqRel);
        let mut depth = self.lock_depth();
        for (record, id) in records.iter().zip(&ids) {
            if id.is_some() {
                *depth.entry(record.route.clone()).or_insert(0) += 1;
            }
        }
        Ok(ids)
    }

    /// The first pending record of each route: the next to deliver.
    pub fn heads(&self) -> Result<Vec<Stored>, StoreError> {
        let read = self.db.begin_read()?;
        let table = read.open_table(PENDING)?;
        let mut heads = Vec::new();
        let mut next = table.first()?;
        while let Some((k, v)) = next {
            let (route, id) = k.value();
            let route = route.to_string();
            heads.push(Stored {
                id,
                table: Table::Pending,
                record: Record::decode(v.value())?,
            });
            // The next route's first key: past every id of this one.
            next = table
                .range((route.as_str(), u64::MAX)..)?
                .find(|e| e.as_ref().map_or(true, |(k, _)| k.value().0 != route))
                .transpose()?;
        }
        Ok(heads)
    }

    /// Pending records per route.
    pub fn depths(&self) -> HashMap<String, u64> {
        self.lock_depth().clone()
    }

    /// Every record of `table`, optionally of one route, in key order.
    pub fn list(&self, table: Table, route: Option<&str>) -> Result<Vec<Stored>, StoreError> {
        let read = self.db.begin_read()?;
        let t = read.open_table(table.def())?;
        let mut out = Vec::new();
        for entry in t.iter()? {
            let (k, v) = entry?;
            let (r, id) = k.value();
            if route.is_none_or(|want| want == r) {
                out.push(Stored {
                    id,
                    table,
                    record: Record::decode(v.value())?,
                });
            }
        }
        Ok(out)
    }

    /// The record with this id, in either table.
    pub fn find(&self, id: u64) -> Result<Option<Stored>, StoreError> {
        for table in [Table::Pending, Table::Dead] {
            if let Some(s) = self.list(table, None)?.into_iter().find(|s| s.id == id) {
                return Ok(Some(s));
            }
        }
        Ok(None)
    }

    /// Removes a record (delivered, or dropped).
    pub fn remove(&self, table: Table, route: &str, id: u64) -> Result<bool, StoreError> {
        let txn = self.db.begin_write()?;
        let removed = txn
            .open_table(table.def())?
            .remove((route, id))?
            .map(|v| v.value().len() as u64);
        txn.commit()?;
        if let Some(size) = removed {
            self.used.fetch_sub(size, Ordering::AcqRel);
            if table == Table::Pending {
                self.count(route, false);
            }
        }
        Ok(removed.is_some())
    }

    /// Writes `record` as record `id` of `to`, removing it from the other table.
    pub fn put(&self, to: Table, id: u64, record: &Record) -> Result<(), StoreError> {
        let from = match to {
            Table::Pending => Table::Dead,
            Table::Dead => Table::Pending,
        };
        let bytes = record.encode();
        let key = (record.route.as_str(), id);
        let txn = self.db.begin_write()?;
        let old = txn
            .open_table(from.def())?
            .remove(key)?
            .map(|v| v.value().len());
        let same = txn
            .open_table(to.def())?
            .insert(key, bytes.as_slice())?
            .map(|v| v.value().len());
        txn.commit()?;
        let freed = old.or(same).unwrap_or(0) as u64;
        self.used.fetch_add(bytes.len() as u64, Ordering::AcqRel);
        self.used.fetch_sub(freed, Ordering::AcqRel);
        match (to, old.is_some()) {
            (Table::Pending, true) => self.count(&record.route, true),
            (Table::Dead, true) => self.count(&record.route, false),
            (Table::Pending | Table::Dead, false) => {}
        }
        Ok(())
    }

    /// Records in `table`.
    pub fn len(&self, table: Table) -> Result<u64, StoreError> {
        Ok(self.db.begin_read()?.open_table(table.def())?.len()?)
    }

    pub fn used_bytes(&self) -> u64 {
        self.used.load(Ordering::Acquire)
    }

    fn count(&self, route: &str, up: bool) {
        let mut depth = self.lock_depth();
        let n = depth.entry(route.to_string()).or_insert(0);
        *n = if up { *n + 1 } else { n.saturating_sub(1) };
    }

    fn lock_depth(&self) -> std::sync::MutexGuard<'_, HashMap<String, u64>> {
        // A panic while holding this lock leaves only a count, still usable.
        self.depth
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn record(route: &str, body: &[u8]) -> Record {
        Record {
            route: route.into(),
            method: "POST".into(),
            uri: "/w".into(),
            headers: vec![],
            body: body.to_vec(),
            replay_id: [1; 32],
            peer: "127.0.0.1".parse().unwrap(),
            tls: false,
            accepted_at: 1,
            attempts: 0,
            next_attempt: 1,
            last_error: String::new(),
        }
    }

    #[test]
    fn heads_are_each_routes_oldest_and_max_bytes_refuses_without_losing_anything() {
        let dir = tempfile::tempdir().unwrap();
        let size = record("a", b"0123456789").encode().len() as u64;
        let store = Store::open(dir.path(), size * 3).unwrap();
        let batch = [
            record("b", b"b-first..."),
            record("a", b"a-first..."),
            record("a", b"a-second.."),
            record("b", b"b-second.."),
        ];
        let ids = store.insert(&batch).unwrap();
        assert!(ids[..3].iter().all(Option::is_some));
        assert_eq!(ids[3], None, "over max_bytes");
        let heads = store.heads().unwrap();
        let bodies: Vec<&[u8]> = heads.iter().map(|h| h.record.body.as_slice()).collect();
        assert_eq!(bodies, [b"a-first...".as_slice(), b"b-first...".as_slice()]);
        assert_eq!(store.depths()["a"], 2);
        // Dead-lettering moves; removing frees room for the next insert.
        let a1 = &heads[0];
        store.put(Table::Dead, a1.id, &a1.record).unwrap();
        assert_eq!(
            (
                store.len(Table::Pending).unwrap(),
                store.len(Table::Dead).unwrap()
            ),
            (2, 1)
        );
        assert_eq!(store.depths()["a"], 1);
        assert!(store.remove(Table::Dead, "a", a1.id).unwrap());
        assert!(store.insert(&[record("b", b"b-second..")]).unwrap()[0].is_some());
        drop(store);
        // Reopened: the same records, counted again, and new ids after the old.
        let store = Store::open(dir.path(), size * 3).unwrap();
        assert_eq!(store.len(Table::Pending).unwrap(), 3);
        assert_eq!(
            store.used_bytes(),
            store
                .list(Table::Pending, None)
                .unwrap()
                .iter()
                .map(|s| s.record.encode().len() as u64)
                .sum::<u64>()
        );
        let last = store
            .list(Table::Pending, Some("b"))
            .unwrap()
            .last()
            .unwrap()
            .id;
        let more = store.insert(&[record("c", b"")]).unwrap();
        assert_eq!(more, [None], "still full");
        assert!(last >= 3);
        assert!(matches!(
            Store::open(dir.path(), 1),
            Err(StoreError::Locked(_))
        ));
    }
}
