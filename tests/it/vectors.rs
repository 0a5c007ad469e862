//! Official signature vectors (tests/fixtures/official.json, each with its source) against the engine,
//! through the built-in providers and through the same providers written as generic `hmac` schemes.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use hookgate::verify::{
    generic, providers, Input, Payload, Rejection, Scheme, SignatureFormat, Verifier,
};
use http::{HeaderMap, HeaderName, HeaderValue, Method};
use serde_json::Value;

fn load(name: &str) -> Vec<Value> {
    let path = format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(path).unwrap();
    serde_json::from_str::<Vec<Value>>(&text).unwrap()
}

/// The official vectors, then those produced and checked by the providers' own
/// SDKs for providers that publish none (Stripe, Slack, Linear:
/// tests/fixtures/gen_libraries.py and gen_linear.mjs), then the catalog of
/// issue 15 (tests/fixtures/gen_catalog.mjs: SDK verdicts, or the documented
/// algorithm where a provider ships no verifier, `kind` saying which).
fn vectors() -> Vec<Value> {
    let mut all = load("official.json");
    all.extend(load("libraries.json"));
    all.extend(load("catalog.json"));
    all
}

/// Built-ins that are not an HMAC over a template, or that read what the
/// generic scheme cannot express (RFC 3339 timestamps, numbered headers).
const NOT_GENERIC: &[&str] = &[
    "twilio", "gitlab", "twitch", "zendesk", "discord", "sendgrid", "docusign", "mailgun",
];

const SVIX_GENERIC: &str = r#"header = "svix-signature"
format = "versioned"
encoding = "base64"
signed = "{id}.{timestamp}.{body}"
id_header = "svix-id"
timestamp_header = "svix-timestamp"
key_encoding = "whsec""#;

