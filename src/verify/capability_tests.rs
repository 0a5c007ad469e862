//! Unit tests of the engine capabilities added with the catalog: RFC 3339 windows, Ed25519 with
//! hex keys, ECDSA P-256, Twilio's announced algorithm, further signature headers.
#![allow(clippy::unwrap_used)]

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use http::{HeaderMap, HeaderName, Method};

use super::*;

const BODY: &[u8] = br#"{"event":"hello"}"#;
/// 2023-11-14T22:13:20Z.
const T: u64 = 1_700_000_000;

fn at(secs: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(secs)
}

fn verifier(name: &str, secret: &str) -> Verifier {
    Verifier::new(
        providers::builtin(name).unwrap(),
        &[secret.as_bytes()],
        None,
    )
    .unwrap()
}

fn signer(name: &str) -> Verifier {
    verifier(
        name,
        &providers::example_secret(name, b"capability").unwrap(),
    )
}

fn signed(v: &Verifier, body: &[u8], when: SystemTime) -> HeaderMap {
    let m = Message {
        body,
        id: "msg_1",
        timestamp: when,
        method: &Method::POST,
        path_and_query: "/hook",
        public_url: Some("https://hooks.example.com/hook"),
    };
    v.try_sign(0, &m)
        .unwrap()
        .into_iter()
        .map(|(k, val)| (k, val.parse().unwrap()))
        .collect()
}

fn check(v: &Verifier, headers: &HeaderMap, body: &[u8], now: u64) -> Result<Verified, Rejection> {
    v.verify(
        &Input {
            method: &Method::POST,
            path_and_query: "/hook",
            headers,
            body: Payload::Whole(body),
            public_url: Some("https://hooks.example.com/hook"),
        },
        at(now),
    )
}

fn set(h: &HeaderMap, name: &str, value: &str) -> HeaderMap {
    let mut h = h.clone();
    h.insert(
        HeaderName::from_bytes(name.as_bytes()).unwrap(),
        value.parse().unwrap(),
    );
    h
}

#[test]
fn rfc3339_window_is_inclusive_at_both_ends_in_whole_seconds() {
    let v = signer("twitch");
    let h = signed(&v, BODY, at(T));
    assert_eq!(
        h["twitch-eventsub-message-timestamp"],
        "2023-11-14T22:13:20Z"
    );
    for (now, ok) in [
        (T, true),
        (T + 600, true),
        (T - 600, true),
        (T + 601, false),
        (T - 601, false),
    ] {
        let r = check(&v, &h, BODY, now);
        assert_eq!(r.is_ok(), ok, "now = T{:+}", now as i64 - T as i64);
        if !ok {
            assert_eq!(r.unwrap_err(), Rejection::StaleTimestamp);
        }
    }
}

#[test]
fn rfc3339_fraction_is_dropped_not_rounded() {
    // Twitch sends nanoseconds. Signed as received; compared in whole seconds.
    let v = signer("zendesk");
    let text = "2023-11-14T22:13:20.999999999Z";
    let mut mac = <hmac::Hmac<sha2::Sha256> as hmac::Mac>::new_from_slice(
        providers::example_secret("zendesk", b"capability")
            .unwrap()
            .as_bytes(),
    )
    .unwrap();
    hmac::Mac::update(&mut mac, text.as_bytes());
    hmac::Mac::update(&mut mac, BODY);
    let sig =
        base64::engine::general_purpose::STANDARD.encode(hmac::Mac::finalize(mac).into_bytes());
    let mut h = HeaderMap::new();
    h.insert("x-zendesk-webhook-signature", sig.parse().unwrap());
    h.insert(
        "x-zendesk-webhook-signature-timestamp",
        text.parse().unwrap(),
    );
    assert!(check(&v, &h, BODY, T + 300).is_ok());
    assert_eq!(
        check(&v, &h, BODY, T - 301).unwrap_err(),
        Rejection::StaleTimestamp
    );
    assert_eq!(
        check(&v, &h, BODY, T + 301).unwrap_err(),
        Rejection::StaleTimestamp
    );
}

