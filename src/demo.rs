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

use crate::config::{self, Env};
use crate::server;
use crate::verify::{providers, Message, Verifier};

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

/// The cases for one route; an error when the demo cannot sign for it (a
/// demo bug, reported rather than silently turned into unsigned requests).
fn cases(route: &DemoRoute, forger_secret: &str, n: usize) -> Result<Vec<Case>, String> {
    let Some(scheme) = providers::builtin(route.provider) else {
        return Err("not a built-in provider".into());
    };
    let has_timestamp = scheme.has_timestamp();
    // A shared token (GitLab) signs nothing, and Mailgun signs a token and a
    // timestamp, not the event: a changed body still carries a valid signature
    // (for Mailgun, of the same delivery: a duplicate).
    let unsigned_body = !scheme.signs_body();
    let same_delivery = scheme.carried_in_body();
    let url = signs_url(route.provider).then(|| public_url(&route.path));
    let verifier = Verifier::new(scheme, &[route.secret.as_bytes()], None)
        .map_err(|(_, e)| format!("secret {}", e.0))?;
    let id = format!("msg_demo_{n}");
    let now = SystemTime::now();
    // Twilio posts forms and Linear signs a timestamp inside its JSON: each
    // provider gets a body of the shape it really sends.
    let body = providers::example_body(route.provider, now);
    let sign = |body: &[u8], at: SystemTime| {
        verifier
            .sign_message(
                0,
                &Message {
                    body,
                    id: &id,
                    timestamp: at,
                    method: &Method::POST,
                    path_and_query: &route.path,
                    public_url: url.as_deref(),
                },
            )
            .map_err(|e| e.to_string())
    };
    let genuine = sign(&body, now)?;
    // A forger knows the format but not the secret: it signs with its own.
    let forger = Verifier::new(verifier.scheme().clone(), &[forger_secret.as_bytes()], None)
        .map_err(|(_, e)| format!("forger secret {}", e.0))?;
    let forged = forger
        .sign_message(
            0,
            &Message {
                body: &body,
                id: &id,
                timestamp: now,
                method: &Method::POST,
                path_and_query: &route.path,
                public_url: url.as_deref(),
            },
        )
        .map_err(|e| e.to_string())?;
    let mut tampered = genuine.body.clone();
    tampered.extend_from_slice(b" ");
    let mut out = vec![
        Case {
            name: "genuine",
            headers: genuine.headers.clone(),
            body: genuine.body.clone(),
            expect_status: StatusCode::OK,
            expect_forwarded: true,
        },
        Case {
            name: "forged signature",
            headers: forged.headers,
            body: forged.body,
            expect_status: StatusCode::UNAUTHORIZED,
            expect_forwarded: false,
        },
        Case {
            name: if unsigned_body {
                "tampered (unsigned)"
            } else {
                "tampered body"
            },
            headers: genuine.headers.clone(),
            body: tampered,
            expect_status: if unsigned_body {
                StatusCode::OK
            } else {
                StatusCode::UNAUTHORIZED
            },
            expect_forwarded: unsigned_body && !same_delivery,
        },
    ];
    if has_timestamp {
        // Linear's timestamp is inside the body: an old message is an old body.
        let old = now - Duration::from_secs(3600);
        let stale = sign(&providers::example_body(route.provider, old), old)?;
        out.push(Case {
            name: "stale (1 hour old)",
            headers: stale.headers,
            body: stale.body,
            expect_status: StatusCode::UNAUTHORIZED,
            expect_forwarded: false,
        });
    }
    out.push(Case {
        name: "replay of genuine",
        headers: genuine.headers,
        body: genuine.body,
        expect_status: StatusCode::OK,
        expect_forwarded: false,
    });
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
    let app = match echo_app(Arc::clone(&received)).await {
        Ok(a) => a,
        Err(e) => {
            eprintln!("hookgate demo: cannot start the echo app: {e}");
            return ExitCode::FAILURE;
        }
    };
    let config = match config::parse(
        &demo_config(app, &routes),
        Path::new("(demo)"),
        &Env::Process,
    ) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("hookgate demo: {e}");
            return ExitCode::FAILURE;
        }
    };
    let running = match server::start(&config, SystemTime::now).await {
        Ok(r) => r,
        Err(e) => {
            eprintln!("hookgate demo: {e}");
            return ExitCode::FAILURE;
        }
    };
    println!(
        "hookgate demo: gateway on http://{} in front of an echo app on http://{app}\n",
        running.addr
    );

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
            let mut req = Request::new(Full::new(Bytes::from(case.body)));
            *req.method_mut() = Method::POST;
            let uri = format!("http://{}{}", running.addr, route.path);
            let Ok(uri) = uri.parse() else { continue };
            *req.uri_mut() = uri;
            for (k, v) in &case.headers {
                if let Ok(v) = v.parse() {
                    req.headers_mut().insert(k.clone(), v);
                }
            }
            let (status, said) = match client.request(req).await {
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
            };
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

    if let Some(route) = routes.iter().find(|r| r.provider == "levanta") {
        let body = br#"{"event":"hello from curl"}"#;
        if let Some(scheme) = providers::builtin(route.provider) {
            if let Ok(v) = Verifier::new(scheme, &[route.secret.as_bytes()], None) {
                let signed = v.try_sign(
                    0,
                    &Message {
                        body,
                        id: "",
                        timestamp: SystemTime::now(),
                        method: &Method::POST,
                        path_and_query: &route.path,
                        public_url: None,
                    },
                );
                let headers = match signed {
                    Ok(headers) => headers,
                    Err(e) => {
                        eprintln!("hookgate demo: cannot sign the curl example: {e}");
                        return ExitCode::FAILURE;
                    }
                };
                let mut line = format!("curl -i http://{}{}", running.addr, route.path);
                for (k, v) in headers {
                    let _ = write!(line, " -H '{k}: {v}'");
                }
                let _ = write!(line, " --data-binary '{}'", String::from_utf8_lossy(body));
                println!("Try it yourself (run it twice to see the replay blocked, or change a byte to see a forgery):\n\n  {line}\n");
            }
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

fn short(said: &str) -> String {
    said.chars().take(32).collect()
}
