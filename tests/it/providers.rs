//! Every provider through the real gateway: genuine deliveries arrive byte-identical; forged,
//! tampered, wrong-secret, stale and unsigned ones get 401 and never reach the application.
//! Also `hookgate sign` (the binary, headers and `--curl`), the generic `hmac` scheme, shadow
//! mode, and the config lint of provider routes.

use std::process::{Command, Stdio};
use std::time::{Duration, SystemTime};

use crate::support::*;
use hookgate::verify::{providers, Message, Verifier};
use http::{Method, StatusCode};

const PUBLIC: &str = "https://hooks.example.com";

/// A secret of the form `provider` hands out (`tag` makes a different one).
fn secret(provider: &str, tag: &str) -> String {
    providers::example_secret(provider, tag.as_bytes()).unwrap()
}

fn route_toml(provider: &str, extra: &str) -> String {
    let scheme = providers::builtin(provider).unwrap();
    let public_url = if scheme.signs_url() {
        format!("public_url = \"{PUBLIC}/webhooks/{provider}\"\n")
    } else {
        String::new()
    };
    format!(
        "[[routes]]\nname = \"{provider}\"\npath = \"/webhooks/{provider}\"\nprovider = \"{provider}\"\nsecrets = [\"{}\"]\n{public_url}{extra}\n",
        secret(provider, "real")
    )
}

fn gateway_toml(upstream: &Upstream, routes: &str) -> String {
    format!(
        "[listen]\naddr = \"127.0.0.1:0\"\n[admin]\naddr = \"127.0.0.1:0\"\n[upstream]\nurl = \"{}\"\ntimeout = \"5s\"\n{routes}",
        upstream.url()
    )
}

/// What `provider` would send for `body` at `at`, signed with `secret`: the
/// headers, and the body (Mailgun wraps the event with its signature).
fn signed_delivery(
    provider: &str,
    secret: &str,
    body: &[u8],
    id: &str,
    at: SystemTime,
) -> (Vec<(String, String)>, Vec<u8>) {
    let v = Verifier::new(
        providers::builtin(provider).unwrap(),
        &[secret.as_bytes()],
        None,
    )
    .unwrap();
    let path = format!("/webhooks/{provider}");
    let public_url = format!("{PUBLIC}{path}");
    let signed = v
        .sign_message(
            0,
            &Message {
                body,
                id,
                timestamp: at,
                method: &Method::POST,
                path_and_query: &path,
                public_url: Some(&public_url),
            },
        )
        .unwrap();
    let headers = signed
        .headers
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
    (headers, signed.body)
}

/// The headers of `signed_delivery`, for providers that sign in headers.
fn signed(
    provider: &str,
    secret: &str,
    body: &[u8],
    id: &str,
    at: SystemTime,
) -> Vec<(String, String)> {
    signed_delivery(provider, secret, body, id, at).0
}

/// Changes one character of the signature Mailgun carries in the body.
fn forge_in_body(body: &[u8]) -> Vec<u8> {
    let text = String::from_utf8(body.to_vec()).unwrap();
    let key = r#""signature":""#;
    let at = text.rfind(key).unwrap() + key.len() + 10;
    let mut bytes = text.into_bytes();
    bytes[at] = if bytes[at] == b'a' { b'b' } else { b'a' };
    bytes
}

/// Changes one character inside the signature (6 from the end: past any
/// base64 padding, inside the signature for every format).
fn forge(headers: &[(String, String)], signature_header: &str) -> Vec<(String, String)> {
    headers
        .iter()
        .map(|(k, v)| {
            if k.eq_ignore_ascii_case(signature_header) {
                let mut chars: Vec<char> = v.chars().collect();
                let i = chars.len() - 6;
                chars[i] = if chars[i] == 'a' { 'b' } else { 'a' };
                (k.clone(), chars.into_iter().collect())
            } else {
                (k.clone(), v.clone())
            }
        })
        .collect()
}

