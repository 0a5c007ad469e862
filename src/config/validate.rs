//! The raw file -> `Config`: the checks that span keys or tables, section by section.

use std::net::SocketAddr;
use std::num::NonZeroUsize;
use std::path::Path;
use std::time::Duration;

use super::model::{
    Admin, Config, Delivery, Limits, Listen, Mode, Queue, Replay, RouteConfig, StoreKind, TlsFiles,
};
use super::queue::queue;
use super::raw::{RawConfig, RawLimits, RawListen, RawReplay, RawRoute};
use super::route::route;
use super::secret::{redis_url, relative_to};
use super::units::{Dur, Size};
use super::upstream::{attestation_key, upstream};
use super::{ConfigError, Env, Warning};
use crate::attest::is_attestable_route_name;

pub(super) fn validate(raw: RawConfig, path: &Path, env: &Env) -> Result<Config, ConfigError> {
    let mut warnings = Vec::new();
    let listen = listen(raw.listen, path)?;
    let admin = raw
        .admin
        .map(|a| socket_addr(&a.addr).map(|addr| Admin { addr }))
        .transpose()
        .map_err(|m| ConfigError::new(path, "admin.addr", m))?;
    let attestation_key = raw
        .upstream
        .attestation_key
        .as_deref()
        .map(|spec| attestation_key(spec, path, env, &mut warnings))
        .transpose()?;
    let upstream = upstream(raw.upstream, path)?;
    let limits = limits(raw.limits, path)?;
    let replay = replay(raw.replay, path, env, &mut warnings)?;
    let routes = routes(raw.routes, path, env, &mut warnings)?;
    let queue = raw
        .queue
        .map(|q| queue(q, &replay, path, env, &mut warnings))
        .transpose()?;
    queued_routes(&routes, queue.as_ref(), path)?;
    if attestation_key.is_some() {
        if let Some(r) = routes.iter().find(|r| !is_attestable_route_name(&r.name)) {
            return Err(ConfigError::new(
                path,
                format!("routes[{}].name", r.index),
                format!(
                    "{:?} cannot be sent in Hookgate-Attestation (upstream.attestation_key is set): \
                     a route name must be printable ASCII without ',' or spaces",
                    r.name
                ),
            ));
        }
    }
    Ok(Config {
        source: path.to_path_buf(),
        listen,
        admin,
        upstream,
        limits,
        replay,
        queue,
        routes,
        attestation_key,
        warnings,
    })
}

fn listen(raw: RawListen, path: &Path) -> Result<Listen, ConfigError> {
    let err = |field: &str, m: &str| ConfigError::new(path, field, m);
    let addr = socket_addr(&raw.addr).map_err(|m| ConfigError::new(path, "listen.addr", m))?;
    let tls = match (raw.tls_cert, raw.tls_key) {
        (Some(cert), Some(key)) => Some(TlsFiles {
            cert: relative_to(path, &cert),
            key: relative_to(path, &key),
        }),
        (None, None) => None,
        (Some(_), None) => {
            return Err(err(
                "listen.tls_key",
                "tls_cert is set but tls_key is not: set both or neither",
            ))
        }
        (None, Some(_)) => {
            return Err(err(
                "listen.tls_cert",
                "tls_key is set but tls_cert is not: set both or neither",
            ))
        }
    };
    Ok(Listen { addr, tls })
}

fn socket_addr(s: &str) -> Result<SocketAddr, String> {
    s.parse()
        .map_err(|_| format!("{s:?} is not an address like \"0.0.0.0:8443\" or \"[::]:8443\""))
}

/// A duration that must be more than zero (a zero timeout fails every request).
pub(super) fn positive(
    value: Option<Dur>,
    default: Duration,
    field: &str,
    path: &Path,
) -> Result<Duration, ConfigError> {
    let d = value.map_or(default, |d| d.0);
    if d.is_zero() {
        return Err(ConfigError::new(path, field, "must be more than zero"));
    }
    Ok(d)
}