#[test]
fn rfc3339_text_is_parsed_strictly() {
    let v = signer("twitch");
    let h = signed(&v, BODY, at(T));
    for bad in [
        "2023-11-14 22:13:20Z",
        "2023-11-14t22:13:20Z",
        // Only UTC: `Z`, or `+00:00`, which names the same instant.
        "2023-11-14T23:13:20+01:00",
        "2023-11-14T22:13:20-00:00",
        "2023-11-14T22:13:20",
        "2023-02-30T22:13:20Z",
        "2023-11-14T22:13:20.1234567890Z",
        "1700000000",
        "1969-12-31T23:59:59Z",
        " 2023-11-14T22:13:20Z x",
    ] {
        let r = check(
            &v,
            &set(&h, "twitch-eventsub-message-timestamp", bad),
            BODY,
            T,
        );
        assert_eq!(r.unwrap_err(), Rejection::StaleTimestamp, "{bad:?}");
    }
    let mut missing = h.clone();
    missing.remove("twitch-eventsub-message-timestamp");
    assert_eq!(
        check(&v, &missing, BODY, T).unwrap_err(),
        Rejection::MissingSignature
    );
}

#[test]
fn twitch_dedups_on_its_signed_message_id() {
    let v = signer("twitch");
    let a = check(&v, &signed(&v, BODY, at(T)), BODY, T).unwrap();
    let b = check(&v, &signed(&v, BODY, at(T + 1)), BODY, T).unwrap();
    assert_eq!(
        a.replay_id(),
        b.replay_id(),
        "same message id, resent later"
    );
    assert_eq!(a.message_id(), Some("msg_1"));
}

#[test]
fn ed25519_hex_key_rejects_wrong_keys_and_malformed_signatures() {
    let v = signer("discord");
    let h = signed(&v, BODY, at(T));
    let sig = h["x-signature-ed25519"].to_str().unwrap().to_string();
    assert_eq!(sig.len(), 128);
    // The public half of the signing key verifies alone, and cannot sign.
    let secret = providers::example_secret("discord", b"capability").unwrap();
    let public = verifier("discord", &secret[64..]);
    assert!(check(&public, &h, BODY, T).is_ok());
    assert!(public
        .try_sign(
            0,
            &Message {
                body: BODY,
                id: "",
                timestamp: at(T),
                method: &Method::POST,
                path_and_query: "/",
                public_url: None,
            }
        )
        .is_err());
    let other = verifier(
        "discord",
        &providers::example_secret("discord", b"other").unwrap()[64..],
    );
    assert_eq!(
        check(&other, &h, BODY, T).unwrap_err(),
        Rejection::InvalidSignature
    );
    let flipped = format!("{}{}", if &sig[..1] == "0" { "1" } else { "0" }, &sig[1..]);
    for bad in [
        flipped.as_str(),
        &sig[..126],
        &sig[..127],
        "zz",
        &format!("{sig}00"),
    ] {
        let r = check(&v, &set(&h, "x-signature-ed25519", bad), BODY, T);
        assert_eq!(r.unwrap_err(), Rejection::InvalidSignature, "{bad:?}");
    }
    // The timestamp is signed.
    let r = check(
        &v,
        &set(&h, "x-signature-timestamp", &(T + 1).to_string()),
        BODY,
        T,
    );
    assert_eq!(r.unwrap_err(), Rejection::InvalidSignature);
}

#[test]
fn ed25519_hex_keys_of_the_wrong_size_or_a_mismatched_pair_are_refused() {
    let scheme = providers::builtin("discord").unwrap();
    let secret = providers::example_secret("discord", b"capability").unwrap();
    let other = providers::example_secret("discord", b"other").unwrap();
    let mismatched = format!("{}{}", &secret[..64], &other[64..]);
    for bad in [&secret[..62], "not hex", &mismatched, &secret[..66]] {
        assert!(
            Verifier::new(scheme.clone(), &[bad.as_bytes()], None).is_err(),
            "{bad:?}"
        );
    }
}

#[test]
fn p256_rejects_wrong_keys_and_malformed_signatures() {
    use p256::pkcs8::EncodePublicKey;
    let v = signer("sendgrid");
    let h = signed(&v, BODY, at(T));
    let header = "x-twilio-email-event-webhook-signature";
    let sig = h[header].to_str().unwrap().to_string();
    let public_of = |seed: &[u8]| {
        let secret = providers::example_secret("sendgrid", seed).unwrap();
        let der = base64::engine::general_purpose::STANDARD
            .decode(secret)
            .unwrap();
        let key = <p256::ecdsa::SigningKey as p256::pkcs8::DecodePrivateKey>::from_pkcs8_der(&der)
            .unwrap();
        let spki = key.verifying_key().to_public_key_der().unwrap();
        base64::engine::general_purpose::STANDARD.encode(spki.as_bytes())
    };
    assert!(check(
        &verifier("sendgrid", &public_of(b"capability")),
        &h,
        BODY,
        T
    )
    .is_ok());
    assert_eq!(
        check(&verifier("sendgrid", &public_of(b"other")), &h, BODY, T).unwrap_err(),
        Rejection::InvalidSignature
    );
    let der = base64::engine::general_purpose::STANDARD
        .decode(&sig)
        .unwrap();
    let mut trailing = der.clone();
    trailing.push(0);
    let mut flipped = der.clone();
    let last = flipped.len() - 1;
    flipped[last] ^= 1;
    for bad in [
        base64::engine::general_purpose::STANDARD.encode(&trailing),
        base64::engine::general_purpose::STANDARD.encode(&flipped),
        base64::engine::general_purpose::STANDARD.encode(&der[..der.len() - 1]),
        base64::engine::general_purpose::STANDARD.encode([0u8; 64]),
        "!!".to_string(),
    ] {
        let r = check(&v, &set(&h, header, &bad), BODY, T);
        assert_eq!(r.unwrap_err(), Rejection::InvalidSignature, "{bad:?}");
    }
    assert!(Verifier::new(
        providers::builtin("sendgrid").unwrap(),
        &[b"bm90IGEga2V5".as_slice()],
        None
    )
    .is_err());
}

