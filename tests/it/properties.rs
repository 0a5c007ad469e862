//! Property tests: for random bodies and secrets, what a provider signs verifies, and flipping any
//! single bit of the body, the signature header or the timestamp makes verification fail.
//!
//! Twilio (signs decoded form parameters, not bytes), GitLab (a token signs nothing) and Linear
//! (the timestamp lives in a JSON body) are covered by their own tests in tests/it/providers.rs, and
//! Mailgun (its signature lives in the body, which it does not sign) by src/verify's unit tests.
#![allow(clippy::unwrap_used)]

use std::time::{Duration, UNIX_EPOCH};

use hookgate::verify::{
    providers, Algorithm, Encoding, Input, KeyEncoding, Message, Payload, SignatureFormat,
    TimestampSource, Verifier,
};
use http::{HeaderMap, HeaderName, HeaderValue, Method};
use proptest::prelude::*;

const SKIP: &[&str] = &["twilio", "gitlab", "linear", "mailgun"];

fn names() -> Vec<&'static str> {
    providers::NAMES
        .iter()
        .copied()
        .filter(|n| !SKIP.contains(n))
        .collect()
}

struct Signed {
    verifier: Verifier,
    headers: Vec<(HeaderName, String)>,
}

fn sign(provider: &str, secret: &[u8], body: &[u8], ts: u64) -> Signed {
    let scheme = providers::builtin(provider).unwrap();
    let secret = match scheme.key_encoding {
        // Discord and SendGrid verify with a key pair derived from the random secret.
        _ if matches!(scheme.algorithm, Algorithm::Ed25519 | Algorithm::EcdsaP256) => {
            providers::example_secret(provider, secret)
                .unwrap()
                .into_bytes()
        }
        KeyEncoding::Whsec => format!(
            "whsec_{}",
            hookgate::verify::encode(Encoding::Base64, secret)
        )
        .into_bytes(),
        _ => secret.to_vec(),
    };
    let verifier = Verifier::new(scheme, &[&secret], None).unwrap();
    let headers = verifier
        .try_sign(
            0,
            &Message {
                body,
                id: "msg_prop",
                timestamp: UNIX_EPOCH + Duration::from_secs(ts),
                method: &Method::POST,
                path_and_query: "/hook",
                public_url: Some("https://hooks.example.com/hook"),
            },
        )
        .unwrap();
    Signed { verifier, headers }
}

fn verifies(s: &Signed, headers: &[(HeaderName, String)], body: &[u8], ts: u64) -> bool {
    let mut map = HeaderMap::new();
    for (k, v) in headers {
        let Ok(v) = HeaderValue::from_str(v) else {
            return false; // not sendable at all
        };
        map.insert(k.clone(), v);
    }
    let input = Input {
        method: &Method::POST,
        path_and_query: "/hook",
        headers: &map,
        body: Payload::Whole(body),
        public_url: Some("https://hooks.example.com/hook"),
    };
    s.verifier
        .verify(&input, UNIX_EPOCH + Duration::from_secs(ts))
        .is_ok()
}

fn flip(text: &str, bit: usize) -> Option<String> {
    let mut bytes = text.as_bytes().to_vec();
    let i = (bit / 8) % bytes.len();
    bytes[i] ^= 1 << (bit % 8);
    String::from_utf8(bytes).ok()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn signed_verifies_and_any_body_bit_flip_fails(
        body in proptest::collection::vec(any::<u8>(), 1..300),
        secret in proptest::collection::vec(any::<u8>(), 1..48),
        ts in 1_000_000_000u64..4_000_000_000,
        bit in any::<usize>(),
    ) {
        for provider in names() {
            let s = sign(provider, &secret, &body, ts);
            prop_assert!(verifies(&s, &s.headers, &body, ts), "{} did not verify", provider);
            let mut tampered = body.clone();
            let i = (bit / 8) % tampered.len();
            tampered[i] ^= 1 << (bit % 8);
            prop_assert!(!verifies(&s, &s.headers, &tampered, ts), "{} body bit {}", provider, bit);
        }
    }

    #[test]
    fn any_bit_flip_of_the_signature_header_fails(
        body in proptest::collection::vec(any::<u8>(), 0..100),
        secret in proptest::collection::vec(any::<u8>(), 1..48),
        ts in 1_000_000_000u64..4_000_000_000,
        bit in any::<usize>(),
    ) {
        for provider in names() {
            let scheme = providers::builtin(provider).unwrap();
            let s = sign(provider, &secret, &body, ts);
            let headers: Vec<_> = s.headers.iter().map(|(k, v)| {
                if *k == scheme.signature_header {
                    (k.clone(), flip(v, bit).unwrap_or_else(|| v.clone()))
                } else {
                    (k.clone(), v.clone())
                }
            }).collect();
            let original = &s.headers.iter().find(|(k, _)| *k == scheme.signature_header).unwrap().1;
            let flipped = &headers.iter().find(|(k, _)| *k == scheme.signature_header).unwrap().1;
            // Hex (and the prefixes before it) is case-insensitive: a case flip
            // there is the same signature, not a forgery.
            let case_only = flipped.eq_ignore_ascii_case(original) && scheme.encoding == Encoding::Hex;
            // So is a plain format's prefix (`sha256=` before Typeform's base64).
            let prefix = match &scheme.format {
                SignatureFormat::Plain { prefix } => prefix.len(),
                _ => 0,
            };
            let case_only = case_only
                || (flipped.eq_ignore_ascii_case(original) && flipped[prefix..] == original[prefix..]);
            if flipped == original || case_only {
                continue;
            }
            prop_assert!(!verifies(&s, &headers, &body, ts), "{} {:?} -> {:?}", provider, original, flipped);
        }
    }

    #[test]
    fn any_bit_flip_of_the_timestamp_header_fails(
        body in proptest::collection::vec(any::<u8>(), 0..100),
        secret in proptest::collection::vec(any::<u8>(), 1..48),
        ts in 1_000_000_000u64..4_000_000_000,
        bit in any::<usize>(),
    ) {
        for provider in names() {
            let scheme = providers::builtin(provider).unwrap();
            let Some(TimestampSource::Header(name)) = scheme.timestamp.map(|t| t.source) else {
                continue;
            };
            let s = sign(provider, &secret, &body, ts);
            let headers: Vec<_> = s.headers.iter().map(|(k, v)| {
                if *k == name {
                    (k.clone(), flip(v, bit).unwrap_or_else(|| "x".into()))
                } else {
                    (k.clone(), v.clone())
                }
            }).collect();
            prop_assert!(!verifies(&s, &headers, &body, ts), "{} ts bit {}", provider, bit);
        }
    }
}
