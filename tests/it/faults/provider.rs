//! The provider: distinct signed deliveries over three routes (and a share of forged ones), each retried on a compressed Svix schedule across two hookgate instances, every attempt logged.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{Method, Request};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio::sync::Semaphore;
use tokio::task::{JoinHandle, JoinSet};

use crate::support::{
    leaflink_headers, levanta_headers, now_secs, svix_headers, LEAFLINK_SECRET, LEVANTA_SECRET,
    SVIX_SECRET,
};

/// Svix retries after 5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 10 h; compressed
/// here to 50 ms, 200 ms, 500 ms, 1 s, 2 s, then 2 s until the delivery's
/// budget runs out, each with ±20% jitter (as Svix adds).
pub const SCHEDULE: [Duration; 6] = [
    Duration::ZERO,
    Duration::from_millis(50),
    Duration::from_millis(200),
    Duration::from_millis(500),
    Duration::from_secs(1),
    Duration::from_secs(2),
];
/// Bounds every delivery's loop, whatever its budget.
const MAX_ATTEMPTS: u32 = 100;
/// A forged delivery is tried until hookgate answers it, at most this often.
const FORGED_ATTEMPTS: u32 = 3;
/// The `x-via` value naming each hookgate instance (passed on to the app).
pub const VIA: [&str; 2] = ["a", "b"];

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Route {
    Svix,
    Levanta,
    LeafLink,
}

impl Route {
    pub fn path(self) -> &'static str {
        match self {
            Route::Svix => "/webhooks/levers",
            Route::Levanta => "/webhooks/levanta",
            Route::LeafLink => "/webhooks/leaflink",
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Route::Svix => "svix",
            Route::Levanta => "levanta",
            Route::LeafLink => "leaflink",
        }
    }
}

/// What is wrong with a delivery on purpose.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Forgery {
    Genuine,
    /// Signed with a key that is not the route's.
    WrongSecret,
    /// Signed, then one word of the body changed.
    Tampered,
    /// Svix, correctly signed, with a timestamp 10 minutes old (a replay).
    Stale,
}

#[derive(Clone)]
pub struct Delivery {
    pub id: u64,
    pub route: Route,
    pub forgery: Forgery,
    body: Bytes,
    msg_id: String,
    /// When its first attempt is due, from the start of the run.
    pub at: Duration,
    /// The instance its first attempt goes to (retries alternate).
    first_via: usize,
    /// Sent by the timeline right after a recovery: its first attempt never hangs up.
    probe: bool,
}

impl Delivery {
    pub fn genuine(&self) -> bool {
        self.forgery == Forgery::Genuine
    }

    pub fn is_probe(&self) -> bool {
        self.probe
    }

    /// The headers and body of one attempt, signed now (Svix re-signs each attempt).
    fn signed(&self) -> (Vec<(String, String)>, Bytes) {
        let wrong = self.forgery == Forgery::WrongSecret;
        let now = now_secs();
        let headers = match self.route {
            Route::Svix => {
                let secret = if wrong {
                    "whsec_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
                } else {
                    SVIX_SECRET
                };
                let ts = if self.forgery == Forgery::Stale {
                    now - 600
                } else {
                    now
                };
                svix_headers(secret, &self.msg_id, ts, &self.body, "svix-")
            }
            Route::Levanta => levanta_headers(
                if wrong { "not-levanta" } else { LEVANTA_SECRET },
                &self.body,
            ),
            Route::LeafLink => leaflink_headers(
                if wrong {
                    "not-leaflink"
                } else {
                    LEAFLINK_SECRET
                },
                &self.body,
            ),
        };
        let body = if self.forgery == Forgery::Tampered {
            let text = String::from_utf8(self.body.to_vec()).unwrap();
            Bytes::from(text.replacen("invoice.paid", "invoice.void", 1))
        } else {
            self.body.clone()
        };
        (headers, body)
    }
}

/// `n` deliveries, routes in turn, one in `forged_every` forged (0: none),
/// first attempts spread evenly over `span`; one in ten carries a 64 KiB body.
pub fn plan(n: usize, forged_every: u64, span: Duration, seed: u64) -> Vec<Delivery> {
    let mut rng = StdRng::seed_from_u64(seed);
    let run: u32 = rng.random();
    let n64 = u64::try_from(n).unwrap();
    (0..n64)
        .map(|id| {
            let forgery = if forged_every > 0 && id % forged_every == forged_every - 1 {
                match (id / forged_every) % 3 {
                    0 => Forgery::WrongSecret,
                    1 => Forgery::Tampered,
                    _ => Forgery::Stale,
                }
            } else {
                Forgery::Genuine
            };
            // Only Svix signs a timestamp, so a stale forgery goes to its route. (Chosen by the
            // id's route, as before, it never happened: such ids are never on the Svix route.)
            let route = match forgery {
                Forgery::Stale => Route::Svix,
                _ => [Route::Svix, Route::Levanta, Route::LeafLink][usize::try_from(id % 3).unwrap()],
            };
            let pad = if id % 10 == 5 {
                64 * 1024
            } else {
                rng.random_range(50..1000)
            };
            let body = format!(
                r#"{{"delivery":{id},"route":"{}","type":"invoice.paid","forged":"{forgery:?}","pad":"{}"}}"#,
                route.name(),
                "x".repeat(pad)
            );
            Delivery {
                id,
                route,
                forgery,
                body: Bytes::from(body),
                msg_id: format!("msg_faults_{run:08x}_{id}"),
                at: span.mul_f64(id as f64 / n as f64),
                first_via: usize::try_from(id % 2).unwrap(),
                probe: false,
            }
        })
        .collect()
}

