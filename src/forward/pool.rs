//! The keep-alive pool for a plain `http://` upstream: one per worker (one per
//! [`Forwarder`](super::Forwarder)), HTTP/1.1 connections driven directly on
//! `hyper::client::conn::http1`, and the response body that hands its
//! connection back when it ends.
//!
//! Hand-written on the hot path because hyper-util's legacy `Client` spends
//! about 1.1 µs of a ~28 µs request on its own bookkeeping: the pool checkout
//! future, the `Pooled` drop, a `Client` clone per request (the lazy connect
//! future) and a task spawned per request only to wait until the HTTP/1
//! connection is ready again and put it back in the pool. Here a connection
//! goes back to the idle list from the response body itself, when the body
//! reaches its end, with no task and no clone of a client. Measured
//! (`run.sh --before <hyper-util build> --sizes 1024 --conns "50 256" --rounds 3`,
//! BENCHMARKS.md): 0.88× the CPU per request at 50 connections and 0.83× at
//! 256 (medians; 5 of 6 rounds lower), 1.09× and 1.16× the rate.
//!
//! Kept to what a reverse proxy to one application needs: one host, HTTP/1.1
//! only, a LIFO idle list (the warmest connection first) of at most
//! [`MAX_IDLE`] connections, none reused after [`IDLE_TIMEOUT`] idle, and one
//! retry on a fresh connection of a request that a reused connection handed
//! back unsent (the application closed it as it was picked, as Node does to
//! keep-alive connections idle for 5 s). `https://` and `unix:` upstreams
//! stay on hyper-util's client.

use std::collections::VecDeque;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{Request, Response};
use hyper::body::{Body, Frame, Incoming, SizeHint};
use hyper::client::conn::http1::{self, SendRequest};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

use super::Outgoing;

/// Idle connections kept at most (hyper-util's `pool_max_idle_per_host` was 1024).
const MAX_IDLE: usize = 1024;
/// An idle connection older than this is not reused (hyper-util's `pool_idle_timeout`).
const IDLE_TIMEOUT: Duration = Duration::from_secs(60);
/// TCP keepalive probes start after this long without traffic.
const TCP_KEEPALIVE: Duration = Duration::from_secs(60);

/// Why a request got no response from the application.
#[derive(Debug, thiserror::Error)]
pub(crate) enum Failed {
    #[error("connect: {0}")]
    Connect(std::io::Error),
    #[error("connect: no connection within {0:?}")]
    ConnectTimeout(Duration),
    #[error("{0}")]
    Http(hyper::Error),
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
    sender: SendRequest<Outgoing>,
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

    /// Sends `req` (origin-form, with its `Host`) on an idle connection or a
    /// new one; the response's body returns the connection when it ends.
    pub(crate) async fn send(
        &self,
        req: Request<Outgoing>,
    ) -> Result<Response<ResponseBody>, Failed> {
        match self.shared.checkout() {
            Some(sender) => self.send_reused(sender, req).await,
            None => self.send_fresh(req).await,
        }
    }

    /// On a connection that has served before, which may have closed as it
    /// was picked: a request it hands back unsent goes once more, on a
    /// connection of its own (as hyper-util's `retry_canceled_requests`). A
    /// request that was sent is never sent twice.
    async fn send_reused(
        &self,
        mut sender: SendRequest<Outgoing>,
        req: Request<Outgoing>,
    ) -> Result<Response<ResponseBody>, Failed> {
        match sender.try_send_request(req).await {
            Ok(resp) => Ok(self.lease(resp, sender)),
            Err(mut e) => match e.take_message() {
                Some(req) => {
                    tracing::debug!("upstream: idle connection closed as it was picked; retrying");
                    drop(sender);
                    // Boxed: the rare retry's state would otherwise widen
                    // every forward's future by ~900 bytes.
                    Box::pin(self.send_fresh(req)).await
                }
                None => Err(Failed::Http(e.into_error())),
            },
        }
    }

