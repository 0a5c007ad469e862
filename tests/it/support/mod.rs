//! Test support: a recording upstream, a gateway started from TOML text, an HTTP client, signers.
#![allow(dead_code)]

pub mod alone;
pub mod child;
pub mod redis;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http::{HeaderMap, Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpListener;

/// One request exactly as the upstream application received it.
#[derive(Debug, Clone)]
pub struct Received {
    pub method: Method,
    pub uri: String,
    pub headers: HeaderMap,
    pub body: Bytes,
    /// The status the application answered it with.
    pub answered: StatusCode,
    /// When its body had been read in full (the answer follows after the
    /// configured delay).
    pub arrived: std::time::Instant,
}

/// What the application answers.
#[derive(Debug, Clone)]
pub struct Answer {
    pub status: StatusCode,
    pub headers: Vec<(String, String)>,
    pub body: Bytes,
    pub delay: Duration,
}

impl Default for Answer {
    fn default() -> Self {
        Answer {
            status: StatusCode::OK,
            headers: vec![("x-app".into(), "echo".into())],
            body: Bytes::from_static(b"{\"ok\":true}"),
            delay: Duration::ZERO,
        }
    }
}

/// A real HTTP application on 127.0.0.1:0 that records every request it gets.
#[derive(Clone)]
pub struct Upstream {
    pub addr: SocketAddr,
    received: Arc<Mutex<Vec<Received>>>,
    answer: Arc<Mutex<Answer>>,
    task: Arc<tokio::task::JoinHandle<()>>,
}

impl Upstream {
    pub async fn start() -> Upstream {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        Self::serve(listener)
    }

    /// Serves on an already-bound listener (to bring an application "back up" on its old port).
    pub fn serve(listener: TcpListener) -> Upstream {
        let addr = listener.local_addr().unwrap();
        let received: Arc<Mutex<Vec<Received>>> = Arc::default();
        let answer: Arc<Mutex<Answer>> = Arc::default();
        let (r, a) = (received.clone(), answer.clone());
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let (r, a) = (r.clone(), a.clone());
                tokio::spawn(async move {
                    let svc = service_fn(move |req: Request<Incoming>| {
                        let (r, a) = (r.clone(), a.clone());
                        async move {
                            let (parts, body) = req.into_parts();
                            let body = body.collect().await.unwrap().to_bytes();
                            let answer = a.lock().unwrap().clone();
                            r.lock().unwrap().push(Received {
                                method: parts.method,
                                uri: parts.uri.to_string(),
                                headers: parts.headers,
                                body,
                                answered: answer.status,
                                arrived: std::time::Instant::now(),
                            });
                            tokio::time::sleep(answer.delay).await;
                            let mut resp = Response::new(Full::new(answer.body));
                            *resp.status_mut() = answer.status;
                            for (k, v) in answer.headers {
                                resp.headers_mut().append(
                                    http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                                    v.parse().unwrap(),
                                );
                            }
                            Ok::<_, Infallible>(resp)
                        }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), svc)
                        .await;
                });
            }
        });
        Upstream {
            addr,
            received,
            answer,
            task: Arc::new(task),
        }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn received(&self) -> Vec<Received> {
        self.received.lock().unwrap().clone()
    }

    pub fn count(&self) -> usize {
        self.received.lock().unwrap().len()
    }

    pub fn answer_with(&self, answer: Answer) {
        *self.answer.lock().unwrap() = answer;
    }

    pub fn answer_status(&self, status: u16) {
        self.answer.lock().unwrap().status = StatusCode::from_u16(status).unwrap();
    }

    /// Stops accepting (already accepted connections finish).
    pub fn stop(&self) {
        self.task.abort();
    }
}

/// A hookgate started in-process from TOML text.
pub struct Gateway {
    pub running: hookgate::app::Running,
    pub addr: SocketAddr,
    pub admin: Option<SocketAddr>,
    _shared: alone::Shared,
}

impl Gateway {
    pub async fn start(toml: &str) -> Gateway {
        Self::start_with_clock(toml, SystemTime::now).await
    }

    pub async fn start_with_clock(toml: &str, clock: hookgate::proxy::Clock) -> Gateway {
        Self::start_as(toml, clock, hookgate::server::Balance::Exact).await
    }

    /// Started with two workers, new connections reaching them as `balance` says.
    pub async fn start_balanced(toml: &str, balance: hookgate::server::Balance) -> Gateway {
        Self::start_as(toml, SystemTime::now, balance).await
    }

