//! The disk store: one redb file holding the pending and the dead-lettered
//! requests, keyed `(route, sequence)` so each route's records are read in the
//! order they were received; bounded by `max_bytes` across both tables.
//!
//! Its counters (bytes used, the next id, each route's pending count) live in
//! a `meta` and a `depth` table updated in the same write transaction as the
//! records, so opening reads a few keys instead of every record (a store from
//! before these tables is counted once, on its first open, and they are written).
//!
//! A value that does not decode (a damaged page, a record from a later
//! version) never stops its route: it is moved, byte for byte, to the dead
//! letters, where `hookgate queue list --dead` shows it as undecodable.
//!
//! Every method blocks (redb is synchronous): the async side calls them on a
//! blocking thread.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError, RwLock};
use std::time::{Duration, Instant};

use redb::{
    Database, ReadTransaction, ReadableTable, ReadableTableMetadata, Table as RedbTable,
    TableDefinition, WriteTransaction,
};

use super::{Heads, SetAside, StoreError, Stored, Table};
use crate::queue::record::Record;

/// Records waiting for delivery.
const PENDING: TableDefinition<(&str, u64), &[u8]> = TableDefinition::new("pending");
/// Records that will not be retried again until redriven.
const DEAD: TableDefinition<(&str, u64), &[u8]> = TableDefinition::new("dead");
/// `used` (bytes of every stored value, both tables) and `next_id`.
const META: TableDefinition<&str, u64> = TableDefinition::new("meta");
/// Empty between the writes that probe a store whose last write failed.
const PROBE: TableDefinition<u8, &[u8]> = TableDefinition::new("probe");
/// The probe's value: a large webhook.
const PROBE_BYTES: usize = 64 << 10;
/// Pending records per route.
const DEPTH: TableDefinition<&str, u64> = TableDefinition::new("depth");

/// A record's key: its route and id.
type Key = (String, u64);

const USED: &str = "used";
const NEXT_ID: &str = "next_id";

/// Undecodable heads set aside in one call, at most (each pass re-reads the heads).
const SET_ASIDE_PASSES: usize = 64;

impl Table {
    fn def(self) -> TableDefinition<'static, (&'static str, u64), &'static [u8]> {
        match self {
            Table::Pending => PENDING,
            Table::Dead => DEAD,
        }
    }
}

impl<E: Into<redb::Error>> From<E> for StoreError {
    fn from(e: E) -> Self {
        StoreError::Db(e.into().to_string())
    }
}

pub struct DiskStore {
    /// `None` only after a reopen failed: every call then fails until one works.
    db: RwLock<Option<Database>>,
    file: PathBuf,
    max_bytes: u64,
    /// The `used` counter as last committed, for `used_bytes` without a transaction.
    used: AtomicU64,
    /// The last write failed (a full disk, an I/O error): see [`writable`](Self::writable).
    failing: AtomicBool,
    /// When the database was last reopened after a failed write.
    reopened: Mutex<Option<Instant>>,
}

/// After a failed write, the database is reopened (redb refuses every
/// transaction after an I/O error until then) at most this often.
const REOPEN_EVERY: Duration = Duration::from_secs(1);

impl DiskStore {
    /// Opens (creating) `dir/queue.redb`.
    pub fn open(dir: &Path, max_bytes: u64) -> Result<DiskStore, StoreError> {
        std::fs::create_dir_all(dir)
            .map_err(|e| StoreError::Db(format!("cannot create {}: {e}", dir.display())))?;
        let file = dir.join("queue.redb");
        let db = open_file(&file)?;
        let txn = db.begin_write()?;
        txn.open_table(PENDING)?;
        txn.open_table(DEAD)?;
        txn.open_table(DEPTH)?;
        let counted = txn.open_table(META)?.get(NEXT_ID)?.is_some();
        if !counted {
            count_once(&txn)?;
        }
        let used = txn.open_table(META)?.get(USED)?.map_or(0, |v| v.value());
        txn.commit()?;
        Ok(DiskStore {
            db: RwLock::new(Some(db)),
            file,
            max_bytes,
            used: AtomicU64::new(used),
            failing: AtomicBool::new(false),
            reopened: Mutex::new(None),
        })
    }

