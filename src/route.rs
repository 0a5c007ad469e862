//! Path -> `Route`, built once from `Config`: each route's verifier, methods, mode and metrics.

// Every enum match here names each variant: a new one must be decided, not defaulted.
#![warn(clippy::wildcard_enum_match_arm)]

use std::collections::HashMap;
use std::sync::Arc;

use http::Method;

use crate::attest::AttestationKey;
use crate::config::{Config, ConfigError, Delivery, Mode, OnStoreError, PathPattern, RouteConfig};
use crate::metrics::{Metrics, RouteMetrics};
use crate::verify::Verifier;

pub struct Route {
    pub name: String,
    pub pattern: PathPattern,
    pub provider: String,
    pub verifier: Verifier,
    /// The headers the verifier reads: each must arrive exactly once.
    pub guarded: Vec<http::HeaderName>,
    pub methods: Vec<Method>,
    pub mode: Mode,
    /// `forward`, or `queue`: stored, answered 202, delivered by `queue`.
    pub delivery: Delivery,
    pub public_url: Option<String>,
    pub secret_labels: Vec<String>,
    pub metrics: RouteMetrics,
    /// `upstream.attestation_key`, shared by every route of one table.
    pub attestation: Option<Arc<AttestationKey>>,
}

/// Exact paths first, then the longest matching prefix.
pub struct RouteTable {
    exact: HashMap<String, Arc<Route>>,
    /// Sorted longest prefix first.
    prefixes: Vec<Arc<Route>>,
    all: Vec<Arc<Route>>,
}

impl RouteTable {
    pub fn build(config: &Config, metrics: &Metrics) -> Result<Self, ConfigError> {
        let mut exact = HashMap::new();
        let mut prefixes = Vec::new();
        let mut all = Vec::new();
        let attestation = config
            .attestation_key
            .as_ref()
            .map(|key| Arc::new(AttestationKey::new(key.expose())));
        for rc in &config.routes {
            let route = Arc::new(build_route(config, rc, metrics, attestation.clone())?);
            match &route.pattern {
                PathPattern::Exact(p) => {
                    exact.insert(p.clone(), Arc::clone(&route));
                }
                PathPattern::Prefix(_) => prefixes.push(Arc::clone(&route)),
            }
            all.push(route);
        }
        prefixes.sort_by_key(|r: &Arc<Route>| std::cmp::Reverse(prefix_len(&r.pattern)));
        Ok(RouteTable {
            exact,
            prefixes,
            all,
        })
    }

    /// The route for a request path (without query).
    pub fn find(&self, path: &str) -> Option<&Arc<Route>> {
        self.exact.get(path).or_else(|| {
            self.prefixes.iter().find(|r| match &r.pattern {
                PathPattern::Prefix(p) => path.starts_with(p.as_str()),
                PathPattern::Exact(_) => false,
            })
        })
    }

    /// Routes in configuration order.
    pub fn routes(&self) -> &[Arc<Route>] {
        &self.all
    }
}

/// Whether a request path is free of the forms an application may resolve
/// differently from hookgate's byte-wise routing: dot segments (plain or
/// percent-encoded), encoded slashes or backslashes, backslashes and empty
/// segments. Providers never send them.
pub fn is_clean_path(path: &str) -> bool {
    let bytes = path.as_bytes();
    if bytes.contains(&b'\\') || bytes.windows(2).any(|pair| pair == b"//") {
        return false;
    }
    // With neither `.` nor `%` (nearly every request) there is no dot
    // segment, plain or encoded: one pass, no segment split.
    if !bytes.iter().any(|&b| b == b'.' || b == b'%') {
        return true;
    }
    // A segment's parameters (`..;jsessionid=1`, `%2e%2e;`) are cut off by
    // Tomcat, Jetty and Spring before they resolve dot segments.
    if !path.contains('%') {
        // Nothing encoded (nearly every request): checked in place, no copy.
        return !path.split('/').any(is_dot_segment);
    }
    let lower = path.to_ascii_lowercase();
    if lower.contains("%2f") || lower.contains("%5c") {
        return false;
    }
    !lower.split('/').any(is_dot_segment)
}

/// `.` or `..`, once `%2e` is decoded and `;` parameters cut off. Only a
/// segment holding a `%` is decoded (into a copy): the rest, nearly every
/// request's, are checked in place.
fn is_dot_segment(seg: &str) -> bool {
    let name = |s: &str| matches!(s.split(';').next().unwrap_or_default(), "." | "..");
    if seg.contains('%') {
        name(&seg.replace("%2e", ".").replace("%3b", ";"))
    } else {
        name(seg)
    }
}

