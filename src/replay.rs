//! The store of seen message ids: delivery-aware claims over an in-memory LRU or Redis.
//!
//! A verified request first *claims* its id. The claim is an in-flight marker
//! with a lease; it becomes *delivered* (remembered for `ttl`) only once the
//! application answered 2xx, and is *released* otherwise, so that the
//! provider's retry is forwarded again. Nothing a provider retries is lost,
//! and nothing the application accepted is delivered twice.

use std::fmt;
use std::num::{NonZeroU64, NonZeroUsize};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use lru::LruCache;
use sha2::{Digest, Sha256};
use tokio::time::Instant;

mod redis_store;
pub use redis_store::{RedisOptions, RedisStore};

/// What a claim found.
#[derive(Debug, PartialEq, Eq)]
pub enum Claim {
    /// The id is new (or was released): this request owns it until it reports back.
    Claimed(Ticket),
    /// The application already accepted this id.
    Duplicate,
    /// Another request with this id is being forwarded right now.
    InFlight,
}

/// Ownership of a claimed id; hand it back with `delivered` or `release`.
///
/// A ticket dropped unsettled (a forward that panicked or was aborted)
/// releases its claim, so the provider's retry goes through at once instead
/// of meeting `in_flight` until the lease runs out.
pub struct Ticket {
    key: [u8; 32],
    token: u64,
    /// The store that issued it, until it is settled.
    owner: Option<Arc<Store>>,
}

impl Ticket {
    fn new(key: [u8; 32], token: u64) -> Self {
        Ticket {
            key,
            token,
            owner: None,
        }
    }

    /// Settles the ticket by hand: its drop no longer releases anything.
    fn disarm(mut self) -> Ticket {
        self.owner = None;
        self
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        let Some(store) = self.owner.take() else {
            return;
        };
        let ticket = Ticket::new(self.key, self.token);
        match &*store {
            Store::Memory(m) => m.release(&ticket),
            Store::Redis(_) => {
                // A network round trip cannot run in `drop`: hand it to the
                // runtime. Without one (the process is ending) the lease
                // frees the id in the end.
                if let Ok(runtime) = tokio::runtime::Handle::try_current() {
                    runtime.spawn(async move {
                        if let Err(e) = store.release(ticket).await {
                            tracing::warn!(error = %e, "replay store could not release an abandoned claim");
                        }
                    });
                }
            }
        }
    }
}

impl fmt::Debug for Ticket {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Ticket")
            .field("token", &self.token)
            .field("armed", &self.owner.is_some())
            .finish_non_exhaustive()
    }
}

impl PartialEq for Ticket {
    fn eq(&self, other: &Self) -> bool {
        self.key == other.key && self.token == other.token
    }
}

impl Eq for Ticket {}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StoreError {
    #[error("replay store unavailable: {0}")]
    Unavailable(String),
}

/// Whether hookgate keeps serving while the store is unreachable. The policy
/// is the caller's (`[replay] on_store_error` converts into it); the store
/// only reflects it in `ready`, so a Redis outage after a first answer does
/// not mark every replica unready at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ServesWithout(pub bool);

/// The replay store chosen by `[replay] store`.
pub enum Store {
    /// Per process: the default, and all a single replica needs.
    Memory(MemoryStore),
    /// Shared by every replica that points at the same Redis and prefix
    /// (boxed: its client and connection settings dwarf the memory store).
    Redis(Box<RedisStore>),
}

impl Store {
    /// Claims `replay_id` for `route`.
    pub async fn claim(
        self: &Arc<Self>,
        route: &str,
        replay_id: &[u8; 32],
    ) -> Result<Claim, StoreError> {
        let key = key(route, replay_id);
        let claim = match &**self {
            Store::Memory(m) => m.claim(key, Instant::now()),
            // Boxed: Redis' futures are large, and inline they would be
            // copied with every request's future, memory store or not.
            Store::Redis(r) => Box::pin(r.claim(key)).await?,
        };
        Ok(match claim {
            Claim::Claimed(mut ticket) => {
                ticket.owner = Some(Arc::clone(self));
                Claim::Claimed(ticket)
            }
            other @ (Claim::Duplicate | Claim::InFlight) => other,
        })
    }

    /// The application accepted the request (`at`: the caller's clock reading
    /// when it answered): remember the id for `ttl`.
    pub async fn delivered(&self, ticket: Ticket, at: Instant) -> Result<(), StoreError> {
        let ticket = ticket.disarm();
        match self {
            Store::Memory(m) => {
                m.delivered(&ticket, at);
                Ok(())
            }
            Store::Redis(r) => Box::pin(r.delivered(&ticket)).await,
        }
    }

    /// The request was not accepted: forget the claim so a retry goes through.
    pub async fn release(&self, ticket: Ticket) -> Result<(), StoreError> {
        let ticket = ticket.disarm();
        match self {
            Store::Memory(m) => {
                m.release(&ticket);
                Ok(())
            }
            Store::Redis(r) => Box::pin(r.release(&ticket)).await,
        }
    }

