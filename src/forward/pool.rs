//! The keep-alive pool for a plain `http://` upstream: one per worker (one per
//! [`Forwarder`](super::Forwarder)), HTTP/1.1 connections driven by the
//! request's own task ([`super::wire`] writes and reads them), and the response
//! body that hands its connection back when it ends.
//!
//! Hand-written on the hot path, twice measured. hyper-util's legacy
//! `Client` spent about 1.1 µs of a ~28 µs request on its own bookkeeping
//! (pool checkout future, a task per request to return the connection), so
//! this pool replaced it, first over `hyper::client::conn::http1`: 0.88× the
//! CPU per request. That client connection still ran as a task of its own,
//! with a dispatch channel to the request and a body channel back, and cost
//! a sixth of a proxied request more than writing and reading the connection
//! here (BENCHMARKS.md, runs I and P): the request goes out in one vectored
//! write from the task that verified it, and the response is read by that
//! task, then by the response body as hyper's server asks for it.
//!
//! Kept to what a reverse proxy to one application needs: one host, HTTP/1.1
//! only, a LIFO idle list (the warmest connection first) of at most
//! [`MAX_IDLE`] connections, none reused after [`IDLE_TIMEOUT`] idle or once
//! the application has closed it (seen without a system call: the runtime
//! has marked it readable), and one retry on a fresh connection of a request
//! that could not be written at all on a reused one. A request that was
//! written, even in part, is never sent twice. An answer that comes before
//! the request is all written (a 413 for a body the application will not
//! read) is passed on, as hyper's client did, and its connection is not
//! reused. `https://` and `unix:` upstreams stay on hyper-util's client.

use std::collections::VecDeque;
use std::future::Future;
use std::io::IoSlice;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use bytes::{Buf, Bytes, BytesMut};
use http::{Method, Request, Response};
use hyper::body::{Body, Frame, Incoming, SizeHint};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::Instant;

use super::wire::{self, Decoder, Parsed, ResponseHead, Step, WireError};
use super::Outgoing;

/// Idle connections kept at most (hyper-util's `pool_max_idle_per_host` was 1024).
const MAX_IDLE: usize = 1024;
/// An idle connection older than this is not reused (hyper-util's `pool_idle_timeout`).
const IDLE_TIMEOUT: Duration = Duration::from_secs(60);
/// TCP keepalive probes start after this long without traffic.
const TCP_KEEPALIVE: Duration = Duration::from_secs(60);
/// A response head, interim ones included, at most (larger is a 502).
const MAX_HEAD: usize = 64 * 1024;
/// Room made in a connection's buffer before each read (hyper's first read
/// buffer was 8 KiB too).
const READ_SPACE: usize = 8 * 1024;

/// Why a request got no response from the application.
#[derive(Debug, thiserror::Error)]
pub(crate) enum Failed {
    #[error("connect: {0}")]
    Connect(std::io::Error),
    #[error("connect: no connection within {0:?}")]
    ConnectTimeout(Duration),
    #[error("{0}")]
    Io(std::io::Error),
    #[error("{0}")]
    Wire(WireError),
}

/// One connection to the application and the bytes read from it that are
/// not yet consumed (none while it is idle).
struct Conn {
    stream: TcpStream,
    buf: BytesMut,
}

impl Conn {
    /// Whether an idle connection can carry a request: no end of stream and
    /// no stray bytes arrived while it was idle. The runtime's readiness says
    /// whether anything arrived at all, so the usual answer takes no system
    /// call; the noop waker registers no interest that anyone waits on.
    fn usable(&self) -> bool {
        let mut cx = Context::from_waker(Waker::noop());
        match self.stream.poll_read_ready(&mut cx) {
            Poll::Pending => true,
            Poll::Ready(Err(_)) => false,
            Poll::Ready(Ok(())) => {
                let mut probe = [0u8; 1];
                matches!(self.stream.try_read(&mut probe),
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock)
            }
        }
    }

    /// Reads what the application has sent into the buffer; 0 at its end.
    async fn read_more(&mut self) -> std::io::Result<usize> {
        read_into(&mut self.stream, &mut self.buf).await
    }
}

/// How an attempt failed: before any of the request was written (it may go
/// again on another connection) or after.
enum Attempt {
    Unsent(Failed),
    Sent(Failed),
}

/// The pool of one plain-HTTP upstream.
pub(crate) struct HttpPool {
    shared: Arc<Shared>,
}

