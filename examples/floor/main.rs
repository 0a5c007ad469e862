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
//! `floor+guards` (the `guards` argument): floor+verify plus hookgate's
//! per-request protections and metrics in their plainest form (`guards.rs`):
//! what they cost on hyper, apart from hookgate's code. `FLOOR_GUARDS` picks
//! them, and with `lean` and `coarse` the same guards in cheaper forms
//! (`run.sh --lean` runs both side by side; `coarse.rs`: per-worker coarse
//! timers).
//!
//! `raw` and `raw+verify`: the same two, with hyper replaced by a purpose-built
//! HTTP/1.1 path (`raw.rs`): what a proxy of nginx's shape costs here, one
//! read buffer per connection, the head parsed in place by `httparse` (the
//! parser hyper itself uses), no header map, no body channel, no task per
//! upstream connection. It is a measuring instrument, not a proxy to deploy:
//! `Content-Length` bodies only, no timers or limits beyond fixed caps.
//!
//! `rawup`: hyper's server in front and the purpose-built upstream exchange
//! behind (`rawup.rs`), no verification: which half the difference is in.
//!
//! All use hookgate's allocator (jemalloc): glibc's malloc alone cost about
//! 1.3 µs more per request in a profile of floor+verify, which would have put
//! the floor above what the work costs.
//!
//! Usage: floor LISTEN_ADDR UPSTREAM_ADDR WORKERS [verify|guards|raw|raw+verify|rawup]
//!        (e.g. 127.0.0.1:8080 127.0.0.1:3000 2 verify; `verify` reads the
//!        `whsec_…` secret from BENCH_SVIX_SECRET, as `guards` does)

mod coarse;
mod gate;
mod guards;
mod raw;
mod rawup;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::time::Instant;

use bytes::Bytes;
use http::{request, HeaderValue, Request, Response, StatusCode, Uri};
use http_body_util::{BodyExt, Either, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::client::legacy::{connect::HttpConnector, Client};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};

use gate::{Claim, Gate};

#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

type Upstream = Client<HttpConnector, Full<Bytes>>;
type Reply = Response<Either<Incoming, Full<Bytes>>>;

const USAGE: &str =
    "usage: floor LISTEN_ADDR UPSTREAM_ADDR WORKERS [verify|guards|raw|raw+verify|rawup]";

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let (listen, upstream, workers, mode) = match args.as_slice() {
        [_, listen, upstream, workers] => (listen, upstream, workers, ""),
        [_, listen, upstream, workers, mode] => (listen, upstream, workers, mode.as_str()),
        _ => return Err(USAGE.into()),
    };
    let (path, gate) = match mode {
        "" => (Path::Hyper, None),
        "verify" => (Path::Hyper, Some(gate_from_env()?)),
        "guards" => {
            let guards = Box::leak(Box::new(guards::Guards::new()?));
            (Path::Guarded(gate_from_env()?, guards), None)
        }
        "raw" => (Path::Raw, None),
        "raw+verify" => (Path::Raw, Some(gate_from_env()?)),
        "rawup" => (Path::RawUpstream, None),
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
            Ok(std::thread::spawn(move || match path {
                Path::Hyper => worker(listener, upstream, gate),
                Path::Guarded(gate, guards) => guarded_worker(listener, upstream, gate, guards),
                Path::Raw => raw::worker(listener, upstream, gate),
                Path::RawUpstream => rawup_worker(listener, upstream),
            }))
        })
        .collect::<std::io::Result<Vec<_>>>()?;
    for t in threads {
        let _ = t.join();
    }
    Ok(())
}

/// Which data path a floor runs.
#[derive(Clone, Copy)]
enum Path {
    Hyper,
    /// floor+guards: hyper, verifying, with hookgate's limits and metrics.
    Guarded(&'static Gate, &'static guards::Guards),
    Raw,
    RawUpstream,
}

fn gate_from_env() -> Result<&'static Gate, Box<dyn std::error::Error>> {
    Ok(Box::leak(Box::new(Gate::from_env()?)))
}

/// One worker: a current_thread runtime accepting from its clone of the
/// listener, every connection (`TCP_NODELAY` set) served by a task of its own.
fn accept_loop<F, Fut>(listener: std::net::TcpListener, mut serve: F)
where
    F: FnMut(tokio::net::TcpStream) -> Fut,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
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
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let _ = stream.set_nodelay(true);
            tokio::spawn(serve(stream));
        }
    });
}

/// A worker's pooled hyper-util client (`TCP_NODELAY`).
fn pooled_client() -> Upstream {
    let mut http = HttpConnector::new();
    http.set_nodelay(true);
    Client::builder(TokioExecutor::new())
        .pool_max_idle_per_host(1024)
        .build(http)
}

/// One client connection on hyper's HTTP/1.1 server.
async fn serve_h1<S>(stream: tokio::net::TcpStream, svc: S)
where
    S: hyper::service::HttpService<Incoming, ResBody = Either<Incoming, Full<Bytes>>>,
    S::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let conn = hyper::server::conn::http1::Builder::new();
    let _ = conn.serve_connection(TokioIo::new(stream), svc).await;
}

