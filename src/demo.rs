//! `hookgate demo`: the real gateway in front of a built-in echo app, fed genuine and forged webhooks.
//!
//! Everything runs on loopback with generated secrets: no files, no setup.
//! Each provider gets a genuine webhook, a forged signature, a tampered body,
//! a stale timestamp (where the provider signs one) and a replay; the table
//! shows what the application actually received.

use std::convert::Infallible;
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::path::Path;
use std::process::ExitCode;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpListener;

use crate::app::{self, Running};
use crate::config::{self, Env};
use crate::verify::{providers, Message, Signed, Verifier};

/// One demo route: a provider and the secret its route is configured with.
struct DemoRoute {
    provider: &'static str,
    path: String,
    secret: String,
}

/// The providers the demo exercises, each with a secret of the form it expects.
fn routes(seed: &[u8]) -> Vec<DemoRoute> {
    providers::NAMES
        .iter()
        .map(|&provider| {
            // Every built-in has an example secret; an empty one would fail
            // the route's own check and show up in the table.
            let secret = providers::example_secret(provider, seed).unwrap_or_default();
            DemoRoute {
                provider,
                path: format!("/webhooks/{provider}"),
                secret,
            }
        })
        .collect()
}

/// The built-in application: answers 200 and counts what it received.
async fn echo_app(received: Arc<AtomicUsize>) -> std::io::Result<SocketAddr> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let received = Arc::clone(&received);
            tokio::spawn(async move {
                let svc = service_fn(move |req: Request<Incoming>| {
                    let received = Arc::clone(&received);
                    async move {
                        let len = req
                            .into_body()
                            .collect()
                            .await
                            .map_or(0, |b| b.to_bytes().len());
                        received.fetch_add(1, Ordering::SeqCst);
                        let body = format!("{{\"app\":\"received {len} bytes\"}}");
                        Ok::<_, Infallible>(Response::new(Full::new(Bytes::from(body))))
                    }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), svc)
                    .await;
            });
        }
    });
    Ok(addr)
}

fn demo_config(app: SocketAddr, routes: &[DemoRoute]) -> String {
    let mut toml = format!(
        "[listen]\naddr = \"127.0.0.1:0\"\n[admin]\naddr = \"127.0.0.1:0\"\n[upstream]\nurl = \"http://{app}\"\ntimeout = \"5s\"\n"
    );
    for r in routes {
        let _ = write!(
            toml,
            "[[routes]]\nname = \"{p}\"\npath = \"{path}\"\nprovider = \"{p}\"\nsecrets = [\"{s}\"]\n",
            p = r.provider,
            path = r.path,
            s = r.secret
        );
        if signs_url(r.provider) {
            let _ = writeln!(toml, "public_url = \"{}\"", public_url(&r.path));
        }
    }
    toml
}

/// Square and Twilio sign the URL they call: behind a load balancer that is
/// the public URL, which the route is told (`public_url`).
fn signs_url(provider: &str) -> bool {
    providers::builtin(provider).is_some_and(|s| s.signs_url())
}

fn public_url(path: &str) -> String {
    format!("https://hooks.example.com{path}")
}

struct Case {
    name: &'static str,
    headers: Vec<(http::HeaderName, String)>,
    body: Vec<u8>,
    expect_status: StatusCode,
    expect_forwarded: bool,
}

impl Case {
    fn new(name: &'static str, signed: Signed, status: StatusCode, forwarded: bool) -> Self {
        Case {
            name,
            headers: signed.headers,
            body: signed.body,
            expect_status: status,
            expect_forwarded: forwarded,
        }
    }
}

/// Signs as `route`'s provider would, with `secret`.
fn signer<'a>(
    route: &'a DemoRoute,
    secret: &str,
    id: &'a str,
) -> Result<impl Fn(&[u8], SystemTime) -> Result<Signed, String> + 'a, String> {
    let scheme = providers::builtin(route.provider).ok_or("not a built-in provider")?;
    let url = scheme.signs_url().then(|| public_url(&route.path));
    let verifier = Verifier::new(scheme, &[secret.as_bytes()], None)
        .map_err(|(_, e)| format!("secret {}", e.0))?;
    Ok(move |body: &[u8], at: SystemTime| {
        verifier
            .sign_message(
                0,
                &Message {
                    body,
                    id,
                    timestamp: at,
                    method: &Method::POST,
                    path_and_query: &route.path,
                    public_url: url.as_deref(),
                },
            )
            .map_err(|e| e.to_string())
    })
}

