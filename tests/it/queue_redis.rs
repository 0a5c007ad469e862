//! `[queue] store = "redis"`: several replicas share one queue on a real redis-server; each
//! request answered 202 reaches the app once, in order per route, even when the replica
//! delivering it is killed with -9 while the app flaps; `max_bytes` and a Redis outage answer
//! 503; and `hookgate queue` works on the Redis queue while gateways run.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use http::{Method, StatusCode};
use tokio::net::TcpListener;

use crate::queue::{down_app, gateway_toml, metric_reaches, post_signed, queue_cli};
use crate::support::child::Hookgate;
use crate::support::redis::Redis;
use crate::support::*;

/// The `[queue]` keys of a Redis queue on `redis`, leases short enough for a test.
fn redis_queue(redis: &Redis, extra: &str) -> String {
    format!(
        "store = \"redis\"\nredis_url = \"{}\"\nredis_prefix = \"t\"\nredis_lease = \"2s\"\n\
         retry_initial = \"50ms\"\nretry_max = \"200ms\"\nmax_attempts = 1000\n{extra}",
        redis.url()
    )
}

fn write_config(dir: &Path, app: &str, redis: &Redis, extra: &str) -> PathBuf {
    let path = dir.join("hookgate.toml");
    std::fs::write(&path, gateway_toml(app, &redis_queue(redis, extra))).unwrap();
    path
}

/// Bodies the app answered 2xx, in the order it answered them, for one route.
fn delivered(app: &Upstream, route: &str) -> Vec<String> {
    app.received()
        .iter()
        .filter(|r| r.uri == format!("/webhooks/{route}") && r.answered.is_success())
        .map(|r| String::from_utf8_lossy(&r.body).into_owned())
        .collect()
}

/// Waits (`limit` at most) until `f` holds.
async fn within(limit: Duration, mut f: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + limit;
    while !f() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "condition not met within {limit:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn two_replicas_on_one_redis_deliver_each_request_once_in_order_per_route() {
    let redis = Redis::start().await;
    let dir = tempfile::tempdir().unwrap();
    let app = Upstream::start().await;
    let config = write_config(dir.path(), &app.url(), &redis, "");
    let one = Hookgate::start(&config).await;
    let two = Hookgate::start(&config).await;
    let mut want: HashMap<&str, Vec<String>> = HashMap::new();
    for i in 0..12 {
        for route in ["a", "b"] {
            let body = format!("{route}-{i}");
            // Alternate replicas: each route's requests arrive at both.
            let gw = if (i + usize::from(route == "b")) % 2 == 0 {
                &one
            } else {
                &two
            };
            let r = post_signed(
                &gw.url(&format!("/webhooks/{route}")),
                &format!("two_{route}{i}"),
                body.as_bytes(),
            )
            .await;
            assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.text());
            want.entry(route).or_default().push(body);
        }
    }
    within(Duration::from_secs(20), || app.count() >= 24).await;
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert_eq!(app.count(), 24, "a request was delivered twice");
    for route in ["a", "b"] {
        assert_eq!(delivered(&app, route), want[route], "route {route}");
    }
    for gw in [&one, &two] {
        metric_reaches(gw.admin.unwrap(), "hookgate_queue_depth{route=\"a\"}", 0.0).await;
    }
    let (code, out, err) = queue_cli(&config, &["list"]);
    assert_eq!((code, out.lines().count()), (Some(0), 1), "{out}{err}");
}