/// The hyper floors' worker: hyper's server, hyper-util's pooled client.
fn worker(listener: std::net::TcpListener, upstream: &'static str, gate: Option<&'static Gate>) {
    let client = pooled_client();
    // Two loops, not one with a branch inside: the bare floor's stays exactly
    // what it was.
    match gate {
        None => accept_loop(listener, move |stream| {
            let client = client.clone();
            let svc = service_fn(move |req| forward(client.clone(), upstream, req));
            serve_h1(stream, svc)
        }),
        Some(gate) => accept_loop(listener, move |stream| {
            let client = client.clone();
            let svc = service_fn(move |req| serve_verified(gate, client.clone(), upstream, req));
            serve_h1(stream, svc)
        }),
    }
}

/// floor+guards' worker: floor+verify's, hyper's header read timeout on.
fn guarded_worker(
    listener: std::net::TcpListener,
    upstream: &'static str,
    gate: &'static Gate,
    guards: &'static guards::Guards,
) {
    let client = pooled_client();
    accept_loop(listener, move |stream| {
        let client = client.clone();
        let svc = service_fn(move |req| guards::serve(gate, guards, client.clone(), upstream, req));
        let mut conn = hyper::server::conn::http1::Builder::new();
        if guards.on.timer && guards.on.coarse {
            conn.timer(coarse::CoarseTimer)
                .header_read_timeout(guards::HEADER_TIMEOUT);
        } else if guards.on.timer {
            conn.timer(TokioTimer::new())
                .header_read_timeout(guards::HEADER_TIMEOUT);
        }
        async move {
            let _ = conn.serve_connection(TokioIo::new(stream), svc).await;
        }
    });
}

/// The hybrid's worker: hyper's server, the purpose-built upstream exchange.
fn rawup_worker(listener: std::net::TcpListener, upstream: &'static str) {
    let pool = std::sync::Arc::new(rawup::AppPool::new(upstream));
    accept_loop(listener, move |stream| {
        let pool = pool.clone();
        let svc = service_fn(move |req| forward_rawup(pool.clone(), req));
        serve_h1(stream, svc)
    });
}

/// The hybrid: the body read whole, then exchanged on the worker's own pool.
async fn forward_rawup(
    pool: std::sync::Arc<rawup::AppPool>,
    req: Request<Incoming>,
) -> Result<Reply, Infallible> {
    let (parts, body) = req.into_parts();
    let body = whole(body).await;
    Ok(match pool.send(&parts, &body).await {
        Ok(resp) => resp.map(|b| Either::Right(Full::new(b))),
        Err(_) => answer(StatusCode::BAD_GATEWAY, b""),
    })
}

/// A request body read whole (empty if it broke off: the floors do not judge).
async fn whole(body: Incoming) -> Bytes {
    body.collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default()
}

/// The bare floor: the body read whole, then forwarded.
async fn forward(
    client: Upstream,
    upstream: &'static str,
    req: Request<Incoming>,
) -> Result<Reply, Infallible> {
    let (parts, body) = req.into_parts();
    let body = whole(body).await;
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

/// floor+verify on hyper: one request verified, claimed, forwarded, settled, logged.
async fn serve_verified(
    gate: &Gate,
    client: Upstream,
    upstream: &'static str,
    req: Request<Incoming>,
) -> Result<Reply, Infallible> {
    let start = Instant::now();
    let (parts, body) = req.into_parts();
    let id = parts.headers.get("svix-id").cloned();
    let (outcome, resp) = decide(gate, &client, upstream, parts, body).await;
    gate::log(
        outcome,
        resp.status().as_u16(),
        start,
        id.as_ref().map(HeaderValue::as_bytes),
    );
    Ok(resp)
}

async fn decide(
    gate: &Gate,
    client: &Upstream,
    upstream: &'static str,
    parts: request::Parts,
    body: Incoming,
) -> (&'static str, Reply) {
    let Ok(body) = body.collect().await.map(|b| b.to_bytes()) else {
        return ("rejected", answer(StatusCode::BAD_REQUEST, b""));
    };
    let key = match admit(gate, &parts.headers, &body) {
        Ok(key) => key,
        Err((outcome, status, body)) => return (outcome, answer(status, body)),
    };
    match send(client, upstream, parts, body).await {
        Ok(resp) => {
            gate.settle(key, resp.status().is_success());
            ("forwarded", resp.map(Either::Left))
        }
        Err(_) => {
            gate.settle(key, false);
            ("upstream_error", answer(StatusCode::BAD_GATEWAY, b""))
        }
    }
}

/// An answer the proxy gives itself instead of forwarding: the outcome
/// logged, the status and the body.
type Refusal = (&'static str, StatusCode, &'static [u8]);

/// A request's Svix check and replay claim: the claimed key, or the answer
/// given instead (400 without the headers, 401 if not genuine, a duplicate's
/// 200, 409 while in flight).
fn admit(gate: &Gate, h: &http::HeaderMap, body: &[u8]) -> Result<[u8; 16], Refusal> {
    let (Some(id), Some(ts), Some(sig)) = (
        h.get("svix-id"),
        h.get("svix-timestamp"),
        h.get("svix-signature"),
    ) else {
        return Err(("rejected", StatusCode::BAD_REQUEST, b""));
    };
    if !gate.genuine(id.as_bytes(), ts.as_bytes(), sig.as_bytes(), body) {
        return Err(("rejected", StatusCode::UNAUTHORIZED, b""));
    }
    match gate.claim(id.as_bytes()) {
        Claim::Claimed(key) => Ok(key),
        Claim::Duplicate => Err(("duplicate", StatusCode::OK, br#"{"status":"duplicate"}"#)),
        Claim::InFlight => Err(("rejected", StatusCode::CONFLICT, b"")),
    }
}
