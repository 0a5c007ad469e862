//! Observability from outside: the /metrics scrape, probe semantics, and logs that never leak secrets.

use std::collections::BTreeSet;
use std::io::Read;
use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crate::support::*;
use http::{Method, StatusCode};

const BODY: &[u8] = br#"{"event":"invoice.paid","amount":4200}"#;

async fn get(url: &str) -> Reply {
    send(url, Method::GET, &[], b"").await
}

fn parse(text: &str) -> prometheus_parse::Scrape {
    prometheus_parse::Scrape::parse(text.lines().map(|l| Ok(l.to_string()))).unwrap()
}

fn value(scrape: &prometheus_parse::Scrape, metric: &str, labels: &[(&str, &str)]) -> f64 {
    let matching: Vec<f64> = scrape
        .samples
        .iter()
        .filter(|s| s.metric == metric)
        .filter(|s| labels.iter().all(|(k, v)| s.labels.get(k) == Some(*v)))
        .map(|s| match s.value {
            prometheus_parse::Value::Counter(v)
            | prometheus_parse::Value::Gauge(v)
            | prometheus_parse::Value::Untyped(v) => v,
            _ => f64::NAN,
        })
        .collect();
    assert_eq!(
        matching.len(),
        1,
        "{metric}{labels:?}: {} samples",
        matching.len()
    );
    matching[0]
}