/// A named attempt: headers, body, and the error hookgate must answer.
type Case = (&'static str, Vec<(String, String)>, Vec<u8>, &'static str);

fn error_of(reply: &Reply) -> String {
    let v: serde_json::Value = serde_json::from_slice(&reply.body).unwrap();
    v["error"].as_str().unwrap_or("").to_string()
}

#[tokio::test]
async fn every_provider_forwards_genuine_and_blocks_forged_tampered_wrong_secret_stale_and_unsigned(
) {
    let upstream = Upstream::start().await;
    let routes: String = providers::NAMES.iter().map(|p| route_toml(p, "")).collect();
    let gw = Gateway::start(&gateway_toml(&upstream, &routes)).await;
    let now = SystemTime::now();
    let mut expected_forwards = 0;
    for (n, provider) in providers::NAMES.iter().enumerate() {
        let scheme = providers::builtin(provider).unwrap();
        let sig_header = scheme.signature_header.as_str().to_string();
        let url = gw.url(&format!("/webhooks/{provider}"));
        let real = secret(provider, "real");
        let event = providers::example_body(provider, now);
        let id = format!("msg_{n}_genuine");
        let (genuine, body) = signed_delivery(provider, &real, &event, &id, now);

        // Genuine: forwarded, byte for byte, signature headers included.
        let r = post(&url, &genuine, &body).await;
        assert_eq!(r.status, StatusCode::OK, "{provider}: {}", r.text());
        expected_forwards += 1;
        let got = upstream.received().pop().unwrap();
        assert_eq!(got.body, body, "{provider}: body changed on the way");
        assert_eq!(got.uri, format!("/webhooks/{provider}"));
        for (k, v) in &genuine {
            assert_eq!(
                got.headers[k.as_str()],
                v.as_str(),
                "{provider}: header {k}"
            );
        }

        let wrong = signed_delivery(provider, &secret(provider, "other"), &event, &id, now);
        let mut cases: Vec<Case> = if scheme.carried_in_body() {
            // Mailgun: the signature, its token and timestamp are in the body.
            vec![
                (
                    "forged",
                    genuine.clone(),
                    forge_in_body(&body),
                    "invalid_signature",
                ),
                ("wrong secret", wrong.0, wrong.1, "invalid_signature"),
                (
                    "unsigned",
                    genuine.clone(),
                    event.clone(),
                    "missing_signature",
                ),
            ]
        } else {
            vec![
                (
                    "forged",
                    forge(&genuine, &sig_header),
                    body.clone(),
                    "invalid_signature",
                ),
                ("wrong secret", wrong.0, wrong.1, "invalid_signature"),
                (
                    "unsigned",
                    genuine
                        .iter()
                        .filter(|(k, _)| !k.eq_ignore_ascii_case(&sig_header))
                        .cloned()
                        .collect(),
                    body.clone(),
                    "missing_signature",
                ),
            ]
        };
        // A token (GitLab) signs nothing, Mailgun signs its token and
        // timestamp only: a tampered body still carries a valid signature.
        if scheme.signs_body() {
            let mut tampered = body.clone();
            let h = body.windows(5).position(|w| w == b"hello").unwrap();
            tampered[h] = b'H';
            cases.push(("tampered", genuine.clone(), tampered, "invalid_signature"));
        }
        if scheme.has_timestamp() {
            let old = now - Duration::from_secs(3600);
            let old_event = providers::example_body(provider, old);
            let id = format!("msg_{n}_old");
            let (old_headers, old_body) = signed_delivery(provider, &real, &old_event, &id, old);
            cases.push(("stale", old_headers, old_body, "stale_timestamp"));
        }
        for (case, headers, body, error) in cases {
            let before = upstream.count();
            let r = post(&url, &headers, &body).await;
            assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{provider} {case}");
            assert_eq!(error_of(&r), error, "{provider} {case}");
            assert_eq!(upstream.count(), before, "{provider} {case} was forwarded");
        }

        // The genuine delivery again: a duplicate, answered 200 and not forwarded.
        let r = post(&url, &genuine, &body).await;
        assert_eq!(r.status, StatusCode::OK, "{provider} replay");
        assert!(
            r.text().contains("duplicate"),
            "{provider} replay: {}",
            r.text()
        );
    }
    assert_eq!(upstream.count(), expected_forwards);
}

