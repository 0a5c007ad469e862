//! The application behind hookgate: a real HTTP/1.1 server on a fixed loopback port whose behaviour the timeline switches at run time, logging every arrival and whether its signature verifies.
//!
//! Every accepted connection has `SO_LINGER` 0, so a connection the app
//! drops (a reset fault, or all of them when it stops listening) ends with a
//! TCP RST, as when an application process dies.

use std::collections::HashMap;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{HeaderMap, HeaderName, Request, Response, StatusCode};
use http_body_util::BodyExt;
use hyper::body::{Body, Frame, Incoming};
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::support::{hmac_sha256, LEAFLINK_SECRET, LEVANTA_SECRET, SVIX_SECRET, SVIX_SECRET_OLD};

/// How the application answers what arrives (stopping to listen is `App::refuse`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Mode {
    /// 200 at once.
    Normal,
    /// 200 after 300-700 ms, well within `upstream.timeout`.
    Slow,
    /// 500 / 502 / 503 of its own.
    Fail5xx,
    /// Reads the request, then resets the connection without a byte of answer.
    ResetBefore,
    /// Sends a 200 head and part of the body, then resets the connection.
    ResetMid,
    /// Answers nothing until `upstream.timeout` + 1 s has passed (then a 503 nobody reads).
    Hang,
    /// Sends a 200 head and part of the body, then stalls past `upstream.timeout`.
    Stall,
}

impl Mode {
    /// The app started a 2xx answer: for it the delivery is done. A reset
    /// mid-body or a stalled body still sent its 2xx head, which hookgate reads.
    pub fn accepts(self) -> bool {
        match self {
            Mode::Normal | Mode::Slow | Mode::ResetMid | Mode::Stall => true,
            Mode::Fail5xx | Mode::ResetBefore | Mode::Hang => false,
        }
    }
}

/// One request as it reached the application.
#[derive(Debug, Clone)]
pub struct Arrival {
    /// When its headers reached the app.
    pub at: Instant,
    /// The provider's delivery number, from the body (`None`: not JSON of ours).
    pub delivery: Option<u64>,
    pub path: String,
    /// The hookgate instance it came through (the provider's `x-via` header, passed on).
    pub via: String,
    /// The provider's attempt it was sent in (its `x-attempt` header, passed on): in queue mode,
    /// which stored request this is.
    pub attempt: Option<u32>,
    /// Its signature verifies with the route's secret, checked here independently of hookgate.
    pub verified: bool,
    pub mode: Mode,
}

struct Inner {
    mode: Mutex<Mode>,
    log: Mutex<Vec<Arrival>>,
    /// Requests being handled right now, by `via`.
    in_progress: Mutex<HashMap<String, usize>>,
    /// Bumped to drop every open connection.
    epoch: watch::Sender<u64>,
    accept: Mutex<Option<JoinHandle<()>>>,
    upstream_timeout: Duration,
}

#[derive(Clone)]
pub struct App {
    inner: Arc<Inner>,
    pub port: u16,
}

impl App {
    /// Listens on `port` (one `procs::free_port` chose, outside the ephemeral range).
    pub async fn start(port: u16, upstream_timeout: Duration) -> App {
        let listener = TcpListener::bind(("127.0.0.1", port)).await.unwrap();
        let app = App {
            inner: Arc::new(Inner {
                mode: Mutex::new(Mode::Normal),
                log: Mutex::default(),
                in_progress: Mutex::default(),
                epoch: watch::channel(0).0,
                accept: Mutex::default(),
                upstream_timeout,
            }),
            port,
        };
        app.serve(listener);
        app
    }

    fn serve(&self, listener: TcpListener) {
        let inner = self.inner.clone();
        let task = tokio::spawn(accept_loop(listener, inner));
        if let Some(old) = self.inner.accept.lock().unwrap().replace(task) {
            old.abort();
        }
    }

    pub fn set_mode(&self, mode: Mode) {
        *self.inner.mode.lock().unwrap() = mode;
    }

    /// The process is gone: the listener closes (connections are refused) and
    /// every open connection is reset.
    pub fn refuse(&self) {
        if let Some(task) = self.inner.accept.lock().unwrap().take() {
            task.abort();
        }
        self.inner.epoch.send_modify(|e| *e += 1);
    }

