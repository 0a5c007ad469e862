//! The validated configuration: typed values the rest of hookgate reads, and nothing raw.

use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use http::Method;
use serde::Deserialize;

use super::{Secret, Warning};
use crate::verify::Scheme;

#[derive(Debug, Clone)]
pub struct Config {
    /// The file this was read from: named in every error and watched for reloads.
    pub source: PathBuf,
    pub listen: Listen,
    pub admin: Option<Admin>,
    pub upstream: Upstream,
    pub limits: Limits,
    pub replay: Replay,
    /// `[queue]`: durable delivery (DESIGN §8); `None` when the section is absent.
    pub queue: Option<Queue>,
    pub routes: Vec<RouteConfig>,
    /// `[upstream] attestation_key`: signs `Hookgate-Attestation` (see
    /// `attest`). Kept out of `Upstream`, whose changes need a restart: this
    /// reloads with the routes.
    pub attestation_key: Option<Secret>,
    pub warnings: Vec<Warning>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listen {
    pub addr: SocketAddr,
    pub tls: Option<TlsFiles>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Admin {
    pub addr: SocketAddr,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UpstreamTarget {
    /// `http://host:port` or `https://host:port`: scheme and authority only.
    Http { https: bool, authority: String },
    /// `unix:/path/to/socket`.
    Unix(PathBuf),
}

impl fmt::Display for UpstreamTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            UpstreamTarget::Http { https, authority } => {
                write!(f, "{}://{authority}", if *https { "https" } else { "http" })
            }
            UpstreamTarget::Unix(path) => write!(f, "unix:{}", path.display()),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Upstream {
    pub target: UpstreamTarget,
    pub timeout: Duration,
    pub ca_file: Option<PathBuf>,
    pub forwarded_headers: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    pub max_body: u64,
    pub max_buffered: u64,
    pub header_timeout: Duration,
    pub body_timeout: Duration,
    pub max_inflight: usize,
    pub max_connections: usize,
    pub max_headers: usize,
    pub max_header_bytes: usize,
    pub shutdown_grace: Duration,
}

/// `replay.store`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StoreKind {
    #[default]
    Memory,
    Redis,
}

impl fmt::Display for StoreKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // `pad`, so that `{:<8}` aligns a column.
        f.pad(match self {
            StoreKind::Memory => "memory",
            StoreKind::Redis => "redis",
        })
    }
}

/// `replay.on_store_error`: what a request meets when the store fails.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OnStoreError {
    /// 503: the provider retries later.
    #[default]
    Reject,
    /// Forward without the replay check, counting each such request.
    Allow,
}

impl OnStoreError {
    /// Whether hookgate keeps serving while the store is unreachable, which is
    /// what `/readyz` then reports (see `replay::ServesWithout`).
    pub fn serves_without_store(self) -> bool {
        match self {
            OnStoreError::Reject => false,
            OnStoreError::Allow => true,
        }
    }
}

impl From<OnStoreError> for crate::replay::ServesWithout {
    fn from(policy: OnStoreError) -> Self {
        crate::replay::ServesWithout(policy.serves_without_store())
    }
}

impl fmt::Display for OnStoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // `pad`, so that `{:<8}` aligns a column.
        f.pad(match self {
            OnStoreError::Reject => "reject",
            OnStoreError::Allow => "allow",
        })
    }
}

#[derive(Debug, Clone)]
pub struct Replay {
    pub store: StoreKind,
    pub capacity: usize,
    pub ttl: Duration,
    /// May carry a password, so it is a `Secret`: redacted in `Debug`.
    pub redis_url: Option<Secret>,
    /// PEM roots for a `rediss://` server with a private CA (instead of the system's).
    pub redis_ca_file: Option<PathBuf>,
    pub redis_prefix: String,
    pub redis_timeout: Duration,
    pub on_store_error: OnStoreError,
}

