//! `hookgate check --json`: the validated, resolved configuration as one JSON document, for tools
//! (deploy/check.sh) that must agree with the binary instead of re-parsing sizes and durations.
//!
//! Sizes are bytes, durations seconds (floats), addresses `ip:port`. Secrets appear only as
//! their sources (`env:NAME`, `file:PATH`, `literal`) and labels: never a value, and the Redis
//! URL (it may carry a password) only as its source. Reads `Config` and the built route table
//! through the few fields below, and nothing else.

use std::time::Duration;

use serde_json::{json, Value};

use crate::config::{Config, Mode, OnStoreError, QueueBackend, RouteConfig, Secret, StoreKind};
use crate::route::Route;

/// The JSON document for a configuration whose route table `routes` was built from it
/// (routes in configuration order, so each pairs with its `RouteConfig`).
pub fn config_json(config: &Config, routes: &[std::sync::Arc<Route>]) -> Value {
    let listen = &config.listen;
    let upstream = &config.upstream;
    let limits = &config.limits;
    let replay = &config.replay;
    json!({
        "source": config.source.display().to_string(),
        "listen": {
            "addr": listen.addr.to_string(),
            "tls": listen.tls.as_ref().map(|t| json!({
                "cert": t.cert.display().to_string(),
                "key": t.key.display().to_string(),
            })),
        },
        "admin": config.admin.as_ref().map(|a| json!({ "addr": a.addr.to_string() })),
        "upstream": {
            "url": upstream.target.to_string(),
            "timeout_seconds": seconds(upstream.timeout),
            "ca_file": upstream.ca_file.as_ref().map(|p| p.display().to_string()),
            "forwarded_headers": upstream.forwarded_headers,
        },
        "limits": {
            "max_body_bytes": limits.max_body,
            "max_buffered_bytes": limits.max_buffered,
            "header_timeout_seconds": seconds(limits.header_timeout),
            "body_timeout_seconds": seconds(limits.body_timeout),
            "max_inflight": limits.max_inflight,
            "max_connections": limits.max_connections,
            "max_headers": limits.max_headers,
            "max_header_bytes": limits.max_header_bytes,
            "shutdown_grace_seconds": seconds(limits.shutdown_grace),
        },
        "replay": {
            "store": match replay.store {
                StoreKind::Memory => "memory",
                StoreKind::Redis => "redis",
            },
            "capacity": replay.capacity,
            "ttl_seconds": seconds(replay.ttl),
            "redis_url_source": replay.redis_url.as_ref().map(|s| s.source.to_string()),
            "redis_ca_file": replay.redis_ca_file.as_ref().map(|p| p.display().to_string()),
            "redis_prefix": replay.redis_prefix,
            "redis_timeout_seconds": seconds(replay.redis_timeout),
            "on_store_error": match replay.on_store_error {
                OnStoreError::Reject => "reject",
                OnStoreError::Allow => "allow",
            },
        },
        "queue": config.queue.as_ref().map(|q| json!({
            "store": match &q.store {
                QueueBackend::Disk { .. } => "disk",
                QueueBackend::Redis(_) => "redis",
            },
            "path": match &q.store {
                QueueBackend::Disk { path } => Some(path.display().to_string()),
                QueueBackend::Redis(_) => None,
            },
            "redis": match &q.store {
                QueueBackend::Disk { .. } => None,
                QueueBackend::Redis(r) => Some(json!({
                    // Where the URL comes from, never the URL: it may carry a password.
                    "url_source": r.url.source.to_string(),
                    "shared_with_replay": r.shared_with_replay,
                    "ca_file": r.ca_file.as_ref().map(|p| p.display().to_string()),
                    "prefix": r.prefix,
                    "timeout_seconds": seconds(r.timeout),
                    "lease_seconds": seconds(r.lease),
                })),
            },
            "max_bytes": q.max_bytes,
            "max_attempts": q.max_attempts,
            "max_age_seconds": seconds(q.max_age),
            "retry_initial_seconds": seconds(q.retry_initial),
            "retry_max_seconds": seconds(q.retry_max),
            "concurrency": q.concurrency,
        })),
        "routes": routes.iter().zip(&config.routes).map(|(r, rc)| route(r, rc)).collect::<Vec<_>>(),
    })
}