struct Shared {
    /// Newest at the back: checkout pops the back, the stale end is the front.
    idle: Mutex<VecDeque<Idle>>,
    /// `host:port`, resolved at each connect.
    addr: String,
    connect_timeout: Duration,
}

struct Idle {
    conn: Conn,
    since: Instant,
}

impl HttpPool {
    /// A pool connecting to `addr` (`host:port`), each connect bounded by
    /// `connect_timeout`.
    pub(crate) fn new(addr: String, connect_timeout: Duration) -> Self {
        HttpPool {
            shared: Arc::new(Shared {
                idle: Mutex::new(VecDeque::new()),
                addr,
                connect_timeout,
            }),
        }
    }

    /// Sends `req` (origin-form, with its `Host` and `Content-Length`) on an
    /// idle connection or a new one; the response's body returns the
    /// connection when it ends. `started`: the caller's clock reading as it
    /// sends, which judges the idle connections' age; the response comes with
    /// the reading taken when its head arrived.
    pub(crate) async fn send(
        &self,
        req: Request<Outgoing>,
        started: Instant,
    ) -> Result<(Response<ResponseBody>, Instant), Failed> {
        let idle = self.shared.checkout(started);
        self.send_on(idle, req).await
    }

    /// Sends on `idle`, a connection that has served before, if there is
    /// one, and on a new connection if there is none or nothing could be
    /// written on it.
    async fn send_on(
        &self,
        idle: Option<Conn>,
        req: Request<Outgoing>,
    ) -> Result<(Response<ResponseBody>, Instant), Failed> {
        let (parts, body) = req.into_parts();
        let mut head = Vec::with_capacity(512);
        let blocks = body.blocks();
        wire::encode_head(&parts, body.size_hint().exact().unwrap_or(0), &mut head);
        let head_request = parts.method == Method::HEAD;
        if let Some(conn) = idle {
            match self.exchange(conn, &head, blocks, head_request).await {
                Ok(resp) => return Ok(resp),
                Err(Attempt::Sent(e)) => return Err(e),
                Err(Attempt::Unsent(e)) => {
                    tracing::debug!(error = %e, "upstream: idle connection closed as it was picked; retrying");
                }
            }
        }
        let conn = self.shared.connect().await?;
        match self.exchange(conn, &head, blocks, head_request).await {
            Ok(resp) => Ok(resp),
            Err(Attempt::Unsent(e) | Attempt::Sent(e)) => Err(e),
        }
    }

    /// Writes the request and reads the response head on `conn`.
    async fn exchange(
        &self,
        mut conn: Conn,
        head: &[u8],
        blocks: &[Bytes],
        head_request: bool,
    ) -> Result<(Response<ResponseBody>, Instant), Attempt> {
        let (head, whole_request_sent) =
            match write_request(&mut conn, head, blocks, head_request).await? {
                // Answered before the request was all out: the connection is
                // left mid-request and cannot carry another.
                Some(early) => (early, false),
                None => (read_head(&mut conn, head_request).await?, true),
            };
        let arrived = Instant::now();
        conn.buf.advance(head.len);
        let body = ResponseBody::direct(Direct {
            conn: Some(conn),
            decoder: Decoder::new(head.framing),
            reusable: head.reusable && whole_request_sent,
            pool: Arc::clone(&self.shared),
            arrived,
        });
        let mut resp = Response::new(body);
        *resp.status_mut() = head.status;
        *resp.version_mut() = head.version;
        *resp.headers_mut() = head.headers;
        Ok((resp, arrived))
    }

    #[cfg(test)]
    fn idle_count(&self) -> usize {
        self.shared.lock().len()
    }
}

