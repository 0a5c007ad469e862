//! The admin listener: `/metrics`, `/healthz` and `/readyz`, never on the public port.

use std::convert::Infallible;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use http::{header, Method, Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::metrics::Metrics;
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
}

impl Admin {
    async fn handle(&self, req: Request<Incoming>) -> Response<Full<Bytes>> {
        if req.method() != Method::GET && req.method() != Method::HEAD {
            return text(StatusCode::METHOD_NOT_ALLOWED, "method not allowed\n");
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
                } else {
                    text(StatusCode::OK, "ready\n")
                }
            }
            _ => text(StatusCode::NOT_FOUND, "not found\n"),
        }
    }

    /// Serves until `shutdown` flips; the admin port stays up while the public one drains.
    pub async fn serve(
        self: Arc<Self>,
        listener: TcpListener,
        mut shutdown: watch::Receiver<bool>,
    ) {
        loop {
            tokio::select! {
                _ = shutdown.changed() => break,
                accepted = listener.accept() => {
                    let (stream, _) = match accepted {
                        Ok(a) => a,
                        Err(e) => {
                            tracing::warn!(error = %e, "admin accept failed");
                            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                            continue;
                        }
                    };
                    let admin = Arc::clone(&self);
                    tokio::spawn(async move {
                        let svc = service_fn(move |req| {
                            let admin = Arc::clone(&admin);
                            async move { Ok::<_, Infallible>(admin.handle(req).await) }
                        });
                        let conn = hyper::server::conn::http1::Builder::new()
                            .serve_connection(TokioIo::new(stream), svc);
                        if let Err(e) = conn.await {
                            tracing::debug!(error = %e, "admin connection ended");
                        }
                    });
                }
            }
        }
    }
}

fn text(status: StatusCode, body: &str) -> Response<Full<Bytes>> {
    let mut resp = Response::new(Full::new(Bytes::copy_from_slice(body.as_bytes())));
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    resp
}