fn hookgate(args: &[&str], stdin: &[u8]) -> std::process::Output {
    use std::io::Write;
    let mut child = Command::new(env!("CARGO_BIN_EXE_hookgate"))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(stdin).unwrap();
    child.wait_with_output().unwrap()
}

fn header_lines(out: &[u8]) -> Vec<(String, String)> {
    String::from_utf8(out.to_vec())
        .unwrap()
        .lines()
        .map(|l| {
            let (k, v) = l.split_once(": ").unwrap();
            (k.to_string(), v.to_string())
        })
        .collect()
}

#[tokio::test]
async fn hookgate_sign_headers_verify_at_the_gateway_for_every_provider() {
    let upstream = Upstream::start().await;
    let routes: String = providers::NAMES.iter().map(|p| route_toml(p, "")).collect();
    let gw = Gateway::start(&gateway_toml(&upstream, &routes)).await;
    for provider in providers::NAMES {
        let body = providers::example_body(provider, SystemTime::now());
        let path = format!("/webhooks/{provider}");
        let real = secret(provider, "real");
        // The secret goes through env:, as a user keeps it out of shell history.
        let var = format!(
            "HOOKGATE_TEST_{}",
            provider.replace('-', "_").to_uppercase()
        );
        std::env::set_var(&var, &real);
        let out = hookgate(
            &[
                "sign",
                "--provider",
                provider,
                "--secret",
                &format!("env:{var}"),
                "--url",
                &format!("{PUBLIC}{path}"),
            ],
            &body,
        );
        assert!(
            out.status.success(),
            "{provider}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        // Mailgun's signature travels in the body: `sign` prints that body.
        let (headers, body) = if providers::builtin(provider).unwrap().carried_in_body() {
            (Vec::new(), out.stdout.clone())
        } else {
            (header_lines(&out.stdout), body)
        };
        let r = post(&gw.url(&path), &headers, &body).await;
        assert_eq!(r.status, StatusCode::OK, "{provider}: {}", r.text());
        assert_eq!(upstream.received().pop().unwrap().body, body, "{provider}");
    }
    assert_eq!(upstream.count(), providers::NAMES.len());
}

#[tokio::test]
async fn hookgate_sign_curl_command_runs_as_printed() {
    // The path a new user takes: `hookgate sign --config F --route R --curl`
    // pasted into a shell, against a running gateway. Bodies with a quote, a
    // trailing newline and raw bytes must arrive exactly.
    let upstream = Upstream::start().await;
    let routes = route_toml("github", "") + &route_toml("square", "");
    let gw = Gateway::start(&gateway_toml(&upstream, &routes)).await;
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("hookgate.toml");
    std::fs::write(&config, gateway_toml(&upstream, &routes)).unwrap();
    let bodies: [&[u8]; 3] = [
        b"{\"msg\": \"it's here\"}",
        b"{\"msg\": 1}\n",
        b"\x00\xff binary \x01 'q' %s \\n",
    ];
    for route in ["github", "square"] {
        for body in bodies {
            let out = hookgate(
                &[
                    "sign",
                    "--config",
                    config.to_str().unwrap(),
                    "--route",
                    route,
                    "--url",
                    &gw.url(&format!("/webhooks/{route}")),
                    "--curl",
                ],
                body,
            );
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
            let cmd = String::from_utf8(out.stdout).unwrap();
            let before = upstream.count();
            // curl blocks: off the runtime thread, which also serves the gateway.
            let cmd2 = cmd.clone();
            let run = tokio::task::spawn_blocking(move || {
                Command::new("sh").arg("-c").arg(&cmd2).output().unwrap()
            })
            .await
            .unwrap();
            let said = String::from_utf8_lossy(&run.stdout);
            assert!(
                said.starts_with("HTTP/1.1 200"),
                "{route}: {cmd}\n=> {said}"
            );
            assert_eq!(upstream.count(), before + 1);
            assert_eq!(upstream.received().pop().unwrap().body, body, "{route}");
        }
    }
}

#[tokio::test]
async fn hookgate_sign_refuses_what_it_cannot_sign() {
    let out = hookgate(&["sign", "--provider", "nope", "--secret", "x"], b"{}");
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown provider"));
    let out = hookgate(&["sign", "--provider", "square", "--secret", "x"], b"{}");
    assert_eq!(out.status.code(), Some(2), "square without a URL");
    let out = hookgate(
        &[
            "sign",
            "--provider",
            "svix",
            "--secret",
            "whpk_1SiA4o9hyqTCpIqC5V9HUakiiaeACeqfZTInDBbOir4=",
        ],
        b"{}",
    );
    assert_eq!(out.status.code(), Some(1), "a public key cannot sign");
    let out = hookgate(&["sign", "--provider", "linear", "--secret", "x"], b"{}");
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("webhookTimestamp"));
}

