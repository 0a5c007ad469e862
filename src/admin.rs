//! The admin listener: `/metrics`, `/healthz` and `/readyz`, never on the public
//! port; and `/queue/…`, the `hookgate queue` commands on a running gateway
//! (answered on loopback only, see `queue::remote`).

use std::convert::Infallible;
use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{header, Method, Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::sync::{watch, Semaphore};

use crate::metrics::Metrics;
use crate::queue::Queue;
use crate::replay::Store;

/// What `/readyz` reports, set by the server as it starts and drains.
#[derive(Default)]
pub struct Health {
    bound: AtomicBool,
    draining: AtomicBool,
}

impl Health {
    pub fn set_bound(&self) {
        self.bound.store(true, Ordering::SeqCst);
    }

    pub fn set_draining(&self) {
        self.draining.store(true, Ordering::SeqCst);
    }

    pub fn is_draining(&self) -> bool {
        self.draining.load(Ordering::SeqCst)
    }

    fn serving(&self) -> bool {
        self.bound.load(Ordering::SeqCst) && !self.draining.load(Ordering::SeqCst)
    }
}

pub struct Admin {
    pub metrics: Arc<Metrics>,
    pub store: Arc<Store>,
    pub health: Arc<Health>,
    /// The durable-delivery queue, when `[queue]` is configured.
    pub queue: Option<Arc<Queue>>,
}

impl Admin {
    async fn handle(&self, req: Request<Incoming>, peer: IpAddr) -> Response<Full<Bytes>> {
        if req.uri().path().starts_with("/queue/") {
            let reply =
                crate::queue::serve_command(self.queue.as_ref(), peer, req.method(), req.uri())
                    .await;
            let mut resp = text(reply.status, &reply.text);
            if let Some(allow) = reply.allow {
                if let Ok(v) = header::HeaderValue::from_str(allow.as_str()) {
                    resp.headers_mut().insert(header::ALLOW, v);
                }
            }
            return resp;
        }
        if req.method() != Method::GET && req.method() != Method::HEAD {
            let mut resp = text(StatusCode::METHOD_NOT_ALLOWED, "method not allowed\n");
            resp.headers_mut()
                .insert(header::ALLOW, header::HeaderValue::from_static("GET, HEAD"));
            return resp;
        }
        match req.uri().path() {
            "/metrics" => {
                self.metrics
                    .replay_entries
                    .set(i64::try_from(self.store.entries()).unwrap_or(i64::MAX));
                let mut resp = text(StatusCode::OK, &self.metrics.encode());
                resp.headers_mut().insert(
                    header::CONTENT_TYPE,
                    header::HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
                );
                resp
            }
            "/healthz" => text(StatusCode::OK, "ok\n"),
            "/readyz" => {
                if !self.health.serving() {
                    let why = if self.health.is_draining() {
                        "draining\n"
                    } else {
                        "starting\n"
                    };
                    text(StatusCode::SERVICE_UNAVAILABLE, why)
                } else if !self.store.ready().await {
                    text(
                        StatusCode::SERVICE_UNAVAILABLE,
                        "replay store unavailable\n",
                    )
                } else if !self.queue_ready().await {
                    text(StatusCode::SERVICE_UNAVAILABLE, "queue store unavailable\n")
                } else {
                    text(StatusCode::OK, "ready\n")
                }
            }
            _ => text(StatusCode::NOT_FOUND, "not found\n"),
        }
    }

    /// A queue on Redis that does not answer would refuse every queued
    /// request with 503: this replica is not ready for them.
    async fn queue_ready(&self) -> bool {
        match &self.queue {
            Some(q) => q.store().ready().await,
            None => true,
        }
    }

    /// Serves until `shutdown` flips; the admin port stays up while the public one drains.
    ///
    /// The admin port is bounded like the public one (the Kubernetes manifests
    /// bind it to every interface for the kubelet's probes): a client that
    /// says nothing, or trickles its headers, is cut off after
    /// `header_timeout`, and at most `ADMIN_CONNECTIONS` are served at once.
    pub async fn serve(
        self: Arc<Self>,
        listener: TcpListener,
        header_timeout: Duration,
        mut shutdown: watch::Receiver<bool>,
    ) {
        let slots = Arc::new(Semaphore::new(ADMIN_CONNECTIONS));
        let mut http1 = hyper::server::conn::http1::Builder::new();
        http1
            .timer(TokioTimer::new())
            .header_read_timeout(header_timeout);
        loop {
            // At the cap, stop accepting: new clients wait in the backlog.
            let permit = tokio::select! {
                _ = shutdown.changed() => break,
                p = Arc::clone(&slots).acquire_owned() => match p {
                    Ok(p) => p,
                    Err(_) => break, // never closed
                },
            };
            tokio::select! {
                _ = shutdown.changed() => break,
                accepted = listener.accept() => {
                    let (stream, peer) = match accepted {
                        Ok(a) => a,
                        Err(e) => {
                            tracing::warn!(error = %e, "admin accept failed");
                            tokio::time::sleep(Duration::from_millis(50)).await;
                            continue;
                        }
                    };
                    let admin = Arc::clone(&self);
                    let http1 = http1.clone();
                    tokio::spawn(async move {
                        let _permit = permit;
                        // hyper's header timer starts with the first byte: a
                        // client that connects and says nothing is cut off here.
                        let mut first = [0u8; 1];
                        match tokio::time::timeout(header_timeout, stream.peek(&mut first)).await {
                            Ok(Ok(n)) if n > 0 => {}
                            Ok(Ok(_) | Err(_)) | Err(_) => return,
                        }
                        let svc = service_fn(move |req| {
                            let admin = Arc::clone(&admin);
                            async move { Ok::<_, Infallible>(admin.handle(req, peer.ip()).await) }
                        });
                        if let Err(e) = http1.serve_connection(TokioIo::new(stream), svc).await {
                            tracing::debug!(error = %e, "admin connection ended");
                        }
                    });
                }
            }
        }
    }
}

/// Connections the admin port serves at once: probes and scrapes need a few.
const ADMIN_CONNECTIONS: usize = 64;

fn text(status: StatusCode, body: &str) -> Response<Full<Bytes>> {
    let mut resp = Response::new(Full::new(Bytes::copy_from_slice(body.as_bytes())));
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    resp
}