    fn begin_read(&self) -> Result<ReadTransaction, StoreError> {
        match &*self.db.read().unwrap_or_else(PoisonError::into_inner) {
            Some(db) => Ok(db.begin_read()?),
            None => Err(closed(&self.file)),
        }
    }

    fn begin_write(&self) -> Result<WriteTransaction, StoreError> {
        match &*self.db.read().unwrap_or_else(PoisonError::into_inner) {
            Some(db) => Ok(db.begin_write()?),
            None => Err(closed(&self.file)),
        }
    }

    /// After a failed write (a full disk, an I/O error), redb refuses every
    /// transaction until the database is reopened: reopen it (redb repairs the
    /// file as it opens), at most every `REOPEN_EVERY`. Until it works, the
    /// failed write's error stands and the caller answers 503.
    fn recover(&self) -> Result<(), StoreError> {
        if !self.failing.load(Ordering::Acquire) {
            return Ok(());
        }
        {
            let mut last = self.reopened.lock().unwrap_or_else(PoisonError::into_inner);
            if last.is_some_and(|t| t.elapsed() < REOPEN_EVERY) {
                return Err(StoreError::Db(
                    "the last write failed; the store is reopened shortly".into(),
                ));
            }
            *last = Some(Instant::now());
        }
        let mut db = self.db.write().unwrap_or_else(PoisonError::into_inner);
        // The old handle must be gone before the file can be opened again.
        drop(db.take());
        let fresh = open_file(&self.file)?;
        *db = Some(fresh);
        drop(db);
        tracing::warn!(file = %self.file.display(), "queue store reopened after a failed write");
        self.reload_used()
    }

    /// Stores each record that fits under `max_bytes`, all in one committed
    /// (fsync'd) transaction: `Some(id)` for each stored, `None` for each that
    /// did not fit. redb runs one write transaction at a time, so the check
    /// and the addition cannot interleave with another write.
    pub fn insert(&self, records: &[Record]) -> Result<Vec<Option<u64>>, StoreError> {
        self.write(records, &[]).map(|(ids, _)| ids)
    }

    /// One write transaction, one commit (one fsync): first `changes` (each
    /// `true` if it applied), then `records` inserted as [`insert`](Self::insert)
    /// does, so bytes that `changes` freed are room for `records`. The group
    /// commit of the writer thread (`batch`) calls this with all that waits.
    pub fn write(
        &self,
        records: &[Record],
        changes: &[Change],
    ) -> Result<(Vec<Option<u64>>, Vec<bool>), StoreError> {
        let written = self
            .recover()
            .and_then(|()| self.write_once(records, changes));
        self.failing.store(written.is_err(), Ordering::Release);
        written
    }

    fn write_once(
        &self,
        records: &[Record],
        changes: &[Change],
    ) -> Result<(Vec<Option<u64>>, Vec<bool>), StoreError> {
        let txn = self.begin_write()?;
        let applied = changes
            .iter()
            .map(|c| match c {
                Change::Remove { table, route, id } => remove_in(&txn, *table, route, *id),
                Change::Put { to, id, record } => put_in(&txn, *to, *id, record),
            })
            .collect::<Result<Vec<bool>, StoreError>>()?;
        let ids = self.insert_in(&txn, records)?;
        // The counter as this transaction leaves it: no read after the commit.
        let used = get(&txn.open_table(META)?, USED)?;
        let before = self.used.load(Ordering::Acquire);
        if let Err(e) = txn.commit() {
            // redb can report a commit that is durable all the same (on a full
            // disk, an I/O error after the commit was written): answered 503,
            // its records would still be delivered, and again when resent.
            // Reopened, the file tells which: this transaction's byte count
            // means it landed, and its records' 202 is the true answer.
            if used != before && self.landed(used) {
                return Ok((ids, applied));
            }
            return Err(e.into());
        }
        self.used.store(used, Ordering::Release);
        Ok((ids, applied))
    }

