//! The Redis replay store across replicas: real redis-server processes, real hookgates, one recording app.
//!
//! Each test starts its own `redis-server` on a free loopback port (no
//! persistence) and stops it on drop. Several hookgates share it, as sidecars
//! of one application's replicas would, and share one recording upstream, so
//! "reached the application" is counted once for all of them.

use std::collections::HashMap;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use crate::support::child::{Hookgate, Launch};
use crate::support::redis::{free_port, Redis};
use crate::support::*;
use http::{Method, StatusCode};

const BODY: &[u8] = br#"{"type":"invoice.paid","data":{"id":"inv_42"}}"#;
const ROUTE: &str = "/webhooks/levers";

fn redis_config(upstream: &Upstream, redis: &Redis, on_error: &str) -> String {
    config(
        upstream,
        &format!(
            "[replay]\nstore = \"redis\"\nredis_url = \"{}\"\nredis_prefix = \"hg-test\"\nredis_timeout = \"500ms\"\non_store_error = \"{on_error}\"\n",
            redis.url()
        ),
    )
}

fn headers(id: &str) -> Vec<(String, String)> {
    svix_headers(SVIX_SECRET, id, now_secs(), BODY, "svix-")
}

async fn deliver(gw: &Gateway, id: &str) -> Reply {
    post(&gw.url(ROUTE), &headers(id), BODY).await
}

async fn get(url: &str) -> Reply {
    send(url, Method::GET, &[], b"").await
}

async fn readyz(gw: &Gateway) -> StatusCode {
    get(&format!("http://{}/readyz", gw.admin.unwrap()))
        .await
        .status
}

/// One sample of the gateway's own /metrics, e.g. `hookgate_replay_store_errors_total{op="claim"}`.
async fn metric(gw: &Gateway, series: &str) -> f64 {
    let text = get(&format!("http://{}/metrics", gw.admin.unwrap()))
        .await
        .text();
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.trim().parse().ok())
        .unwrap_or_else(|| panic!("{series} not exported:\n{text}"))
}

/// How often the application received each svix id (the `levers` route).
fn reached(upstream: &Upstream) -> HashMap<String, usize> {
    let mut n = HashMap::new();
    for r in upstream.received() {
        if let Some(id) = r.headers.get("svix-id") {
            *n.entry(id.to_str().unwrap().to_string()).or_insert(0) += 1;
        }
    }
    n
}

/// The invariant: every id the provider got a 2xx for reached the application exactly once.
fn assert_accepted_ids_reached_app_once(upstream: &Upstream, accepted: &[&str]) {
    let n = reached(upstream);
    for id in accepted {
        assert_eq!(
            n.get(*id).copied().unwrap_or(0),
            1,
            "{id} reached the app {n:?}"
        );
    }
}

fn is_duplicate(r: &Reply) -> bool {
    r.status == StatusCode::OK && r.text() == r#"{"status":"duplicate"}"#
}

