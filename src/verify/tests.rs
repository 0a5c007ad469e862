//! Unit tests of the engine: blocks vs whole bodies, entry parsing, windows, round trips,
//! Twilio's bodySHA256, tokens, Linear's body timestamp, Ed25519 keys, replay ids, and
//! secret validity windows.
#![allow(clippy::unwrap_used)]

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use hmac::{Hmac, Mac};
use http::{HeaderMap, Method};
use sha2::{Digest, Sha256};

use super::*;

fn at(secs: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(secs)
}

fn svix(secret: &str) -> Verifier {
    Verifier::new(
        providers::builtin("svix").unwrap(),
        &[secret.as_bytes()],
        None,
    )
    .unwrap()
}

fn input<'a>(headers: &'a HeaderMap, body: &'a [u8]) -> Input<'a> {
    Input {
        method: &Method::POST,
        path_and_query: "/",
        headers,
        body: Payload::Whole(body),
        public_url: None,
    }
}

#[test]
fn a_body_in_blocks_verifies_as_the_same_body_whole() {
    // hookgate verifies a large body in the blocks it was read into, never
    // joined: every provider must see the same bytes either way.
    let body = br#"{"type":"test","webhookTimestamp":1700000000000,"x":"aaaaaaaaaaaaaaaa"}"#;
    let at = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
    for name in providers::NAMES {
        let scheme = providers::builtin(name).unwrap();
        let v = Verifier::new(scheme, &[&secret_for(name)], None).unwrap();
        let msg = Message {
            body,
            id: "msg_1",
            timestamp: at,
            method: &Method::POST,
            path_and_query: "/hook?a=1",
            public_url: Some("https://example.com/hook"),
        };
        let signed = v.sign_message(0, &msg).unwrap();
        let mut headers = HeaderMap::new();
        for (k, val) in signed.headers {
            headers.insert(k, val.parse().unwrap());
        }
        // Mailgun wraps the event with its signature; others send it as is.
        let body = signed.body.as_slice();
        let blocks: Vec<Bytes> = body.chunks(7).map(Bytes::copy_from_slice).collect();
        let whole = Input {
            method: &Method::POST,
            path_and_query: "/hook?a=1",
            headers: &headers,
            body: Payload::Whole(body),
            public_url: Some("https://example.com/hook"),
        };
        let split = Input {
            body: Payload::Blocks(&blocks),
            ..whole
        };
        let whole_ok = v.verify(&whole, at).map(|ok| *ok.replay_id());
        assert!(whole_ok.is_ok(), "{name}: {whole_ok:?}");
        assert_eq!(
            whole_ok,
            v.verify(&split, at).map(|ok| *ok.replay_id()),
            "{name}"
        );
    }
}

fn svix_headers(sig: &str, ts: &str) -> HeaderMap {
    let mut h = HeaderMap::new();
    h.insert("svix-id", "msg_p5jXN8AQM9LWM0D4loKWxJek".parse().unwrap());
    h.insert("svix-timestamp", ts.parse().unwrap());
    h.insert("svix-signature", sig.parse().unwrap());
    h
}

fn msg(body: &[u8], timestamp: SystemTime) -> Message<'_> {
    Message {
        body,
        id: "msg_1",
        timestamp,
        method: &Method::POST,
        path_and_query: "/",
        public_url: None,
    }
}

const BODY: &[u8] = br#"{"test": 2432232314}"#;
const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
const SIG: &str = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=";

#[test]
fn malformed_entry_does_not_hide_a_later_valid_one() {
    let h = svix_headers(&format!("v1,!!!notbase64 v1 v1a,zz {SIG}"), "1614265330");
    let v = svix(SECRET)
        .verify(&input(&h, BODY), at(1614265330))
        .unwrap();
    assert_eq!(v.secret_index, 0);
}

#[test]
fn whsec_key_without_padding_or_prefix_verifies() {
    let h = svix_headers(SIG, "1614265330");
    for secret in ["MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", SECRET] {
        assert!(svix(secret)
            .verify(&input(&h, BODY), at(1614265330))
            .is_ok());
    }
}

#[test]
fn timestamp_must_be_digits_only() {
    for ts in [
        "+1614265330",
        "1614265330.0",
        " ",
        "-5",
        "16142653300000000000000",
    ] {
        let h = svix_headers(SIG, ts);
        let r = svix(SECRET).verify(&input(&h, BODY), at(1614265330));
        assert!(r.is_err(), "{ts:?} accepted");
    }
}