fn route(r: &Route, rc: &RouteConfig) -> Value {
    let scheme = r.verifier.scheme();
    json!({
        "name": r.name,
        "path": r.pattern.as_config_str(),
        "provider": r.provider.to_string(),
        // The effective window (the configured one, else the provider's default); null when
        // the provider signs no timestamp.
        "tolerance_seconds": scheme.has_timestamp().then(|| seconds(r.verifier.tolerance())),
        "methods": r.methods.iter().map(|m| m.as_str()).collect::<Vec<_>>(),
        "mode": match r.mode {
            Mode::Enforce => "enforce",
            Mode::Shadow => "shadow",
        },
        "delivery": rc.delivery.to_string(),
        "public_url": r.public_url,
        "signs_url": scheme.signs_url(),
        "signature_headers": r.guarded.iter().map(|h| h.as_str()).collect::<Vec<_>>(),
        "secrets": rc.secrets.iter().map(secret).collect::<Vec<_>>(),
    })
}

/// A secret's label and source; its value is never read here.
fn secret(s: &Secret) -> Value {
    json!({ "label": s.label, "source": s.source.to_string() })
}

fn seconds(d: Duration) -> f64 {
    d.as_secs_f64()
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::config::{parse, Env};
    use crate::metrics::Metrics;

    const SVIX: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    const LITERAL: &str = "levanta-literal-secret-value";
    const REDIS_PASSWORD: &str = "redis-pa55word-never-shown";
    const FROM_ENV: &str = "value-of-the-env-secret";

    fn document(toml: &str, env: &Env) -> Value {
        let config = parse(toml, Path::new("t.toml"), env).expect("valid config");
        let runtime = crate::proxy::Runtime::build(&config, &Metrics::new()).expect("routes build");
        config_json(&config, runtime.routes.routes())
    }

    fn toml(secret_file: &Path) -> String {
        format!(
            r#"
[listen]
addr = "127.0.0.1:8080"
[admin]
addr = "0.0.0.0:9090"
[upstream]
url = "http://127.0.0.1:3000"
timeout = "5min"
[limits]
max_body = "2kB"
max_buffered = "1MiB"
shutdown_grace = "1m 30s"
[replay]
store = "redis"
redis_url = "redis://:{REDIS_PASSWORD}@127.0.0.1:6379/0"
[[routes]]
name = "levers"
path = "/webhooks/levers"
provider = "svix"
secrets = ["{SVIX}", "file:{}"]
tolerance = "4m"
[[routes]]
name = "levanta"
path = "/webhooks/levanta/*"
provider = "levanta"
secrets = ["{LITERAL}", "env:HG_REPORT_TEST_SECRET"]
mode = "shadow"
"#,
            secret_file.display()
        )
    }

    fn env() -> Env {
        Env::Map(
            [("HG_REPORT_TEST_SECRET".to_string(), FROM_ENV.to_string())]
                .into_iter()
                .collect(),
        )
    }

    #[test]
    fn resolved_values_are_in_bytes_and_seconds() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("svix.secret");
        std::fs::write(&file, "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD\n").expect("write");
        let doc = document(&toml(&file), &env());
        assert_eq!(doc["listen"]["addr"], "127.0.0.1:8080");
        assert_eq!(doc["admin"]["addr"], "0.0.0.0:9090");
        assert_eq!(doc["upstream"]["url"], "http://127.0.0.1:3000");
        assert_eq!(doc["upstream"]["timeout_seconds"], 300.0);
        assert_eq!(doc["limits"]["max_body_bytes"], 2000);
        assert_eq!(doc["limits"]["max_buffered_bytes"], 1 << 20);
        assert_eq!(doc["limits"]["shutdown_grace_seconds"], 90.0);
        assert_eq!(doc["replay"]["store"], "redis");
        let levers = &doc["routes"][0];
        assert_eq!(levers["provider"], "svix");
        assert_eq!(levers["tolerance_seconds"], 240.0);
        assert_eq!(levers["methods"], json!(["POST"]));
        assert_eq!(
            levers["secrets"][1]["source"],
            format!("file:{}", file.display())
        );
        let levanta = &doc["routes"][1];
        assert_eq!(levanta["path"], "/webhooks/levanta/*");
        assert_eq!(levanta["mode"], "shadow");
        assert_eq!(levanta["tolerance_seconds"], Value::Null);
        assert_eq!(levanta["secrets"][0]["source"], "literal");
        assert_eq!(levanta["secrets"][1]["source"], "env:HG_REPORT_TEST_SECRET");
    }

    #[test]
    fn no_secret_value_appears_in_the_document() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("svix.secret");
        let from_file = "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD";
        std::fs::write(&file, format!("{from_file}\n")).expect("write");
        let text = document(&toml(&file), &env()).to_string();
        for value in [SVIX, from_file, LITERAL, FROM_ENV, REDIS_PASSWORD] {
            assert!(!text.contains(value), "{value} leaked into {text}");
        }
        // Not even the base64 body of a whsec_ secret.
        assert!(!text.contains("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"));
        assert!(text.contains("redis_url_source"), "{text}");
    }
}
