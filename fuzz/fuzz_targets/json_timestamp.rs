//! Fuzz target: the timestamp read from the signed JSON body (Linear's `webhookTimestamp` in ms, and a generic scheme's in s).
//!
//! Input: `signature\nnow\n` then the body (`now` in ms or s; empty: the fixed
//! now). With the genuine MAC (computed here, independently of the engine) the
//! result is exactly the model's: missing field or not JSON -> missing, not a
//! non-negative integer or outside the window -> stale, else verified. With any
//! other signature the result is `InvalidSignature`: unauthenticated JSON is
//! never parsed, so its content cannot change the answer.
#![no_main]

use hmac::{Hmac, Mac};
use hookgate::verify::{Input, Payload, Rejection, SignatureFormat, TimestampSource};
use hookgate_fuzz::{
    by_name, check_verified, header, header_map, in_window, json_field, lines, parse_now, put, POST,
};
use http::HeaderMap;
use libfuzzer_sys::fuzz_target;
use sha2::Sha256;

fuzz_target!(|data: &[u8]| {
    let (l, body) = lines(data, 2);
    let now = parse_now(l[1]);
    for name in ["linear", "hmac-json"] {
        let case = by_name(name);
        let v = &case.verifier;
        let scheme = v.scheme();
        let prefix = match &scheme.format {
            SignatureFormat::Plain { prefix } => prefix.as_str(),
            other => panic!("{name}: unexpected format {other:?}"),
        };
        let Some(spec) = &scheme.timestamp else {
            panic!("{name}: no timestamp");
        };
        let TimestampSource::JsonBody(field) = &spec.source else {
            panic!("{name}: timestamp not in the body");
        };
        let mut mac = Hmac::<Sha256>::new_from_slice(case.secrets[0].as_bytes())
            .unwrap_or_else(|_| unreachable!("HMAC takes keys of any length"));
        mac.update(body);
        let genuine = hex::encode(mac.finalize().into_bytes());

        let model = match json_field(body, field) {
            Err(true) => Err(Rejection::MissingSignature),
            Err(false) => Err(Rejection::StaleTimestamp),
            Ok(ts) if !in_window(ts, spec.unit, now, v.tolerance()) => {
                Err(Rejection::StaleTimestamp)
            }
            Ok(_) => Ok(()),
        };
        let run = |headers: &HeaderMap| {
            let input = Input {
                method: &POST,
                path_and_query: "/hook",
                headers,
                body: Payload::Whole(body),
                public_url: None,
            };
            let r = v.verify(&input, now);
            if let Ok(ok) = &r {
                check_verified(case, &input, now, ok);
            }
            r.map(|_| ())
        };

        // The genuine MAC: exactly the model's answer.
        let mut headers = HeaderMap::new();
        let value = format!("{prefix}{genuine}");
        assert!(put(
            &mut headers,
            &scheme.signature_header,
            value.as_bytes()
        ));
        assert_eq!(run(&headers), model, "{name}: genuine MAC");

        // try_sign signs exactly the bodies that carry the field as an integer, with the same MAC.
        match v.try_sign(0, &hookgate_fuzz_message(body)) {
            Ok(signed) => {
                assert!(
                    json_field(body, field).is_ok(),
                    "{name}: signed without a timestamp"
                );
                let h = header_map(&signed);
                assert_eq!(
                    header(&h, &scheme.signature_header),
                    Some(value.as_bytes()),
                    "{name}: try_sign disagrees with HMAC(secret, body)"
                );
            }
            Err(_) => assert!(json_field(body, field).is_err(), "{name}: refused to sign"),
        }

        // A fuzzer-made signature: the genuine one gives the model's answer, anything else is invalid.
        let mut forged = HeaderMap::new();
        if l[0].is_empty() || !put(&mut forged, &scheme.signature_header, l[0]) {
            continue;
        }
        let raw = l[0].trim_ascii();
        let expected = if raw.is_empty() {
            Err(Rejection::MissingSignature)
        } else {
            let p = prefix.as_bytes();
            let is_genuine = raw.len() >= p.len()
                && raw[..p.len()].eq_ignore_ascii_case(p)
                && raw[p.len()..]
                    .trim_ascii()
                    .eq_ignore_ascii_case(genuine.as_bytes());
            if is_genuine {
                model
            } else {
                Err(Rejection::InvalidSignature)
            }
        };
        assert_eq!(run(&forged), expected, "{name}: signature {raw:?}");
    }
});

fn hookgate_fuzz_message(body: &[u8]) -> hookgate::verify::Message<'_> {
    hookgate::verify::Message {
        body,
        id: "msg_fuzz",
        timestamp: hookgate_fuzz::now(),
        method: &POST,
        path_and_query: "/hook",
        public_url: None,
    }
}
