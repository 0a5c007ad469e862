//! The catalog, continued: providers added with issue 15 (plain HMACs over the body, Stripe-like
//! `t=…,v1=…` schemes, RFC 3339 timestamps, HubSpot's signed URL, Ed25519 and ECDSA keys).

use std::time::Duration;

use http::HeaderName;

use super::{over_body, t_v1, timestamp_header, unsigned_id};
use crate::verify::{
    Algorithm, Encoding, IdSpec, KeyEncoding, Part, Scheme, SignatureFormat, TimestampSource,
    TimestampSpec, TimestampUnit,
};

/// How many numbered `X-DocuSign-Signature-N` headers are read: one per
/// active HMAC key of the Connect configuration (DocuSign sends one for each).
const DOCUSIGN_SIGNATURES: usize = 100;

// The catalog: one table row per provider, long by nature.
#[allow(clippy::too_many_lines)]
/// The scheme of a provider of this part of the catalog, or `None`.
pub(super) fn builtin(name: &str) -> Option<Scheme> {
    use Algorithm::{Sha1, Sha256};
    use Encoding::{Base64, Hex};
    Some(match name {
        // Meta (Facebook, Instagram, WhatsApp): GitHub's header, with the app secret.
        "meta" => over_body("x-hub-signature-256", "sha256=", Sha256, Hex),
        "bitbucket" => Scheme {
            id: unsigned_id("x-request-uuid"),
            ..over_body("x-hub-signature", "sha256=", Sha256, Hex)
        },
        // Sentry also sends `Sentry-Hook-Timestamp`, but does not sign it.
        "sentry" => Scheme {
            id: unsigned_id("request-id"),
            ..over_body("sentry-hook-signature", "", Sha256, Hex)
        },
        "typeform" => over_body("typeform-signature", "sha256=", Sha256, Base64),
        // PagerDuty: `v1=<hex>[,v1=<hex>]`, one per active secret.
        "pagerduty" => Scheme {
            format: SignatureFormat::Params {
                separator: ',',
                key: "v1".into(),
            },
            id: unsigned_id("x-webhook-id"),
            ..over_body("x-pagerduty-signature", "", Sha256, Hex)
        },
        "lemonsqueezy" => over_body("x-signature", "", Sha256, Hex),
        "razorpay" => Scheme {
            id: unsigned_id("x-razorpay-event-id"),
            ..over_body("x-razorpay-signature", "", Sha256, Hex)
        },
        "vercel" => Scheme {
            id: unsigned_id("x-vercel-id"),
            ..over_body("x-vercel-signature", "", Sha1, Hex)
        },
        "asana" => over_body("x-hook-signature", "", Sha256, Hex),
        // DocuSign Connect: base64, one `X-DocuSign-Signature-N` per active
        // key; any may match.
        "docusign" => Scheme {
            more_signature_headers: (2..=DOCUSIGN_SIGNATURES)
                .map(|n| {
                    // A fixed lowercase ASCII prefix and a decimal number.
                    HeaderName::from_bytes(format!("x-docusign-signature-{n}").as_bytes())
                        .unwrap_or_else(|_| unreachable!())
                })
                .collect(),
            ..over_body("x-docusign-signature-1", "", Sha256, Base64)
        },
        "xero" => over_body("x-xero-signature", "", Sha256, Base64),
        "dropbox" => over_body("x-dropbox-signature", "", Sha256, Hex),
        "notion" => over_body("x-notion-signature", "sha256=", Sha256, Hex),
        // Coinbase Commerce.
        "coinbase" => over_body("x-cc-webhook-signature", "", Sha256, Hex),
        "segment" => over_body("x-signature", "", Sha1, Hex),
        // Calendly's documentation rejects deliveries older than 3 minutes.
        "calendly" => t_v1("calendly-webhook-signature", TimestampUnit::Seconds, 180),
        // @mux/mux-node's default tolerance is 300 s.
        "mux" => t_v1("mux-signature", TimestampUnit::Seconds, 300),
        // WorkOS: `t=<ms>, v1=<hex>`; @workos-inc/node's default is 180 s.
        "workos" => t_v1("workos-signature", TimestampUnit::Millis, 180),
        // HubSpot v3: base64 over method + URI (route `public_url` + query) +
        // body + timestamp (ms), within 5 minutes.
        "hubspot" => Scheme {
            signed: vec![Part::Method, Part::Url, Part::Body, Part::Timestamp],
            timestamp: timestamp_header("x-hubspot-request-timestamp", TimestampUnit::Millis),
            default_tolerance: Some(Duration::from_secs(300)),
            ..over_body("x-hubspot-signature-v3", "", Sha256, Base64)
        },
        // Twitch EventSub: `sha256=` + hex over message id + timestamp
        // (RFC 3339) + body; Twitch says to reject messages over 10 minutes old.
        "twitch" => Scheme {
            signed: vec![Part::Id, Part::Timestamp, Part::Body],
            id: Some(IdSpec {
                header: HeaderName::from_static("twitch-eventsub-message-id"),
                signed: true,
            }),
            timestamp: timestamp_header(
                "twitch-eventsub-message-timestamp",
                TimestampUnit::Rfc3339,
            ),
            default_tolerance: Some(Duration::from_secs(600)),
            ..over_body("twitch-eventsub-message-signature", "sha256=", Sha256, Hex)
        },
        // Zendesk: base64 over timestamp (RFC 3339) + body.
        "zendesk" => Scheme {
            signed: vec![Part::Timestamp, Part::Body],
            id: unsigned_id("x-zendesk-webhook-invocation-id"),
            timestamp: timestamp_header(
                "x-zendesk-webhook-signature-timestamp",
                TimestampUnit::Rfc3339,
            ),
            default_tolerance: Some(Duration::from_secs(300)),
            ..over_body("x-zendesk-webhook-signature", "", Sha256, Base64)
        },
        // Discord interactions: hex Ed25519 over timestamp + body, by the
        // application's public key (hex).
        "discord" => Scheme {
            signed: vec![Part::Timestamp, Part::Body],
            timestamp: timestamp_header("x-signature-timestamp", TimestampUnit::Seconds),
            default_tolerance: Some(Duration::from_secs(300)),
            key_encoding: KeyEncoding::Hex,
            ..over_body("x-signature-ed25519", "", Algorithm::Ed25519, Hex)
        },
        // SendGrid Event Webhook: base64 DER ECDSA P-256 over timestamp +
        // body, by the verification key (base64 DER public key).
        "sendgrid" => Scheme {
            signed: vec![Part::Timestamp, Part::Body],
            timestamp: timestamp_header(
                "x-twilio-email-event-webhook-timestamp",
                TimestampUnit::Seconds,
            ),
            default_tolerance: Some(Duration::from_secs(300)),
            key_encoding: KeyEncoding::Base64,
            ..over_body(
                "x-twilio-email-event-webhook-signature",
                "",
                Algorithm::EcdsaP256,
                Base64,
            )
        },
        // Mailgun: hex HMAC-SHA256 of the body's `signature.timestamp` +
        // `signature.token`, with the HTTP webhook signing key. The token is
        // a signed per-delivery id; the event itself is not signed.
        "mailgun" => Scheme {
            format: SignatureFormat::JsonBody {
                object: "signature".into(),
            },
            signed: vec![Part::Timestamp, Part::Id],
            timestamp: Some(TimestampSpec {
                source: TimestampSource::Param("timestamp".into()),
                unit: TimestampUnit::Seconds,
            }),
            default_tolerance: Some(Duration::from_secs(300)),
            // A name for messages only: no header is read.
            ..over_body("x-mailgun-signature", "", Sha256, Hex)
        },
        _ => return None,
    })
}