    /// Entries held (for the `hookgate_replay_entries` gauge). Redis: 0, since
    /// counting a shared keyspace (SCAN) on every scrape would cost Redis more
    /// than the number is worth; use Redis' own `db0:keys` metrics instead.
    pub fn entries(&self) -> usize {
        match self {
            Store::Memory(m) => m.len(),
            Store::Redis(_) => 0,
        }
    }

    /// Whether the store lets hookgate serve (for `/readyz`): Redis must answer
    /// a PING within `redis_timeout` (with `on_store_error = "allow"`: must have
    /// answered once since start).
    pub async fn ready(&self) -> bool {
        match self {
            Store::Memory(_) => true,
            Store::Redis(r) => r.ready().await,
        }
    }

    /// Tells the store whether hookgate serves on without it (the caller's
    /// `on_store_error` policy), at start and on every reload.
    pub fn set_on_store_error(&self, policy: impl Into<ServesWithout>) {
        let ServesWithout(serves_without) = policy.into();
        match self {
            Store::Memory(_) => {}
            Store::Redis(r) => r.set_serves_without(serves_without),
        }
    }
}

/// Namespaces ids per route, so two providers' ids never collide.
fn key(route: &str, replay_id: &[u8; 32]) -> [u8; 32] {
    Sha256::new()
        .chain_update(route.as_bytes())
        .chain_update([0])
        .chain_update(replay_id)
        .finalize()
        .into()
}

/// One remembered id, in 16 bytes: with the LRU's key and links an entry is
/// 48 bytes, so 100 000 ids cost 4.6 MiB of entries (an enum holding
/// `Instant`s made them 64).
#[derive(Debug, Clone, Copy)]
struct State {
    /// Until when the id is blocked, in nanoseconds since the store's epoch.
    until: u64,
    /// The claim's token while in flight; `None` once delivered.
    in_flight: Option<NonZeroU64>,
}

/// A duration in nanoseconds, saturating (a `ttl` of centuries means for ever).
fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

/// Shards cut lock contention: requests for different ids rarely share a lock.
const SHARDS: usize = 16;

/// An in-memory LRU of ids, bounded by `capacity`, each remembered for `ttl`.
pub struct MemoryStore {
    shards: Vec<Mutex<LruCache<[u8; 16], State>>>,
    /// The instant `State::until` counts from.
    epoch: Instant,
    ttl: u64,
    lease: u64,
    next_token: AtomicU64,
}

impl MemoryStore {
    /// `lease` bounds how long an in-flight claim may block the same id.
    pub fn new(capacity: usize, ttl: Duration, lease: Duration) -> Self {
        let per_shard =
            NonZeroUsize::new(capacity.div_ceil(SHARDS).max(1)).unwrap_or(NonZeroUsize::MIN);
        MemoryStore {
            shards: (0..SHARDS)
                .map(|_| Mutex::new(LruCache::new(per_shard)))
                .collect(),
            epoch: Instant::now(),
            ttl: nanos(ttl),
            lease: nanos(lease),
            next_token: AtomicU64::new(1),
        }
    }

    fn stamp(&self, t: Instant) -> u64 {
        nanos(t.saturating_duration_since(self.epoch))
    }

    fn shard(&self, key: &[u8; 32]) -> (&Mutex<LruCache<[u8; 16], State>>, [u8; 16]) {
        // The key is a SHA-256 output: any byte is uniformly distributed.
        let idx = usize::from(key[31]) % SHARDS;
        let mut short = [0u8; 16];
        short.copy_from_slice(&key[..16]);
        (&self.shards[idx], short)
    }

