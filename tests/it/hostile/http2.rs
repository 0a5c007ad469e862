//! Issue 11's holes over HTTP/2 (h2c with prior knowledge, the `h2` crate's
//! client): repeated signature headers, `:authority` against `host`, repeated
//! `content-length`.

use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use tokio::net::TcpStream;

use super::raw::*;

/// What an HTTP/2 request got: the status and body, or the stream/connection error.
pub type H2Reply = Result<(u16, Vec<u8>), h2::Error>;

/// `POST http://hookgate.test{path}` with `headers` (appended in order) and `body`,
/// on a fresh connection.
pub async fn h2_post(
    addr: SocketAddr,
    path: &str,
    headers: &[(String, String)],
    body: &[u8],
) -> H2Reply {
    let mut req = http::Request::builder()
        .method("POST")
        .uri(format!("http://hookgate.test{path}"))
        .body(())
        .unwrap();
    for (n, v) in headers {
        req.headers_mut().append(
            http::HeaderName::from_bytes(n.as_bytes()).unwrap(),
            v.parse().unwrap(),
        );
    }
    h2_send(addr, req, body).await
}

pub async fn h2_send(addr: SocketAddr, req: http::Request<()>, body: &[u8]) -> H2Reply {
    let tcp = TcpStream::connect(addr).await.unwrap();
    let (client, conn) = h2::client::handshake(tcp).await?;
    let conn = tokio::spawn(async move {
        let _ = conn.await;
    });
    let reply = async {
        let mut client = client.ready().await?;
        let (resp, mut stream) = client.send_request(req, body.is_empty())?;
        if !body.is_empty() {
            stream.send_data(Bytes::copy_from_slice(body), true)?;
        }
        let resp = resp.await?;
        let status = resp.status().as_u16();
        let mut recv = resp.into_body();
        let mut out = Vec::new();
        while let Some(chunk) = recv.data().await {
            let chunk = chunk?;
            let _ = recv.flow_control().release_capacity(chunk.len());
            out.extend_from_slice(&chunk);
        }
        Ok((status, out))
    };
    let reply = tokio::time::timeout(Duration::from_secs(10), reply)
        .await
        .expect("HTTP/2 request timed out");
    conn.abort();
    reply
}

fn describe(r: &H2Reply) -> String {
    match r {
        Ok((status, body)) => format!("{status} {}", String::from_utf8_lossy(body)),
        Err(e) => format!("error {e}"),
    }
}

/// The signed headers plus `content-length`, with `name` sent again carrying `other`.
fn with_duplicate(s: &Signed, name: &str, other: &str) -> Vec<(String, String)> {
    let mut headers = Vec::new();
    for (n, v) in &s.headers {
        headers.push((n.to_ascii_lowercase(), v.clone()));
        if n.eq_ignore_ascii_case(name) {
            headers.push((n.to_ascii_lowercase(), other.to_string()));
        }
    }
    headers.push(("content-length".into(), s.body.len().to_string()));
    headers
}