#[test]
fn window_is_symmetric_and_inclusive() {
    let h = svix_headers(SIG, "1614265330");
    let v = svix(SECRET);
    assert!(v.verify(&input(&h, BODY), at(1614265330 + 300)).is_ok());
    assert!(v.verify(&input(&h, BODY), at(1614265330 - 300)).is_ok());
    assert_eq!(
        v.verify(&input(&h, BODY), at(1614265330 + 301))
            .unwrap_err(),
        Rejection::StaleTimestamp
    );
    assert_eq!(
        v.verify(&input(&h, BODY), at(1614265330 - 301))
            .unwrap_err(),
        Rejection::StaleTimestamp
    );
}

fn with_url<'a>(i: Input<'a>, url: Option<&'a str>) -> Input<'a> {
    Input {
        public_url: url,
        ..i
    }
}

/// A secret that can sign for `name`.
fn secret_for(name: &str) -> Vec<u8> {
    providers::example_secret(name, b"unit tests")
        .unwrap()
        .into_bytes()
}

#[test]
fn sign_then_verify_round_trips_for_every_builtin() {
    let now = at(1_700_000_000);
    for name in providers::NAMES {
        let scheme = providers::builtin(name).unwrap();
        let v = Verifier::new(scheme, &[&secret_for(name)], None).unwrap();
        let body = providers::example_body(name, now);
        let url = Some("https://hooks.example.com/hook");
        let m = Message {
            public_url: url,
            ..msg(&body, now)
        };
        let signed = v.sign_message(0, &m).unwrap();
        let body = signed.body;
        let headers: HeaderMap = signed
            .headers
            .into_iter()
            .map(|(k, val)| (k, val.parse().unwrap()))
            .collect();
        let ok = v.verify(&with_url(input(&headers, &body), url), now);
        assert!(ok.is_ok(), "{name}: {ok:?}");
        // Flip one bit of a letter (h -> H), keeping JSON and forms well formed.
        let mut tampered = body.clone();
        let at_h = body.windows(5).position(|w| w == b"hello").unwrap();
        tampered[at_h] ^= 0x20;
        let r = v.verify(&with_url(input(&headers, &tampered), url), now);
        if ["gitlab", "mailgun"].contains(name) {
            // A shared token signs nothing, and Mailgun signs its token and
            // timestamp only: their bodies are not protected.
            assert!(r.is_ok(), "{name}");
        } else {
            assert_eq!(r.unwrap_err(), Rejection::InvalidSignature, "{name}");
        }
    }
}