fn limits(l: RawLimits, path: &Path) -> Result<Limits, ConfigError> {
    let err = |field: &str, m: String| ConfigError::new(path, field, m);
    let size = |v: Option<Size>, default: u64| v.map_or(default, |s| s.0);
    let count = |v: Option<NonZeroUsize>, default: usize| v.map_or(default, NonZeroUsize::get);
    let limits = Limits {
        max_body: size(l.max_body, 25 << 20),
        max_buffered: size(l.max_buffered, 256 << 20),
        header_timeout: positive(
            l.header_timeout,
            Duration::from_secs(10),
            "limits.header_timeout",
            path,
        )?,
        body_timeout: positive(
            l.body_timeout,
            Duration::from_secs(10),
            "limits.body_timeout",
            path,
        )?,
        max_inflight: count(l.max_inflight, 1024),
        max_connections: count(l.max_connections, 4096),
        max_headers: count(l.max_headers, 100),
        max_header_bytes: usize::try_from(size(l.max_header_bytes, 64 << 10))
            .map_err(|_| err("limits.max_header_bytes", "too large".into()))?,
        shutdown_grace: l.shutdown_grace.map_or(Duration::from_secs(20), |d| d.0),
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
    Ok(limits)
}

fn replay(
    r: RawReplay,
    path: &Path,
    env: &Env,
    warnings: &mut Vec<Warning>,
) -> Result<Replay, ConfigError> {
    let err = |field: &str, m: &str| ConfigError::new(path, field, m);
    let redis_url = match (r.store, r.redis_url) {
        (StoreKind::Redis, None) => {
            return Err(err(
                "replay.redis_url",
                "required when replay.store = \"redis\"",
            ))
        }
        (StoreKind::Redis, Some(spec)) => {
            Some(redis_url(&spec, path, env, warnings, "replay.redis_url")?)
        }
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
            "only meaningful with a rediss:// replay.redis_url",
        ));
    }
    Ok(Replay {
        store: r.store,
        capacity: r.capacity.map_or(100_000, NonZeroUsize::get),
        ttl: positive(r.ttl, Duration::from_secs(24 * 3600), "replay.ttl", path)?,
        redis_url,
        redis_ca_file,
        redis_prefix: r.redis_prefix.unwrap_or_else(|| "hookgate".to_string()),
        redis_timeout: positive(
            r.redis_timeout,
            Duration::from_millis(500),
            "replay.redis_timeout",
            path,
        )?,
        on_store_error: r.on_store_error,
    })
}

/// A `delivery = "queue"` route needs a `[queue]`, and verifies what it stores:
/// a shadow route forwards unverified requests, which the queue never keeps.
fn queued_routes(
    routes: &[RouteConfig],
    queue: Option<&Queue>,
    path: &Path,
) -> Result<(), ConfigError> {
    for r in routes.iter().filter(|r| r.delivery == Delivery::Queue) {
        let field = format!("routes[{}].delivery", r.index);
        if queue.is_none() {
            return Err(ConfigError::new(
                path,
                field,
                "\"queue\" needs a [queue] section (where accepted requests are stored)",
            ));
        }
        if r.mode == Mode::Shadow {
            return Err(ConfigError::new(
                path,
                field,
                "\"queue\" stores only verified requests: a mode = \"shadow\" route forwards unverified ones; use delivery = \"forward\" while in shadow mode",
            ));
        }
    }
    Ok(())
}

fn routes(
    raw: Vec<RawRoute>,
    path: &Path,
    env: &Env,
    warnings: &mut Vec<Warning>,
) -> Result<Vec<RouteConfig>, ConfigError> {
    let mut routes: Vec<RouteConfig> = Vec::with_capacity(raw.len());
    for (i, rr) in raw.into_iter().enumerate() {
        let route = route(rr, i, path, env, warnings)?;
        if let Some(other) = routes.iter().find(|r| r.path == route.path) {
            return Err(ConfigError::new(
                path,
                format!("routes[{i}].path"),
                format!(
                    "{} is already used by route {:?}",
                    route.path.as_config_str(),
                    other.name
                ),
            ));
        }
        if let Some(other) = routes.iter().find(|r| r.name == route.name) {
            return Err(ConfigError::new(
                path,
                format!("routes[{i}].name"),
                format!(
                    "{:?} is already the name of routes[{}]",
                    route.name, other.index
                ),
            ));
        }
        routes.push(route);
    }
    if routes.is_empty() {
        return Err(ConfigError::new(
            path,
            "routes",
            "no [[routes]]: hookgate would reject every request",
        ));
    }
    Ok(routes)
}
