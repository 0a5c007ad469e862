//! The gateway process: bind -> accept -> TLS -> hyper-util auto builder -> graceful drain.
//!
//! The accept loop never dies: a failed accept is counted and backed off, and
//! everything that can go wrong with one client (a garbage TLS handshake, a
//! reset, a slow or vanished client) happens in that connection's own task.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::{GracefulShutdown, Watcher};
use prometheus::IntGauge;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinHandle;

use crate::admin::{Admin, Health};
use crate::config::{Config, ConfigError, Limits, StoreKind};
use crate::forward::{Forwarder, Origin, SetupError};
use crate::metrics::Metrics;
use crate::proxy::{Clock, Proxy, Runtime};
use crate::reload::{ReloadError, Reloader};
use crate::replay::{MemoryStore, RedisOptions, Store};
use crate::route::RouteTable;
use crate::tls::{Tls, TlsError};

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("listen.tls_cert / listen.tls_key: {0}")]
    Tls(#[from] TlsError),
    #[error(transparent)]
    Upstream(#[from] SetupError),
    #[error("{0}")]
    Setup(String),
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
}

/// A started gateway: its bound addresses and the handles to reload and stop it.
pub struct Running {
    pub addr: SocketAddr,
    pub admin_addr: Option<SocketAddr>,
    pub proxy: Arc<Proxy>,
    pub health: Arc<Health>,
    reloader: Arc<Reloader>,
    shutdown: watch::Sender<bool>,
    task: JoinHandle<()>,
}

impl Running {
    /// Stops accepting, drains in-flight requests for up to `shutdown_grace`.
    /// The admin listener stays up (with `/readyz` answering 503) until [`wait`](Self::wait) ends.
    pub fn shutdown(&self) {
        self.health.set_draining();
        let _ = self.shutdown.send(true);
    }

    /// Re-reads the configuration file, its `file:` secrets and the
    /// certificate, and swaps them in; on error the old ones keep serving.
    pub fn reload(&self) -> Result<(), ReloadError> {
        self.reloader.reload()
    }

    /// Waits until the drain has finished (the admin listener stops with it).
    pub async fn wait(self) {
        if let Err(e) = self.task.await {
            tracing::error!(error = %e, "server task failed");
        }
    }
}

/// Builds the request-time state that a reload replaces.
pub fn runtime(config: &Config, metrics: &Metrics) -> Result<Runtime, ConfigError> {
    Ok(Runtime {
        routes: RouteTable::build(config, metrics)?,
        max_body: config.limits.max_body,
        body_timeout: config.limits.body_timeout,
        on_store_error: config.replay.on_store_error,
    })
}

/// Builds the replay store `[replay]` asks for. A Redis store does not
/// connect here: hookgate starts while Redis is down, and `/readyz` answers
/// 503 (and claims fail as `on_store_error` says) until Redis answers.
fn store(config: &Config, metrics: &Metrics) -> Result<Store, StartError> {
    let r = &config.replay;
    // An in-flight claim never outlives the forward that holds it.
    let lease = config.upstream.timeout + Duration::from_secs(5);
    match r.store {
        StoreKind::Memory => Ok(Store::Memory(MemoryStore::new(r.capacity, r.ttl, lease))),
        StoreKind::Redis => {
            // config.rs requires a UTF-8 redis_url with store = "redis"; stay total anyway.
            let Some(url) = r
                .redis_url
                .as_ref()
                .and_then(|u| std::str::from_utf8(u.expose()).ok())
            else {
                return Err(StartError::Setup("replay.redis_url is required".into()));
            };
            let opts = RedisOptions {
                url,
                ca_file: r.redis_ca_file.as_deref(),
                prefix: &r.redis_prefix,
                timeout: r.redis_timeout,
                ttl: r.ttl,
                lease,
            };
            let store = crate::replay::RedisStore::new(&opts, metrics.store())
                .map_err(|e| StartError::Setup(e.to_string()))?;
            Ok(Store::Redis(Box::new(store)))
        }
    }
}

/// Says once, at start, whether Redis answers; never blocks or fails the start.
async fn probe_store(store: Arc<Store>) {
    if let Store::Redis(r) = &*store {
        match r.ping().await {
            Ok(()) => tracing::info!("replay store: redis answers"),
            Err(e) => tracing::warn!(
                error = %e,
                "replay store: redis does not answer yet; /readyz reports 503 until it does"
            ),
        }
    }
}

/// Binds the listeners and starts serving `config`.
pub async fn start(config: &Config, clock: Clock) -> Result<Running, StartError> {
    let metrics = Arc::new(Metrics::new());
    let runtime = runtime(config, &metrics)?;
    let tls = config
        .listen
        .tls
        .as_ref()
        .map(Tls::new)
        .transpose()?
        .map(Arc::new);
    let store = Arc::new(store(config, &metrics)?);
    store.set_on_store_error(config.replay.on_store_error);
    tokio::spawn(probe_store(Arc::clone(&store)));
    let forwarder = Arc::new(Forwarder::new(&config.upstream)?);
    let health = Arc::new(Health::default());
    let proxy = Arc::new(Proxy::new(
        runtime,
        Arc::clone(&store),
        forwarder,
        Arc::clone(&metrics),
        config.limits.max_inflight,
        config.limits.max_buffered,
        clock,
    ));
    let (shutdown_tx, shutdown_rx) = watch::channel(false);
    // The admin port outlives the drain, so probes and scrapes see it through.
    let (admin_stop_tx, admin_stop_rx) = watch::channel(false);

    let admin_addr = match &config.admin {
        Some(a) => {
            let listener = TcpListener::bind(a.addr)
                .await
                .map_err(|source| StartError::Bind {
                    addr: a.addr,
                    source,
                })?;
            let bound = listener.local_addr().map_err(|source| StartError::Bind {
                addr: a.addr,
                source,
            })?;
            let admin = Arc::new(Admin {
                metrics: Arc::clone(&metrics),
                store: Arc::clone(&store),
                health: Arc::clone(&health),
            });
            tokio::spawn(admin.serve(listener, config.limits.header_timeout, admin_stop_rx));
            Some(bound)
        }
        None => None,
    };

    let listener = TcpListener::bind(config.listen.addr)
        .await
        .map_err(|source| StartError::Bind {
            addr: config.listen.addr,
            source,
        })?;
    let addr = listener.local_addr().map_err(|source| StartError::Bind {
        addr: config.listen.addr,
        source,
    })?;
    health.set_bound();
    tracing::info!(%addr, admin = ?admin_addr, tls = tls.is_some(), routes = config.routes.len(), "hookgate listening");

    let reloader = Arc::new(Reloader::new(
        config.clone(),
        Arc::clone(&proxy),
        tls.clone(),
    ));
    tokio::spawn(Arc::clone(&reloader).watch(shutdown_rx.clone()));

    let conns = Arc::new(Conns::new(Arc::clone(&proxy), tls, &config.limits));
    let task = tokio::spawn({
        let serving = serve(
            listener,
            conns,
            config.limits.max_connections,
            shutdown_rx,
            config.limits.shutdown_grace,
        );
        async move {
            serving.await;
            let _ = admin_stop_tx.send(true);
        }
    });
    Ok(Running {
        addr,
        admin_addr,
        proxy,
        health,
        reloader,
        shutdown: shutdown_tx,
        task,
    })
}

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

/// What every connection task needs, shared.
struct Conns {
    proxy: Arc<Proxy>,
    tls: Option<Arc<Tls>>,
    auto: auto::Builder<TokioExecutor>,
    http1: auto::Builder<TokioExecutor>,
    http2: auto::Builder<TokioExecutor>,
    header_timeout: Duration,
}

impl Conns {
    fn new(proxy: Arc<Proxy>, tls: Option<Arc<Tls>>, limits: &Limits) -> Self {
        Conns {
            proxy,
            tls,
            auto: connection_builder(limits, Protocols::Auto),
            http1: connection_builder(limits, Protocols::Http1),
            http2: connection_builder(limits, Protocols::Http2),
            header_timeout: limits.header_timeout,
        }
    }

    /// One connection: TLS handshake (if any) within `header_timeout`, then HTTP.
    async fn run(self: Arc<Self>, stream: TcpStream, peer: SocketAddr, watcher: Watcher) {
        let metrics = &self.proxy.metrics;
        match &self.tls {
            None => {
                // hyper's header timer starts only once it has sniffed the
                // protocol, so a client that connects and says nothing is cut
                // off here instead.
                let mut first = [0u8; 1];
                match tokio::time::timeout(self.header_timeout, stream.peek(&mut first)).await {
                    Ok(Ok(n)) if n > 0 => {}
                    Ok(Ok(_)) | Ok(Err(_)) => return,
                    Err(_) => {
                        metrics.connection_errors.inc();
                        tracing::debug!(%peer, "no request within header_timeout");
                        return;
                    }
                }
                let origin = Origin {
                    peer: peer.ip(),
                    tls: false,
                };
                self.serve(&self.auto, TokioIo::new(stream), origin, watcher)
                    .await;
            }
            Some(tls) => {
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
                let origin = Origin {
                    peer: peer.ip(),
                    tls: true,
                };
                self.serve(builder, TokioIo::new(stream), origin, watcher)
                    .await;
            }
        }
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
        let proxy = Arc::clone(&self.proxy);
        let svc = service_fn(move |req| {
            let proxy = Arc::clone(&proxy);
            async move { Ok::<_, Infallible>(proxy.handle(req, origin).await) }
        });
        let conn = builder.serve_connection(io, svc);
        if let Err(e) = watcher.watch(conn).await {
            self.proxy.metrics.connection_errors.inc();
            tracing::debug!(peer = %origin.peer, error = %e, "connection ended with an error");
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

async fn serve(
    listener: TcpListener,
    conns: Arc<Conns>,
    max_connections: usize,
    mut shutdown: watch::Receiver<bool>,
    grace: Duration,
) {
    let graceful = GracefulShutdown::new();
    let slots = Arc::new(Semaphore::new(max_connections));
    let metrics = Arc::clone(&conns.proxy.metrics);
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
        metrics.open_connections.inc();
        let slot = Slot {
            _permit: permit,
            gauge: metrics.open_connections.clone(),
        };
        let watcher = graceful.watcher();
        let conns = Arc::clone(&conns);
        tokio::spawn(async move {
            conns.run(stream, peer, watcher).await;
            drop(slot);
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
}
