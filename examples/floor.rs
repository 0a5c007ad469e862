//! The floors under hookgate's data path, for the load harness (`run.sh --floor`).
//!
//! `floor`: the same process shape as hookgate (a current_thread runtime per
//! worker, hyper's HTTP/1.1 server, the body read whole, one pooled hyper-util
//! client per worker, the response streamed back) with nothing else: no
//! verification, no replay store, no limits, no metrics, no log line. What
//! hookgate costs above this is hookgate's own work; what this costs above
//! nginx is hyper and tokio.
//!
//! `floor+verify` (the `verify` argument): the same proxy plus, in its
//! cheapest straightforward form, the work no verifying, deduplicating,
//! logging gateway can skip on a request: a Svix check (timestamp within
//! ±600 s, HMAC-SHA256 over `{id}.{timestamp}.{body}`, each `v1,` signature
//! base64-decoded and compared in constant time; 400 without the headers, 401
//! if not genuine), a replay claim in one shared `Mutex<LruCache>` of 100 000
//! ids settled after the answer (delivered on a 2xx, released otherwise; a
//! delivered id is answered `200 {"status":"duplicate"}`, one in flight 409),
//! and one JSON log line per request, batched per worker and written to
//! stderr every ~32 KiB. No routes (every path is the one Svix route), metrics,
//! limits or timers. What hookgate costs above this is what its design adds
//! beyond the work itself.
//!
//! Both use hookgate's allocator (jemalloc): glibc's malloc alone cost about
//! 1.3 µs more per request in a profile of floor+verify, which would have put
//! the floor above what the work costs.
//!
//! Usage: floor LISTEN_ADDR UPSTREAM_ADDR WORKERS [verify]
//!        (e.g. 127.0.0.1:8080 127.0.0.1:3000 2 verify; `verify` reads the
//!        `whsec_…` secret from BENCH_SVIX_SECRET)

use std::cell::RefCell;
use std::convert::Infallible;
use std::io::Write;
use std::net::SocketAddr;
use std::num::NonZeroUsize;
use std::sync::{Mutex, PoisonError};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use base64::Engine;
use bytes::Bytes;
use hmac::{Hmac, Mac};
use http::{request, HeaderValue, Request, Response, StatusCode, Uri};
use http_body_util::{BodyExt, Either, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::client::legacy::{connect::HttpConnector, Client};
use hyper_util::rt::{TokioExecutor, TokioIo};
use lru::LruCache;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

type Upstream = Client<HttpConnector, Full<Bytes>>;
type Reply = Response<Either<Incoming, Full<Bytes>>>;

const USAGE: &str = "usage: floor LISTEN_ADDR UPSTREAM_ADDR WORKERS [verify]";

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let (listen, upstream, workers, gate) = match args.as_slice() {
        [_, listen, upstream, workers] => (listen, upstream, workers, None),
        [_, listen, upstream, workers, mode] if mode == "verify" => {
            let gate: &'static Gate = Box::leak(Box::new(Gate::from_env()?));
            (listen, upstream, workers, Some(gate))
        }
        _ => return Err(USAGE.into()),
    };
    let listen: SocketAddr = listen.parse()?;
    let upstream: &'static str = Box::leak(upstream.clone().into_boxed_str());
    let workers: usize = workers.parse()?;
    // One listener, bound once; each worker accepts from its own clone of it
    // (the kernel hands each connection to one waiting accept).
    let listener = std::net::TcpListener::bind(listen)?;
    listener.set_nonblocking(true)?;
    let threads = (0..workers)
        .map(|_| {
            let listener = listener.try_clone()?;
            Ok(std::thread::spawn(move || worker(listener, upstream, gate)))
        })
        .collect::<std::io::Result<Vec<_>>>()?;
    for t in threads {
        let _ = t.join();
    }
    Ok(())
}

fn worker(listener: std::net::TcpListener, upstream: &'static str, gate: Option<&'static Gate>) {
    let Ok(rt) = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    else {
        return;
    };
    rt.block_on(async move {
        let Ok(listener) = tokio::net::TcpListener::from_std(listener) else {
            return;
        };
        let mut http = HttpConnector::new();
        http.set_nodelay(true);
        let client: Upstream = Client::builder(TokioExecutor::new())
            .pool_max_idle_per_host(1024)
            .build(http);
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let _ = stream.set_nodelay(true);
            let client = client.clone();
            let conn = hyper::server::conn::http1::Builder::new();
            let io = TokioIo::new(stream);
            // Two tasks, not one with a branch inside: the bare floor's stays
            // exactly what it was.
            match gate {
                None => tokio::spawn(async move {
                    let svc = service_fn(move |req| forward(client.clone(), upstream, req));
                    let _ = conn.serve_connection(io, svc).await;
                }),
                Some(gate) => tokio::spawn(async move {
                    let svc = service_fn(move |req| gate.serve(client.clone(), upstream, req));
                    let _ = conn.serve_connection(io, svc).await;
                }),
            };
        }
    });
}

