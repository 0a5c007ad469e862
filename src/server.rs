//! The gateway process: bind -> accept -> hyper-util auto builder -> graceful drain.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::admin::{Admin, Health};
use crate::config::{Config, ConfigError, Limits, StoreKind};
use crate::forward::{Forwarder, Origin};
use crate::metrics::Metrics;
use crate::proxy::{Clock, Proxy, Runtime};
use crate::replay::{MemoryStore, RedisOptions, Store};
use crate::route::RouteTable;

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("{0}")]
    Setup(String),
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
}

/// A started gateway: its bound addresses and the handle to stop it.
pub struct Running {
    pub addr: SocketAddr,
    pub admin_addr: Option<SocketAddr>,
    pub proxy: Arc<Proxy>,
    pub health: Arc<Health>,
    shutdown: watch::Sender<bool>,
    task: JoinHandle<()>,
}

impl Running {
    /// Stops accepting, drains in-flight requests for up to `shutdown_grace`.
    pub fn shutdown(&self) {
        self.health.set_draining();
        let _ = self.shutdown.send(true);
    }

    /// Waits until the drain has finished.
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
            Ok(Store::Redis(store))
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
    let store = Arc::new(store(config, &metrics)?);
    tokio::spawn(probe_store(Arc::clone(&store)));
    let forwarder =
        Arc::new(Forwarder::new(&config.upstream).map_err(|e| StartError::Setup(e.to_string()))?);
    let health = Arc::new(Health::default());
    let proxy = Arc::new(Proxy::new(
        runtime,
        Arc::clone(&store),
        forwarder,
        Arc::clone(&metrics),
        config.limits.max_inflight,
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
            tokio::spawn(admin.serve(listener, admin_stop_rx));
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
    tracing::info!(%addr, admin = ?admin_addr, routes = config.routes.len(), "hookgate listening");

    let task = tokio::spawn({
        let serving = serve(
            listener,
            Arc::clone(&proxy),
            connection_builder(&config.limits),
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
        shutdown: shutdown_tx,
        task,
    })
}

fn connection_builder(limits: &Limits) -> Arc<auto::Builder<TokioExecutor>> {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout)
        .max_buf_size(limits.max_header_bytes.max(8192))
        .max_headers(limits.max_headers);
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_header_list_size(u32::try_from(limits.max_header_bytes).unwrap_or(u32::MAX));
    Arc::new(builder)
}

async fn serve(
    listener: TcpListener,
    proxy: Arc<Proxy>,
    builder: Arc<auto::Builder<TokioExecutor>>,
    mut shutdown: watch::Receiver<bool>,
    grace: Duration,
) {
    let graceful = GracefulShutdown::new();
    loop {
        tokio::select! {
            biased;
            _ = shutdown.changed() => break,
            accepted = listener.accept() => {
                let (stream, peer) = match accepted {
                    Ok(a) => a,
                    Err(e) => {
                        // EMFILE and friends: back off briefly, never stop accepting.
                        tracing::warn!(error = %e, "accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                let _ = stream.set_nodelay(true);
                let proxy = Arc::clone(&proxy);
                let builder = Arc::clone(&builder);
                let watcher = graceful.watcher();
                tokio::spawn(async move {
                    let origin = Origin { peer: peer.ip(), tls: false };
                    let svc = service_fn(move |req| {
                        let proxy = Arc::clone(&proxy);
                        async move { Ok::<_, Infallible>(proxy.handle(req, origin).await) }
                    });
                    let conn = builder.serve_connection(TokioIo::new(stream), svc);
                    if let Err(e) = watcher.watch(conn).await {
                        tracing::debug!(error = %e, "connection ended with an error");
                    }
                });
            }
        }
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
