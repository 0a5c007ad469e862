//! Fuzz target: `try_sign` then `verify` round-trips for every provider, the window is exact, and a flipped body byte fails.
//!
//! Input: `provider\noffset\nid\nflip\n` then the body. `offset` is signed
//! seconds from the fixed now (the message's timestamp), `id` the message id
//! (trimmed; empty: a fixed one), `flip` a number choosing which body byte is
//! flipped and by which mask.
#![no_main]

use hookgate::verify::{Input, Message, Payload, Rejection, TimestampSource, TimestampUnit};
use hookgate_fuzz::{
    at_secs, check_verified, form_model, header_map, in_window, json_field, lines, now, pick,
    NOW_SECS, PATH, POST, PUBLIC_URL,
};
use http::HeaderValue;
use libfuzzer_sys::fuzz_target;

fn number<T: std::str::FromStr>(line: &[u8]) -> Option<T> {
    std::str::from_utf8(line).ok()?.trim().parse().ok()
}

fuzz_target!(|data: &[u8]| {
    let (l, body) = lines(data, 4);
    let case = pick(l[0]);
    let scheme = case.verifier.scheme();
    // Within ±10^9 s of now: every such instant is after 1970 and representable.
    let offset = number::<i64>(l[1])
        .unwrap_or(0)
        .clamp(-1_000_000_000, 1_000_000_000);
    let ts = NOW_SECS.saturating_add_signed(offset);
    let Ok(id) = std::str::from_utf8(l[2]) else {
        return;
    };
    // Header values arrive trimmed; an id that is not a valid header value cannot be sent.
    let id = match id.trim() {
        "" => "msg_fuzz",
        t => t,
    };
    if HeaderValue::from_str(id).is_err() {
        return;
    }
    let flip = number::<u64>(l[3]).unwrap_or(0);

    for k in 0..case.secrets.len() {
        let msg = Message {
            body,
            id,
            timestamp: at_secs(ts),
            method: &POST,
            path_and_query: PATH,
            public_url: Some(PUBLIC_URL),
        };
        let json = match scheme.timestamp.as_ref().map(|t| &t.source) {
            Some(TimestampSource::JsonBody(field)) => Some(json_field(body, field)),
            _ => None,
        };
        let signed = match case.verifier.try_sign(k, &msg) {
            Ok(s) => s,
            Err(e) => {
                // Only a body without its signed timestamp cannot be signed.
                assert!(
                    matches!(json, Some(Err(_))),
                    "{}: try_sign refused: {e}",
                    case.name
                );
                continue;
            }
        };
        let headers = header_map(&signed);
        let input = Input {
            method: &POST,
            path_and_query: PATH,
            headers: &headers,
            body: Payload::Whole(body),
            public_url: Some(PUBLIC_URL),
        };
        let tolerance = case.verifier.tolerance();
        let fresh = match (scheme.timestamp.as_ref(), json) {
            (None, _) => true,
            (Some(spec), Some(Ok(n))) => in_window(n, spec.unit, now(), tolerance),
            (Some(_), Some(Err(_))) => unreachable!("try_sign signed without a body timestamp"),
            (Some(spec), None) => {
                let ts_unit = match spec.unit {
                    TimestampUnit::Seconds => ts,
                    TimestampUnit::Millis => ts * 1000,
                };
                in_window(ts_unit, spec.unit, now(), tolerance)
            }
        };
        let result = case.verifier.verify(&input, now());
        if !fresh {
            assert_eq!(
                result.map(|v| v.secret_index()),
                Err(Rejection::StaleTimestamp),
                "{}: offset {offset} s accepted",
                case.name
            );
            continue;
        }
        let v = result.unwrap_or_else(|r| panic!("{}: own signature refused: {r:?}", case.name));
        assert_eq!(v.secret_index(), k, "{}: matched another secret", case.name);
        check_verified(case, &input, now(), &v);

        if body.is_empty() {
            continue;
        }
        // The body as hookgate holds a large one: in blocks, never joined.
        // Split at the flip point, it must verify exactly as the whole.
        let at = usize::try_from(flip % body.len() as u64).unwrap_or(0);
        let blocks = [
            bytes::Bytes::copy_from_slice(&body[..at]),
            bytes::Bytes::copy_from_slice(&body[at..]),
        ];
        let split = Input {
            body: Payload::Blocks(&blocks),
            ..input
        };
        let split = case.verifier.verify(&split, now());
        assert_eq!(
            split.as_ref().map(|s| *s.replay_id()),
            Ok(*v.replay_id()),
            "{}: the body in blocks verified differently",
            case.name
        );
        let mut tampered = body.to_vec();
        let mask = match (flip >> 32) as u8 {
            0 => 1,
            m => m,
        };
        tampered[at] ^= mask;
        let result = case.verifier.verify(
            &Input {
                body: Payload::Whole(&tampered),
                ..input
            },
            now(),
        );
        let unsigned_body = case.name == "gitlab";
        // Twilio signs the decoded, sorted form parameters, not the bytes.
        let same_signed = case.name == "twilio" && form_model(body) == form_model(&tampered);
        if unsigned_body || same_signed {
            assert!(result.is_ok(), "{}: {result:?}", case.name);
        } else {
            assert_eq!(
                result.map(|v| v.secret_index()),
                Err(Rejection::InvalidSignature),
                "{}: byte {at} ^ {mask:#04x} still verifies",
                case.name
            );
        }
    }
});
