//! floor+verify's work, shared by the hyper floor and the purpose-built one:
//! the Svix check, the replay claim and settle in one shared LRU, and the
//! request's JSON log line. Everything here takes bytes, so that both data
//! paths do exactly the same verifying work and differ only in how they move
//! HTTP/1.1.

use std::cell::RefCell;
use std::io::Write;
use std::num::NonZeroUsize;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use base64::Engine;
use hmac::{Hmac, Mac};
use lru::LruCache;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// Replay ids remembered, across all workers.
const CAPACITY: usize = 100_000;
/// How far a signed timestamp may be from now, either way.
const TOLERANCE_SECS: i64 = 600;
/// Values in the replay map.
const IN_FLIGHT: u64 = 0;
const DELIVERED: u64 = 1;

/// floor+verify's shared state: the keyed HMAC (cloned per request) and the
/// replay map.
pub(crate) struct Gate {
    mac: Hmac<Sha256>,
    seen: Mutex<LruCache<[u8; 16], u64>>,
}

/// The first map operation's answer.
pub(crate) enum Claim {
    Claimed([u8; 16]),
    Duplicate,
    InFlight,
}

impl Gate {
    pub(crate) fn from_env() -> Result<Self, Box<dyn std::error::Error>> {
        let secret = std::env::var("BENCH_SVIX_SECRET")
            .map_err(|_| "floor verify: BENCH_SVIX_SECRET (whsec_<base64 key>) is not set")?;
        let key = secret.strip_prefix("whsec_").unwrap_or(&secret);
        let key = base64::engine::general_purpose::STANDARD.decode(key)?;
        let capacity = NonZeroUsize::new(CAPACITY).ok_or("capacity is zero")?;
        Ok(Gate {
            mac: Hmac::new_from_slice(&key)?,
            seen: Mutex::new(LruCache::new(capacity)),
        })
    }

    /// Svix: a fresh timestamp and one `v1,` signature equal to ours.
    pub(crate) fn genuine(&self, id: &[u8], ts: &[u8], sig: &[u8], body: &[u8]) -> bool {
        let Some(when) = std::str::from_utf8(ts)
            .ok()
            .and_then(|t| t.parse::<i64>().ok())
        else {
            return false;
        };
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX));
        if now.abs_diff(when) > TOLERANCE_SECS.unsigned_abs() {
            return false;
        }
        let mut mac = self.mac.clone();
        mac.update(id);
        mac.update(b".");
        mac.update(ts);
        mac.update(b".");
        mac.update(body);
        let ours = mac.finalize().into_bytes();
        let mut theirs = [0u8; 64];
        sig.split(|&b| b == b' ')
            .filter_map(|e| e.strip_prefix(b"v1,"))
            .any(|b64| {
                base64::engine::general_purpose::STANDARD
                    .decode_slice(b64, &mut theirs)
                    .is_ok_and(|n| bool::from(ours.as_slice().ct_eq(&theirs[..n])))
            })
    }

    fn seen(&self) -> std::sync::MutexGuard<'_, LruCache<[u8; 16], u64>> {
        // Every operation is one map call: a poisoned map is still consistent.
        self.seen.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The first map operation: a new id is claimed (in flight).
    pub(crate) fn claim(&self, id: &[u8]) -> Claim {
        let mut key = [0u8; 16];
        key.copy_from_slice(&Sha256::digest(id)[..16]);
        let mut seen = self.seen();
        match seen.get(&key) {
            Some(&DELIVERED) => Claim::Duplicate,
            Some(_) => Claim::InFlight,
            None => {
                seen.put(key, IN_FLIGHT);
                Claim::Claimed(key)
            }
        }
    }

    /// The second: delivered after a 2xx, released otherwise.
    pub(crate) fn settle(&self, key: [u8; 16], delivered: bool) {
        let mut seen = self.seen();
        if delivered {
            seen.put(key, DELIVERED);
        } else {
            seen.pop(&key);
        }
    }
}

/// A worker's log lines are written to stderr once this much is buffered.
const BATCH: usize = 32 * 1024;

thread_local! {
    /// One buffer per worker (a worker is one thread).
    static LOG: RefCell<Vec<u8>> = RefCell::new(Vec::with_capacity(BATCH + 1024));
}

/// The request's JSON log line (with its time, as any access log has).
pub(crate) fn log(outcome: &str, status: u16, start: Instant, id: Option<&[u8]>) {
    log_took(outcome, status, start.elapsed(), id);
}

/// The same line, for a caller that has read the request's duration already.
pub(crate) fn log_took(outcome: &str, status: u16, took: Duration, id: Option<&[u8]>) {
    let ms = took.as_secs_f64() * 1000.0;
    LOG.with_borrow_mut(|buf| {
        let _ = write!(
            buf,
            r#"{{"timestamp":"{}","route":"svix","outcome":"{outcome}","status":{status},"duration_ms":{ms:.3},"message_id":"#,
            humantime::format_rfc3339_micros(SystemTime::now()),
        );
        match id {
            Some(id) => json_string(buf, id),
            None => buf.extend_from_slice(b"null"),
        }
        buf.extend_from_slice(b"}\n");
        if buf.len() >= BATCH {
            let _ = std::io::stderr().write_all(buf);
            buf.clear();
        }
    });
}

/// A JSON string of the header's bytes (printable ASCII as is, others escaped).
fn json_string(buf: &mut Vec<u8>, s: &[u8]) {
    buf.push(b'"');
    for &b in s {
        match b {
            b'"' | b'\\' => buf.extend_from_slice(&[b'\\', b]),
            0x20..=0x7e => buf.push(b),
            _ => {
                let _ = write!(buf, "\\u{b:04x}");
            }
        }
    }
    buf.push(b'"');
}
