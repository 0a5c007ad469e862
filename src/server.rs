//! The data path's shape: N worker threads, each a single-threaded tokio
//! runtime that owns its connections from TLS handshake to last response,
//! with its own upstream client; how new connections reach them; graceful
//! drain.
//!
//! Thread-per-core, as nginx's workers: a request never changes thread, so
//! the server connection, the forward and the pooled upstream connection
//! wake one another without cross-thread wake-ups or work stealing.
//!
//! Two ways in (`Balance`). `exact` (the default): an acceptor on the control
//! thread hands each new connection to the worker with the fewest open ones,
//! so a sender's few long-lived connections spread evenly (a kernel hash such
//! as `SO_REUSEPORT` would not promise that). `kernel`: every worker accepts
//! from its own clone of the listener and whichever the kernel wakes first
//! takes the connection, as nginx's workers do: no hand-off through the
//! control thread (cheaper where each webhook comes on a new connection), but
//! an uneven split (BENCHMARKS.md, sixth session).
//!
//! Accepting never dies: a failed accept is counted and backed off, and
//! everything that can go wrong with one client (a garbage TLS handshake, a
//! reset, a slow or vanished client) happens in that connection's own task.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::{GracefulShutdown, Watcher};
use prometheus::IntGauge;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, oneshot, watch, OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;

use crate::config::Limits;
use crate::forward::{Forwarder, Origin};
use crate::metrics::Metrics;
use crate::proxy::Proxy;
use crate::tls::Tls;

/// The protocol a connection speaks, so which connection builder serves it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Protocol {
    /// TLS without ALPN `h2`, or plain TCP that began as HTTP/1 does.
    Http1,
    /// TLS with ALPN `h2`, or plain TCP that began with the HTTP/2 preface.
    Http2,
}

/// The first bytes of an HTTP/2 connection with prior knowledge (RFC 9113 §3.4).
const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// What the first bytes of a plain connection say it speaks: HTTP/2 once the
/// whole preface is there, HTTP/1 (whose parser answers garbage too) as soon
/// as they differ from it, and `None` (not yet known) while they are a part
/// of it.
fn sniff(first: &[u8]) -> Option<Protocol> {
    let n = first.len().min(H2_PREFACE.len());
    if first[..n] != H2_PREFACE[..n] {
        Some(Protocol::Http1)
    } else if n == H2_PREFACE.len() {
        Some(Protocol::Http2)
    } else {
        None
    }
}

/// Why a plain connection ended before its protocol was known.
enum Unnamed {
    /// Closed (or failed) by the client.
    Gone,
    /// `header_timeout` passed.
    TimedOut,
}

/// Waits until `deadline` for the first bytes of `stream` to name its
/// protocol, without consuming them. A client whose first segment is only a
/// part of the HTTP/2 preface (rare: a preface is sent whole) is looked at
/// again after a pause that doubles up to 200 ms: a peek returns at once
/// while any bytes are there, and this bounds what a client stalling inside
/// the preface costs to a few system calls a second until its deadline.
async fn named_protocol(stream: &TcpStream, deadline: Instant) -> Result<Protocol, Unnamed> {
    let mut first = [0u8; H2_PREFACE.len()];
    let mut pause = Duration::from_millis(5);
    loop {
        let seen = match tokio::time::timeout_at(deadline, stream.peek(&mut first)).await {
            Ok(Ok(n)) if n > 0 => n,
            Ok(Ok(_)) | Ok(Err(_)) => return Err(Unnamed::Gone),
            Err(_) => return Err(Unnamed::TimedOut),
        };
        if let Some(protocol) = sniff(&first[..seen]) {
            return Ok(protocol);
        }
        if Instant::now() + pause >= deadline {
            tokio::time::sleep_until(deadline).await;
            return Err(Unnamed::TimedOut);
        }
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(Duration::from_millis(200));
    }
}