#[tokio::test]
async fn generic_hmac_route_verifies_an_independently_signed_delivery() {
    let upstream = Upstream::start().await;
    let routes = r#"
[[routes]]
name = "acme"
path = "/webhooks/acme"
provider = "hmac"
secrets = ["acme-secret"]
header = "X-Acme-Signature"
prefix = "sha256="
id_header = "X-Acme-Id"
timestamp_header = "X-Acme-Time"
signed = "{id}:{timestamp}:{method}:{url}:{body}"
public_url = "https://hooks.example.com/webhooks/acme"
tolerance = "1m"
"#;
    let gw = Gateway::start(&gateway_toml(&upstream, routes)).await;
    let ts = now_secs().to_string();
    let body = br#"{"acme":"hello"}"#;
    let signed_bytes = [
        b"evt_1:".as_slice(),
        ts.as_bytes(),
        b":POST:https://hooks.example.com/webhooks/acme?x=1:",
        body,
    ]
    .concat();
    let sig = hex::encode(hmac_sha256(b"acme-secret", &signed_bytes));
    let headers = vec![
        ("X-Acme-Id".to_string(), "evt_1".to_string()),
        ("X-Acme-Time".to_string(), ts.clone()),
        ("X-Acme-Signature".to_string(), format!("sha256={sig}")),
    ];
    let url = gw.url("/webhooks/acme?x=1");
    let r = post(&url, &headers, body).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    assert_eq!(upstream.received()[0].body, body.as_slice());
    // The id is signed, so a replay with a new id is a forgery, and the same id a duplicate.
    let mut other_id = headers.clone();
    other_id[0].1 = "evt_2".into();
    assert_eq!(
        post(&url, &other_id, body).await.status,
        StatusCode::UNAUTHORIZED
    );
    assert!(post(&url, &headers, body)
        .await
        .text()
        .contains("duplicate"));
    // The URL is signed: another query string is another message.
    let r = post(&gw.url("/webhooks/acme?x=2"), &headers, body).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    assert_eq!(upstream.count(), 1);
}

async fn scrape(gw: &Gateway) -> prometheus_parse::Scrape {
    let r = send(
        &format!("http://{}/metrics", gw.admin.unwrap()),
        Method::GET,
        &[],
        b"",
    )
    .await;
    prometheus_parse::Scrape::parse(r.text().lines().map(|l| Ok(l.to_string()))).unwrap()
}

