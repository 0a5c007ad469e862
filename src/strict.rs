//! Strict request shape: the forms that an application, or a proxy behind
//! hookgate, could read differently from hookgate are refused before a byte of
//! the request is trusted (RFC 9110, 9112 §3.2 and §6, RFC 9113 §8.3).
//!
//! hookgate verifies one reading of a request and forwards it byte for byte.
//! Where a request admits two readings (two `Host` lines, a signature header
//! sent twice, a `Connection` header that would strip a verified header on
//! the way out), forwarding it would let the application see something other
//! than what was verified, so it is refused, not reinterpreted.

// Every enum match here names each variant: a new one must be decided, not defaulted.
#![warn(clippy::wildcard_enum_match_arm)]

use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{request, Version};

/// Why a request's shape is refused. `proxy.rs` maps it to a response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Malformed {
    /// A missing, repeated or invalid `Host`, `Host` and `:authority` (or an
    /// absolute-form target) that disagree, `Content-Length` beside
    /// `Transfer-Encoding`, `chunked` twice, a guarded header sent twice or
    /// named in `Connection`: 400.
    Ambiguous,
    /// A transfer coding other than `chunked` (`gzip, chunked`): hookgate
    /// would have to decode it to verify what the provider signed: 501.
    UnsupportedCoding,
}

/// Checks the request's host and message framing.
pub fn framing(parts: &request::Parts) -> Result<(), Malformed> {
    host(parts)?;
    transfer_coding(&parts.headers)
}

/// Checks that each of `guarded` (the headers verification reads: signature,
/// id, timestamp) is sent at most once and is not named in `Connection`,
/// which would make hop-by-hop stripping remove it after verification.
pub fn guarded_headers(headers: &HeaderMap, guarded: &[HeaderName]) -> Result<(), Malformed> {
    for name in guarded {
        let mut lines = headers.get_all(name).iter();
        if lines.next().is_some() && lines.next().is_some() {
            return Err(Malformed::Ambiguous);
        }
    }
    let named_in_connection = headers
        .get_all(header::CONNECTION)
        .iter()
        .flat_map(|v| v.as_bytes().split(|b| *b == b','))
        .map(<[u8]>::trim_ascii)
        .any(|token| {
            guarded
                .iter()
                .any(|g| token.eq_ignore_ascii_case(g.as_ref()))
        });
    if named_in_connection {
        return Err(Malformed::Ambiguous);
    }
    Ok(())
}

/// RFC 9112 §3.2: an HTTP/1.1 request has exactly one valid `Host`; RFC 9113
/// §8.3.1: over HTTP/2, `:authority` and `host` (at least one) must agree.
/// An absolute-form target's authority must agree with `Host` too.
fn host(parts: &request::Parts) -> Result<(), Malformed> {
    let mut lines = parts.headers.get_all(header::HOST).iter();
    let host = lines.next();
    if lines.next().is_some() {
        return Err(Malformed::Ambiguous);
    }
    if let Some(h) = host {
        if !valid_authority(h.as_bytes()) {
            return Err(Malformed::Ambiguous);
        }
    }
    let target = parts.uri.authority().map(http::uri::Authority::as_str);
    if let Some(t) = target {
        if !valid_authority(t.as_bytes()) {
            return Err(Malformed::Ambiguous);
        }
    }
    match (host, target) {
        (Some(h), Some(t)) if !h.as_bytes().eq_ignore_ascii_case(t.as_bytes()) => {
            Err(Malformed::Ambiguous)
        }
        (Some(_), _) | (None, Some(_)) => Ok(()),
        // HTTP/1.0 predates Host; every later version must name the host.
        (None, None) if parts.version <= Version::HTTP_10 => Ok(()),
        (None, None) => Err(Malformed::Ambiguous),
    }
}

/// `host [":" port]` as RFC 9112 §3.2 allows in `Host`: no userinfo (an
/// `@` lets a parser behind hookgate pick another host), no path, a port
/// that fits 16 bits, a non-empty host.
fn valid_authority(value: &[u8]) -> bool {
    let Ok(authority) = http::uri::Authority::try_from(value) else {
        return false;
    };
    let text = authority.as_str();
    if text.contains('@') {
        return false;
    }
    // The port follows the last ':' that is not inside an IPv6 literal.
    let host_end = text.rfind(']').map_or(0, |i| i + 1);
    let (host, port) = match text[host_end..].rfind(':') {
        Some(i) => (&text[..host_end + i], Some(&text[host_end + i + 1..])),
        None => (text, None),
    };
    let port_ok = port.is_none_or(|p| {
        p.is_empty()
            || (p.len() <= 5 && p.bytes().all(|b| b.is_ascii_digit()) && p.parse::<u16>().is_ok())
    });
    !host.is_empty() && port_ok
}

