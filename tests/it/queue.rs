//! Durable delivery (`delivery = "queue"`, DESIGN §8): 202 once stored, delivered exactly once,
//! in order per route, retried or dead-lettered by the application's answer, bounded by
//! `max_bytes`, surviving kill -9; and `hookgate queue` on a running gateway and on the stopped store.

use std::net::SocketAddr;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use hookgate::queue::{DiskStore, Table};
use http::{Method, StatusCode};
use tokio::net::TcpListener;

use crate::support::child::Hookgate;
use crate::support::*;

/// Two queue routes (`a`, `b`) and one forwarding route (`direct`) in front of `app`.
fn queue_toml(app: &str, dir: &Path, queue_extra: &str) -> String {
    gateway_toml(
        app,
        &format!(
            "path = \"{}\"\nretry_initial = \"50ms\"\nretry_max = \"200ms\"\n{queue_extra}",
            dir.display()
        ),
    )
}

/// Two queue routes (`a`, `b`) and one forwarding route (`direct`) in front
/// of `app`, with `queue` as the `[queue]` section's keys.
pub fn gateway_toml(app: &str, queue: &str) -> String {
    format!(
        r#"
[listen]
addr = "127.0.0.1:0"
[admin]
addr = "127.0.0.1:0"
[upstream]
url = "{app}"
timeout = "2s"
[queue]
{queue}
[[routes]]
name = "a"
path = "/webhooks/a"
provider = "svix"
secrets = ["{SVIX_SECRET}"]
delivery = "queue"
[[routes]]
name = "b"
path = "/webhooks/b"
provider = "svix"
secrets = ["{SVIX_SECRET}"]
delivery = "queue"
[[routes]]
name = "direct"
path = "/webhooks/direct"
provider = "svix"
secrets = ["{SVIX_SECRET}"]
"#
    )
}

/// A port nothing listens on (yet): the application is down.
pub async fn down_app() -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    l.local_addr().unwrap()
}

pub async fn post_signed(url: &str, id: &str, body: &[u8]) -> Reply {
    post(
        url,
        &svix_headers(SVIX_SECRET, id, now_secs(), body, "svix-"),
        body,
    )
    .await
}

pub async fn metric(admin: SocketAddr, name: &str) -> f64 {
    let r = send(&format!("http://{admin}/metrics"), Method::GET, &[], b"").await;
    r.text()
        .lines()
        .find_map(|l| l.strip_prefix(name).and_then(|v| v.trim().parse().ok()))
        .unwrap_or_else(|| panic!("metric {name} not exposed"))
}