fn value(scrape: &prometheus_parse::Scrape, metric: &str, labels: &[(&str, &str)]) -> f64 {
    let matching: Vec<f64> = scrape
        .samples
        .iter()
        .filter(|s| s.metric == metric)
        .filter(|s| labels.iter().all(|(k, v)| s.labels.get(k) == Some(*v)))
        .map(|s| match s.value {
            prometheus_parse::Value::Counter(v) | prometheus_parse::Value::Untyped(v) => v,
            _ => f64::NAN,
        })
        .collect();
    assert_eq!(matching.len(), 1, "{metric}{labels:?}");
    matching[0]
}

#[tokio::test]
async fn shadow_mode_forwards_forged_and_duplicate_requests_and_counts_them_apart() {
    let upstream = Upstream::start().await;
    let routes = route_toml("github", "mode = \"shadow\"") + &route_toml("stripe", "");
    let gw = Gateway::start(&gateway_toml(&upstream, &routes)).await;
    let url = gw.url("/webhooks/github");
    let body = providers::example_body("github", SystemTime::now());
    let genuine = signed(
        "github",
        &secret("github", "real"),
        &body,
        "d1",
        SystemTime::now(),
    );
    let forged = forge(&genuine, "x-hub-signature-256");

    // A forgery in shadow mode reaches the application, answered by it.
    let r = post(&url, &forged, &body).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.headers["x-app"], "echo", "not the application's answer");
    assert_eq!(upstream.received()[0].body, body);
    // So does a request with no signature at all, and a genuine one twice.
    post(&url, &[], &body).await;
    post(&url, &genuine, &body).await;
    let r = post(&url, &genuine, &body).await;
    assert_eq!(
        r.headers["x-app"], "echo",
        "shadow mode answered a duplicate itself"
    );
    assert_eq!(upstream.count(), 4);

    // An enforce route next to it still blocks (GitHub's headers carry no Stripe-Signature).
    let r = post(&gw.url("/webhooks/stripe"), &forged, &body).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    assert_eq!(upstream.count(), 4);

    let m = scrape(&gw).await;
    let shadow = |reason| {
        value(
            &m,
            "hookgate_shadow_rejections_total",
            &[("route", "github"), ("reason", reason)],
        )
    };
    assert_eq!(shadow("invalid_signature"), 1.0);
    assert_eq!(shadow("missing_signature"), 1.0);
    assert_eq!(shadow("duplicate"), 1.0);
    assert_eq!(shadow("stale_timestamp"), 0.0);
    let github = [("route", "github")];
    let requests = |outcome| {
        value(
            &m,
            "hookgate_requests_total",
            &[github[0], ("outcome", outcome)],
        )
    };
    assert_eq!(requests("forwarded"), 4.0);
    assert_eq!(requests("rejected"), 0.0);
    // Real rejections stay in their own family: alerts on it mean "the app was protected".
    assert_eq!(
        value(
            &m,
            "hookgate_rejections_total",
            &[github[0], ("reason", "invalid_signature")]
        ),
        0.0
    );
    assert_eq!(
        value(
            &m,
            "hookgate_rejections_total",
            &[("route", "stripe"), ("reason", "missing_signature")]
        ),
        1.0
    );
}

fn config_error(routes: &str) -> String {
    let text = format!(
        "[listen]\naddr = \"127.0.0.1:0\"\n[upstream]\nurl = \"http://127.0.0.1:1\"\n{routes}"
    );
    let config = hookgate::config::parse(
        &text,
        std::path::Path::new("lint.toml"),
        &hookgate::config::Env::Process,
    );
    let err = match config {
        Err(e) => e,
        Ok(c) => match hookgate::proxy::Runtime::build(&c, &hookgate::metrics::Metrics::new()) {
            Err(e) => e,
            Ok(_) => panic!("accepted:\n{routes}"),
        },
    };
    err.to_string()
}

