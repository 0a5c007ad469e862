//! Configuration: raw TOML -> validated, typed `Config`; secrets with redacted `Debug`.
//!
//! Parsed twice, ripgrep-style: serde reads the raw shape (unknown keys are
//! errors, because a typo must never silently disable a check), then
//! `validate` turns every string into a typed value and names the offending
//! field and file when it cannot.

use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use http::Method;
use serde::Deserialize;

/// A configuration error: always names the file and, where there is one, the field.
#[derive(Debug, thiserror::Error)]
#[error("{file}: {field}: {message}")]
pub struct ConfigError {
    pub file: String,
    pub field: String,
    pub message: String,
}

impl ConfigError {
    pub fn new(file: &Path, field: impl Into<String>, message: impl Into<String>) -> Self {
        ConfigError {
            file: file.display().to_string(),
            field: field.into(),
            message: message.into(),
        }
    }
}

/// A non-fatal finding about the configuration, logged at startup.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Warning {
    pub field: String,
    pub message: String,
}

#[derive(Debug, Clone)]
pub struct Config {
    /// The file this was read from: named in every error and watched for reloads.
    pub source: PathBuf,
    pub listen: Listen,
    pub admin: Option<Admin>,
    pub upstream: Upstream,
    pub limits: Limits,
    pub replay: Replay,
    pub routes: Vec<RouteConfig>,
    pub warnings: Vec<Warning>,
}

#[derive(Debug, Clone)]
pub struct Listen {
    pub addr: SocketAddr,
    pub tls: Option<TlsFiles>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
}

#[derive(Debug, Clone)]
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

#[derive(Debug, Clone)]
pub struct Upstream {
    pub target: UpstreamTarget,
    pub timeout: Duration,
    pub ca_file: Option<PathBuf>,
    pub forwarded_headers: bool,
}

#[derive(Debug, Clone)]
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

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoreKind {
    Memory,
    Redis,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnStoreError {
    Reject,
    Allow,
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

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Enforce,
    Shadow,
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
    /// Provider name as written; `route.rs` resolves it to a verification scheme.
    pub provider: String,
    pub secrets: Vec<Secret>,
    /// `None` when the config leaves it to the provider's default.
    pub tolerance: Option<Duration>,
    pub methods: Vec<Method>,
    pub mode: Mode,
    pub public_url: Option<String>,
    /// This route's position in `routes`, for error messages built later.
    pub index: usize,
    /// Keys of the provider-specific table (generic `hmac` scheme), validated by `route.rs`.
    pub scheme: Option<toml::Table>,
}

/// Where a secret came from: shown instead of the secret itself.
#[derive(Clone, PartialEq, Eq)]
pub enum SecretSource {
    Env(String),
    File(PathBuf),
    Literal,
}

impl fmt::Display for SecretSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SecretSource::Env(name) => write!(f, "env:{name}"),
            SecretSource::File(path) => write!(f, "file:{}", path.display()),
            SecretSource::Literal => f.write_str("literal"),
        }
    }
}

/// A resolved secret. Its bytes never appear in `Debug` or `Display`.
#[derive(Clone)]
pub struct Secret {
    value: Vec<u8>,
    pub source: SecretSource,
    /// The metrics label for `hookgate_secret_matches_total`: its `name`, or its position.
    pub label: String,
}

impl Secret {
    pub fn new(value: Vec<u8>, source: SecretSource, label: String) -> Self {
        Secret {
            value,
            source,
            label,
        }
    }

    /// The secret's bytes, for key derivation only.
    pub fn expose(&self) -> &[u8] {
        &self.value
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "Secret({}, label={}, <redacted>)",
            self.source, self.label
        )
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} (redacted)", self.source)
    }
}

