//! The fuzz targets' shared harness: fixed secrets and clock, the line-based input format, and the reference model every verified request must satisfy.
//!
//! # Input format
//!
//! Every target reads its input as a few `\n`-terminated lines followed by a
//! body (the rest, any bytes), so that seeds are written from the test vectors
//! by `fuzz/seeds.py` and a crash file reads like a request. Missing lines are
//! empty.
//!
//! # The oracle
//!
//! The fuzzer does not know the secrets, so a request it made up can only
//! verify if it carries a MAC (or Ed25519 signature, or token) that the engine
//! itself produces for exactly that input. `check_verified` asserts that: it
//! re-signs the same body, id, timestamp and URL with `Verifier::try_sign` and
//! requires an entry of the right kind in the signature header (the right
//! `v1`/`v1a` version, the right `key=`, after the prefix) whose text is that
//! signature. The model is deliberately more lenient than the engine (hex in
//! any case, base64 with any trailing `=`), so it never reports a correct
//! acceptance; it does report any acceptance of bytes the engine did not sign.
//!
//! Three kinds of provider need more than that comparison:
//! - ECDSA P-256 (SendGrid) is malleable: `(r, s)` and `(r, n - s)` both
//!   verify, so signatures are compared normalised to low `s` (what the
//!   engine's replay id hashes);
//! - RFC 3339 timestamps (Twitch, Zendesk) are parsed by a model here; `try_sign`
//!   writes them to the second with `Z`, so a seed signed over another
//!   spelling (a fraction, `+00:00`) would be reported: the fuzzer cannot
//!   forge one, and the committed seeds use the canonical spelling only;
//! - a signature carried in the body (Mailgun) is recomputed here with
//!   `hmac` from the body's `signature` object, independently of the engine.

use std::sync::OnceLock;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use hmac::{Hmac, Mac};
use hookgate::verify::{
    generic, providers, Algorithm, Encoding, Input, KeyEncoding, Message, Part, Scheme,
    SignatureFormat, TimestampSource, TimestampUnit, Verified, Verifier,
};
use http::{HeaderMap, HeaderName, HeaderValue, Method};
use sha2::{Digest, Sha256};

/// The fixed clock of the targets that do not read it from the input (2023-11-14).
pub const NOW_SECS: u64 = 1_700_000_000;

/// The route's `public_url` when an input does not give one.
pub const PUBLIC_URL: &str = "https://hooks.example.com/hook";

/// The path every request is received on (only its query is ever signed).
pub const PATH: &str = "/hook";

pub fn at_secs(secs: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(secs)
}

pub fn now() -> SystemTime {
    at_secs(NOW_SECS)
}

/// A clock line: decimal Unix seconds, or milliseconds when it is that large
/// (the Linear vectors give `now_ms`); the fixed `now` otherwise.
pub fn parse_now(line: &[u8]) -> SystemTime {
    match std::str::from_utf8(line)
        .ok()
        .and_then(|s| s.trim().parse::<u64>().ok())
    {
        // Below a year-5138 bound in seconds and a Duration either way: no overflow.
        Some(n) if n > 100_000_000_000 && n < 100_000_000_000_000 => {
            UNIX_EPOCH + Duration::from_millis(n)
        }
        Some(n) if n < 100_000_000_000 => at_secs(n),
        _ => now(),
    }
}

/// `n` lines (each ended by `\n`, which is not part of it) and the rest of `data`.
pub fn lines(data: &[u8], n: usize) -> (Vec<&[u8]>, &[u8]) {
    let mut out = Vec::with_capacity(n);
    let mut rest = data;
    for _ in 0..n {
        match rest.iter().position(|b| *b == b'\n') {
            Some(i) => {
                out.push(&rest[..i]);
                rest = &rest[i + 1..];
            }
            None => {
                out.push(rest);
                rest = &[];
            }
        }
    }
    (out, rest)
}

/// A URL line split as a route sees it: `public_url` (before `?`) and the
/// path and query received (`PATH` plus the same query). Empty: no
/// `public_url` (the engine then rebuilds the URL from `Host`).
pub fn split_url(line: &str) -> (Option<&str>, String) {
    if line.is_empty() {
        return (None, PATH.to_string());
    }
    match line.split_once('?') {
        Some((base, query)) => (Some(base), format!("{PATH}?{query}")),
        None => (Some(line), PATH.to_string()),
    }
}