/// The head and body in vectored writes, watching for an answer that comes
/// before they are all out: an application may refuse a body it will not
/// read (a 413) and stop reading it, and that answer is what the provider
/// must get, not a stalled write or a broken pipe. Returns such an early
/// answer's head, if one came. Nothing written: the attempt may be made again
/// on another connection. The usual write finishes at its first try (a
/// webhook fits the socket's send buffer) and never polls the read side.
async fn write_request(
    conn: &mut Conn,
    head: &[u8],
    blocks: &[Bytes],
    head_request: bool,
) -> Result<Option<ResponseHead>, Attempt> {
    let mut slices: Vec<IoSlice<'_>> = Vec::with_capacity(1 + blocks.len());
    slices.push(IoSlice::new(head));
    slices.extend(
        blocks
            .iter()
            .filter(|b| !b.is_empty())
            .map(|b| IoSlice::new(b)),
    );
    let mut left = &mut slices[..];
    let mut written = 0usize;
    let mut can_read = true;
    let Conn { stream, buf } = conn;
    let (mut reader, mut writer) = stream.split();
    while !left.is_empty() {
        tokio::select! {
            biased;
            wrote = writer.write_vectored(left) => {
                let failed = match wrote {
                    Ok(0) => std::io::Error::from(std::io::ErrorKind::WriteZero),
                    Ok(n) => {
                        written += n;
                        IoSlice::advance_slices(&mut left, n);
                        continue;
                    }
                    Err(e) => e,
                };
                if written == 0 {
                    return Err(Attempt::Unsent(Failed::Io(failed)));
                }
                // The application may have answered, then closed: its
                // answer is read if it is there.
                return match read_head(conn, head_request).await {
                    Ok(early) => Ok(Some(early)),
                    Err(_) => Err(Attempt::Sent(Failed::Io(failed))),
                };
            }
            read = read_into(&mut reader, buf), if can_read => match read {
                Ok(0) | Err(_) => can_read = false,
                Ok(_) => {
                    if let Some(early) = parse_head(buf, head_request).map_err(Attempt::Sent)? {
                        return Ok(Some(early));
                    }
                }
            },
        }
    }
    Ok(None)
}

/// Reads until the response's head (interim responses skipped) is in `conn`'s buffer.
async fn read_head(conn: &mut Conn, head_request: bool) -> Result<ResponseHead, Attempt> {
    loop {
        if let Some(head) = parse_head(&mut conn.buf, head_request).map_err(Attempt::Sent)? {
            return Ok(head);
        }
        match conn.read_more().await {
            Ok(0) => return Err(Attempt::Sent(Failed::Wire(WireError::Incomplete))),
            Ok(_) => {}
            Err(e) => return Err(Attempt::Sent(Failed::Io(e))),
        }
    }
}

/// The final response's head if `buf` holds it whole; interim responses
/// before it are consumed.
fn parse_head(buf: &mut BytesMut, head_request: bool) -> Result<Option<ResponseHead>, Failed> {
    loop {
        match wire::parse_response(buf, head_request) {
            Ok(Some(Parsed::Interim(len))) => buf.advance(len),
            Ok(Some(Parsed::Final(head))) => return Ok(Some(head)),
            Ok(None) if buf.len() >= MAX_HEAD => {
                return Err(Failed::Wire(WireError::Field("head too large")))
            }
            Ok(None) => return Ok(None),
            Err(e) => return Err(Failed::Wire(e)),
        }
    }
}

/// One read into `buf`, with a read's worth of room made first: from the
/// whole connection, or from its read half while a request is being written.
async fn read_into<R: AsyncRead + Unpin>(
    reader: &mut R,
    buf: &mut BytesMut,
) -> std::io::Result<usize> {
    buf.reserve(READ_SPACE);
    reader.read_buf(buf).await
}

impl Shared {
    fn lock(&self) -> std::sync::MutexGuard<'_, VecDeque<Idle>> {
        self.idle.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The newest idle connection that is young enough and still usable;
    /// the others go (dropped outside the lock).
    fn checkout(&self, now: Instant) -> Option<Conn> {
        loop {
            let mut idle = self.lock();
            let entry = idle.pop_back()?;
            if now.saturating_duration_since(entry.since) > IDLE_TIMEOUT {
                // The newest is too old, so is every older one.
                let stale = std::mem::take(&mut *idle);
                drop(idle);
                drop(stale);
                return None;
            }
            drop(idle);
            if entry.conn.usable() {
                return Some(entry.conn);
            }
        }
    }

    /// Puts a connection whose response has ended back on the idle list, idle
    /// since `now` (the reading taken when its response's head arrived: its
    /// age is over-counted by the body's time, never under-counted).
    fn checkin(&self, conn: Conn, now: Instant) {
        let mut idle = self.lock();
        // The oldest make room, and the stale go while the list is in hand
        // (without traffic nothing reaps them: they are dropped at checkout).
        let evicted = match idle.front() {
            Some(oldest)
                if idle.len() >= MAX_IDLE
                    || now.saturating_duration_since(oldest.since) > IDLE_TIMEOUT =>
            {
                idle.pop_front()
            }
            Some(_) | None => None,
        };
        idle.push_back(Idle { conn, since: now });
        drop(idle);
        drop(evicted);
    }

