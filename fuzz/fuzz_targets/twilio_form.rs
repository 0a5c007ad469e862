//! Fuzz target: Twilio's URL + sorted form parameters (and `bodySHA256` JSON bodies) under fuzzer-chosen URLs, queries, bodies and signatures.
//!
//! Input: `public_url\nquery\nsignature\nflip\n` then the body. Properties: a
//! fuzzer-made signature verifies only if it is the engine's own; what
//! `try_sign` signs verifies, with or without the default port in either URL;
//! a changed query byte fails; a changed body byte fails unless the decoded
//! parameters are the same.
#![no_main]

use hookgate::verify::{Input, Message, Payload, Rejection};
use hookgate_fuzz::{
    by_name, check_verified, form_model, has_body_sha256, header_map, lines, now, put, POST,
};
use http::HeaderMap;
use libfuzzer_sys::fuzz_target;

/// `scheme://host:port/...` for a URL written without a port, when it is that simple.
fn with_default_port(url: &str) -> Option<String> {
    let (scheme, port) = if url.starts_with("https://") {
        ("https://", "443")
    } else if url.starts_with("http://") {
        ("http://", "80")
    } else {
        return None;
    };
    let rest = &url[scheme.len()..];
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (host, tail) = rest.split_at(end);
    if host.is_empty() || host.contains([':', '[', ']']) {
        return None;
    }
    Some(format!("{scheme}{host}:{port}{tail}"))
}

fuzz_target!(|data: &[u8]| {
    let (l, body) = lines(data, 4);
    let (Ok(public_url), Ok(query)) = (std::str::from_utf8(l[0]), std::str::from_utf8(l[1])) else {
        return;
    };
    let flip: u64 = std::str::from_utf8(l[3])
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(0);
    let case = by_name("twilio");
    let v = &case.verifier;
    let sig_header = &v.scheme().signature_header;
    let path_and_query = if query.is_empty() {
        "/hook".to_string()
    } else {
        format!("/hook?{query}")
    };
    // The URL the engine signs: `public_url`, then `?` and the query when there is one.
    let full_url = if query.is_empty() {
        public_url.to_string()
    } else {
        format!("{public_url}?{query}")
    };

    // 1. A fuzzer-made signature.
    let mut forged = HeaderMap::new();
    if put(&mut forged, sig_header, l[2]) && !l[2].is_empty() {
        let inp = Input {
            method: &POST,
            path_and_query: &path_and_query,
            headers: &forged,
            body: Payload::Whole(body),
            public_url: Some(public_url),
        };
        if let Ok(ok) = v.verify(&inp, now()) {
            check_verified(case, &inp, now(), &ok);
        }
    }

    // 2. Sign -> verify, under the URL as written and with its default port.
    let sign = |url: &str| {
        v.try_sign(
            0,
            &Message {
                body,
                id: "",
                timestamp: now(),
                method: &POST,
                path_and_query: &path_and_query,
                public_url: Some(url),
            },
        )
    };
    let signed = match sign(public_url) {
        Ok(s) => header_map(&s),
        Err(e) => {
            // Only a JSON body whose hash the query misstates cannot be signed.
            assert!(
                has_body_sha256(&full_url),
                "try_sign refused {public_url:?} ? {query:?}: {e}"
            );
            return;
        }
    };
    let verify = |headers: &HeaderMap, body: &[u8], url: &str, pq: &str| {
        v.verify(
            &Input {
                method: &POST,
                path_and_query: pq,
                headers,
                body: Payload::Whole(body),
                public_url: Some(url),
            },
            now(),
        )
    };
    let ok = verify(&signed, body, public_url, &path_and_query)
        .unwrap_or_else(|r| panic!("own signature refused: {r:?}"));
    check_verified(
        case,
        &Input {
            method: &POST,
            path_and_query: &path_and_query,
            headers: &signed,
            body: Payload::Whole(body),
            public_url: Some(public_url),
        },
        now(),
        &ok,
    );
    if let Some(ported) = with_default_port(public_url) {
        // Twilio signs with or without the port; either route URL must accept either.
        if let Ok(s) = sign(&ported) {
            let r = verify(&header_map(&s), body, public_url, &path_and_query);
            assert!(
                r.is_ok(),
                "signed with {ported:?}, refused at {public_url:?}"
            );
        }
        let r = verify(&signed, body, &ported, &path_and_query);
        assert!(r.is_ok(), "signed at {public_url:?}, refused at {ported:?}");
    }

    // 3. One changed byte of the query (kept ASCII) changes the signed URL.
    if !query.is_empty() {
        let bytes = query.as_bytes();
        let at = usize::try_from(flip % bytes.len() as u64).unwrap_or(0);
        if bytes[at].is_ascii() {
            let mut q = bytes.to_vec();
            q[at] ^= 1;
            if let Ok(q) = String::from_utf8(q) {
                let r = verify(&signed, body, public_url, &format!("/hook?{q}"));
                assert_eq!(
                    r.map(|v| v.secret_index()),
                    Err(Rejection::InvalidSignature),
                    "query {query:?} -> {q:?} still verifies"
                );
            }
        }
    }

    // 4. One changed body byte: JSON bodies are pinned by their hash, forms by their parameters.
    if !body.is_empty() {
        let mut tampered = body.to_vec();
        let at = usize::try_from(flip % body.len() as u64).unwrap_or(0);
        tampered[at] ^= 1 << ((flip >> 32) & 7);
        let r = verify(&signed, &tampered, public_url, &path_and_query);
        let json = has_body_sha256(&full_url);
        if !json && form_model(body) == form_model(&tampered) {
            assert!(r.is_ok(), "same parameters, refused: {r:?}");
        } else {
            assert_eq!(
                r.map(|v| v.secret_index()),
                Err(Rejection::InvalidSignature),
                "body byte {at} changed, still verifies"
            );
        }
    }
});