    /// Whether the store, reopened now, holds `used` bytes: the count a
    /// transaction whose commit failed would have left.
    fn landed(&self, used: u64) -> bool {
        self.failing.store(true, Ordering::Release);
        *self.reopened.lock().unwrap_or_else(PoisonError::into_inner) = None;
        match self.recover() {
            Ok(()) => self.used.load(Ordering::Acquire) == used,
            Err(e) => {
                tracing::warn!(error = %e, "queue store: cannot reopen after a failed commit");
                false
            }
        }
    }

    fn insert_in(
        &self,
        txn: &WriteTransaction,
        records: &[Record],
    ) -> Result<Vec<Option<u64>>, StoreError> {
        let mut ids = Vec::with_capacity(records.len());
        if records.is_empty() {
            return Ok(ids);
        }
        let mut meta = txn.open_table(META)?;
        let mut depth = txn.open_table(DEPTH)?;
        let mut table = txn.open_table(PENDING)?;
        let mut used = get(&meta, USED)?;
        let mut next = get(&meta, NEXT_ID)?.max(1);
        for record in records {
            let bytes = record.encode();
            let size = bytes.len() as u64;
            if used.saturating_add(size) > self.max_bytes {
                ids.push(None);
                continue;
            }
            table.insert((record.route.as_str(), next), bytes.as_slice())?;
            add(&mut depth, &record.route, 1)?;
            used += size;
            ids.push(Some(next));
            next += 1;
        }
        meta.insert(USED, used)?;
        meta.insert(NEXT_ID, next)?;
        Ok(ids)
    }

    /// The first pending record of each route: the next to deliver. A head
    /// that does not decode is moved to the dead letters as it is (and
    /// reported), and the route's next record becomes its head.
    pub fn heads(&self) -> Result<Heads, StoreError> {
        let mut set_aside = Vec::new();
        for _ in 0..SET_ASIDE_PASSES {
            let (due, broken) = self.read_heads()?;
            if broken.is_empty() {
                return Ok(Heads { due, set_aside });
            }
            for (route, id) in broken {
                if let Some(s) = self.move_aside(&route, id)? {
                    set_aside.push(s);
                }
            }
        }
        let (due, _) = self.read_heads()?;
        Ok(Heads { due, set_aside })
    }

    /// The decoded heads, and the `(route, id)` of those that did not decode.
    fn read_heads(&self) -> Result<(Vec<Stored>, Vec<Key>), StoreError> {
        let read = self.begin_read()?;
        let table = read.open_table(PENDING)?;
        let (mut heads, mut broken) = (Vec::new(), Vec::new());
        let mut next = table.first()?;
        while let Some((k, v)) = next {
            let (route, id) = k.value();
            let route = route.to_string();
            let head = Stored::decode(id, Table::Pending, &route, v.value());
            match head.undecodable {
                None => heads.push(head),
                Some(_) => broken.push((route.clone(), id)),
            }
            // The next route's first key: past every id of this one.
            next = table
                .range((route.as_str(), u64::MAX)..)?
                .find(|e| e.as_ref().map_or(true, |(k, _)| k.value().0 != route))
                .transpose()?;
        }
        Ok((heads, broken))
    }

    /// Moves a pending value to the dead letters byte for byte.
    fn move_aside(&self, route: &str, id: u64) -> Result<Option<SetAside>, StoreError> {
        let txn = self.begin_write()?;
        let raw = txn
            .open_table(PENDING)?
            .remove((route, id))?
            .map(|v| v.value().to_vec());
        let Some(raw) = raw else {
            return Ok(None);
        };
        txn.open_table(DEAD)?.insert((route, id), raw.as_slice())?;
        add(&mut txn.open_table(DEPTH)?, route, -1)?;
        // Moved, not freed: `used` is unchanged.
        txn.commit()?;
        let why = Stored::decode(id, Table::Dead, route, &raw)
            .record
            .last_error;
        Ok(Some(SetAside {
            route: route.to_string(),
            id,
            bytes: raw.len() as u64,
            why,
        }))
    }