/// The cases for one route; an error when the demo cannot sign for it (a
/// demo bug, reported rather than silently turned into unsigned requests).
fn cases(route: &DemoRoute, forger_secret: &str, n: usize) -> Result<Vec<Case>, String> {
    let scheme = providers::builtin(route.provider).ok_or("not a built-in provider")?;
    // A shared token (GitLab) signs nothing, and Mailgun signs a token and a
    // timestamp, not the event: a changed body still carries a valid signature
    // (for Mailgun, of the same delivery: a duplicate).
    let unsigned_body = !scheme.signs_body();
    let same_delivery = scheme.carried_in_body();
    let id = format!("msg_demo_{n}");
    let sign = signer(route, &route.secret, &id)?;
    // A forger knows the format but not the secret: it signs with its own.
    let forge = signer(route, forger_secret, &id)?;
    let now = SystemTime::now();
    // Twilio posts forms and Linear signs a timestamp inside its JSON: each
    // provider gets a body of the shape it really sends.
    let body = providers::example_body(route.provider, now);
    let genuine = sign(&body, now)?;
    let mut tampered = genuine.clone();
    tampered.body.extend_from_slice(b" ");
    let (tampered_name, tampered_status) = if unsigned_body {
        ("tampered (unsigned)", StatusCode::OK)
    } else {
        ("tampered body", StatusCode::UNAUTHORIZED)
    };
    let unauthorized = StatusCode::UNAUTHORIZED;
    let mut out = vec![
        Case::new("genuine", genuine.clone(), StatusCode::OK, true),
        Case::new("forged signature", forge(&body, now)?, unauthorized, false),
        Case::new(
            tampered_name,
            tampered,
            tampered_status,
            unsigned_body && !same_delivery,
        ),
    ];
    if scheme.has_timestamp() {
        // Linear's timestamp is inside the body: an old message is an old body.
        let old = now - Duration::from_secs(3600);
        let stale = sign(&providers::example_body(route.provider, old), old)?;
        out.push(Case::new("stale (1 hour old)", stale, unauthorized, false));
    }
    out.push(Case::new(
        "replay of genuine",
        genuine,
        StatusCode::OK,
        false,
    ));
    Ok(out)
}

pub async fn run(once: bool) -> ExitCode {
    let seed = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_nanos()
        .to_le_bytes();
    let routes = routes(&seed);
    let forgers = self::routes(b"not the configured secret");
    let received = Arc::new(AtomicUsize::new(0));
    let running = match start(&routes, &received).await {
        Ok(r) => r,
        Err(e) => {
            eprintln!("hookgate demo: {e}");
            return ExitCode::FAILURE;
        }
    };
    let all_ok = run_cases(running.addr, &routes, &forgers, &received).await;
    println!();
    if once {
        running.shutdown();
        running.wait().await;
        return if all_ok {
            ExitCode::SUCCESS
        } else {
            ExitCode::FAILURE
        };
    }
    match try_it_yourself(running.addr, &routes) {
        Ok(Some(line)) => println!("Try it yourself (run it twice to see the replay blocked, or change a byte to see a forgery):\n\n  {line}\n"),
        Ok(None) => {}
        Err(e) => {
            eprintln!("hookgate demo: cannot sign the curl example: {e}");
            return ExitCode::FAILURE;
        }
    }
    println!(
        "Metrics: curl http://{}/metrics   (Ctrl-C to stop)",
        running
            .admin_addr
            .map_or_else(String::new, |a| a.to_string())
    );
    let _ = tokio::signal::ctrl_c().await;
    running.shutdown();
    running.wait().await;
    ExitCode::SUCCESS
}

/// The echo app, then the real gateway in front of it with one route per provider.
async fn start(routes: &[DemoRoute], received: &Arc<AtomicUsize>) -> Result<Running, String> {
    let app = echo_app(Arc::clone(received))
        .await
        .map_err(|e| format!("cannot start the echo app: {e}"))?;
    let config = config::parse(
        &demo_config(app, routes),
        Path::new("(demo)"),
        &Env::Process,
    )
    .map_err(|e| e.to_string())?;
    let running = app::start(&config, SystemTime::now)
        .await
        .map_err(|e| e.to_string())?;
    println!(
        "hookgate demo: gateway on http://{} in front of an echo app on http://{app}\n",
        running.addr
    );
    Ok(running)
}