/// Inserts `value` under `name` unless it is empty; `false` when it is not a
/// valid header value (such an input cannot arrive over HTTP).
pub fn put(headers: &mut HeaderMap, name: &HeaderName, value: &[u8]) -> bool {
    if value.is_empty() {
        return true;
    }
    match HeaderValue::from_bytes(value) {
        Ok(v) => {
            headers.append(name.clone(), v);
            true
        }
        Err(_) => false,
    }
}

/// The headers `try_sign` produced, as a request carries them.
pub fn header_map(signed: &[(HeaderName, String)]) -> HeaderMap {
    let mut map = HeaderMap::new();
    for (name, value) in signed {
        let value = HeaderValue::from_str(value)
            .unwrap_or_else(|e| panic!("try_sign produced an invalid {name} value {value:?}: {e}"));
        map.append(name.clone(), value);
    }
    map
}

/// One provider (or generic scheme) with its fixed test secrets.
pub struct Case {
    pub name: &'static str,
    pub verifier: Verifier,
    /// Per secret: whether it is an Ed25519 key (`whsk_`), which signs `v1a` entries.
    pub ed25519: Vec<bool>,
    pub secrets: Vec<&'static str>,
}

const WHSEC: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
/// The Standard Webhooks `v1a` vector's signing key (tests/fixtures/official.json).
const WHSK: &str =
    "whsk_6Xb/dCcHpPea21PS1N9VY/NZW723CEc77N4rJCubMbfVKIDij2HKpMKkioLlX0dRqSKJp4AJ6p9lMicMFs6Kvg==";

/// A secret of the form `provider` hands out that can sign (a `whsec_` key
/// for Svix senders, Discord's hex Ed25519 seed + public key, SendGrid's
/// base64 P-256 key, hex or base64 for those that decode theirs), made once.
fn example(provider: &str) -> &'static str {
    let secret = providers::example_secret(provider, b"hookgate-fuzz")
        .unwrap_or_else(|| panic!("{provider}: no example secret"));
    // Made once per provider by `cases()` (a `OnceLock`): a bounded leak.
    Box::leak(secret.into_boxed_str())
}

/// The secrets of each built-in provider: those of its valid vectors in
/// tests/fixtures (so the vectors are valid seeds), else a fixed one where
/// the key is the secret's text, else one of the form the provider hands out.
fn secrets(provider: &str) -> Vec<&'static str> {
    match provider {
        "svix" => vec![WHSEC, WHSK],
        "standard-webhooks" => vec![WHSEC, "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD", WHSK],
        "github" => vec![
            "It's a Secret to Everybody",
            "mysecret",
            "foo",
            "development",
        ],
        "stripe" => vec!["whsec_test_4eC39HqLyjWDarjtT1zdp7dc"],
        "shopify" => vec!["test_secret_key"],
        "slack" => vec!["8f742231b10e8888abcd99yyyzzz85a5", "another-secret"],
        "twilio" => vec!["12345"],
        "square" => vec![
            "signature-key",
            "MCmhFRxGX82xMwg5FsaoQA",
            "Ibxx_5AKakO-3qeNVR61Dw",
        ],
        "paddle" => vec![
            "pdl_ntf_01hbpjmytsa32fhr36nqgc3kgb_WvRO0eL4Bj9rgYYIBZY6wZhG4EHy9jzh",
            "pdl_ntfset_01hs0t3tw21j988db1pam5xg8m_GrOWLNef+vmtjJYq4mSnHNzvc8uWoJ1I",
            "pdl_ntf_01hbpjmytsa32fhr36nqgc3kgb_TjIG2BXbm83HPXqNfziwe506sBEdqL/4",
        ],
        "linear" => vec!["lin_wh_test_6e1c0f6e"],
        _ => match providers::builtin(provider) {
            Some(s)
                if s.key_encoding == KeyEncoding::Utf8
                    && !matches!(s.algorithm, Algorithm::Ed25519 | Algorithm::EcdsaP256) =>
            {
                vec!["hookgate-fuzz-secret"]
            }
            _ => vec![example(provider)],
        },
    }
}