    fn lock<'a>(
        shard: &'a Mutex<LruCache<[u8; 16], State>>,
    ) -> std::sync::MutexGuard<'a, LruCache<[u8; 16], State>> {
        // A panic while holding the lock leaves a consistent map (every
        // operation is a single insert/get/pop), so a poisoned lock is usable.
        shard
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn claim(&self, key: [u8; 32], now: Instant) -> Claim {
        let (shard, short) = self.shard(&key);
        let now = self.stamp(now);
        let mut map = Self::lock(shard);
        if let Some(held) = map.get(&short).filter(|held| held.until > now) {
            return match held.in_flight {
                None => Claim::Duplicate,
                Some(_) => Claim::InFlight,
            };
        }
        // Starts at 1 and would take centuries to wrap at any request rate.
        let token = NonZeroU64::new(self.next_token.fetch_add(1, Ordering::Relaxed))
            .unwrap_or(NonZeroU64::MIN);
        map.put(
            short,
            State {
                until: now.saturating_add(self.lease),
                in_flight: Some(token),
            },
        );
        Claim::Claimed(Ticket::new(key, token.get()))
    }

    fn delivered(&self, ticket: &Ticket, now: Instant) {
        let (shard, short) = self.shard(&ticket.key);
        let until = self.stamp(now).saturating_add(self.ttl);
        let mut map = Self::lock(shard);
        // Delivered wins even if the lease lapsed meanwhile: the application accepted it.
        map.put(
            short,
            State {
                until,
                in_flight: None,
            },
        );
    }

    fn release(&self, ticket: &Ticket) {
        let (shard, short) = self.shard(&ticket.key);
        let mut map = Self::lock(shard);
        // Only the holder may release: after a lapsed lease another request may own it.
        if map
            .peek(&short)
            .and_then(|held| held.in_flight)
            .is_some_and(|token| token.get() == ticket.token)
        {
            map.pop(&short);
        }
    }

    pub fn len(&self) -> usize {
        self.shards.iter().map(|s| Self::lock(s).len()).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn store() -> MemoryStore {
        MemoryStore::new(1000, Duration::from_secs(60), Duration::from_secs(30))
    }

    fn ticket(c: Claim) -> Ticket {
        match c {
            Claim::Claimed(t) => t,
            other => panic!("expected a claim, got {other:?}"),
        }
    }

    #[test]
    fn delivered_id_is_a_duplicate_until_ttl() {
        let s = store();
        let now = Instant::now();
        let k = key("r", &[1; 32]);
        let t = ticket(s.claim(k, now));
        assert_eq!(s.claim(k, now), Claim::InFlight);
        s.delivered(&t, now);
        assert_eq!(s.claim(k, now + Duration::from_secs(59)), Claim::Duplicate);
        assert!(matches!(
            s.claim(k, now + Duration::from_secs(61)),
            Claim::Claimed(_)
        ));
    }

    #[test]
    fn released_id_can_be_claimed_again() {
        let s = store();
        let now = Instant::now();
        let k = key("r", &[2; 32]);
        let t = ticket(s.claim(k, now));
        s.release(&t);
        assert!(matches!(s.claim(k, now), Claim::Claimed(_)));
    }

    #[test]
    fn lapsed_lease_lets_a_retry_claim_and_old_holder_cannot_release_it() {
        let s = store();
        let now = Instant::now();
        let k = key("r", &[3; 32]);
        let old = ticket(s.claim(k, now));
        let later = now + Duration::from_secs(31);
        let _new = ticket(s.claim(k, later));
        s.release(&old);
        assert_eq!(s.claim(k, later), Claim::InFlight);
    }

    #[tokio::test]
    async fn a_ticket_dropped_unsettled_releases_its_claim() {
        let store = Arc::new(Store::Memory(store()));
        let Claim::Claimed(t) = store.claim("r", &[5; 32]).await.unwrap() else {
            panic!("expected a claim");
        };
        assert_eq!(store.claim("r", &[5; 32]).await.unwrap(), Claim::InFlight);
        // A forward that panics drops its ticket while unwinding.
        let dropped = std::panic::catch_unwind(std::panic::AssertUnwindSafe(move || {
            let _held = t;
            panic!("forward panicked");
        }));
        assert!(dropped.is_err());
        let Claim::Claimed(again) = store.claim("r", &[5; 32]).await.unwrap() else {
            panic!("the retry must claim the released id");
        };
        // A settled ticket does not release on drop.
        store.delivered(again, Instant::now()).await.unwrap();
        assert_eq!(store.claim("r", &[5; 32]).await.unwrap(), Claim::Duplicate);
    }

    #[test]
    fn an_entry_stays_small() {
        // 100 000 ids: entries of 48 bytes (key 16, state 16, links 16).
        assert_eq!(std::mem::size_of::<State>(), 16);
    }

    #[test]
    fn a_ttl_of_centuries_is_for_ever_not_an_overflow() {
        let s = MemoryStore::new(10, Duration::MAX, Duration::MAX);
        let now = Instant::now();
        let k = key("r", &[6; 32]);
        let t = ticket(s.claim(k, now));
        assert_eq!(
            s.claim(k, now + Duration::from_secs(86_400 * 365)),
            Claim::InFlight
        );
        s.delivered(&t, now);
        assert_eq!(
            s.claim(k, now + Duration::from_secs(86_400 * 365 * 100)),
            Claim::Duplicate
        );
    }

    #[test]
    fn same_id_on_two_routes_is_two_entries() {
        assert_ne!(key("a", &[4; 32]), key("b", &[4; 32]));
    }

    #[test]
    fn capacity_bounds_entries() {
        let s = MemoryStore::new(64, Duration::from_secs(60), Duration::from_secs(30));
        let now = Instant::now();
        for i in 0..10_000u32 {
            let mut id = [0u8; 32];
            id[..4].copy_from_slice(&i.to_le_bytes());
            let t = ticket(s.claim(key("r", &id), now));
            s.delivered(&t, now);
        }
        assert!(s.len() <= 64 + SHARDS, "{}", s.len());
    }
}
