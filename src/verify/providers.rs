//! The built-in provider catalog: each provider is a `Scheme` value for the one engine in `verify.rs`.
//!
//! Sources for each definition are in `tests/fixtures/official.json` (the
//! providers' own documentation and SDK tests); the README's provider table
//! is the user-facing summary of this file.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use http::HeaderName;
use sha2::{Digest, Sha256};

mod more;

use super::{
    Algorithm, Encoding, IdSpec, KeyEncoding, Part, Scheme, SignatureFormat, TimestampSource,
    TimestampSpec, TimestampUnit,
};

/// Every built-in provider name, as written in `provider = "…"`.
pub const NAMES: &[&str] = &[
    "svix",
    "standard-webhooks",
    "levanta",
    "leaflink",
    "github",
    "stripe",
    "shopify",
    "slack",
    "paddle",
    "zoom",
    "linear",
    "square",
    "twilio",
    "gitlab",
    "intercom",
    "clerk",
    "resend",
    "brex",
    "meta",
    "bitbucket",
    "sentry",
    "typeform",
    "pagerduty",
    "lemonsqueezy",
    "razorpay",
    "vercel",
    "asana",
    "docusign",
    "xero",
    "dropbox",
    "notion",
    "coinbase",
    "segment",
    "calendly",
    "mux",
    "workos",
    "hubspot",
    "twitch",
    "zendesk",
    "discord",
    "sendgrid",
    "mailgun",
];

// The catalog: one table row per provider, long by nature.
#[allow(clippy::too_many_lines)]
/// The scheme of a built-in provider, or `None` for an unknown name.
pub fn builtin(name: &str) -> Option<Scheme> {
    Some(match name {
        "svix" => standard_webhooks("svix-"),
        "standard-webhooks" => standard_webhooks("webhook-"),
        // Levanta: hex HMAC-SHA256 of the raw body; no id, no timestamp.
        "levanta" => over_body(
            "x-levanta-hmac-sha256",
            "",
            Algorithm::Sha256,
            Encoding::Hex,
        ),
        // LeafLink: base64 HMAC-SHA256 of the raw body (Ruby's Base64.encode64
        // appends a newline, which header parsing trims).
        "leaflink" => over_body("ll-signature", "", Algorithm::Sha256, Encoding::Base64),
        // GitHub: `sha256=` + hex over the body. The delivery GUID is not signed.
        "github" => Scheme {
            id: unsigned_id("x-github-delivery"),
            ..over_body(
                "x-hub-signature-256",
                "sha256=",
                Algorithm::Sha256,
                Encoding::Hex,
            )
        },
        // Stripe: `t=…,v1=…[,v1=…][,v0=…]` over `{t}.{body}`; the key is the
        // whole `whsec_…` string as bytes (unlike Svix); only `v1` counts.
        "stripe" => t_v1("stripe-signature", TimestampUnit::Seconds, 300),
        // Shopify: base64 over the body. The webhook id (not the event id,
        // which repeats across subscriptions) is not signed. "Events"
        // deliveries name the headers without `X-` (`shopify-hmac-sha256`).
        "shopify" => Scheme {
            more_signature_headers: vec![HeaderName::from_static("shopify-hmac-sha256")],
            id: unsigned_id("x-shopify-webhook-id"),
            ..over_body(
                "x-shopify-hmac-sha256",
                "",
                Algorithm::Sha256,
                Encoding::Base64,
            )
        },
        // Slack and Zoom: `v0=` + hex over `v0:{ts}:{body}`.
        "slack" => v0_colon("x-slack-signature", "x-slack-request-timestamp"),
        "zoom" => v0_colon("x-zm-signature", "x-zm-request-timestamp"),
        // Paddle Billing: `ts=…;h1=…[;h1=…]` over `{ts}:{body}`; the key is
        // the whole `pdl_ntfset_…` secret; the SDK's window is 5 s.
        "paddle" => Scheme {
            signature_header: HeaderName::from_static("paddle-signature"),
            more_signature_headers: Vec::new(),
            format: SignatureFormat::Params {
                separator: ';',
                key: "h1".into(),
            },
            algorithm: Algorithm::Sha256,
            encoding: Encoding::Hex,
            signed: vec![Part::Timestamp, Part::Text(":".into()), Part::Body],
            id: None,
            timestamp: Some(TimestampSpec {
                source: TimestampSource::Param("ts".into()),
                unit: TimestampUnit::Seconds,
            }),
            default_tolerance: Some(Duration::from_secs(5)),
            key_encoding: KeyEncoding::Utf8,
        },
        // Linear: hex over the body; the signed body's `webhookTimestamp`
        // (milliseconds) must be within a minute.
        "linear" => Scheme {
            id: unsigned_id("linear-delivery"),
            timestamp: Some(TimestampSpec {
                source: TimestampSource::JsonBody("webhookTimestamp".into()),
                unit: TimestampUnit::Millis,
            }),
            default_tolerance: Some(Duration::from_secs(60)),
            ..over_body("linear-signature", "", Algorithm::Sha256, Encoding::Hex)
        },
        // Square: base64 over the notification URL (route `public_url`) + body.
        "square" => Scheme {
            signed: vec![Part::Url, Part::Body],
            ..over_body(
                "x-square-hmacsha256-signature",
                "",
                Algorithm::Sha256,
                Encoding::Base64,
            )
        },
        // Twilio: base64 HMAC over the URL + sorted form parameters (or the
        // URL alone, with `bodySHA256` in its query, for JSON bodies): SHA-1
        // with the Auth Token, or SHA-256 with a SharedKey secret when
        // `X-Twilio-Webhooks-Signature-Settings` says `algorithm=HMAC_SHA256`.
        "twilio" => Scheme {
            signed: vec![Part::UrlAnyPort, Part::FormParams],
            id: unsigned_id("i-twilio-idempotency-token"),
            ..over_body(
                "x-twilio-signature",
                "",
                Algorithm::TwilioAnnounced,
                Encoding::Base64,
            )
        },
        // GitLab: the secret token itself in `X-Gitlab-Token`.
        "gitlab" => Scheme {
            signed: Vec::new(),
            id: unsigned_id("x-gitlab-event-uuid"),
            ..over_body("x-gitlab-token", "", Algorithm::Token, Encoding::Hex)
        },
        // Intercom: `sha1=` + hex HMAC-SHA1 over the body with the client secret.
        "intercom" => over_body("x-hub-signature", "sha1=", Algorithm::Sha1, Encoding::Hex),
        // Svix senders, under the names users look for: Clerk and Resend send
        // `svix-*` headers, Brex the Standard Webhooks `webhook-*` ones.
        "clerk" | "resend" => standard_webhooks("svix-"),
        "brex" => standard_webhooks("webhook-"),
        other => return more::builtin(other),
    })
}

