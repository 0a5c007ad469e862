//! Memory under floods, measured on the real binary: peak RSS (VmHWM) stays within
//! idle RSS + `max_buffered` + 16 MiB whatever clients declare, and a genuine
//! delivery during the flood is served.

use std::path::Path;
use std::time::Duration;

use bytes::Bytes;
use http::StatusCode;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::support::child::Hookgate;
use crate::support::{self, levanta_headers, post, Upstream, LEVANTA_SECRET};

const MIB: u64 = 1 << 20;
const SLACK: u64 = 16 * MIB;
/// The shipped Kubernetes config's `max_body` (deploy/kubernetes/base/hookgate.toml).
const MAX_BODY: u64 = 25 * MIB;

/// Starts the binary in front of `upstream` with `limits`, warms it up with
/// one genuine delivery and returns it with its idle RSS.
async fn start(dir: &Path, upstream: &Upstream, limits: &str) -> (Hookgate, u64) {
    let path = dir.join("hookgate.toml");
    std::fs::write(&path, support::config(upstream, limits)).unwrap();
    let proc = Hookgate::start(&path).await;
    genuine(&proc, "warm-up").await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let idle = proc.status("VmRSS");
    proc.reset_peak();
    (proc, idle)
}

/// A genuine Levanta delivery; its status.
async fn genuine(proc: &Hookgate, tag: &str) -> StatusCode {
    let body = format!(
        r#"{{"type":"memory","tag":"{tag}","at":{}}}"#,
        support::now_secs()
    );
    let reply = post(
        &proc.url("/webhooks/levanta"),
        &levanta_headers(LEVANTA_SECRET, body.as_bytes()),
        body.as_bytes(),
    )
    .await;
    reply.status
}

fn assert_within(proc: &Hookgate, idle: u64, budget: u64, case: &str) {
    let peak = proc.status("VmHWM");
    let mib = |b: u64| b as f64 / MIB as f64;
    eprintln!(
        "[{case}] idle {:.1} MiB, peak {:.1} MiB, bound {:.1} MiB",
        mib(idle),
        mib(peak),
        mib(idle + budget + SLACK)
    );
    assert!(
        peak <= idle + budget + SLACK,
        "[{case}] peak RSS {:.1} MiB > idle {:.1} MiB + max_buffered {:.1} MiB + 16 MiB",
        mib(peak),
        mib(idle),
        mib(budget)
    );
}

