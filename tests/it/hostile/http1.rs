//! Issue 11's holes over raw HTTP/1.1 bytes: repeated or `Connection`-named
//! signature headers, Host validation, in-flight slots held by slow bodies, `..;`
//! segments, transfer codings, X-Forwarded-Proto, the upstream body timeout and
//! the admin listener's header timeout.

use std::time::{Duration, Instant};

use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

use super::raw::*;
use crate::support::{self, Gateway};

const BAD_REQUEST: &str = r#"{"error":"bad_request"}"#;

/// Sends `bytes`, expects 400 `bad_request`, nothing forwarded.
async fn assert_bad_request(gw: &Gateway, up: &RawUpstream, bytes: &[u8], case: &str) {
    let before = up.count();
    let ex = exchange(gw.addr, bytes, 1).await;
    settle().await;
    assert_eq!(ex.status(), Some(400), "[{case}] {}", ex.describe());
    assert_eq!(
        ex.responses[0].text(),
        BAD_REQUEST,
        "[{case}] {}",
        ex.describe()
    );
    assert_eq!(up.count(), before, "[{case}] must not be forwarded");
    up.assert_only(&[], case);
}

// ---- a signature, id or timestamp header sent twice --------------------------

/// The genuine request with a second `name` line right after the first,
/// carrying `other`: after it (the attacker's value comes second), before it,
/// and the very same value twice, and in another letter case.
async fn duplicate_header_is_rejected(signed: impl Fn() -> Signed, name: &str, other: &str) {
    let up = RawUpstream::start().await;
    let gw = gateway(&up, "").await;
    /// The two lines for (name, genuine value, other value).
    type Lines = fn(&str, &str, &str) -> [String; 2];
    let variants: [(&str, Lines); 4] = [
        ("attacker second", |n, genuine, other| {
            [format!("{n}: {genuine}"), format!("{n}: {other}")]
        }),
        ("attacker first", |n, genuine, other| {
            [format!("{n}: {other}"), format!("{n}: {genuine}")]
        }),
        ("same value twice", |n, genuine, _| {
            [format!("{n}: {genuine}"), format!("{n}: {genuine}")]
        }),
        ("other letter case", |n, genuine, other| {
            [
                format!("{n}: {genuine}"),
                format!("{}: {other}", n.to_ascii_uppercase()),
            ]
        }),
    ];
    for (variant, lines_for) in variants {
        let case = format!("{name} twice, {variant}");
        let s = signed();
        let genuine = s.value(name).to_string();
        let mut lines = vec!["host: hookgate.test".to_string()];
        for (n, v) in &s.headers {
            if n.eq_ignore_ascii_case(name) {
                lines.extend(lines_for(n, &genuine, other));
            } else {
                lines.push(format!("{n}: {v}"));
            }
        }
        lines.push(format!("content-length: {}", s.body.len()));
        assert_bad_request(&gw, &up, &h1(&s.path, &lines, &s.body), &case).await;
    }
    still_serving(&gw, &up, name).await;
}

#[tokio::test]
async fn duplicate_svix_id_header_is_rejected_400_and_not_forwarded() {
    let sign = || Signed::svix(&format!("msg_{}", support::now_secs()), &body("svix-id"));
    duplicate_header_is_rejected(sign, "svix-id", "msg_attacker").await;
}

#[tokio::test]
async fn duplicate_svix_signature_header_is_rejected_400_and_not_forwarded() {
    let sign = || Signed::svix("msg_dup_sig", &body("svix-signature"));
    duplicate_header_is_rejected(sign, "svix-signature", "v1,AAAA").await;
}

#[tokio::test]
async fn duplicate_svix_timestamp_header_is_rejected_400_and_not_forwarded() {
    let sign = || Signed::svix("msg_dup_ts", &body("svix-timestamp"));
    duplicate_header_is_rejected(sign, "svix-timestamp", "1").await;
}

#[tokio::test]
async fn duplicate_levanta_signature_header_is_rejected_400_and_not_forwarded() {
    let sign = || Signed::levanta(&body("levanta"));
    duplicate_header_is_rejected(sign, "x-levanta-hmac-sha256", "00").await;
}

