//! Signature verification: one declarative engine, `Scheme`, through which every provider is defined.
//!
//! A `Scheme` says where the signature is, how it is encoded, which bytes are
//! signed (a template over the id, timestamp, body, URL and method), and how
//! the key is derived from the configured secret. `Verifier::verify` is the
//! only way to obtain a `Verified`, and `Verified` is what forwarding takes:
//! an unverified request cannot be forwarded because that does not compile.
//!
//! Verification reads no clock (`now` is passed in), works over the raw bytes
//! received, and compares MACs in constant time.

pub mod providers;

use std::fmt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig};
use base64::engine::{DecodePaddingMode, Engine};
use hmac::{Hmac, Mac};
use http::{HeaderMap, HeaderName, Method};
use sha2::{Digest, Sha256, Sha512};
use subtle::ConstantTimeEq;

/// Why a request failed verification. Fixed, HTTP-free; `proxy.rs` maps it to a response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rejection {
    /// A header the scheme needs (signature, id or timestamp) is absent or empty.
    MissingSignature,
    /// No signature entry matches any configured secret (or none could be decoded).
    InvalidSignature,
    /// The timestamp is malformed or outside the tolerance window, in either direction.
    StaleTimestamp,
}

/// Proof that a request was verified. Only `Verifier::verify` constructs it.
#[derive(Debug, Clone)]
pub struct Verified {
    secret_index: usize,
    message_id: Option<String>,
    replay_id: [u8; 32],
}

impl Verified {
    /// Position of the secret that matched in the route's `secrets` list.
    pub fn secret_index(&self) -> usize {
        self.secret_index
    }

    /// The provider's message id (for logs), when it sends one.
    pub fn message_id(&self) -> Option<&str> {
        self.message_id.as_deref()
    }