// ---- raw shape -------------------------------------------------------------

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    listen: RawListen,
    admin: Option<RawAdmin>,
    upstream: RawUpstream,
    #[serde(default)]
    limits: RawLimits,
    #[serde(default)]
    replay: RawReplay,
    #[serde(default)]
    routes: Vec<RawRoute>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawListen {
    addr: String,
    tls_cert: Option<PathBuf>,
    tls_key: Option<PathBuf>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAdmin {
    addr: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawUpstream {
    url: String,
    timeout: Option<String>,
    ca_file: Option<PathBuf>,
    forwarded_headers: Option<bool>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawLimits {
    max_body: Option<RawSize>,
    max_buffered: Option<RawSize>,
    header_timeout: Option<String>,
    body_timeout: Option<String>,
    max_inflight: Option<i64>,
    max_connections: Option<i64>,
    max_headers: Option<i64>,
    max_header_bytes: Option<RawSize>,
    shutdown_grace: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawReplay {
    store: Option<String>,
    capacity: Option<i64>,
    ttl: Option<String>,
    redis_url: Option<String>,
    redis_ca_file: Option<PathBuf>,
    redis_prefix: Option<String>,
    redis_timeout: Option<String>,
    on_store_error: Option<String>,
}

/// Sizes may be written as a string ("25MiB") or a bare number of bytes.
#[derive(Deserialize)]
#[serde(untagged)]
enum RawSize {
    Bytes(i64),
    Text(String),
}

#[derive(Deserialize)]
#[serde(untagged)]
enum RawSecret {
    Plain(String),
    Named { value: String, name: String },
}

#[derive(Deserialize)]
struct RawRoute {
    name: Option<String>,
    path: String,
    provider: String,
    #[serde(default)]
    secrets: Vec<RawSecret>,
    tolerance: Option<String>,
    methods: Option<Vec<String>>,
    mode: Option<String>,
    public_url: Option<String>,
    /// Provider-specific keys (the generic `hmac` scheme); anything else is refused in `route.rs`.
    #[serde(flatten)]
    rest: toml::Table,
}

// ---- loading ---------------------------------------------------------------

/// Reads, parses and validates a configuration file, resolving every secret.
pub fn load(path: &Path) -> Result<Config, ConfigError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| ConfigError::new(path, "(file)", format!("cannot read: {e}")))?;
    parse(&text, path, &Env::Process)
}

/// Where `env:` secrets are looked up: the process environment, or a fixed map in tests.
pub enum Env {
    Process,
    Map(Vec<(String, String)>),
}

impl Env {
    fn get(&self, name: &str) -> Option<String> {
        match self {
            Env::Process => std::env::var(name).ok(),
            Env::Map(pairs) => pairs
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.clone()),
        }
    }
}

/// Parses configuration text; `path` names the file in errors and anchors relative paths.
pub fn parse(text: &str, path: &Path, env: &Env) -> Result<Config, ConfigError> {
    let raw: RawConfig = toml::from_str(text).map_err(|e| toml_error(path, text, &e))?;
    validate(raw, path, env)
}

fn toml_error(path: &Path, text: &str, e: &toml::de::Error) -> ConfigError {
    let (line, col) = e
        .span()
        .map(|span| {
            let before = &text[..span.start.min(text.len())];
            let line = before.matches('\n').count() + 1;
            let col = before.rsplit('\n').next().map_or(0, str::len) + 1;
            (line, col)
        })
        .unwrap_or((0, 0));
    // toml's message names the key ("unknown field `tolerence`"); keep its first line.
    let message = e
        .message()
        .lines()
        .next()
        .unwrap_or("invalid TOML")
        .to_string();
    ConfigError::new(path, format!("line {line} column {col}"), message)
}

fn validate(raw: RawConfig, path: &Path, env: &Env) -> Result<Config, ConfigError> {
    let err = |field: &str, msg: String| ConfigError::new(path, field, msg);
    let mut warnings = Vec::new();

    let listen_addr = socket_addr(&raw.listen.addr).map_err(|m| err("listen.addr", m))?;
    let tls = match (raw.listen.tls_cert, raw.listen.tls_key) {
        (Some(cert), Some(key)) => Some(TlsFiles {
            cert: relative_to(path, &cert),
            key: relative_to(path, &key),
        }),
        (None, None) => None,
        (Some(_), None) => {
            return Err(err(
                "listen.tls_key",
                "tls_cert is set but tls_key is not: set both or neither".into(),
            ))
        }
        (None, Some(_)) => {
            return Err(err(
                "listen.tls_cert",
                "tls_key is set but tls_cert is not: set both or neither".into(),
            ))
        }
    };
    let admin = raw
        .admin
        .map(|a| socket_addr(&a.addr).map(|addr| Admin { addr }))
        .transpose()
        .map_err(|m| err("admin.addr", m))?;

    let upstream = Upstream {
        target: upstream_target(&raw.upstream.url).map_err(|m| err("upstream.url", m))?,
        timeout: positive_duration(raw.upstream.timeout.as_deref(), "25s")
            .map_err(|m| err("upstream.timeout", m))?,
        ca_file: raw.upstream.ca_file.map(|p| relative_to(path, &p)),
        forwarded_headers: raw.upstream.forwarded_headers.unwrap_or(true),
    };
    if upstream.ca_file.is_some()
        && !matches!(upstream.target, UpstreamTarget::Http { https: true, .. })
    {
        return Err(err(
            "upstream.ca_file",
            "only meaningful with an https:// upstream.url".into(),
        ));
    }

    let l = raw.limits;
    let limits = Limits {
        max_body: size(l.max_body, 25 << 20).map_err(|m| err("limits.max_body", m))?,
        max_buffered: size(l.max_buffered, 256 << 20).map_err(|m| err("limits.max_buffered", m))?,
        header_timeout: positive_duration(l.header_timeout.as_deref(), "10s")
            .map_err(|m| err("limits.header_timeout", m))?,
        body_timeout: positive_duration(l.body_timeout.as_deref(), "10s")
            .map_err(|m| err("limits.body_timeout", m))?,
        max_inflight: count(l.max_inflight, 1024).map_err(|m| err("limits.max_inflight", m))?,
        max_connections: count(l.max_connections, 4096)
            .map_err(|m| err("limits.max_connections", m))?,
        max_headers: count(l.max_headers, 100).map_err(|m| err("limits.max_headers", m))?,
        max_header_bytes: usize::try_from(
            size(l.max_header_bytes, 64 << 10).map_err(|m| err("limits.max_header_bytes", m))?,
        )
        .map_err(|_| err("limits.max_header_bytes", "too large".into()))?,
        shutdown_grace: duration(l.shutdown_grace.as_deref(), "20s")
            .map_err(|m| err("limits.shutdown_grace", m))?,
    };
    if limits.max_buffered < limits.max_body {
        return Err(err(
            "limits.max_buffered",
            format!(
                "must be at least limits.max_body ({} bytes), or no maximum-size body could ever be buffered",
                limits.max_body
            ),
        ));
    }
    if limits.max_header_bytes < 8192 {
        return Err(err(
            "limits.max_header_bytes",
            "must be at least 8KiB".into(),
        ));
    }

    let r = raw.replay;
    let store = match r.store.as_deref().unwrap_or("memory") {
        "memory" => StoreKind::Memory,
        "redis" => StoreKind::Redis,
        other => {
            return Err(err(
                "replay.store",
                format!("unknown store {other:?}: expected \"memory\" or \"redis\""),
            ))
        }
    };
    let on_store_error = match r.on_store_error.as_deref().unwrap_or("reject") {
        "reject" => OnStoreError::Reject,
        "allow" => OnStoreError::Allow,
        other => {
            return Err(err(
                "replay.on_store_error",
                format!("unknown value {other:?}: expected \"reject\" or \"allow\""),
            ))
        }
    };
    let redis_url = match (store, r.redis_url) {
        (StoreKind::Redis, None) => {
            return Err(err(
                "replay.redis_url",
                "required when replay.store = \"redis\"".into(),
            ))
        }
        (StoreKind::Redis, Some(spec)) => Some(redis_url(&spec, path, env, &mut warnings)?),
        (StoreKind::Memory, _) => None,
    };
    let redis_ca_file = r.redis_ca_file.map(|p| relative_to(path, &p));
    if redis_ca_file.is_some()
        && !redis_url
            .as_ref()
            .is_some_and(|u| u.expose().starts_with(b"rediss://"))
    {
        return Err(err(
            "replay.redis_ca_file",
            "only meaningful with a rediss:// replay.redis_url".into(),
        ));
    }
    let replay = Replay {
        store,
        capacity: count(r.capacity, 100_000).map_err(|m| err("replay.capacity", m))?,
        ttl: positive_duration(r.ttl.as_deref(), "24h").map_err(|m| err("replay.ttl", m))?,
        redis_url,
        redis_ca_file,
        redis_prefix: r.redis_prefix.unwrap_or_else(|| "hookgate".to_string()),
        redis_timeout: positive_duration(r.redis_timeout.as_deref(), "500ms")
            .map_err(|m| err("replay.redis_timeout", m))?,
        on_store_error,
    };

    let mut routes: Vec<RouteConfig> = Vec::with_capacity(raw.routes.len());
    for (i, rr) in raw.routes.into_iter().enumerate() {
        let route = route(rr, i, path, env, &mut warnings)?;
        if let Some(other) = routes.iter().find(|r| r.path == route.path) {
            return Err(err(
                &format!("routes[{i}].path"),
                format!(
                    "{} is already used by route {:?}",
                    route.path.as_config_str(),
                    other.name
                ),
            ));
        }
        if let Some(other) = routes.iter().find(|r| r.name == route.name) {
            return Err(err(
                &format!("routes[{i}].name"),
                format!(
                    "{:?} is already the name of routes[{}]",
                    route.name, other.index
                ),
            ));
        }
        routes.push(route);
    }
    if routes.is_empty() {
        return Err(err(
            "routes",
            "no [[routes]]: hookgate would reject every request".into(),
        ));
    }

    Ok(Config {
        source: path.to_path_buf(),
        listen: Listen {
            addr: listen_addr,
            tls,
        },
        admin,
        upstream,
        limits,
        replay,
        routes,
        warnings,
    })
}

fn route(
    rr: RawRoute,
    i: usize,
    path: &Path,
    env: &Env,
    warnings: &mut Vec<Warning>,
) -> Result<RouteConfig, ConfigError> {
    let field = |name: &str| format!("routes[{i}].{name}");
    let err = |name: &str, msg: String| ConfigError::new(path, field(name), msg);

    let pattern = if let Some(prefix) = rr.path.strip_suffix('*') {
        if !prefix.ends_with('/') {
            return Err(err(
                "path",
                "a prefix route must end in \"/*\" (for example \"/webhooks/*\")".into(),
            ));
        }
        PathPattern::Prefix(prefix.to_string())
    } else {
        PathPattern::Exact(rr.path.clone())
    };
    if !rr.path.is_ascii()
        || !rr.path.starts_with('/')
        || rr.path.contains('?')
        || rr.path.strip_suffix('*').unwrap_or(&rr.path).contains('*')
    {
        return Err(err(
            "path",
            format!(
                "{:?} is not a path: it must be ASCII (percent-encode the rest), start with '/', hold no query, and use '*' only as a final \"/*\"",
                rr.path
            ),
        ));
    }
    let name = rr.name.unwrap_or_else(|| rr.path.clone());
    if name.is_empty() || name == "unmatched" {
        return Err(err("name", format!("{name:?} is reserved or empty")));
    }
    if rr.provider.trim().is_empty() {
        return Err(err("provider", "must not be empty".into()));
    }
    // Only the generic `hmac` scheme takes provider-specific keys; anywhere
    // else an extra key is a typo that must not silently disable a check.
    if rr.provider != "hmac" {
        if let Some(key) = rr.rest.keys().next() {
            return Err(err(key, format!("unknown field {key:?}")));
        }
    }

    if rr.secrets.is_empty() {
        return Err(err(
            "secrets",
            "no secrets: a route must name at least one (a route without a secret would verify nothing)"
                .into(),
        ));
    }
    let mut secrets = Vec::with_capacity(rr.secrets.len());
    for (j, raw) in rr.secrets.into_iter().enumerate() {
        let (spec, label) = match raw {
            RawSecret::Plain(spec) => (spec, j.to_string()),
            RawSecret::Named { value, name } => (value, name),
        };
        let f = field(&format!("secrets[{j}]"));
        let secret = resolve_secret(&spec, label, path, env, &f, warnings)?;
        if secret.expose().starts_with(b"whsec_") && !takes_whsec(&rr.provider, &rr.rest) {
            warnings.push(Warning {
                field: f,
                message: format!(
                    "a whsec_ secret (Svix / Standard Webhooks format) on a {:?} route: \
                     if the sender is Svix, use provider = \"svix\" (its key is base64-decoded)",
                    rr.provider
                ),
            });
        }
        secrets.push(secret);
    }

    let tolerance = rr
        .tolerance
        .as_deref()
        .map(|t| duration(Some(t), "0s"))
        .transpose()
        .map_err(|m| err("tolerance", m))?;

    let methods = match rr.methods {
        None => vec![Method::POST],
        Some(list) if list.is_empty() => {
            return Err(err("methods", "must name at least one method".into()))
        }
        Some(list) => list
            .iter()
            .map(|m| {
                Method::from_bytes(m.to_ascii_uppercase().as_bytes())
                    .map_err(|_| err("methods", format!("{m:?} is not an HTTP method")))
            })
            .collect::<Result<_, _>>()?,
    };
    let mode = match rr.mode.as_deref().unwrap_or("enforce") {
        "enforce" => Mode::Enforce,
        "shadow" => Mode::Shadow,
        other => {
            return Err(err(
                "mode",
                format!("unknown mode {other:?}: expected \"enforce\" or \"shadow\""),
            ))
        }
    };
    if let Some(url) = &rr.public_url {
        if !(url.starts_with("https://") || url.starts_with("http://")) || url.contains('?') {
            return Err(err(
                "public_url",
                "must be an absolute http(s) URL without a query".into(),
            ));
        }
    }

    Ok(RouteConfig {
        name,
        path: pattern,
        provider: rr.provider,
        secrets,
        tolerance,
        methods,
        mode,
        public_url: rr.public_url,
        index: i,
        scheme: if rr.rest.is_empty() {
            None
        } else {
            Some(rr.rest)
        },
    })
}

/// Resolves one secret spec (`env:NAME`, `file:PATH` or a literal) outside a
/// config file, as `hookgate sign --secret` does; `field` names it in errors.
pub fn secret_from_spec(spec: &str, field: &str, env: &Env) -> Result<Secret, ConfigError> {
    let mut ignored = Vec::new();
    resolve_secret(
        spec,
        "0".into(),
        Path::new("(command line)"),
        env,
        field,
        &mut ignored,
    )
}

/// Providers whose secrets legitimately start with `whsec_`: Svix and
/// Standard Webhooks and the Svix senders under their own names (base64
/// key), Stripe (the whole string is the key).
fn takes_whsec(provider: &str, rest: &toml::Table) -> bool {
    match provider {
        "svix" | "standard-webhooks" | "clerk" | "resend" | "brex" | "stripe" => true,
        "hmac" => rest.get("key_encoding").and_then(toml::Value::as_str) == Some("whsec"),
        _ => false,
    }
}

fn resolve_secret(
    spec: &str,
    label: String,
    config_path: &Path,
    env: &Env,
    field: &str,
    warnings: &mut Vec<Warning>,
) -> Result<Secret, ConfigError> {
    let err = |msg: String| ConfigError::new(config_path, field, msg);
    let (value, source) = if let Some(name) = spec.strip_prefix("env:") {
        let value = env
            .get(name)
            .ok_or_else(|| err(format!("environment variable {name} is not set")))?;
        (value.into_bytes(), SecretSource::Env(name.to_string()))
    } else if let Some(file) = spec.strip_prefix("file:") {
        let file = relative_to(config_path, Path::new(file));
        let mut bytes = std::fs::read(&file)
            .map_err(|e| err(format!("cannot read secret file {}: {e}", file.display())))?;
        // Kubernetes and editors add a trailing newline; a CR or LF is never part of a key.
        if bytes.last() == Some(&b'\n') {
            bytes.pop();
        }
        if bytes.iter().any(|b| *b == b'\r' || *b == b'\n') {
            while matches!(bytes.last(), Some(b'\n' | b'\r')) {
                bytes.pop();
            }
            if bytes.iter().any(|b| *b == b'\n' || *b == b'\r') {
                return Err(err(format!(
                    "secret file {} holds more than one line",
                    file.display()
                )));
            }
            warnings.push(Warning {
                field: field.to_string(),
                message: format!("secret file {} ends in CR/LF: trimmed", file.display()),
            });
        }
        (bytes, SecretSource::File(file))
    } else {
        warnings.push(Warning {
            field: field.to_string(),
            message: "literal secret in the config file: prefer env:NAME or file:PATH".into(),
        });
        (spec.as_bytes().to_vec(), SecretSource::Literal)
    };
    if value.iter().all(u8::is_ascii_whitespace) {
        return Err(err(format!("secret from {source} is empty")));
    }
    Ok(Secret::new(value, source, label))
}

/// `replay.redis_url`: a URL, or `env:NAME` / `file:PATH` holding one (it may carry a password).
fn redis_url(
    spec: &str,
    path: &Path,
    env: &Env,
    warnings: &mut Vec<Warning>,
) -> Result<Secret, ConfigError> {
    const FIELD: &str = "replay.redis_url";
    let err = |m: String| ConfigError::new(path, FIELD, m);
    let (url, source) = if spec.starts_with("env:") || spec.starts_with("file:") {
        let s = resolve_secret(spec, String::new(), path, env, FIELD, warnings)?;
        let url = std::str::from_utf8(s.expose())
            .map_err(|_| err(format!("{} is not UTF-8", s.source)))?
            .trim()
            .to_string();
        (url, s.source)
    } else {
        (spec.to_string(), SecretSource::Literal)
    };
    if !(url.starts_with("redis://")
        || url.starts_with("rediss://")
        || url.starts_with("redis+unix://")
        || url.starts_with("unix://"))
    {
        return Err(err("must start with redis:// or rediss://".into()));
    }
    // Parse it now so `hookgate check` catches it; the message is redis'
    // fixed text, never the URL (it may carry a password).
    let info = redis::IntoConnectionInfo::into_connection_info(url.as_str())
        .map_err(|e| err(format!("not a valid Redis URL: {e}")))?;
    if source == SecretSource::Literal && info.redis_settings().password().is_some() {
        warnings.push(Warning {
            field: FIELD.to_string(),
            message: "password in the config file: prefer env:NAME or file:PATH".into(),
        });
    }
    if let redis::ConnectionAddr::TcpTls { insecure: true, .. } = info.addr() {
        warnings.push(Warning {
            field: FIELD.to_string(),
            message: "#insecure: the Redis server's certificate is not verified".into(),
        });
    }
    Ok(Secret::new(url.into_bytes(), source, String::new()))
}

fn relative_to(config: &Path, p: &Path) -> PathBuf {
    if p.is_absolute() {
        p.to_path_buf()
    } else {
        config
            .parent()
            .map_or_else(|| p.to_path_buf(), |dir| dir.join(p))
    }
}

fn socket_addr(s: &str) -> Result<SocketAddr, String> {
    s.parse()
        .map_err(|_| format!("{s:?} is not an address like \"0.0.0.0:8443\" or \"[::]:8443\""))
}

fn upstream_target(url: &str) -> Result<UpstreamTarget, String> {
    if let Some(path) = url.strip_prefix("unix:") {
        let path = path.trim_start_matches("//");
        if !path.starts_with('/') {
            return Err("unix: needs an absolute socket path, e.g. unix:/run/app.sock".into());
        }
        return Ok(UpstreamTarget::Unix(PathBuf::from(path)));
    }
    let uri: http::Uri = url.parse().map_err(|_| format!("{url:?} is not a URL"))?;
    let https = match uri.scheme_str() {
        Some("http") => false,
        Some("https") => true,
        _ => return Err("must start with http://, https:// or unix:".into()),
    };
    let authority = uri
        .authority()
        .ok_or_else(|| format!("{url:?} has no host"))?
        .to_string();
    if uri.path() != "/" && !uri.path().is_empty() || uri.query().is_some() {
        return Err(
            "must not have a path or query: requests keep their own path (scheme://host:port only)"
                .into(),
        );
    }
    Ok(UpstreamTarget::Http { https, authority })
}

/// Parses a humantime duration ("250ms", "5m"); `default` when absent.
pub fn duration(value: Option<&str>, default: &str) -> Result<Duration, String> {
    // A year bounds every setting: larger values are typos, and `Instant + d`
    // must never overflow on the request path.
    const MAX: Duration = Duration::from_secs(366 * 24 * 3600);
    let text = value.unwrap_or(default);
    let d = humantime::parse_duration(text)
        .map_err(|e| format!("{text:?} is not a duration like \"250ms\" or \"5m\": {e}"))?;
    if d > MAX {
        return Err(format!("{text:?} is longer than a year"));
    }
    Ok(d)
}

/// A duration that must be more than zero (a zero timeout fails every request).
fn positive_duration(value: Option<&str>, default: &str) -> Result<Duration, String> {
    let d = duration(value, default)?;
    if d.is_zero() {
        return Err("must be more than zero".into());
    }
    Ok(d)
}

fn count(value: Option<i64>, default: usize) -> Result<usize, String> {
    match value {
        None => Ok(default),
        Some(n) if n > 0 => usize::try_from(n).map_err(|_| format!("{n} is too large")),
        Some(n) => Err(format!("{n} must be a positive number")),
    }
}

fn size(value: Option<RawSize>, default: u64) -> Result<u64, String> {
    match value {
        None => Ok(default),
        Some(RawSize::Bytes(n)) if n > 0 => Ok(n.unsigned_abs()),
        Some(RawSize::Bytes(n)) => Err(format!("{n} must be a positive number of bytes")),
        Some(RawSize::Text(s)) => parse_size(&s),
    }
}

/// Parses "64KiB", "25MiB", "1GiB", "100kB", "2MB" or a bare byte count.
pub fn parse_size(text: &str) -> Result<u64, String> {
    let bad = || format!("{text:?} is not a size like \"64KiB\", \"25MiB\" or a number of bytes");
    let t = text.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (digits, unit) = t.split_at(split);
    let n: u64 = digits.parse().map_err(|_| bad())?;
    let mult: u64 = match unit.trim() {
        "" | "B" => 1,
        "KiB" => 1 << 10,
        "MiB" => 1 << 20,
        "GiB" => 1 << 30,
        "kB" | "KB" => 1_000,
        "MB" => 1_000_000,
        "GB" => 1_000_000_000,
        _ => return Err(bad()),
    };
    let bytes = n.checked_mul(mult).ok_or_else(bad)?;
    if bytes == 0 {
        return Err(format!("{text:?} must be more than zero bytes"));
    }
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn parse_with(text: &str, env: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let env = Env::Map(
            env.iter()
                .map(|(k, v)| ((*k).to_string(), (*v).to_string()))
                .collect(),
        );
        parse(text, Path::new("/etc/hookgate/hookgate.toml"), &env)
    }

    const BASE: &str = r#"
[listen]
addr = "127.0.0.1:8443"
[upstream]
url = "http://127.0.0.1:3000"
[[routes]]
path = "/webhooks/levers"
provider = "svix"
secrets = ["env:LEVERS"]
"#;

    #[test]
    fn minimal_config_gets_documented_defaults() {
        let c = parse_with(BASE, &[("LEVERS", "whsec_abc")]).unwrap();
        assert_eq!(c.limits.max_body, 25 << 20);
        assert_eq!(c.limits.max_buffered, 256 << 20);
        assert_eq!(c.upstream.timeout, Duration::from_secs(25));
        assert_eq!(c.replay.capacity, 100_000);
        assert_eq!(c.routes[0].name, "/webhooks/levers");
        assert_eq!(c.routes[0].methods, vec![Method::POST]);
        assert!(c.upstream.forwarded_headers);
    }

    #[test]
    fn unknown_key_names_the_key_and_file() {
        let text = format!("{BASE}tolerence = \"5m\"\n");
        let e = parse_with(&text, &[("LEVERS", "x")])
            .unwrap_err()
            .to_string();
        assert!(e.contains("tolerence"), "{e}");
        assert!(e.contains("/etc/hookgate/hookgate.toml"), "{e}");
    }

    #[test]
    fn unset_env_secret_is_an_error_naming_the_field() {
        let e = parse_with(BASE, &[]).unwrap_err();
        assert_eq!(e.field, "routes[0].secrets[0]");
        assert!(e.message.contains("LEVERS"));
    }

    #[test]
    fn empty_secret_is_an_error() {
        let e = parse_with(BASE, &[("LEVERS", "  ")]).unwrap_err();
        assert_eq!(e.field, "routes[0].secrets[0]");
    }

    #[test]
    fn secret_debug_and_display_are_redacted() {
        let c = parse_with(BASE, &[("LEVERS", "supersecretvalue")]).unwrap();
        let s = &c.routes[0].secrets[0];
        assert!(!format!("{s:?}").contains("supersecretvalue"));
        assert!(!format!("{s}").contains("supersecretvalue"));
        assert!(!format!("{c:?}").contains("supersecretvalue"));
    }

    #[test]
    fn redis_store_settings_parse_and_a_bad_url_names_the_field() {
        let text = format!(
            "{BASE}[replay]\nstore = \"redis\"\nredis_url = \"rediss://:pw@cache.internal:6380/2\"\nredis_timeout = \"250ms\"\non_store_error = \"allow\"\n"
        );
        let c = parse_with(&text, &[("LEVERS", "x")]).unwrap();
        assert_eq!(c.replay.store, StoreKind::Redis);
        assert_eq!(c.replay.redis_prefix, "hookgate");
        assert_eq!(c.replay.redis_timeout, Duration::from_millis(250));
        assert_eq!(c.replay.on_store_error, OnStoreError::Allow);
        assert!(
            !format!("{c:?}").contains(":pw@"),
            "the URL's password is redacted"
        );
        assert!(c.warnings.iter().any(|w| w.field == "replay.redis_url"));

        let text = format!("{BASE}[replay]\nstore = \"redis\"\nredis_url = \"env:REDIS_URL\"\n");
        let c = parse_with(
            &text,
            &[("LEVERS", "x"), ("REDIS_URL", "redis://:pw@h:1/0")],
        )
        .unwrap();
        assert_eq!(c.replay.redis_url.unwrap().expose(), b"redis://:pw@h:1/0");
        assert!(c.warnings.is_empty(), "{:?}", c.warnings);

        let text = format!("{BASE}[replay]\nstore = \"redis\"\nredis_url = \"redis://h\"\nredis_ca_file = \"ca.pem\"\n");
        let e = parse_with(&text, &[("LEVERS", "x")]).unwrap_err();
        assert_eq!(e.field, "replay.redis_ca_file");

        let text = format!("{BASE}[replay]\nstore = \"redis\"\nredis_url = \"redis://:s3cret@\"\n");
        let e = parse_with(&text, &[("LEVERS", "x")]).unwrap_err();
        assert_eq!(e.field, "replay.redis_url");
        assert!(!e.to_string().contains("s3cret"), "{e}");
    }

    #[test]
    fn a_changed_redis_url_is_a_changed_store_though_debug_redacts_it() {
        let with = |url: &str, on_error: &str| {
            let text = format!(
                "{BASE}[replay]\nstore = \"redis\"\nredis_url = \"{url}\"\non_store_error = \"{on_error}\"\n"
            );
            parse_with(&text, &[("LEVERS", "x")]).unwrap().replay
        };
        let a = with("redis://a:6379/0", "reject");
        assert!(a.same_store(&with("redis://a:6379/0", "allow")));
        assert!(!a.same_store(&with("redis://b:6379/0", "reject")));
        assert_eq!(
            format!("{:?}", a.redis_url),
            format!("{:?}", with("redis://b:6379/0", "reject").redis_url)
        );
    }

    #[test]
    fn sizes_and_durations_parse() {
        assert_eq!(parse_size("64KiB").unwrap(), 65536);
        assert_eq!(parse_size("25MiB").unwrap(), 25 << 20);
        assert_eq!(parse_size("1000").unwrap(), 1000);
        assert!(parse_size("12 parsecs").is_err());
        assert!(parse_size("0").is_err());
        assert!(duration(Some("5 fortnights"), "1s").is_err());
    }

    #[test]
    fn bad_duration_names_the_field() {
        let text = BASE.replace("[upstream]", "[upstream]\ntimeout = \"soon\"");
        let e = parse_with(&text, &[("LEVERS", "x")]).unwrap_err();
        assert_eq!(e.field, "upstream.timeout");
    }

    #[test]
    fn duplicate_paths_are_refused() {
        let text = format!("{BASE}[[routes]]\nname = \"again\"\npath = \"/webhooks/levers\"\nprovider = \"svix\"\nsecrets = [\"env:LEVERS\"]\n");
        let e = parse_with(&text, &[("LEVERS", "x")]).unwrap_err();
        assert_eq!(e.field, "routes[1].path");
    }

    #[test]
    fn upstream_forms() {
        assert_eq!(
            upstream_target("unix:/run/app.sock").unwrap(),
            UpstreamTarget::Unix("/run/app.sock".into())
        );
        assert_eq!(
            upstream_target("https://app:8443").unwrap(),
            UpstreamTarget::Http {
                https: true,
                authority: "app:8443".into()
            }
        );
        assert!(upstream_target("ftp://x").is_err());
        assert!(upstream_target("http://app/path").is_err());
    }

    #[test]
    fn prefix_routes() {
        let text = BASE.replace("/webhooks/levers", "/webhooks/*");
        let c = parse_with(&text, &[("LEVERS", "x")]).unwrap();
        assert_eq!(c.routes[0].path, PathPattern::Prefix("/webhooks/".into()));
        let bad = BASE.replace("/webhooks/levers", "/webhooks*");
        assert!(parse_with(&bad, &[("LEVERS", "x")]).is_err());
    }

    #[test]
    fn literal_secret_warns() {
        let text = BASE.replace("env:LEVERS", "whsec_literal");
        let c = parse_with(&text, &[]).unwrap();
        assert_eq!(c.warnings.len(), 1);
        assert_eq!(c.warnings[0].field, "routes[0].secrets[0]");
    }

    #[test]
    fn whsec_secret_on_a_non_svix_route_warns() {
        let env = [("LEVERS", "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")];
        for (provider, warns) in [("svix", false), ("stripe", false), ("github", true)] {
            let text = BASE.replace("\"svix\"", &format!("{provider:?}"));
            let c = parse_with(&text, &env).unwrap();
            assert_eq!(c.warnings.len(), usize::from(warns), "{provider}");
            if warns {
                assert_eq!(c.warnings[0].field, "routes[0].secrets[0]");
                assert!(c.warnings[0].message.contains("whsec_"));
            }
        }
    }
}