    async fn connect(&self) -> Result<Conn, Failed> {
        let connecting = TcpStream::connect(self.addr.as_str());
        let stream = tokio::time::timeout(self.connect_timeout, connecting)
            .await
            .map_err(|_| Failed::ConnectTimeout(self.connect_timeout))?
            .map_err(Failed::Connect)?;
        // As hyper-util's connector: a socket option that cannot be set is
        // logged, not fatal.
        if let Err(e) = stream.set_nodelay(true) {
            tracing::warn!(error = %e, "upstream: tcp set_nodelay error");
        }
        let keepalive = socket2::TcpKeepalive::new().with_time(TCP_KEEPALIVE);
        if let Err(e) = socket2::SockRef::from(&stream).set_tcp_keepalive(&keepalive) {
            tracing::warn!(error = %e, "upstream: tcp set_keepalive error");
        }
        tracing::trace!(addr = %self.addr, "upstream: new connection");
        Ok(Conn {
            stream,
            buf: BytesMut::new(),
        })
    }
}

/// A response body read off its connection by the task that polls it.
struct Direct {
    /// `None` once the body has ended or failed.
    conn: Option<Conn>,
    decoder: Decoder,
    reusable: bool,
    pool: Arc<Shared>,
    /// When the response's head arrived.
    arrived: Instant,
}

impl Direct {
    /// The body has ended: its connection goes back if nothing follows it.
    fn finish(&mut self) {
        if let Some(mut conn) = self.conn.take() {
            if self.reusable && conn.buf.is_empty() {
                // An idle connection keeps at most a read's worth of buffer.
                if conn.buf.capacity() > 2 * READ_SPACE {
                    conn.buf = BytesMut::new();
                }
                self.pool.checkin(conn, self.arrived);
            }
        }
    }

    fn poll_frame(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BodyError>>> {
        loop {
            let Some(conn) = self.conn.as_mut() else {
                return Poll::Ready(None);
            };
            match self.decoder.decode(&mut conn.buf) {
                Ok(Step::Data(data)) => {
                    if self.decoder.is_done() {
                        self.finish();
                    }
                    return Poll::Ready(Some(Ok(Frame::data(data))));
                }
                Ok(Step::Done) => {
                    self.finish();
                    return Poll::Ready(None);
                }
                Ok(Step::More) => {}
                Err(e) => {
                    self.conn = None;
                    return Poll::Ready(Some(Err(BodyError(Broke::Wire(e)))));
                }
            }
            conn.buf.reserve(READ_SPACE);
            let read = {
                let mut reading = std::pin::pin!(conn.stream.read_buf(&mut conn.buf));
                std::task::ready!(reading.as_mut().poll(cx))
            };
            match read {
                Ok(0) => {
                    // A close-delimited body ends here; any other is cut short.
                    self.reusable = false;
                    let ended = self.decoder.end_of_input();
                    self.conn = None;
                    if let Err(e) = ended {
                        return Poll::Ready(Some(Err(BodyError(Broke::Wire(e)))));
                    }
                    return Poll::Ready(None);
                }
                Ok(_) => {}
                Err(e) => {
                    self.conn = None;
                    return Poll::Ready(Some(Err(BodyError(Broke::Io(e)))));
                }
            }
        }
    }
}

/// Why the application's response body broke off.
#[derive(Debug, thiserror::Error)]
#[error(transparent)]
pub struct BodyError(Broke);

#[derive(Debug, thiserror::Error)]
enum Broke {
    #[error("{0}")]
    Hyper(hyper::Error),
    #[error("{0}")]
    Io(std::io::Error),
    #[error("{0}")]
    Wire(WireError),
}

enum Inner {
    /// From hyper-util's client (`https://`, `unix:`), which pools its own.
    Hyper(Incoming),
    Direct(Direct),
}

/// The application's response body. From the plain-HTTP pool it carries its
/// connection, which goes back to the idle list when the body has ended and
/// is closed if the body is dropped before its end; from hyper-util's client
/// (`https://`, `unix:`) it is that client's body.
pub struct ResponseBody {
    inner: Inner,
}

impl ResponseBody {
    /// A body with no connection to return (hyper-util's client pools its own).
    pub(crate) fn unpooled(inner: Incoming) -> Self {
        ResponseBody {
            inner: Inner::Hyper(inner),
        }
    }

    fn direct(mut direct: Direct) -> Self {
        // An empty body (a 204, a HEAD) may never be polled: ended all the same.
        if direct.decoder.is_done() {
            direct.finish();
        }
        ResponseBody {
            inner: Inner::Direct(direct),
        }
    }
}

impl Body for ResponseBody {
    type Data = Bytes;
    type Error = BodyError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BodyError>>> {
        match &mut self.inner {
            Inner::Hyper(inner) => Pin::new(inner)
                .poll_frame(cx)
                .map_err(|e| BodyError(Broke::Hyper(e))),
            Inner::Direct(direct) => direct.poll_frame(cx),
        }
    }