#[tokio::test]
async fn duplicate_leaflink_signature_header_is_rejected_400_and_not_forwarded() {
    let sign = || Signed::leaflink(&body("leaflink"));
    duplicate_header_is_rejected(sign, "LL-Signature", "AAAA").await;
}

#[tokio::test]
async fn duplicate_github_signature_header_is_rejected_400_and_not_forwarded() {
    let sign = || Signed::github("/webhooks/github", "d-1", &body("github"));
    duplicate_header_is_rejected(sign, "x-hub-signature-256", "sha256=00").await;
}

#[tokio::test]
async fn duplicate_github_delivery_id_header_is_rejected_400_and_not_forwarded() {
    let sign = || Signed::github("/webhooks/github", "d-genuine", &body("github-id"));
    duplicate_header_is_rejected(sign, "x-github-delivery", "d-attacker").await;
}

// ---- Connection naming a signature header -----------------------------------

#[tokio::test]
async fn connection_header_naming_a_signature_header_is_rejected_400_and_not_forwarded() {
    let up = RawUpstream::start().await;
    let gw = gateway(&up, "").await;
    let cases: Vec<(Signed, &str)> = vec![
        (Signed::svix("msg_conn_1", &body("c1")), "svix-signature"),
        (
            Signed::svix("msg_conn_2", &body("c2")),
            "keep-alive, svix-id",
        ),
        (Signed::svix("msg_conn_3", &body("c3")), "svix-timestamp"),
        (Signed::svix("msg_conn_4", &body("c4")), "close, SVIX-ID"),
        (Signed::levanta(&body("c5")), "x-levanta-hmac-sha256"),
        (Signed::leaflink(&body("c6")), "LL-Signature"),
        (
            Signed::github("/webhooks/github", "d-conn", &body("c7")),
            "x-hub-signature-256",
        ),
    ];
    for (s, connection) in cases {
        let mut lines = vec!["host: hookgate.test".to_string()];
        lines.extend(s.lines());
        lines.push(format!("connection: {connection}"));
        lines.push(format!("content-length: {}", s.body.len()));
        let case = format!("Connection: {connection}");
        assert_bad_request(&gw, &up, &h1(&s.path, &lines, &s.body), &case).await;
    }
    still_serving(&gw, &up, "after Connection cases").await;
}

#[tokio::test]
async fn connection_header_naming_other_headers_still_strips_them_and_forwards() {
    let up = RawUpstream::start().await;
    let gw = gateway(&up, "").await;
    let s = Signed::levanta(&body("conn-private"));
    let mut lines = vec!["host: hookgate.test".to_string()];
    lines.extend(s.lines());
    lines.push("connection: keep-alive, x-private".into());
    lines.push("x-private: hop".into());
    lines.push(format!("content-length: {}", s.body.len()));
    let ex = exchange(gw.addr, &h1(&s.path, &lines, &s.body), 1).await;
    assert_eq!(ex.status(), Some(200), "{}", ex.describe());
    up.assert_forwarded_once(&s, "Connection: x-private");
    up.assert_only(&[&s], "Connection: x-private");
    let got = &up.requests()[0];
    assert!(got.values("x-private").is_empty(), "{}", got.describe());
    assert!(got.values("connection").is_empty(), "{}", got.describe());
}

// ---- Host ---------------------------------------------------------------------

fn with_host(s: &Signed, hosts: &[&str]) -> Vec<u8> {
    let mut lines: Vec<String> = hosts.iter().map(|h| format!("Host: {h}")).collect();
    lines.extend(s.lines());
    lines.push(format!("content-length: {}", s.body.len()));
    h1(&s.path, &lines, &s.body)
}

#[tokio::test]
async fn http1_request_without_host_is_rejected_400_and_not_forwarded() {
    let up = RawUpstream::start().await;
    let gw = gateway(&up, "").await;
    let s = Signed::levanta(&body("no-host"));
    assert_bad_request(&gw, &up, &with_host(&s, &[]), "no Host").await;
    still_serving(&gw, &up, "after no Host").await;
}