/// The bare floor: the body read whole, then forwarded.
async fn forward(
    client: Upstream,
    upstream: &'static str,
    req: Request<Incoming>,
) -> Result<Reply, Infallible> {
    let (parts, body) = req.into_parts();
    let body = body
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    match send(&client, upstream, parts, body).await {
        Ok(resp) => Ok(resp.map(Either::Left)),
        Err(_) => Ok(answer(StatusCode::BAD_GATEWAY, b"")),
    }
}

/// The request, rewritten to the upstream, sent on the worker's pool.
async fn send(
    client: &Upstream,
    upstream: &'static str,
    mut parts: request::Parts,
    body: Bytes,
) -> Result<Response<Incoming>, hyper_util::client::legacy::Error> {
    let path = parts.uri.path_and_query().map_or("/", |p| p.as_str());
    if let Ok(uri) = format!("http://{upstream}{path}").parse::<Uri>() {
        parts.uri = uri;
    }
    parts.headers.remove(http::header::CONNECTION);
    client
        .request(Request::from_parts(parts, Full::new(body)))
        .await
}

/// The proxy's own answers: a static body (empty, or small JSON).
fn answer(status: StatusCode, body: &'static [u8]) -> Reply {
    let mut resp = Response::new(Either::Right(Full::new(Bytes::from_static(body))));
    *resp.status_mut() = status;
    if !body.is_empty() {
        resp.headers_mut().insert(
            http::header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
    }
    resp
}

/// Replay ids remembered, across all workers.
const CAPACITY: usize = 100_000;
/// How far a signed timestamp may be from now, either way.
const TOLERANCE_SECS: i64 = 600;
/// Values in the replay map.
const IN_FLIGHT: u64 = 0;
const DELIVERED: u64 = 1;

/// floor+verify's shared state: the keyed HMAC (cloned per request) and the
/// replay map.
struct Gate {
    mac: Hmac<Sha256>,
    seen: Mutex<LruCache<[u8; 16], u64>>,
}

enum Claim {
    Claimed([u8; 16]),
    Duplicate,
    InFlight,
}

impl Gate {
    fn from_env() -> Result<Self, Box<dyn std::error::Error>> {
        let secret = std::env::var("BENCH_SVIX_SECRET")
            .map_err(|_| "floor verify: BENCH_SVIX_SECRET (whsec_<base64 key>) is not set")?;
        let key = secret.strip_prefix("whsec_").unwrap_or(&secret);
        let key = base64::engine::general_purpose::STANDARD.decode(key)?;
        let capacity = NonZeroUsize::new(CAPACITY).ok_or("capacity is zero")?;
        Ok(Gate {
            mac: Hmac::new_from_slice(&key)?,
            seen: Mutex::new(LruCache::new(capacity)),
        })
    }

    /// One request: verified, claimed, forwarded, settled, logged.
    async fn serve(
        &self,
        client: Upstream,
        upstream: &'static str,
        req: Request<Incoming>,
    ) -> Result<Reply, Infallible> {
        let start = Instant::now();
        let (parts, body) = req.into_parts();
        let id = parts.headers.get("svix-id").cloned();
        let (outcome, resp) = self.decide(&client, upstream, parts, body).await;
        log(outcome, resp.status(), start, id.as_ref());
        Ok(resp)
    }

    async fn decide(
        &self,
        client: &Upstream,
        upstream: &'static str,
        parts: request::Parts,
        body: Incoming,
    ) -> (&'static str, Reply) {
        let Ok(body) = body.collect().await.map(|b| b.to_bytes()) else {
            return ("rejected", answer(StatusCode::BAD_REQUEST, b""));
        };
        let h = &parts.headers;
        let (Some(id), Some(ts), Some(sig)) = (
            h.get("svix-id"),
            h.get("svix-timestamp"),
            h.get("svix-signature"),
        ) else {
            return ("rejected", answer(StatusCode::BAD_REQUEST, b""));
        };
        if !self.genuine(id.as_bytes(), ts, sig, &body) {
            return ("rejected", answer(StatusCode::UNAUTHORIZED, b""));
        }
        let key = match self.claim(id.as_bytes()) {
            Claim::Claimed(key) => key,
            Claim::Duplicate => {
                let dup = answer(StatusCode::OK, br#"{"status":"duplicate"}"#);
                return ("duplicate", dup);
            }
            Claim::InFlight => return ("rejected", answer(StatusCode::CONFLICT, b"")),
        };
        match send(client, upstream, parts, body).await {
            Ok(resp) => {
                self.settle(key, resp.status().is_success());
                ("forwarded", resp.map(Either::Left))
            }
            Err(_) => {
                self.settle(key, false);
                ("upstream_error", answer(StatusCode::BAD_GATEWAY, b""))
            }
        }
    }

    /// Svix: a fresh timestamp and one `v1,` signature equal to ours.
    fn genuine(&self, id: &[u8], ts: &HeaderValue, sig: &HeaderValue, body: &[u8]) -> bool {
        let Some(when) = ts.to_str().ok().and_then(|t| t.parse::<i64>().ok()) else {
            return false;
        };
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX));
        if now.abs_diff(when) > TOLERANCE_SECS.unsigned_abs() {
            return false;
        }
        let Ok(sig) = sig.to_str() else {
            return false;
        };
        let mut mac = self.mac.clone();
        mac.update(id);
        mac.update(b".");
        mac.update(ts.as_bytes());
        mac.update(b".");
        mac.update(body);
        let ours = mac.finalize().into_bytes();
        let mut theirs = [0u8; 64];
        sig.split(' ')
            .filter_map(|e| e.strip_prefix("v1,"))
            .any(|b64| {
                base64::engine::general_purpose::STANDARD
                    .decode_slice(b64, &mut theirs)
                    .is_ok_and(|n| bool::from(ours.as_slice().ct_eq(&theirs[..n])))
            })
    }

    fn seen(&self) -> std::sync::MutexGuard<'_, LruCache<[u8; 16], u64>> {
        // Every operation is one map call: a poisoned map is still consistent.
        self.seen.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The first map operation: a new id is claimed (in flight).
    fn claim(&self, id: &[u8]) -> Claim {
        let mut key = [0u8; 16];
        key.copy_from_slice(&Sha256::digest(id)[..16]);
        let mut seen = self.seen();
        match seen.get(&key) {
            Some(&DELIVERED) => Claim::Duplicate,
            Some(_) => Claim::InFlight,
            None => {
                seen.put(key, IN_FLIGHT);
                Claim::Claimed(key)
            }
        }
    }

    /// The second: delivered after a 2xx, released otherwise.
    fn settle(&self, key: [u8; 16], delivered: bool) {
        let mut seen = self.seen();
        if delivered {
            seen.put(key, DELIVERED);
        } else {
            seen.pop(&key);
        }
    }
}