#[test]
fn p256_high_s_twin_of_a_signature_is_the_same_delivery() {
    // ECDSA is malleable: (r, n - s) verifies too. A replay in that form must
    // not slip past deduplication.
    let v = signer("sendgrid");
    let h = signed(&v, BODY, at(T));
    let header = "x-twilio-email-event-webhook-signature";
    let der = base64::engine::general_purpose::STANDARD
        .decode(h[header].to_str().unwrap())
        .unwrap();
    let sig = p256::ecdsa::Signature::from_der(&der).unwrap();
    let (r, s) = sig.split_scalars();
    let twin = p256::ecdsa::Signature::from_scalars(r, -*s).unwrap();
    assert_ne!(twin.to_bytes(), sig.to_bytes());
    let twin_b64 = base64::engine::general_purpose::STANDARD.encode(twin.to_der().as_bytes());
    let a = check(&v, &h, BODY, T).unwrap();
    let b = check(&v, &set(&h, header, &twin_b64), BODY, T).unwrap();
    assert_eq!(a.replay_id(), b.replay_id());
}

#[test]
fn twilio_announced_algorithm_picks_the_mac() {
    use hmac::Mac as _;
    let v = verifier("twilio", "shared-key-secret");
    let url = "https://hooks.example.com/hook";
    let body = b"Body=hello&From=%2B15005550006";
    let mac = |sha256: bool| {
        let data = format!("{url}Bodyhello") + "From+15005550006";
        let bytes: Vec<u8> = if sha256 {
            let mut m = hmac::Hmac::<sha2::Sha256>::new_from_slice(b"shared-key-secret").unwrap();
            m.update(data.as_bytes());
            m.finalize().into_bytes().to_vec()
        } else {
            let mut m = hmac::Hmac::<sha1::Sha1>::new_from_slice(b"shared-key-secret").unwrap();
            m.update(data.as_bytes());
            m.finalize().into_bytes().to_vec()
        };
        base64::engine::general_purpose::STANDARD.encode(bytes)
    };
    let settings = "x-twilio-webhooks-signature-settings";
    let base = set(&HeaderMap::new(), "x-twilio-signature", &mac(true));
    let sha1 = set(&HeaderMap::new(), "x-twilio-signature", &mac(false));
    let cases = [
        (
            set(
                &base,
                settings,
                "key=webhooks_sharedkey_1,algorithm=HMAC_SHA256",
            ),
            Ok(()),
        ),
        (set(&base, settings, " algorithm = hmac_sha256 "), Ok(())),
        (base.clone(), Err(Rejection::InvalidSignature)),
        (
            set(&base, settings, "algorithm=HMAC_SHA1"),
            Err(Rejection::InvalidSignature),
        ),
        (
            set(&base, settings, "algorithm=HMAC_SHA512"),
            Err(Rejection::InvalidSignature),
        ),
        (sha1.clone(), Ok(())),
        (set(&sha1, settings, "key=k,algorithm="), Ok(())),
        (set(&sha1, settings, "algorithm=HMAC_SHA1"), Ok(())),
        (
            set(&sha1, settings, "algorithm=HMAC_SHA256"),
            Err(Rejection::InvalidSignature),
        ),
    ];
    for (i, (h, want)) in cases.into_iter().enumerate() {
        assert_eq!(check(&v, &h, body, T).map(|_| ()), want, "case {i}");
    }
}