#[tokio::test]
async fn kill_9_of_the_delivering_replica_hands_its_pending_deliveries_to_the_other() {
    let redis = Redis::start().await;
    let dir = tempfile::tempdir().unwrap();
    let app = Upstream::start().await;
    let config = write_config(dir.path(), &app.url(), &redis, "");
    // The first replica alone delivers one request per route: it holds both routes' leases.
    let mut first = Hookgate::start(&config).await;
    let mut accepted: HashMap<&str, Vec<String>> = HashMap::new();
    for route in ["a", "b"] {
        let body = format!("{route}-warm");
        let r = post_signed(
            &first.url(&format!("/webhooks/{route}")),
            &body,
            body.as_bytes(),
        )
        .await;
        assert_eq!(r.status, StatusCode::ACCEPTED);
        accepted.entry(route).or_default().push(body);
    }
    within(Duration::from_secs(10), || app.count() == 2).await;
    let second = Hookgate::start(&config).await;
    // The app fails everything now: the first replica keeps retrying the heads it owns.
    app.answer_status(503);
    for i in 0..10 {
        for route in ["a", "b"] {
            let body = format!("{route}-{i}");
            let gw = if i % 2 == 0 { &first } else { &second };
            let r = post_signed(
                &gw.url(&format!("/webhooks/{route}")),
                &body,
                body.as_bytes(),
            )
            .await;
            assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.text());
            accepted.entry(route).or_default().push(body);
        }
    }
    within(Duration::from_secs(10), || app.count() >= 8).await;
    assert!(
        !second.logged("\"result\":\"failed\""),
        "the second replica delivered while the first held the leases"
    );
    // Killed while its deliveries fail and its heads are pending in the group.
    first.kill9();
    // The app flaps while the second replica takes over.
    let flapping = {
        let app = app.clone();
        tokio::spawn(async move {
            for n in 0.. {
                app.answer_status(if n % 3 == 0 { 200 } else { 503 });
                tokio::time::sleep(Duration::from_millis(120)).await;
            }
        })
    };
    second
        .wait_logged("took over a delivery another replica left pending")
        .await;
    within(Duration::from_secs(30), || {
        ["a", "b"]
            .iter()
            .all(|r| delivered(&app, r).len() >= accepted[r].len())
    })
    .await;
    flapping.abort();
    app.answer_status(200);
    tokio::time::sleep(Duration::from_millis(800)).await;
    for route in ["a", "b"] {
        // Every 202 answered 2xx once, in the order accepted; no request reached the app
        // after it had answered 2xx (the kill came while the app answered 503, outside the
        // at-least-once window between the app's 2xx and the ack).
        assert_eq!(delivered(&app, route), accepted[route], "route {route}");
    }
    let (code, out, err) = queue_cli(&config, &["list"]);
    assert_eq!((code, out.lines().count()), (Some(0), 1), "{out}{err}");
}