    /// Listens again on the same port (retried for up to 5 s: the port may
    /// briefly be someone's ephemeral port).
    pub async fn reopen(&self) {
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            match TcpListener::bind(("127.0.0.1", self.port)).await {
                Ok(listener) => return self.serve(listener),
                Err(e) => assert!(
                    Instant::now() < deadline,
                    "the app cannot listen on its port again: {e}"
                ),
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Requests being handled right now, through any instance.
    pub fn in_progress_total(&self) -> usize {
        self.inner.in_progress.lock().unwrap().values().sum()
    }

    pub fn in_progress(&self, via: &str) -> usize {
        self.inner
            .in_progress
            .lock()
            .unwrap()
            .get(via)
            .copied()
            .unwrap_or(0)
    }

    pub fn log(&self) -> Vec<Arrival> {
        self.inner.log.lock().unwrap().clone()
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        if let Some(task) = self.accept.lock().unwrap().take() {
            task.abort();
        }
    }
}

async fn accept_loop(listener: TcpListener, inner: Arc<Inner>) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            tokio::time::sleep(Duration::from_millis(10)).await;
            continue;
        };
        let _ = stream.set_zero_linger();
        let _ = stream.set_nodelay(true);
        let mut epoch = inner.epoch.subscribe();
        let conn_inner = inner.clone();
        tokio::spawn(async move {
            let svc = service_fn(move |req| handle(conn_inner.clone(), req));
            let conn = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), svc);
            // Dropping the connection drops the socket: with linger 0, an RST.
            tokio::select! {
                _ = conn => {}
                _ = epoch.changed() => {}
            }
        });
    }
}

/// Counts a request in `in_progress` while it is being handled.
struct Busy {
    inner: Arc<Inner>,
    via: String,
}

impl Busy {
    fn new(inner: &Arc<Inner>, via: &str) -> Busy {
        *inner
            .in_progress
            .lock()
            .unwrap()
            .entry(via.to_string())
            .or_default() += 1;
        Busy {
            inner: inner.clone(),
            via: via.to_string(),
        }
    }
}

impl Drop for Busy {
    fn drop(&mut self) {
        if let Some(n) = self.inner.in_progress.lock().unwrap().get_mut(&self.via) {
            *n = n.saturating_sub(1);
        }
    }
}

async fn handle(
    inner: Arc<Inner>,
    req: Request<Incoming>,
) -> Result<Response<Scripted>, io::Error> {
    // Reached the app with its headers: a request hookgate sent just before a
    // kill -9 is still read whole from the socket after it, and must count
    // from here, before the kill (the crash window), not from its body's end.
    let at = Instant::now();
    let mode = *inner.mode.lock().unwrap();
    let (parts, body) = req.into_parts();
    let via = parts
        .headers
        .get("x-via")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("?")
        .to_string();
    let _busy = Busy::new(&inner, &via);
    let body = body.collect().await.map_err(io::Error::other)?.to_bytes();
    let path = parts.uri.path().to_string();
    let delivery = serde_json::from_slice::<serde_json::Value>(&body)
        .ok()
        .and_then(|v| v.get("delivery")?.as_u64());
    let attempt = parts
        .headers
        .get("x-attempt")
        .and_then(|v| v.to_str().ok()?.parse().ok());
    inner.log.lock().unwrap().push(Arrival {
        at,
        delivery,
        attempt,
        verified: verifies(&path, &parts.headers, &body),
        path,
        via,
        mode,
    });
    let n = delivery.unwrap_or(0);
    let late = inner.upstream_timeout + Duration::from_secs(1);
    let ok = || Bytes::from_static(b"{\"ok\":true}");
    match mode {
        Mode::Normal => Ok(answer(200, Scripted::whole(ok()))),
        Mode::Slow => {
            tokio::time::sleep(Duration::from_millis(300 + (n % 5) * 100)).await;
            Ok(answer(200, Scripted::whole(ok())))
        }
        Mode::Fail5xx => {
            let status = [500, 502, 503][usize::try_from(n % 3).unwrap()];
            Ok(answer(
                status,
                Scripted::whole(Bytes::from_static(b"{\"app\":\"failing\"}")),
            ))
        }
        Mode::ResetBefore => Err(io::Error::other("the app resets before answering")),
        Mode::ResetMid => Ok(answer(200, Scripted::cut(Duration::from_millis(100), None))),
        Mode::Hang => {
            tokio::time::sleep(late).await;
            Ok(answer(
                503,
                Scripted::whole(Bytes::from_static(b"{\"app\":\"late\"}")),
            ))
        }
        Mode::Stall => Ok(answer(
            200,
            Scripted::cut(late, Some(Bytes::from_static(b"}"))),
        )),
    }
}

