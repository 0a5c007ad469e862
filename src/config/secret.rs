//! Secrets: `env:NAME`, `file:PATH` or a literal, resolved once at load, with
//! their validity window (`not_before` / `not_after`, RFC 3339);
//! `Secret`'s `Debug` and `Display` never show the bytes.

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use super::{ConfigError, Env, Warning};
use crate::verify::Validity;

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
    /// When this secret verifies (a route secret's `not_before` / `not_after`).
    pub validity: Validity,
}

impl Secret {
    pub fn new(value: Vec<u8>, source: SecretSource, label: String) -> Self {
        Secret {
            value,
            source,
            label,
            validity: Validity::ALWAYS,
        }
    }

    pub fn with_validity(self, validity: Validity) -> Self {
        Secret { validity, ..self }
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
            "Secret({}, label={}, {}, <redacted>)",
            self.source, self.label, self.validity
        )
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} (redacted)", self.source)
    }
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

pub(super) fn resolve_secret(
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

/// A secret's `not_before` / `not_after`: RFC 3339 in UTC (`Z` or
/// `+00:00`, an optional fraction), as text or a TOML date-time. `field` is
/// the key's full path, named in the error.
pub(super) fn instant(text: &str, path: &Path, field: &str) -> Result<SystemTime, ConfigError> {
    humantime::parse_rfc3339(text.trim()).map_err(|e| {
        ConfigError::new(
            path,
            field,
            format!(
                "{text:?} is not an RFC 3339 UTC date-time such as \"2026-12-01T00:00:00Z\" ({e})"
            ),
        )
    })
}

/// The window of a route secret, from its `not_before` and `not_after`.
pub(super) fn validity(
    not_before: Option<&str>,
    not_after: Option<&str>,
    path: &Path,
    field: &str,
) -> Result<Validity, ConfigError> {
    let bound = |text: Option<&str>, key: &str| {
        text.map(|t| instant(t, path, &format!("{field}.{key}")))
            .transpose()
    };
    let (nb, na) = (
        bound(not_before, "not_before")?,
        bound(not_after, "not_after")?,
    );
    Validity::new(nb, na)
        .map_err(|m| ConfigError::new(path, format!("{field}.not_after"), m.to_string()))
}

/// `replay.redis_url` or `queue.redis_url` (`field`): a URL, or `env:NAME` /
/// `file:PATH` holding one (it may carry a password).
pub(super) fn redis_url(
    spec: &str,
    path: &Path,
    env: &Env,
    warnings: &mut Vec<Warning>,
    field: &str,
) -> Result<Secret, ConfigError> {
    let err = |m: String| ConfigError::new(path, field, m);
    let (url, source) = if spec.starts_with("env:") || spec.starts_with("file:") {
        let s = resolve_secret(spec, String::new(), path, env, field, warnings)?;
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
            field: field.to_string(),
            message: "password in the config file: prefer env:NAME or file:PATH".into(),
        });
    }
    if let redis::ConnectionAddr::TcpTls { insecure: true, .. } = info.addr() {
        warnings.push(Warning {
            field: field.to_string(),
            message: "#insecure: the Redis server's certificate is not verified".into(),
        });
    }
    Ok(Secret::new(url.into_bytes(), source, String::new()))
}

/// `p`, anchored at the configuration file's directory when relative.
pub(super) fn relative_to(config: &Path, p: &Path) -> PathBuf {
    if p.is_absolute() {
        p.to_path_buf()
    } else {
        config
            .parent()
            .map_or_else(|| p.to_path_buf(), |dir| dir.join(p))
    }
}
