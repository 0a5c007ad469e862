//! `hookgate check --json` from outside: the resolved configuration a deploy check reads (sizes in
//! bytes, durations in seconds, secret sources), and never a secret's value, on stdout or stderr.

use std::process::Command;

const LITERAL: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
const IN_FILE: &str = "levanta-secret-from-a-file";
const IN_ENV: &str = "leaflink-secret-from-the-env";
const REDIS_PASSWORD: &str = "redis-pa55-from-the-url";

#[test]
fn check_json_prints_resolved_values_and_secret_sources_but_no_secret() {
    let dir = tempfile::tempdir().unwrap();
    let secret_file = dir.path().join("levanta.secret");
    std::fs::write(&secret_file, format!("{IN_FILE}\n")).unwrap();
    let config = dir.path().join("hookgate.toml");
    std::fs::write(
        &config,
        format!(
            r#"
[listen]
addr = "0.0.0.0:8443"
[admin]
addr = "0.0.0.0:9090"
[upstream]
url = "http://127.0.0.1:3000"
timeout = "5min"
[limits]
max_body = "2kB"
max_buffered = "25MiB"
shutdown_grace = "20s"
[replay]
store = "redis"
redis_url = "redis://:{REDIS_PASSWORD}@127.0.0.1:6379/0"
[queue]
store = "redis"
redis_lease = "15s"
[[routes]]
name = "levers"
path = "/webhooks/levers"
provider = "svix"
secrets = ["{LITERAL}"]
[[routes]]
name = "levanta"
path = "/webhooks/levanta"
provider = "levanta"
secrets = ["file:{}"]
[[routes]]
name = "leaflink"
path = "/webhooks/leaflink/*"
provider = "leaflink"
secrets = ["env:HG_CHECK_JSON_SECRET"]
"#,
            secret_file.display()
        ),
    )
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_hookgate"))
        .args(["check", "--json", "--config"])
        .arg(&config)
        .env("HG_CHECK_JSON_SECRET", IN_ENV)
        .env("HOOKGATE_LOG", "trace")
        .output()
        .unwrap();
    let stdout = String::from_utf8(out.stdout).unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    for value in [
        LITERAL,
        "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
        IN_FILE,
        IN_ENV,
        REDIS_PASSWORD,
    ] {
        assert!(!stdout.contains(value), "{value} on stdout: {stdout}");
        assert!(!stderr.contains(value), "{value} on stderr: {stderr}");
    }
    let doc: serde_json::Value = serde_json::from_str(&stdout).expect("one JSON document");
    assert_eq!(doc["listen"]["addr"], "0.0.0.0:8443");
    assert_eq!(doc["admin"]["addr"], "0.0.0.0:9090");
    assert_eq!(doc["upstream"]["url"], "http://127.0.0.1:3000");
    assert_eq!(doc["upstream"]["timeout_seconds"], 300.0);
    assert_eq!(doc["limits"]["max_body_bytes"], 2000);
    assert_eq!(doc["limits"]["max_buffered_bytes"], 25 << 20);
    assert_eq!(doc["limits"]["shutdown_grace_seconds"], 20.0);
    assert_eq!(doc["replay"]["store"], "redis");
    assert_eq!(doc["replay"]["redis_url_source"], "literal");
    // The queue shares the replay store's Redis: where its URL comes from, never the URL.
    assert_eq!(doc["queue"]["store"], "redis");
    assert_eq!(doc["queue"]["path"], serde_json::Value::Null);
    assert_eq!(doc["queue"]["redis"]["shared_with_replay"], true);
    assert_eq!(doc["queue"]["redis"]["url_source"], "literal");
    assert_eq!(doc["queue"]["redis"]["prefix"], "hookgate");
    assert_eq!(doc["queue"]["redis"]["lease_seconds"], 15.0);
    let routes = doc["routes"].as_array().unwrap();
    let sources: Vec<&str> = routes
        .iter()
        .map(|r| r["secrets"][0]["source"].as_str().unwrap())
        .collect();
    assert_eq!(
        sources,
        [
            "literal".to_string(),
            format!("file:{}", secret_file.display()),
            "env:HG_CHECK_JSON_SECRET".to_string(),
        ]
    );
    assert_eq!(routes[0]["tolerance_seconds"], 300.0, "svix's default");
    assert_eq!(routes[2]["path"], "/webhooks/leaflink/*");
}