/// A worker's log lines are written to stderr once this much is buffered.
const BATCH: usize = 32 * 1024;

thread_local! {
    /// One buffer per worker (a worker is one thread).
    static LOG: RefCell<Vec<u8>> = RefCell::new(Vec::with_capacity(BATCH + 1024));
}

/// The request's JSON log line (with its time, as any access log has).
fn log(outcome: &str, status: StatusCode, start: Instant, id: Option<&HeaderValue>) {
    let ms = start.elapsed().as_secs_f64() * 1000.0;
    LOG.with_borrow_mut(|buf| {
        let _ = write!(
            buf,
            r#"{{"timestamp":"{}","route":"svix","outcome":"{outcome}","status":{},"duration_ms":{ms:.3},"message_id":"#,
            humantime::format_rfc3339_micros(SystemTime::now()),
            status.as_u16()
        );
        match id {
            Some(id) => json_string(buf, id.as_bytes()),
            None => buf.extend_from_slice(b"null"),
        }
        buf.extend_from_slice(b"}\n");
        if buf.len() >= BATCH {
            let _ = std::io::stderr().write_all(buf);
            buf.clear();
        }
    });
}

/// A JSON string of the header's bytes (printable ASCII as is, others escaped).
fn json_string(buf: &mut Vec<u8>, s: &[u8]) {
    buf.push(b'"');
    for &b in s {
        match b {
            b'"' | b'\\' => buf.extend_from_slice(&[b'\\', b]),
            0x20..=0x7e => buf.push(b),
            _ => {
                let _ = write!(buf, "\\u{b:04x}");
            }
        }
    }
    buf.push(b'"');
}