#[test]
fn config_lint_names_the_route_field() {
    let cases = [
        // A tolerance where nothing signs a timestamp would protect nothing.
        (
            "[[routes]]\npath = \"/g\"\nprovider = \"github\"\nsecrets = [\"s\"]\ntolerance = \"5m\"",
            "routes[0].tolerance",
        ),
        // Square signs the URL it called: the route must say what that was.
        (
            "[[routes]]\npath = \"/sq\"\nprovider = \"square\"\nsecrets = [\"s\"]",
            "routes[0].public_url",
        ),
        (
            "[[routes]]\npath = \"/h\"\nprovider = \"hmac\"\nsecrets = [\"s\"]\nheader = \"x\"\nalgorithm = \"md5\"",
            "routes[0].algorithm",
        ),
        (
            "[[routes]]\npath = \"/h\"\nprovider = \"hmac\"\nsecrets = [\"s\"]\nheader = \"x\"\nheadr = \"y\"",
            "routes[0].headr",
        ),
        (
            "[[routes]]\npath = \"/h\"\nprovider = \"hmac\"\nsecrets = [\"s\"]\nheader = \"x\"\ntimestamp_header = \"x-ts\"",
            "routes[0].signed",
        ),
        (
            "[[routes]]\npath = \"/h\"\nprovider = \"github\"\nsecrets = [\"s\"]\nheader = \"x\"",
            "routes[0].header",
        ),
        (
            "[[routes]]\npath = \"/h\"\nprovider = \"github\"\nsecrets = []",
            "routes[0].secrets",
        ),
        (
            "[[routes]]\npath = \"/h\"\nprovider = \"svix\"\nsecrets = [\"whpk_bm90IGEga2V5\"]",
            "routes[0].secrets[0]",
        ),
    ];
    for (routes, field) in cases {
        let e = config_error(routes);
        assert!(e.contains(field), "{field}: {e}");
        assert!(e.contains("lint.toml"), "{e}");
    }
}

#[test]
fn example_config_has_a_working_route_for_every_provider() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/providers.toml");
    let text = std::fs::read_to_string(path).unwrap();
    // Every env: secret it names, with a value of the right form.
    let env: Vec<(String, String)> = text
        .split("\"env:")
        .skip(1)
        .map(|rest| {
            let name = rest.split('"').next().unwrap().to_string();
            let value = match name.as_str() {
                "SVIX_PUBLIC_KEY" => "whpk_1SiA4o9hyqTCpIqC5V9HUakiiaeACeqfZTInDBbOir4=".into(),
                n if ["SVIX", "STDWH", "CLERK", "RESEND", "BREX"]
                    .iter()
                    .any(|p| n.starts_with(p)) =>
                {
                    SVIX_SECRET.into()
                }
                // RFC 8032's first test public key, as Discord shows one (hex).
                "DISCORD_PUBLIC_KEY" => {
                    "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a".into()
                }
                // A P-256 public key as SendGrid shows one (base64 DER SPKI).
                "SENDGRID_VERIFICATION_KEY" => "MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEvAIf1iPrD7PdBhonn+t6PnJlnDsvvafDL81OxrgYTgqqMBpImn0ojGWIIOEWQJDhW6Ixww9sw5t/hp5WiVTJ5A==".into(),
                n => format!("{n}-value"),
            };
            (name, value)
        })
        .collect();
    let config = hookgate::config::parse(
        &text,
        std::path::Path::new(path),
        &hookgate::config::Env::Map(env),
    )
    .unwrap();
    let runtime =
        hookgate::proxy::Runtime::build(&config, &hookgate::metrics::Metrics::new()).unwrap();
    for provider in providers::NAMES.iter().chain(&["hmac"]) {
        assert!(
            runtime
                .routes
                .routes()
                .iter()
                .any(|r| r.provider == *provider),
            "examples/providers.toml has no {provider} route"
        );
    }
}
