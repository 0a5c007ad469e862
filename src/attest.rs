//! `Hookgate-Attestation`: what hookgate tells the application about a request it verified, and
//! the removal of every inbound `Hookgate-*` header, so that no client can forge one.
//!
//! With `[upstream] attestation_key`, a verified request is forwarded with
//!
//! ```text
//! Hookgate-Attestation: t=<unix seconds>,route=<route name>,id=<replay id>,v1=<mac>
//! ```
//!
//! - `t`: when hookgate forwarded it, decimal Unix seconds;
//! - `route`: the route's `name` (printable ASCII without `,`, checked at load);
//! - `id`: the 32-byte replay id hookgate deduplicated on, as 64 lowercase hex
//!   digits (the same value for every delivery of one message);
//! - `v1`: lowercase hex HMAC-SHA256, keyed with the bytes of the
//!   `attestation_key` secret as written (not decoded), over the UTF-8 text
//!   `<t>.<route>.<id>.<sha256(body)>`, where `<sha256(body)>` is the lowercase
//!   hex SHA-256 of the body bytes forwarded.
//!
//! An application checks `v1` in constant time and that `t` is recent. A request
//! forwarded unverified (a `mode = "shadow"` route) never carries one.

use std::fmt;
use std::time::{SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use hmac::{Hmac, Mac};
use http::header::{HeaderMap, HeaderName, HeaderValue};
use sha2::{Digest, Sha256};

/// The header hookgate adds for the application.
pub static ATTESTATION: HeaderName = HeaderName::from_static("hookgate-attestation");

/// The prefix of every header only hookgate may set on a forwarded request.
const RESERVED_PREFIX: &str = "hookgate-";

/// The `attestation_key`, prepared for HMAC-SHA256. Its `Debug` never shows the key.
#[derive(Clone)]
pub struct AttestationKey(Hmac<Sha256>);

impl AttestationKey {
    pub fn new(key: &[u8]) -> Self {
        // HMAC takes a key of any length (a long one is hashed first).
        AttestationKey(
            <Hmac<Sha256> as Mac>::new_from_slice(key)
                .unwrap_or_else(|_| unreachable!("HMAC accepts any key length")),
        )
    }
}

impl fmt::Debug for AttestationKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("AttestationKey(<redacted>)")
    }
}

/// Prepares the headers of a request about to be forwarded: removes every
/// inbound `Hookgate-*` header, then, for a verified request (`replay_id`
/// given) on a gateway with a `key`, inserts `Hookgate-Attestation` for
/// `route`, that replay id, the `body` (in its blocks) and `now`.
pub fn attest(
    headers: &mut HeaderMap,
    key: Option<&AttestationKey>,
    route: &str,
    replay_id: Option<&[u8; 32]>,
    body: &[Bytes],
    now: SystemTime,
) {
    strip_reserved(headers);
    let (Some(key), Some(id)) = (key, replay_id) else {
        return;
    };
    // Route names are checked at load to be printable ASCII, so this holds;
    // were it not, the request goes without an attestation, which an
    // application requiring one refuses (never a forged or partial one).
    match HeaderValue::from_str(&value(key, route, id, body, now)) {
        Ok(v) => {
            headers.insert(ATTESTATION.clone(), v);
        }
        Err(_) => tracing::error!(route, "route name cannot be sent in Hookgate-Attestation"),
    }
}

/// The `Hookgate-Attestation` value for these inputs (see the module doc).
pub fn value(
    key: &AttestationKey,
    route: &str,
    replay_id: &[u8; 32],
    body: &[Bytes],
    now: SystemTime,
) -> String {
    let t = now
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
        .to_string();
    let id = hex::encode(replay_id);
    let digest = body
        .iter()
        .fold(Sha256::new(), |h, block| h.chain_update(block))
        .finalize();
    let mut mac = key.0.clone();
    for part in [
        t.as_bytes(),
        b".",
        route.as_bytes(),
        b".",
        id.as_bytes(),
        b".",
    ] {
        mac.update(part);
    }
    mac.update(hex::encode(digest).as_bytes());
    let v1 = hex::encode(mac.finalize().into_bytes());
    format!("t={t},route={route},id={id},v1={v1}")
}

