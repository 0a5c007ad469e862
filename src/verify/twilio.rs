//! The URL a provider signs (route `public_url` + the query received), Twilio's port variants
//! of it, and Twilio's sorted form parameters (or the `bodySHA256` check for JSON bodies).

use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::{Input, Rejection};

pub(super) fn signed_url(input: &Input<'_>) -> String {
    let query = input.path_and_query.split_once('?').map(|(_, q)| q);
    match input.public_url {
        Some(base) => match query {
            Some(q) => format!("{base}?{q}"),
            None => base.to_string(),
        },
        None => {
            let host = input
                .headers
                .get(http::header::HOST)
                .and_then(|h| h.to_str().ok())
                .unwrap_or("");
            format!("https://{host}{}", input.path_and_query)
        }
    }
}

/// Twilio signs the URL sometimes with, sometimes without the port; its own
/// validators try the URL without any port and with one (the scheme's default
/// added when absent). Returns those two forms.
pub(super) fn port_variants(url: &str) -> Vec<String> {
    let Some((scheme, rest)) = url.split_once("://") else {
        return vec![url.to_string()];
    };
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(end);
    // The port is after the last ':' that is not inside an IPv6 literal.
    let host_end = authority.rfind(']').map_or(0, |i| i + 1);
    let (host, port) = match authority[host_end..].rfind(':') {
        Some(i) => (
            &authority[..host_end + i],
            Some(&authority[host_end + i + 1..]),
        ),
        None => (authority, None),
    };
    let default = if scheme.eq_ignore_ascii_case("https") {
        "443"
    } else {
        "80"
    };
    let with_port = format!("{scheme}://{host}:{}{tail}", port.unwrap_or(default));
    let without_port = format!("{scheme}://{host}{tail}");
    vec![without_port, with_port]
}

/// Twilio's signed parameters: for a form body, every `name` + `value` pair
/// (decoded), names sorted, each name's distinct values sorted (as
/// twilio-python does). When the URL carries `bodySHA256`, the body is not a
/// form: its SHA-256 must equal that parameter, and no parameters are signed.
pub(super) fn form_params(url: &str, body: &[u8]) -> Result<Vec<u8>, Rejection> {
    let query = url.split_once('?').map_or("", |(_, q)| q);
    let declared = form_urlencoded::parse(query.as_bytes())
        .find(|(k, _)| k == "bodySHA256")
        .map(|(_, v)| v.into_owned());
    if let Some(declared) = declared {
        let actual = Sha256::digest(body);
        let ok = hex::decode(declared.trim()).is_ok_and(|d| bool::from(d.ct_eq(&actual[..])));
        return if ok {
            Ok(Vec::new())
        } else {
            Err(Rejection::InvalidSignature)
        };
    }
    let mut pairs: Vec<(String, String)> = form_urlencoded::parse(body)
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    pairs.sort();
    pairs.dedup();
    let mut out = Vec::with_capacity(body.len());
    for (k, v) in &pairs {
        out.extend_from_slice(k.as_bytes());
        out.extend_from_slice(v.as_bytes());
    }
    Ok(out)
}
