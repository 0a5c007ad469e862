//! redb against fjall on hookgate's durable-queue workload (BENCHMARKS.md,
//! "Choosing the queue's embedded store: redb against fjall").
//!
//! `cargo run --release -- <dir> [--runs N] [--records N] [--stores redb,fjall,fjall-cursor]`: `<dir>` must not exist or be
//! empty, on the disk under test; each store gets fresh subdirectories, and
//! everything is removed at the end. Stores alternate within each run so that
//! a change of load on a shared machine falls on both.
//!
//! The workload, each write durable (fsync'd) before it is counted:
//! 1. accept: 200,000 records (`--records`) of 1,350 random bytes, keys (route of 16
//!    round-robin, increasing id), committed 25 at a time;
//! 2. single: 2,000 more commits of 1 record each, on a fresh store;
//! 3. drain (on the store of 1, reopened): read each route's first key,
//!    remove those (up to 16) in one commit, until empty (or 60 s);
//! 4. disk: files' size after 1, after 3, and again 10 s later; the time
//!    to reopen the full store after 1.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

const ROUTES: usize = 16;
const VALUE: usize = 1_350;
const GROUP: usize = 25;
const SINGLES: u64 = 2_000;
const SETTLE: Duration = Duration::from_secs(10);
/// A drain still running after this long is stopped and its rate so far reported.
const DRAIN_CAP: Duration = Duration::from_secs(60);

type Res<T> = Result<T, Box<dyn std::error::Error>>;

/// The queue's operations as hookgate uses them.
trait Store: Sized {
    const NAME: &'static str;
    fn open(dir: &Path) -> Res<Self>;
    /// One durable commit of `records` (route index, id, value).
    fn insert(&self, records: &[(usize, u64, &[u8])]) -> Res<()>;
    /// The first key of each route that has one.
    fn heads(&self) -> Res<Vec<(usize, u64)>>;
    /// One durable commit removing `keys`.
    fn remove(&self, keys: &[(usize, u64)]) -> Res<()>;
}

fn route(i: usize) -> String {
    format!("route-{i:02}")
}

// ---------------------------------------------------------------- redb

const PENDING: redb::TableDefinition<(&str, u64), &[u8]> = redb::TableDefinition::new("pending");

struct Redb {
    db: redb::Database,
    routes: Vec<String>,
}

impl Store for Redb {
    const NAME: &'static str = "redb";
    fn open(dir: &Path) -> Res<Self> {
        std::fs::create_dir_all(dir)?;
        // As hookgate: one file, default (Immediate: fsync per commit) durability.
        let db = redb::Database::create(dir.join("queue.redb"))?;
        let txn = db.begin_write()?;
        txn.open_table(PENDING)?;
        txn.commit()?;
        Ok(Redb { db, routes: (0..ROUTES).map(route).collect() })
    }
    fn insert(&self, records: &[(usize, u64, &[u8])]) -> Res<()> {
        let txn = self.db.begin_write()?;
        {
            let mut t = txn.open_table(PENDING)?;
            for &(r, id, v) in records {
                t.insert((self.routes[r].as_str(), id), v)?;
            }
        }
        txn.commit()?;
        Ok(())
    }
    fn heads(&self) -> Res<Vec<(usize, u64)>> {
        let txn = self.db.begin_read()?;
        let t = txn.open_table(PENDING)?;
        let mut out = Vec::new();
        for (i, r) in self.routes.iter().enumerate() {
            if let Some(e) = t.range((r.as_str(), 0)..=(r.as_str(), u64::MAX))?.next() {
                out.push((i, e?.0.value().1));
            }
        }
        Ok(out)
    }
    fn remove(&self, keys: &[(usize, u64)]) -> Res<()> {
        let txn = self.db.begin_write()?;
        {
            let mut t = txn.open_table(PENDING)?;
            for &(r, id) in keys {
                t.remove((self.routes[r].as_str(), id))?;
            }
        }
        txn.commit()?;
        Ok(())
    }
}

// ---------------------------------------------------------------- fjall

struct Fjall {
    ks: fjall::Keyspace,
    part: fjall::PartitionHandle,
    prefixes: Vec<Vec<u8>>,
}

