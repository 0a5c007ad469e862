//! `[upstream]` -> `Upstream`: where verified requests go, and how.

use std::path::{Path, PathBuf};
use std::time::Duration;

use super::model::{Upstream, UpstreamTarget};
use super::raw::RawUpstream;
use super::secret::{relative_to, resolve_secret, Secret};
use super::{ConfigError, Env, Warning};

/// `upstream.attestation_key`: a secret like a route's (`env:`, `file:`, or a
/// literal with a warning); its bytes as written are the HMAC key.
pub(super) fn attestation_key(
    spec: &str,
    path: &Path,
    env: &Env,
    warnings: &mut Vec<Warning>,
) -> Result<Secret, ConfigError> {
    const FIELD: &str = "upstream.attestation_key";
    let key = resolve_secret(spec, String::new(), path, env, FIELD, warnings)?;
    if key.expose().len() < 32 {
        warnings.push(Warning {
            field: FIELD.to_string(),
            message: format!(
                "the key from {} is shorter than 32 bytes: use 32 random bytes or more (openssl rand -hex 32)",
                key.source
            ),
        });
    }
    Ok(key)
}

pub(super) fn upstream(raw: RawUpstream, path: &Path) -> Result<Upstream, ConfigError> {
    let err = |field: &str, m: String| ConfigError::new(path, field, m);
    let upstream = Upstream {
        target: target(&raw.url).map_err(|m| err("upstream.url", m))?,
        timeout: raw.timeout.map_or(Duration::from_secs(25), |d| d.0),
        ca_file: raw.ca_file.map(|p| relative_to(path, &p)),
        forwarded_headers: raw.forwarded_headers.unwrap_or(true),
    };
    if upstream.timeout.is_zero() {
        return Err(err("upstream.timeout", "must be more than zero".into()));
    }
    if upstream.ca_file.is_some()
        && !matches!(upstream.target, UpstreamTarget::Http { https: true, .. })
    {
        return Err(err(
            "upstream.ca_file",
            "only meaningful with an https:// upstream.url".into(),
        ));
    }
    Ok(upstream)
}

/// `http://host:port`, `https://host:port` or `unix:/path`: no path or query.
fn target(url: &str) -> Result<UpstreamTarget, String> {
    if let Some(path) = url.strip_prefix("unix:") {
        let path = path.trim_start_matches("//");
        if !path.starts_with('/') {
            return Err("unix: needs an absolute socket path, e.g. unix:/run/app.sock".into());
        }
        return Ok(UpstreamTarget::Unix(PathBuf::from(path)));
    }
    let uri: http::Uri = url.parse().map_err(|_| format!("{url:?} is not a URL"))?;
    let scheme = uri
        .scheme()
        .ok_or("must start with http://, https:// or unix:")?;
    let https = if *scheme == http::uri::Scheme::HTTPS {
        true
    } else if *scheme == http::uri::Scheme::HTTP {
        false
    } else {
        return Err("must start with http://, https:// or unix:".into());
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

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn upstream_forms() {
        assert_eq!(
            target("unix:/run/app.sock").unwrap(),
            UpstreamTarget::Unix("/run/app.sock".into())
        );
        assert_eq!(
            target("https://app:8443").unwrap(),
            UpstreamTarget::Http {
                https: true,
                authority: "app:8443".into()
            }
        );
        assert_eq!(
            target("http://127.0.0.1:3000").unwrap().to_string(),
            "http://127.0.0.1:3000"
        );
        assert!(target("ftp://x").is_err());
        assert!(target("http://app/path").is_err());
    }
}