#[tokio::test]
async fn memory_stays_bounded_when_150_connections_declare_max_body_and_send_two_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let upstream = Upstream::start().await;
    let budget = 32 * MIB;
    let (proc, idle) = start(
        dir.path(),
        &upstream,
        "[limits]\nmax_body = \"25MiB\"\nmax_buffered = \"32MiB\"\nbody_timeout = \"30s\"",
    )
    .await;

    let head = format!(
        "POST /webhooks/levanta HTTP/1.1\r\nHost: x\r\nx-levanta-hmac-sha256: 00\r\nContent-Length: {MAX_BODY}\r\n\r\na"
    );
    let mut conns = Vec::new();
    for _ in 0..150 {
        let mut s = TcpStream::connect(proc.addr).await.unwrap();
        s.write_all(head.as_bytes()).await.unwrap();
        conns.push(s);
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    for s in &mut conns {
        s.write_all(b"b").await.unwrap();
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        genuine(&proc, "during 150 declared bodies").await,
        StatusCode::OK,
        "a genuine delivery during the flood"
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_within(&proc, idle, budget, "150 x declared 25MiB, 2 bytes sent");
    drop(conns);
}

#[tokio::test]
async fn memory_stays_bounded_under_48_concurrent_1mib_bodies_against_a_small_budget() {
    let dir = tempfile::tempdir().unwrap();
    let upstream = Upstream::start().await;
    let budget = 8 * MIB;
    let (proc, idle) = start(
        dir.path(),
        &upstream,
        "[limits]\nmax_body = \"2MiB\"\nmax_buffered = \"8MiB\"\nbody_timeout = \"30s\"",
    )
    .await;
    let addr = proc.addr;
    for round in 0..2 {
        let flood: Vec<_> = (0..48)
            .map(|_| {
                tokio::spawn(async move {
                    let mut s = TcpStream::connect(addr).await.unwrap();
                    let head = format!(
                        "POST /webhooks/levanta HTTP/1.1\r\nHost: x\r\nx-levanta-hmac-sha256: 00\r\nContent-Length: {MIB}\r\n\r\n"
                    );
                    if s.write_all(head.as_bytes()).await.is_err() {
                        return;
                    }
                    let chunk = vec![b'x'; 64 << 10];
                    for _ in 0..16 {
                        // Refused early (503) is fine: the flood only has to be there.
                        if s.write_all(&chunk).await.is_err() {
                            return;
                        }
                        tokio::time::sleep(Duration::from_millis(20)).await;
                    }
                    let mut answer = [0u8; 256];
                    let _ = tokio::time::timeout(Duration::from_secs(10), s.read(&mut answer)).await;
                })
            })
            .collect();
        // A genuine delivery while the flood is on: over budget it may be told
        // 503 (and retries, as a provider would); it must get through.
        tokio::time::sleep(Duration::from_millis(100)).await;
        let mut status = StatusCode::SERVICE_UNAVAILABLE;
        for attempt in 0..40 {
            status = genuine(&proc, &format!("round {round} attempt {attempt}")).await;
            if status != StatusCode::SERVICE_UNAVAILABLE {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert_eq!(
            status,
            StatusCode::OK,
            "a genuine delivery during round {round}"
        );
        for f in flood {
            tokio::time::timeout(Duration::from_secs(20), f)
                .await
                .unwrap()
                .unwrap();
        }
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_within(&proc, idle, budget, "2 rounds of 48 x 1MiB against 8MiB");
}

#[tokio::test]
async fn memory_stays_bounded_when_200_http2_streams_declare_max_body_and_send_two_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let upstream = Upstream::start().await;
    let budget = 32 * MIB;
    let (proc, idle) = start(
        dir.path(),
        &upstream,
        "[limits]\nmax_body = \"25MiB\"\nmax_buffered = \"32MiB\"\nbody_timeout = \"30s\"",
    )
    .await;

    let tcp = TcpStream::connect(proc.addr).await.unwrap();
    let (client, conn) = h2::client::handshake(tcp).await.unwrap();
    let conn = tokio::spawn(async move {
        let _ = conn.await;
    });
    let mut streams = Vec::new();
    let mut client = client;
    for _ in 0..200 {
        client = tokio::time::timeout(Duration::from_secs(5), client.ready())
            .await
            .expect("a stream slot")
            .unwrap();
        let req = http::Request::builder()
            .method("POST")
            .uri("http://hookgate.test/webhooks/levanta")
            .header("x-levanta-hmac-sha256", "00")
            .header("content-length", MAX_BODY.to_string())
            .body(())
            .unwrap();
        let (resp, mut stream) = client.send_request(req, false).unwrap();
        stream.send_data(Bytes::from_static(b"a"), false).unwrap();
        streams.push((resp, stream));
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    for (_, stream) in &mut streams {
        // A stream the gateway already refused cannot take more: that is fine.
        let _ = stream.send_data(Bytes::from_static(b"b"), false);
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        genuine(&proc, "during 200 HTTP/2 streams").await,
        StatusCode::OK,
        "a genuine delivery during the flood"
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_within(
        &proc,
        idle,
        budget,
        "200 HTTP/2 streams x declared 25MiB, 2 bytes sent",
    );
    drop(streams);
    conn.abort();
}

#[tokio::test]
async fn memory_stays_bounded_under_http2_continuation_floods() {
    use super::frames::{self, Conn};
    let dir = tempfile::tempdir().unwrap();
    let upstream = Upstream::start().await;
    let budget = 32 * MIB;
    let (proc, idle) = start(
        dir.path(),
        &upstream,
        "[limits]\nmax_body = \"25MiB\"\nmax_buffered = \"32MiB\"",
    )
    .await;
    let addr = proc.addr;
    let opening = frames::block(&[
        (":method", "POST"),
        (":scheme", "http"),
        (":authority", "hookgate.test"),
        (":path", "/webhooks/levanta"),
    ]);
    // 20 connections at once, each a HEADERS without END_HEADERS and then up
    // to 1000 CONTINUATION frames of 4 KiB of fields (4 MiB each).
    let floods: Vec<_> = (0..20)
        .map(|_| {
            let opening = opening.clone();
            tokio::spawn(async move {
                let mut conn = Conn::open(addr).await;
                let filler = "a".repeat(4000);
                if conn
                    .send(&frames::frame(frames::HEADERS, 0, 1, &opening))
                    .await
                    .is_ok()
                {
                    for i in 0..1000 {
                        let name = format!("x-pad-{i}");
                        let payload = frames::literal(name.as_bytes(), filler.as_bytes());
                        if conn
                            .send(&frames::frame(frames::CONTINUATION, 0, 1, &payload))
                            .await
                            .is_err()
                        {
                            break;
                        }
                    }
                }
                conn.drain_until_closed(Duration::from_secs(5)).await
            })
        })
        .collect();
    for f in floods {
        let closed = tokio::time::timeout(Duration::from_secs(30), f)
            .await
            .unwrap()
            .unwrap();
        assert!(closed, "a CONTINUATION flood must be cut off");
    }
    assert_eq!(
        genuine(&proc, "after CONTINUATION floods").await,
        StatusCode::OK
    );
    assert_within(&proc, idle, budget, "20 CONTINUATION floods");
}
