//! Fuzz target: every signature header format of every provider; a request verifies only with the signature the engine itself makes.
//!
//! Input: `provider\nnow\nurl\nsignature\nid\ntimestamp\n` then the body.
//! `provider` names a case (a built-in or one of the generic schemes; other
//! bytes pick one), `now` is Unix seconds (or ms; empty: the fixed now), `url`
//! the route's `public_url` plus the query received (empty: none). The three
//! header lines are the values of the scheme's signature, id and timestamp
//! headers (empty: absent).
#![no_main]

use hookgate::verify::{Input, Payload, TimestampSource};
use hookgate_fuzz::{check_verified, lines, parse_now, pick, put, split_url, POST};
use http::HeaderMap;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let (l, body) = lines(data, 6);
    let case = pick(l[0]);
    let now = parse_now(l[1]);
    let Ok(url) = std::str::from_utf8(l[2]) else {
        return;
    };
    let (public_url, path_and_query) = split_url(url);
    let scheme = case.verifier.scheme();

    let mut headers = HeaderMap::new();
    if !put(&mut headers, &scheme.signature_header, l[3]) {
        return;
    }
    if let Some(id) = &scheme.id {
        if !put(&mut headers, &id.header, l[4]) {
            return;
        }
    }
    if let Some(TimestampSource::Header(name)) = scheme.timestamp.as_ref().map(|t| &t.source) {
        if !put(&mut headers, name, l[5]) {
            return;
        }
    }
    let input = Input {
        method: &POST,
        path_and_query: &path_and_query,
        headers: &headers,
        body: Payload::Whole(body),
        public_url,
    };
    if let Ok(v) = case.verifier.verify(&input, now) {
        check_verified(case, &input, now, &v);
    }
});
