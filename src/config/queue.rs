//! `[queue]` -> `Queue`: DESIGN §8's defaults, and the store it names with the keys that store needs.

use std::num::NonZeroUsize;
use std::path::Path;
use std::time::Duration;

use super::model::{Queue, QueueBackend, QueueRedis, QueueStore, Replay, StoreKind};
use super::raw::RawQueue;
use super::secret::{redis_url, relative_to};
use super::validate::positive;
use super::{ConfigError, Env, Warning};

/// The shortest `queue.redis_lease`: a replica renews its leases every
/// delivery-loop tick (a quarter second), so a shorter one would lapse on a
/// slow Redis answer and let two replicas deliver one route.
const MIN_LEASE: Duration = Duration::from_secs(1);

pub(super) fn queue(
    q: RawQueue,
    replay: &Replay,
    path: &Path,
    env: &Env,
    warnings: &mut Vec<Warning>,
) -> Result<Queue, ConfigError> {
    let err = |field: &str, m: &str| ConfigError::new(path, field, m);
    let store = match q.store {
        QueueStore::Disk => {
            if let Some(key) = redis_key(&q) {
                return Err(err(key, "only meaningful with queue.store = \"redis\""));
            }
            QueueBackend::Disk {
                path: relative_to(
                    path,
                    q.path
                        .as_deref()
                        .unwrap_or(Path::new("/var/lib/hookgate/queue")),
                ),
            }
        }
        QueueStore::Redis => {
            if q.path.is_some() {
                return Err(err(
                    "queue.path",
                    "only meaningful with queue.store = \"disk\" (the redis store keeps nothing on disk)",
                ));
            }
            QueueBackend::Redis(redis(&q, replay, path, env, warnings)?)
        }
    };
    let queue = Queue {
        store,
        max_bytes: q.max_bytes.map_or(1 << 30, |s| s.0),
        max_attempts: q.max_attempts.map_or(20, std::num::NonZeroU32::get),
        max_age: positive(
            q.max_age,
            Duration::from_secs(72 * 3600),
            "queue.max_age",
            path,
        )?,
        retry_initial: positive(
            q.retry_initial,
            Duration::from_secs(1),
            "queue.retry_initial",
            path,
        )?,
        retry_max: positive(
            q.retry_max,
            Duration::from_secs(600),
            "queue.retry_max",
            path,
        )?,
        concurrency: q.concurrency.map_or(16, NonZeroUsize::get),
    };
    if queue.retry_max < queue.retry_initial {
        return Err(err(
            "queue.retry_max",
            "must be at least queue.retry_initial",
        ));
    }
    Ok(queue)
}

/// The first `redis_*` key set, for a disk store that would ignore it.
fn redis_key(q: &RawQueue) -> Option<&'static str> {
    [
        ("queue.redis_url", q.redis_url.is_some()),
        ("queue.redis_ca_file", q.redis_ca_file.is_some()),
        ("queue.redis_prefix", q.redis_prefix.is_some()),
        ("queue.redis_timeout", q.redis_timeout.is_some()),
        ("queue.redis_lease", q.redis_lease.is_some()),
    ]
    .into_iter()
    .find_map(|(key, set)| set.then_some(key))
}

/// `queue.redis_url`, or else the replay store's Redis (with its CA file and
/// prefix): the one Redis an operator already runs for several replicas.
fn redis(
    q: &RawQueue,
    replay: &Replay,
    path: &Path,
    env: &Env,
    warnings: &mut Vec<Warning>,
) -> Result<QueueRedis, ConfigError> {
    let err = |field: &str, m: &str| ConfigError::new(path, field, m);
    let inherited = match (&replay.store, &replay.redis_url) {
        (StoreKind::Redis, Some(url)) => Some(url),
        (StoreKind::Redis | StoreKind::Memory, _) => None,
    };
    let (url, shared_with_replay, ca_file) = match (&q.redis_url, inherited) {
        (Some(spec), _) => (
            redis_url(spec, path, env, warnings, "queue.redis_url")?,
            false,
            q.redis_ca_file.as_deref().map(|p| relative_to(path, p)),
        ),
        (None, Some(url)) => {
            if q.redis_ca_file.is_some() {
                return Err(err(
                    "queue.redis_ca_file",
                    "set with queue.redis_url only (without it the queue uses [replay]'s Redis and its redis_ca_file)",
                ));
            }
            (url.clone(), true, replay.redis_ca_file.clone())
        }
        (None, None) => {
            return Err(err(
                "queue.redis_url",
                "required when queue.store = \"redis\" (unless replay.store = \"redis\", whose Redis it then shares)",
            ))
        }
    };
    if ca_file.is_some() && !url.expose().starts_with(b"rediss://") {
        return Err(err(
            "queue.redis_ca_file",
            "only meaningful with a rediss:// queue.redis_url",
        ));
    }
    let prefix = match &q.redis_prefix {
        Some(p) if p.is_empty() => return Err(err("queue.redis_prefix", "must not be empty")),
        Some(p) => p.clone(),
        None => replay.redis_prefix.clone(),
    };
    let lease = positive(
        q.redis_lease,
        Duration::from_secs(10),
        "queue.redis_lease",
        path,
    )?;
    if lease < MIN_LEASE {
        return Err(err("queue.redis_lease", "must be at least 1s"));
    }
    Ok(QueueRedis {
        url,
        shared_with_replay,
        ca_file,
        prefix,
        timeout: positive(
            q.redis_timeout,
            Duration::from_secs(1),
            "queue.redis_timeout",
            path,
        )?,
        lease,
    })
}
