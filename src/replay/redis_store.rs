//! The Redis replay store: the memory store's delivery-aware claims, made atomic across replicas.
//!
//! One Redis key per (route, id): `{prefix}:{hex of the 32-byte route-namespaced key}`.
//! Its value is either a claim token (in flight, expires with the lease, so a
//! hookgate that dies mid-request cannot block the provider's retry forever)
//! or `"D"` (delivered, expires with `ttl`). Claim and release are Lua
//! scripts, so each is one atomic step even with many hookgates on one Redis.
//!
//! Every call is bounded by `redis_timeout`; a slow or absent Redis is a
//! `StoreError`, which the proxy turns into 503 or an unchecked forward as
//! `on_store_error` says. The connection is a `redis_link::Link`, made
//! lazily: hookgate starts while Redis is down, and `/readyz` answers 503
//! until a PING gets through.

use std::future::Future;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use redis::aio::ConnectionManager;
use redis::{RedisError, Script};

use super::{Claim, StoreError, Ticket};
use crate::metrics::{StoreMetrics, StoreOp};
use crate::redis_link::Link;

/// The value of a delivered id; tokens are 16 hex digits, so never equal to it.
const DELIVERED: &str = "D";

/// Claims the key if it is free, else says who holds it: 0 claimed, 1 delivered, 2 in flight.
/// A key already holding this very token is ours: a claim sent again after
/// its connection dropped (the first one may have reached Redis) is claimed.
const CLAIM: &str = r"
if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then
  return 0
end
local held = redis.call('GET', KEYS[1])
if held == ARGV[1] then
  return 0
end
if held == ARGV[3] then
  return 1
end
return 2
";

/// Deletes the key only while it still holds our token: after a lapsed lease
/// another hookgate may own it, or it may already be delivered.
const RELEASE: &str = r"
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
";

pub struct RedisStore {
    link: Link,
    /// `on_store_error = "allow"`: hookgate serves without Redis, so once
    /// Redis has answered, its absence no longer makes `/readyz` fail.
    serves_without: AtomicBool,
    prefix: String,
    ttl_ms: u64,
    lease_ms: u64,
    claim: Script,
    release: Script,
    metrics: StoreMetrics,
}

/// How a Redis store is set up; `url` may hold a password, so it is never logged.
pub struct RedisOptions<'a> {
    pub url: &'a str,
    /// PEM roots to trust for `rediss://` instead of the system's.
    pub ca_file: Option<&'a Path>,
    pub prefix: &'a str,
    pub timeout: Duration,
    pub ttl: Duration,
    pub lease: Duration,
}

impl RedisStore {
    /// Prepares the connection without connecting: Redis may be down at start.
    ///
    /// Must be called inside a tokio runtime (the manager locates it).
    pub fn new(opts: &RedisOptions<'_>, metrics: StoreMetrics) -> Result<Self, StoreError> {
        let link = Link::new(opts.url, opts.ca_file, opts.timeout, "replay")
            .map_err(StoreError::Unavailable)?;
        Ok(RedisStore {
            link,
            serves_without: AtomicBool::new(false),
            prefix: opts.prefix.to_string(),
            ttl_ms: millis(opts.ttl),
            lease_ms: millis(opts.lease),
            claim: Script::new(CLAIM),
            release: Script::new(RELEASE),
            metrics,
        })
    }

    fn redis_key(&self, key: &[u8; 32]) -> String {
        format!("{}:{}", self.prefix, hex::encode(key))
    }

    /// Runs one Redis call (see `Link::call`), recording its latency and any
    /// failure. Every command here is safe to send twice: a claim recognises
    /// its own token (the first may have reached Redis before the connection
    /// broke), release deletes only its own token, delivered is a plain SET.
    async fn call<T, F, Fut>(&self, op: StoreOp, attempt: F) -> Result<T, StoreError>
    where
        F: FnMut(ConnectionManager) -> Fut,
        Fut: Future<Output = Result<T, RedisError>>,
    {
        let started = Instant::now();
        let result = self
            .link
            .call(op.as_str(), true, attempt)
            .await
            .map_err(StoreError::Unavailable);
        self.metrics
            .observe(op, started.elapsed().as_secs_f64(), result.is_ok());
        result
    }