    /// Pending records per route.
    pub fn depths(&self) -> Result<HashMap<String, u64>, StoreError> {
        let read = self.begin_read()?;
        let mut out = HashMap::new();
        for entry in read.open_table(DEPTH)?.iter()? {
            let (route, n) = entry?;
            out.insert(route.value().to_string(), n.value());
        }
        Ok(out)
    }

    /// Every record of `table`, optionally of one route, in key order.
    pub fn list(&self, table: Table, route: Option<&str>) -> Result<Vec<Stored>, StoreError> {
        let read = self.begin_read()?;
        let t = read.open_table(table.def())?;
        let mut out = Vec::new();
        let entries = match route {
            Some(r) => t.range((r, 0)..=(r, u64::MAX))?,
            None => t.iter()?,
        };
        for entry in entries {
            let (k, v) = entry?;
            let (r, id) = k.value();
            out.push(Stored::decode(id, table, r, v.value()));
        }
        Ok(out)
    }

    /// The record with this id, in either table.
    pub fn find(&self, id: u64) -> Result<Option<Stored>, StoreError> {
        let read = self.begin_read()?;
        for table in [Table::Pending, Table::Dead] {
            for entry in read.open_table(table.def())?.iter()? {
                let (k, v) = entry?;
                let (route, found) = k.value();
                if found == id {
                    return Ok(Some(Stored::decode(id, table, route, v.value())));
                }
            }
        }
        Ok(None)
    }

    /// Removes a record (delivered, or dropped).
    pub fn remove(&self, table: Table, route: &str, id: u64) -> Result<bool, StoreError> {
        let change = Change::Remove {
            table,
            route: route.to_string(),
            id,
        };
        Ok(self.write(&[], &[change])?.1.first() == Some(&true))
    }

    /// Writes `record` as record `id` of `to`, removing it from the other table.
    pub fn put(&self, to: Table, id: u64, record: &Record) -> Result<bool, StoreError> {
        let change = Change::Put {
            to,
            id,
            record: record.clone(),
        };
        Ok(self.write(&[], &[change])?.1.first() == Some(&true))
    }

    /// For `/readyz`: the store takes writes. After a failed write (a full
    /// disk), a probe commits and takes back a request-sized value (one
    /// fsync), so the store reads ready again once the volume has room, even
    /// if no request or delivery comes to write meanwhile.
    pub fn writable(&self) -> bool {
        if !self.failing.load(Ordering::Acquire) {
            return true;
        }
        let probed = self.recover().and_then(|()| self.probe());
        self.failing.store(probed.is_err(), Ordering::Release);
        probed.is_ok()
    }

    fn probe(&self) -> Result<(), StoreError> {
        let txn = self.begin_write()?;
        {
            let mut t = txn.open_table(PROBE)?;
            t.insert(0, [0u8; PROBE_BYTES].as_slice())?;
            t.remove(0)?;
        }
        txn.commit()?;
        Ok(())
    }

    /// Records in `table`.
    pub fn len(&self, table: Table) -> Result<u64, StoreError> {
        Ok(self.begin_read()?.open_table(table.def())?.len()?)
    }

    pub fn used_bytes(&self) -> u64 {
        self.used.load(Ordering::Acquire)
    }

    fn reload_used(&self) -> Result<(), StoreError> {
        let used = get(&self.begin_read()?.open_table(META)?, USED)?;
        self.used.store(used, Ordering::Release);
        Ok(())
    }
}

/// Opens (creating) the store's file; redb repairs it if it was not closed cleanly.
fn open_file(file: &Path) -> Result<Database, StoreError> {
    match Database::create(file) {
        Ok(db) => Ok(db),
        Err(redb::DatabaseError::DatabaseAlreadyOpen) => {
            Err(StoreError::Locked(file.to_path_buf()))
        }
        Err(e) => Err(StoreError::Db(format!("{}: {e}", file.display()))),
    }
}

fn closed(file: &Path) -> StoreError {
    StoreError::Db(format!(
        "{} could not be reopened after a failed write; retrying",
        file.display()
    ))
}