    async fn send_fresh(&self, req: Request<Outgoing>) -> Result<Response<ResponseBody>, Failed> {
        let mut sender = self.shared.connect().await?;
        match sender.try_send_request(req).await {
            Ok(resp) => Ok(self.lease(resp, sender)),
            Err(e) => Err(Failed::Http(e.into_error())),
        }
    }

    fn lease(
        &self,
        resp: Response<Incoming>,
        sender: SendRequest<Outgoing>,
    ) -> Response<ResponseBody> {
        let lease = Lease {
            sender,
            pool: Arc::clone(&self.shared),
        };
        resp.map(|inner| ResponseBody {
            inner,
            lease: Some(lease),
        })
    }

    #[cfg(test)]
    fn idle_count(&self) -> usize {
        self.shared.lock().len()
    }
}

impl Shared {
    fn lock(&self) -> std::sync::MutexGuard<'_, VecDeque<Idle>> {
        self.idle.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The newest idle connection that is still open and ready to send. One
    /// that is open but not ready yet (its connection task has not run since
    /// its response ended, or its request body is still going out to an app
    /// that answered early) is not waited for: it goes back behind the
    /// others, for a later request once it is ready, and this one takes the
    /// next or a new connection, as hyper-util never hands out an unready one.
    fn checkout(&self) -> Option<SendRequest<Outgoing>> {
        let mut unready = Vec::new();
        let found = loop {
            match self.pop() {
                None => break None,
                Some(idle) if idle.sender.is_ready() => break Some(idle.sender),
                Some(idle) => unready.push(idle),
            }
        };
        if !unready.is_empty() {
            let mut idle = self.lock();
            for entry in unready.into_iter().rev() {
                idle.push_front(entry);
            }
        }
        found
    }

    /// Pops the newest idle connection that is young enough and not closed;
    /// the others go (dropped outside the lock).
    fn pop(&self) -> Option<Idle> {
        let mut now = None;
        loop {
            let mut idle = self.lock();
            let entry = idle.pop_back()?;
            let now = *now.get_or_insert_with(Instant::now);
            if now.saturating_duration_since(entry.since) > IDLE_TIMEOUT {
                // The newest is too old, so is every older one.
                let stale = std::mem::take(&mut *idle);
                drop(idle);
                drop(stale);
                return None;
            }
            drop(idle);
            if !entry.sender.is_closed() {
                return Some(entry);
            }
        }
    }

    /// Puts a sender whose response has ended back on the idle list.
    fn checkin(&self, sender: SendRequest<Outgoing>) {
        if sender.is_closed() {
            return;
        }
        let now = Instant::now();
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
        idle.push_back(Idle { sender, since: now });
        drop(idle);
        drop(evicted);
    }

    async fn connect(&self) -> Result<SendRequest<Outgoing>, Failed> {
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
        let (sender, conn) = http1::Builder::new()
            .handshake(TokioIo::new(stream))
            .await
            .map_err(Failed::Http)?;
        tracing::trace!(addr = %self.addr, "upstream: new connection");
        // On the current worker's runtime, as the requests that use it.
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                tracing::debug!(error = %e, "upstream connection ended with an error");
            }
        });
        Ok(sender)
    }
}

/// A connection lent to one response.
struct Lease {
    sender: SendRequest<Outgoing>,
    pool: Arc<Shared>,
}

/// The application's response body. From the plain-HTTP pool it carries its
/// connection, which goes back to the idle list when the body has ended and
/// is closed if the body is dropped before its end; from hyper-util's client
/// (`https://`, `unix:`) it is the bare body.
pub struct ResponseBody {
    inner: Incoming,
    lease: Option<Lease>,
}

impl ResponseBody {
    /// A body with no connection to return (hyper-util's client pools its own).
    pub(crate) fn unpooled(inner: Incoming) -> Self {
        ResponseBody { inner, lease: None }
    }

    fn give_back(&mut self) {
        if let Some(Lease { sender, pool }) = self.lease.take() {
            pool.checkin(sender);
        }
    }
}