fn answer(status: u16, body: Scripted) -> Response<Scripted> {
    let mut resp = Response::new(body);
    *resp.status_mut() = StatusCode::from_u16(status).unwrap();
    resp.headers_mut()
        .insert("content-type", "application/json".parse().unwrap());
    resp
}

/// A response body: a first part, a pause, then the rest or an error (which
/// makes hyper drop the connection mid-body).
pub struct Scripted {
    first: Option<Bytes>,
    pause: Pin<Box<tokio::time::Sleep>>,
    /// `None` after the pause: fail.
    rest: Option<Option<Bytes>>,
}

impl Scripted {
    fn whole(body: Bytes) -> Scripted {
        Scripted {
            first: Some(body),
            pause: Box::pin(tokio::time::sleep(Duration::ZERO)),
            rest: None,
        }
    }

    fn cut(pause: Duration, rest: Option<Bytes>) -> Scripted {
        Scripted {
            first: Some(Bytes::from_static(b"{\"ok\":")),
            pause: Box::pin(tokio::time::sleep(pause)),
            rest: Some(rest),
        }
    }
}

impl Body for Scripted {
    type Data = Bytes;
    type Error = io::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, io::Error>>> {
        if let Some(first) = self.first.take() {
            return Poll::Ready(Some(Ok(Frame::data(first))));
        }
        let Some(rest) = self.rest.take() else {
            return Poll::Ready(None);
        };
        if self.pause.as_mut().poll(cx).is_pending() {
            self.rest = Some(rest);
            return Poll::Pending;
        }
        Poll::Ready(Some(match rest {
            Some(bytes) => Ok(Frame::data(bytes)),
            None => Err(io::Error::other("the app resets mid-body")),
        }))
    }
}

/// Whether the request's signature verifies for its route, by the providers'
/// own rules: Svix with the official `standardwebhooks` crate (which also
/// checks the timestamp), Levanta and LeafLink with an independent HMAC.
/// Each signature header must be present exactly once.
pub fn verifies(path: &str, headers: &HeaderMap, body: &[u8]) -> bool {
    let one = |name: &str| -> Option<&str> {
        let mut all = headers.get_all(name).iter();
        let v = all.next()?.to_str().ok()?;
        all.next().is_none().then_some(v)
    };
    match path {
        "/webhooks/levers" => {
            let mut unbranded = HeaderMap::new();
            for (from, to) in [
                ("svix-id", "webhook-id"),
                ("svix-timestamp", "webhook-timestamp"),
                ("svix-signature", "webhook-signature"),
            ] {
                let Some(v) = one(from) else { return false };
                let Ok(v) = v.parse() else { return false };
                unbranded.insert(HeaderName::from_static(to), v);
            }
            [SVIX_SECRET, SVIX_SECRET_OLD].iter().any(|secret| {
                standardwebhooks::Webhook::new(secret)
                    .unwrap()
                    .verify(body, &unbranded)
                    .is_ok()
            })
        }
        "/webhooks/levanta" => one("x-levanta-hmac-sha256")
            .and_then(|h| hex::decode(h).ok())
            .is_some_and(|sig| sig == hmac_sha256(LEVANTA_SECRET.as_bytes(), body)),
        "/webhooks/leaflink" => {
            use base64::Engine;
            one("ll-signature")
                .and_then(|h| {
                    base64::engine::general_purpose::STANDARD
                        .decode(h.trim_end_matches('\n'))
                        .ok()
                })
                .is_some_and(|sig| sig == hmac_sha256(LEAFLINK_SECRET.as_bytes(), body))
        }
        _ => false,
    }
}
