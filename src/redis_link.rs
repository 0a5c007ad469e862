//! One way to reach Redis, shared by the replay store and the queue: the
//! client (with `rediss://` and a private CA), one multiplexed reconnecting
//! `ConnectionManager` made lazily (hookgate starts while Redis is down), each
//! call bounded by `redis_timeout` and sent once more on a connection found
//! dropped, and a manager that keeps failing replaced by a fresh one.

use std::future::Future;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{Client, RedisError, TlsCertificates};

/// After failing this long without a success, the connection manager is
/// replaced. The manager reconnects by itself only after I/O errors; one whose
/// connection attempt failed another way (AUTH refused while a password was
/// being rotated, a TLS or handshake error) would otherwise keep answering
/// that error until hookgate restarts.
const REBUILD_AFTER: Duration = Duration::from_secs(3);

pub(crate) struct Link {
    client: Client,
    config: ConnectionManagerConfig,
    /// Swapped for a fresh manager when Redis has failed for `REBUILD_AFTER`.
    conn: ArcSwap<ConnectionManager>,
    /// Milliseconds after `born` when the current run of failures began; 0 = healthy.
    failing_since: AtomicU64,
    born: Instant,
    /// Redis has answered at least once since start.
    answered: AtomicBool,
    timeout: Duration,
    /// `replay` or `queue`: names the keys in errors and log lines.
    section: &'static str,
}

impl Link {
    /// A client for `url` (trusting `ca_file`'s roots for `rediss://` instead
    /// of the system's), calls bounded by `timeout`; nothing is connected yet.
    /// Must be called inside a tokio runtime (the manager locates it).
    pub(crate) fn new(
        url: &str,
        ca_file: Option<&Path>,
        timeout: Duration,
        section: &'static str,
    ) -> Result<Link, String> {
        let (client, config) = connection(url, ca_file, timeout, section)?;
        let conn = ConnectionManager::new_lazy_with_config(client.clone(), config.clone())
            .map_err(|e| format!("redis: {e}"))?;
        Ok(Link {
            client,
            config,
            conn: ArcSwap::from_pointee(conn),
            failing_since: AtomicU64::new(0),
            born: Instant::now(),
            answered: AtomicBool::new(false),
            timeout,
            section,
        })
    }

    /// A handle on the current connection (commands need `&mut`; clones share it).
    pub(crate) fn conn(&self) -> ConnectionManager {
        ConnectionManager::clone(&self.conn.load())
    }

    /// Redis has answered at least once since start.
    pub(crate) fn answered(&self) -> bool {
        self.answered.load(Ordering::Relaxed)
    }

    /// Runs one Redis exchange within the timeout.
    ///
    /// A connection Redis dropped (a restart, a failover, an idle cut) is found
    /// dead only when a command is sent on it: the manager then reconnects and,
    /// when `again`, the command is sent once more within the same timeout, so
    /// the first request after a Redis restart is answered, not refused. Only
    /// commands that are safe to send twice may pass `again`.
    pub(crate) async fn call<T, F, Fut>(
        &self,
        what: &str,
        again: bool,
        mut attempt: F,
    ) -> Result<T, String>
    where
        F: FnMut(ConnectionManager) -> Fut,
        Fut: Future<Output = Result<T, RedisError>>,
    {
        let deadline = tokio::time::Instant::now() + self.timeout;
        let mut tries = 0;
        let result = loop {
            tries += 1;
            match tokio::time::timeout_at(deadline, attempt(self.conn())).await {
                Ok(Ok(v)) => break Ok(v),
                Ok(Err(e))
                    if again
                        && tries == 1
                        && (e.is_connection_dropped() || e.is_unrecoverable_error()) =>
                {
                    tracing::debug!(section = self.section, what, error = %e, "redis connection dropped; sending again");
                }
                Ok(Err(e)) => break Err(format!("redis {what}: {e}")),
                Err(_) => break Err(format!("redis {what}: no answer within {:?}", self.timeout)),
            }
        };
        self.note(result.is_ok());
        result
    }

    /// Tracks runs of failures and replaces a manager that has failed for too long.
    fn note(&self, ok: bool) {
        if ok {
            if !self.answered.load(Ordering::Relaxed) {
                self.answered.store(true, Ordering::Relaxed);
            }
            if self.failing_since.load(Ordering::Relaxed) != 0 {
                self.failing_since.store(0, Ordering::Relaxed);
            }
            return;
        }
        // +1: a failure in the first millisecond must not look like "healthy".
        let now = u64::try_from(self.born.elapsed().as_millis())
            .unwrap_or(u64::MAX)
            .saturating_add(1);
        let Err(since) =
            self.failing_since
                .compare_exchange(0, now, Ordering::Relaxed, Ordering::Relaxed)
        else {
            return;
        };
        let rebuild_after = u64::try_from(REBUILD_AFTER.as_millis()).unwrap_or(u64::MAX);
        // Only the caller that moves the start of the run forward rebuilds.
        if now.saturating_sub(since) >= rebuild_after
            && self
                .failing_since
                .compare_exchange(since, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            match ConnectionManager::new_lazy_with_config(self.client.clone(), self.config.clone())
            {
                Ok(fresh) => {
                    self.conn.store(Arc::new(fresh));
                    tracing::warn!(
                        section = self.section,
                        failing_for = ?Duration::from_millis(now.saturating_sub(since)),
                        "redis keeps failing; starting over with a fresh connection"
                    );
                }
                Err(e) => {
                    tracing::warn!(section = self.section, error = %e, "cannot renew the redis connection")
                }
            }
        }
    }
}

/// A client for `url` (trusting `ca_file`'s roots for `rediss://` instead of
/// the system's) and the connection manager's settings, bounded by `timeout`.
fn connection(
    url: &str,
    ca_file: Option<&Path>,
    timeout: Duration,
    section: &str,
) -> Result<(Client, ConnectionManagerConfig), String> {
    // Redis' own message for a bad URL names the part that is wrong
    // without echoing the URL (which may carry a password).
    let client = match ca_file {
        None => Client::open(url),
        Some(file) => {
            let pem = std::fs::read(file).map_err(|e| {
                format!(
                    "cannot read {section}.redis_ca_file {}: {e}",
                    file.display()
                )
            })?;
            let certs = TlsCertificates {
                client_tls: None,
                root_cert: Some(pem),
            };
            Client::build_with_tls(url, certs)
        }
    }
    .map_err(|e| format!("{section}.redis_url: {e}"))?;
    let config = ConnectionManagerConfig::new()
        .set_connection_timeout(Some(timeout))
        .set_response_timeout(Some(timeout))
        // Fail fast while Redis is away (one retry absorbs a blip): a request
        // then gets its 503 at once instead of waiting out the timeout. The
        // manager keeps at most one connection attempt going at a time, and
        // the next command after a failed one starts a new attempt, so
        // hookgate reconnects as soon as Redis is back, paced by traffic
        // (and by /readyz probes), never by a storm.
        .set_min_delay(Duration::from_millis(50))
        .set_max_delay(Duration::from_millis(200))
        .set_number_of_retries(1);
    Ok((client, config))
}
