//! Configuration: raw TOML -> validated, typed `Config`; secrets with redacted `Debug`.
//!
//! Parsed twice, ripgrep-style. serde reads the raw shape (`raw`) with every
//! enum-like value, size and duration already typed and every table closed to
//! unknown keys, because a typo must never silently disable a check; its
//! errors keep toml's line and column, and the key path. Then `validate`
//! checks how values combine, resolves secrets and each route's verification
//! scheme, and names the offending field and file when it cannot.
//!
//! - `model`     the validated types the rest of hookgate reads
//! - `raw`       the file's shape, as serde reads it
//! - `units`     sizes, durations and counts
//! - `secret`    `Secret`, `env:` / `file:` resolution
//! - `upstream`  `upstream.url` -> `UpstreamTarget`
//! - `route`     one `[[routes]]` table -> `RouteConfig`
//! - `queue`     `[queue]` -> `Queue`, its disk or Redis store
//! - `validate`  the whole file -> `Config`

// Every enum match here names each variant: a new one must be decided, not defaulted.
#![warn(clippy::wildcard_enum_match_arm)]

use std::path::Path;

mod model;
mod queue;
mod raw;
mod route;
mod secret;
mod units;
mod upstream;
mod validate;

pub use model::{
    Admin, Config, Delivery, Limits, Listen, Mode, OnStoreError, PathPattern, Queue, QueueBackend,
    QueueRedis, QueueStore, Replay, RouteConfig, StoreKind, TlsFiles, Upstream, UpstreamTarget,
};
pub use secret::{secret_from_spec, Secret, SecretSource};
pub use units::{parse_duration, parse_size};

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

/// Reads, parses and validates a configuration file, resolving every secret.
pub fn load(path: &Path) -> Result<Config, ConfigError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| ConfigError::new(path, "(file)", format!("cannot read: {e}")))?;
    parse(&text, path, &Env::Process)
}

/// Parses configuration text; `path` names the file in errors and anchors relative paths.
pub fn parse(text: &str, path: &Path, env: &Env) -> Result<Config, ConfigError> {
    let raw: raw::RawConfig = serde_path_to_error::deserialize(toml::Deserializer::new(text))
        .map_err(|e| toml_error(path, &e))?;
    validate::validate(raw, path, env)
}

/// The field is the key's path; serde's message names an unknown key and
/// the keys expected (or a bad value and the values allowed). The position is
/// the first line of toml's own `Display` ("TOML parse error at line L,
/// column C"); the rest of it quotes the offending line, which is left out:
/// that line may hold a secret (a misspelt `redis_url` with a password).
fn toml_error(path: &Path, e: &serde_path_to_error::Error<toml::de::Error>) -> ConfigError {
    let field = if e.path().iter().next().is_some() {
        e.path().to_string()
    } else {
        "(syntax)".to_string()
    };
    let inner = e.inner();
    // One line, for log lines: toml's "expected …" continuation joins the first.
    let message = inner.message().trim_end().replace('\n', "; ");
    let shown = inner.to_string();
    let message = match (inner.span(), shown.lines().next()) {
        (Some(_), Some(position)) => format!("{position}: {message}"),
        (None, _) | (_, None) => message.to_string(),
    };
    ConfigError::new(path, field, message)
}

#[cfg(test)]
mod tests;