/// Generic `provider = "hmac"` schemes covering what no built-in uses:
/// base64url, SHA-512, a custom version, a `;`-separated params header with a
/// millisecond timestamp, `{method}` and `{url}`, key encodings, a JSON
/// timestamp in seconds.
pub const GENERIC: &[(&str, &str, &str)] = &[
    (
        "hmac-versioned",
        r#"header = "x-sig"
format = "versioned"
version = "v2"
algorithm = "sha512"
encoding = "base64url"
id_header = "x-id"
timestamp_header = "x-ts"
signed = "{id}.{timestamp}.{body}"
key_encoding = "base64"
"#,
        "c2VjcmV0LWtleS1mb3ItZnV6emluZw==",
    ),
    (
        "hmac-params",
        r#"header = "x-sig"
format = "params"
separator = ";"
signature_param = "sig"
timestamp_param = "ts"
timestamp_unit = "ms"
signed = "{timestamp}|{method}|{url}|{body}"
key_encoding = "hex"
"#,
        "00112233445566778899aabbccddeeff",
    ),
    (
        "hmac-json",
        r#"header = "x-sig"
prefix = "sha256="
timestamp_json = "webhookTimestamp"
"#,
        "hookgate-fuzz-secret",
    ),
];

pub fn cases() -> &'static [Case] {
    static CASES: OnceLock<Vec<Case>> = OnceLock::new();
    CASES.get_or_init(|| {
        let mut out = Vec::new();
        for name in providers::NAMES {
            let scheme = providers::builtin(name)
                .unwrap_or_else(|| panic!("{name} is in NAMES but not builtin"));
            out.push(case(name, scheme, secrets(name)));
        }
        for (name, table, secret) in GENERIC {
            let table: toml::Table = table.parse().unwrap_or_else(|e| panic!("{name}: {e}"));
            let scheme = generic::scheme(&table).unwrap_or_else(|e| panic!("{name}: {e:?}"));
            out.push(case(name, scheme, vec![secret]));
        }
        out
    })
}

fn case(name: &'static str, scheme: Scheme, secrets: Vec<&'static str>) -> Case {
    let ed25519 = secrets
        .iter()
        .map(|s| scheme.key_encoding == KeyEncoding::Whsec && s.starts_with("whsk_"))
        .collect();
    let bytes: Vec<&[u8]> = secrets.iter().map(|s| s.as_bytes()).collect();
    let verifier = Verifier::new(scheme, &bytes, None)
        .unwrap_or_else(|(i, e)| panic!("{name}: secret {i}: {e:?}"));
    Case {
        name,
        verifier,
        ed25519,
        secrets,
    }
}

/// The case a selector line names, or (for any other bytes) one picked by them.
pub fn pick(selector: &[u8]) -> &'static Case {
    let all = cases();
    if let Some(c) = all.iter().find(|c| c.name.as_bytes() == selector) {
        return c;
    }
    let h = selector.iter().fold(0usize, |h, b| {
        h.wrapping_mul(31).wrapping_add(usize::from(*b))
    });
    &all[h % all.len()]
}

pub fn by_name(name: &str) -> &'static Case {
    cases()
        .iter()
        .find(|c| c.name == name)
        .unwrap_or_else(|| panic!("no case {name}"))
}

/// A header as the engine reads it: the first value, trimmed; `None` when blank.
pub fn header<'h>(headers: &'h HeaderMap, name: &HeaderName) -> Option<&'h [u8]> {
    let v = headers.get(name)?.as_bytes().trim_ascii();
    (!v.is_empty()).then_some(v)
}

/// The value of the first `key=` pair of a params header (model of Stripe's `t=`).
fn param<'r>(raw: &'r [u8], separator: char, key: &str) -> Option<&'r [u8]> {
    let sep = u8::try_from(separator).ok()?;
    raw.split(|b| *b == sep).find_map(|pair| {
        let pair = pair.trim_ascii();
        let eq = pair.iter().position(|b| *b == b'=')?;
        (&pair[..eq] == key.as_bytes()).then(|| &pair[eq + 1..])
    })
}

/// Model of Twilio's port handling: the URL without a port and with one
/// (the scheme's default when absent).
pub fn port_variants(url: &str) -> Vec<String> {
    let Some((scheme, rest)) = url.split_once("://") else {
        return vec![url.to_string()];
    };
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(end);
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
    vec![
        format!("{scheme}://{host}{tail}"),
        format!("{scheme}://{host}:{}{tail}", port.unwrap_or(default)),
    ]
}

/// Model of Twilio's signed form parameters: decoded pairs, sorted, deduplicated, concatenated.
pub fn form_model(body: &[u8]) -> Vec<u8> {
    let mut pairs: Vec<(String, String)> = form_urlencoded::parse(body)
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    pairs.sort();
    pairs.dedup();
    let mut out = Vec::new();
    for (k, v) in pairs {
        out.extend_from_slice(k.as_bytes());
        out.extend_from_slice(v.as_bytes());
    }
    out
}