#[test]
fn unsigned_body_in_a_non_form_twilio_request_verifies_only_with_its_hash() {
    let v = Verifier::new(providers::builtin("twilio").unwrap(), &[b"12345"], None).unwrap();
    let body = br#"{"property": "value", "boolean": true}"#;
    let hash = hex::encode(Sha256::digest(body));
    let pq = format!("/myapp.php?foo=1&bar=2&bodySHA256={hash}");
    let m = Message {
        path_and_query: &pq,
        public_url: Some("https://mycompany.com/myapp.php"),
        ..msg(body, at(0))
    };
    let headers: HeaderMap = v
        .try_sign(0, &m)
        .unwrap()
        .into_iter()
        .map(|(k, val)| (k, val.parse().unwrap()))
        .collect();
    let inp = |body| Input {
        path_and_query: &pq,
        ..with_url(
            input(&headers, body),
            Some("https://mycompany.com/myapp.php"),
        )
    };
    assert!(v.verify(&inp(body), at(0)).is_ok());
    assert_eq!(
        v.verify(&inp(br#"{"property": "value", "boolean": false}"#), at(0))
            .unwrap_err(),
        Rejection::InvalidSignature
    );
}

#[test]
fn gitlab_token_is_compared_whole() {
    let v = Verifier::new(providers::builtin("gitlab").unwrap(), &[b"tok-en"], None).unwrap();
    for (token, ok) in [
        ("tok-en", true),
        ("tok-e", false),
        ("tok-enn", false),
        ("TOK-EN", false),
    ] {
        let mut h = HeaderMap::new();
        h.insert("x-gitlab-token", token.parse().unwrap());
        assert_eq!(v.verify(&input(&h, b"{}"), at(0)).is_ok(), ok, "{token}");
    }
}

#[test]
fn gitlab_replay_id_rests_on_the_body_not_the_constant_token_nor_the_unsigned_uuid() {
    let v = Verifier::new(providers::builtin("gitlab").unwrap(), &[b"t"], None).unwrap();
    let ids: Vec<[u8; 32]> = [("a", "{}"), ("a", "{ }"), ("b", "{}")]
        .iter()
        .map(|(uuid, body)| {
            let mut h = HeaderMap::new();
            h.insert("x-gitlab-token", "t".parse().unwrap());
            h.insert("x-gitlab-event-uuid", uuid.parse().unwrap());
            *v.verify(&input(&h, body.as_bytes()), at(0))
                .unwrap()
                .replay_id()
        })
        .collect();
    assert_ne!(ids[0], ids[1], "different bodies are different deliveries");
    assert_eq!(
        ids[0], ids[2],
        "a rewritten event uuid must not bypass dedup"
    );
}

#[test]
fn linear_timestamp_comes_from_the_signed_body_in_millis() {
    let v = Verifier::new(providers::builtin("linear").unwrap(), &[b"k"], None).unwrap();
    let now = at(1_700_000_000);
    let body = providers::example_body("linear", now);
    let headers: HeaderMap = v
        .try_sign(0, &msg(&body, now))
        .unwrap()
        .into_iter()
        .map(|(k, val)| (k, val.parse().unwrap()))
        .collect();
    let inp = input(&headers, &body);
    assert!(v.verify(&inp, now + Duration::from_secs(60)).is_ok());
    assert_eq!(
        v.verify(&inp, now + Duration::from_millis(60_001))
            .unwrap_err(),
        Rejection::StaleTimestamp
    );
    // A genuinely signed body without the field has no timestamp.
    let no_ts = br#"{"action":"create"}"#;
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(b"k").unwrap();
    mac.update(no_ts);
    let mut h = HeaderMap::new();
    h.insert(
        "linear-signature",
        hex::encode(mac.finalize().into_bytes()).parse().unwrap(),
    );
    assert_eq!(
        v.verify(&input(&h, no_ts), now).unwrap_err(),
        Rejection::MissingSignature
    );
    // An unsigned body is refused before it is parsed.
    assert_eq!(
        v.verify(&input(&headers, no_ts), now).unwrap_err(),
        Rejection::InvalidSignature
    );
}

#[test]
fn ed25519_signing_key_signs_and_public_key_verifies() {
    let sk = "whsk_6Xb/dCcHpPea21PS1N9VY/NZW723CEc77N4rJCubMbfVKIDij2HKpMKkioLlX0dRqSKJp4AJ6p9lMicMFs6Kvg==";
    let pk = "whpk_1SiA4o9hyqTCpIqC5V9HUakiiaeACeqfZTInDBbOir4=";
    let scheme = providers::builtin("standard-webhooks").unwrap();
    let signer = Verifier::new(scheme.clone(), &[sk.as_bytes()], None).unwrap();
    let verifier =
        Verifier::new(scheme.clone(), &[SECRET.as_bytes(), pk.as_bytes()], None).unwrap();
    let headers: HeaderMap = signer
        .try_sign(0, &msg(BODY, at(1_614_265_330)))
        .unwrap()
        .into_iter()
        .map(|(k, val)| (k, val.parse().unwrap()))
        .collect();
    assert!(headers["webhook-signature"]
        .to_str()
        .unwrap()
        .starts_with("v1a,"));
    let v = verifier
        .verify(&input(&headers, BODY), at(1_614_265_330))
        .unwrap();
    assert_eq!(v.secret_index(), 1);
    // A public key cannot sign.
    let public_only = Verifier::new(scheme.clone(), &[pk.as_bytes()], None).unwrap();
    assert!(public_only.try_sign(0, &msg(BODY, at(0))).is_err());
    // An Ed25519 key on a whsec scheme without v1a entries is refused.
    let hmac_only = Scheme {
        format: SignatureFormat::Versioned {
            version: "v1".into(),
            asymmetric: None,
        },
        ..scheme
    };
    assert!(Verifier::new(hmac_only, &[pk.as_bytes()], None).is_err());
}

#[test]
fn unsigned_ids_dedup_on_the_signature_not_the_header() {
    let v = Verifier::new(providers::builtin("levanta").unwrap(), &[b"k"], None).unwrap();
    let signed = v.try_sign(0, &msg(b"{}", at(0))).unwrap();
    let mut h: HeaderMap = signed
        .into_iter()
        .map(|(k, val)| (k, val.parse().unwrap()))
        .collect();
    let a = v.verify(&input(&h, b"{}"), at(0)).unwrap();
    // The same signature in upper-case hex is the same delivery.
    let upper = h["x-levanta-hmac-sha256"].to_str().unwrap().to_uppercase();
    h.insert("x-levanta-hmac-sha256", upper.parse().unwrap());
    let b = v.verify(&input(&h, b"{}"), at(0)).unwrap();
    assert_eq!(a.replay_id, b.replay_id);
}

/// `msg` signed with key `k` of `v`, as a request: headers and body.
fn signed_request(v: &Verifier, k: usize, m: &Message<'_>) -> (HeaderMap, Vec<u8>) {
    let signed = v.sign_message(k, m).unwrap();
    let mut headers = HeaderMap::new();
    for (name, val) in signed.headers {
        headers.append(name, val.parse().unwrap());
    }
    (headers, signed.body)
}

#[test]
fn a_secret_verifies_from_not_before_through_not_after_inclusive() {
    // Rotation: the old secret ends at T, the new one starts at T - 1 h.
    let t = at(1_796_688_000);
    let start = t - Duration::from_secs(3600);
    let ns = Duration::from_nanos(1);
    let v = Verifier::new(
        providers::builtin("github").unwrap(),
        &[b"old-secret", b"new-secret"],
        None,
    )
    .unwrap()
    .with_validity([
        Validity::new(None, Some(t)).unwrap(),
        Validity::new(Some(start), None).unwrap(),
    ]);
    let body = br#"{"zen":"Design for failure."}"#;
    let m = msg(body, t);
    let (old, _) = signed_request(&v, 0, &m);
    let (new, _) = signed_request(&v, 1, &m);
    let check =
        |h: &HeaderMap, now: SystemTime| v.verify(&input(h, body), now).map(|ok| ok.secret_index());

    assert_eq!(check(&old, start), Ok(0));
    assert_eq!(check(&old, t), Ok(0), "exactly at not_after");
    assert_eq!(check(&old, t + ns), Err(Rejection::InvalidSignature));
    assert_eq!(check(&new, start - ns), Err(Rejection::InvalidSignature));
    assert_eq!(check(&new, start), Ok(1), "exactly at not_before");
    assert_eq!(check(&new, t + Duration::from_secs(86_400 * 365)), Ok(1));
}

#[test]
fn no_secret_in_its_window_is_an_invalid_signature_for_every_provider() {
    let now = at(1_700_000_000);
    let ended = Validity::new(None, Some(now - Duration::from_nanos(1))).unwrap();
    let future = Validity::new(Some(now + Duration::from_secs(1)), None).unwrap();
    for name in providers::NAMES {
        let v = Verifier::new(
            providers::builtin(name).unwrap(),
            &[&secret_for(name)],
            None,
        )
        .unwrap();
        let body = providers::example_body(name, now);
        let m = Message {
            body: &body,
            id: "msg_1",
            timestamp: now,
            method: &Method::POST,
            path_and_query: "/hook",
            public_url: Some("https://hooks.example.com/hook"),
        };
        let (headers, sent) = signed_request(&v, 0, &m);
        let i = with_url(input(&headers, &sent), m.public_url);
        assert!(
            v.verify(&i, now).is_ok(),
            "{name}: the control does not verify"
        );
        for window in [ended, future] {
            let v = v.clone().with_validity([window]);
            assert_eq!(
                v.verify(&i, now).map(|ok| ok.secret_index()),
                Err(Rejection::InvalidSignature),
                "{name}: verified with a secret {window}"
            );
        }
    }
}

#[test]
fn mailgun_signs_only_events_its_verifier_can_read() {
    // Found by the fuzzer: a JSON string holding invalid UTF-8 was wrapped,
    // and the wrapped body then failed to parse as MissingSignature.
    let now = at(1_700_000_000);
    let v = Verifier::new(
        providers::builtin("mailgun").unwrap(),
        &[&secret_for("mailgun")],
        None,
    )
    .unwrap();
    let bad = b"{\"a\xa6\":[1,2]}";
    assert!(v.sign_message(0, &msg(bad, now)).is_err());
    let good = br#"{"a":[1,2]}"#;
    let signed = v.sign_message(0, &msg(good, now)).unwrap();
    let headers = HeaderMap::new();
    assert!(v.verify(&input(&headers, &signed.body), now).is_ok());
}