impl Fjall {
    /// route bytes, 0x00, big-endian id: per-route order is key order.
    fn key(&self, r: usize, id: u64) -> Vec<u8> {
        let mut k = self.prefixes[r].clone();
        k.extend_from_slice(&id.to_be_bytes());
        k
    }
}

impl Store for Fjall {
    const NAME: &'static str = "fjall";
    fn open(dir: &Path) -> Res<Self> {
        // Defaults throughout; durability is asked for per batch below.
        let ks = fjall::Config::new(dir).open()?;
        let part = ks.open_partition("pending", fjall::PartitionCreateOptions::default())?;
        let prefixes = (0..ROUTES)
            .map(|i| {
                let mut p = route(i).into_bytes();
                p.push(0);
                p
            })
            .collect();
        Ok(Fjall { ks, part, prefixes })
    }
    fn insert(&self, records: &[(usize, u64, &[u8])]) -> Res<()> {
        let mut b = self.ks.batch().durability(Some(fjall::PersistMode::SyncAll));
        for &(r, id, v) in records {
            b.insert(&self.part, self.key(r, id), v);
        }
        b.commit()?; // written to the journal and fsync'd before it returns
        Ok(())
    }
    fn heads(&self) -> Res<Vec<(usize, u64)>> {
        let mut out = Vec::new();
        for (i, p) in self.prefixes.iter().enumerate() {
            if let Some(kv) = self.part.prefix(p).next() {
                let (k, _) = kv?;
                let id = u64::from_be_bytes(k[k.len() - 8..].try_into()?);
                out.push((i, id));
            }
        }
        Ok(out)
    }
    fn remove(&self, keys: &[(usize, u64)]) -> Res<()> {
        let mut b = self.ks.batch().durability(Some(fjall::PersistMode::SyncAll));
        for &(r, id) in keys {
            b.remove(&self.part, self.key(r, id));
        }
        b.commit()?;
        Ok(())
    }
}

/// fjall with the heads found by a seek past the last id removed from each
/// route (kept in memory) instead of from the route's first key: the seek
/// lands beyond the route's tombstones instead of walking over them. hookgate
/// would have to keep such a cursor per route (from 0 after a restart).
struct FjallCursor {
    f: Fjall,
    next: std::cell::RefCell<Vec<u64>>,
}

impl Store for FjallCursor {
    const NAME: &'static str = "fjall-cursor";
    fn open(dir: &Path) -> Res<Self> {
        Ok(FjallCursor { f: Fjall::open(dir)?, next: vec![0; ROUTES].into() })
    }
    fn insert(&self, records: &[(usize, u64, &[u8])]) -> Res<()> {
        self.f.insert(records)
    }
    fn heads(&self) -> Res<Vec<(usize, u64)>> {
        let next = self.next.borrow();
        let mut out = Vec::new();
        for r in 0..ROUTES {
            let range = self.f.key(r, next[r])..=self.f.key(r, u64::MAX);
            if let Some(kv) = self.f.part.range(range).next() {
                let (k, _) = kv?;
                out.push((r, u64::from_be_bytes(k[k.len() - 8..].try_into()?)));
            }
        }
        Ok(out)
    }
    fn remove(&self, keys: &[(usize, u64)]) -> Res<()> {
        self.f.remove(keys)?;
        let mut next = self.next.borrow_mut();
        for &(r, id) in keys {
            next[r] = id + 1;
        }
        Ok(())
    }
}

// ---------------------------------------------------------------- measuring

/// Process CPU time (user + system, every thread), seconds.
fn cpu() -> f64 {
    let mut u: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut u) };
    let tv = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    tv(u.ru_utime) + tv(u.ru_stime)
}

/// (apparent bytes, allocated bytes) of every file under `dir`.
fn disk(dir: &Path) -> (u64, u64) {
    use std::os::unix::fs::MetadataExt;
    let mut sum = (0, 0);
    for e in std::fs::read_dir(dir).unwrap() {
        let e = e.unwrap();
        let m = e.metadata().unwrap();
        if m.is_dir() {
            let (a, b) = disk(&e.path());
            sum = (sum.0 + a, sum.1 + b);
        } else {
            sum = (sum.0 + m.len(), sum.1 + m.blocks() * 512);
        }
    }
    sum
}