    pub async fn claim(&self, key: [u8; 32]) -> Result<Claim, StoreError> {
        // Unique across every hookgate sharing this Redis: a CSPRNG draw, so a
        // stale holder can never release a claim another instance took over.
        let token: u64 = rand::random();
        let token_text = format!("{token:016x}");
        let redis_key = self.redis_key(&key);
        let found: Result<i64, StoreError> = self
            .call(StoreOp::Claim, |mut conn| {
                let mut invocation = self.claim.key(&redis_key);
                invocation
                    .arg(&token_text)
                    .arg(self.lease_ms)
                    .arg(DELIVERED);
                async move { invocation.invoke_async(&mut conn).await }
            })
            .await;
        let found = match found {
            Ok(found) => found,
            Err(e) => {
                self.abandon(redis_key, token_text);
                return Err(e);
            }
        };
        match found {
            0 => Ok(Claim::Claimed(Ticket::new(key, token))),
            1 => Ok(Claim::Duplicate),
            2 => Ok(Claim::InFlight),
            other => Err(StoreError::Unavailable(format!(
                "redis claim: unexpected script result {other}"
            ))),
        }
    }

    /// A claim that got no answer (Redis paused, slow, gone) may still run
    /// when Redis wakes up, holding the id for a whole lease that nobody will
    /// settle: the provider's retries would meet 409 `in_flight` until it
    /// lapses. So its release is queued right behind it, on the same
    /// connection, in the background; release deletes only this token.
    fn abandon(&self, redis_key: String, token_text: String) {
        let mut conn = self.link.conn();
        let release = self.release.clone();
        let wait = Duration::from_millis(self.lease_ms);
        tokio::spawn(async move {
            let mut invocation = release.key(&redis_key);
            invocation.arg(&token_text);
            let sent = invocation.invoke_async::<i64>(&mut conn);
            if let Ok(Err(e)) = tokio::time::timeout(wait, sent).await {
                tracing::debug!(error = %e, "replay store: could not release an unanswered claim; its lease frees it");
            }
        });
    }

    pub async fn delivered(&self, ticket: &Ticket) -> Result<(), StoreError> {
        // Delivered wins even if the lease lapsed meanwhile: the application accepted it.
        let mut cmd = redis::cmd("SET");
        cmd.arg(self.redis_key(&ticket.key))
            .arg(DELIVERED)
            .arg("PX")
            .arg(self.ttl_ms);
        let _: () = self
            .call(StoreOp::Delivered, |mut conn| {
                let cmd = &cmd;
                async move { cmd.query_async(&mut conn).await }
            })
            .await?;
        Ok(())
    }

    pub async fn release(&self, ticket: &Ticket) -> Result<(), StoreError> {
        let redis_key = self.redis_key(&ticket.key);
        let token_text = format!("{:016x}", ticket.token);
        let _: i64 = self
            .call(StoreOp::Release, |mut conn| {
                let mut invocation = self.release.key(&redis_key);
                invocation.arg(&token_text);
                async move { invocation.invoke_async(&mut conn).await }
            })
            .await?;
        Ok(())
    }

    /// Follows `on_store_error` (set at start and on every reload).
    pub fn set_serves_without(&self, allow: bool) {
        self.serves_without.store(allow, Ordering::Relaxed);
    }

    /// For `/readyz`: Redis answers a PING; or, with `on_store_error = "allow"`,
    /// it has answered once since start. The first answer still gates
    /// readiness (a wrong `redis_url` must stop a rollout), but afterwards an
    /// outage hits every replica at once, and marking them all unready would
    /// take the whole pod (the application too) out of service for nothing:
    /// hookgate forwards anyway, counting each unchecked request.
    pub async fn ready(&self) -> bool {
        let answers = self.ping().await.is_ok();
        answers || (self.serves_without.load(Ordering::Relaxed) && self.link.answered())
    }

    /// One PING within the timeout.
    pub async fn ping(&self) -> Result<(), StoreError> {
        let cmd = redis::cmd("PING");
        let _: String = self
            .call(StoreOp::Ping, |mut conn| {
                let cmd = &cmd;
                async move { cmd.query_async(&mut conn).await }
            })
            .await?;
        Ok(())
    }
}

/// Whole milliseconds for `PX`, at least 1 (Redis refuses an expiry of 0).
fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX).max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_never_look_delivered() {
        assert_eq!(format!("{:016x}", 0u64).len(), 16);
        assert_ne!(format!("{:016x}", 0xDu64), DELIVERED);
    }

    #[test]
    fn expiries_are_whole_positive_milliseconds() {
        assert_eq!(millis(Duration::from_micros(10)), 1);
        assert_eq!(millis(Duration::from_secs(30)), 30_000);
        assert_eq!(millis(Duration::MAX), u64::MAX);
    }
}
