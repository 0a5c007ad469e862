//! Raw bytes on both sides: a recording upstream that keeps each request exactly as
//! hookgate sent it, an HTTP/1.1 client that writes whatever bytes a test gives it,
//! genuinely signed deliveries, and the invariant every hostile case is checked against.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use crate::support::{
    hmac_sha256, leaflink_headers, levanta_headers, now_secs, svix_headers, LEAFLINK_SECRET,
    LEVANTA_SECRET, SVIX_SECRET, SVIX_SECRET_OLD,
};

pub const GITHUB_SECRET: &str = "github-webhook-secret";

/// Every signature, id or timestamp header of the configured providers: each
/// may reach the application at most once.
pub const SIGNATURE_HEADERS: [&str; 8] = [
    "svix-id",
    "svix-timestamp",
    "svix-signature",
    "x-levanta-hmac-sha256",
    "ll-signature",
    "x-hub-signature-256",
    "x-github-delivery",
    "webhook-signature",
];

/// A gateway config in front of `upstream` (a URL): the mission providers, an
/// exact GitHub route and a GitHub prefix route `/hooks/*`. `extra` goes right
/// after `[upstream]`'s keys, so it may add upstream keys and then sections.
pub fn config(upstream: &str, extra: &str) -> String {
    format!(
        r#"
[listen]
addr = "127.0.0.1:0"
[admin]
addr = "127.0.0.1:0"
[upstream]
url = "{upstream}"
{extra}
[[routes]]
name = "levers"
path = "/webhooks/levers"
provider = "svix"
secrets = ["{SVIX_SECRET}", "{SVIX_SECRET_OLD}"]

[[routes]]
name = "levanta"
path = "/webhooks/levanta"
provider = "levanta"
secrets = ["{LEVANTA_SECRET}"]

[[routes]]
name = "leaflink"
path = "/webhooks/leaflink"
provider = "leaflink"
secrets = ["{LEAFLINK_SECRET}"]

[[routes]]
name = "github"
path = "/webhooks/github"
provider = "github"
secrets = ["{GITHUB_SECRET}"]

[[routes]]
name = "hooks"
path = "/hooks/*"
provider = "github"
secrets = ["{GITHUB_SECRET}"]
"#
    )
}

// ---- genuine deliveries ----------------------------------------------------

/// A delivery signed as its provider would sign it.
#[derive(Debug, Clone)]
pub struct Signed {
    /// Path and query, as the provider requests it.
    pub path: String,
    /// The provider's signature, id and timestamp headers.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Signed {
    pub fn svix(id: &str, body: &[u8]) -> Signed {
        Signed {
            path: "/webhooks/levers".into(),
            headers: svix_headers(SVIX_SECRET, id, now_secs(), body, "svix-"),
            body: body.to_vec(),
        }
    }

    pub fn levanta(body: &[u8]) -> Signed {
        Signed {
            path: "/webhooks/levanta".into(),
            headers: levanta_headers(LEVANTA_SECRET, body),
            body: body.to_vec(),
        }
    }

    pub fn leaflink(body: &[u8]) -> Signed {
        Signed {
            path: "/webhooks/leaflink".into(),
            headers: leaflink_headers(LEAFLINK_SECRET, body),
            body: body.to_vec(),
        }
    }

    /// GitHub: `sha256=` + hex HMAC-SHA256 of the body (computed by the test
    /// support's independent HMAC), the delivery GUID unsigned.
    pub fn github(path: &str, delivery: &str, body: &[u8]) -> Signed {
        Signed {
            path: path.into(),
            headers: vec![
                (
                    "x-hub-signature-256".into(),
                    format!(
                        "sha256={}",
                        hex::encode(hmac_sha256(GITHUB_SECRET.as_bytes(), body))
                    ),
                ),
                ("x-github-delivery".into(), delivery.into()),
            ],
            body: body.to_vec(),
        }
    }

    /// The signed headers as `name: value` lines (no line ending).
    pub fn lines(&self) -> Vec<String> {
        self.headers
            .iter()
            .map(|(n, v)| format!("{n}: {v}"))
            .collect()
    }

    pub fn value(&self, name: &str) -> &str {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
            .unwrap()
    }

    /// The plain HTTP/1.1 request a provider sends.
    pub fn request(&self) -> Vec<u8> {
        let mut lines = vec!["host: hookgate.test".to_string()];
        lines.extend(self.lines());
        lines.push(format!("content-length: {}", self.body.len()));
        h1(&self.path, &lines, &self.body)
    }
}