/// Waits (10 s at most) until `name` reads `want`: the queue's gauges follow the delivery loop.
pub async fn metric_reaches(admin: SocketAddr, name: &str, want: f64) {
    for _ in 0..200 {
        if metric(admin, name).await == want {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!(
        "{name} never reached {want} (last {})",
        metric(admin, name).await
    );
}

/// Stops an in-process gateway and waits until its store is closed.
async fn stop(gw: Gateway) {
    gw.running.shutdown();
    gw.running.wait().await;
}

fn stored(dir: &Path) -> (u64, u64) {
    // The writer thread closes the file once the last handle is gone: allow it a moment.
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        match DiskStore::open(dir, 1 << 30) {
            Ok(s) => return (s.len(Table::Pending).unwrap(), s.len(Table::Dead).unwrap()),
            Err(e) => {
                assert!(Instant::now() < deadline, "store not released: {e}");
                std::thread::sleep(Duration::from_millis(50));
            }
        }
    }
}

#[tokio::test]
async fn queued_request_is_answered_202_and_reaches_the_app_once_byte_for_byte() {
    let dir = tempfile::tempdir().unwrap();
    let app = Upstream::start().await;
    let gw = Gateway::start(&queue_toml(&app.url(), dir.path(), "")).await;
    let body = br#"{"type":"order.created","id":"ord_1"}"#;
    let mut headers = svix_headers(SVIX_SECRET, "msg_q1", now_secs(), body, "svix-");
    headers.push(("x-repeat".into(), "one".into()));
    headers.push(("x-repeat".into(), "two".into()));
    headers.push(("hookgate-attestation".into(), "forged".into()));
    let r = post(&gw.url("/webhooks/a?x=1"), &headers, body).await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.text());
    assert_eq!(r.text(), r#"{"status":"queued"}"#);
    eventually(|| app.count() == 1).await;
    let got = &app.received()[0];
    assert_eq!(got.uri, "/webhooks/a?x=1");
    assert_eq!(&got.body[..], body);
    for (k, v) in headers.iter().filter(|(k, _)| k.starts_with("svix-")) {
        assert_eq!(got.headers[k.as_str()], v.as_str());
    }
    let repeated: Vec<_> = got.headers.get_all("x-repeat").iter().collect();
    assert_eq!(repeated, ["one", "two"]);
    assert!(!got.headers.contains_key("hookgate-attestation"));
    assert_eq!(got.headers["x-forwarded-for"], "127.0.0.1");
    // The provider retries the same id: the queue owns it now.
    let again = post(&gw.url("/webhooks/a?x=1"), &headers, body).await;
    assert_eq!(again.status, StatusCode::OK);
    assert_eq!(again.text(), r#"{"status":"duplicate"}"#);
    let admin = gw.admin.unwrap();
    assert_eq!(
        metric(
            admin,
            "hookgate_requests_total{outcome=\"queued\",route=\"a\"}"
        )
        .await,
        1.0
    );
    let delivered = "hookgate_queue_attempts_total{result=\"delivered\",route=\"a\"}";
    metric_reaches(admin, delivered, 1.0).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(app.count(), 1, "delivered more than once");
    // A forwarding route beside it is unchanged: the app's own answer.
    let direct = post_signed(&gw.url("/webhooks/direct"), "msg_d1", body).await;
    assert_eq!(direct.status, StatusCode::OK);
    assert_eq!(direct.text(), r#"{"ok":true}"#);
    stop(gw).await;
    assert_eq!(stored(dir.path()), (0, 0));
}

#[tokio::test]
async fn unverified_requests_are_never_stored() {
    let dir = tempfile::tempdir().unwrap();
    let app = Upstream::start().await;
    let gw = Gateway::start(&queue_toml(&app.url(), dir.path(), "")).await;
    let body = b"{}";
    let mut forged = svix_headers(SVIX_SECRET, "msg_f", now_secs(), body, "svix-");
    forged[2].1 = "v1,AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=".into();
    assert_eq!(
        post(&gw.url("/webhooks/a"), &forged, body).await.status,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        post(&gw.url("/webhooks/a"), &[], body).await.status,
        StatusCode::UNAUTHORIZED
    );
    stop(gw).await;
    assert_eq!(stored(dir.path()), (0, 0));
    assert_eq!(app.count(), 0);
}

#[tokio::test]
async fn backlog_is_drained_in_order_per_route_once_the_app_is_up() {
    let dir = tempfile::tempdir().unwrap();
    let addr = down_app().await;
    let gw = Gateway::start(&queue_toml(&format!("http://{addr}"), dir.path(), "")).await;
    for i in 0..6 {
        for route in ["a", "b"] {
            let body = format!("{route}-{i}");
            let r = post_signed(
                &gw.url(&format!("/webhooks/{route}")),
                &format!("msg_{route}{i}"),
                body.as_bytes(),
            )
            .await;
            assert_eq!(r.status, StatusCode::ACCEPTED);
        }
    }
    let admin = gw.admin.unwrap();
    metric_reaches(admin, "hookgate_queue_depth{route=\"a\"}", 6.0).await;
    tokio::time::sleep(Duration::from_millis(400)).await;
    let app = Upstream::serve(TcpListener::bind(addr).await.unwrap());
    eventually(|| app.count() == 12).await;
    for route in ["a", "b"] {
        let order: Vec<String> = app
            .received()
            .iter()
            .filter(|r| r.uri == format!("/webhooks/{route}"))
            .map(|r| String::from_utf8_lossy(&r.body).into_owned())
            .collect();
        let want: Vec<String> = (0..6).map(|i| format!("{route}-{i}")).collect();
        assert_eq!(order, want, "route {route} out of order");
    }
    metric_reaches(admin, "hookgate_queue_depth{route=\"a\"}", 0.0).await;
    assert_eq!(app.count(), 12);
}

#[tokio::test]
async fn server_errors_are_retried_final_4xx_dead_lettered_and_retry_after_respected() {
    let dir = tempfile::tempdir().unwrap();
    let app = Upstream::start().await;
    let gw = Gateway::start(&queue_toml(&app.url(), dir.path(), "max_attempts = 50")).await;
    let admin = gw.admin.unwrap();
    app.answer_status(503);
    assert_eq!(
        post_signed(&gw.url("/webhooks/a"), "m1", b"one")
            .await
            .status,
        StatusCode::ACCEPTED
    );
    eventually(|| app.count() >= 3).await;
    app.answer_status(200);
    let delivered = "hookgate_queue_attempts_total{result=\"delivered\",route=\"a\"}";
    metric_reaches(admin, delivered, 1.0).await;
    assert!(
        metric(
            admin,
            "hookgate_queue_attempts_total{result=\"failed\",route=\"a\"}"
        )
        .await
            >= 2.0
    );

    app.answer_status(400);
    let before = app.count();
    assert_eq!(
        post_signed(&gw.url("/webhooks/a"), "m2", b"two")
            .await
            .status,
        StatusCode::ACCEPTED
    );
    eventually(|| app.count() == before + 1).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(app.count(), before + 1, "a final 4xx was retried");
    assert_eq!(
        metric(admin, "hookgate_queue_dead_letters_total{route=\"a\"}").await,
        1.0
    );

    app.answer_with(Answer {
        status: StatusCode::TOO_MANY_REQUESTS,
        headers: vec![("retry-after".into(), "2".into())],
        ..Answer::default()
    });
    let before = app.count();
    assert_eq!(
        post_signed(&gw.url("/webhooks/b"), "m3", b"three")
            .await
            .status,
        StatusCode::ACCEPTED
    );
    eventually(|| app.count() == before + 1).await;
    let first = Instant::now();
    app.answer_status(200);
    eventually(|| app.count() == before + 2).await;
    let waited = first.elapsed();
    assert!(
        waited >= Duration::from_millis(1700),
        "Retry-After: 2 not respected ({waited:?})"
    );
    stop(gw).await;
    assert_eq!(stored(dir.path()), (0, 1));
}

#[tokio::test]
async fn a_full_queue_answers_503_queue_full_and_loses_nothing_stored() {
    let dir = tempfile::tempdir().unwrap();
    let addr = down_app().await;
    let gw = Gateway::start(&queue_toml(
        &format!("http://{addr}"),
        dir.path(),
        "max_bytes = \"4KiB\"",
    ))
    .await;
    let body = vec![b'x'; 900];
    let mut accepted = Vec::new();
    let mut full = None;
    for i in 0..20 {
        let id = format!("full_{i}");
        let r = post_signed(&gw.url("/webhooks/a"), &id, &body).await;
        match r.status {
            StatusCode::ACCEPTED => accepted.push(id),
            StatusCode::SERVICE_UNAVAILABLE => {
                assert_eq!(r.text(), r#"{"error":"queue_full"}"#);
                assert_eq!(r.headers["retry-after"], "1");
                full = Some(id);
                break;
            }
            other => panic!("unexpected {other}: {}", r.text()),
        }
    }
    let full = full.expect("the queue never filled");
    assert!(accepted.len() >= 2, "{accepted:?}");
    let admin = gw.admin.unwrap();
    assert_eq!(
        metric(
            admin,
            "hookgate_rejections_total{reason=\"queue_full\",route=\"a\"}"
        )
        .await,
        1.0
    );
    let app = Upstream::serve(TcpListener::bind(addr).await.unwrap());
    eventually(|| app.count() == accepted.len()).await;
    // The refused id was released: the provider's retry is accepted once there is room.
    let r = post_signed(&gw.url("/webhooks/a"), &full, &body).await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.text());
    eventually(|| app.count() == accepted.len() + 1).await;
    let ids: Vec<String> = app
        .received()
        .iter()
        .map(|r| r.headers["svix-id"].to_str().unwrap().to_string())
        .collect();
    let mut want = accepted.clone();
    want.push(full);
    assert_eq!(ids, want);
}

fn write_config(dir: &Path, app: SocketAddr) -> std::path::PathBuf {
    let path = dir.join("hookgate.toml");
    std::fs::write(
        &path,
        queue_toml(&format!("http://{app}"), &dir.join("queue"), ""),
    )
    .unwrap();
    path
}

pub fn queue_cli(config: &Path, args: &[&str]) -> (Option<i32>, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_hookgate"))
        .arg("queue")
        .args(args)
        .arg("--config")
        .arg(config)
        .output()
        .unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test]
async fn after_kill_9_every_202_reaches_the_app_exactly_once_after_restart() {
    let dir = tempfile::tempdir().unwrap();
    let addr = down_app().await;
    let config = write_config(dir.path(), addr);
    let mut gw = Hookgate::start(&config).await;
    let mut ids = Vec::new();
    for i in 0..20 {
        let (route, id) = (["a", "b"][i % 2], format!("kill_{i}"));
        let r = post_signed(&gw.url(&format!("/webhooks/{route}")), &id, id.as_bytes()).await;
        assert_eq!(r.status, StatusCode::ACCEPTED);
        ids.push(id);
    }
    gw.kill9();
    gw.restart().await;
    let app = Upstream::serve(TcpListener::bind(addr).await.unwrap());
    eventually(|| app.count() >= 20).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let mut got: Vec<String> = app
        .received()
        .iter()
        .map(|r| String::from_utf8_lossy(&r.body).into_owned())
        .collect();
    got.sort();
    ids.sort();
    assert_eq!(got, ids, "every 202 delivered exactly once");
}

/// The id in the first line of `hookgate queue list` output that names `route`.
fn listed_id(out: &str, route: &str) -> String {
    out.lines()
        .find(|l| l.split_whitespace().nth(2) == Some(route))
        .and_then(|l| l.split_whitespace().next())
        .unwrap_or_else(|| panic!("no {route} in {out}"))
        .to_string()
}

#[tokio::test]
async fn queue_commands_list_show_redrive_and_drop_on_a_running_then_a_stopped_gateway() {
    let dir = tempfile::tempdir().unwrap();
    let app = Upstream::start().await;
    let config = write_config(dir.path(), app.addr);
    let mut gw = Hookgate::start(&config).await;
    app.answer_status(422);
    let secret_body = b"{\"card\":\"4242\"}";
    let mut headers = svix_headers(SVIX_SECRET, "cli_1", now_secs(), secret_body, "svix-");
    headers.push(("authorization".into(), "Bearer s3cr3t".into()));
    assert_eq!(
        post(&gw.url("/webhooks/a"), &headers, secret_body)
            .await
            .status,
        StatusCode::ACCEPTED
    );
    for id in ["cli_2", "cli_3"] {
        let r = post_signed(&gw.url("/webhooks/b"), id, id.as_bytes()).await;
        assert_eq!(r.status, StatusCode::ACCEPTED);
    }
    eventually(|| app.count() == 3).await;
    for _ in 0..3 {
        gw.wait_logged("dead_lettered").await;
    }

    // Running: the gateway holds the store, so the commands go through its
    // admin listener and print what they print on the store itself.
    let (code, out, err) = queue_cli(&config, &["list", "--dead"]);
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(out.lines().count(), 4, "{out}");
    assert!(
        out.contains("status 422") && out.contains("/webhooks/a"),
        "{out}"
    );
    assert!(!out.contains("4242"), "{out}");
    let id_a = listed_id(&out, "a");
    let (code, shown, _) = queue_cli(&config, &["show", "--id", &id_a]);
    assert_eq!(code, Some(0));
    assert!(shown.contains("svix-id: cli_1"), "{shown}");
    assert!(
        !shown.contains("4242") && !shown.contains("s3cr3t"),
        "{shown}"
    );
    let (code, _, err) = queue_cli(&config, &["show", "--id", "999999"]);
    assert_eq!(code, Some(1), "{err}");
    let (code, _, _) = queue_cli(&config, &["drop"]);
    assert_eq!(code, Some(2), "drop without --id or --dead must refuse");
    // A redrive on the running gateway is delivered at once.
    app.answer_status(200);
    let id_b = listed_id(&out, "b");
    let (code, out, err) = queue_cli(&config, &["redrive", "--id", &id_b]);
    assert_eq!((code, out.trim()), (Some(0), "redriven: 1"), "{err}");
    eventually(|| app.count() == 4).await;
    assert_eq!(&app.received()[3].body[..], b"cli_2");
    // The admin port answers these only on loopback; the method is checked.
    let admin = gw.admin.unwrap();
    let r = send(
        &format!("http://{admin}/queue/drop?dead=1"),
        Method::GET,
        &[],
        b"",
    )
    .await;
    assert_eq!(r.status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(r.headers["allow"], "POST");
    assert_eq!(gw.terminate(Duration::from_secs(10)).await, Ok(Some(0)));

    // Stopped: the same commands on the store directly.
    let (code, out, err) = queue_cli(&config, &["list", "--dead"]);
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(out.lines().count(), 3, "{out}");
    let (_, shown, _) = queue_cli(&config, &["show", "--id", &id_a, "--body"]);
    assert!(
        shown.contains("4242") && !shown.contains("s3cr3t"),
        "{shown}"
    );
    let (code, out, _) = queue_cli(&config, &["redrive", "--id", &id_a]);
    assert_eq!((code, out.trim()), (Some(0), "redriven: 1"));
    let (_, out, _) = queue_cli(&config, &["list"]);
    assert_eq!(out.lines().count(), 2, "{out}");
    let (code, out, _) = queue_cli(&config, &["drop", "--dead", "--route", "b"]);
    assert_eq!((code, out.trim()), (Some(0), "dropped: 1"));

    // The redriven one is delivered at the next start.
    let mut gw = Hookgate::start(&config).await;
    eventually(|| app.count() == 5).await;
    assert_eq!(&app.received()[4].body[..], secret_body);
    assert_eq!(gw.terminate(Duration::from_secs(10)).await, Ok(Some(0)));
    let (_, out, _) = queue_cli(&config, &["list"]);
    let (_, dead, _) = queue_cli(&config, &["list", "--dead"]);
    assert_eq!(
        (out.lines().count(), dead.lines().count()),
        (1, 1),
        "{out}{dead}"
    );
}

#[tokio::test]
async fn sigterm_finishes_the_delivery_in_flight_and_leaves_the_rest_for_the_next_start() {
    let dir = tempfile::tempdir().unwrap();
    let app = Upstream::start().await;
    app.answer_with(Answer {
        delay: Duration::from_millis(1500),
        ..Answer::default()
    });
    let config = write_config(dir.path(), app.addr);
    let mut gw = Hookgate::start(&config).await;
    for i in 0..3 {
        let id = format!("term_{i}");
        let r = post_signed(&gw.url("/webhooks/a"), &id, id.as_bytes()).await;
        assert_eq!(r.status, StatusCode::ACCEPTED);
    }
    // The first delivery is in flight (the app takes 1.5 s): SIGTERM now.
    eventually(|| app.count() == 1).await;
    assert_eq!(gw.terminate(Duration::from_secs(10)).await, Ok(Some(0)));
    assert!(
        gw.logged("\"result\":\"delivered\""),
        "the delivery in flight was not finished"
    );
    assert_eq!(app.count(), 1, "a new delivery started after SIGTERM");
    let (_, pending, _) = queue_cli(&config, &["list"]);
    assert_eq!(pending.lines().count(), 3, "{pending}");
    app.answer_status(200);
    app.answer_with(Answer::default());
    let mut gw = Hookgate::start(&config).await;
    eventually(|| app.count() == 3).await;
    let bodies: Vec<String> = app
        .received()
        .iter()
        .map(|r| String::from_utf8_lossy(&r.body).into_owned())
        .collect();
    assert_eq!(bodies, ["term_0", "term_1", "term_2"]);
    assert_eq!(gw.terminate(Duration::from_secs(10)).await, Ok(Some(0)));
}

#[tokio::test]
async fn sighup_keeps_the_queue_delivering_and_names_queue_changes_as_needing_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let addr = down_app().await;
    let config = write_config(dir.path(), addr);
    let mut gw = Hookgate::start(&config).await;
    for i in 0..4 {
        let id = format!("hup_{i}");
        let r = post_signed(&gw.url("/webhooks/a"), &id, id.as_bytes()).await;
        assert_eq!(r.status, StatusCode::ACCEPTED);
    }
    // A reload that also changes [queue]: the routes reload, the queue keeps
    // its store and settings, and the log says the change waits for a restart.
    let text = std::fs::read_to_string(&config)
        .unwrap()
        .replace("retry_max = \"200ms\"", "retry_max = \"300ms\"");
    std::fs::write(&config, text).unwrap();
    gw.signal(nix::sys::signal::Signal::SIGHUP);
    gw.wait_logged("SIGHUP: reloading").await;
    gw.wait_logged("\"field\":\"queue\"").await;
    let r = post_signed(&gw.url("/webhooks/a"), "hup_4", b"hup_4").await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "accepting after the reload");
    let app = Upstream::serve(TcpListener::bind(addr).await.unwrap());
    eventually(|| app.count() == 5).await;
    let bodies: Vec<String> = app
        .received()
        .iter()
        .map(|r| String::from_utf8_lossy(&r.body).into_owned())
        .collect();
    assert_eq!(bodies, ["hup_0", "hup_1", "hup_2", "hup_3", "hup_4"]);
    assert_eq!(gw.terminate(Duration::from_secs(10)).await, Ok(Some(0)));
}

/// A small tmpfs mounted on a fresh directory for the test's life: a disk
/// that really fills (ENOSPC), not a `max_bytes` hookgate checks itself.
struct SmallDisk {
    dir: tempfile::TempDir,
}

impl SmallDisk {
    fn mount(size: &str) -> SmallDisk {
        let dir = tempfile::tempdir().unwrap();
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir.path())
            .output()
            .expect("mount(8) runs");
        assert!(
            out.status.success(),
            "this test mounts a tmpfs (root, as in CI): {}",
            String::from_utf8_lossy(&out.stderr)
        );
        SmallDisk { dir }
    }
}

impl SmallDisk {
    /// The volume grown, as an operator would.
    fn grow(&self, size: &str) {
        let ok = Command::new("mount")
            .args(["-o", &format!("remount,size={size}")])
            .arg(self.dir.path())
            .status()
            .unwrap()
            .success();
        assert!(ok, "remount");
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = Command::new("umount")
            .arg("-l")
            .arg(self.dir.path())
            .status();
    }
}

#[tokio::test]
async fn a_full_disk_answers_503_queue_unavailable_is_logged_and_loses_nothing_accepted() {
    let disk = SmallDisk::mount("1m");
    let dir = tempfile::tempdir().unwrap();
    let addr = down_app().await;
    let path = dir.path().join("hookgate.toml");
    // max_bytes far above the disk: the disk fills first.
    std::fs::write(
        &path,
        queue_toml(
            &format!("http://{addr}"),
            &disk.dir.path().join("queue"),
            "max_bytes = \"1GiB\"",
        ),
    )
    .unwrap();
    let mut gw = Hookgate::start(&path).await;
    let body = vec![b'x'; 48 << 10];
    let (mut accepted, mut refused) = (Vec::new(), None);
    for i in 0..64 {
        let id = format!("enospc_{i}");
        let r = post_signed(&gw.url("/webhooks/a"), &id, &body).await;
        match r.status {
            StatusCode::ACCEPTED => accepted.push(id),
            StatusCode::SERVICE_UNAVAILABLE => {
                assert_eq!(r.text(), r#"{"error":"queue_unavailable"}"#);
                assert!(r.headers.contains_key("retry-after"));
                refused = Some(id);
                break;
            }
            other => panic!("unexpected {other}: {}", r.text()),
        }
    }
    let refused = refused.expect("a 1 MiB disk never filled");
    assert!(!accepted.is_empty());
    gw.wait_logged("queue: storing failed; answering 503").await;
    assert_eq!(
        metric(
            gw.admin.unwrap(),
            "hookgate_requests_total{outcome=\"queued\",route=\"a\"}"
        )
        .await as usize,
        accepted.len()
    );
    let admin = gw.admin.unwrap();
    // The volume grown: ready (its store reopened, redb refusing every
    // transaction after an I/O error until then) without a restart, and
    // everything answered 202 reaches the app, once, in order.
    disk.grow("8m");
    let mut ready = StatusCode::SERVICE_UNAVAILABLE;
    for _ in 0..50 {
        ready = send(&format!("http://{admin}/readyz"), Method::GET, &[], b"")
            .await
            .status;
        if ready == StatusCode::OK {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        ready,
        StatusCode::OK,
        "still not ready after the volume grew: {}",
        gw.log_text()
    );
    let app = Upstream::serve(TcpListener::bind(addr).await.unwrap());
    eventually(|| app.count() >= accepted.len()).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let got: Vec<String> = app
        .received()
        .iter()
        .map(|r| r.headers["svix-id"].to_str().unwrap().to_string())
        .collect();
    assert_eq!(got, accepted);
    // The refused one, resent by its provider now that there is room, is accepted.
    let r = post_signed(&gw.url("/webhooks/a"), &refused, &body).await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.text());
    assert_eq!(gw.terminate(Duration::from_secs(10)).await, Ok(Some(0)));
}