#[tokio::test]
async fn two_host_lines_are_rejected_400_and_not_forwarded() {
    let up = RawUpstream::start().await;
    let gw = gateway(&up, "").await;
    for hosts in [
        ["hookgate.test", "evil.example"],
        ["hookgate.test", "hookgate.test"],
    ] {
        let s = Signed::levanta(&body("two-hosts"));
        let case = format!("Host lines {hosts:?}");
        assert_bad_request(&gw, &up, &with_host(&s, &hosts), &case).await;
    }
    still_serving(&gw, &up, "after two Hosts").await;
}

#[tokio::test]
async fn invalid_host_is_rejected_400_and_not_forwarded() {
    let up = RawUpstream::start().await;
    let gw = gateway(&up, "").await;
    for host in ["evil.example@internal:99999/x?y", "a b", "x:99999"] {
        let s = Signed::levanta(&body("bad-host"));
        let case = format!("Host: {host:?}");
        assert_bad_request(&gw, &up, &with_host(&s, &[host]), &case).await;
    }
    still_serving(&gw, &up, "after invalid Hosts").await;
}

#[tokio::test]
async fn valid_host_is_forwarded_and_the_app_sees_it() {
    let up = RawUpstream::start().await;
    let gw = gateway(&up, "").await;
    let mut sent = Vec::new();
    for host in [
        "hookgate.test",
        "hooks.example.com:8443",
        "127.0.0.1:8080",
        "[::1]:80",
    ] {
        let s = Signed::levanta(&body("good-host"));
        let ex = exchange(gw.addr, &with_host(&s, &[host]), 1).await;
        assert_eq!(ex.status(), Some(200), "Host {host}: {}", ex.describe());
        up.assert_forwarded_once(&s, host);
        let got = up
            .requests()
            .into_iter()
            .find(|r| r.body == s.body)
            .unwrap();
        assert_eq!(
            got.values("host"),
            vec![host.as_bytes()],
            "{}",
            got.describe()
        );
        sent.push(s);
    }
    up.assert_only(&sent.iter().collect::<Vec<_>>(), "valid hosts");
}

// ---- slow bodies and in-flight slots ------------------------------------------