/// A change to a stored record, applied in a write transaction (see [`DiskStore::write`]).
#[derive(Debug, Clone)]
pub enum Change {
    /// Deletes it (delivered, or dropped).
    Remove {
        table: Table,
        route: String,
        id: u64,
    },
    /// Writes it as record `id` of `to`, removing it from the other table; not
    /// applied to a record no longer in either (dropped meanwhile).
    Put { to: Table, id: u64, record: Record },
}

fn remove_in(
    txn: &WriteTransaction,
    table: Table,
    route: &str,
    id: u64,
) -> Result<bool, StoreError> {
    let removed = txn
        .open_table(table.def())?
        .remove((route, id))?
        .map(|v| v.value().len() as u64);
    if let Some(size) = removed {
        add(&mut txn.open_table(META)?, USED, -signed(size))?;
        if table == Table::Pending {
            add(&mut txn.open_table(DEPTH)?, route, -1)?;
        }
    }
    Ok(removed.is_some())
}

fn put_in(txn: &WriteTransaction, to: Table, id: u64, record: &Record) -> Result<bool, StoreError> {
    let from = match to {
        Table::Pending => Table::Dead,
        Table::Dead => Table::Pending,
    };
    let key = (record.route.as_str(), id);
    let old = txn
        .open_table(from.def())?
        .remove(key)?
        .map(|v| v.value().len() as u64);
    // Dropped meanwhile (`hookgate queue drop` while it was being
    // delivered): it stays dropped; nothing was changed.
    if old.is_none() && txn.open_table(to.def())?.get(key)?.is_none() {
        return Ok(false);
    }
    let bytes = record.encode();
    let same = txn
        .open_table(to.def())?
        .insert(key, bytes.as_slice())?
        .map(|v| v.value().len() as u64);
    let freed = old.or(same).unwrap_or(0);
    add(
        &mut txn.open_table(META)?,
        USED,
        signed(bytes.len() as u64) - signed(freed),
    )?;
    let moved = match (to, old.is_some()) {
        (Table::Pending, true) => 1,
        (Table::Dead, true) => -1,
        (Table::Pending | Table::Dead, false) => 0,
    };
    if moved != 0 {
        add(&mut txn.open_table(DEPTH)?, &record.route, moved)?;
    }
    Ok(true)
}

/// A store written before the counter tables: count it once, in `txn`.
fn count_once(txn: &WriteTransaction) -> Result<(), StoreError> {
    let (mut used, mut last, mut depth) = (0u64, 0u64, HashMap::<String, u64>::new());
    for table in [Table::Pending, Table::Dead] {
        for entry in txn.open_table(table.def())?.iter()? {
            let (k, v) = entry?;
            let (route, id) = k.value();
            used += v.value().len() as u64;
            last = last.max(id);
            if table == Table::Pending {
                *depth.entry(route.to_string()).or_insert(0) += 1;
            }
        }
    }
    let mut meta = txn.open_table(META)?;
    meta.insert(USED, used)?;
    meta.insert(NEXT_ID, last + 1)?;
    let mut d = txn.open_table(DEPTH)?;
    for (route, n) in depth {
        d.insert(route.as_str(), n)?;
    }
    Ok(())
}

fn get<T: ReadableTable<&'static str, u64>>(t: &T, key: &str) -> Result<u64, StoreError> {
    Ok(t.get(key)?.map_or(0, |v| v.value()))
}

/// Adds `delta` to a counter (never below zero); one at zero is removed (it reads as 0).
fn add(t: &mut RedbTable<'_, &'static str, u64>, key: &str, delta: i64) -> Result<u64, StoreError> {
    let now = get(t, key)?;
    let next = now.saturating_add_signed(delta);
    if next == 0 {
        t.remove(key)?;
    } else {
        t.insert(key, next)?;
    }
    Ok(next)
}