/// Whether `name` may appear in the attestation as is: printable ASCII, no
/// `,` (which separates its fields) and no space.
pub fn is_attestable_route_name(name: &str) -> bool {
    !name.is_empty() && name.bytes().all(|b| b.is_ascii_graphic() && b != b',')
}

/// Removes every header named `Hookgate-*` (any case: names are lowercase in a `HeaderMap`).
fn strip_reserved(headers: &mut HeaderMap) {
    // Collected first: a map cannot lose entries while it is iterated.
    let reserved: Vec<HeaderName> = headers
        .keys()
        .filter(|name| name.as_str().starts_with(RESERVED_PREFIX))
        .cloned()
        .collect();
    for name in reserved {
        headers.remove(name);
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use std::time::Duration;

    use super::*;

    fn at(secs: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(secs)
    }

    #[test]
    fn the_value_matches_an_independent_computation() {
        let key = AttestationKey::new(b"attestation-key-0123456789abcdef");
        let id = [0xabu8; 32];
        let body = [Bytes::from_static(b"{\"a\":"), Bytes::from_static(b"1}")];
        let got = value(&key, "levers", &id, &body, at(1_796_083_200));

        let body_hex = hex::encode(Sha256::digest(b"{\"a\":1}"));
        let id_hex = "ab".repeat(32);
        let signed = format!("1796083200.levers.{id_hex}.{body_hex}");
        let mut mac =
            <Hmac<Sha256> as Mac>::new_from_slice(b"attestation-key-0123456789abcdef").unwrap();
        mac.update(signed.as_bytes());
        let v1 = hex::encode(mac.finalize().into_bytes());
        assert_eq!(
            got,
            format!("t=1796083200,route=levers,id={id_hex},v1={v1}")
        );
    }

    #[test]
    fn inbound_hookgate_headers_are_removed_with_or_without_a_key() {
        let key = AttestationKey::new(b"k");
        for key in [None, Some(&key)] {
            let mut h = HeaderMap::new();
            h.insert(
                "Hookgate-Attestation",
                "t=1,route=x,id=00,v1=forged".parse().unwrap(),
            );
            h.append("hookgate-attestation", "second".parse().unwrap());
            h.insert("HOOKGATE-Verified", "yes".parse().unwrap());
            h.insert("x-hookgate-note", "kept".parse().unwrap());
            h.insert("content-type", "application/json".parse().unwrap());
            // Unverified (shadow): nothing hookgate-* is left.
            attest(&mut h, key, "r", None, &[], at(1));
            assert!(
                h.keys().all(|n| !n.as_str().starts_with("hookgate-")),
                "{h:?}"
            );
            assert_eq!(h["x-hookgate-note"], "kept");
            assert_eq!(h["content-type"], "application/json");
        }
    }

    #[test]
    fn only_a_verified_request_with_a_key_is_attested_and_only_once() {
        let key = AttestationKey::new(b"k");
        let id = [7u8; 32];
        let body = [Bytes::from_static(b"x")];
        let mut h = HeaderMap::new();
        h.insert("hookgate-attestation", "forged".parse().unwrap());
        attest(&mut h, Some(&key), "r", Some(&id), &body, at(5));
        let all: Vec<_> = h.get_all(&ATTESTATION).iter().collect();
        assert_eq!(all, [value(&key, "r", &id, &body, at(5)).as_str()]);

        let mut h = HeaderMap::new();
        attest(&mut h, None, "r", Some(&id), &body, at(5));
        assert!(h.is_empty());
    }

    #[test]
    fn route_names_must_be_printable_without_commas() {
        assert!(is_attestable_route_name("levers"));
        assert!(is_attestable_route_name("/webhooks/levers"));
        for bad in ["", "a,b", "a b", "é", "a\tb"] {
            assert!(!is_attestable_route_name(bad), "{bad:?}");
        }
    }
}