#[tokio::test]
async fn http2_duplicate_signature_id_or_timestamp_header_is_rejected_400_and_not_forwarded() {
    let up = RawUpstream::start().await;
    let gw = gateway(&up, "").await;
    let cases: Vec<(Signed, &str, &str)> = vec![
        (
            Signed::svix("msg_h2_1", &body("h2-id")),
            "svix-id",
            "msg_attacker",
        ),
        (
            Signed::svix("msg_h2_2", &body("h2-sig")),
            "svix-signature",
            "v1,AAAA",
        ),
        (
            Signed::svix("msg_h2_3", &body("h2-ts")),
            "svix-timestamp",
            "1",
        ),
        (
            Signed::levanta(&body("h2-lev")),
            "x-levanta-hmac-sha256",
            "00",
        ),
        (Signed::leaflink(&body("h2-ll")), "ll-signature", "AAAA"),
        (
            Signed::github("/webhooks/github", "d-h2", &body("h2-gh")),
            "x-hub-signature-256",
            "sha256=00",
        ),
    ];
    for (s, name, other) in cases {
        let case = format!("HTTP/2 {name} twice");
        let reply = h2_post(gw.addr, &s.path, &with_duplicate(&s, name, other), &s.body).await;
        settle().await;
        match &reply {
            Ok((400, body)) => assert_eq!(body, br#"{"error":"bad_request"}"#, "[{case}]"),
            other => panic!("[{case}] expected 400 bad_request, got {}", describe(other)),
        }
        assert_eq!(up.count(), 0, "[{case}] must not be forwarded");
    }
    still_serving(&gw, &up, "after HTTP/2 duplicates").await;
}

#[tokio::test]
async fn http2_authority_differing_from_host_is_rejected_400_and_not_forwarded() {
    let up = RawUpstream::start().await;
    let gw = gateway(&up, "").await;
    let s = Signed::levanta(&body("h2-authority"));
    let mut headers = vec![("host".to_string(), "evil.example".to_string())];
    headers.extend(s.headers.clone());
    headers.push(("content-length".into(), s.body.len().to_string()));
    let reply = h2_post(gw.addr, &s.path, &headers, &s.body).await;
    settle().await;
    match &reply {
        Ok((400, body)) => assert_eq!(body, br#"{"error":"bad_request"}"#),
        other => panic!("expected 400 bad_request, got {}", describe(other)),
    }
    assert_eq!(up.count(), 0, "must not be forwarded");
    still_serving(&gw, &up, "after :authority != host").await;
}

#[tokio::test]
async fn http2_genuine_delivery_is_forwarded_with_its_authority_as_host() {
    let up = RawUpstream::start().await;
    let gw = gateway(&up, "").await;
    // Without a host field, and with one equal to :authority.
    let mut sent = Vec::new();
    for host in [None, Some("hookgate.test")] {
        let s = Signed::levanta(&body("h2-genuine"));
        let mut headers: Vec<(String, String)> = host
            .map(|h| ("host".to_string(), h.to_string()))
            .into_iter()
            .collect();
        headers.extend(s.headers.clone());
        headers.push(("content-length".into(), s.body.len().to_string()));
        let reply = h2_post(gw.addr, &s.path, &headers, &s.body).await;
        assert!(matches!(reply, Ok((200, _))), "{}", describe(&reply));
        up.assert_forwarded_once(&s, "HTTP/2 genuine");
        let got = up
            .requests()
            .into_iter()
            .find(|r| r.body == s.body)
            .unwrap();
        assert_eq!(
            got.values("host"),
            vec![b"hookgate.test".as_slice()],
            "{}",
            got.describe()
        );
        sent.push(s);
    }
    up.assert_only(&sent.iter().collect::<Vec<_>>(), "HTTP/2 genuine");
}

#[tokio::test]
async fn http2_two_equal_content_lengths_never_reach_the_app_twice() {
    let up = RawUpstream::start().await;
    let gw = gateway(&up, "").await;
    let s = Signed::levanta(&body("h2-two-cl"));
    let mut headers = s.headers.clone();
    headers.push(("content-length".into(), s.body.len().to_string()));
    headers.push(("content-length".into(), s.body.len().to_string()));
    let reply = h2_post(gw.addr, &s.path, &headers, &s.body).await;
    settle().await;
    match &reply {
        Ok((200, _)) => {
            up.assert_forwarded_once(&s, "two equal content-length");
            // assert_only checks exactly one content-length, equal to the body.
            up.assert_only(&[&s], "two equal content-length");
        }
        Ok((400, _)) => assert_eq!(up.count(), 0, "refused, so not forwarded"),
        other => panic!(
            "expected 200 (one content-length) or 400, got {}",
            describe(other)
        ),
    }
    still_serving(&gw, &up, "after two content-length").await;
}
