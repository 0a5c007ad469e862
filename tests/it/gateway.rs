//! The whole path of one webhook through a real gateway, real sockets and a recording upstream.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::support::*;
use http::{Method, StatusCode};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const BODY: &[u8] = br#"{"type":"order.created","data":{"id":"ord_1","total":"12.50"}}"#;

async fn setup() -> (Upstream, Gateway) {
    let upstream = Upstream::start().await;
    let gateway = Gateway::start(&config(&upstream, "")).await;
    (upstream, gateway)
}

/// Asserts the application received exactly what the provider sent.
fn assert_forwarded_identically(
    got: &Received,
    sent: &[(String, String)],
    path: &str,
    body: &[u8],
) {
    assert_eq!(got.method, Method::POST);
    assert_eq!(got.uri, path);
    assert_eq!(&got.body[..], body, "body bytes differ");
    for (name, value) in sent {
        assert_eq!(
            got.headers.get(name.as_str()).map(|v| v.as_bytes()),
            Some(value.as_bytes()),
            "header {name} not forwarded byte for byte"
        );
    }
    assert_eq!(got.headers["x-forwarded-for"], "127.0.0.1");
    assert_eq!(got.headers["x-forwarded-proto"], "http");
}

fn genuine(provider: &str, body: &[u8], id: &str) -> (String, Vec<(String, String)>) {
    match provider {
        "svix" => (
            "/webhooks/levers".into(),
            svix_headers(SVIX_SECRET, id, now_secs(), body, "svix-"),
        ),
        "standard-webhooks" => (
            "/webhooks/stdwh".into(),
            svix_headers(SVIX_SECRET, id, now_secs(), body, "webhook-"),
        ),
        "levanta" => (
            "/webhooks/levanta".into(),
            levanta_headers(LEVANTA_SECRET, body),
        ),
        "leaflink" => (
            "/webhooks/leaflink".into(),
            leaflink_headers(LEAFLINK_SECRET, body),
        ),
        _ => unreachable!(),
    }
}

const PROVIDERS: [&str; 4] = ["svix", "standard-webhooks", "levanta", "leaflink"];

#[tokio::test]
async fn genuine_webhooks_are_forwarded_byte_for_byte_and_the_app_answer_returns() {
    let (upstream, gw) = setup().await;
    upstream.answer_with(Answer {
        status: StatusCode::ACCEPTED,
        headers: vec![("x-app-said".into(), "hello".into())],
        body: bytes::Bytes::from_static(b"app body"),
        delay: Duration::ZERO,
    });
    for (i, provider) in PROVIDERS.iter().enumerate() {
        let (path, mut headers) = genuine(provider, BODY, &format!("msg_genuine_{i}"));
        headers.push(("content-type".into(), "application/json".into()));
        headers.push(("x-custom-trace".into(), "  spaced value ".trim().into()));
        let reply = post(&gw.url(&format!("{path}?attempt=1")), &headers, BODY).await;
        assert_eq!(
            reply.status,
            StatusCode::ACCEPTED,
            "{provider}: {}",
            reply.text()
        );
        assert_eq!(&reply.body[..], b"app body");
        assert_eq!(reply.headers["x-app-said"], "hello");
        let got = upstream.received();
        assert_eq!(got.len(), i + 1, "{provider}");
        assert_forwarded_identically(&got[i], &headers, &format!("{path}?attempt=1"), BODY);
    }
}