#[tokio::test]
async fn slow_unsigned_bodies_do_not_hold_inflight_slots() {
    let up = RawUpstream::start().await;
    let gw = gateway(&up, "[limits]\nmax_inflight = 4\nbody_timeout = \"30s\"").await;
    // Eight clients (twice max_inflight) send headers and part of a body, then stall.
    let mut stalled = Vec::new();
    for _ in 0..8 {
        let mut s = TcpStream::connect(gw.addr).await.unwrap();
        s.write_all(
            b"POST /webhooks/levanta HTTP/1.1\r\nHost: x\r\nx-levanta-hmac-sha256: 00\r\ncontent-length: 1000\r\n\r\n0123456789",
        )
        .await
        .unwrap();
        stalled.push(s);
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let s = Signed::levanta(&body("past-slow-bodies"));
    let ex = exchange(gw.addr, &s.request(), 1).await;
    assert_eq!(
        ex.status(),
        Some(200),
        "a genuine delivery while 8 bodies trickle in: {}",
        ex.describe()
    );
    up.assert_only(&[&s], "slow bodies");
    up.assert_forwarded_once(&s, "slow bodies");
    drop(stalled);
}

#[tokio::test]
async fn a_body_trickled_past_body_timeout_is_answered_408_at_its_deadline_and_not_forwarded() {
    let up = RawUpstream::start().await;
    let gw = gateway(&up, "[limits]\nbody_timeout = \"1s\"").await;
    let mut s = TcpStream::connect(gw.addr).await.unwrap();
    // The head and a part of the body; then a byte every 200 ms, never all 1000.
    s.write_all(
        b"POST /webhooks/levanta HTTP/1.1\r\nHost: x\r\nx-levanta-hmac-sha256: 00\r\ncontent-length: 1000\r\n\r\n0123456789",
    )
    .await
    .unwrap();
    let head_sent = Instant::now();
    let mut answer = None;
    for _ in 0..25 {
        if let Some(got) = closed_or_answered(&mut s, Duration::from_millis(200)).await {
            answer = Some(got);
            break;
        }
        if s.write_all(b"x").await.is_err() {
            break;
        }
    }
    let elapsed = head_sent.elapsed();
    let answer = answer.expect("an answer or a close within 5 s");
    assert!(
        String::from_utf8_lossy(&answer).starts_with("HTTP/1.1 408"),
        "told 408: {:?}",
        String::from_utf8_lossy(&answer)
    );
    // Due 1 s after the head, however busy the client keeps it; a 200 ms read and slack.
    assert!(
        elapsed >= Duration::from_millis(900) && elapsed < Duration::from_millis(2500),
        "answered {elapsed:?} after the head, not at body_timeout (1 s)"
    );
    assert_eq!(
        up.count(),
        0,
        "nothing of the unfinished body reached the app"
    );
}

// ---- dot segments with parameters ----------------------------------------------

#[tokio::test]
async fn dot_segments_with_path_parameters_are_rejected_400_and_not_forwarded() {
    let up = RawUpstream::start().await;
    let gw = gateway(&up, "").await;
    for path in [
        "/hooks/gh/..;/admin",
        "/hooks/gh/%2e%2e;/admin",
        "/hooks/gh/.;/x",
        "/hooks/gh/..;jsessionid=1/admin",
        "/hooks/gh/%2E%2E;/admin",
        "/hooks/gh/.%2e;/admin",
    ] {
        let s = Signed::github(path, "d-dots", &body("dots"));
        assert_bad_request(&gw, &up, &s.request(), path).await;
    }
    // A clean path under the prefix is served.
    let s = Signed::github("/hooks/gh/push", "d-clean", &body("clean"));
    let ex = exchange(gw.addr, &s.request(), 1).await;
    assert_eq!(ex.status(), Some(200), "{}", ex.describe());
    up.assert_forwarded_once(&s, "clean prefix path");
    up.assert_only(&[&s], "dot segments");
}

// ---- transfer codings ----------------------------------------------------------

#[tokio::test]
async fn gzip_then_chunked_transfer_coding_is_501_and_not_forwarded() {
    let up = RawUpstream::start().await;
    let gw = gateway(&up, "").await;
    for te in ["gzip, chunked", "deflate, chunked", "gzip,chunked"] {
        let s = Signed::levanta(&body("gzip-chunked"));
        let mut lines = vec!["host: hookgate.test".to_string()];
        lines.extend(s.lines());
        lines.push(format!("transfer-encoding: {te}"));
        let ex = exchange(gw.addr, &h1(&s.path, &lines, &chunked(&s.body, 16)), 1).await;
        settle().await;
        assert_eq!(ex.status(), Some(501), "{te}: {}", ex.describe());
        assert_eq!(ex.responses[0].text(), r#"{"error":"not_implemented"}"#);
        assert_eq!(up.count(), 0, "{te}: must not be forwarded");
    }
    still_serving(&gw, &up, "after gzip, chunked").await;
}

#[tokio::test]
async fn gzip_transfer_coding_alone_is_refused_400_and_not_forwarded() {
    let up = RawUpstream::start().await;
    let gw = gateway(&up, "").await;
    let s = Signed::levanta(&body("gzip"));
    let mut lines = vec!["host: hookgate.test".to_string()];
    lines.extend(s.lines());
    lines.push("transfer-encoding: gzip".into());
    let ex = exchange(gw.addr, &h1(&s.path, &lines, &s.body), 1).await;
    settle().await;
    assert_eq!(ex.status(), Some(400), "{}", ex.describe());
    assert_eq!(up.count(), 0, "must not be forwarded");
    still_serving(&gw, &up, "after gzip").await;
}

// ---- X-Forwarded-Proto ------------------------------------------------------------

#[tokio::test]
async fn client_x_forwarded_proto_is_replaced_not_appended() {
    let up = RawUpstream::start().await;
    let gw = gateway(&up, "").await;
    for claimed in [vec!["https"], vec!["https", "wss"], vec!["http"]] {
        let s = Signed::levanta(&body("xfp"));
        let mut lines = vec!["host: hookgate.test".to_string()];
        lines.extend(claimed.iter().map(|v| format!("X-Forwarded-Proto: {v}")));
        lines.extend(s.lines());
        lines.push(format!("content-length: {}", s.body.len()));
        let ex = exchange(gw.addr, &h1(&s.path, &lines, &s.body), 1).await;
        assert_eq!(ex.status(), Some(200), "{}", ex.describe());
        let got = up
            .requests()
            .into_iter()
            .find(|r| r.body == s.body)
            .unwrap();
        assert_eq!(
            got.values("x-forwarded-proto"),
            vec![b"http".as_slice()],
            "client sent {claimed:?}; the app must see only the scheme used:\n{}",
            got.describe()
        );
    }
}

// ---- the upstream response body ----------------------------------------------------

#[tokio::test]
async fn stalled_upstream_response_body_is_cut_off_within_the_upstream_timeout() {
    let up = RawUpstream::start_with(Reply::StallBody).await;
    let gw = Gateway::start(&config(&up.url(), "timeout = \"1s\"")).await;
    let s = Signed::levanta(&body("stall"));
    let started = Instant::now();
    let mut stream = TcpStream::connect(gw.addr).await.unwrap();
    stream.write_all(&s.request()).await.unwrap();
    // Read until the gateway ends the response (EOF or reset), for at most 10 s.
    let mut got = Vec::new();
    let mut ended = false;
    while started.elapsed() < Duration::from_secs(10) {
        match closed_or_answered(&mut stream, Duration::from_millis(200)).await {
            Some(bytes) if bytes.is_empty() => {
                ended = true;
                break;
            }
            Some(bytes) => got.extend_from_slice(&bytes),
            None => {}
        }
    }
    let elapsed = started.elapsed();
    let text = String::from_utf8_lossy(&got);
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
    assert!(
        ended && elapsed < Duration::from_secs(5),
        "the provider's response must end within about upstream.timeout, not hang \
         (ended {ended} after {elapsed:?}, got {text:?})"
    );
    let body_start = find(&got, b"\r\n\r\n").unwrap() + 4;
    assert!(
        got.len() - body_start < 100,
        "the body was cut short: {text:?}"
    );
}

// ---- the admin listener --------------------------------------------------------------

#[tokio::test]
async fn admin_connection_that_sends_nothing_is_closed_after_header_timeout() {
    let up = RawUpstream::start().await;
    let gw = gateway(&up, "[limits]\nheader_timeout = \"1s\"").await;
    let admin = gw.admin.unwrap();
    let mut idle = Vec::new();
    for _ in 0..10 {
        idle.push(TcpStream::connect(admin).await.unwrap());
    }
    let started = Instant::now();
    for s in &mut idle {
        let left = Duration::from_secs(6).saturating_sub(started.elapsed());
        let got = closed_or_answered(s, left).await;
        assert_eq!(
            got,
            Some(Vec::new()),
            "an idle admin connection is closed within header_timeout (1 s) + slack"
        );
    }
    let reply = support::send(
        &format!("http://{admin}/healthz"),
        http::Method::GET,
        &[],
        b"",
    )
    .await;
    assert_eq!(reply.status, http::StatusCode::OK);
}

#[tokio::test]
async fn admin_slowloris_is_cut_off_by_header_timeout() {
    let up = RawUpstream::start().await;
    let gw = gateway(&up, "[limits]\nheader_timeout = \"1s\"").await;
    let admin = gw.admin.unwrap();
    let started = Instant::now();
    let mut s = TcpStream::connect(admin).await.unwrap();
    let request = b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n";
    let mut sent = request.len();
    let mut answer = Vec::new();
    for (i, byte) in request.iter().enumerate() {
        if s.write_all(&[*byte]).await.is_err() {
            sent = i;
            break;
        }
        // One byte a second.
        if let Some(got) = closed_or_answered(&mut s, Duration::from_secs(1)).await {
            sent = i + 1;
            answer = got;
            break;
        }
    }
    let elapsed = started.elapsed();
    assert!(
        sent < 6 && elapsed < Duration::from_secs(6),
        "cut off after {sent} bytes ({elapsed:?}), not allowed to finish its headers: {:?}",
        String::from_utf8_lossy(&answer)
    );
    assert!(
        answer.is_empty() || String::from_utf8_lossy(&answer).starts_with("HTTP/1.1 408"),
        "closed, or told 408: {:?}",
        String::from_utf8_lossy(&answer)
    );
}