/// How the provider hangs up on purpose.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Hangup {
    /// Headers and half the body, then close.
    MidBody,
    /// The whole request, then close before the answer.
    AfterRequest,
}

#[derive(Debug, Clone)]
pub enum Outcome {
    /// An answer; `complete`: its whole body was read.
    Status {
        status: u16,
        complete: bool,
    },
    /// No answer: refused, reset, closed.
    Failed(String),
    /// No answer within the provider's attempt timeout.
    Timeout,
    HungUp(Hangup),
}

/// One attempt as the provider logged it.
#[derive(Debug, Clone)]
pub struct Attempt {
    pub delivery: u64,
    pub n: u32,
    /// Index into `VIA`.
    pub via: usize,
    pub sent: Instant,
    pub done: Instant,
    pub outcome: Outcome,
}

impl Attempt {
    /// A 2xx with its whole body: the provider stops retrying.
    pub fn succeeded(&self) -> bool {
        matches!(self.outcome, Outcome::Status { status, complete: true } if (200..300).contains(&status))
    }

    pub fn status(&self) -> Option<u16> {
        match self.outcome {
            Outcome::Status { status, .. } => Some(status),
            _ => None,
        }
    }
}

pub struct Provider {
    gates: [SocketAddr; 2],
    client: Client<HttpConnector, Full<Bytes>>,
    permits: Semaphore,
    log: Mutex<Vec<Attempt>>,
    /// How long a genuine delivery is retried after its first attempt.
    budget: Duration,
    attempt_timeout: Duration,
    /// Chance that an attempt hangs up mid-body, and (again) after the request.
    hangup: f64,
    seed: u64,
    /// The probes sent so far, and their tasks.
    probes: Mutex<(Vec<Delivery>, Vec<JoinHandle<()>>)>,
}

/// Probe deliveries are numbered from here.
const PROBE_BASE: u64 = 1_000_000;

impl Provider {
    pub fn new(
        gates: [SocketAddr; 2],
        concurrency: usize,
        budget: Duration,
        attempt_timeout: Duration,
        hangup: f64,
        seed: u64,
    ) -> Arc<Provider> {
        Arc::new(Provider {
            gates,
            client: Client::builder(TokioExecutor::new())
                .pool_idle_timeout(Duration::from_secs(5))
                .build_http(),
            permits: Semaphore::new(concurrency),
            log: Mutex::default(),
            budget,
            attempt_timeout,
            hangup,
            seed,
            probes: Mutex::default(),
        })
    }

    /// Sends a genuine delivery now, its first attempt to instance `via`
    /// (retried like any other): the first request after a recovery, which
    /// must not meet a 5xx once the fault is over.
    pub fn probe(self: &Arc<Self>, via: usize) {
        let mut probes = self.probes.lock().unwrap();
        let k = u64::try_from(probes.0.len()).unwrap();
        let id = PROBE_BASE + k;
        let route = [Route::Svix, Route::Levanta, Route::LeafLink][usize::try_from(k % 3).unwrap()];
        let body = format!(
            r#"{{"delivery":{id},"route":"{}","type":"invoice.paid","forged":"Genuine","probe":true}}"#,
            route.name()
        );
        let d = Delivery {
            id,
            route,
            forgery: Forgery::Genuine,
            body: Bytes::from(body),
            msg_id: format!("msg_probe_{:016x}_{k}", self.seed),
            at: Duration::ZERO,
            first_via: via,
            probe: true,
        };
        probes.0.push(d.clone());
        let this = self.clone();
        probes.1.push(tokio::spawn(async move {
            this.deliver(&d, Instant::now()).await
        }));
    }

    /// Waits for every probe to finish; the probes, to check with the other deliveries.
    pub async fn probes(&self) -> Vec<Delivery> {
        let tasks = std::mem::take(&mut self.probes.lock().unwrap().1);
        for t in tasks {
            t.await.unwrap();
        }
        self.probes.lock().unwrap().0.clone()
    }

    pub fn log(&self) -> Vec<Attempt> {
        self.log.lock().unwrap().clone()
    }