/// RFC 9112 §6: `chunked` is the only coding hookgate speaks, applied once;
/// beside `Content-Length` it is a smuggling attempt (§6.3 ¶3).
fn transfer_coding(headers: &HeaderMap) -> Result<(), Malformed> {
    let codings: Vec<&[u8]> = headers
        .get_all(header::TRANSFER_ENCODING)
        .iter()
        .flat_map(|v: &HeaderValue| v.as_bytes().split(|b| *b == b','))
        .map(<[u8]>::trim_ascii)
        .filter(|c| !c.is_empty())
        .collect();
    if codings.is_empty() {
        return Ok(());
    }
    if codings.iter().any(|c| !c.eq_ignore_ascii_case(b"chunked")) {
        return Err(Malformed::UnsupportedCoding);
    }
    if codings.len() > 1 || headers.contains_key(header::CONTENT_LENGTH) {
        return Err(Malformed::Ambiguous);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use http::Request;

    fn parts(version: Version, uri: &str, headers: &[(&str, &str)]) -> request::Parts {
        let mut b = Request::builder().version(version).uri(uri);
        for (k, v) in headers {
            b = b.header(*k, *v);
        }
        b.body(()).unwrap().into_parts().0
    }

    #[test]
    fn http11_needs_exactly_one_valid_host() {
        let ok = |h: &[(&str, &str)]| framing(&parts(Version::HTTP_11, "/w", h));
        assert_eq!(ok(&[("host", "hooks.example.com")]), Ok(()));
        assert_eq!(ok(&[("host", "hooks.example.com:8443")]), Ok(()));
        assert_eq!(ok(&[("host", "[::1]:8443")]), Ok(()));
        assert_eq!(ok(&[("host", "127.0.0.1")]), Ok(()));
        for bad in [
            "evil.example@internal:99999/x?y",
            "evil.example@internal",
            "x:99999",
            "x:8o",
            "a b",
            "x/y",
            "",
            ":80",
        ] {
            assert_eq!(ok(&[("host", bad)]), Err(Malformed::Ambiguous), "{bad:?}");
        }
        assert_eq!(ok(&[]), Err(Malformed::Ambiguous), "missing");
        assert_eq!(
            ok(&[("host", "a.example"), ("host", "a.example")]),
            Err(Malformed::Ambiguous),
            "repeated"
        );
        assert_eq!(framing(&parts(Version::HTTP_10, "/w", &[])), Ok(()));
    }

    #[test]
    fn authority_and_host_must_agree() {
        let h2 = |h: &[(&str, &str)]| framing(&parts(Version::HTTP_2, "https://a.example/w", h));
        assert_eq!(h2(&[]), Ok(()));
        assert_eq!(h2(&[("host", "a.example")]), Ok(()));
        assert_eq!(h2(&[("host", "b.example")]), Err(Malformed::Ambiguous));
        assert_eq!(
            framing(&parts(Version::HTTP_2, "/w", &[])),
            Err(Malformed::Ambiguous)
        );
        let absolute = parts(
            Version::HTTP_11,
            "http://evil.example/w",
            &[("host", "a.example")],
        );
        assert_eq!(framing(&absolute), Err(Malformed::Ambiguous));
    }

    #[test]
    fn only_a_single_chunked_coding_without_content_length_is_accepted() {
        let te = |h: &[(&str, &str)]| {
            let mut all = vec![("host", "a")];
            all.extend_from_slice(h);
            framing(&parts(Version::HTTP_11, "/w", &all))
        };
        assert_eq!(te(&[("transfer-encoding", "chunked")]), Ok(()));
        assert_eq!(te(&[("transfer-encoding", "Chunked")]), Ok(()));
        assert_eq!(
            te(&[("transfer-encoding", "gzip, chunked")]),
            Err(Malformed::UnsupportedCoding)
        );
        assert_eq!(
            te(&[("transfer-encoding", "chunked, chunked")]),
            Err(Malformed::Ambiguous)
        );
        assert_eq!(
            te(&[("transfer-encoding", "chunked"), ("content-length", "3")]),
            Err(Malformed::Ambiguous)
        );
    }

    #[test]
    fn guarded_headers_are_single_and_not_hop_by_hop() {
        let guarded = [
            HeaderName::from_static("svix-id"),
            HeaderName::from_static("svix-signature"),
        ];
        let check = |h: &[(&str, &str)]| {
            guarded_headers(&parts(Version::HTTP_11, "/w", h).headers, &guarded)
        };
        assert_eq!(
            check(&[("svix-id", "a"), ("svix-signature", "v1,x")]),
            Ok(())
        );
        assert_eq!(
            check(&[("svix-id", "a"), ("svix-id", "b")]),
            Err(Malformed::Ambiguous)
        );
        assert_eq!(
            check(&[("connection", "keep-alive, SVIX-Signature")]),
            Err(Malformed::Ambiguous)
        );
        assert_eq!(check(&[("connection", "keep-alive, x-other")]), Ok(()));
    }
}