#[tokio::test]
async fn forged_tampered_wrong_secret_and_missing_header_are_rejected_and_not_forwarded() {
    let (upstream, gw) = setup().await;
    for provider in PROVIDERS {
        let (path, headers) = genuine(provider, BODY, "msg_forged");
        let url = gw.url(&path);

        // Tampered body: the signature was made over other bytes.
        let mut tampered = BODY.to_vec();
        tampered[10] ^= 0x01;
        let r = post(&url, &headers, &tampered).await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{provider} tampered");
        assert_eq!(r.text(), r#"{"error":"invalid_signature"}"#);

        // Forged: a signature of the right shape but made up.
        let forged: Vec<(String, String)> = headers
            .iter()
            .map(|(k, v)| {
                if k.ends_with("signature") || k.ends_with("sha256") || k == "LL-Signature" {
                    let flipped = if v.ends_with('A') { "B" } else { "A" };
                    (k.clone(), format!("{}{flipped}", &v[..v.len() - 1]))
                } else {
                    (k.clone(), v.clone())
                }
            })
            .collect();
        let r = post(&url, &forged, BODY).await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{provider} forged");

        // Signed with a secret that is not configured.
        let (_, wrong) = match provider {
            "svix" => (
                String::new(),
                svix_headers(
                    "whsec_dGhpcyBpcyBub3QgdGhlIGtleQ==",
                    "msg_w",
                    now_secs(),
                    BODY,
                    "svix-",
                ),
            ),
            "standard-webhooks" => (
                String::new(),
                svix_headers(
                    "whsec_dGhpcyBpcyBub3QgdGhlIGtleQ==",
                    "msg_w",
                    now_secs(),
                    BODY,
                    "webhook-",
                ),
            ),
            "levanta" => (String::new(), levanta_headers("not-the-secret", BODY)),
            _ => (String::new(), leaflink_headers("not-the-secret", BODY)),
        };
        let r = post(&url, &wrong, BODY).await;
        assert_eq!(
            r.status,
            StatusCode::UNAUTHORIZED,
            "{provider} wrong secret"
        );
        assert_eq!(r.text(), r#"{"error":"invalid_signature"}"#);

        // No signature header at all.
        let r = post(&url, &[], BODY).await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{provider} missing");
        assert_eq!(r.text(), r#"{"error":"missing_signature"}"#);
    }
    assert_eq!(
        upstream.count(),
        0,
        "the application saw a rejected request"
    );
}

#[tokio::test]
async fn either_secret_of_a_rotation_verifies() {
    let (upstream, gw) = setup().await;
    for (i, secret) in [SVIX_SECRET, SVIX_SECRET_OLD].iter().enumerate() {
        let h = svix_headers(secret, &format!("msg_rot_{i}"), now_secs(), BODY, "svix-");
        let r = post(&gw.url("/webhooks/levers"), &h, BODY).await;
        assert_eq!(r.status, StatusCode::OK, "secret {i}");
    }
    assert_eq!(upstream.count(), 2);
}

const FIXED_NOW: u64 = 1_700_000_000;
fn fixed_clock() -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(FIXED_NOW)
}

#[tokio::test]
async fn stale_and_future_timestamps_are_rejected_and_the_boundary_is_accepted() {
    let upstream = Upstream::start().await;
    let gw = Gateway::start_with_clock(&config(&upstream, ""), fixed_clock).await;
    let now = i64::try_from(FIXED_NOW).unwrap();
    let cases = [
        (now - 301, StatusCode::UNAUTHORIZED),
        (now + 301, StatusCode::UNAUTHORIZED),
        (now - 300, StatusCode::OK),
        (now + 300, StatusCode::OK),
    ];
    for (i, (ts, want)) in cases.iter().enumerate() {
        let h = svix_headers(SVIX_SECRET, &format!("msg_ts_{i}"), *ts, BODY, "svix-");
        let r = post(&gw.url("/webhooks/levers"), &h, BODY).await;
        assert_eq!(r.status, *want, "ts offset {}", ts - now);
        if *want == StatusCode::UNAUTHORIZED {
            assert_eq!(r.text(), r#"{"error":"stale_timestamp"}"#);
        }
    }
    assert_eq!(upstream.count(), 2);
}

#[tokio::test]
async fn delivered_id_sent_again_is_a_duplicate_and_not_forwarded() {
    let (upstream, gw) = setup().await;
    let h = svix_headers(SVIX_SECRET, "msg_dup", now_secs(), BODY, "svix-");
    let first = post(&gw.url("/webhooks/levers"), &h, BODY).await;
    assert_eq!(first.status, StatusCode::OK);
    let again = post(&gw.url("/webhooks/levers"), &h, BODY).await;
    assert_eq!(again.status, StatusCode::OK);
    assert_eq!(again.text(), r#"{"status":"duplicate"}"#);
    // A provider without ids: the same signed body is the same delivery.
    let l = levanta_headers(LEVANTA_SECRET, BODY);
    assert_eq!(
        post(&gw.url("/webhooks/levanta"), &l, BODY).await.status,
        StatusCode::OK
    );
    let again = post(&gw.url("/webhooks/levanta"), &l, BODY).await;
    assert_eq!(again.text(), r#"{"status":"duplicate"}"#);
    assert_eq!(upstream.count(), 2);
}

#[tokio::test]
async fn app_failure_releases_the_id_so_the_retry_is_forwarded_and_delivered_once() {
    let (upstream, gw) = setup().await;
    let h = svix_headers(SVIX_SECRET, "msg_retry", now_secs(), BODY, "svix-");
    upstream.answer_status(500);
    let r = post(&gw.url("/webhooks/levers"), &h, BODY).await;
    assert_eq!(
        r.status,
        StatusCode::INTERNAL_SERVER_ERROR,
        "the app's own answer comes back"
    );
    upstream.answer_status(200);
    assert_eq!(
        post(&gw.url("/webhooks/levers"), &h, BODY).await.status,
        StatusCode::OK
    );
    let dup = post(&gw.url("/webhooks/levers"), &h, BODY).await;
    assert_eq!(dup.text(), r#"{"status":"duplicate"}"#);
    assert_eq!(
        upstream.count(),
        2,
        "forwarded on the first try and the retry, not on the duplicate"
    );
}

#[tokio::test]
async fn app_down_then_up_the_retry_gets_through() {
    // A port with nothing listening on it.
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let toml = config(&Upstream::start().await, "").replace(
        "url = \"http://127.0.0.1:",
        &format!("url = \"http://127.0.0.1:{port}\"\n#"),
    );
    let gw = Gateway::start(&toml).await;
    let h = svix_headers(SVIX_SECRET, "msg_down", now_secs(), BODY, "svix-");
    let r = post(&gw.url("/webhooks/levers"), &h, BODY).await;
    assert_eq!(r.status, StatusCode::BAD_GATEWAY);
    assert_eq!(r.text(), r#"{"error":"upstream_unavailable"}"#);

    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
        .await
        .unwrap();
    let app = Upstream::serve(listener);
    let r = post(&gw.url("/webhooks/levers"), &h, BODY).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(app.count(), 1);
}

#[tokio::test]
async fn slow_app_gets_504_and_the_id_is_released() {
    let upstream = Upstream::start().await;
    let gw =
        Gateway::start(&config(&upstream, "").replace("timeout = \"2s\"", "timeout = \"300ms\""))
            .await;
    upstream.answer_with(Answer {
        delay: Duration::from_secs(2),
        ..Answer::default()
    });
    let h = svix_headers(SVIX_SECRET, "msg_slow", now_secs(), BODY, "svix-");
    let r = post(&gw.url("/webhooks/levers"), &h, BODY).await;
    assert_eq!(r.status, StatusCode::GATEWAY_TIMEOUT);
    assert_eq!(r.text(), r#"{"error":"upstream_timeout"}"#);
    upstream.answer_with(Answer::default());
    let r = post(&gw.url("/webhooks/levers"), &h, BODY).await;
    assert_eq!(r.status, StatusCode::OK, "the retry is forwarded again");
}

#[tokio::test]
async fn same_id_in_flight_is_409_then_duplicate() {
    let upstream = Upstream::start().await;
    // The app holds the request well inside the upstream timeout, even on a loaded machine.
    let gw =
        Gateway::start(&config(&upstream, "").replace("timeout = \"2s\"", "timeout = \"20s\""))
            .await;
    upstream.answer_with(Answer {
        delay: Duration::from_millis(1500),
        ..Answer::default()
    });
    let h = svix_headers(SVIX_SECRET, "msg_inflight", now_secs(), BODY, "svix-");
    let url = gw.url("/webhooks/levers");
    let first = tokio::spawn({
        let (url, h) = (url.clone(), h.clone());
        async move { post(&url, &h, BODY).await }
    });
    eventually(|| upstream.count() == 1).await;
    let second = post(&url, &h, BODY).await;
    assert_eq!(second.status, StatusCode::CONFLICT);
    assert_eq!(second.text(), r#"{"error":"in_flight"}"#);
    assert_eq!(first.await.unwrap().status, StatusCode::OK);
    let third = post(&url, &h, BODY).await;
    assert_eq!(third.text(), r#"{"status":"duplicate"}"#);
    assert_eq!(upstream.count(), 1);
}

#[tokio::test]
async fn bodies_over_max_body_get_413_with_or_without_content_length() {
    let upstream = Upstream::start().await;
    let gw = Gateway::start(&config(
        &upstream,
        "[limits]\nmax_body = \"1KiB\"\nmax_buffered = \"1MiB\"",
    ))
    .await;
    let big = vec![b'x'; 2048];
    let r = post(
        &gw.url("/webhooks/levanta"),
        &levanta_headers(LEVANTA_SECRET, &big),
        &big,
    )
    .await;
    assert_eq!(r.status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(r.text(), r#"{"error":"body_too_large"}"#);

    // Chunked: no Content-Length, so the stream itself must be capped.
    let sig = levanta_headers(LEVANTA_SECRET, &big).remove(0).1;
    let mut s = tokio::net::TcpStream::connect(gw.addr).await.unwrap();
    let head = format!(
        "POST /webhooks/levanta HTTP/1.1\r\nhost: x\r\ntransfer-encoding: chunked\r\nx-levanta-hmac-sha256: {sig}\r\n\r\n"
    );
    s.write_all(head.as_bytes()).await.unwrap();
    for chunk in big.chunks(512) {
        let _ = s
            .write_all(format!("{:x}\r\n", chunk.len()).as_bytes())
            .await;
        let _ = s.write_all(chunk).await;
        let _ = s.write_all(b"\r\n").await;
    }
    let _ = s.write_all(b"0\r\n\r\n").await;
    let mut buf = vec![0u8; 1024];
    let n = tokio::time::timeout(Duration::from_secs(10), s.read(&mut buf))
        .await
        .unwrap()
        .unwrap();
    let text = String::from_utf8_lossy(&buf[..n]);
    assert!(text.starts_with("HTTP/1.1 413"), "{text}");
    assert_eq!(upstream.count(), 0);
}

#[tokio::test]
async fn non_utf8_body_is_verified_and_forwarded_unchanged() {
    let (upstream, gw) = setup().await;
    let body: Vec<u8> = (0..=255u8).rev().chain([0xff, 0xfe, 0x00, 0xc3]).collect();
    for (path, h) in [
        ("/webhooks/levanta", levanta_headers(LEVANTA_SECRET, &body)),
        (
            "/webhooks/leaflink",
            leaflink_headers(LEAFLINK_SECRET, &body),
        ),
    ] {
        let r = post(&gw.url(path), &h, &body).await;
        assert_eq!(r.status, StatusCode::OK, "{path}");
    }
    let got = upstream.received();
    assert_eq!(got.len(), 2);
    assert!(got.iter().all(|g| g.body[..] == body[..]));
}

#[tokio::test]
async fn leaflink_signature_with_trailing_newline_verifies() {
    let (upstream, gw) = setup().await;
    let mut h = leaflink_headers(LEAFLINK_SECRET, BODY);
    // Ruby's Base64.encode64 ends in "\n"; HTTP clients send it as trailing whitespace.
    h[0].1.push(' ');
    let r = post(&gw.url("/webhooks/leaflink"), &h, BODY).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(upstream.count(), 1);
}

#[tokio::test]
async fn unknown_path_is_404_and_wrong_method_is_405() {
    let (upstream, gw) = setup().await;
    let r = post(&gw.url("/wp-login.php"), &[], b"x").await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    assert_eq!(r.text(), r#"{"error":"no_route"}"#);
    let r = send(&gw.url("/webhooks/levers"), Method::GET, &[], b"").await;
    assert_eq!(r.status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(r.headers["allow"], "POST");
    assert_eq!(r.text(), r#"{"error":"method_not_allowed"}"#);
    assert_eq!(upstream.count(), 0);
}

#[tokio::test]
async fn prefix_routes_match_below_the_prefix() {
    let upstream = Upstream::start().await;
    let toml =
        config(&upstream, "").replace("path = \"/webhooks/levanta\"", "path = \"/levanta/*\"");
    let gw = Gateway::start(&toml).await;
    let h = levanta_headers(LEVANTA_SECRET, BODY);
    let r = post(&gw.url("/levanta/store-42"), &h, BODY).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(upstream.received()[0].uri, "/levanta/store-42");
    // A captured genuine delivery aimed through the prefix at another path of the app.
    for sneaky in [
        "/levanta/../admin",
        "/levanta/%2e%2e/admin",
        "/levanta//x",
        "/levanta/a%2Fb",
    ] {
        let r = post(&gw.url(sneaky), &h, BODY).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{sneaky}");
        assert_eq!(r.text(), r#"{"error":"bad_request"}"#);
    }
    assert_eq!(upstream.count(), 1);
}

fn hookgate_check(toml: &str) -> (i32, String) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("hookgate.toml");
    std::fs::write(&path, toml).unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_hookgate"))
        .args(["check", "--config"])
        .arg(&path)
        .env_remove("HOOKGATE_TEST_UNSET")
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).into_owned() + &String::from_utf8_lossy(&out.stdout),
    )
}

const GOOD: &str = r#"
[listen]
addr = "127.0.0.1:8443"
[upstream]
url = "http://127.0.0.1:3000"
[[routes]]
name = "levers"
path = "/webhooks/levers"
provider = "svix"
secrets = ["whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"]
"#;

#[test]
fn bad_configs_exit_2_and_name_the_field() {
    let (code, out) = hookgate_check(GOOD);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("levers"), "route table printed: {out}");
    let cases = [
        (GOOD.replace("[upstream]", "[upstream]\ntimeuot = \"5s\""), "timeuot"),
        (GOOD.replace("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "env:HOOKGATE_TEST_UNSET"), "routes[0].secrets[0]"),
        (GOOD.replace("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", ""), "routes[0].secrets[0]"),
        (GOOD.replace("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "file:/nonexistent/secret"), "routes[0].secrets[0]"),
        (GOOD.replace("[upstream]", "[upstream]\ntimeout = \"forever\""), "upstream.timeout"),
        (format!("{GOOD}[limits]\nmax_body = \"12 parsecs\"\n"), "limits.max_body"),
        (format!("{GOOD}[[routes]]\nname = \"b\"\npath = \"/webhooks/levers\"\nprovider = \"levanta\"\nsecrets = [\"k\"]\n"), "routes[1].path"),
        (GOOD.replace("provider = \"svix\"", "provider = \"svx\""), "routes[0].provider"),
        (GOOD.replace("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "whsec_!!!"), "routes[0].secrets[0]"),
        (GOOD.replace("[upstream]", "[upstream]\ntimeout = \"0s\""), "upstream.timeout"),
        (format!("{GOOD}[replay]\nttl = \"500000000000years\"\n"), "replay.ttl"),
        (format!("{GOOD}[replay]\nttl = \"5m\"\n"), "routes[0].tolerance"),
        (GOOD.replace("/webhooks/levers", "/webhooks/é"), "routes[0].path"),
    ];
    for (toml, field) in cases {
        let (code, out) = hookgate_check(&toml);
        assert_eq!(code, 2, "expected exit 2 for {field}: {out}");
        assert!(out.contains(field), "message should name {field}: {out}");
        assert!(
            out.contains("hookgate.toml"),
            "message should name the file: {out}"
        );
    }
}

#[test]
fn demo_once_blocks_every_forgery_and_forwards_every_genuine_webhook() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_hookgate"))
        .args(["demo", "--once"])
        .env("HOOKGATE_LOG", "warn")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let rows: Vec<&str> = stdout
        .lines()
        .filter(|l| l.contains(" | "))
        .skip(1)
        .collect();
    assert!(rows.len() >= 18, "{stdout}");
    for row in &rows {
        assert!(
            row.trim_end().ends_with("ok"),
            "unexpected demo result: {row}"
        );
    }
    for provider in ["svix", "standard-webhooks", "levanta", "leaflink"] {
        assert!(
            stdout.contains(provider),
            "{provider} missing from demo: {stdout}"
        );
    }
}