fn signed(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
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

    /// What a full scan counts: bytes, pending per route, the largest id.
    fn scan(store: &DiskStore) -> (u64, HashMap<String, u64>, u64) {
        let (mut used, mut depth, mut last) = (0, HashMap::new(), 0);
        for table in [Table::Pending, Table::Dead] {
            let read = store.begin_read().unwrap();
            for entry in read.open_table(table.def()).unwrap().iter().unwrap() {
                let (k, v) = entry.unwrap();
                let (route, id) = k.value();
                used += v.value().len() as u64;
                last = last.max(id);
                if table == Table::Pending {
                    *depth.entry(route.to_string()).or_insert(0) += 1;
                }
            }
        }
        (used, depth, last)
    }

    fn assert_counters_match_a_scan(store: &DiskStore) {
        let (used, depth, last) = scan(store);
        assert_eq!(store.used_bytes(), used);
        assert_eq!(store.depths().unwrap(), depth);
        let read = store.begin_read().unwrap();
        let next = get(&read.open_table(META).unwrap(), NEXT_ID).unwrap();
        assert!(next > last, "next_id {next} not past {last}");
    }

    #[test]
    fn heads_are_each_routes_oldest_and_max_bytes_refuses_without_losing_anything() {
        let dir = tempfile::tempdir().unwrap();
        let size = record("a", b"0123456789").encode().len() as u64;
        let store = DiskStore::open(dir.path(), size * 3).unwrap();
        let batch = [
            record("b", b"b-first..."),
            record("a", b"a-first..."),
            record("a", b"a-second.."),
            record("b", b"b-second.."),
        ];
        let ids = store.insert(&batch).unwrap();
        assert!(ids[..3].iter().all(Option::is_some));
        assert_eq!(ids[3], None, "over max_bytes");
        let heads = store.heads().unwrap().due;
        let bodies: Vec<&[u8]> = heads.iter().map(|h| h.record.body.as_slice()).collect();
        assert_eq!(bodies, [b"a-first...".as_slice(), b"b-first...".as_slice()]);
        assert_eq!(store.depths().unwrap()["a"], 2);
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
        assert_eq!(store.depths().unwrap()["a"], 1);
        assert!(store.remove(Table::Dead, "a", a1.id).unwrap());
        assert!(store.insert(&[record("b", b"b-second..")]).unwrap()[0].is_some());
        assert_eq!(store.list(Table::Pending, Some("b")).unwrap().len(), 2);
        drop(store);
        // Reopened: the same records and counters, and new ids after the old.
        let store = DiskStore::open(dir.path(), size * 3).unwrap();
        assert_eq!(store.len(Table::Pending).unwrap(), 3);
        assert_counters_match_a_scan(&store);
        let more = store.insert(&[record("c", b"")]).unwrap();
        assert_eq!(more, [None], "still full");
        assert!(matches!(
            DiskStore::open(dir.path(), 1),
            Err(StoreError::Locked(_))
        ));
    }

    #[test]
    fn counters_are_kept_in_the_write_transactions_and_a_store_without_them_is_counted_once() {
        let dir = tempfile::tempdir().unwrap();
        let store = DiskStore::open(dir.path(), 1 << 20).unwrap();
        let ids = store
            .insert(&[record("a", b"1"), record("b", b"22"), record("a", b"333")])
            .unwrap();
        assert_counters_match_a_scan(&store);
        let first = store.find(ids[0].unwrap()).unwrap().unwrap();
        let mut retried = first.record.clone();
        retried.attempts = 1;
        retried.last_error = "status 503, a longer value than before".into();
        store.put(Table::Pending, first.id, &retried).unwrap();
        assert_counters_match_a_scan(&store);
        store.put(Table::Dead, first.id, &retried).unwrap();
        assert_counters_match_a_scan(&store);
        store.put(Table::Pending, first.id, &first.record).unwrap();
        assert_counters_match_a_scan(&store);
        assert!(store.remove(Table::Pending, "b", ids[1].unwrap()).unwrap());
        assert!(!store.remove(Table::Pending, "b", ids[1].unwrap()).unwrap());
        assert_counters_match_a_scan(&store);
        // A delivery that ends after its record was dropped does not bring it back.
        let gone = record("b", b"22");
        assert!(!store.put(Table::Pending, ids[1].unwrap(), &gone).unwrap());
        assert!(!store.put(Table::Dead, ids[1].unwrap(), &gone).unwrap());
        assert!(store.find(ids[1].unwrap()).unwrap().is_none());
        assert_counters_match_a_scan(&store);
        assert_eq!(
            store.depths().unwrap().get("b"),
            None,
            "no zero depths kept"
        );
        // A store written before the counter tables: counted on its first open.
        let txn = store.begin_write().unwrap();
        txn.delete_table(META).unwrap();
        txn.delete_table(DEPTH).unwrap();
        txn.commit().unwrap();
        drop(store);
        let store = DiskStore::open(dir.path(), 1 << 20).unwrap();
        assert_counters_match_a_scan(&store);
        let next = store.insert(&[record("a", b"4")]).unwrap()[0].unwrap();
        assert!(next > ids[2].unwrap(), "an id used before was given again");
    }

    #[test]
    fn an_undecodable_head_is_moved_to_the_dead_letters_as_it_was_and_its_route_goes_on() {
        let dir = tempfile::tempdir().unwrap();
        let store = DiskStore::open(dir.path(), 1 << 20).unwrap();
        store.insert(&[record("a", b"first")]).unwrap();
        // A value this version cannot read, at the head of route `a`.
        let garbage = b"\x09not a record".to_vec();
        {
            let txn = store.begin_write().unwrap();
            txn.open_table(PENDING)
                .unwrap()
                .insert(("a", 0), garbage.as_slice())
                .unwrap();
            add(
                &mut txn.open_table(META).unwrap(),
                USED,
                signed(garbage.len() as u64),
            )
            .unwrap();
            add(&mut txn.open_table(DEPTH).unwrap(), "a", 1).unwrap();
            txn.commit().unwrap();
            // Written past the store's API: refresh its cached counter.
            store.reload_used().unwrap();
        }
        let heads = store.heads().unwrap();
        assert_eq!(heads.set_aside.len(), 1);
        let aside = &heads.set_aside[0];
        assert_eq!((aside.route.as_str(), aside.id), ("a", 0));
        assert_eq!(aside.bytes, garbage.len() as u64);
        assert!(aside.why.contains("unknown version"), "{}", aside.why);
        assert_eq!(heads.due.len(), 1);
        assert_eq!(heads.due[0].record.body, b"first", "the route goes on");
        // Listed among the dead letters as undecodable, bytes kept exactly.
        let dead = store.list(Table::Dead, None).unwrap();
        assert_eq!(dead.len(), 1);
        assert_eq!(dead[0].undecodable, Some(garbage.len() as u64));
        assert!(dead[0].record.last_error.starts_with("undecodable"));
        let read = store.begin_read().unwrap();
        let kept = read
            .open_table(DEAD)
            .unwrap()
            .get(("a", 0))
            .unwrap()
            .unwrap();
        assert_eq!(kept.value(), garbage.as_slice());
        drop((kept, read));
        assert_counters_match_a_scan(&store);
    }

    #[test]
    fn one_write_applies_changes_first_so_their_freed_bytes_make_room_for_its_records() {
        let dir = tempfile::tempdir().unwrap();
        let size = record("a", b"0123456789").encode().len() as u64;
        let store = DiskStore::open(dir.path(), size * 2).unwrap();
        let ids = store
            .insert(&[record("a", b"0123456789"), record("a", b"abcdefghij")])
            .unwrap();
        assert_eq!(store.insert(&[record("b", b"full......")]).unwrap(), [None]);
        let (first, second) = (ids[0].unwrap(), ids[1].unwrap());
        let changes = [
            // Delivered.
            Change::Remove {
                table: Table::Pending,
                route: "a".into(),
                id: first,
            },
            // Dead-lettered.
            Change::Put {
                to: Table::Dead,
                id: second,
                record: record("a", b"abcdefghij"),
            },
            // Already gone: not brought back.
            Change::Put {
                to: Table::Pending,
                id: first,
                record: record("a", b"0123456789"),
            },
        ];
        let (stored, applied) = store
            .write(&[record("b", b"fits now..")], &changes)
            .unwrap();
        assert_eq!(applied, [true, true, false]);
        assert!(stored[0].is_some());
        assert_eq!(store.len(Table::Pending).unwrap(), 1);
        assert_eq!(store.len(Table::Dead).unwrap(), 1);
        assert_counters_match_a_scan(&store);
    }
}
