//! Fuzz target: `try_sign` then `verify` round-trips for every provider, the window is exact, and a flipped body byte fails.
//!
//! Input: `provider\noffset\nid\nflip\n` then the body. `offset` is signed
//! seconds from the fixed now (the message's timestamp), `id` the message id
//! (trimmed; empty: a fixed one), `flip` a number choosing which body byte is
//! flipped and by which mask.
//!
//! Messages are signed with `sign_message`, so Mailgun's body is the event
//! wrapped with its signature object; the flipped byte is always one of the
//! event (the message body given here), which Mailgun does not sign.
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
        let carried = scheme.carried_in_body();
        let signed = match case.verifier.sign_message(k, &msg) {
            Ok(s) => s,
            Err(e) => {
                // Only a body without its signed timestamp cannot be signed,
                // or (Mailgun, which wraps the event) one that is not JSON.
                let not_json =
                    carried && serde_json::from_slice::<serde_json::Value>(body).is_err();
                assert!(
                    matches!(json, Some(Err(_))) || not_json,
                    "{}: sign_message refused: {e}",
                    case.name
                );
                continue;
            }
        };
        // Where the message body sits in what is sent: all of it, or
        // (Mailgun) the event after the signature object, before the final `}`.
        let start = if carried {
            let start = signed.body.len().saturating_sub(body.len() + 1);
            assert!(
                signed.body[start..].starts_with(body) && signed.body.ends_with(b"}"),
                "{}: the event is not the end of the signed body",
                case.name
            );
            start
        } else {
            assert_eq!(
                signed.body, body,
                "{}: sign_message changed the body",
                case.name
            );
            0
        };
        let sent = &signed.body[..];
        let headers = header_map(&signed.headers);
        let input = Input {
            method: &POST,
            path_and_query: PATH,
            headers: &headers,
            body: Payload::Whole(sent),
            public_url: Some(PUBLIC_URL),
        };
        let tolerance = case.verifier.tolerance();
        let fresh = match (scheme.timestamp.as_ref(), json) {
            (None, _) => true,
            (Some(spec), Some(Ok(n))) => in_window(n, spec.unit, now(), tolerance),
            (Some(_), Some(Err(_))) => unreachable!("try_sign signed without a body timestamp"),
            (Some(spec), None) => {
                let ts_unit = match spec.unit {
                    TimestampUnit::Seconds | TimestampUnit::Rfc3339 => ts,
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
        let at = start + usize::try_from(flip % body.len() as u64).unwrap_or(0);
        let blocks = [
            bytes::Bytes::copy_from_slice(&sent[..at]),
            bytes::Bytes::copy_from_slice(&sent[at..]),
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
        let mut tampered = sent.to_vec();
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
        if carried {
            // Mailgun signs the token and timestamp, not the event: a changed
            // event still verifies as the same delivery, unless the body is
            // no longer JSON (or no longer holds that signature object).
            match result {
                Ok(t) => assert_eq!(
                    (t.secret_index(), t.replay_id()),
                    (k, v.replay_id()),
                    "{}: a changed event verified as another delivery",
                    case.name
                ),
                Err(r) => assert!(
                    matches!(r, Rejection::MissingSignature | Rejection::InvalidSignature),
                    "{}: a changed event gave {r:?}",
                    case.name
                ),
            }
        } else if unsigned_body || same_signed {
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