    /// Sends every delivery (each from its `at`), retrying, until each is
    /// answered 2xx or out of budget.
    pub async fn run(self: Arc<Self>, deliveries: Arc<Vec<Delivery>>, t0: Instant) {
        let mut tasks = JoinSet::new();
        for i in 0..deliveries.len() {
            let (this, all) = (self.clone(), deliveries.clone());
            tasks.spawn(async move { this.deliver(&all[i], t0).await });
        }
        while let Some(done) = tasks.join_next().await {
            done.unwrap();
        }
    }

    async fn deliver(&self, d: &Delivery, t0: Instant) {
        tokio::time::sleep_until((t0 + d.at).into()).await;
        let mut rng = StdRng::seed_from_u64(self.seed ^ d.id.wrapping_mul(0x9E37_79B9_7F4A_7C15));
        let deadline = Instant::now() + self.budget;
        let max = if d.genuine() {
            MAX_ATTEMPTS
        } else {
            FORGED_ATTEMPTS
        };
        for n in 0..max {
            if n > 0 {
                let step = SCHEDULE[usize::try_from(n).unwrap().min(SCHEDULE.len() - 1)];
                tokio::time::sleep(step.mul_f64(rng.random_range(0.8..1.2))).await;
                if Instant::now() > deadline {
                    return;
                }
            }
            let via = (d.first_via + usize::try_from(n).unwrap()) % 2;
            let hangup = self.hangup_for(d, n, &mut rng);
            let attempt = {
                let _permit = self.permits.acquire().await.unwrap();
                let sent = Instant::now();
                let outcome = self.attempt(d, via, n, hangup).await;
                Attempt {
                    delivery: d.id,
                    n,
                    via,
                    sent,
                    done: Instant::now(),
                    outcome,
                }
            };
            let finished = attempt.succeeded() || (!d.genuine() && attempt.status().is_some());
            self.log.lock().unwrap().push(attempt);
            if finished {
                return;
            }
        }
    }

    /// Deliveries 1 and 2 hang up on their first attempt (so every run has
    /// both kinds); any other attempt with probability `hangup` each.
    fn hangup_for(&self, d: &Delivery, n: u32, rng: &mut StdRng) -> Option<Hangup> {
        match (d.id, n) {
            _ if d.probe && n == 0 => return None,
            (1, 0) => return Some(Hangup::MidBody),
            (2, 0) => return Some(Hangup::AfterRequest),
            _ => {}
        }
        let r: f64 = rng.random();
        if r < self.hangup {
            Some(Hangup::MidBody)
        } else if r < 2.0 * self.hangup {
            Some(Hangup::AfterRequest)
        } else {
            None
        }
    }

    async fn attempt(&self, d: &Delivery, via: usize, n: u32, hangup: Option<Hangup>) -> Outcome {
        let (mut headers, body) = d.signed();
        headers.push(("x-via".into(), VIA[via].into()));
        headers.push(("x-attempt".into(), n.to_string()));
        let addr = self.gates[via];
        let path = d.route.path();
        if let Some(h) = hangup {
            return hang_up(addr, path, &headers, &body, h).await;
        }
        match tokio::time::timeout(self.attempt_timeout, self.send(addr, path, &headers, body))
            .await
        {
            Ok(outcome) => outcome,
            Err(_) => Outcome::Timeout,
        }
    }

    async fn send(
        &self,
        addr: SocketAddr,
        path: &str,
        headers: &[(String, String)],
        body: Bytes,
    ) -> Outcome {
        let mut req = Request::new(Full::new(body));
        *req.method_mut() = Method::POST;
        *req.uri_mut() = format!("http://{addr}{path}").parse().unwrap();
        req.headers_mut()
            .insert("content-type", "application/json".parse().unwrap());
        for (k, v) in headers {
            req.headers_mut().append(
                http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                v.parse().unwrap(),
            );
        }
        let resp = match self.client.request(req).await {
            Ok(r) => r,
            Err(e) => return Outcome::Failed(format!("{e:?}")),
        };
        let status = resp.status().as_u16();
        let complete = resp.into_body().collect().await.is_ok();
        Outcome::Status { status, complete }
    }
}

/// An attempt over a raw socket that closes on purpose before the answer.
async fn hang_up(
    addr: SocketAddr,
    path: &str,
    headers: &[(String, String)],
    body: &[u8],
    how: Hangup,
) -> Outcome {
    let Ok(mut s) = TcpStream::connect(addr).await else {
        return Outcome::Failed("connect refused".into());
    };
    let mut head = format!(
        "POST {path} HTTP/1.1\r\nhost: {addr}\r\ncontent-type: application/json\r\ncontent-length: {}\r\n",
        body.len()
    );
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    let cut = match how {
        Hangup::MidBody => body.len() / 2,
        Hangup::AfterRequest => body.len(),
    };
    // Write errors (the instance just died) end the attempt the same way.
    let _ = s.write_all(head.as_bytes()).await;
    let _ = s.write_all(&body[..cut]).await;
    let _ = s.flush().await;
    drop(s);
    Outcome::HungUp(how)
}