#[test]
fn shopify_events_headers_without_the_x_prefix_verify() {
    let v = signer("shopify");
    let h = signed(&v, BODY, at(T));
    let sig = h["x-shopify-hmac-sha256"].to_str().unwrap().to_string();
    let events = set(&HeaderMap::new(), "shopify-hmac-sha256", &sig);
    assert!(check(&v, &events, BODY, T).is_ok());
    let forged = set(&events, "shopify-hmac-sha256", "AAAA");
    assert_eq!(
        check(&v, &forged, BODY, T).unwrap_err(),
        Rejection::InvalidSignature
    );
    assert_eq!(
        check(&v, &HeaderMap::new(), BODY, T).unwrap_err(),
        Rejection::MissingSignature
    );
}

#[test]
fn docusign_any_numbered_signature_may_match() {
    let v = signer("docusign");
    let h = signed(&v, BODY, at(T));
    let sig = h["x-docusign-signature-1"].to_str().unwrap().to_string();
    let mut rolled = set(&HeaderMap::new(), "x-docusign-signature-1", "AAAA");
    rolled = set(&rolled, "x-docusign-signature-2", "bm90IGl0");
    rolled = set(&rolled, "x-docusign-signature-37", &sig);
    assert!(check(&v, &rolled, BODY, T).is_ok());
    let beyond = set(&HeaderMap::new(), "x-docusign-signature-101", &sig);
    assert_eq!(
        check(&v, &beyond, BODY, T).unwrap_err(),
        Rejection::MissingSignature
    );
}

fn mailgun_body(v: &Verifier, token: &str, when: u64, event: &[u8]) -> Vec<u8> {
    v.sign_message(
        0,
        &Message {
            body: event,
            id: token,
            timestamp: at(when),
            method: &Method::POST,
            path_and_query: "/hook",
            public_url: None,
        },
    )
    .unwrap()
    .body
}

#[test]
fn mailgun_signature_in_the_body_verifies_its_token_and_timestamp() {
    let v = signer("mailgun");
    let none = HeaderMap::new();
    let body = mailgun_body(&v, "tok_1", T, BODY);
    let text = String::from_utf8(body.clone()).unwrap();
    assert!(
        text.starts_with(r#"{"signature":{"timestamp":"1700000000","token":"tok_1","signature":""#)
    );
    assert!(text.ends_with(r#","event-data":{"event":"hello"}}"#));
    let ok = check(&v, &none, &body, T).unwrap();
    assert_eq!(ok.message_id(), Some("tok_1"));
    // The token is signed and unique: the replay key, whatever the event says.
    let other_event = text.replace("hello", "Hello");
    let same = check(&v, &none, other_event.as_bytes(), T).unwrap();
    assert_eq!(same.replay_id(), ok.replay_id(), "the event is not signed");
    // Token and timestamp are signed; the window applies.
    let sig = text.split(r#""signature":""#).nth(1).unwrap();
    let sig = &sig[..64];
    let forged_token = text.replace("tok_1", "tok_2");
    assert_eq!(
        check(&v, &none, forged_token.as_bytes(), T).unwrap_err(),
        Rejection::InvalidSignature
    );
    assert_eq!(
        check(&v, &none, &body, T + 301).unwrap_err(),
        Rejection::StaleTimestamp
    );
    let wrong_key = verifier("mailgun", "another-signing-key");
    assert_eq!(
        check(&wrong_key, &none, &body, T).unwrap_err(),
        Rejection::InvalidSignature
    );
    let bad_hex = text.replace(sig, &"zz".repeat(32));
    assert_eq!(
        check(&v, &none, bad_hex.as_bytes(), T).unwrap_err(),
        Rejection::InvalidSignature
    );
}

#[test]
fn mailgun_body_without_a_well_formed_signature_object_is_unsigned() {
    let v = signer("mailgun");
    let none = HeaderMap::new();
    for body in [
        &b"not json"[..],
        b"[]",
        br#"{"event-data":{}}"#,
        br#"{"signature":"abc"}"#,
        br#"{"signature":{"timestamp":"1700000000","token":"t"}}"#,
        br#"{"signature":{"timestamp":1700000000,"token":"t","signature":"00"}}"#,
        br#"{"signature":{"timestamp":"","token":"t","signature":"00"}}"#,
    ] {
        assert_eq!(
            check(&v, &none, body, T).unwrap_err(),
            Rejection::MissingSignature,
            "{}",
            String::from_utf8_lossy(body)
        );
    }
    // A header named like a signature is not where Mailgun puts it.
    let h = set(&none, "x-mailgun-signature", "00");
    assert_eq!(
        check(&v, &h, BODY, T).unwrap_err(),
        Rejection::MissingSignature
    );
    assert!(v
        .try_sign(
            0,
            &Message {
                body: BODY,
                id: "t",
                timestamp: at(T),
                method: &Method::POST,
                path_and_query: "/",
                public_url: None,
            }
        )
        .is_err());
}