fn connection_builder(limits: &Limits, protocol: Protocol) -> auto::Builder<TokioExecutor> {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        // Cuts off a client trickling headers (and an idle keep-alive
        // connection): hyper closes it without a response.
        .header_read_timeout(limits.header_timeout)
        .max_buf_size(limits.max_header_bytes.max(8192))
        .max_headers(limits.max_headers);
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_header_list_size(u32::try_from(limits.max_header_bytes).unwrap_or(u32::MAX))
        .max_concurrent_streams(256)
        // Pings an HTTP/2 peer every 30 s and drops it if it stops answering:
        // a vanished client does not hold a connection slot for ever.
        .keep_alive_interval(Duration::from_secs(30));
    // One protocol each: hyper-util's own sniffing (an extra read of up to
    // 24 bytes before hyper's, and no deadline) is never used.
    match protocol {
        Protocol::Http1 => builder.http1_only(),
        Protocol::Http2 => builder.http2_only(),
    }
}

/// What one worker's connection tasks need.
struct Conns {
    proxy: Arc<Proxy>,
    forwarder: Arc<Forwarder>,
    tls: Option<Arc<Tls>>,
    http1: auto::Builder<TokioExecutor>,
    http2: auto::Builder<TokioExecutor>,
    header_timeout: Duration,
}

impl Conns {
    /// One connection: TLS handshake (if any) within `header_timeout`, then HTTP.
    async fn run(self: Arc<Self>, stream: TcpStream, peer: SocketAddr, watcher: Watcher) {
        match &self.tls {
            None => self.run_plain(stream, peer, watcher).await,
            // Boxed: a TLS connection's state (the handshake, rustls's
            // session) is ~4 KiB more than a plain one's, and inline it would
            // size every connection's task, plain ones too, to the larger.
            Some(tls) => Box::pin(self.run_tls(tls, stream, peer, watcher)).await,
        }
    }

    async fn run_plain(&self, stream: TcpStream, peer: SocketAddr, watcher: Watcher) {
        // hyper's header timer starts only once a request head begins, so the
        // wait for a client's first bytes is bounded here: one that connects
        // and says nothing, or stops inside the HTTP/2 preface, is cut off.
        let deadline = Instant::now() + self.header_timeout;
        let builder = match named_protocol(&stream, deadline).await {
            Ok(Protocol::Http1) => &self.http1,
            Ok(Protocol::Http2) => &self.http2,
            Err(Unnamed::Gone) => return,
            Err(Unnamed::TimedOut) => {
                self.proxy.metrics().connection_errors.inc();
                tracing::debug!(%peer, "no request within header_timeout");
                return;
            }
        };
        let origin = Origin::new(peer.ip(), false);
        self.serve(builder, TokioIo::new(stream), origin, watcher)
            .await;
    }

    async fn run_tls(&self, tls: &Tls, stream: TcpStream, peer: SocketAddr, watcher: Watcher) {
        let metrics = self.proxy.metrics();
        let handshake =
            tokio::time::timeout(self.header_timeout, tls.acceptor.accept(stream)).await;
        let stream = match handshake {
            Ok(Ok(s)) => s,
            Ok(Err(e)) => {
                metrics.tls_handshake_errors.inc();
                tracing::info!(%peer, error = %e, "TLS handshake failed");
                return;
            }
            Err(_) => {
                metrics.tls_handshake_errors.inc();
                tracing::info!(%peer, "TLS handshake timed out (header_timeout)");
                return;
            }
        };
        let builder = if stream.get_ref().1.alpn_protocol() == Some(b"h2") {
            &self.http2
        } else {
            &self.http1
        };
        let origin = Origin::new(peer.ip(), true);
        self.serve(builder, TokioIo::new(stream), origin, watcher)
            .await;
    }

    async fn serve<I>(
        &self,
        builder: &auto::Builder<TokioExecutor>,
        io: TokioIo<I>,
        origin: Origin,
        watcher: Watcher,
    ) where
        I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
    {
        let peer = origin.peer;
        let proxy = Arc::clone(&self.proxy);
        let forwarder = Arc::clone(&self.forwarder);
        let svc = service_fn(move |req| {
            let proxy = Arc::clone(&proxy);
            let forwarder = Arc::clone(&forwarder);
            let origin = origin.clone();
            async move { Ok::<_, Infallible>(proxy.handle(req, origin, forwarder).await) }
        });
        let conn = builder.serve_connection(io, svc);
        if let Err(e) = watcher.watch(conn).await {
            self.proxy.metrics().connection_errors.inc();
            tracing::debug!(%peer, error = %e, "connection ended with an error");
        }
    }
}

/// Counts an open connection and its `max_connections` slot; both end on drop.
struct Slot {
    _permit: OwnedSemaphorePermit,
    gauge: IntGauge,
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.gauge.dec();
    }
}