/// `POST {target} HTTP/1.1`, the given header lines, a blank line, then `body` as is.
pub fn h1(target: &str, lines: &[String], body: &[u8]) -> Vec<u8> {
    h1_version(target, "HTTP/1.1", lines, body)
}

pub fn h1_version(target: &str, version: &str, lines: &[String], body: &[u8]) -> Vec<u8> {
    let mut out = format!("POST {target} {version}\r\n").into_bytes();
    for line in lines {
        out.extend_from_slice(line.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(body);
    out
}

/// `body` in chunked coding, in chunks of at most `size` bytes.
pub fn chunked(body: &[u8], size: usize) -> Vec<u8> {
    let mut out = Vec::new();
    for chunk in body.chunks(size) {
        out.extend_from_slice(format!("{:x}\r\n", chunk.len()).as_bytes());
        out.extend_from_slice(chunk);
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"0\r\n\r\n");
    out
}

// ---- the recording upstream -----------------------------------------------

/// One request exactly as the application's socket received it.
#[derive(Debug, Clone)]
pub struct Recorded {
    pub head: Vec<u8>,
    pub body: Vec<u8>,
    pub target: String,
    /// Header lines in order: lower-cased name, raw value.
    pub headers: Vec<(String, Vec<u8>)>,
}

impl Recorded {
    pub fn values(&self, name: &str) -> Vec<&[u8]> {
        self.headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_slice())
            .collect()
    }

    pub fn describe(&self) -> String {
        format!(
            "{}<{} body bytes>",
            String::from_utf8_lossy(&self.head),
            self.body.len()
        )
    }
}

/// What the recording upstream does after reading a request.
#[derive(Clone, Copy, PartialEq)]
pub enum Reply {
    /// `200`, `content-length: 2`, `ok`; keep-alive.
    Ok,
    /// `200`, `content-length: 100`, 10 bytes, then nothing for a minute.
    StallBody,
}

/// A TCP application on 127.0.0.1:0 recording raw request bytes.
#[derive(Clone)]
pub struct RawUpstream {
    pub addr: SocketAddr,
    recorded: Arc<Mutex<Vec<Recorded>>>,
    task: Arc<tokio::task::JoinHandle<()>>,
}

impl Drop for RawUpstream {
    fn drop(&mut self) {
        if Arc::strong_count(&self.task) == 1 {
            self.task.abort();
        }
    }
}

impl RawUpstream {
    pub async fn start() -> RawUpstream {
        Self::start_with(Reply::Ok).await
    }

    pub async fn start_with(reply: Reply) -> RawUpstream {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let recorded: Arc<Mutex<Vec<Recorded>>> = Arc::default();
        let rec = recorded.clone();
        let task = tokio::spawn(async move {
            let mut conns = tokio::task::JoinSet::new();
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                conns.spawn(serve_raw(stream, rec.clone(), reply));
            }
        });
        RawUpstream {
            addr,
            recorded,
            task: Arc::new(task),
        }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn requests(&self) -> Vec<Recorded> {
        self.recorded.lock().unwrap().clone()
    }

    pub fn count(&self) -> usize {
        self.recorded.lock().unwrap().len()
    }

    /// The invariant after every hostile case: each request the application
    /// got is one of the `allowed` genuine deliveries, byte for byte (target,
    /// body, each of its signed headers exactly once), framed once
    /// (one `content-length` equal to the body, no `transfer-encoding`), and
    /// carries no signature, id or timestamp header twice.
    pub fn assert_only(&self, allowed: &[&Signed], case: &str) {
        for r in self.requests() {
            for name in SIGNATURE_HEADERS {
                assert!(
                    r.values(name).len() <= 1,
                    "[{case}] {name} reached the app {} times:\n{}",
                    r.values(name).len(),
                    r.describe()
                );
            }
            let lengths = r.values("content-length");
            assert_eq!(
                lengths,
                vec![r.body.len().to_string().as_bytes()],
                "[{case}] the app must see exactly one content-length, equal to the body:\n{}",
                r.describe()
            );
            assert!(
                r.values("transfer-encoding").is_empty(),
                "[{case}] transfer-encoding reached the app:\n{}",
                r.describe()
            );
            assert!(
                allowed.iter().any(|s| matches(s, &r)),
                "[{case}] a request that was not verified as sent reached the app:\n{}",
                r.describe()
            );
        }
    }

    /// `signed` reached the application exactly once, exactly as signed.
    pub fn assert_forwarded_once(&self, signed: &Signed, case: &str) {
        let n = self
            .requests()
            .iter()
            .filter(|r| matches(signed, r))
            .count();
        assert_eq!(
            n, 1,
            "[{case}] expected the genuine delivery forwarded once, as signed"
        );
    }
}

fn matches(s: &Signed, r: &Recorded) -> bool {
    r.target == s.path
        && r.body == s.body
        && s.headers
            .iter()
            .all(|(n, v)| r.values(n) == vec![v.as_bytes()])
}

async fn serve_raw(mut stream: TcpStream, recorded: Arc<Mutex<Vec<Recorded>>>, reply: Reply) {
    let mut buf = Vec::new();
    loop {
        let Some(end) = read_until_head(&mut stream, &mut buf).await else {
            return;
        };
        let head = buf[..end].to_vec();
        buf.drain(..end);
        let (target, headers) = parse_head(&head);
        let length = headers
            .iter()
            .find(|(n, _)| n == "content-length")
            .and_then(|(_, v)| std::str::from_utf8(v).ok()?.trim().parse::<usize>().ok())
            .unwrap_or(0);
        while buf.len() < length {
            let mut chunk = vec![0u8; 64 << 10];
            match tokio::time::timeout(Duration::from_secs(30), stream.read(&mut chunk)).await {
                Ok(Ok(n)) if n > 0 => buf.extend_from_slice(&chunk[..n]),
                _ => return,
            }
        }
        let body: Vec<u8> = buf.drain(..length).collect();
        recorded.lock().unwrap().push(Recorded {
            head,
            body,
            target,
            headers,
        });
        match reply {
            Reply::Ok => {
                if stream
                    .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok")
                    .await
                    .is_err()
                {
                    return;
                }
            }
            Reply::StallBody => {
                let _ = stream
                    .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\n0123456789")
                    .await;
                tokio::time::sleep(Duration::from_secs(60)).await;
                return;
            }
        }
    }
}

/// Reads until `buf` holds a whole head; its length including the blank line.
async fn read_until_head(stream: &mut TcpStream, buf: &mut Vec<u8>) -> Option<usize> {
    loop {
        if let Some(i) = find(buf, b"\r\n\r\n") {
            return Some(i + 4);
        }
        if buf.len() > 1 << 20 {
            return None;
        }
        let mut chunk = vec![0u8; 16 << 10];
        match tokio::time::timeout(Duration::from_secs(60), stream.read(&mut chunk)).await {
            Ok(Ok(n)) if n > 0 => buf.extend_from_slice(&chunk[..n]),
            _ => return None,
        }
    }
}

fn parse_head(head: &[u8]) -> (String, Vec<(String, Vec<u8>)>) {
    let text = &head[..head.len() - 4];
    let mut lines = text
        .split(|b| *b == b'\n')
        .map(|l| l.strip_suffix(b"\r").unwrap_or(l));
    let request_line = String::from_utf8_lossy(lines.next().unwrap_or_default()).into_owned();
    let target = request_line
        .split(' ')
        .nth(1)
        .unwrap_or_default()
        .to_string();
    let headers = lines
        .filter_map(|l| {
            let colon = l.iter().position(|b| *b == b':')?;
            let name = String::from_utf8_lossy(&l[..colon]).to_ascii_lowercase();
            let value = l[colon + 1..].trim_ascii().to_vec();
            Some((name, value))
        })
        .collect();
    (target, headers)
}

pub fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

// ---- the raw HTTP/1.1 client -------------------------------------------------

/// One response as read off the socket.
#[derive(Debug, Clone)]
pub struct Resp {
    pub status: u16,
    pub head: String,
    pub body: Vec<u8>,
}

impl Resp {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// What came back for some written bytes.
#[derive(Debug)]
pub struct Exchange {
    pub responses: Vec<Resp>,
    /// The peer closed (or reset) the connection.
    pub closed: bool,
}

impl Exchange {
    pub fn status(&self) -> Option<u16> {
        self.responses.first().map(|r| r.status)
    }

    /// Answered 4xx (or 501 for an unknown transfer coding), or closed without an answer.
    pub fn refused(&self) -> bool {
        match self.status() {
            Some(s) => (400..500).contains(&s) || s == 501,
            None => self.closed,
        }
    }

    pub fn describe(&self) -> String {
        let answers: Vec<String> = self
            .responses
            .iter()
            .map(|r| format!("{} {}", r.head.lines().next().unwrap_or_default(), r.text()))
            .collect();
        format!("answers {answers:?}, closed {}", self.closed)
    }
}

/// Connects, writes `bytes` and reads up to `expect` responses (or until the
/// peer closes, or 5 s pass).
pub async fn exchange(addr: SocketAddr, bytes: &[u8], expect: usize) -> Exchange {
    let mut s = TcpStream::connect(addr).await.unwrap();
    // The peer may refuse before reading everything: a failed write is an answer too.
    let _ = s.write_all(bytes).await;
    read_responses(&mut s, expect, Duration::from_secs(5)).await
}

pub async fn read_responses(s: &mut TcpStream, expect: usize, wait: Duration) -> Exchange {
    let deadline = Instant::now() + wait;
    let mut buf = Vec::new();
    let mut responses = Vec::new();
    let mut closed = false;
    loop {
        while let Some((resp, used)) = parse_response(&buf) {
            responses.push(resp);
            buf.drain(..used);
        }
        if responses.len() >= expect {
            break;
        }
        let mut chunk = vec![0u8; 16 << 10];
        match tokio::time::timeout_at(deadline.into(), s.read(&mut chunk)).await {
            Err(_) => break,
            Ok(Ok(0) | Err(_)) => {
                closed = true;
                break;
            }
            Ok(Ok(n)) => buf.extend_from_slice(&chunk[..n]),
        }
    }
    Exchange { responses, closed }
}

/// A whole response at the start of `buf` (by content-length or chunked), and
/// the bytes it took.
fn parse_response(buf: &[u8]) -> Option<(Resp, usize)> {
    let end = find(buf, b"\r\n\r\n")? + 4;
    let head = String::from_utf8_lossy(&buf[..end]).into_owned();
    let status = head.split(' ').nth(1)?.parse().ok()?;
    let lower = head.to_ascii_lowercase();
    let header = |name: &str| {
        lower
            .lines()
            .find_map(|l| l.strip_prefix(name).map(|v| v.trim().to_string()))
    };
    if let Some(len) = header("content-length:") {
        let len: usize = len.parse().ok()?;
        let body = buf.get(end..end + len)?.to_vec();
        return Some((Resp { status, head, body }, end + len));
    }
    if header("transfer-encoding:").is_some_and(|v| v.contains("chunked")) {
        let mut at = end;
        let mut body = Vec::new();
        loop {
            let line_end = at + find(&buf[at..], b"\r\n")?;
            let size =
                usize::from_str_radix(std::str::from_utf8(&buf[at..line_end]).ok()?.trim(), 16)
                    .ok()?;
            at = line_end + 2;
            if size == 0 {
                let trailer_end = at + find(&buf[at..], b"\r\n")?;
                return Some((Resp { status, head, body }, trailer_end + 2));
            }
            body.extend_from_slice(buf.get(at..at + size)?);
            at += size + 2;
        }
    }
    Some((
        Resp {
            status,
            head,
            body: Vec::new(),
        },
        end,
    ))
}

/// Reads until the peer closes or answers; `Some(bytes)` once it did either.
pub async fn closed_or_answered(s: &mut TcpStream, wait: Duration) -> Option<Vec<u8>> {
    let mut buf = vec![0u8; 4096];
    match tokio::time::timeout(wait, s.read(&mut buf)).await {
        Err(_) => None,
        Ok(Ok(n)) => Some(buf[..n].to_vec()),
        Ok(Err(_)) => Some(Vec::new()),
    }
}

/// Lets a forward that might still be under way land before "not forwarded" is checked.
pub async fn settle() {
    tokio::time::sleep(Duration::from_millis(100)).await;
}

// ---- gateways --------------------------------------------------------------

/// A gateway in front of `upstream` with a 2 s upstream timeout and `extra`
/// (upstream keys, then sections).
pub async fn gateway(upstream: &RawUpstream, extra: &str) -> crate::support::Gateway {
    crate::support::Gateway::start(&config(
        &upstream.url(),
        &format!("timeout = \"2s\"\n{extra}"),
    ))
    .await
}

/// A JSON body no other case sends (so replay ids never collide across cases).
pub fn body(case: &str) -> Vec<u8> {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    let n = N.fetch_add(1, Ordering::Relaxed);
    format!(
        r#"{{"type":"hostile.case","case":"{case}","n":{n},"at":{}}}"#,
        now_secs()
    )
    .into_bytes()
}

/// The gateway still serves: a fresh genuine delivery gets 200 and reaches the app as signed.
pub async fn still_serving(gw: &crate::support::Gateway, upstream: &RawUpstream, case: &str) {
    let signed = Signed::levanta(&body(case));
    let ex = exchange(gw.addr, &signed.request(), 1).await;
    assert_eq!(
        ex.status(),
        Some(200),
        "[{case}] a genuine delivery afterwards: {}",
        ex.describe()
    );
    upstream.assert_forwarded_once(&signed, case);
}