fn prefix_len(p: &PathPattern) -> usize {
    match p {
        PathPattern::Prefix(p) | PathPattern::Exact(p) => p.len(),
    }
}

fn build_route(
    config: &Config,
    rc: &RouteConfig,
    metrics: &Metrics,
    attestation: Option<Arc<AttestationKey>>,
) -> Result<Route, ConfigError> {
    let err = |field: &str, msg: String| {
        ConfigError::new(&config.source, format!("routes[{}].{field}", rc.index), msg)
    };
    let scheme = rc.scheme.clone();
    if scheme.signs_url() && rc.public_url.is_none() {
        return Err(err(
            "public_url",
            format!(
                "provider {:?} signs the URL it called, which hookgate cannot rebuild behind a proxy: set public_url to that URL (without query)",
                rc.provider
            ),
        ));
    }
    if rc.tolerance.is_some() && !scheme.has_timestamp() {
        return Err(err(
            "tolerance",
            format!(
                "provider {:?} signs no timestamp, so a tolerance would protect nothing: remove it",
                rc.provider
            ),
        ));
    }
    let secrets: Vec<&[u8]> = rc.secrets.iter().map(|s| s.expose()).collect();
    let verifier = Verifier::new(scheme, &secrets, rc.tolerance)
        .map_err(|(i, e)| {
            err(
                &format!("secrets[{i}]"),
                format!("secret from {} {}", rc.secrets[i].source, e.0),
            )
        })?
        .with_validity(rc.secrets.iter().map(|s| s.validity));
    // A timestamp is accepted for `tolerance` either side of now, so an id must
    // be remembered at least that long or a replay fits in after it is forgotten.
    if verifier.scheme().has_timestamp() && config.replay.ttl < verifier.tolerance() * 2 {
        return Err(err(
            "tolerance",
            format!(
                "replay.ttl ({}) must be at least twice the tolerance ({}), or a replay could arrive after its id is forgotten",
                humantime::format_duration(config.replay.ttl),
                humantime::format_duration(verifier.tolerance())
            ),
        ));
    }
    let secret_labels: Vec<String> = rc.secrets.iter().map(|s| s.label.clone()).collect();
    let expiries: Vec<(String, std::time::SystemTime)> = rc
        .secrets
        .iter()
        .filter_map(|s| Some((s.label.clone(), s.validity.not_after?)))
        .collect();
    Ok(Route {
        name: rc.name.clone(),
        pattern: rc.path.clone(),
        provider: rc.provider.clone(),
        metrics: metrics
            .route(&rc.name, &secret_labels)
            .with_expiries(metrics.secret_expiries(&rc.name, &expiries)),
        guarded: verifier.scheme().read_headers(),
        verifier,
        methods: rc.methods.clone(),
        mode: rc.mode,
        delivery: rc.delivery,
        public_url: rc.public_url.clone(),
        secret_labels,
        attestation,
    })
}

/// What can change on reload: swapped atomically as one value.
pub struct Runtime {
    pub routes: RouteTable,
    pub max_body: u64,
    pub body_timeout: std::time::Duration,
    pub on_store_error: OnStoreError,
}

impl Runtime {
    /// Builds the request-time state from a configuration (at start and on reload).
    pub fn build(config: &Config, metrics: &Metrics) -> Result<Runtime, ConfigError> {
        Ok(Runtime {
            routes: RouteTable::build(config, metrics)?,
            max_body: config.limits.max_body,
            body_timeout: config.limits.body_timeout,
            on_store_error: config.replay.on_store_error,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::is_clean_path;

    #[test]
    fn dot_segments_encoded_slashes_and_empty_segments_are_unclean() {
        for ok in [
            "/",
            "/webhooks/levers",
            "/webhooks/a.b",
            "/w/..x",
            "/w/%41",
            "/w/a;b",
            "/w/...;x",
        ] {
            assert!(is_clean_path(ok), "{ok}");
        }
        for bad in [
            "/webhooks/../admin",
            "/webhooks/./levers",
            "/webhooks/%2e%2E/admin",
            "/webhooks/.%2e",
            "/webhooks/a%2Fb",
            "/webhooks/a%5cb",
            "/webhooks\\..\\admin",
            "/webhooks//levers",
            "/webhooks/..",
            "/hooks/gh/..;/admin",
            "/hooks/gh/%2e%2e;/admin",
            "/hooks/gh/..;jsessionid=1/admin",
            "/hooks/gh/.;/x",
            "/hooks/gh/..%3b/admin",
        ] {
            assert!(!is_clean_path(bad), "{bad}");
        }
    }
}