/// A small, realistic body for `provider` (the demo, `hookgate sign` examples
/// and tests): a form for Twilio, JSON with the signed `webhookTimestamp` for
/// Linear, a JSON event otherwise. Every one contains the word `hello`.
pub fn example_body(provider: &str, now: SystemTime) -> Vec<u8> {
    let since = now.duration_since(UNIX_EPOCH).unwrap_or_default();
    match provider {
        "twilio" => b"AccountSid=AC0123456789abcdef&Body=hello+from+hookgate&From=%2B15005550006&MessageSid=SM0123456789abcdef&To=%2B15005550001".to_vec(),
        "linear" => format!(
            r#"{{"action":"create","type":"Issue","data":{{"id":"2174add1","title":"hello from hookgate"}},"webhookTimestamp":{}}}"#,
            since.as_millis()
        )
        .into_bytes(),
        _ => format!(
            r#"{{"type":"demo.event","created":{},"data":{{"message":"hello from hookgate"}}}}"#,
            since.as_secs()
        )
        .into_bytes(),
    }
}

/// A secret of the form `provider` hands out, derived from `seed`, that can
/// also sign (for the demo, `hookgate sign` examples and tests): a `whsec_`
/// secret for Svix senders, a hex Ed25519 seed + public key for Discord, a
/// base64 PKCS#8 P-256 private key for SendGrid, text otherwise.
pub fn example_secret(provider: &str, seed: &[u8]) -> Option<String> {
    use p256::pkcs8::EncodePrivateKey;
    let scheme = builtin(provider)?;
    let raw: [u8; 32] = Sha256::new()
        .chain_update(seed)
        .chain_update(provider.as_bytes())
        .finalize()
        .into();
    Some(match (scheme.algorithm, scheme.key_encoding) {
        (Algorithm::Ed25519, _) => {
            let signing = ed25519_dalek::SigningKey::from_bytes(&raw);
            hex::encode(signing.to_keypair_bytes())
        }
        (Algorithm::EcdsaP256, _) => {
            // A SHA-256 output is a valid P-256 scalar but with negligible probability.
            let signing = p256::ecdsa::SigningKey::from_slice(&raw).ok()?;
            let der = signing.to_pkcs8_der().ok()?;
            super::encode(Encoding::Base64, der.as_bytes())
        }
        (_, KeyEncoding::Whsec) => format!("whsec_{}", super::encode(Encoding::Base64, &raw[..24])),
        (_, KeyEncoding::Hex) => hex::encode(raw),
        (_, KeyEncoding::Base64) => super::encode(Encoding::Base64, &raw),
        (_, KeyEncoding::Utf8) => format!("demo-{}", hex::encode(&raw[..16])),
    })
}