/// Each built-in HMAC provider written as a generic `provider = "hmac"` route.
const GENERIC: &[(&str, &str)] = &[
    (
        "standard-webhooks",
        r#"header = "webhook-signature"
format = "versioned"
version = "v1"
encoding = "base64"
signed = "{id}.{timestamp}.{body}"
id_header = "webhook-id"
timestamp_header = "webhook-timestamp"
key_encoding = "whsec""#,
    ),
    (
        "svix",
        r#"header = "svix-signature"
format = "versioned"
encoding = "base64"
signed = "{id}.{timestamp}.{body}"
id_header = "svix-id"
timestamp_header = "svix-timestamp"
key_encoding = "whsec""#,
    ),
    ("levanta", r#"header = "x-levanta-hmac-sha256""#),
    (
        "leaflink",
        r#"header = "LL-Signature"
encoding = "base64""#,
    ),
    (
        "github",
        r#"header = "X-Hub-Signature-256"
prefix = "sha256="
id_header = "X-GitHub-Delivery""#,
    ),
    (
        "stripe",
        r#"header = "Stripe-Signature"
format = "params"
signature_param = "v1"
timestamp_param = "t"
signed = "{timestamp}.{body}""#,
    ),
    (
        "shopify",
        r#"header = "X-Shopify-Hmac-Sha256"
encoding = "base64"
id_header = "X-Shopify-Webhook-Id""#,
    ),
    (
        "slack",
        r#"header = "X-Slack-Signature"
prefix = "v0="
signed = "v0:{timestamp}:{body}"
timestamp_header = "X-Slack-Request-Timestamp""#,
    ),
    (
        "paddle",
        r#"header = "Paddle-Signature"
format = "params"
separator = ";"
signature_param = "h1"
timestamp_param = "ts"
signed = "{timestamp}:{body}""#,
    ),
    (
        "zoom",
        r#"header = "x-zm-signature"
prefix = "v0="
signed = "v0:{timestamp}:{body}"
timestamp_header = "x-zm-request-timestamp""#,
    ),
    (
        "linear",
        r#"header = "Linear-Signature"
id_header = "Linear-Delivery"
timestamp_json = "webhookTimestamp"
timestamp_unit = "ms""#,
    ),
    (
        "square",
        r#"header = "x-square-hmacsha256-signature"
encoding = "base64"
signed = "{url}{body}""#,
    ),
    (
        "intercom",
        r#"header = "X-Hub-Signature"
prefix = "sha1="
algorithm = "sha1""#,
    ),
    ("clerk", SVIX_GENERIC),
    ("resend", SVIX_GENERIC),
    (
        "brex",
        r#"header = "webhook-signature"
format = "versioned"
encoding = "base64"
signed = "{id}.{timestamp}.{body}"
id_header = "webhook-id"
timestamp_header = "webhook-timestamp"
key_encoding = "whsec""#,
    ),
    (
        "meta",
        r#"header = "X-Hub-Signature-256"
prefix = "sha256=""#,
    ),
    (
        "bitbucket",
        r#"header = "X-Hub-Signature"
prefix = "sha256="
id_header = "X-Request-UUID""#,
    ),
    (
        "sentry",
        r#"header = "Sentry-Hook-Signature"
id_header = "Request-ID""#,
    ),
    (
        "typeform",
        r#"header = "Typeform-Signature"
prefix = "sha256="
encoding = "base64""#,
    ),
    (
        "pagerduty",
        r#"header = "X-PagerDuty-Signature"
format = "params"
signature_param = "v1"
id_header = "X-Webhook-Id""#,
    ),
    ("lemonsqueezy", r#"header = "X-Signature""#),
    (
        "razorpay",
        r#"header = "X-Razorpay-Signature"
id_header = "X-Razorpay-Event-Id""#,
    ),
    (
        "vercel",
        r#"header = "x-vercel-signature"
algorithm = "sha1"
id_header = "x-vercel-id""#,
    ),
    ("asana", r#"header = "X-Hook-Signature""#),
    (
        "xero",
        r#"header = "x-xero-signature"
encoding = "base64""#,
    ),
    ("dropbox", r#"header = "X-Dropbox-Signature""#),
    (
        "notion",
        r#"header = "X-Notion-Signature"
prefix = "sha256=""#,
    ),
    ("coinbase", r#"header = "X-CC-Webhook-Signature""#),
    (
        "segment",
        r#"header = "X-Signature"
algorithm = "sha1""#,
    ),
    (
        "calendly",
        r#"header = "Calendly-Webhook-Signature"
format = "params"
signature_param = "v1"
timestamp_param = "t"
signed = "{timestamp}.{body}""#,
    ),
    (
        "mux",
        r#"header = "Mux-Signature"
format = "params"
signature_param = "v1"
timestamp_param = "t"
signed = "{timestamp}.{body}""#,
    ),
    (
        "workos",
        r#"header = "WorkOS-Signature"
format = "params"
signature_param = "v1"
timestamp_param = "t"
timestamp_unit = "ms"
signed = "{timestamp}.{body}""#,
    ),
    (
        "hubspot",
        r#"header = "X-HubSpot-Signature-v3"
encoding = "base64"
timestamp_header = "X-HubSpot-Request-Timestamp"
timestamp_unit = "ms"
signed = "{method}{url}{body}{timestamp}""#,
    ),
];

fn generic_scheme(provider: &str) -> Option<Scheme> {
    let (_, text) = GENERIC.iter().find(|(p, _)| *p == provider)?;
    Some(generic::scheme(&text.parse::<toml::Table>().unwrap()).unwrap())
}

/// The vector's URL split the way a route sees it: `public_url` (no query)
/// and the path and query received.
fn split_url(url: &str) -> (String, String) {
    let (base, query) = match url.split_once('?') {
        Some((b, q)) => (b.to_string(), Some(q)),
        None => (url.to_string(), None),
    };
    let after_scheme = base.find("://").unwrap() + 3;
    let path = base[after_scheme..]
        .find('/')
        .map_or("/".to_string(), |i| base[after_scheme + i..].to_string());
    let pq = match query {
        Some(q) => format!("{path}?{q}"),
        None => path,
    };
    (base, pq)
}

/// Runs one vector through `scheme`; `Ok` means it verified.
fn run(v: &Value, scheme: Scheme) -> Result<(), Rejection> {
    let secret = v["secret"]
        .as_str()
        .or_else(|| v["public_key"].as_str())
        .unwrap();
    let tolerance = v["tolerance_s"].as_u64().map(Duration::from_secs);
    let verifier = Verifier::new(scheme, &[secret.as_bytes()], tolerance).unwrap();
    let mut headers = HeaderMap::new();
    for (k, val) in v["headers"].as_object().unwrap() {
        headers.append(
            HeaderName::from_bytes(k.as_bytes()).unwrap(),
            HeaderValue::from_str(val.as_str().unwrap()).unwrap(),
        );
    }
    let (public_url, path_and_query) = match v["url"].as_str() {
        Some(url) => {
            let (b, pq) = split_url(url);
            (Some(b), pq)
        }
        None => (None, "/webhook".to_string()),
    };
    let now = match v["now_ms"].as_u64() {
        Some(ms) => UNIX_EPOCH + Duration::from_millis(ms),
        None => UNIX_EPOCH + Duration::from_secs(v["now"].as_u64().unwrap_or(1_700_000_000)),
    };
    let input = Input {
        method: &Method::POST,
        path_and_query: &path_and_query,
        headers: &headers,
        body: Payload::Whole(v["body"].as_str().unwrap().as_bytes()),
        public_url: public_url.as_deref(),
    };
    verifier.verify(&input, now).map(|_| ())
}

fn expect_valid(v: &Value) -> bool {
    match v["expect"].as_str().unwrap() {
        "valid" => true,
        "invalid" => false,
        other => panic!("{}: unknown expectation {other}", v["id"]),
    }
}

#[test]
fn every_official_vector_gives_its_expected_result() {
    let all = vectors();
    assert!(all.len() >= 65, "a fixture lost vectors");
    for v in &all {
        let id = v["id"].as_str().unwrap();
        assert!(
            v["source"].as_str().is_some_and(|s| !s.is_empty()),
            "{id} has no source"
        );
        let provider = v["scheme"].as_str().unwrap();
        let scheme = providers::builtin(provider)
            .unwrap_or_else(|| panic!("{id}: no built-in provider {provider}"));
        let result = run(v, scheme);
        assert_eq!(
            result.is_ok(),
            expect_valid(v),
            "{id}: {result:?} ({})",
            v["reason"]
        );
    }
}

#[test]
fn tolerance_in_each_vector_is_the_providers_default() {
    // The vectors state the window their provider's own library applies; the
    // built-in default must be that window (checked by running them with none).
    for v in vectors() {
        let Some(tol) = v["tolerance_s"].as_u64() else {
            continue;
        };
        let scheme = providers::builtin(v["scheme"].as_str().unwrap()).unwrap();
        assert_eq!(
            scheme.default_tolerance,
            Some(Duration::from_secs(tol)),
            "{}",
            v["id"]
        );
    }
}

#[test]
fn every_builtin_hmac_provider_written_generically_verifies_the_same_vectors() {
    let mut checked = 0;
    for v in vectors() {
        let provider = v["scheme"].as_str().unwrap();
        let id = v["id"].as_str().unwrap();
        // Ed25519, P-256 and Twilio are not an HMAC over a template; RFC 3339
        // timestamps, numbered headers and Shopify's unprefixed "Events"
        // header are not expressible generically.
        let events = v["headers"]
            .as_object()
            .unwrap()
            .contains_key("shopify-hmac-sha256");
        if NOT_GENERIC.contains(&provider) || v["public_key"].is_string() || events {
            continue;
        }
        let scheme = generic_scheme(provider)
            .unwrap_or_else(|| panic!("{id}: no generic form of {provider}"));
        let result = run(&v, scheme);
        assert_eq!(result.is_ok(), expect_valid(&v), "{id}: {result:?}");
        checked += 1;
    }
    assert!(checked >= 50, "only {checked} vectors checked");
}

#[test]
fn generic_forms_are_the_builtin_schemes() {
    // The strongest statement that there is one engine: the generic form
    // parses to the same `Scheme` value as the built-in (header names are
    // case-insensitive, so they compare equal once parsed). Only the default
    // tolerance (Paddle 5 s, Linear 60 s) and Svix's extra `v1a` entries differ.
    for (provider, _) in GENERIC {
        let mut generic = generic_scheme(provider).unwrap();
        let builtin = providers::builtin(provider).unwrap();
        generic.default_tolerance = builtin.default_tolerance;
        // Shopify's "Events" header is an addition of the built-in only.
        generic
            .more_signature_headers
            .clone_from(&builtin.more_signature_headers);
        if let (
            SignatureFormat::Versioned { asymmetric, .. },
            SignatureFormat::Versioned {
                asymmetric: builtin_asym,
                ..
            },
        ) = (&mut generic.format, &builtin.format)
        {
            asymmetric.clone_from(builtin_asym);
        }
        assert_eq!(generic, builtin, "{provider}");
    }
    // And every built-in except the non-HMAC ones has a generic form here.
    for name in providers::NAMES {
        if !NOT_GENERIC.contains(name) {
            assert!(generic_scheme(name).is_some(), "{name} has no generic form");
        }
    }
}

/// A valid vector's timestamp in milliseconds: from a `…timestamp` header
/// (epoch seconds or milliseconds as the vector's clock is, or RFC 3339), a
/// `t=`/`ts=` pair, Linear's `webhookTimestamp` or Mailgun's `signature.timestamp`
/// in the body.
fn timestamp_ms(v: &Value) -> u64 {
    let scale = if v["now_ms"].is_u64() { 1 } else { 1000 };
    let number = |t: &str| t.parse::<u64>().ok().map(|n| n * scale);
    v["headers"]
        .as_object()
        .unwrap()
        .iter()
        .find_map(|(k, val)| {
            let val = val.as_str().unwrap();
            if k.to_ascii_lowercase().ends_with("timestamp") {
                return number(val).or_else(|| {
                    let at = humantime::parse_rfc3339(val).ok()?;
                    Some(at.duration_since(UNIX_EPOCH).ok()?.as_secs() * 1000)
                });
            }
            val.split([';', ','])
                .map(str::trim)
                .find_map(|p| p.strip_prefix("ts=").or_else(|| p.strip_prefix("t=")))
                .and_then(number)
        })
        .or_else(|| {
            let body: Value = serde_json::from_str(v["body"].as_str()?).ok()?;
            let mailgun = body["signature"]["timestamp"].as_str();
            body["webhookTimestamp"]
                .as_u64()
                .or_else(|| mailgun?.parse::<u64>().ok().map(|n| n * 1000))
        })
        .unwrap_or_else(|| panic!("{}: no timestamp found", v["id"]))
}

#[test]
fn vectors_fail_one_second_past_the_window() {
    // Guards against a test that passes because no clock check ran at all.
    let mut checked = 0;
    for v in vectors() {
        let (Some(tol), true) = (v["tolerance_s"].as_u64(), expect_valid(&v)) else {
            continue;
        };
        let ts = timestamp_ms(&v);
        let scheme = providers::builtin(v["scheme"].as_str().unwrap()).unwrap();
        for late_ms in [ts + tol * 1000 + 1000, ts.saturating_sub(tol * 1000 + 1000)] {
            let mut late = v.clone();
            late.as_object_mut().unwrap().remove("now");
            late["now_ms"] = Value::from(late_ms);
            assert_eq!(
                run(&late, scheme.clone()),
                Err(Rejection::StaleTimestamp),
                "{} at {late_ms} ms (timestamp {ts} ms, tolerance {tol} s)",
                v["id"]
            );
        }
        checked += 1;
    }
    assert!(checked >= 30, "only {checked} vectors checked");
}

#[test]
fn clock_is_not_read() {
    // A vector from 2021 verifies today: verification takes `now`, never the clock.
    let v = vectors().into_iter().next().unwrap();
    assert!(SystemTime::now() > UNIX_EPOCH + Duration::from_secs(1_700_000_000));
    assert!(run(&v, providers::builtin("standard-webhooks").unwrap()).is_ok());
}