/// Sends every case of every route and prints the table; `true` when each
/// ended as expected.
async fn run_cases(
    gateway: SocketAddr,
    routes: &[DemoRoute],
    forgers: &[DemoRoute],
    received: &AtomicUsize,
) -> bool {
    let client: Client<_, Full<Bytes>> = Client::builder(TokioExecutor::new()).build_http();
    let mut all_ok = true;
    println!(
        "{:<18} | {:<20} | {:<6} | {:<32} | {:<9} | check",
        "provider", "case", "status", "hookgate said", "app saw"
    );
    println!("{}", "-".repeat(106));
    for (n, route) in routes.iter().enumerate() {
        let cases = match cases(route, &forgers[n].secret, n) {
            Ok(cases) => cases,
            Err(e) => {
                println!("{:<18} | cannot sign: {e} | UNEXPECTED", route.provider);
                all_ok = false;
                continue;
            }
        };
        for case in cases {
            let before = received.load(Ordering::SeqCst);
            let (status, said) = send(&client, gateway, &route.path, &case).await;
            let forwarded = received.load(Ordering::SeqCst) > before;
            let ok = status == case.expect_status && forwarded == case.expect_forwarded;
            all_ok &= ok;
            println!(
                "{:<18} | {:<20} | {:<6} | {:<32} | {:<9} | {}",
                route.provider,
                case.name,
                status.as_u16(),
                if forwarded {
                    "forwarded".to_string()
                } else {
                    short(&said)
                },
                if forwarded { "forwarded" } else { "blocked" },
                if ok { "ok" } else { "UNEXPECTED" }
            );
        }
    }
    all_ok
}

/// POSTs one case to the gateway: the status and what was answered.
async fn send(
    client: &Client<hyper_util::client::legacy::connect::HttpConnector, Full<Bytes>>,
    gateway: SocketAddr,
    path: &str,
    case: &Case,
) -> (StatusCode, String) {
    let mut req = Request::new(Full::new(Bytes::from(case.body.clone())));
    *req.method_mut() = Method::POST;
    match format!("http://{gateway}{path}").parse() {
        Ok(uri) => *req.uri_mut() = uri,
        Err(e) => return (StatusCode::BAD_REQUEST, format!("bad uri: {e}")),
    }
    for (k, v) in &case.headers {
        if let Ok(v) = v.parse() {
            req.headers_mut().insert(k.clone(), v);
        }
    }
    match client.request(req).await {
        Ok(resp) => {
            let status = resp.status();
            let body = resp
                .into_body()
                .collect()
                .await
                .map(|b| b.to_bytes())
                .unwrap_or_default();
            (status, String::from_utf8_lossy(&body).into_owned())
        }
        Err(e) => (StatusCode::BAD_GATEWAY, format!("request failed: {e}")),
    }
}

/// A `curl` line that sends a genuine Levanta webhook to the gateway.
fn try_it_yourself(gateway: SocketAddr, routes: &[DemoRoute]) -> Result<Option<String>, String> {
    let Some(route) = routes.iter().find(|r| r.provider == "levanta") else {
        return Ok(None);
    };
    let Some(scheme) = providers::builtin(route.provider) else {
        return Ok(None);
    };
    let v = Verifier::new(scheme, &[route.secret.as_bytes()], None)
        .map_err(|(_, e)| format!("secret {}", e.0))?;
    let body = br#"{"event":"hello from curl"}"#;
    let headers = v
        .try_sign(
            0,
            &Message {
                body,
                id: "",
                timestamp: SystemTime::now(),
                method: &Method::POST,
                path_and_query: &route.path,
                public_url: None,
            },
        )
        .map_err(|e| e.to_string())?;
    let mut line = format!("curl -i http://{gateway}{}", route.path);
    for (k, v) in headers {
        let _ = write!(line, " -H '{k}: {v}'");
    }
    let _ = write!(line, " --data-binary '{}'", String::from_utf8_lossy(body));
    Ok(Some(line))
}

fn short(said: &str) -> String {
    said.chars().take(32).collect()
}