impl Body for ResponseBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        let this = &mut *self;
        let frame = std::task::ready!(Pin::new(&mut this.inner).poll_frame(cx));
        match &frame {
            None => this.give_back(),
            Some(Ok(_)) => {
                if this.inner.is_end_stream() {
                    this.give_back();
                }
            }
            // A broken body: its connection is not reused.
            Some(Err(_)) => this.lease = None,
        }
        Poll::Ready(frame)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

impl Drop for ResponseBody {
    fn drop(&mut self) {
        // An empty body (a 204, a HEAD) may never be polled: ended all the
        // same. Dropped before its end, the lease just goes, and with it the
        // connection.
        if self.inner.is_end_stream() {
            self.give_back();
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
    use http_body_util::{BodyExt, Full};
    use hyper::service::service_fn;
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
                        let resp = match answer {
                            Answer::Ok => Response::new(Full::new(Bytes::from_static(b"ok"))),
                            Answer::Close => {
                                let mut r = Response::new(Full::new(Bytes::from_static(b"ok")));
                                r.headers_mut()
                                    .insert(header::CONNECTION, HeaderValue::from_static("close"));
                                r
                            }
                            Answer::Large => {
                                Response::new(Full::new(Bytes::from(vec![b'x'; 1 << 20])))
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

    fn pool(up: &Upstream) -> HttpPool {
        HttpPool::new(up.addr.to_string(), Duration::from_secs(5))
    }

    fn request(up: &Upstream) -> Request<Outgoing> {
        let mut req = Request::new(Outgoing::new(vec![Bytes::from_static(b"{}")]));
        *req.method_mut() = http::Method::POST;
        *req.uri_mut() = "/hook?x=1".parse().unwrap();
        req.headers_mut().insert(
            header::HOST,
            HeaderValue::from_str(&up.addr.to_string()).unwrap(),
        );
        req
    }

    async fn send_and_read(pool: &HttpPool, up: &Upstream) -> Bytes {
        let resp = pool.send(request(up)).await.unwrap();
        assert_eq!(resp.status(), 200);
        resp.into_body().collect().await.unwrap().to_bytes()
    }

    #[tokio::test]
    async fn an_unready_idle_connection_is_passed_over_not_waited_for() {
        let up = upstream(Answer::Large).await;
        let pool = pool(&up);
        // A connection still streaming a response nobody reads is never
        // ready; put on the idle list, it must not hold the next request.
        let mut busy = pool.send(request(&up)).await.unwrap();
        let lease = busy.body_mut().lease.take().unwrap();
        pool.shared.checkin(lease.sender);
        let next = tokio::time::timeout(Duration::from_secs(5), send_and_read(&pool, &up))
            .await
            .expect("the next request waited for a busy connection");
        assert_eq!(next.len(), 1 << 20);
        assert_eq!(up.accepted.load(Ordering::SeqCst), 2);
        // The busy one was put back, not dropped: both are on the list.
        assert_eq!(pool.idle_count(), 2);
        drop(busy);
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

    /// Waits until the client side has seen its one idle connection close.
    async fn until_idle_closed(pool: &HttpPool) {
        tokio::time::timeout(Duration::from_secs(5), async {
            loop {
                let closed = pool
                    .shared
                    .lock()
                    .back()
                    .is_none_or(|idle| idle.sender.is_closed());
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
    async fn a_request_handed_back_unsent_is_retried_on_a_fresh_connection() {
        let up = upstream(Answer::Ok).await;
        let pool = pool(&up);
        assert_eq!(send_and_read(&pool, &up).await, "ok");
        // The close races the checkout: the sender was picked while its
        // connection looked open, and by the send it has closed.
        let sender = pool.shared.checkout().unwrap();
        pool.shared.checkin(sender);
        up.kill.send_modify(|n| *n += 1);
        until_idle_closed(&pool).await;
        let sender = pool.shared.lock().pop_back().unwrap().sender;
        let resp = pool.send_reused(sender, request(&up)).await.unwrap();
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
        let resp = pool.send(request(&up)).await.unwrap();
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
        assert!(matches!(pool.send(req).await, Err(Failed::Connect(_))));
    }
}