struct Rng(u64);
impl Rng {
    fn fill(&mut self, buf: &mut [u8]) {
        for chunk in buf.chunks_mut(8) {
            // xorshift64*: incompressible enough to stand for random bodies.
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            let x = self.0.wrapping_mul(0x2545_F491_4F6C_DD1D).to_le_bytes();
            chunk.copy_from_slice(&x[..chunk.len()]);
        }
    }
}

#[derive(Default, Clone)]
struct Run {
    drained: u64,
    accept_rps: f64,
    accept_cpu_us: f64,
    single_cps: f64,
    single_cpu_us: f64,
    drain_rps: f64,
    drain_cpu_us: f64,
    reopen_ms: f64,
    full_mib: f64,
    full_alloc_mib: f64,
    drained_mib: f64,
    settled_mib: f64,
    settled_alloc_mib: f64,
}

const MIB: f64 = 1024.0 * 1024.0;

/// Insert `count` records in commits of `group`; returns (seconds, cpu seconds).
fn fill<S: Store>(s: &S, count: u64, group: usize, seed: u64) -> Res<(f64, f64)> {
    let mut rng = Rng(seed | 1);
    let mut values = vec![vec![0u8; VALUE]; group];
    let (t0, c0) = (Instant::now(), cpu());
    let mut id = 0u64;
    while id < count {
        let n = group.min((count - id) as usize);
        for v in &mut values[..n] {
            rng.fill(v);
        }
        let recs: Vec<(usize, u64, &[u8])> = (0..n)
            .map(|i| {
                let k = id + i as u64;
                ((k % ROUTES as u64) as usize, k, values[i].as_slice())
            })
            .collect();
        s.insert(&recs)?;
        id += n as u64;
    }
    Ok((t0.elapsed().as_secs_f64(), cpu() - c0))
}

fn run<S: Store>(base: &Path, round: usize, records: u64) -> Res<Run> {
    let mut out = Run::default();
    let dir = base.join(format!("{}-{round}", S::NAME));
    let single_dir = base.join(format!("{}-{round}-single", S::NAME));

    // 1. acceptance, groups of 25
    let s = S::open(&dir)?;
    let (t, c) = fill(&s, records, GROUP, 0x9E37_79B9 + round as u64)?;
    out.accept_rps = records as f64 / t;
    out.accept_cpu_us = c / records as f64 * 1e6;
    let (a, b) = disk(&dir);
    (out.full_mib, out.full_alloc_mib) = (a as f64 / MIB, b as f64 / MIB);
    drop(s);

    // 4. reopen the full store
    let t0 = Instant::now();
    let s = S::open(&dir)?;
    out.reopen_ms = t0.elapsed().as_secs_f64() * 1e3;

    // 3. drain: heads of every route, remove them in one commit, until empty
    let (t0, c0) = (Instant::now(), cpu());
    let mut removed = 0u64;
    loop {
        let heads = s.heads()?;
        if heads.is_empty() {
            break;
        }
        s.remove(&heads)?;
        removed += heads.len() as u64;
        if t0.elapsed() > DRAIN_CAP {
            eprintln!("  {} round {round}: drain stopped after {DRAIN_CAP:?}: {removed} of {records} removed", S::NAME);
            break;
        }
    }
    let (t, c) = (t0.elapsed().as_secs_f64(), cpu() - c0);
    out.drained = removed;
    out.drain_rps = removed as f64 / t;
    out.drain_cpu_us = c / removed as f64 * 1e6;
    out.drained_mib = disk(&dir).0 as f64 / MIB;
    std::thread::sleep(SETTLE); // fjall flushes and compacts in the background
    let (a, b) = disk(&dir);
    (out.settled_mib, out.settled_alloc_mib) = (a as f64 / MIB, b as f64 / MIB);
    drop(s);
    std::fs::remove_dir_all(&dir)?;

    // 2. a lone request: commits of one record, fresh store
    let s = S::open(&single_dir)?;
    let (t, c) = fill(&s, SINGLES, 1, 7 + round as u64)?;
    out.single_cps = SINGLES as f64 / t;
    out.single_cpu_us = c / SINGLES as f64 * 1e6;
    drop(s);
    std::fs::remove_dir_all(&single_dir)?;

    eprintln!(
        "  {:5} round {round}: accept {:.0} rec/s {:.1} us CPU/rec | single {:.0} commits/s | \
         drain {:.0} rec/s {:.1} us CPU/rec | full {:.1} MiB ({:.1} alloc), reopen {:.1} ms | \
         drained {:.1} MiB, +10 s {:.1} MiB ({:.1} alloc)",
        S::NAME,
        out.accept_rps,
        out.accept_cpu_us,
        out.single_cps,
        out.drain_rps,
        out.drain_cpu_us,
        out.full_mib,
        out.full_alloc_mib,
        out.reopen_ms,
        out.drained_mib,
        out.settled_mib,
        out.settled_alloc_mib
    );
    Ok(out)
}