    fn is_end_stream(&self) -> bool {
        match &self.inner {
            Inner::Hyper(inner) => inner.is_end_stream(),
            Inner::Direct(direct) => direct.conn.is_none() || direct.decoder.is_done(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.inner {
            Inner::Hyper(inner) => inner.size_hint(),
            Inner::Direct(direct) => match direct.decoder.exact() {
                Some(n) => SizeHint::with_exact(n),
                None => SizeHint::default(),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    use std::convert::Infallible;
    use std::net::SocketAddr;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use http::header::{self, HeaderValue};
    use http_body_util::channel::Channel;
    use http_body_util::{BodyExt, Full};
    use hyper::service::service_fn;
    use hyper_util::rt::TokioIo;
    use tokio::net::TcpListener;

    /// How the test upstream answers each request.
    #[derive(Clone, Copy)]
    enum Answer {
        /// 200 with a short body, keep-alive.
        Ok,
        /// 200 with `Connection: close`.
        Close,
        /// 200 with a 1 MiB body (the client drops it midway).
        Large,
        /// 200 with a body of unknown length: chunked, in two chunks.
        Chunked,
    }

    /// A body of two frames and no length, which hyper's server sends chunked.
    fn two_chunks() -> Channel<Bytes> {
        let (mut tx, body) = Channel::new(2);
        for data in [
            Bytes::from_static(b"first,"),
            Bytes::from(vec![b'y'; 40_000]),
        ] {
            assert!(tx.try_send(Frame::data(data)).is_ok());
        }
        body
    }

    struct Upstream {
        addr: SocketAddr,
        accepted: Arc<AtomicUsize>,
        /// Bumping it closes every connection the server holds then.
        kill: tokio::sync::watch::Sender<u32>,
    }

    async fn upstream(answer: Answer) -> Upstream {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let accepted = Arc::new(AtomicUsize::new(0));
        let (kill, killed) = tokio::sync::watch::channel(0u32);
        let count = Arc::clone(&accepted);
        tokio::spawn(async move {
            loop {
                let (stream, _) = listener.accept().await.unwrap();
                count.fetch_add(1, Ordering::SeqCst);
                let mut killed = killed.clone();
                // Only a kill after this connection came closes it.
                killed.mark_unchanged();
                tokio::spawn(async move {
                    let svc = service_fn(move |_req: Request<Incoming>| async move {
                        let ok =
                            || http_body_util::Either::Left(Full::new(Bytes::from_static(b"ok")));
                        let resp = match answer {
                            Answer::Ok => Response::new(ok()),
                            Answer::Close => {
                                let mut r = Response::new(ok());
                                r.headers_mut()
                                    .insert(header::CONNECTION, HeaderValue::from_static("close"));
                                r
                            }
                            Answer::Large => Response::new(http_body_util::Either::Left(
                                Full::new(Bytes::from(vec![b'x'; 1 << 20])),
                            )),
                            Answer::Chunked => {
                                Response::new(http_body_util::Either::Right(two_chunks()))
                            }
                        };
                        Ok::<_, Infallible>(resp)
                    });
                    let conn = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), svc);
                    tokio::select! {
                        _ = conn => {}
                        _ = killed.changed() => {}
                    }
                });
            }
        });
        Upstream {
            addr,
            accepted,
            kill,
        }
    }

    /// An upstream that reads each request (head and `Content-Length` body)
    /// and writes `script` back as it is, then closes if `close` is set.
    async fn scripted(script: &'static [u8], close: bool) -> (SocketAddr, Arc<AtomicUsize>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let accepted = Arc::new(AtomicUsize::new(0));
        let count = Arc::clone(&accepted);
        tokio::spawn(async move {
            loop {
                let (mut stream, _) = listener.accept().await.unwrap();
                count.fetch_add(1, Ordering::SeqCst);
                tokio::spawn(async move {
                    let mut buf = Vec::new();
                    loop {
                        let mut chunk = [0u8; 4096];
                        let n = stream.read(&mut chunk).await.unwrap_or(0);
                        if n == 0 {
                            return;
                        }
                        buf.extend_from_slice(&chunk[..n]);
                        // The test requests carry `{}`: a whole request ends with it.
                        if buf.ends_with(b"\r\n\r\n{}")
                            || buf.ends_with(b"\r\n\r\n") && buf.starts_with(b"HEAD")
                        {
                            buf.clear();
                            stream.write_all(script).await.unwrap();
                            if close {
                                return;
                            }
                        }
                    }
                });
            }
        });
        (addr, accepted)
    }

    /// `HttpPool::send` as of now, its response without the arrival reading.
    async fn sent(
        pool: &HttpPool,
        req: Request<Outgoing>,
    ) -> Result<Response<ResponseBody>, Failed> {
        pool.send(req, Instant::now()).await.map(|(resp, _)| resp)
    }

    fn pool_at(addr: SocketAddr) -> HttpPool {
        HttpPool::new(addr.to_string(), Duration::from_secs(5))
    }

    fn pool(up: &Upstream) -> HttpPool {
        pool_at(up.addr)
    }

    fn request_to(addr: SocketAddr, method: Method) -> Request<Outgoing> {
        let body = if method == Method::HEAD {
            Vec::new()
        } else {
            vec![Bytes::from_static(b"{}")]
        };
        let mut req = Request::new(Outgoing::new(body));
        *req.method_mut() = method;
        *req.uri_mut() = "/hook?x=1".parse().unwrap();
        req.headers_mut().insert(
            header::HOST,
            HeaderValue::from_str(&addr.to_string()).unwrap(),
        );
        req
    }

    fn request(up: &Upstream) -> Request<Outgoing> {
        request_to(up.addr, Method::POST)
    }

    async fn send_and_read(pool: &HttpPool, up: &Upstream) -> Bytes {
        let resp = sent(pool, request(up)).await.unwrap();
        assert_eq!(resp.status(), 200);
        resp.into_body().collect().await.unwrap().to_bytes()
    }

    #[tokio::test]
    async fn a_connection_goes_back_only_when_its_body_has_ended() {
        let up = upstream(Answer::Large).await;
        let pool = pool(&up);
        // A response nobody has read yet holds its connection: the next
        // request takes a new one.
        let busy = sent(&pool, request(&up)).await.unwrap();
        assert_eq!(pool.idle_count(), 0);
        let next = tokio::time::timeout(Duration::from_secs(5), send_and_read(&pool, &up))
            .await
            .expect("the next request waited for a busy connection");
        assert_eq!(next.len(), 1 << 20);
        assert_eq!(up.accepted.load(Ordering::SeqCst), 2);
        assert_eq!(pool.idle_count(), 1);
        let rest = busy.into_body().collect().await.unwrap().to_bytes();
        assert_eq!(rest.len(), 1 << 20);
        assert_eq!(pool.idle_count(), 2);
    }

    #[tokio::test]
    async fn sequential_requests_share_one_connection() {
        let up = upstream(Answer::Ok).await;
        let pool = pool(&up);
        for _ in 0..5 {
            assert_eq!(send_and_read(&pool, &up).await, "ok");
        }
        assert_eq!(up.accepted.load(Ordering::SeqCst), 1);
        assert_eq!(pool.idle_count(), 1);
    }

    #[tokio::test]
    async fn a_chunked_response_streams_whole_and_its_connection_is_reused() {
        let up = upstream(Answer::Chunked).await;
        let pool = pool(&up);
        for _ in 0..2 {
            let resp = sent(&pool, request(&up)).await.unwrap();
            assert!(resp.headers().contains_key(header::TRANSFER_ENCODING));
            assert_eq!(resp.body().size_hint().exact(), None);
            let body = resp.into_body().collect().await.unwrap().to_bytes();
            assert_eq!(body.len(), 6 + 40_000);
            assert!(body.starts_with(b"first,y"));
        }
        assert_eq!(up.accepted.load(Ordering::SeqCst), 1);
    }

    /// Waits until the client side sees its one idle connection closed.
    async fn until_idle_closed(pool: &HttpPool) {
        tokio::time::timeout(Duration::from_secs(5), async {
            loop {
                let closed = pool
                    .shared
                    .lock()
                    .back()
                    .is_none_or(|idle| !idle.conn.usable());
                if closed {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
        })
        .await
        .unwrap();
    }

    #[tokio::test]
    async fn an_idle_connection_the_server_closed_is_replaced_not_a_failure() {
        let up = upstream(Answer::Ok).await;
        let pool = pool(&up);
        assert_eq!(send_and_read(&pool, &up).await, "ok");
        assert_eq!(pool.idle_count(), 1);
        // The application closes its idle keep-alive connections.
        up.kill.send_modify(|n| *n += 1);
        until_idle_closed(&pool).await;
        assert_eq!(send_and_read(&pool, &up).await, "ok");
        assert_eq!(up.accepted.load(Ordering::SeqCst), 2);
        assert_eq!(pool.idle_count(), 1);
    }

    #[tokio::test]
    async fn a_connection_idle_past_idle_timeout_by_the_callers_reading_is_not_reused() {
        let up = upstream(Answer::Ok).await;
        let pool = pool(&up);
        assert_eq!(send_and_read(&pool, &up).await, "ok");
        assert_eq!(pool.idle_count(), 1);
        // The age of an idle connection is judged by the reading the caller
        // sends with: here, a minute and more after it went back.
        let later = Instant::now() + IDLE_TIMEOUT + Duration::from_secs(1);
        let (resp, _) = pool.send(request(&up), later).await.unwrap();
        assert_eq!(resp.into_body().collect().await.unwrap().to_bytes(), "ok");
        assert_eq!(
            up.accepted.load(Ordering::SeqCst),
            2,
            "a new connection, not the stale one"
        );
        // By a reading from now, the connection just used is young.
        assert_eq!(send_and_read(&pool, &up).await, "ok");
        assert_eq!(up.accepted.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn a_request_that_could_not_be_written_goes_again_on_a_fresh_connection() {
        let up = upstream(Answer::Ok).await;
        let pool = pool(&up);
        assert_eq!(send_and_read(&pool, &up).await, "ok");
        // The close races the checkout: the connection was picked while it
        // looked open, and it is shut for writing by the send.
        let conn = pool.shared.lock().pop_back().unwrap().conn;
        let std = conn.stream.into_std().unwrap();
        std.shutdown(std::net::Shutdown::Write).unwrap();
        std.set_nonblocking(true).unwrap();
        let dead = Conn {
            stream: TcpStream::from_std(std).unwrap(),
            buf: BytesMut::new(),
        };
        let (resp, _) = pool.send_on(Some(dead), request(&up)).await.unwrap();
        assert_eq!(resp.status(), 200);
        assert_eq!(resp.into_body().collect().await.unwrap().to_bytes(), "ok");
        assert_eq!(up.accepted.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn connection_close_means_the_next_request_connects_anew() {
        let up = upstream(Answer::Close).await;
        let pool = pool(&up);
        assert_eq!(send_and_read(&pool, &up).await, "ok");
        assert_eq!(send_and_read(&pool, &up).await, "ok");
        assert_eq!(up.accepted.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn a_body_dropped_midway_does_not_return_its_connection() {
        let up = upstream(Answer::Large).await;
        let pool = pool(&up);
        let resp = sent(&pool, request(&up)).await.unwrap();
        let mut body = resp.into_body();
        let first = body.frame().await.unwrap().unwrap();
        assert!(first.is_data());
        assert!(!body.is_end_stream());
        drop(body);
        assert_eq!(pool.idle_count(), 0);
        let whole = send_and_read(&pool, &up).await;
        assert_eq!(whole.len(), 1 << 20);
        assert_eq!(up.accepted.load(Ordering::SeqCst), 2);
        // Read to its end, the second one is back.
        assert_eq!(pool.idle_count(), 1);
    }

    #[tokio::test]
    async fn an_interim_response_is_skipped() {
        let (addr, accepted) = scripted(
            b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nlink: </a>\r\n\r\nHTTP/1.1 201 Created\r\ncontent-length: 4\r\n\r\ndone",
            false,
        )
        .await;
        let pool = pool_at(addr);
        for _ in 0..2 {
            let resp = sent(&pool, request_to(addr, Method::POST)).await.unwrap();
            assert_eq!(resp.status(), 201);
            assert_eq!(resp.into_body().collect().await.unwrap().to_bytes(), "done");
        }
        assert_eq!(accepted.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn a_close_delimited_response_ends_with_the_connection_and_is_not_reused() {
        let (addr, accepted) = scripted(
            b"HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\n\r\nuntil the end",
            true,
        )
        .await;
        let pool = pool_at(addr);
        for _ in 0..2 {
            let resp = sent(&pool, request_to(addr, Method::POST)).await.unwrap();
            let body = resp.into_body().collect().await.unwrap().to_bytes();
            assert_eq!(body, "until the end");
        }
        assert_eq!(accepted.load(Ordering::SeqCst), 2);
        assert_eq!(pool.idle_count(), 0);
    }

    #[tokio::test]
    async fn a_head_response_has_no_body_whatever_its_length_says() {
        let (addr, accepted) =
            scripted(b"HTTP/1.1 200 OK\r\ncontent-length: 1234\r\n\r\n", false).await;
        let pool = pool_at(addr);
        for _ in 0..2 {
            let resp = sent(&pool, request_to(addr, Method::HEAD)).await.unwrap();
            assert_eq!(resp.headers()[header::CONTENT_LENGTH], "1234");
            assert!(resp.body().is_end_stream());
            assert!(resp
                .into_body()
                .collect()
                .await
                .unwrap()
                .to_bytes()
                .is_empty());
        }
        assert_eq!(accepted.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn a_response_whose_length_cannot_be_told_is_an_error() {
        let (addr, _) = scripted(
            b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\ncontent-length: 3\r\n\r\nabc",
            false,
        )
        .await;
        let pool = pool_at(addr);
        assert!(matches!(
            sent(&pool, request_to(addr, Method::POST)).await,
            Err(Failed::Wire(_))
        ));
        assert_eq!(pool.idle_count(), 0);
    }

    #[tokio::test]
    async fn a_body_cut_short_is_an_error_and_its_connection_is_not_reused() {
        let (addr, _) = scripted(b"HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\nshort", true).await;
        let pool = pool_at(addr);
        let resp = sent(&pool, request_to(addr, Method::POST)).await.unwrap();
        assert!(resp.into_body().collect().await.is_err());
        assert_eq!(pool.idle_count(), 0);
    }

    /// An application that reads a request's head, answers `answer` at once
    /// and then neither reads the body nor closes (or, with `close`, shuts
    /// its side and drops the connection unread).
    async fn answers_before_the_body(answer: &'static [u8], close: bool) -> SocketAddr {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            let (mut stream, _) = listener.accept().await.unwrap();
            let mut head = Vec::new();
            while !head.ends_with(b"\r\n\r\n") {
                let mut byte = [0u8; 1];
                if stream.read(&mut byte).await.unwrap_or(0) == 0 {
                    return;
                }
                head.push(byte[0]);
            }
            stream.write_all(answer).await.unwrap();
            if close {
                stream.shutdown().await.unwrap();
                drop(stream);
                return;
            }
            tokio::time::sleep(Duration::from_secs(30)).await;
            drop(stream);
        });
        addr
    }

    /// A body far larger than the sockets' buffers, so its write cannot finish
    /// while nobody reads it.
    fn large_request(addr: SocketAddr) -> Request<Outgoing> {
        let mut req = request_to(addr, Method::POST);
        *req.body_mut() = Outgoing::new(vec![Bytes::from(vec![b'x'; 64 << 20])]);
        req
    }

    #[tokio::test]
    async fn an_answer_before_the_body_is_read_is_passed_on_not_waited_out() {
        let refusal = b"HTTP/1.1 413 Payload Too Large\r\ncontent-length: 8\r\n\r\ntoo big!";
        let addr = answers_before_the_body(refusal, false).await;
        let pool = pool_at(addr);
        let resp = tokio::time::timeout(Duration::from_secs(10), sent(&pool, large_request(addr)))
            .await
            .expect("the early answer, not a write stalled until the upstream timeout")
            .unwrap();
        assert_eq!(resp.status(), 413);
        let body = resp.into_body().collect().await.unwrap().to_bytes();
        assert_eq!(&body[..], b"too big!");
        // Left mid-request: never carries another.
        assert_eq!(pool.idle_count(), 0);
    }

    #[tokio::test]
    async fn an_answer_then_a_close_before_the_body_is_read_is_passed_on() {
        let refusal =
            b"HTTP/1.1 413 Payload Too Large\r\ncontent-length: 0\r\nconnection: close\r\n\r\n";
        let addr = answers_before_the_body(refusal, true).await;
        let pool = pool_at(addr);
        let resp = tokio::time::timeout(Duration::from_secs(10), sent(&pool, large_request(addr)))
            .await
            .expect("an answer or an error, not a hang");
        // The close of a socket with unread data is a reset, which may
        // overtake the answer: then the request failed, which is a 502.
        if let Ok(resp) = resp {
            assert_eq!(resp.status(), 413);
        }
        assert_eq!(pool.idle_count(), 0);
    }

    #[tokio::test]
    async fn an_unreachable_upstream_is_a_connect_error() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        drop(listener);
        let pool = HttpPool::new(addr.to_string(), Duration::from_secs(5));
        let mut req = Request::new(Outgoing::new(Vec::new()));
        req.headers_mut().insert(
            header::HOST,
            HeaderValue::from_str(&addr.to_string()).unwrap(),
        );
        assert!(matches!(sent(&pool, req).await, Err(Failed::Connect(_))));
    }
}