/// An HMAC over the raw body alone, in one header with an optional prefix.
fn over_body(
    header: &'static str,
    prefix: &str,
    algorithm: Algorithm,
    encoding: Encoding,
) -> Scheme {
    Scheme {
        signature_header: HeaderName::from_static(header),
        more_signature_headers: Vec::new(),
        format: SignatureFormat::Plain {
            prefix: prefix.into(),
        },
        algorithm,
        encoding,
        signed: vec![Part::Body],
        id: None,
        timestamp: None,
        default_tolerance: None,
        key_encoding: KeyEncoding::Utf8,
    }
}

fn unsigned_id(header: &'static str) -> Option<IdSpec> {
    Some(IdSpec {
        header: HeaderName::from_static(header),
        signed: false,
    })
}

/// Stripe's shape, which Calendly, Mux and WorkOS copied: `t=…,v1=…[,v1=…]`
/// over `{t}.{body}`, hex, the key the secret's bytes; only `v1` counts.
fn t_v1(header: &'static str, unit: TimestampUnit, tolerance_secs: u64) -> Scheme {
    Scheme {
        format: SignatureFormat::Params {
            separator: ',',
            key: "v1".into(),
        },
        signed: vec![Part::Timestamp, Part::Text(".".into()), Part::Body],
        timestamp: Some(TimestampSpec {
            source: TimestampSource::Param("t".into()),
            unit,
        }),
        default_tolerance: Some(Duration::from_secs(tolerance_secs)),
        ..over_body(header, "", Algorithm::Sha256, Encoding::Hex)
    }
}

/// A timestamp header, signed by the template, with its window.
fn timestamp_header(name: &'static str, unit: TimestampUnit) -> Option<TimestampSpec> {
    Some(TimestampSpec {
        source: TimestampSource::Header(HeaderName::from_static(name)),
        unit,
    })
}

/// Slack's scheme, which Zoom copied: `v0=` + hex over `v0:{ts}:{body}`.
fn v0_colon(signature: &'static str, timestamp: &'static str) -> Scheme {
    Scheme {
        signed: vec![
            Part::Text("v0:".into()),
            Part::Timestamp,
            Part::Text(":".into()),
            Part::Body,
        ],
        timestamp: Some(TimestampSpec {
            source: TimestampSource::Header(HeaderName::from_static(timestamp)),
            unit: TimestampUnit::Seconds,
        }),
        default_tolerance: Some(Duration::from_secs(300)),
        ..over_body(signature, "v0=", Algorithm::Sha256, Encoding::Hex)
    }
}

/// Svix and Standard Webhooks: the same scheme under two header prefixes.
fn standard_webhooks(prefix: &str) -> Scheme {
    let name = |suffix: &str| {
        HeaderName::from_bytes(format!("{prefix}{suffix}").as_bytes())
            // Both prefixes and suffixes are fixed lowercase ASCII tokens.
            .unwrap_or_else(|_| unreachable!())
    };
    Scheme {
        signature_header: name("signature"),
        more_signature_headers: Vec::new(),
        format: SignatureFormat::Versioned {
            version: "v1".into(),
            asymmetric: Some("v1a".into()),
        },
        algorithm: Algorithm::Sha256,
        encoding: Encoding::Base64,
        signed: vec![
            Part::Id,
            Part::Text(".".into()),
            Part::Timestamp,
            Part::Text(".".into()),
            Part::Body,
        ],
        id: Some(IdSpec {
            header: name("id"),
            signed: true,
        }),
        timestamp: Some(TimestampSpec {
            source: TimestampSource::Header(name("timestamp")),
            unit: TimestampUnit::Seconds,
        }),
        default_tolerance: Some(Duration::from_secs(300)),
        key_encoding: KeyEncoding::Whsec,
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn every_builtin_is_a_valid_scheme() {
        for name in NAMES {
            builtin(name)
                .unwrap()
                .validate()
                .unwrap_or_else(|e| panic!("{name}: {e}"));
        }
        assert!(builtin("nope").is_none());
    }
}