impl Replay {
    /// Whether `other` keeps the same store (everything but `on_store_error`,
    /// which a reload applies). Compares the Redis URL itself, which `Debug` redacts.
    pub fn same_store(&self, other: &Replay) -> bool {
        let url = |r: &Replay| r.redis_url.as_ref().map(|u| u.expose().to_vec());
        self.store == other.store
            && self.capacity == other.capacity
            && self.ttl == other.ttl
            && url(self) == url(other)
            && self.redis_ca_file == other.redis_ca_file
            && self.redis_prefix == other.redis_prefix
            && self.redis_timeout == other.redis_timeout
    }
}

/// `queue.store`, as written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum QueueStore {
    #[default]
    Disk,
    Redis,
}

/// Where the queue keeps what it accepted: `queue.store` and its keys.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum QueueBackend {
    /// The directory holding the store's one file (`queue.redb`).
    Disk { path: PathBuf },
    /// Redis Streams shared by every replica on the same Redis and prefix.
    Redis(QueueRedis),
}

/// `queue.store = "redis"`: its server and keys.
#[derive(Debug, Clone)]
pub struct QueueRedis {
    /// `queue.redis_url`, else `replay.redis_url`; may carry a password, so a `Secret`.
    pub url: Secret,
    /// The URL (and its CA file) came from `[replay]`: one Redis serves both.
    pub shared_with_replay: bool,
    pub ca_file: Option<PathBuf>,
    /// Every key starts `{prefix}:q`; `{prefix}:dead:` for dead letters.
    pub prefix: String,
    pub timeout: Duration,
    /// How long a replica owns a route's deliveries without renewing; a
    /// crashed replica's routes are taken over after it.
    pub lease: Duration,
}

impl PartialEq for QueueRedis {
    /// Compares the URL itself, which `Debug` redacts.
    fn eq(&self, other: &Self) -> bool {
        self.url.expose() == other.url.expose()
            && self.shared_with_replay == other.shared_with_replay
            && self.ca_file == other.ca_file
            && self.prefix == other.prefix
            && self.timeout == other.timeout
            && self.lease == other.lease
    }
}

impl Eq for QueueRedis {}

/// `[queue]`: where accepted requests are kept and how they are delivered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Queue {
    pub store: QueueBackend,
    pub max_bytes: u64,
    pub max_attempts: u32,
    pub max_age: Duration,
    pub retry_initial: Duration,
    pub retry_max: Duration,
    pub concurrency: usize,
}

/// `routes[].delivery`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Delivery {
    /// Forward while the provider waits, and answer with the app's response.
    #[default]
    Forward,
    /// Store durably, answer 202, deliver with retries (DESIGN §8).
    Queue,
}

impl fmt::Display for Delivery {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // `pad`, so that `{:<8}` aligns a column.
        f.pad(match self {
            Delivery::Forward => "forward",
            Delivery::Queue => "queue",
        })
    }
}

/// `routes[].mode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// Forward only what verifies.
    #[default]
    Enforce,
    /// Verify and count, forward anyway (rollouts).
    Shadow,
}

impl fmt::Display for Mode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // `pad`, so that `{:<8}` aligns a column.
        f.pad(match self {
            Mode::Enforce => "enforce",
            Mode::Shadow => "shadow",
        })
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PathPattern {
    Exact(String),
    /// `/prefix/*`: stored as `/prefix/`, matching every path that starts with it.
    Prefix(String),
}

impl PathPattern {
    pub fn as_config_str(&self) -> String {
        match self {
            PathPattern::Exact(p) => p.clone(),
            PathPattern::Prefix(p) => format!("{p}*"),
        }
    }
}

#[derive(Debug, Clone)]
pub struct RouteConfig {
    /// Metrics label and log field; defaults to the configured path.
    pub name: String,
    pub path: PathPattern,
    /// The provider as written (`"hmac"` for the generic scheme): a label for
    /// logs and `hookgate check`; `scheme` is what verification uses.
    pub provider: String,
    /// The verification scheme, resolved from the provider catalog or the
    /// route's generic `hmac` keys.
    pub scheme: Scheme,
    pub secrets: Vec<Secret>,
    /// `None` when the config leaves it to the provider's default.
    pub tolerance: Option<Duration>,
    pub methods: Vec<Method>,
    pub mode: Mode,
    pub delivery: Delivery,
    pub public_url: Option<String>,
    /// This route's position in `routes`, for error messages built later.
    pub index: usize,
}