    async fn start_as(
        toml: &str,
        clock: hookgate::proxy::Clock,
        balance: hookgate::server::Balance,
    ) -> Gateway {
        let config = hookgate::config::parse(
            toml,
            Path::new("test.toml"),
            &hookgate::config::Env::Process,
        )
        .unwrap();
        let shared = alone::shared();
        let running = hookgate::app::start_with(&config, clock, 2, balance)
            .await
            .unwrap();
        Gateway {
            _shared: shared,
            addr: running.addr,
            admin: running.admin_addr,
            running,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }
}

/// A gateway config in front of `upstream` with the three mission providers.
pub fn config(upstream: &Upstream, extra: &str) -> String {
    format!(
        r#"
[listen]
addr = "127.0.0.1:0"
[admin]
addr = "127.0.0.1:0"
[upstream]
url = "{}"
timeout = "2s"
{extra}
[[routes]]
name = "levers"
path = "/webhooks/levers"
provider = "svix"
secrets = ["{SVIX_SECRET}", "{SVIX_SECRET_OLD}"]

[[routes]]
name = "stdwh"
path = "/webhooks/stdwh"
provider = "standard-webhooks"
secrets = ["{SVIX_SECRET}"]

[[routes]]
name = "levanta"
path = "/webhooks/levanta"
provider = "levanta"
secrets = ["{LEVANTA_SECRET}"]

[[routes]]
name = "leaflink"
path = "/webhooks/leaflink"
provider = "leaflink"
secrets = ["{LEAFLINK_SECRET}"]
"#,
        upstream.url()
    )
}

pub const SVIX_SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
pub const SVIX_SECRET_OLD: &str = "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD";
pub const LEVANTA_SECRET: &str = "levanta-app-secret";
pub const LEAFLINK_SECRET: &str = "leaflink-webhook-key";

/// A response as the provider saw it.
#[derive(Debug)]
pub struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Reply {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

pub async fn send(url: &str, method: Method, headers: &[(String, String)], body: &[u8]) -> Reply {
    let client: Client<_, Full<Bytes>> = Client::builder(TokioExecutor::new()).build_http();
    let mut req = Request::new(Full::new(Bytes::copy_from_slice(body)));
    *req.method_mut() = method;
    *req.uri_mut() = url.parse().unwrap();
    for (k, v) in headers {
        req.headers_mut().append(
            http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
            v.parse().unwrap(),
        );
    }
    let resp = tokio::time::timeout(Duration::from_secs(30), client.request(req))
        .await
        .expect("request timed out")
        .unwrap();
    let (parts, body) = resp.into_parts();
    let body = body.collect().await.unwrap().to_bytes();
    Reply {
        status: parts.status,
        headers: parts.headers,
        body,
    }
}

pub async fn post(url: &str, headers: &[(String, String)], body: &[u8]) -> Reply {
    send(url, Method::POST, headers, body).await
}

pub fn now_secs() -> i64 {
    i64::try_from(
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs(),
    )
    .unwrap()
}

/// Svix headers signed by the specification's reference library (`standardwebhooks`).
pub fn svix_headers(
    secret: &str,
    id: &str,
    ts: i64,
    body: &[u8],
    prefix: &str,
) -> Vec<(String, String)> {
    let sig = standardwebhooks::Webhook::new(secret)
        .unwrap()
        .sign(id, ts, body)
        .unwrap();
    vec![
        (format!("{prefix}id"), id.to_string()),
        (format!("{prefix}timestamp"), ts.to_string()),
        (format!("{prefix}signature"), sig),
    ]
}

/// HMAC-SHA256 of `body` with `key`, computed independently of hookgate's engine.
pub fn hmac_sha256(key: &[u8], body: &[u8]) -> Vec<u8> {
    use hmac::{Hmac, Mac};
    let mut mac = <Hmac<sha2::Sha256> as Mac>::new_from_slice(key).unwrap();
    mac.update(body);
    mac.finalize().into_bytes().to_vec()
}

pub fn levanta_headers(secret: &str, body: &[u8]) -> Vec<(String, String)> {
    vec![(
        "x-levanta-hmac-sha256".into(),
        hex::encode(hmac_sha256(secret.as_bytes(), body)),
    )]
}

pub fn leaflink_headers(secret: &str, body: &[u8]) -> Vec<(String, String)> {
    use base64::Engine;
    vec![(
        "LL-Signature".into(),
        base64::engine::general_purpose::STANDARD.encode(hmac_sha256(secret.as_bytes(), body)),
    )]
}

/// Waits until `f` holds, up to 10 s (a loaded CI machine is slow).
pub async fn eventually(mut f: impl FnMut() -> bool) {
    for _ in 0..200 {
        if f() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("condition not met within 10 s");
}