/// How a new connection reaches a worker (`hookgate run --balance`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Balance {
    /// One acceptor hands each connection to the worker serving the fewest:
    /// an exactly even split, also of a sender's few long-lived connections
    /// (Envoy's `exact_balance`).
    Exact,
    /// Every worker accepts from the shared listener and the kernel wakes
    /// them all; whichever is first takes the connection, as nginx's workers
    /// do. No hand-off between threads, and an idle worker tends to win, but
    /// the split is uneven: a few long-lived connections may share a worker.
    Kernel,
}

impl std::fmt::Display for Balance {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Balance::Exact => "exact",
            Balance::Kernel => "kernel",
        })
    }
}

/// The public listener, prepared for how connections reach the workers.
pub enum Intake {
    /// The acceptor (on the control thread) accepts from it.
    Acceptor(TcpListener),
    /// One clone of it per worker, each accepting for itself.
    PerWorker(Vec<std::net::TcpListener>),
}

impl Intake {
    /// Prepares `listener` for `balance` over `workers` workers.
    pub fn new(listener: TcpListener, balance: Balance, workers: usize) -> std::io::Result<Intake> {
        match balance {
            Balance::Exact => Ok(Intake::Acceptor(listener)),
            Balance::Kernel => {
                // Leaves the control thread's reactor; each worker registers
                // its clone (a duplicate of the same socket) with its own.
                let listener = listener.into_std()?;
                let clones = (0..workers)
                    .map(|_| listener.try_clone())
                    .collect::<std::io::Result<Vec<_>>>()?;
                Ok(Intake::PerWorker(clones))
            }
        }
    }
}

/// What accepting needs, in the acceptor or in each worker: the
/// `max_connections` slots, the metrics and the shutdown signal.
#[derive(Clone)]
struct Accepting {
    slots: Arc<Semaphore>,
    metrics: Arc<Metrics>,
    shutdown: watch::Receiver<bool>,
}