/// Whether a URL query carries Twilio's `bodySHA256` parameter.
pub fn has_body_sha256(url: &str) -> bool {
    let query = url.split_once('?').map_or("", |(_, q)| q);
    form_urlencoded::parse(query.as_bytes()).any(|(k, _)| k == "bodySHA256")
}

/// Model of the JSON body timestamp: `Ok(n)` for a top-level non-negative
/// integer field, `Err(true)` when absent (or not JSON), `Err(false)` when malformed.
pub fn json_field(body: &[u8], field: &str) -> Result<u64, bool> {
    let value: serde_json::Value = serde_json::from_slice(body).map_err(|_| true)?;
    value.get(field).ok_or(true)?.as_u64().ok_or(false)
}

/// `now` and the tolerance in whole `unit`s, as the providers' libraries compare.
pub fn window(unit: TimestampUnit, now: SystemTime, tolerance: Duration) -> (u64, u64) {
    let since = now.duration_since(UNIX_EPOCH).unwrap_or_default();
    match unit {
        TimestampUnit::Seconds | TimestampUnit::Rfc3339 => (since.as_secs(), tolerance.as_secs()),
        TimestampUnit::Millis => (
            u64::try_from(since.as_millis()).unwrap_or(u64::MAX),
            u64::try_from(tolerance.as_millis()).unwrap_or(u64::MAX),
        ),
    }
}

pub fn in_window(ts: u64, unit: TimestampUnit, now: SystemTime, tolerance: Duration) -> bool {
    let (now, tol) = window(unit, now, tolerance);
    now.abs_diff(ts) <= tol
}

fn at_unit(ts: u64, unit: TimestampUnit) -> SystemTime {
    match unit {
        TimestampUnit::Seconds | TimestampUnit::Rfc3339 => UNIX_EPOCH + Duration::from_secs(ts),
        TimestampUnit::Millis => UNIX_EPOCH + Duration::from_millis(ts),
    }
}

/// The signature text inside a header value `try_sign` produced.
fn signature_text<'v>(format: &SignatureFormat, value: &'v str) -> &'v str {
    match format {
        SignatureFormat::Plain { prefix } => &value[prefix.len()..],
        SignatureFormat::Versioned { .. } => value.split_once(',').map_or("", |(_, s)| s),
        SignatureFormat::Params { separator, key } => value
            .split(*separator)
            .rev()
            .find_map(|p| p.strip_prefix(key.as_str())?.strip_prefix('='))
            .unwrap_or(""),
        // Never in a header: `check_carried` reads the body instead.
        SignatureFormat::JsonBody { .. } => "",
    }
}

/// The entries a signature header offers for one kind of key (model: lenient).
fn offered<'r>(format: &SignatureFormat, raw: &'r [u8], asymmetric: bool) -> Vec<&'r [u8]> {
    match format {
        SignatureFormat::Plain { prefix } => {
            let p = prefix.as_bytes();
            if raw.len() >= p.len() && raw[..p.len()].eq_ignore_ascii_case(p) {
                vec![raw[p.len()..].trim_ascii()]
            } else {
                Vec::new()
            }
        }
        SignatureFormat::Versioned {
            version,
            asymmetric: asym,
        } => {
            let wanted = if asymmetric {
                asym.as_deref().unwrap_or("")
            } else {
                version
            };
            raw.split(|b| *b == b' ')
                .filter_map(|e| {
                    let comma = e.iter().position(|b| *b == b',')?;
                    (&e[..comma] == wanted.as_bytes()).then(|| e[comma + 1..].trim_ascii())
                })
                .collect()
        }
        SignatureFormat::Params { separator, key } => {
            let Ok(sep) = u8::try_from(*separator) else {
                return Vec::new();
            };
            raw.split(|b| *b == sep)
                .filter_map(|pair| {
                    let pair = pair.trim_ascii();
                    let eq = pair.iter().position(|b| *b == b'=')?;
                    (&pair[..eq] == key.as_bytes()).then(|| pair[eq + 1..].trim_ascii())
                })
                .collect()
        }
        SignatureFormat::JsonBody { .. } => Vec::new(),
    }
}