#[tokio::test]
async fn scrape_counts_every_outcome_and_reason_and_parses() {
    let upstream = Upstream::start().await;
    let gw = Gateway::start(&config(
        &upstream,
        "[limits]\nmax_body = \"1KiB\"\nmax_buffered = \"1MiB\"",
    ))
    .await;
    let url = gw.url("/webhooks/levers");
    let now = now_secs();

    // 3 genuine (one with the old secret), 2 forged, 1 stale, 2 duplicates, 1 oversized, 2 unmatched.
    for (i, secret) in [SVIX_SECRET, SVIX_SECRET, SVIX_SECRET_OLD]
        .iter()
        .enumerate()
    {
        let h = svix_headers(secret, &format!("msg_m{i}"), now, BODY, "svix-");
        assert_eq!(post(&url, &h, BODY).await.status, StatusCode::OK);
    }
    let forged = svix_headers(
        "whsec_dGhpcyBpcyBub3QgdGhlIGtleQ==",
        "msg_f",
        now,
        BODY,
        "svix-",
    );
    for _ in 0..2 {
        assert_eq!(
            post(&url, &forged, BODY).await.status,
            StatusCode::UNAUTHORIZED
        );
    }
    let stale = svix_headers(SVIX_SECRET, "msg_s", now - 3600, BODY, "svix-");
    assert_eq!(
        post(&url, &stale, BODY).await.status,
        StatusCode::UNAUTHORIZED
    );
    let dup = svix_headers(SVIX_SECRET, "msg_m0", now, BODY, "svix-");
    for _ in 0..2 {
        assert_eq!(post(&url, &dup, BODY).await.status, StatusCode::OK);
    }
    let big = vec![b'a'; 4096];
    let r = post(
        &gw.url("/webhooks/levanta"),
        &levanta_headers(LEVANTA_SECRET, &big),
        &big,
    )
    .await;
    assert_eq!(r.status, StatusCode::PAYLOAD_TOO_LARGE);
    for p in ["/", "/admin"] {
        assert_eq!(
            post(&gw.url(p), &[], b"").await.status,
            StatusCode::NOT_FOUND
        );
    }
    // Upstream failure: the application answers 503, then goes away entirely.
    upstream.answer_status(503);
    let h = svix_headers(SVIX_SECRET, "msg_up", now, BODY, "svix-");
    assert_eq!(
        post(&url, &h, BODY).await.status,
        StatusCode::SERVICE_UNAVAILABLE
    );

    let scrape = get(&format!("http://{}/metrics", gw.admin.unwrap())).await;
    assert_eq!(scrape.status, StatusCode::OK);
    assert!(scrape.headers["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/plain"));
    let text = scrape.text();
    let m = parse(&text);
    let req = |route, outcome| {
        value(
            &m,
            "hookgate_requests_total",
            &[("route", route), ("outcome", outcome)],
        )
    };
    let rej = |route, reason| {
        value(
            &m,
            "hookgate_rejections_total",
            &[("route", route), ("reason", reason)],
        )
    };
    // The app's own 503 is forwarded: it is the application's answer, not hookgate's.
    assert_eq!(req("levers", "forwarded"), 4.0);
    assert_eq!(req("levers", "rejected"), 3.0);
    assert_eq!(req("levers", "duplicate"), 2.0);
    assert_eq!(req("levers", "upstream_error"), 0.0);
    assert_eq!(req("levanta", "rejected"), 1.0);
    assert_eq!(req("unmatched", "rejected"), 2.0);
    assert_eq!(rej("levers", "invalid_signature"), 2.0);
    assert_eq!(rej("levers", "stale_timestamp"), 1.0);
    assert_eq!(rej("levanta", "body_too_large"), 1.0);
    assert_eq!(rej("unmatched", "no_route"), 2.0);
    assert_eq!(
        rej("leaflink", "invalid_signature"),
        0.0,
        "series exist at zero"
    );
    let class = |c| {
        value(
            &m,
            "hookgate_upstream_responses_total",
            &[("route", "levers"), ("class", c)],
        )
    };
    assert_eq!(class("2xx"), 3.0);
    assert_eq!(class("5xx"), 1.0);
    let secret = |s| {
        value(
            &m,
            "hookgate_secret_matches_total",
            &[("route", "levers"), ("secret", s)],
        )
    };
    assert_eq!(
        secret("0"),
        5.0,
        "two genuine, two duplicates and the one the app refused"
    );
    assert_eq!(secret("1"), 1.0);
    assert_eq!(value(&m, "hookgate_inflight_requests", &[]), 0.0);
    assert_eq!(value(&m, "hookgate_replay_entries", &[]), 3.0);
    assert!(
        text.contains("hookgate_request_duration_seconds_bucket{route=\"levers\",le=\"0.005\"}")
    );
    assert!(
        text.contains("hookgate_upstream_duration_seconds_bucket{route=\"levers\",le=\"+Inf\"} 4")
    );
    assert!(text.contains("# TYPE hookgate_request_duration_seconds histogram"));
    assert!(text.contains("hookgate_tls_handshake_errors_total 0"));
    assert!(text.contains("hookgate_config_reloads_total{result=\"failure\"} 0"));
    assert!(
        text.contains("process_resident_memory_bytes"),
        "standard process metrics"
    );

    // Now the application is down: 502, counted as an upstream error.
    upstream.stop();
    let gw2 = Gateway::start(&config(&upstream, "")).await;
    let h = svix_headers(SVIX_SECRET, "msg_down", now, BODY, "svix-");
    assert_eq!(
        post(&gw2.url("/webhooks/levers"), &h, BODY).await.status,
        StatusCode::BAD_GATEWAY
    );
    let m2 = parse(
        &get(&format!("http://{}/metrics", gw2.admin.unwrap()))
            .await
            .text(),
    );
    assert_eq!(
        value(
            &m2,
            "hookgate_requests_total",
            &[("route", "levers"), ("outcome", "upstream_error")]
        ),
        1.0
    );
    assert_eq!(
        value(
            &m2,
            "hookgate_rejections_total",
            &[("route", "levers"), ("reason", "upstream_unavailable")]
        ),
        1.0
    );
}

fn series(text: &str) -> BTreeSet<String> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .filter_map(|l| l.rsplit_once(' ').map(|(name, _)| name.to_string()))
        .filter(|s| !s.starts_with("process_"))
        .collect()
}

