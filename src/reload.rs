//! Live reload: on SIGHUP, or when the configuration file, a `file:` secret
//! or the certificate changes on disk, rebuild everything reloadable, validate
//! it all, then swap it in atomically; on any error keep the old and say so.
//!
//! Files are polled (content hash of each resolved path, every second)
//! instead of watched with inotify: Kubernetes updates a mounted Secret or
//! ConfigMap by swapping a `..data` symlink, which path-based watches miss
//! or report on the wrong name, while re-reading the path always sees what a
//! fresh `open` would. A handful of small files a second costs nothing.

use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use sha2::{Digest, Sha256};
use tokio::sync::watch;

use crate::config::{self, Config, ConfigError, SecretSource};
use crate::proxy::{Proxy, Runtime};
use crate::tls::{self, Tls, TlsError};

/// How often watched files are checked.
pub const POLL_INTERVAL: Duration = Duration::from_secs(1);

#[derive(Debug, thiserror::Error)]
pub enum ReloadError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("listen.tls_cert / listen.tls_key: {0}")]
    Tls(#[from] TlsError),
}

/// The content hash of each watched file (`None`: unreadable right now).
type Fingerprint = Vec<(PathBuf, Option<[u8; 32]>)>;

struct State {
    /// The configuration being served.
    config: Config,
    /// The watched files as they were at the last reload (or attempt).
    seen: Fingerprint,
}

pub struct Reloader {
    state: Mutex<State>,
    proxy: Arc<Proxy>,
    tls: Option<Arc<Tls>>,
}

impl Reloader {
    pub fn new(config: Config, proxy: Arc<Proxy>, tls: Option<Arc<Tls>>) -> Self {
        let seen = fingerprint(&watched(&config));
        Reloader {
            state: Mutex::new(State { config, seen }),
            proxy,
            tls,
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while reloading leaves the old, valid state in place.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Reloads now; logs and counts the result either way.
    pub fn reload(&self) -> Result<(), ReloadError> {
        let mut state = self.lock();
        // Whatever the outcome, these are the files this attempt saw: a broken
        // file is retried when it changes again, not every poll.
        state.seen = fingerprint(&watched(&state.config));
        let result = self.apply(&mut state);
        match &result {
            Ok(()) => {
                self.proxy.metrics().reload(true);
                tracing::info!(
                    file = %state.config.source.display(),
                    routes = state.config.routes.len(),
                    "configuration reloaded"
                );
            }
            Err(e) => {
                self.proxy.metrics().reload(false);
                tracing::error!(error = %e, "reload failed: the previous configuration and certificate keep serving");
            }
        }
        result
    }

    fn apply(&self, state: &mut State) -> Result<(), ReloadError> {
        let new = config::load(&state.config.source)?;
        for w in &new.warnings {
            tracing::warn!(file = %new.source.display(), field = %w.field, "{}", w.message);
        }
        // Build and validate everything before swapping anything.
        let runtime = Runtime::build(&new, self.proxy.metrics())?;
        let cert = match (&self.tls, &new.listen.tls) {
            (Some(_), Some(files)) => Some(tls::load_certified_key(files)?),
            _ => None,
        };
        self.proxy.swap(runtime);
        if let (Some(tls), Some(cert)) = (&self.tls, cert) {
            tls.install(cert);
        }
        for field in restart_needed(&state.config, &new) {
            tracing::warn!(
                field,
                "changed in the configuration file but takes effect only after a restart"
            );
        }
        state.seen = fingerprint(&watched(&new));
        state.config = new;
        Ok(())
    }

    fn changed(&self) -> bool {
        let state = self.lock();
        fingerprint(&watched(&state.config)) != state.seen
    }

    /// Polls the watched files until `shutdown`, reloading when one changes.
    pub async fn watch(self: Arc<Self>, mut shutdown: watch::Receiver<bool>) {
        let mut tick = tokio::time::interval(POLL_INTERVAL);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = shutdown.changed() => return,
                _ = tick.tick() => {}
            }
            let this = Arc::clone(&self);
            // File reads block: keep them off the request threads.
            let reloaded = tokio::task::spawn_blocking(move || {
                if this.changed() {
                    tracing::info!(
                        "a configuration, secret or certificate file changed: reloading"
                    );
                    // The outcome is logged and counted inside.
                    let _ = this.reload();
                }
            })
            .await;
            if let Err(e) = reloaded {
                tracing::error!(error = %e, "reload task failed");
            }
        }
    }
}

/// The files a configuration was built from.
fn watched(config: &Config) -> Vec<PathBuf> {
    let mut paths = vec![config.source.clone()];
    for route in &config.routes {
        for secret in &route.secrets {
            if let SecretSource::File(p) = &secret.source {
                paths.push(p.clone());
            }
        }
    }
    if let Some(SecretSource::File(p)) = config.attestation_key.as_ref().map(|k| &k.source) {
        paths.push(p.clone());
    }
    if let Some(tls) = &config.listen.tls {
        paths.push(tls.cert.clone());
        paths.push(tls.key.clone());
    }
    paths
}

fn fingerprint(paths: &[PathBuf]) -> Fingerprint {
    paths
        .iter()
        .map(|p| {
            // `read` follows symlinks: a swapped `..data` link is new content.
            let hash = std::fs::read(p).ok().map(|b| Sha256::digest(&b).into());
            (p.clone(), hash)
        })
        .collect()
}

/// Settings that live in listeners, pools and semaphores built at startup.
fn restart_needed(old: &Config, new: &Config) -> Vec<&'static str> {
    let (o, n) = (&old.limits, &new.limits);
    [
        ("listen.addr", old.listen.addr != new.listen.addr),
        (
            "listen.tls_cert",
            old.listen.tls.is_some() != new.listen.tls.is_some(),
        ),
        ("admin.addr", old.admin != new.admin),
        ("upstream", old.upstream != new.upstream),
        ("replay", !old.replay.same_store(&new.replay)),
        // The store is open and the delivery loop runs with these settings.
        ("queue", old.queue != new.queue),
        ("limits.max_buffered", o.max_buffered != n.max_buffered),
        (
            "limits.header_timeout",
            o.header_timeout != n.header_timeout,
        ),
        ("limits.max_inflight", o.max_inflight != n.max_inflight),
        (
            "limits.max_connections",
            o.max_connections != n.max_connections,
        ),
        ("limits.max_headers", o.max_headers != n.max_headers),
        (
            "limits.max_header_bytes",
            o.max_header_bytes != n.max_header_bytes,
        ),
        (
            "limits.shutdown_grace",
            o.shutdown_grace != n.shutdown_grace,
        ),
    ]
    .into_iter()
    .filter_map(|(field, changed)| changed.then_some(field))
    .collect()
}
