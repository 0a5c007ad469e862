//! The composition root: builds every part of a running gateway from one
//! `Config` (metrics, the replay store, the queue and its delivery loop, the request path, one upstream client
//! per worker, TLS, the admin listener, the reloader) and hands them to
//! `server`. Nothing below this module builds another module's parts.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::admin::{Admin, Health};
use crate::attest::AttestationKey;
use crate::config::{Config, ConfigError, Delivery, StoreKind};
use crate::forward::{Forwarder, SetupError};
use crate::metrics::Metrics;
use crate::proxy::{Clock, Proxy, Runtime};
use crate::queue::{Deliverer, Queue};
use crate::reload::{ReloadError, Reloader};
use crate::replay::{MemoryStore, RedisOptions, Store};
use crate::server::{self, Balance, Intake, Workers};
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

    /// Waits until the drain has finished and the workers have stopped (the
    /// admin listener stops with them).
    pub async fn wait(self) {
        if let Err(e) = self.task.await {
            tracing::error!(error = %e, "server task failed");
        }
    }
}

/// The data path's size when nothing says otherwise: one worker per core.
pub fn default_workers() -> usize {
    std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get)
}

/// Binds the listeners and starts serving `config` with one worker per core,
/// connections handed out by the acceptor.
pub async fn start(config: &Config, clock: Clock) -> Result<Running, StartError> {
    start_with(config, clock, default_workers(), Balance::Exact).await
}

/// Binds the listeners and starts serving `config` on `workers` data-path
/// threads, new connections reaching them as `balance` says.
pub async fn start_with(
    config: &Config,
    clock: Clock,
    workers: usize,
    balance: Balance,
) -> Result<Running, StartError> {
    let metrics = Arc::new(Metrics::new());
    let runtime = Runtime::build(config, &metrics)?;
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
    // One upstream client per worker: its pooled connections are driven on
    // the worker that uses them, never handed between threads.
    let forwarders = (0..workers.max(1))
        .map(|_| Forwarder::new(&config.upstream).map(Arc::new))
        .collect::<Result<Vec<_>, _>>()?;
    let health = Arc::new(Health::default());
    let queue = open_queue(config)?;
    let proxy = Proxy::new(
        runtime,
        Arc::clone(&store),
        Arc::clone(&metrics),
        config.limits.max_inflight,
        config.limits.max_buffered,
        clock,
    );
    let proxy = Arc::new(proxy.with_queue(queue.clone()));
    let (shutdown_tx, shutdown_rx) = watch::channel(false);
    // The admin port outlives the drain, so probes and scrapes see it through.
    let (admin_stop_tx, admin_stop_rx) = watch::channel(false);

    let admin = Admin {
        metrics: Arc::clone(&metrics),
        store: Arc::clone(&store),
        health: Arc::clone(&health),
        queue: queue.clone(),
    };
    let admin_addr = start_admin(config, admin, admin_stop_rx).await?;

    let (listener, addr) = bind(config.listen.addr).await?;
    let workers = Workers::start(&proxy, tls.clone(), &config.limits, forwarders)
        .map_err(|e| StartError::Setup(format!("cannot start the worker threads: {e}")))?;
    let intake = Intake::new(listener, balance, workers.len()).map_err(|e| {
        StartError::Setup(format!("cannot share the listener with the workers: {e}"))
    })?;
    health.set_bound();
    tracing::info!(%addr, admin = ?admin_addr, tls = tls.is_some(), routes = config.routes.len(), workers = workers.len(), %balance, "hookgate listening");

    let reloader = Arc::new(Reloader::new(
        config.clone(),
        Arc::clone(&proxy),
        tls.clone(),
    ));
    tokio::spawn(Arc::clone(&reloader).watch(shutdown_rx.clone()));

    let delivering = deliver(config, queue, &metrics, shutdown_rx.clone())?;
    let task = tokio::spawn({
        let serving = server::serve(
            intake,
            workers,
            Arc::clone(&metrics),
            config.limits.max_connections,
            shutdown_rx,
            config.limits.shutdown_grace,
        );
        async move {
            serving.await;
            let _ = delivering.await;
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

/// Binds and serves `[admin]`, when configured; a gateway with a queue names
/// the address it bound beside the store, for `hookgate queue`.
async fn start_admin(
    config: &Config,
    admin: Admin,
    stop: watch::Receiver<bool>,
) -> Result<Option<SocketAddr>, StartError> {
    let Some(a) = &config.admin else {
        return Ok(None);
    };
    let (listener, bound) = bind(a.addr).await?;
    let queued = admin.queue.is_some();
    tokio::spawn(Arc::new(admin).serve(listener, config.limits.header_timeout, stop));
    let disk = config.queue.as_ref().and_then(|q| match &q.store {
        crate::config::QueueBackend::Disk { path } => Some(path),
        crate::config::QueueBackend::Redis(_) => None,
    });
    if let Some(path) = disk.filter(|_| queued) {
        if let Err(e) = crate::queue::announce_admin(path, bound) {
            tracing::warn!(error = %e, "queue: cannot record the admin address; hookgate queue will use the configured one");
        }
    }
    Ok(Some(bound))
}

async fn bind(addr: SocketAddr) -> Result<(TcpListener, SocketAddr), StartError> {
    let listener = TcpListener::bind(addr)
        .await
        .map_err(|source| StartError::Bind { addr, source })?;
    let bound = listener
        .local_addr()
        .map_err(|source| StartError::Bind { addr, source })?;
    Ok((listener, bound))
}

/// Opens `[queue]`'s store, when there is one (its writer thread starts here).
fn open_queue(config: &Config) -> Result<Option<Arc<Queue>>, StartError> {
    let Some(q) = &config.queue else {
        return Ok(None);
    };
    let queue = Queue::open(q).map_err(|e| StartError::Setup(e.to_string()))?;
    tracing::info!(store = %queue.store().describe(), "queue store open");
    Ok(Some(Arc::new(queue)))
}

/// Starts the delivery loop, with an upstream client of its own; a task
/// that ends at once without a queue.
fn deliver(
    config: &Config,
    queue: Option<Arc<Queue>>,
    metrics: &Arc<Metrics>,
    shutdown: watch::Receiver<bool>,
) -> Result<JoinHandle<()>, StartError> {
    let Some(queue) = queue else {
        return Ok(tokio::spawn(async {}));
    };
    let forwarder = Forwarder::new(&config.upstream)?;
    let key = config
        .attestation_key
        .as_ref()
        .map(|k| AttestationKey::new(k.expose()));
    let routes: Vec<String> = config
        .routes
        .iter()
        .filter(|r| r.delivery == Delivery::Queue)
        .map(|r| r.name.clone())
        .collect();
    // `[queue]` is present: `open_queue` opened it from the same config.
    let settings = config
        .queue
        .clone()
        .ok_or_else(|| StartError::Setup("[queue] missing".into()))?;
    let d = Deliverer::new(
        queue,
        forwarder,
        settings,
        key,
        Arc::clone(metrics),
        &routes,
    );
    Ok(tokio::spawn(
        Arc::new(d).run(shutdown, config.limits.shutdown_grace),
    ))
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
            // config requires a UTF-8 redis_url with store = "redis"; stay total anyway.
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