impl Accepting {
    /// The next connection (`TCP_NODELAY` set) with its slot; `None` once
    /// shutdown is asked. At `max_connections` it stops accepting, so new
    /// clients wait in the kernel's backlog instead of costing memory here;
    /// a failed accept (EMFILE and friends) is counted and backed off, and
    /// accepting goes on.
    async fn next(&mut self, listener: &TcpListener) -> Option<(TcpStream, SocketAddr, Slot)> {
        loop {
            let permit = tokio::select! {
                biased;
                _ = self.shutdown.wait_for(|stop| *stop) => return None,
                p = Arc::clone(&self.slots).acquire_owned() => p.ok()?, // never closed
            };
            let accepted = tokio::select! {
                biased;
                _ = self.shutdown.wait_for(|stop| *stop) => return None,
                a = listener.accept() => a,
            };
            match accepted {
                Ok((stream, peer)) => {
                    let _ = stream.set_nodelay(true);
                    self.metrics.open_connections.inc();
                    let slot = Slot {
                        _permit: permit,
                        gauge: self.metrics.open_connections.clone(),
                    };
                    return Some((stream, peer, slot));
                }
                Err(e) => {
                    self.metrics.accept_errors.inc();
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
        }
    }
}

/// Waits up to `grace` for the connections `graceful` watches to finish.
async fn drain(graceful: GracefulShutdown, grace: Duration) {
    if tokio::time::timeout(grace, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("shutdown_grace expired with requests still in flight");
    }
}

/// An accepted connection on its way to a worker.
struct Handoff {
    stream: std::net::TcpStream,
    peer: SocketAddr,
    slot: Slot,
    watcher: Watcher,
}

/// A worker's own accepting (`Balance::Kernel`): its clone of the listener,
/// and a way to say when it has stopped accepting and drained.
struct OwnIntake {
    listener: std::net::TcpListener,
    accepting: Accepting,
    grace: Duration,
    drained: oneshot::Sender<()>,
}

/// What the control thread sends a worker.
enum Job {
    /// Serve this connection.
    Serve(Handoff),
    /// Accept for yourself until shutdown, then drain.
    Accept(OwnIntake),
}

/// One worker thread, as the control thread sees it.
struct Worker {
    inbox: mpsc::UnboundedSender<Job>,
    /// Connections the acceptor handed this worker that are open now.
    open: Arc<AtomicUsize>,
    thread: std::thread::JoinHandle<()>,
}

/// The data path's worker threads.
pub struct Workers {
    workers: Vec<Worker>,
    next: usize,
}

impl Workers {
    /// Starts one worker thread per forwarder, each with its own runtime.
    pub fn start(
        proxy: &Arc<Proxy>,
        tls: Option<Arc<Tls>>,
        limits: &Limits,
        forwarders: Vec<Arc<Forwarder>>,
    ) -> std::io::Result<Workers> {
        let mut workers = Vec::with_capacity(forwarders.len());
        for (index, forwarder) in forwarders.into_iter().enumerate() {
            let conns = Arc::new(Conns {
                proxy: Arc::clone(proxy),
                forwarder,
                tls: tls.clone(),
                http1: connection_builder(limits, Protocol::Http1),
                http2: connection_builder(limits, Protocol::Http2),
                header_timeout: limits.header_timeout,
            });
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            let (inbox, rx) = mpsc::unbounded_channel();
            let open = Arc::new(AtomicUsize::new(0));
            let thread = std::thread::Builder::new()
                .name(format!("hookgate-worker-{index}"))
                .spawn({
                    let open = Arc::clone(&open);
                    move || runtime.block_on(work(rx, conns, open))
                })?;
            workers.push(Worker {
                inbox,
                open,
                thread,
            });
        }
        Ok(Workers { workers, next: 0 })
    }

    pub fn len(&self) -> usize {
        self.workers.len()
    }

    pub fn is_empty(&self) -> bool {
        self.workers.is_empty()
    }

    /// Hands a connection to the worker serving the fewest, starting the
    /// search one further each time so that ties rotate.
    fn hand_off(&mut self, handoff: Handoff) {
        let n = self.workers.len();
        let Some(pick) = (0..n)
            .map(|k| (self.next + k) % n)
            .min_by_key(|&i| self.workers[i].open.load(Ordering::Relaxed))
        else {
            return; // no workers: the connection is closed by the drop
        };
        self.next = (pick + 1) % n;
        let worker = &self.workers[pick];
        worker.open.fetch_add(1, Ordering::Relaxed);
        if worker.inbox.send(Job::Serve(handoff)).is_err() {
            // The worker's runtime is gone (it can only have panicked): the
            // connection is closed by the drop, and the count stays high so
            // that worker is not picked again.
            tracing::error!(worker = pick, "worker thread is gone; connection closed");
        }
    }

    /// Gives each worker its clone of the listener to accept from; returns
    /// what resolves as each has stopped accepting and drained.
    fn accept_each(
        &self,
        listeners: Vec<std::net::TcpListener>,
        accepting: &Accepting,
        grace: Duration,
    ) -> Vec<oneshot::Receiver<()>> {
        let mut drains = Vec::with_capacity(listeners.len());
        for (index, (worker, listener)) in self.workers.iter().zip(listeners).enumerate() {
            let (drained, done) = oneshot::channel();
            let own = OwnIntake {
                listener,
                accepting: accepting.clone(),
                grace,
                drained,
            };
            if worker.inbox.send(Job::Accept(own)).is_err() {
                tracing::error!(worker = index, "worker thread is gone; it does not accept");
            }
            drains.push(done);
        }
        drains
    }

    /// Closes the inboxes and waits for every worker thread to end.
    async fn stop(self) {
        for worker in self.workers {
            drop(worker.inbox);
            let joined = tokio::task::spawn_blocking(move || worker.thread.join()).await;
            if !matches!(joined, Ok(Ok(()))) {
                tracing::error!("a worker thread panicked");
            }
        }
    }
}

/// A worker's life: do what the control thread sends until the inbox closes.
/// The inbox closes only after the drain, so what is still running then (past
/// `shutdown_grace`) is cancelled with the runtime.
async fn work(mut inbox: mpsc::UnboundedReceiver<Job>, conns: Arc<Conns>, open: Arc<AtomicUsize>) {
    while let Some(job) = inbox.recv().await {
        match job {
            Job::Serve(handoff) => serve_handed(handoff, &conns, &open),
            Job::Accept(own) => {
                tokio::spawn(accept_here(own, Arc::clone(&conns)));
            }
        }
    }
}

/// Serves a connection the acceptor handed over, on this worker's reactor.
fn serve_handed(handoff: Handoff, conns: &Arc<Conns>, open: &Arc<AtomicUsize>) {
    let Handoff {
        stream,
        peer,
        slot,
        watcher,
    } = handoff;
    let stream = match TcpStream::from_std(stream) {
        Ok(s) => s,
        Err(e) => {
            open.fetch_sub(1, Ordering::Relaxed);
            tracing::warn!(%peer, error = %e, "cannot register an accepted connection");
            return;
        }
    };
    let conns = Arc::clone(conns);
    let open = Arc::clone(open);
    tokio::spawn(async move {
        conns.run(stream, peer, watcher).await;
        drop(slot);
        open.fetch_sub(1, Ordering::Relaxed);
    });
}

/// A worker accepting for itself (`Balance::Kernel`) until shutdown, then
/// draining its own connections for up to `grace`.
async fn accept_here(own: OwnIntake, conns: Arc<Conns>) {
    let OwnIntake {
        listener,
        mut accepting,
        grace,
        drained,
    } = own;
    let listener = match TcpListener::from_std(listener) {
        Ok(l) => l,
        Err(e) => {
            accepting.metrics.accept_errors.inc();
            tracing::error!(error = %e, "a worker cannot register the listener; the others accept");
            return;
        }
    };
    let graceful = GracefulShutdown::new();
    while let Some((stream, peer, slot)) = accepting.next(&listener).await {
        let conns = Arc::clone(&conns);
        let watcher = graceful.watcher();
        tokio::spawn(async move {
            conns.run(stream, peer, watcher).await;
            drop(slot);
        });
    }
    drop(listener);
    drain(graceful, grace).await;
    let _ = drained.send(());
}

/// Accepts until `shutdown` (in the acceptor, or in each worker), then drains
/// for up to `grace` and stops the workers.
pub async fn serve(
    intake: Intake,
    mut workers: Workers,
    metrics: Arc<Metrics>,
    max_connections: usize,
    shutdown: watch::Receiver<bool>,
    grace: Duration,
) {
    let mut accepting = Accepting {
        slots: Arc::new(Semaphore::new(max_connections)),
        metrics,
        shutdown,
    };
    match intake {
        Intake::Acceptor(listener) => {
            let graceful = GracefulShutdown::new();
            while let Some((stream, peer, slot)) = accepting.next(&listener).await {
                // Leaves this runtime's reactor; the worker registers it with its own.
                let stream = match stream.into_std() {
                    Ok(s) => s,
                    Err(e) => {
                        accepting.metrics.accept_errors.inc();
                        tracing::warn!(%peer, error = %e, "cannot hand over an accepted connection");
                        continue;
                    }
                };
                workers.hand_off(Handoff {
                    stream,
                    peer,
                    slot,
                    watcher: graceful.watcher(),
                });
            }
            drop(listener);
            tracing::info!(grace = ?grace, "draining: no longer accepting connections");
            drain(graceful, grace).await;
        }
        Intake::PerWorker(listeners) => {
            let drains = workers.accept_each(listeners, &accepting, grace);
            // Each worker stops accepting at the same signal and drains its own.
            let _ = accepting.shutdown.wait_for(|stop| *stop).await;
            tracing::info!(grace = ?grace, "draining: no longer accepting connections");
            for done in drains {
                let _ = done.await; // Err: that worker never accepted
            }
        }
    }
    workers.stop().await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_bytes_name_the_protocol_only_once_they_can() {
        let cases: [(&[u8], Option<Protocol>); 9] = [
            (b"POST /webhooks/svix HTTP/1.1\r\n", Some(Protocol::Http1)),
            (b"PUT / HTTP/1.1\r\n", Some(Protocol::Http1)),
            (b"GET", Some(Protocol::Http1)),
            // A TLS hello on the plain port: HTTP/1's parser answers it 400.
            (b"\x16\x03\x01", Some(Protocol::Http1)),
            (b"P", None),
            (b"PRI * HTTP/2.0\r\n", None),
            (b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r", None),
            (H2_PREFACE, Some(Protocol::Http2)),
            (
                b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00",
                Some(Protocol::Http2),
            ),
        ];
        for (first, want) in cases {
            assert_eq!(sniff(first), want, "{:?}", String::from_utf8_lossy(first));
        }
    }
}