#[tokio::test]
async fn unknown_paths_create_no_new_series() {
    let upstream = Upstream::start().await;
    let gw = Gateway::start(&config(&upstream, "")).await;
    let metrics = format!("http://{}/metrics", gw.admin.unwrap());
    post(&gw.url("/nothing"), &[], b"").await;
    let before = series(&get(&metrics).await.text());
    for i in 0..40 {
        let path = match i % 5 {
            0 => format!("/scan/{i}"),
            1 => format!("/webhooks/levers/{i}"),
            2 => format!("/webhooks/levers?x={i}"),
            3 => format!("/%2e%2e/etc/passwd{i}"),
            _ => format!("/{}", "a".repeat(i * 10)),
        };
        let r = send(&gw.url(&path), Method::POST, &[], b"x").await;
        assert!(
            r.status == StatusCode::NOT_FOUND
                || r.status == StatusCode::UNAUTHORIZED
                || r.status == StatusCode::BAD_REQUEST,
            "{path}: {}",
            r.status
        );
    }
    let after = series(&get(&metrics).await.text());
    assert_eq!(before, after, "a request created a series");
}

#[tokio::test]
async fn probes_follow_start_and_drain() {
    // Before the public listener is bound: not ready.
    let metrics = Arc::new(hookgate::metrics::Metrics::new());
    let store = Arc::new(hookgate::replay::Store::Memory(
        hookgate::replay::MemoryStore::new(10, Duration::from_secs(60), Duration::from_secs(30)),
    ));
    let health = Arc::new(hookgate::admin::Health::default());
    let admin = Arc::new(hookgate::admin::Admin {
        metrics,
        store,
        health: health.clone(),
        queue: None,
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (_tx, rx) = tokio::sync::watch::channel(false);
    tokio::spawn(admin.serve(listener, std::time::Duration::from_secs(10), rx));
    assert_eq!(
        get(&format!("http://{addr}/readyz")).await.status,
        StatusCode::SERVICE_UNAVAILABLE
    );
    assert_eq!(
        get(&format!("http://{addr}/healthz")).await.status,
        StatusCode::OK
    );
    health.set_bound();
    assert_eq!(
        get(&format!("http://{addr}/readyz")).await.status,
        StatusCode::OK
    );

    // A real gateway: ready once started, 503 while draining a slow request, then gone.
    let upstream = Upstream::start().await;
    upstream.answer_with(Answer {
        delay: Duration::from_millis(1500),
        ..Answer::default()
    });
    // The app holds the request well inside the upstream timeout, even on a loaded machine.
    let gw =
        Gateway::start(&config(&upstream, "").replace("timeout = \"2s\"", "timeout = \"20s\""))
            .await;
    let admin = gw.admin.unwrap();
    assert_eq!(
        get(&format!("http://{admin}/readyz")).await.status,
        StatusCode::OK
    );
    assert_eq!(
        get(&format!("http://{admin}/healthz")).await.status,
        StatusCode::OK
    );
    let h = svix_headers(SVIX_SECRET, "msg_drain", now_secs(), BODY, "svix-");
    let url = gw.url("/webhooks/levers");
    let slow = tokio::spawn(async move { post(&url, &h, BODY).await });
    eventually(|| upstream.count() == 1).await;
    gw.running.shutdown();
    let ready = get(&format!("http://{admin}/readyz")).await;
    assert_eq!(ready.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(ready.text(), "draining\n");
    assert_eq!(
        get(&format!("http://{admin}/healthz")).await.status,
        StatusCode::OK
    );
    assert_eq!(
        slow.await.unwrap().status,
        StatusCode::OK,
        "the in-flight request completes"
    );
    gw.running.wait().await;
}

#[test]
fn logs_never_contain_the_secret_the_signature_or_the_body_even_at_debug() {
    let secret = "whsec_c2VjcmV0LWtleS1tYXRlcmlhbC0xMjM0NTY3OA==";
    let body = br#"{"card":"4242424242424242","note":"BODY-MARKER-7d1f"}"#;
    let rt = tokio::runtime::Runtime::new().unwrap();
    let upstream = rt.block_on(Upstream::start());
    let dir = tempfile::tempdir().unwrap();
    let secret_file = dir.path().join("levers.secret");
    std::fs::write(&secret_file, format!("{secret}\n")).unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let toml = format!(
        "[listen]\naddr = \"127.0.0.1:{port}\"\n[upstream]\nurl = \"{}\"\n[[routes]]\nname = \"levers\"\npath = \"/h\"\nprovider = \"svix\"\nsecrets = [\"file:{}\", \"{secret}\"]\n",
        upstream.url(),
        secret_file.display()
    );
    let cfg = dir.path().join("hookgate.toml");
    std::fs::write(&cfg, toml).unwrap();
    // A gateway of its own for the test's length: the fault run waits for it.
    let _shared = crate::support::alone::shared();
    for format in ["json", "text"] {
        let mut child = Command::new(env!("CARGO_BIN_EXE_hookgate"))
            .args(["run", "--log-format", format, "--config"])
            .arg(&cfg)
            .env("HOOKGATE_LOG", "trace")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let url = format!("http://127.0.0.1:{port}/h");
        let genuine = svix_headers(
            secret,
            &format!("msg_log_{format}"),
            now_secs(),
            body,
            "svix-",
        );
        let signature = genuine[2].1.clone();
        let forged = svix_headers(
            "whsec_b3RoZXI=",
            "msg_log_forged",
            now_secs(),
            body,
            "svix-",
        );
        rt.block_on(async {
            for _ in 0..100 {
                if tokio::net::TcpStream::connect(("127.0.0.1", port))
                    .await
                    .is_ok()
                {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            assert_eq!(post(&url, &genuine, body).await.status, StatusCode::OK);
            assert_eq!(post(&url, &genuine, body).await.status, StatusCode::OK);
            assert_eq!(
                post(&url, &forged, body).await.status,
                StatusCode::UNAUTHORIZED
            );
        });
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(child.id().to_string())
            .status();
        let status = child.wait().unwrap();
        assert!(status.success(), "{status:?}");
        let mut out = String::new();
        child
            .stdout
            .take()
            .unwrap()
            .read_to_string(&mut out)
            .unwrap();
        child
            .stderr
            .take()
            .unwrap()
            .read_to_string(&mut out)
            .unwrap();
        assert!(
            out.contains("msg_log_"),
            "the request log line carries the message id: {out}"
        );
        assert!(out.contains("duplicate"), "outcomes are logged");
        let b64_key = &secret["whsec_".len()..];
        for needle in [
            secret,
            b64_key,
            &signature,
            &signature[3..],
            "BODY-MARKER-7d1f",
            "4242424242424242",
        ] {
            assert!(!out.contains(needle), "{format} logs leak {needle:?}");
        }
    }
}

/// A "slow app" that accepts connections, reads what comes and never answers; dropped, it is down
/// (its port refuses). Returns the port and a switch that takes it down.
async fn hanging_app() -> (
    SocketAddr,
    tokio::sync::oneshot::Sender<()>,
    Arc<AtomicUsize>,
) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (down, mut down_rx) = tokio::sync::oneshot::channel::<()>();
    let held = Arc::new(AtomicUsize::new(0));
    let counter = held.clone();
    tokio::spawn(async move {
        let mut open = Vec::new();
        loop {
            tokio::select! {
                _ = &mut down_rx => break,
                accepted = listener.accept() => {
                    let Ok((stream, _)) = accepted else { continue };
                    counter.fetch_add(1, Ordering::SeqCst);
                    open.push(stream);
                }
            }
        }
        // Listener and connections dropped together: the app is gone.
    });
    (addr, down, held)
}

/// Readiness is the gateway's own (listeners bound, replay store answering), never the application's:
/// with a queue route, an application that hangs and then is down leaves `/readyz` at 200 and every
/// verified request answered 202 at once, while the deliveries wait, time out and are retried.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readyz_stays_200_and_queued_requests_get_202_while_the_app_hangs_or_is_down() {
    let (app, take_down, held) = hanging_app().await;
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("hookgate.toml");
    std::fs::write(
        &config,
        format!(
            r#"
[listen]
addr = "127.0.0.1:0"
[admin]
addr = "127.0.0.1:0"
[upstream]
url = "http://{app}"
timeout = "30s"
[queue]
path = "{}"
concurrency = 4
retry_initial = "100ms"
retry_max = "500ms"
[[routes]]
name = "levers"
path = "/webhooks/levers"
provider = "svix"
secrets = ["{SVIX_SECRET}"]
delivery = "queue"
[[routes]]
name = "other"
path = "/webhooks/other"
provider = "svix"
secrets = ["{SVIX_SECRET}"]
delivery = "queue"
"#,
            dir.path().join("queue").display()
        ),
    )
    .unwrap();
    let gw = crate::support::child::Hookgate::start(&config).await;
    gw.wait_ready().await;
    let admin = gw.admin.unwrap();

    // /readyz and /healthz polled all along, each answer timed.
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let probes = {
        let stop = stop.clone();
        tokio::spawn(async move {
            let mut seen = Vec::new();
            while !stop.load(Ordering::SeqCst) {
                for path in ["/readyz", "/healthz"] {
                    let t = std::time::Instant::now();
                    let r = get(&format!("http://{admin}{path}")).await;
                    seen.push((path, r.status, t.elapsed()));
                }
                tokio::time::sleep(Duration::from_millis(25)).await;
            }
            seen
        })
    };
    let burst = |from: usize, n: usize| {
        let base = gw.url("");
        async move {
            let mut tasks = tokio::task::JoinSet::new();
            for i in from..from + n {
                let url = format!(
                    "{base}/webhooks/{}",
                    if i % 2 == 0 { "levers" } else { "other" }
                );
                tasks.spawn(async move {
                    let body = format!(r#"{{"n":{i}}}"#);
                    let h = svix_headers(
                        SVIX_SECRET,
                        &format!("msg_slow_app_{i}"),
                        now_secs(),
                        body.as_bytes(),
                        "svix-",
                    );
                    let t = std::time::Instant::now();
                    let r = post(&url, &h, body.as_bytes()).await;
                    (i, r.status, t.elapsed())
                });
            }
            let mut out = Vec::new();
            while let Some(r) = tasks.join_next().await {
                out.push(r.unwrap());
            }
            out
        }
    };
    let check = |answers: &[(usize, StatusCode, Duration)]| {
        for (i, status, took) in answers {
            assert_eq!(*status, StatusCode::ACCEPTED, "request {i}");
            // Acceptance is a group commit, not a wait on the app (which holds it for 30 s).
            assert!(*took < Duration::from_secs(5), "request {i} took {took:?}");
        }
    };

    // The app hangs: each route's head is in flight to it, held, and the rest wait behind.
    check(&burst(0, 40).await);
    eventually(|| held.load(Ordering::SeqCst) >= 2).await;
    check(&burst(40, 20).await);
    assert_eq!(
        get(&format!("http://{admin}/readyz")).await.status,
        StatusCode::OK
    );

    // The app is down: deliveries fail fast and are retried; acceptance and readiness do not notice.
    take_down.send(()).unwrap();
    check(&burst(60, 20).await);
    let metrics = format!("http://{admin}/metrics");
    let mut depth = 0.0;
    for _ in 0..200 {
        let scrape = parse(&get(&metrics).await.text());
        depth = value(&scrape, "hookgate_queue_depth", &[("route", "levers")])
            + value(&scrape, "hookgate_queue_depth", &[("route", "other")]);
        let failed = value(
            &scrape,
            "hookgate_queue_attempts_total",
            &[("route", "levers"), ("result", "failed")],
        );
        if depth == 80.0 && failed > 0.0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(depth, 80.0, "every 202 is stored, none delivered");
    // A second of retries against the refusing port, probed all along.
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(
        get(&format!("http://{admin}/readyz")).await.status,
        StatusCode::OK
    );

    stop.store(true, Ordering::SeqCst);
    let seen = probes.await.unwrap();
    assert!(seen.len() >= 10, "only {} probes", seen.len());
    for (path, status, took) in &seen {
        assert_eq!(
            *status,
            StatusCode::OK,
            "{path} while the app hung or was down"
        );
        assert!(*took < Duration::from_secs(2), "{path} took {took:?}");
    }
}
