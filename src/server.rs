//! The data path's shape: one acceptor, N worker threads, each a
//! single-threaded tokio runtime that owns its connections from TLS handshake
//! to last response, with its own upstream client; graceful drain.
//!
//! Thread-per-core, as nginx's workers: a request never changes thread, so
//! the server connection, the forward and the pooled upstream connection
//! wake one another without cross-thread wake-ups or work stealing. The
//! acceptor hands each new connection to the worker with the fewest open
//! ones (webhook senders keep a few long-lived connections, which a kernel
//! hash such as `SO_REUSEPORT` would spread unevenly).
//!
//! The accept loop never dies: a failed accept is counted and backed off, and
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
use tokio::sync::{mpsc, watch, OwnedSemaphorePermit, Semaphore};

use crate::config::Limits;
use crate::forward::{Forwarder, Origin};
use crate::metrics::Metrics;
use crate::proxy::Proxy;
use crate::tls::Tls;

/// Which protocols a connection builder speaks.
#[derive(Clone, Copy)]
enum Protocols {
    /// Plain TCP: sniff the HTTP/2 preface, else HTTP/1.1.
    Auto,
    /// TLS without ALPN `h2`.
    Http1,
    /// TLS with ALPN `h2`.
    Http2,
}

fn connection_builder(limits: &Limits, protocols: Protocols) -> auto::Builder<TokioExecutor> {
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
    match protocols {
        Protocols::Auto => builder,
        Protocols::Http1 => builder.http1_only(),
        Protocols::Http2 => builder.http2_only(),
    }
}

/// What one worker's connection tasks need.
struct Conns {
    proxy: Arc<Proxy>,
    forwarder: Arc<Forwarder>,
    tls: Option<Arc<Tls>>,
    auto: auto::Builder<TokioExecutor>,
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
        // hyper's header timer starts only once it has sniffed the protocol,
        // so a client that connects and says nothing is cut off here instead.
        let mut first = [0u8; 1];
        match tokio::time::timeout(self.header_timeout, stream.peek(&mut first)).await {
            Ok(Ok(n)) if n > 0 => {}
            Ok(Ok(_)) | Ok(Err(_)) => return,
            Err(_) => {
                self.proxy.metrics().connection_errors.inc();
                tracing::debug!(%peer, "no request within header_timeout");
                return;
            }
        }
        let origin = Origin::new(peer.ip(), false);
        self.serve(&self.auto, TokioIo::new(stream), origin, watcher)
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

/// An accepted connection on its way to a worker.
struct Handoff {
    stream: std::net::TcpStream,
    peer: SocketAddr,
    slot: Slot,
    watcher: Watcher,
}

/// One worker thread, as the acceptor sees it.
struct Worker {
    inbox: mpsc::UnboundedSender<Handoff>,
    /// Connections this worker is serving now.
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
                auto: connection_builder(limits, Protocols::Auto),
                http1: connection_builder(limits, Protocols::Http1),
                http2: connection_builder(limits, Protocols::Http2),
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
        if worker.inbox.send(handoff).is_err() {
            // The worker's runtime is gone (it can only have panicked): the
            // connection is closed by the drop, and the count stays high so
            // that worker is not picked again.
            tracing::error!(worker = pick, "worker thread is gone; connection closed");
        }
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

/// A worker's life: serve each connection handed over until the inbox closes.
/// The inbox closes only after the drain, so what is still running then (past
/// `shutdown_grace`) is cancelled with the runtime.
async fn work(
    mut inbox: mpsc::UnboundedReceiver<Handoff>,
    conns: Arc<Conns>,
    open: Arc<AtomicUsize>,
) {
    while let Some(handoff) = inbox.recv().await {
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
                continue;
            }
        };
        let conns = Arc::clone(&conns);
        let open = Arc::clone(&open);
        tokio::spawn(async move {
            conns.run(stream, peer, watcher).await;
            drop(slot);
            open.fetch_sub(1, Ordering::Relaxed);
        });
    }
}

/// Accepts until `shutdown`, handing connections to the workers; then drains
/// for up to `grace` and stops the workers.
pub async fn serve(
    listener: TcpListener,
    mut workers: Workers,
    metrics: Arc<Metrics>,
    max_connections: usize,
    mut shutdown: watch::Receiver<bool>,
    grace: Duration,
) {
    let graceful = GracefulShutdown::new();
    let slots = Arc::new(Semaphore::new(max_connections));
    loop {
        // At max_connections, stop accepting: new clients wait in the kernel's
        // backlog instead of costing memory here.
        let permit = tokio::select! {
            biased;
            _ = shutdown.changed() => break,
            p = Arc::clone(&slots).acquire_owned() => match p {
                Ok(p) => p,
                Err(_) => break, // never closed
            },
        };
        let accepted = tokio::select! {
            biased;
            _ = shutdown.changed() => break,
            a = listener.accept() => a,
        };
        let (stream, peer) = match accepted {
            Ok(a) => a,
            Err(e) => {
                // EMFILE and friends: count, back off, never stop accepting.
                metrics.accept_errors.inc();
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        // Leaves this runtime's reactor; the worker registers it with its own.
        let stream = match stream.into_std() {
            Ok(s) => s,
            Err(e) => {
                metrics.accept_errors.inc();
                tracing::warn!(%peer, error = %e, "cannot hand over an accepted connection");
                continue;
            }
        };
        metrics.open_connections.inc();
        let slot = Slot {
            _permit: permit,
            gauge: metrics.open_connections.clone(),
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
    if tokio::time::timeout(grace, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("shutdown_grace expired with requests still in flight");
    }
    workers.stop().await;
}