    /// What the replay store deduplicates on: the signed id where the provider
    /// signs one, otherwise a hash of the signature itself.
    pub fn replay_id(&self) -> &[u8; 32] {
        &self.replay_id
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Algorithm {
    Sha256,
    Sha512,
    Sha1,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    Hex,
    Base64,
    Base64Url,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyEncoding {
    /// The secret's bytes as written.
    Utf8,
    Base64,
    Hex,
    /// Svix / Standard Webhooks: base64 after an optional `whsec_` prefix.
    Whsec,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SignatureFormat {
    /// The whole header value after an optional prefix (`sha256=`, `v0=`).
    Plain { prefix: String },
    /// Space-separated `version,signature` entries (Svix, Standard Webhooks):
    /// only entries of `version` count; others are ignored, malformed ones skipped.
    Versioned { version: String },
    /// `key=value` pairs split by `separator` (Stripe `t=…,v1=…`, Paddle `ts=…;h1=…`):
    /// every pair named `key` is a candidate.
    Params { separator: char, key: String },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TimestampSource {
    Header(HeaderName),
    /// A pair inside the signature header (`t` for Stripe, `ts` for Paddle).
    Param(String),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimestampUnit {
    Seconds,
    Millis,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TimestampSpec {
    pub source: TimestampSource,
    pub unit: TimestampUnit,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdSpec {
    pub header: HeaderName,
    /// Whether the id is part of the signed bytes; only a signed id may be
    /// trusted alone for deduplication.
    pub signed: bool,
}

/// One piece of the signed-bytes template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Part {
    Text(String),
    Id,
    Timestamp,
    Body,
    Url,
    Method,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scheme {
    pub signature_header: HeaderName,
    pub format: SignatureFormat,
    pub algorithm: Algorithm,
    pub encoding: Encoding,
    pub signed: Vec<Part>,
    pub id: Option<IdSpec>,
    pub timestamp: Option<TimestampSpec>,
    pub default_tolerance: Option<Duration>,
    pub key_encoding: KeyEncoding,
}

impl Scheme {
    /// Checks the scheme is coherent: the template only uses what the scheme provides.
    pub fn validate(&self) -> Result<(), String> {
        for part in &self.signed {
            match part {
                Part::Id if self.id.is_none() => {
                    return Err("the signed template uses {id} but no id header is set".into())
                }
                Part::Timestamp if self.timestamp.is_none() => {
                    return Err(
                        "the signed template uses {timestamp} but no timestamp header is set"
                            .into(),
                    )
                }
                _ => {}
            }
        }
        if let Some(ts) = &self.timestamp {
            if !self.signed.contains(&Part::Timestamp) {
                return Err(
                    "the timestamp is not part of the signed template, so it proves nothing".into(),
                );
            }
            if let TimestampSource::Param(_) = ts.source {
                if !matches!(self.format, SignatureFormat::Params { .. }) {
                    return Err("a timestamp parameter needs a key=value signature format".into());
                }
            }
        }
        if !self.signed.contains(&Part::Body) {
            return Err("the signed template must include {body}".into());
        }
        Ok(())
    }

    /// Whether a timestamp window applies (and so `tolerance` means something).
    pub fn has_timestamp(&self) -> bool {
        self.timestamp.is_some()
    }
}

/// The MAC state with the key already absorbed, cloned per request.
#[derive(Clone)]
enum PreparedMac {
    Sha256(Hmac<Sha256>),
    Sha512(Hmac<Sha512>),
    Sha1(Hmac<sha1::Sha1>),
}

impl PreparedMac {
    fn new(algorithm: Algorithm, key: &[u8]) -> Self {
        // HMAC accepts keys of any length, so `new_from_slice` cannot fail here.
        match algorithm {
            Algorithm::Sha256 => PreparedMac::Sha256(
                <Hmac<Sha256> as Mac>::new_from_slice(key).unwrap_or_else(|_| unreachable!()),
            ),
            Algorithm::Sha512 => PreparedMac::Sha512(
                <Hmac<Sha512> as Mac>::new_from_slice(key).unwrap_or_else(|_| unreachable!()),
            ),
            Algorithm::Sha1 => PreparedMac::Sha1(
                <Hmac<sha1::Sha1> as Mac>::new_from_slice(key).unwrap_or_else(|_| unreachable!()),
            ),
        }
    }

    fn update(&mut self, bytes: &[u8]) {
        match self {
            PreparedMac::Sha256(m) => m.update(bytes),
            PreparedMac::Sha512(m) => m.update(bytes),
            PreparedMac::Sha1(m) => m.update(bytes),
        }
    }

    fn finalize(self) -> Tag {
        let mut tag = Tag {
            bytes: [0; 64],
            len: 0,
        };
        let out = match self {
            PreparedMac::Sha256(m) => m.finalize().into_bytes().to_vec(),
            PreparedMac::Sha512(m) => m.finalize().into_bytes().to_vec(),
            PreparedMac::Sha1(m) => m.finalize().into_bytes().to_vec(),
        };
        tag.len = out.len();
        tag.bytes[..out.len()].copy_from_slice(&out);
        tag
    }
}

struct Tag {
    bytes: [u8; 64],
    len: usize,
}

impl Tag {
    fn as_slice(&self) -> &[u8] {
        &self.bytes[..self.len]
    }
}

/// A key derived from one configured secret. Never printed.
#[derive(Clone)]
struct Key {
    mac: PreparedMac,
}

impl fmt::Debug for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Key(<redacted>)")
    }
}

/// What verification looks at: the request as received, borrowed.
pub struct Input<'a> {
    pub method: &'a Method,
    /// Path and query exactly as received.
    pub path_and_query: &'a str,
    pub headers: &'a HeaderMap,
    pub body: &'a [u8],
    /// The URL the provider called (route `public_url`), for schemes that sign it.
    pub public_url: Option<&'a str>,
}

/// What `Verifier::sign` signs: a message as a provider would send it.
#[derive(Debug, Clone, Copy)]
pub struct Message<'a> {
    pub body: &'a [u8],
    pub id: &'a str,
    pub timestamp: SystemTime,
    pub method: &'a Method,
    pub path_and_query: &'a str,
    pub public_url: Option<&'a str>,
}

/// A scheme with its keys and tolerance: one per route.
#[derive(Debug, Clone)]
pub struct Verifier {
    scheme: Scheme,
    keys: Vec<Key>,
    tolerance: Duration,
}

/// Why a secret cannot become a key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyError(pub String);

impl Verifier {
    /// Derives one key per secret. `tolerance` of `None` takes the scheme's default.
    pub fn new(
        scheme: Scheme,
        secrets: &[&[u8]],
        tolerance: Option<Duration>,
    ) -> Result<Self, (usize, KeyError)> {
        let keys = secrets
            .iter()
            .enumerate()
            .map(|(i, s)| {
                decode_key(scheme.key_encoding, s)
                    .map(|bytes| Key {
                        mac: PreparedMac::new(scheme.algorithm, &bytes),
                    })
                    .map_err(|e| (i, e))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let tolerance = tolerance
            .or(scheme.default_tolerance)
            .unwrap_or(Duration::from_secs(300));
        Ok(Verifier {
            scheme,
            keys,
            tolerance,
        })
    }

    pub fn scheme(&self) -> &Scheme {
        &self.scheme
    }

    /// Verifies `input` at time `now`.
    pub fn verify(&self, input: &Input<'_>, now: SystemTime) -> Result<Verified, Rejection> {
        let scheme = &self.scheme;
        let raw =
            header(input.headers, &scheme.signature_header).ok_or(Rejection::MissingSignature)?;

        let id = match &scheme.id {
            Some(spec) if spec.signed => {
                Some(header(input.headers, &spec.header).ok_or(Rejection::MissingSignature)?)
            }
            Some(spec) => header(input.headers, &spec.header),
            None => None,
        };

        let timestamp = match &scheme.timestamp {
            None => None,
            Some(spec) => {
                let text = match &spec.source {
                    TimestampSource::Header(name) => header(input.headers, name),
                    TimestampSource::Param(key) => param(raw, &scheme.format, key),
                }
                .ok_or(Rejection::MissingSignature)?;
                check_timestamp(text, spec.unit, self.tolerance, now)?;
                Some(text)
            }
        };

        let candidates = candidates(raw, &scheme.format, scheme.encoding);
        if candidates.is_empty() {
            return Err(Rejection::InvalidSignature);
        }

        let url = scheme
            .signed
            .contains(&Part::Url)
            .then(|| signed_url(input));

        let mut matched = None;
        for (i, key) in self.keys.iter().enumerate() {
            let mut mac = key.mac.clone();
            for part in &scheme.signed {
                match part {
                    Part::Text(t) => mac.update(t.as_bytes()),
                    Part::Id => mac.update(id.unwrap_or(&[])),
                    Part::Timestamp => mac.update(timestamp.unwrap_or(&[])),
                    Part::Body => mac.update(input.body),
                    Part::Url => mac.update(url.as_deref().unwrap_or("").as_bytes()),
                    Part::Method => mac.update(input.method.as_str().as_bytes()),
                }
            }
            let tag = mac.finalize();
            // Every candidate is compared (no early exit inside the comparison);
            // `ct_eq` is constant-time for equal lengths and false otherwise.
            let hit = candidates.iter().fold(subtle::Choice::from(0), |acc, c| {
                acc | tag.as_slice().ct_eq(c.as_slice())
            });
            if bool::from(hit) {
                matched = Some((i, tag));
                break;
            }
        }
        let (secret_index, tag) = matched.ok_or(Rejection::InvalidSignature)?;

        let signed_id = scheme.id.as_ref().is_some_and(|s| s.signed);
        let replay_id: [u8; 32] = match id {
            Some(id) if signed_id => Sha256::new()
                .chain_update(b"id\0")
                .chain_update(id)
                .finalize()
                .into(),
            _ => Sha256::new()
                .chain_update(b"sig\0")
                .chain_update(tag.as_slice())
                .finalize()
                .into(),
        };
        Ok(Verified {
            secret_index,
            message_id: id.map(printable_id),
            replay_id,
        })
    }

    /// The headers a provider would send for `body`, signed with secret `key_index`.
    /// Used by `hookgate sign` and the demo; tests sign with the providers' own libraries.
    pub fn sign(&self, key_index: usize, msg: &Message<'_>) -> Vec<(HeaderName, String)> {
        let Message {
            body,
            id,
            timestamp,
            method,
            path_and_query,
            public_url,
        } = *msg;
        let scheme = &self.scheme;
        let ts = scheme.timestamp.as_ref().map(|spec| {
            let since = timestamp.duration_since(UNIX_EPOCH).unwrap_or_default();
            match spec.unit {
                TimestampUnit::Seconds => since.as_secs().to_string(),
                TimestampUnit::Millis => since.as_millis().to_string(),
            }
        });
        let empty = HeaderMap::new();
        let input = Input {
            method,
            path_and_query,
            headers: &empty,
            body,
            public_url,
        };
        let url = signed_url(&input);
        let Some(key) = self.keys.get(key_index) else {
            return Vec::new();
        };
        let mut mac = key.mac.clone();
        for part in &scheme.signed {
            match part {
                Part::Text(t) => mac.update(t.as_bytes()),
                Part::Id => mac.update(id.as_bytes()),
                Part::Timestamp => mac.update(ts.as_deref().unwrap_or("").as_bytes()),
                Part::Body => mac.update(body),
                Part::Url => mac.update(url.as_bytes()),
                Part::Method => mac.update(method.as_str().as_bytes()),
            }
        }
        let sig = encode(scheme.encoding, mac.finalize().as_slice());
        let mut headers = Vec::new();
        let ts_param = match &scheme.timestamp {
            Some(TimestampSpec {
                source: TimestampSource::Param(k),
                ..
            }) => Some(k.as_str()),
            _ => None,
        };
        let value = match &scheme.format {
            SignatureFormat::Plain { prefix } => format!("{prefix}{sig}"),
            SignatureFormat::Versioned { version } => format!("{version},{sig}"),
            SignatureFormat::Params { separator, key } => match (ts_param, &ts) {
                (Some(tk), Some(ts)) => format!("{tk}={ts}{separator}{key}={sig}"),
                _ => format!("{key}={sig}"),
            },
        };
        if let Some(spec) = &scheme.id {
            headers.push((spec.header.clone(), id.to_string()));
        }
        if let (
            Some(TimestampSpec {
                source: TimestampSource::Header(name),
                ..
            }),
            Some(ts),
        ) = (&scheme.timestamp, &ts)
        {
            headers.push((name.clone(), ts.clone()));
        }
        headers.push((scheme.signature_header.clone(), value));
        headers
    }
}

/// A header's value, or `None` when absent or blank. Several headers of the same
/// name are not merged: the first is used, as providers send one.
fn header<'h>(headers: &'h HeaderMap, name: &HeaderName) -> Option<&'h [u8]> {
    let v = headers.get(name)?.as_bytes();
    let v = v.trim_ascii();
    (!v.is_empty()).then_some(v)
}

fn param<'h>(raw: &'h [u8], format: &SignatureFormat, key: &str) -> Option<&'h [u8]> {
    let SignatureFormat::Params { separator, .. } = format else {
        return None;
    };
    let sep = u8::try_from(*separator).ok()?;
    raw.split(|b| *b == sep).find_map(|pair| {
        let pair = pair.trim_ascii();
        let eq = pair.iter().position(|b| *b == b'=')?;
        (&pair[..eq] == key.as_bytes()).then(|| &pair[eq + 1..])
    })
}

/// The decoded signatures a header offers; malformed entries are skipped so that
/// they cannot hide a later valid one.
fn candidates(raw: &[u8], format: &SignatureFormat, encoding: Encoding) -> Vec<Vec<u8>> {
    let decode_one = |text: &[u8]| decode(encoding, text.trim_ascii());
    match format {
        SignatureFormat::Plain { prefix } => {
            let prefix = prefix.as_bytes();
            let rest =
                if raw.len() >= prefix.len() && raw[..prefix.len()].eq_ignore_ascii_case(prefix) {
                    &raw[prefix.len()..]
                } else {
                    return Vec::new();
                };
            decode_one(rest).into_iter().collect()
        }
        SignatureFormat::Versioned { version } => raw
            .split(|b| *b == b' ')
            .filter_map(|entry| {
                let comma = entry.iter().position(|b| *b == b',')?;
                (&entry[..comma] == version.as_bytes()).then(|| decode_one(&entry[comma + 1..]))?
            })
            .collect(),
        SignatureFormat::Params { separator, key } => {
            let Ok(sep) = u8::try_from(*separator) else {
                return Vec::new();
            };
            raw.split(|b| *b == sep)
                .filter_map(|pair| {
                    let pair = pair.trim_ascii();
                    let eq = pair.iter().position(|b| *b == b'=')?;
                    (&pair[..eq] == key.as_bytes()).then(|| decode_one(&pair[eq + 1..]))?
                })
                .collect()
        }
    }
}

/// Digits only, then within `tolerance` of `now` in both directions (the boundary is accepted).
fn check_timestamp(
    text: &[u8],
    unit: TimestampUnit,
    tolerance: Duration,
    now: SystemTime,
) -> Result<(), Rejection> {
    if text.is_empty() || text.len() > 19 || !text.iter().all(u8::is_ascii_digit) {
        return Err(Rejection::StaleTimestamp);
    }
    let ts: u64 = std::str::from_utf8(text)
        .ok()
        .and_then(|s| s.parse().ok())
        .ok_or(Rejection::StaleTimestamp)?;
    let since = now.duration_since(UNIX_EPOCH).unwrap_or_default();
    // Whole units, as the providers' own libraries compare.
    let (now, tolerance) = match unit {
        TimestampUnit::Seconds => (since.as_secs(), tolerance.as_secs()),
        TimestampUnit::Millis => (
            u64::try_from(since.as_millis()).unwrap_or(u64::MAX),
            u64::try_from(tolerance.as_millis()).unwrap_or(u64::MAX),
        ),
    };
    if now.abs_diff(ts) > tolerance {
        return Err(Rejection::StaleTimestamp);
    }
    Ok(())
}

fn signed_url(input: &Input<'_>) -> String {
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

/// Ids are logged: keep them printable and bounded.
fn printable_id(id: &[u8]) -> String {
    id.iter()
        .take(128)
        .map(|b| {
            if b.is_ascii_graphic() {
                char::from(*b)
            } else {
                '?'
            }
        })
        .collect()
}

const BASE64_LENIENT: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);
const BASE64URL_LENIENT: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::URL_SAFE,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

fn decode(encoding: Encoding, text: &[u8]) -> Option<Vec<u8>> {
    if text.is_empty() {
        return None;
    }
    match encoding {
        Encoding::Hex => hex::decode(text).ok(),
        Encoding::Base64 => BASE64_LENIENT.decode(text).ok(),
        Encoding::Base64Url => BASE64URL_LENIENT.decode(text).ok(),
    }
}

pub fn encode(encoding: Encoding, bytes: &[u8]) -> String {
    match encoding {
        Encoding::Hex => hex::encode(bytes),
        Encoding::Base64 => base64::engine::general_purpose::STANDARD.encode(bytes),
        Encoding::Base64Url => base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes),
    }
}

pub fn decode_key(encoding: KeyEncoding, secret: &[u8]) -> Result<Vec<u8>, KeyError> {
    let key = match encoding {
        KeyEncoding::Utf8 => secret.to_vec(),
        KeyEncoding::Hex => hex::decode(secret)
            .map_err(|_| KeyError("is not valid hex (key_encoding = \"hex\")".into()))?,
        KeyEncoding::Base64 => BASE64_LENIENT
            .decode(secret)
            .map_err(|_| KeyError("is not valid base64 (key_encoding = \"base64\")".into()))?,
        KeyEncoding::Whsec => {
            let b64 = secret.strip_prefix(b"whsec_").unwrap_or(secret);
            BASE64_LENIENT.decode(b64).map_err(|_| {
                KeyError(
                    "is not a Svix/Standard Webhooks secret: expected whsec_ followed by base64"
                        .into(),
                )
            })?
        }
    };
    if key.is_empty() {
        return Err(KeyError("decodes to an empty key".into()));
    }
    Ok(key)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
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
            body,
            public_url: None,
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

    #[test]
    fn sign_then_verify_round_trips_for_every_builtin() {
        for name in providers::NAMES {
            let scheme = providers::builtin(name).unwrap();
            let secret: &[u8] = if scheme.key_encoding == KeyEncoding::Whsec {
                b"whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
            } else {
                b"a-shared-secret"
            };
            let v = Verifier::new(scheme, &[secret], None).unwrap();
            let body = b"\xff\xfe not utf-8 \x00";
            let headers: HeaderMap = v
                .sign(0, &msg(body, at(1_700_000_000)))
                .into_iter()
                .map(|(k, val)| (k, val.parse().unwrap()))
                .collect();
            let ok = v.verify(&input(&headers, body), at(1_700_000_000));
            assert!(ok.is_ok(), "{name}: {ok:?}");
            let mut tampered = body.to_vec();
            tampered[0] ^= 1;
            assert_eq!(
                v.verify(&input(&headers, &tampered), at(1_700_000_000))
                    .unwrap_err(),
                Rejection::InvalidSignature,
                "{name}"
            );
        }
    }

    #[test]
    fn unsigned_ids_dedup_on_the_signature_not_the_header() {
        let v = Verifier::new(providers::builtin("levanta").unwrap(), &[b"k"], None).unwrap();
        let signed = v.sign(0, &msg(b"{}", at(0)));
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
}