#[tokio::test]
async fn a_delivery_through_one_instance_is_a_duplicate_through_the_other() {
    let redis = Redis::start().await;
    let app = Upstream::start().await;
    let a = Gateway::start(&redis_config(&app, &redis, "reject")).await;
    let b = Gateway::start(&redis_config(&app, &redis, "reject")).await;
    assert_eq!(readyz(&a).await, StatusCode::OK);

    let first = deliver(&a, "msg_shared_1").await;
    assert_eq!(first.status, StatusCode::OK);
    assert_eq!(
        first.text(),
        r#"{"ok":true}"#,
        "the application's own answer"
    );
    for gw in [&b, &a, &b] {
        let again = deliver(gw, "msg_shared_1").await;
        assert!(is_duplicate(&again), "{} {}", again.status, again.text());
    }
    // Another id is not affected; the same id on another route is another entry.
    assert_eq!(deliver(&b, "msg_shared_2").await.status, StatusCode::OK);
    let stdwh = svix_headers(SVIX_SECRET, "msg_shared_1", now_secs(), BODY, "webhook-");
    let other_route = post(&b.url("/webhooks/stdwh"), &stdwh, BODY).await;
    assert_eq!(other_route.text(), r#"{"ok":true}"#);

    assert_eq!(app.count(), 3);
    assert_accepted_ids_reached_app_once(&app, &["msg_shared_1", "msg_shared_2"]);
    assert!(
        metric(
            &a,
            "hookgate_replay_store_duration_seconds_count{op=\"claim\"}"
        )
        .await
            >= 2.0
    );
    assert_eq!(
        metric(&a, "hookgate_replay_store_errors_total{op=\"claim\"}").await,
        0.0
    );
}

#[tokio::test]
async fn in_flight_on_one_instance_is_409_on_the_other_then_a_duplicate() {
    let redis = Redis::start().await;
    let app = Upstream::start().await;
    // The app holds the request 3 s (within a 10 s upstream.timeout): ample
    // time for the other instance's attempt, even on a loaded machine.
    let toml =
        redis_config(&app, &redis, "reject").replace("timeout = \"2s\"", "timeout = \"10s\"");
    assert!(toml.contains("timeout = \"10s\""));
    let a = Gateway::start(&toml).await;
    let b = Gateway::start(&toml).await;
    app.answer_with(Answer {
        delay: Duration::from_secs(3),
        ..Answer::default()
    });

    let url = a.url(ROUTE);
    let h = headers("msg_inflight");
    let held = tokio::spawn(async move { post(&url, &h, BODY).await });
    eventually(|| app.count() == 1).await;

    let meanwhile = deliver(&b, "msg_inflight").await;
    assert_eq!(meanwhile.status, StatusCode::CONFLICT);
    assert_eq!(meanwhile.text(), r#"{"error":"in_flight"}"#);

    let first = held.await.unwrap();
    assert_eq!(first.status, StatusCode::OK);
    assert!(is_duplicate(&deliver(&b, "msg_inflight").await));
    assert_eq!(app.count(), 1);
    assert_accepted_ids_reached_app_once(&app, &["msg_inflight"]);
}

#[tokio::test]
async fn an_application_500_through_one_instance_lets_the_retry_through_the_other() {
    let redis = Redis::start().await;
    let app = Upstream::start().await;
    let a = Gateway::start(&redis_config(&app, &redis, "reject")).await;
    let b = Gateway::start(&redis_config(&app, &redis, "reject")).await;

    app.answer_status(500);
    let failed = deliver(&a, "msg_retry").await;
    assert_eq!(failed.status, StatusCode::INTERNAL_SERVER_ERROR);

    app.answer_status(200);
    let retried = deliver(&b, "msg_retry").await;
    assert_eq!(retried.status, StatusCode::OK);
    assert_eq!(retried.text(), r#"{"ok":true}"#);
    assert!(is_duplicate(&deliver(&a, "msg_retry").await));
    assert_eq!(reached(&app)["msg_retry"], 2, "the 500 and the retry");
}

#[tokio::test]
async fn concurrent_copies_across_two_instances_reach_the_app_once() {
    let redis = Redis::start().await;
    let app = Upstream::start().await;
    let a = Gateway::start(&redis_config(&app, &redis, "reject")).await;
    let b = Gateway::start(&redis_config(&app, &redis, "reject")).await;
    app.answer_with(Answer {
        delay: Duration::from_millis(300),
        ..Answer::default()
    });

    let h = headers("msg_race");
    let mut tasks = Vec::new();
    for i in 0..16 {
        let url = if i % 2 == 0 {
            a.url(ROUTE)
        } else {
            b.url(ROUTE)
        };
        let h = h.clone();
        tasks.push(tokio::spawn(async move { post(&url, &h, BODY).await }));
    }
    let mut forwarded = 0;
    for t in tasks {
        let r = t.await.unwrap();
        match r.status {
            StatusCode::OK if is_duplicate(&r) => {}
            StatusCode::OK => forwarded += 1,
            StatusCode::CONFLICT => {}
            other => panic!("unexpected {other}: {}", r.text()),
        }
    }
    assert_eq!(forwarded, 1);
    assert_accepted_ids_reached_app_once(&app, &["msg_race"]);
}

#[tokio::test]
async fn redis_down_with_reject_answers_503_forwards_nothing_and_recovers_without_restart() {
    let mut redis = Redis::start().await;
    let app = Upstream::start().await;
    let gw = Gateway::start(&redis_config(&app, &redis, "reject")).await;
    assert_eq!(deliver(&gw, "msg_before").await.status, StatusCode::OK);

    redis.kill();
    for i in 0..3 {
        let r = deliver(&gw, &format!("msg_during_{i}")).await;
        assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(r.text(), r#"{"error":"replay_store_unavailable"}"#);
        assert!(r.headers.contains_key("retry-after"));
    }
    assert_eq!(app.count(), 1, "nothing forwarded while the store was down");
    assert_eq!(readyz(&gw).await, StatusCode::SERVICE_UNAVAILABLE);
    assert!(metric(&gw, "hookgate_replay_store_errors_total{op=\"claim\"}").await >= 3.0);
    assert_eq!(
        metric(
            &gw,
            "hookgate_rejections_total{reason=\"replay_store_unavailable\",route=\"levers\"}"
        )
        .await,
        3.0
    );

    // Redis comes back on the same address: the provider's retries go through
    // and dedup works again, with no restart of hookgate.
    redis.restart().await;
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let r = deliver(&gw, "msg_during_0").await;
        if r.status == StatusCode::OK {
            assert_eq!(r.text(), r#"{"ok":true}"#);
            break;
        }
        assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE, "{}", r.text());
        assert!(
            Instant::now() < deadline,
            "no recovery after redis returned"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(is_duplicate(&deliver(&gw, "msg_during_0").await));
    assert_eq!(readyz(&gw).await, StatusCode::OK);
    assert_eq!(app.count(), 2);
    assert_accepted_ids_reached_app_once(&app, &["msg_before", "msg_during_0"]);
}

#[tokio::test]
async fn redis_down_with_allow_forwards_unchecked_and_counts_it() {
    let mut redis = Redis::start().await;
    let app = Upstream::start().await;
    let gw = Gateway::start(&redis_config(&app, &redis, "allow")).await;
    assert_eq!(deliver(&gw, "msg_ok").await.status, StatusCode::OK);
    assert!(is_duplicate(&deliver(&gw, "msg_ok").await));

    redis.kill();
    let before = metric(&gw, "hookgate_replay_store_errors_total{op=\"claim\"}").await;
    // No replay check while Redis is away: that is what `allow` trades.
    for _ in 0..2 {
        let r = deliver(&gw, "msg_unchecked").await;
        assert_eq!(r.status, StatusCode::OK);
        assert_eq!(r.text(), r#"{"ok":true}"#);
    }
    assert_eq!(reached(&app)["msg_unchecked"], 2);
    let after = metric(&gw, "hookgate_replay_store_errors_total{op=\"claim\"}").await;
    assert!(after - before >= 2.0, "{before} -> {after}");
    // Redis answered once since start, and hookgate serves without it: still
    // ready, so an outage of the shared Redis does not pull every pod.
    assert_eq!(readyz(&gw).await, StatusCode::OK);

    redis.restart().await;
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut i = 0;
    let checked = loop {
        // A fresh id each round: while hookgate is reconnecting, copies still
        // go through unchecked.
        let id = format!("msg_after_{i}");
        assert_eq!(deliver(&gw, &id).await.status, StatusCode::OK);
        if is_duplicate(&deliver(&gw, &id).await) {
            break id;
        }
        assert!(Instant::now() < deadline, "dedup never came back");
        tokio::time::sleep(Duration::from_millis(200)).await;
        i += 1;
    };
    assert!(is_duplicate(&deliver(&gw, &checked).await));
    assert_accepted_ids_reached_app_once(&app, &["msg_ok", &checked]);
}

#[tokio::test]
async fn with_allow_readiness_still_waits_for_the_first_answer_from_redis() {
    let port = free_port();
    let app = Upstream::start().await;
    let toml = config(
        &app,
        &format!(
            "[replay]\nstore = \"redis\"\nredis_url = \"redis://127.0.0.1:{port}/0\"\non_store_error = \"allow\"\n"
        ),
    );
    let gw = Gateway::start(&toml).await;
    // A wrong redis_url must stop a rollout, even with `allow`.
    assert_eq!(readyz(&gw).await, StatusCode::SERVICE_UNAVAILABLE);
    let mut redis = Redis::start_on(port).await;
    let deadline = Instant::now() + Duration::from_secs(30);
    while readyz(&gw).await != StatusCode::OK {
        assert!(Instant::now() < deadline, "never ready");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    redis.kill();
    assert_eq!(readyz(&gw).await, StatusCode::OK);
    assert!(metric(&gw, "hookgate_replay_store_errors_total{op=\"ping\"}").await >= 1.0);
}

#[tokio::test]
async fn hookgate_starts_while_redis_is_down_and_becomes_ready_when_it_answers() {
    let port = free_port();
    let app = Upstream::start().await;
    let absent = format!("redis://127.0.0.1:{port}/0");
    let toml = config(
        &app,
        &format!("[replay]\nstore = \"redis\"\nredis_url = \"{absent}\"\n"),
    );
    let gw = Gateway::start(&toml).await;
    assert_eq!(readyz(&gw).await, StatusCode::SERVICE_UNAVAILABLE);
    let r = deliver(&gw, "msg_early").await;
    assert_eq!(
        r.status,
        StatusCode::SERVICE_UNAVAILABLE,
        "reject is the default"
    );
    assert_eq!(app.count(), 0);

    let _redis = Redis::start_on(port).await;
    let deadline = Instant::now() + Duration::from_secs(30);
    while readyz(&gw).await != StatusCode::OK {
        assert!(Instant::now() < deadline, "readyz never became 200");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(deliver(&gw, "msg_early").await.status, StatusCode::OK);
    assert!(is_duplicate(&deliver(&gw, "msg_early").await));
    assert_accepted_ids_reached_app_once(&app, &["msg_early"]);
}

/// The real binary (so that it can be SIGKILLed mid-request) from `toml`, once `/readyz` says
/// it reaches Redis.
async fn process(dir: &Path, toml: &str, env: &[(&str, &str)]) -> Hookgate {
    let path = dir.join("hookgate.toml");
    std::fs::write(&path, toml).unwrap();
    let env = env.iter().map(|(k, v)| (k.to_string(), v.to_string()));
    let launch = Launch {
        env: env.collect(),
        ..Launch::default()
    };
    let gw = Hookgate::launch(&path, launch).await;
    gw.wait_ready().await;
    gw
}

#[tokio::test]
async fn a_hookgate_killed_mid_request_blocks_the_id_only_until_its_lease_lapses() {
    let redis = Redis::start().await;
    let app = Upstream::start().await;
    let dir = tempfile::tempdir().unwrap();
    // upstream.timeout 5s -> the claim's lease is 5s + 5s margin. The kill
    // must land within those 5 s, or the dead-to-be instance's own timeout
    // would release the claim first.
    let toml = redis_config(&app, &redis, "reject").replace("timeout = \"2s\"", "timeout = \"5s\"");
    assert!(toml.contains("timeout = \"5s\""));
    let mut doomed = process(dir.path(), &toml, &[]).await;
    let survivor = Gateway::start(&toml).await;

    app.answer_with(Answer {
        delay: Duration::from_secs(60),
        ..Answer::default()
    });
    let url = format!("http://{}{ROUTE}", doomed.addr);
    let h = headers("msg_orphan");
    let lost = tokio::spawn(async move {
        let client =
            hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
                .build_http::<http_body_util::Full<bytes::Bytes>>();
        let mut req =
            http::Request::new(http_body_util::Full::new(bytes::Bytes::from_static(BODY)));
        *req.method_mut() = Method::POST;
        *req.uri_mut() = url.parse().unwrap();
        for (k, v) in &h {
            req.headers_mut().insert(
                http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                v.parse().unwrap(),
            );
        }
        client.request(req).await.map(|r| r.status())
    });
    eventually(|| app.count() == 1).await;
    let killed_at = Instant::now();
    doomed.kill9();
    assert!(
        lost.await.unwrap().is_err(),
        "the provider saw the connection die"
    );
    app.answer_with(Answer::default());

    // The dead instance's claim still holds the id for the rest of its lease...
    let blocked = deliver(&survivor, "msg_orphan").await;
    assert_eq!(blocked.status, StatusCode::CONFLICT, "{}", blocked.text());
    // ...and the provider's retry goes through once it lapses.
    let deadline = Instant::now() + Duration::from_secs(40);
    let through = loop {
        let r = deliver(&survivor, "msg_orphan").await;
        if r.status != StatusCode::CONFLICT {
            break r;
        }
        assert!(Instant::now() < deadline, "the orphaned claim never lapsed");
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    assert_eq!(through.status, StatusCode::OK);
    assert_eq!(through.text(), r#"{"ok":true}"#);
    assert!(
        killed_at.elapsed() >= Duration::from_secs(5),
        "lapsed after {:?}, before the lease could have",
        killed_at.elapsed()
    );
    assert!(is_duplicate(&deliver(&survivor, "msg_orphan").await));
    // The application saw the id twice: the attempt whose hookgate died (the
    // provider never got its 2xx) and the retry. At-least-once, as documented.
    assert_eq!(reached(&app)["msg_orphan"], 2);
}

/// `redis-cli` against the test server, to look at what hookgate stored.
fn redis_cli(redis: &Redis, args: &[&str]) -> String {
    let out = Command::new("redis-cli")
        .args(["-p", &redis.port.to_string()])
        .args(args)
        .output()
        .unwrap();
    assert!(out.status.success());
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

#[tokio::test]
async fn keys_are_prefixed_and_a_stale_holder_cannot_release_a_claim_taken_over() {
    use hookgate::replay::{Claim, RedisOptions, RedisStore, Store};
    let redis = Redis::start().await;
    let url = redis.url();
    let opts = RedisOptions {
        url: &url,
        ca_file: None,
        prefix: "hg-unit",
        timeout: Duration::from_secs(2),
        ttl: Duration::from_secs(3600),
        lease: Duration::from_millis(300),
    };
    let metrics = hookgate::metrics::Metrics::new();
    let store = std::sync::Arc::new(Store::Redis(Box::new(
        RedisStore::new(&opts, metrics.store()).unwrap(),
    )));
    assert!(store.ready().await);
    let id = [7u8; 32];

    let Claim::Claimed(stale) = store.claim("levers", &id).await.unwrap() else {
        panic!("first claim")
    };
    let key = redis_cli(&redis, &["--scan", "--pattern", "hg-unit:*"]);
    assert_eq!(key.len(), "hg-unit:".len() + 64, "{key}");
    let pttl: i64 = redis_cli(&redis, &["PTTL", &key]).parse().unwrap();
    assert!(
        pttl > 0 && pttl <= 300,
        "the claim expires with its lease: {pttl}"
    );

    tokio::time::sleep(Duration::from_millis(500)).await;
    let Claim::Claimed(current) = store.claim("levers", &id).await.unwrap() else {
        panic!("the lease lapsed, so the id is free again")
    };
    store.release(stale).await.unwrap();
    assert_eq!(store.claim("levers", &id).await.unwrap(), Claim::InFlight);

    store
        .delivered(current, tokio::time::Instant::now())
        .await
        .unwrap();
    assert_eq!(redis_cli(&redis, &["GET", &key]), "D");
    let pttl: i64 = redis_cli(&redis, &["PTTL", &key]).parse().unwrap();
    assert!(pttl > 3_500_000, "delivered ids live for ttl: {pttl}");
    assert_eq!(store.claim("levers", &id).await.unwrap(), Claim::Duplicate);
    // The same id on another route is its own key.
    assert!(matches!(
        store.claim("stdwh", &id).await.unwrap(),
        Claim::Claimed(_)
    ));
}

#[tokio::test]
async fn rediss_verifies_the_server_against_redis_ca_file() {
    let redis = Redis::start_tls().await;
    let app = Upstream::start().await;
    let ca = redis.dir.path().join("ca.pem");
    let trusting = redis_config(&app, &redis, "reject").replace(
        "redis_prefix",
        &format!("redis_ca_file = \"{}\"\nredis_prefix", ca.display()),
    );
    let gw = Gateway::start(&trusting).await;
    let deadline = Instant::now() + Duration::from_secs(30);
    while readyz(&gw).await != StatusCode::OK {
        assert!(Instant::now() < deadline, "never ready over TLS");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(deliver(&gw, "msg_tls").await.status, StatusCode::OK);
    assert!(is_duplicate(&deliver(&gw, "msg_tls").await));

    // Without the private CA the system roots do not trust this server: no
    // replay state goes over an unverified connection, and nothing is forwarded.
    let untrusting = Gateway::start(&redis_config(&app, &redis, "reject")).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(readyz(&untrusting).await, StatusCode::SERVICE_UNAVAILABLE);
    let r = deliver(&untrusting, "msg_tls_2").await;
    assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE, "{}", r.text());
    assert_accepted_ids_reached_app_once(&app, &["msg_tls"]);
    assert_eq!(app.count(), 1);
}

#[test]
fn the_redis_example_config_checks() {
    let example = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/hookgate-redis.toml");
    let out = Command::new(env!("CARGO_BIN_EXE_hookgate"))
        .args(["check", "--config", example])
        .env("HOOKGATE_REDIS_URL", "rediss://:pw@redis.internal:6380/0")
        .env("LEVERS_WEBHOOK_SECRET", SVIX_SECRET)
        .env("LEVANTA_WEBHOOK_SECRET", LEVANTA_SECRET)
        .env("LEAFLINK_WEBHOOK_KEY", LEAFLINK_SECRET)
        .output()
        .unwrap();
    let all = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{all}");
    assert!(!all.contains(":pw@"), "the Redis password leaked: {all}");
}

#[tokio::test]
async fn the_redis_password_never_reaches_the_logs_even_at_trace() {
    const PW: &str = "redis-pass-Zq8w1x";
    let mut redis = Redis::start_on(free_port()).await;
    redis.password = Some(PW);
    redis.restart().await;
    let app = Upstream::start().await;
    let dir = tempfile::tempdir().unwrap();
    let toml = redis_config(&app, &redis, "reject");
    assert!(toml.contains(PW));
    let gw = process(
        dir.path(),
        &toml,
        &[("HOOKGATE_LOG", "trace"), ("NO_COLOR", "1")],
    )
    .await;
    let url = format!("http://{}{ROUTE}", gw.addr);
    assert_eq!(
        post(&url, &headers("msg_pw"), BODY).await.status,
        StatusCode::OK
    );
    assert!(is_duplicate(&post(&url, &headers("msg_pw"), BODY).await));
    // Redis down then back: the error and reconnect paths log too.
    redis.restart().await;
    let deadline = Instant::now() + Duration::from_secs(30);
    while post(&url, &headers("msg_pw_2"), BODY).await.status != StatusCode::OK {
        assert!(Instant::now() < deadline, "no recovery");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let mut gw = gw;
    gw.terminate(Duration::from_secs(30)).await.unwrap();
    let log = gw.log_text();
    assert!(log.contains("msg_pw"), "the request lines are there: {log}");
    assert!(log.contains("TRACE"), "trace level was on");
    assert!(!log.contains(PW), "the Redis password leaked into the log");
}

#[tokio::test]
async fn recovers_after_redis_came_back_refusing_hookgate_for_a_while() {
    let mut redis = Redis::start_on(free_port()).await;
    redis.password = Some("the-right-one");
    redis.restart().await;
    let app = Upstream::start().await;
    let gw = Gateway::start(&redis_config(&app, &redis, "reject")).await;
    assert_eq!(deliver(&gw, "msg_auth_1").await.status, StatusCode::OK);

    // Redis comes back with another password (a botched rollout): every claim
    // fails, and the connection attempts fail at AUTH, not at the socket.
    let gw_url = redis_config(&app, &redis, "reject");
    assert!(gw_url.contains("the-right-one"));
    redis.password = Some("a-wrong-one");
    redis.restart().await;
    for i in 0..5 {
        let r = deliver(&gw, &format!("msg_auth_during_{i}")).await;
        assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE, "{}", r.text());
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    assert_eq!(readyz(&gw).await, StatusCode::SERVICE_UNAVAILABLE);

    // Fixed: hookgate must get back on its own, without a restart.
    redis.password = Some("the-right-one");
    redis.restart().await;
    let deadline = Instant::now() + Duration::from_secs(30);
    while deliver(&gw, "msg_auth_2").await.status != StatusCode::OK {
        assert!(Instant::now() < deadline, "stuck after Redis was fixed");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(is_duplicate(&deliver(&gw, "msg_auth_2").await));
    assert_eq!(app.count(), 2);
}

#[tokio::test]
async fn the_first_request_after_a_redis_restart_is_answered_not_refused() {
    // Issue 12: each instance found its connection dead only when it used it,
    // and answered that first request 503. The dropped connection is now
    // replaced and the command sent again within the same redis_timeout.
    let mut redis = Redis::start().await;
    let app = Upstream::start().await;
    let a = Gateway::start(&redis_config(&app, &redis, "reject")).await;
    let b = Gateway::start(&redis_config(&app, &redis, "reject")).await;
    assert_eq!(
        deliver(&a, "msg_before_restart_a").await.status,
        StatusCode::OK
    );
    assert_eq!(
        deliver(&b, "msg_before_restart_b").await.status,
        StatusCode::OK
    );

    redis.restart().await;

    for (gw, id) in [(&a, "msg_after_restart_a"), (&b, "msg_after_restart_b")] {
        let reply = deliver(gw, id).await;
        assert_eq!(reply.status, StatusCode::OK, "{id}: {}", reply.text());
        // And the claim it made is its own: the delivery is recorded, a repeat
        // through either instance is a duplicate.
        let again = deliver(&b, id).await;
        assert!(
            is_duplicate(&again),
            "{id}: {} {}",
            again.status,
            again.text()
        );
    }
    assert_accepted_ids_reached_app_once(
        &app,
        &[
            "msg_before_restart_a",
            "msg_before_restart_b",
            "msg_after_restart_a",
            "msg_after_restart_b",
        ],
    );
}

#[tokio::test]
async fn a_claim_unanswered_while_redis_was_paused_does_not_hold_the_id_after() {
    // Issue 12: the claim timed out (503), then ran when Redis woke up and held
    // the id for a whole lease nobody settled: every retry met 409 in_flight.
    // Its release is now queued behind it, so the retry goes through.
    let redis = Redis::start().await;
    let app = Upstream::start().await;
    let gw = Gateway::start(&redis_config(&app, &redis, "reject")).await;
    assert_eq!(deliver(&gw, "msg_warm").await.status, StatusCode::OK);

    redis.signal(nix::sys::signal::Signal::SIGSTOP);
    let during = deliver(&gw, "msg_paused").await;
    assert_eq!(
        during.status,
        StatusCode::SERVICE_UNAVAILABLE,
        "{}",
        during.text()
    );
    redis.signal(nix::sys::signal::Signal::SIGCONT);

    // The lease is upstream.timeout + 5 s = 7 s: well past the retries below.
    let mut last = None;
    for _ in 0..20 {
        let retry = deliver(&gw, "msg_paused").await;
        if retry.status == StatusCode::OK {
            last = None;
            break;
        }
        last = Some(format!("{} {}", retry.status, retry.text()));
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(last, None, "the retry within 2 s of Redis waking up");
    assert_accepted_ids_reached_app_once(&app, &["msg_warm", "msg_paused"]);
}
