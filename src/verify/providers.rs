//! The built-in provider catalog: each provider is a `Scheme` value for the one engine in `verify.rs`.

use std::time::Duration;

use http::HeaderName;

use super::{
    Algorithm, Encoding, IdSpec, KeyEncoding, Part, Scheme, SignatureFormat, TimestampSource,
    TimestampSpec, TimestampUnit,
};

/// Every built-in provider name, as written in `provider = "…"`.
pub const NAMES: &[&str] = &["svix", "standard-webhooks", "levanta", "leaflink"];

/// The scheme of a built-in provider, or `None` for an unknown name.
pub fn builtin(name: &str) -> Option<Scheme> {
    Some(match name {
        "svix" => standard_webhooks("svix-"),
        "standard-webhooks" => standard_webhooks("webhook-"),
        // Levanta: hex HMAC-SHA256 of the raw body; no id, no timestamp.
        "levanta" => Scheme {
            signature_header: HeaderName::from_static("x-levanta-hmac-sha256"),
            format: SignatureFormat::Plain {
                prefix: String::new(),
            },
            algorithm: Algorithm::Sha256,
            encoding: Encoding::Hex,
            signed: vec![Part::Body],
            id: None,
            timestamp: None,
            default_tolerance: None,
            key_encoding: KeyEncoding::Utf8,
        },
        // LeafLink: base64 HMAC-SHA256 of the raw body (Ruby's Base64.encode64
        // appends a newline, which header parsing trims).
        "leaflink" => Scheme {
            signature_header: HeaderName::from_static("ll-signature"),
            format: SignatureFormat::Plain {
                prefix: String::new(),
            },
            algorithm: Algorithm::Sha256,
            encoding: Encoding::Base64,
            signed: vec![Part::Body],
            id: None,
            timestamp: None,
            default_tolerance: None,
            key_encoding: KeyEncoding::Utf8,
        },
        _ => return None,
    })
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
        format: SignatureFormat::Versioned {
            version: "v1".into(),
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
            builtin(name).unwrap().validate().unwrap();
        }
        assert!(builtin("nope").is_none());
    }
}