#[tokio::test]
async fn a_full_redis_queue_answers_queue_full_and_redis_down_answers_queue_unavailable() {
    let mut redis = Redis::start().await;
    let addr = down_app().await;
    let gw = Gateway::start(&gateway_toml(
        &format!("http://{addr}"),
        &redis_queue(&redis, "max_bytes = \"4KiB\""),
    ))
    .await;
    let body = vec![b'x'; 900];
    let mut accepted = Vec::new();
    let mut full = None;
    for i in 0..20 {
        let id = format!("rfull_{i}");
        let r = post_signed(&gw.url("/webhooks/a"), &id, &body).await;
        match r.status {
            StatusCode::ACCEPTED => accepted.push(id),
            StatusCode::SERVICE_UNAVAILABLE => {
                assert_eq!(r.text(), r#"{"error":"queue_full"}"#);
                full = Some(id);
                break;
            }
            other => panic!("unexpected {other}: {}", r.text()),
        }
    }
    let full = full.expect("the queue never filled");
    assert!(accepted.len() >= 2, "{accepted:?}");
    let app = Upstream::serve(TcpListener::bind(addr).await.unwrap());
    eventually(|| app.count() == accepted.len()).await;
    // Room again: the refused id, retried by its provider, is accepted and delivered last.
    let r = post_signed(&gw.url("/webhooks/a"), &full, &body).await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.text());
    eventually(|| app.count() == accepted.len() + 1).await;
    let ids: Vec<String> = app
        .received()
        .iter()
        .map(|r| r.headers["svix-id"].to_str().unwrap().to_string())
        .collect();
    accepted.push(full);
    assert_eq!(ids, accepted);

    // Redis gone: never a 202 for what could not be stored.
    redis.kill();
    let r = post_signed(&gw.url("/webhooks/a"), "rdown_1", b"{}").await;
    assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE, "{}", r.text());
    assert_eq!(r.text(), r#"{"error":"queue_unavailable"}"#);
    // ... and this replica says it is not ready for them.
    let admin = gw.admin.unwrap();
    let ready = send(&format!("http://{admin}/readyz"), Method::GET, &[], b"").await;
    assert_eq!(ready.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(ready.text(), "queue store unavailable\n");
    // Back (empty: the test server keeps nothing): accepted and delivered again.
    redis.restart().await;
    let mut answered = StatusCode::SERVICE_UNAVAILABLE;
    for _ in 0..40 {
        answered = post_signed(&gw.url("/webhooks/a"), "rdown_1", b"{}")
            .await
            .status;
        if answered == StatusCode::ACCEPTED {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(answered, StatusCode::ACCEPTED);
    eventually(|| app.count() == accepted.len() + 1).await;
    let ready = send(&format!("http://{admin}/readyz"), Method::GET, &[], b"").await;
    assert_eq!(ready.status, StatusCode::OK, "{}", ready.text());
}

#[tokio::test]
async fn queue_commands_on_a_redis_queue_work_while_gateways_run() {
    let redis = Redis::start().await;
    let dir = tempfile::tempdir().unwrap();
    let app = Upstream::start().await;
    let config = write_config(dir.path(), &app.url(), &redis, "");
    let mut gw = Hookgate::start(&config).await;
    app.answer_status(422);
    let secret_body = b"{\"card\":\"4242\"}";
    let mut headers = svix_headers(SVIX_SECRET, "rcli_1", now_secs(), secret_body, "svix-");
    headers.push(("authorization".into(), "Bearer s3cr3t".into()));
    let r = post(&gw.url("/webhooks/a"), &headers, secret_body).await;
    assert_eq!(r.status, StatusCode::ACCEPTED);
    let r = post_signed(&gw.url("/webhooks/b"), "rcli_2", b"two").await;
    assert_eq!(r.status, StatusCode::ACCEPTED);
    eventually(|| app.count() == 2).await;
    gw.wait_logged("dead_lettered").await;
    metric_reaches(
        gw.admin.unwrap(),
        "hookgate_queue_dead_letters_total{route=\"b\"}",
        1.0,
    )
    .await;

    // The gateway runs: the commands talk to Redis directly.
    let (code, out, err) = queue_cli(&config, &["list", "--dead"]);
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(out.lines().count(), 3, "{out}");
    assert!(
        out.contains("status 422") && out.contains("/webhooks/a"),
        "{out}"
    );
    assert!(!out.contains("4242"), "{out}");
    let id = out
        .lines()
        .find(|l| l.contains(" a "))
        .and_then(|l| l.split_whitespace().next())
        .unwrap()
        .to_string();
    let (_, shown, _) = queue_cli(&config, &["show", "--id", &id]);
    assert!(shown.contains("state        dead"), "{shown}");
    assert!(shown.contains("svix-id: rcli_1"), "{shown}");
    assert!(
        !shown.contains("4242") && !shown.contains("s3cr3t"),
        "{shown}"
    );
    let (_, shown, _) = queue_cli(&config, &["show", "--id", &id, "--body"]);
    assert!(
        shown.contains("4242") && !shown.contains("s3cr3t"),
        "{shown}"
    );

    // Redriven while the gateway runs: it delivers it now that the app takes it.
    app.answer_status(200);
    let (code, out, _) = queue_cli(&config, &["redrive", "--id", &id]);
    assert_eq!((code, out.trim()), (Some(0), "redriven: 1"));
    eventually(|| app.count() == 3).await;
    assert_eq!(&app.received()[2].body[..], secret_body);
    let (code, _, _) = queue_cli(&config, &["drop"]);
    assert_eq!(code, Some(2), "drop without --id or --dead must refuse");
    let (code, out, _) = queue_cli(&config, &["drop", "--dead", "--route", "b"]);
    assert_eq!((code, out.trim()), (Some(0), "dropped: 1"));
    // The app has the redriven one; the queue records it delivered once the app's answer is
    // read, a moment later (seen in CI: listed still pending right after the app's count).
    eventually(|| queue_cli(&config, &["list"]).1.lines().count() == 1).await;
    let (_, out, _) = queue_cli(&config, &["list"]);
    let (_, dead, _) = queue_cli(&config, &["list", "--dead"]);
    assert_eq!(
        (out.lines().count(), dead.lines().count()),
        (1, 1),
        "{out}{dead}"
    );
    assert_eq!(gw.terminate(Duration::from_secs(10)).await, Ok(Some(0)));
    // Stopped, the queue is still there to read.
    let (code, _, err) = queue_cli(&config, &["list", "--dead"]);
    assert_eq!(code, Some(0), "{err}");
}

#[tokio::test]
async fn an_undecodable_entry_is_set_aside_as_a_dead_letter_and_its_route_goes_on() {
    let redis = Redis::start().await;
    let dir = tempfile::tempdir().unwrap();
    let app = Upstream::start().await;
    let config = write_config(dir.path(), &app.url(), &redis, "");
    let gw = Hookgate::start(&config).await;
    let r = post_signed(&gw.url("/webhooks/a"), "bad_0", b"first").await;
    assert_eq!(r.status, StatusCode::ACCEPTED);
    eventually(|| app.count() == 1).await;
    // A value this version cannot read, appended the way hookgate appends (the next id).
    let client = ::redis::Client::open(redis.url()).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let n: u64 = ::redis::cmd("INCR")
        .arg("t:qmeta:seq")
        .query_async(&mut conn)
        .await
        .unwrap();
    let _: String = ::redis::cmd("XADD")
        .arg("t:q:a")
        .arg(format!("0-{n}"))
        .arg("r")
        .arg(b"\x09not a record".as_slice())
        .query_async(&mut conn)
        .await
        .unwrap();
    let r = post_signed(&gw.url("/webhooks/a"), "bad_1", b"after").await;
    assert_eq!(r.status, StatusCode::ACCEPTED);
    eventually(|| app.count() == 2).await;
    assert_eq!(&app.received()[1].body[..], b"after", "the route went on");
    gw.wait_logged("does not decode").await;
    metric_reaches(
        gw.admin.unwrap(),
        "hookgate_queue_undecodable_total{route=\"a\"}",
        1.0,
    )
    .await;
    let (code, dead, err) = queue_cli(&config, &["list", "--dead"]);
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(dead.lines().count(), 2, "{dead}");
    assert!(
        dead.contains(&format!("{n} ")) && dead.contains("undecodable") && dead.contains(" 13 "),
        "{dead}"
    );
    // Never redriven as something it is not; dropping it is allowed.
    let (_, out, _) = queue_cli(&config, &["redrive", "--id", &n.to_string()]);
    assert_eq!(out.trim(), "redriven: 0");
    let (_, out, _) = queue_cli(&config, &["drop", "--id", &n.to_string()]);
    assert_eq!(out.trim(), "dropped: 1");
}

#[tokio::test]
async fn sigterm_keeps_a_routes_lease_while_its_delivery_drains_then_hands_the_route_over() {
    let redis = Redis::start().await;
    let dir = tempfile::tempdir().unwrap();
    let app = Upstream::start().await;
    // Each delivery takes longer than a 1 s lease (and less than the 2 s upstream timeout).
    app.answer_with(Answer {
        delay: Duration::from_millis(1800),
        ..Answer::default()
    });
    let config = dir.path().join("hookgate.toml");
    let queue = redis_queue(&redis, "").replace("redis_lease = \"2s\"", "redis_lease = \"1s\"");
    std::fs::write(&config, gateway_toml(&app.url(), &queue)).unwrap();
    let mut first = Hookgate::start(&config).await;
    for i in 0..2 {
        let body = format!("a-{i}");
        let r = post_signed(&first.url("/webhooks/a"), &body, body.as_bytes()).await;
        assert_eq!(r.status, StatusCode::ACCEPTED);
    }
    within(Duration::from_secs(10), || app.count() == 1).await;
    let second = Hookgate::start(&config).await;
    // Draining, the first replica still owns route `a`: the second neither claims the
    // delivery in flight nor starts the next one. It may start the next one once the
    // first hands the lease back, which is just before the first exits.
    assert_eq!(first.terminate(Duration::from_secs(20)).await, Ok(Some(0)));
    assert!(first.logged("\"result\":\"delivered\""));
    app.answer_with(Answer::default());
    within(Duration::from_secs(10), || app.count() == 2).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let received = app.received();
    let bodies: Vec<&[u8]> = received.iter().map(|r| &r.body[..]).collect();
    assert_eq!(bodies, [b"a-0", b"a-1"], "each delivered once, in order");
    let gap = received[1].arrived - received[0].arrived;
    assert!(
        gap >= Duration::from_millis(1800),
        "the route was taken over while its delivery drained: the next request came {gap:?} after it"
    );
    assert_eq!(delivered(&app, "a"), ["a-0", "a-1"]);
    assert!(
        !second.logged("took over"),
        "the lease was handed over, not lapsed"
    );
}