/// "median (min–max)"
fn summary(runs: &[Run], f: fn(&Run) -> f64, digits: usize) -> String {
    let mut v: Vec<f64> = runs.iter().map(f).collect();
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let med = v[v.len() / 2];
    if v.len() == 1 {
        return format!("{med:.digits$}");
    }
    format!("{med:.digits$} ({:.digits$}–{:.digits$})", v[0], v[v.len() - 1])
}

fn main() -> Res<()> {
    let args: Vec<String> = std::env::args().collect();
    let base = PathBuf::from(args.get(1).ok_or("usage: store-choice <dir> [--runs N] [--records N] [--stores a,b]")?);
    let (mut runs, mut records) = (3usize, 200_000u64);
    let mut stores = vec!["redb".to_string(), "fjall".to_string()];
    let mut it = args[2..].iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--runs" => runs = it.next().ok_or("--runs N")?.parse()?,
            "--records" => records = it.next().ok_or("--records N")?.parse()?,
            "--stores" => {
                stores = it.next().ok_or("--stores a,b")?.split(',').map(String::from).collect()
            }
            _ => return Err(format!("unknown argument {a}").into()),
        }
    }
    std::fs::create_dir_all(&base)?;
    let mut results: Vec<Vec<Run>> = vec![Vec::new(); stores.len()];
    for round in 0..runs {
        // Rotate which goes first.
        for j in 0..stores.len() {
            let i = (j + round) % stores.len();
            let r = match stores[i].as_str() {
                "redb" => run::<Redb>(&base, round, records)?,
                "fjall" => run::<Fjall>(&base, round, records)?,
                "fjall-cursor" => run::<FjallCursor>(&base, round, records)?,
                other => return Err(format!("unknown store {other}").into()),
            };
            results[i].push(r);
        }
    }
    let rows: [(&str, fn(&Run) -> f64, usize); 13] = [
        ("accept, groups of 25 (records/s)", |x| x.accept_rps, 0),
        ("accept: CPU per record (µs)", |x| x.accept_cpu_us, 1),
        ("lone commit, groups of 1 (commits/s)", |x| x.single_cps, 0),
        ("lone commit: CPU per commit (µs)", |x| x.single_cpu_us, 0),
        ("drain, 16 heads + 1 commit (records/s)", |x| x.drain_rps, 0),
        ("  records drained (of all; capped at 60 s)", |x| x.drained as f64, 0),
        ("drain: CPU per record (µs)", |x| x.drain_cpu_us, 1),
        ("files after accept (MiB)", |x| x.full_mib, 1),
        ("  allocated (MiB)", |x| x.full_alloc_mib, 1),
        ("reopen the full store (ms)", |x| x.reopen_ms, 1),
        ("files right after drain (MiB)", |x| x.drained_mib, 1),
        ("files 10 s after drain (MiB)", |x| x.settled_mib, 1),
        ("  allocated (MiB)", |x| x.settled_alloc_mib, 1),
    ];
    println!("| {records} records, {runs} runs: median (min–max) | {} |", stores.join(" | "));
    println!("| --- |{}", " --- |".repeat(stores.len()));
    for (name, field, d) in rows {
        let cells: Vec<String> = results.iter().map(|r| summary(r, field, d)).collect();
        println!("| {name} | {} |", cells.join(" | "));
    }
    std::fs::remove_dir_all(&base)?;
    Ok(())
}