/// Whether an offered entry is the expected signature text (lenient on case for hex, on padding for base64).
fn same_signature(encoding: Encoding, offered: &[u8], expected: &str) -> bool {
    match encoding {
        Encoding::Hex => offered.eq_ignore_ascii_case(expected.as_bytes()),
        Encoding::Base64 | Encoding::Base64Url => {
            let trim = |s: &[u8]| {
                let end = s.iter().rposition(|b| *b != b'=').map_or(0, |i| i + 1);
                s[..end].to_vec()
            };
            !expected.is_empty() && trim(offered) == trim(expected.as_bytes())
        }
    }
}

/// An ECDSA P-256 DER signature as `(r, s)` with `s` low: what one signature
/// is, whichever of its two forms was sent; `None` when it is not strict DER.
fn p256_normalised(encoding: Encoding, text: &[u8]) -> Option<[u8; 64]> {
    let text = std::str::from_utf8(text).ok()?;
    let der = decode(encoding, text)?;
    let sig = p256::ecdsa::Signature::from_der(&der).ok()?;
    Some(sig.normalize_s().unwrap_or(sig).to_bytes().into())
}

fn decode(encoding: Encoding, text: &str) -> Option<Vec<u8>> {
    use base64::Engine as _;
    let text = text.trim_end_matches('=');
    match encoding {
        Encoding::Hex => hex::decode(text).ok(),
        Encoding::Base64 => base64::engine::general_purpose::STANDARD_NO_PAD
            .decode(text)
            .ok(),
        Encoding::Base64Url => base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(text)
            .ok(),
    }
}

/// Model of an RFC 3339 timestamp as the engine reads it (lenient): `YYYY-MM-DDTHH:MM:SS`,
/// an optional fraction (dropped), then `Z` or `+00:00`; whole seconds since the epoch.
pub fn rfc3339_model(text: &[u8]) -> Option<u64> {
    let text = std::str::from_utf8(text).ok()?;
    let (main, rest) = text.split_at_checked(19)?;
    let rest = match rest.strip_prefix('.') {
        Some(r) => r.trim_start_matches(|c: char| c.is_ascii_digit()),
        None => rest,
    };
    if !matches!(rest, "Z" | "z" | "+00:00" | "-00:00") {
        return None;
    }
    let b = main.as_bytes();
    let num = |r: std::ops::Range<usize>| -> Option<u64> {
        let s = main.get(r)?;
        s.bytes()
            .all(|c| c.is_ascii_digit())
            .then(|| s.parse().ok())?
    };
    if b[4] != b'-'
        || b[7] != b'-'
        || !matches!(b[10], b'T' | b't' | b' ')
        || b[13] != b':'
        || b[16] != b':'
    {
        return None;
    }
    let (y, m, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (hh, mm, ss) = (num(11..13)?, num(14..16)?, num(17..19)?);
    if y < 1970 || !(1..=12).contains(&m) || d == 0 || hh > 23 || mm > 59 || ss > 60 {
        return None;
    }
    // Days from the civil date (Howard Hinnant's algorithm), March-based years.
    let (y, m) = if m <= 2 { (y - 1, m + 9) } else { (y, m - 3) };
    let era = y / 400;
    let yoe = y - era * 400;
    let doy = (153 * m + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = (era * 146_097 + doe).checked_sub(719_468)?;
    Some(days * 86_400 + hh * 3_600 + mm * 60 + ss)
}

fn decode_signature(encoding: Encoding, text: &str) -> Vec<u8> {
    decode(encoding, text)
        .unwrap_or_else(|| panic!("try_sign produced an undecodable signature {text:?}"))
}

/// Asserts that a request the engine accepted carries, in the right kind of
/// entry, the signature the engine itself makes for this exact input with the
/// secret it reports, inside the time window; and that its replay id rests on
/// what was authenticated.
pub fn check_verified(case: &Case, input: &Input<'_>, now: SystemTime, v: &Verified) {
    let name = case.name;
    let scheme = case.verifier.scheme();
    // The reference model reads the body in one piece, however hookgate held it.
    let contiguous = input.body.contiguous();
    let k = v.secret_index();
    assert!(
        k < case.secrets.len(),
        "{name}: secret index {k} out of range"
    );
    if let SignatureFormat::JsonBody { object } = &scheme.format {
        return check_carried(case, object, &contiguous, now, v);
    }
    let raw = header(input.headers, &scheme.signature_header)
        .unwrap_or_else(|| panic!("{name}: verified without a signature header"));

    // The id, as the engine signs it (only a signed id is part of the signed bytes).
    let signed_id = scheme.id.as_ref().is_some_and(|s| s.signed);
    let id_bytes = scheme
        .id
        .as_ref()
        .and_then(|spec| header(input.headers, &spec.header));
    let id = match id_bytes {
        Some(b) if signed_id => std::str::from_utf8(b)
            .unwrap_or_else(|_| panic!("{name}: verified a signed non-UTF-8 id {b:?}")),
        None if signed_id => panic!("{name}: verified without its signed id"),
        _ => "",
    };

    // The timestamp: digits only, inside the window.
    let timestamp = match scheme.timestamp.as_ref() {
        None => UNIX_EPOCH,
        Some(spec) => {
            let text = match (&spec.source, &scheme.format) {
                (TimestampSource::Header(h), _) => header(input.headers, h),
                (TimestampSource::Param(key), SignatureFormat::Params { separator, .. }) => {
                    param(raw, *separator, key)
                }
                (TimestampSource::Param(_), _) => panic!("{name}: a param timestamp needs params"),
                (TimestampSource::JsonBody(field), _) => {
                    let ts = json_field(&input.body.contiguous(), field).unwrap_or_else(|e| {
                        panic!("{name}: verified a body without a valid {field} ({e})")
                    });
                    assert!(
                        in_window(ts, spec.unit, now, case.verifier.tolerance()),
                        "{name}: verified a body timestamp {ts} outside the window"
                    );
                    None
                }
            };
            match text {
                None => UNIX_EPOCH,
                Some(text) if spec.unit == TimestampUnit::Rfc3339 => {
                    let ts = rfc3339_model(text).unwrap_or_else(|| {
                        panic!("{name}: verified a malformed RFC 3339 timestamp {text:?}")
                    });
                    assert!(
                        in_window(ts, spec.unit, now, case.verifier.tolerance()),
                        "{name}: verified timestamp {ts} outside the window"
                    );
                    at_unit(ts, spec.unit)
                }
                Some(text) => {
                    assert!(
                        !text.is_empty() && text.len() <= 19 && text.iter().all(u8::is_ascii_digit),
                        "{name}: verified a malformed timestamp {text:?}"
                    );
                    let ts: u64 = std::str::from_utf8(text)
                        .ok()
                        .and_then(|s| s.parse().ok())
                        .unwrap_or_else(|| panic!("{name}: timestamp {text:?} is not a u64"));
                    assert!(
                        in_window(ts, spec.unit, now, case.verifier.tolerance()),
                        "{name}: verified timestamp {ts} outside the window"
                    );
                    at_unit(ts, spec.unit)
                }
            }
        }
    };

    // What the engine signs for this input, for each URL form it accepts.
    let urls: Vec<Option<String>> = match input.public_url {
        Some(u) if scheme.signed.contains(&Part::UrlAnyPort) => {
            port_variants(u).into_iter().map(Some).collect()
        }
        other => vec![other.map(str::to_string)],
    };
    let asymmetric = case.ed25519[k];
    let encoding = if asymmetric {
        Encoding::Base64
    } else {
        scheme.encoding
    };
    let offered = offered(&scheme.format, raw, asymmetric);
    let mut matched: Option<String> = None;
    let mut signable = false;
    for url in &urls {
        let msg = Message {
            body: &contiguous,
            id,
            timestamp,
            method: input.method,
            path_and_query: input.path_and_query,
            public_url: url.as_deref(),
        };
        // A port variant of an odd URL (`://` only inside its query) can put
        // `bodySHA256` into the URL that `try_sign` reads; the engine reads the
        // form from the URL as received, so such a variant is simply not one
        // this input can have been signed under.
        let Ok(signed) = case.verifier.try_sign(k, &msg) else {
            continue;
        };
        signable = true;
        let value = signed
            .iter()
            .find(|(h, _)| *h == scheme.signature_header)
            .map(|(_, v)| v.as_str())
            .unwrap_or_else(|| panic!("{name}: try_sign made no signature header"));
        if scheme.algorithm == Algorithm::Token && !asymmetric {
            let rest = match &scheme.format {
                SignatureFormat::Plain { prefix } => offered_token(raw, prefix),
                _ => Some(raw),
            };
            if rest == Some(signature_text(&scheme.format, value).as_bytes()) {
                matched = Some(String::new());
            }
            continue;
        }
        let expected = signature_text(&scheme.format, value);
        let same = |o: &&[u8]| {
            if scheme.algorithm == Algorithm::EcdsaP256 {
                p256_normalised(encoding, o).is_some()
                    && p256_normalised(encoding, o)
                        == p256_normalised(encoding, expected.as_bytes())
            } else {
                same_signature(encoding, o, expected)
            }
        };
        if offered.iter().any(same) {
            matched = Some(expected.to_string());
            break;
        }
    }
    assert!(signable, "{name}: verified what try_sign cannot sign");
    let Some(expected) = matched else {
        panic!(
            "{name}: verified a signature header the engine did not produce for this input \
             (secret {k}): {:?}",
            String::from_utf8_lossy(raw)
        );
    };

    // Deduplication rests on the signed id, or on what was authenticated.
    let replay: [u8; 32] = if signed_id {
        Sha256::new()
            .chain_update(b"id\0")
            .chain_update(id.as_bytes())
            .finalize()
            .into()
    } else {
        let tag = if scheme.algorithm == Algorithm::Token && !asymmetric {
            Sha256::digest(&contiguous).to_vec()
        } else if scheme.algorithm == Algorithm::EcdsaP256 {
            p256_normalised(encoding, expected.as_bytes())
                .unwrap_or_else(|| panic!("{name}: try_sign made an invalid DER signature"))
                .to_vec()
        } else {
            decode_signature(encoding, &expected)
        };
        Sha256::new()
            .chain_update(b"sig\0")
            .chain_update(&tag)
            .finalize()
            .into()
    };
    assert_eq!(
        v.replay_id(),
        &replay,
        "{name}: replay id does not rest on the authenticated bytes"
    );
}

/// The oracle for a signature carried in the body (Mailgun): the body's
/// `object` holds string fields `timestamp` (digits, in the window), `token`
/// and `signature`, the hex HMAC-SHA256 of timestamp + token under the
/// secret `Verified` names, recomputed here; the replay id rests on the token.
fn check_carried(case: &Case, object: &str, body: &[u8], now: SystemTime, v: &Verified) {
    let name = case.name;
    let k = v.secret_index();
    let value: serde_json::Value = serde_json::from_slice(body)
        .unwrap_or_else(|e| panic!("{name}: verified a body that is not JSON: {e}"));
    let field = |f: &str| -> &str {
        value
            .get(object)
            .and_then(|o| o.get(f))
            .and_then(serde_json::Value::as_str)
            .filter(|s| !s.is_empty())
            .unwrap_or_else(|| panic!("{name}: verified without a string {object}.{f}"))
    };
    let (timestamp, token, signature) = (field("timestamp"), field("token"), field("signature"));
    assert!(
        timestamp.len() <= 19 && timestamp.bytes().all(|b| b.is_ascii_digit()),
        "{name}: verified a malformed timestamp {timestamp:?}"
    );
    let ts: u64 = timestamp
        .parse()
        .unwrap_or_else(|_| panic!("{name}: timestamp {timestamp:?} is not a u64"));
    assert!(
        in_window(ts, TimestampUnit::Seconds, now, case.verifier.tolerance()),
        "{name}: verified timestamp {ts} outside the window"
    );
    let mut mac = Hmac::<Sha256>::new_from_slice(case.secrets[k].as_bytes())
        .unwrap_or_else(|e| panic!("{name}: HMAC key: {e}"));
    mac.update(timestamp.as_bytes());
    mac.update(token.as_bytes());
    let expected = hex::encode(mac.finalize().into_bytes());
    assert!(
        signature.trim().eq_ignore_ascii_case(&expected),
        "{name}: verified a signature that is not HMAC(secret {k}, timestamp + token): {signature:?}"
    );
    let replay: [u8; 32] = Sha256::new()
        .chain_update(b"id\0")
        .chain_update(token.as_bytes())
        .finalize()
        .into();
    assert_eq!(
        v.replay_id(),
        &replay,
        "{name}: replay id does not rest on the signed token"
    );
}

fn offered_token<'r>(raw: &'r [u8], prefix: &str) -> Option<&'r [u8]> {
    let p = prefix.as_bytes();
    (raw.len() >= p.len() && raw[..p.len()].eq_ignore_ascii_case(p))
        .then(|| raw[p.len()..].trim_ascii())
}

/// The POST method every target sends with (the generic `{method}` scheme signs it).
pub static POST: Method = Method::POST;
