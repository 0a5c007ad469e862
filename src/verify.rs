//! Signature verification: one declarative engine, `Scheme`, through which every provider is defined.
//!
//! A `Scheme` says where the signature is, how it is encoded, which bytes are
//! signed (a template over the id, timestamp, body, URL and method), and how
//! the key is derived from the configured secret. `Verifier::verify` is the
//! only way to obtain a `Verified`, and forwarding takes a `Pass`, which is
//! made from a `Verified` or, for a shadow-mode route only, by the explicitly
//! named `Pass::shadow_unverified`: forwarding an unverified request by
//! accident does not compile.
//!
//! The few providers that do not fit "HMAC over a template" are variants of
//! the same engine, not separate verifiers: a shared token compared in
//! constant time (`Algorithm::Token`, GitLab), Ed25519 public keys chosen by
//! the secret's `whpk_` prefix (Standard Webhooks / Svix `v1a`), a timestamp
//! read from the signed JSON body (`TimestampSource::JsonBody`, Linear), and
//! Twilio's URL + sorted form parameters (`Part::UrlAnyPort`, `Part::FormParams`).
//!
//! Verification reads no clock (`now` is passed in), works over the raw bytes
//! received, and compares MACs in constant time.

pub mod generic;
pub mod providers;

use std::borrow::Cow;
use std::fmt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig};
use base64::engine::{DecodePaddingMode, Engine};
use bytes::Bytes;
use ed25519_dalek::{Signer, SigningKey, VerifyingKey};
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

/// Permission to forward a request: `Forwarder::forward` requires one.
#[derive(Debug, Clone, Copy)]
pub struct Pass {
    _private: (),
}

impl Pass {
    /// Shadow mode only: forward a request that failed verification, on purpose.
    pub fn shadow_unverified() -> Pass {
        Pass { _private: () }
    }
}

impl Verified {
    /// The permission to forward this verified request.
    pub fn pass(&self) -> Pass {
        Pass { _private: () }
    }

    /// Position of the secret that matched in the route's `secrets` list.
    pub fn secret_index(&self) -> usize {
        self.secret_index
    }

    /// The provider's message id (for logs), when it sends one.
    pub fn message_id(&self) -> Option<&str> {
        self.message_id.as_deref()
    }

    /// What the replay store deduplicates on: the signed id where the provider
    /// signs one, otherwise a hash of the signature itself, mixed with the
    /// provider's (unsigned) id header when it sends one.
    pub fn replay_id(&self) -> &[u8; 32] {
        &self.replay_id
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Algorithm {
    Sha256,
    Sha512,
    Sha1,
    /// No MAC: the header carries the shared secret itself (GitLab), compared
    /// in constant time (as SHA-256 digests, so the length does not leak either).
    Token,
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
    /// Svix / Standard Webhooks: base64 after an optional `whsec_` prefix; a
    /// `whpk_` (public) or `whsk_` (signing) prefix selects an Ed25519 key for
    /// the scheme's asymmetric (`v1a`) entries instead.
    Whsec,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SignatureFormat {
    /// The whole header value after an optional prefix (`sha256=`, `v0=`).
    Plain { prefix: String },
    /// Space-separated `version,signature` entries (Svix, Standard Webhooks):
    /// only entries of `version` count for HMAC keys, and of `asymmetric`
    /// (`v1a`) for Ed25519 keys; others are ignored, malformed ones skipped.
    Versioned {
        version: String,
        asymmetric: Option<String>,
    },
    /// `key=value` pairs split by `separator` (Stripe `t=…,v1=…`, Paddle `ts=…;h1=…`):
    /// every pair named `key` is a candidate.
    Params { separator: char, key: String },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TimestampSource {
    Header(HeaderName),
    /// A pair inside the signature header (`t` for Stripe, `ts` for Paddle).
    Param(String),
    /// A top-level integer field of the JSON body (Linear `webhookTimestamp`):
    /// signed because the body is.
    JsonBody(String),
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
    Method,
    /// The URL the provider called: route `public_url` + `?` + the query received.
    Url,
    /// Twilio: the URL, tried both without its port and with it (the default
    /// port added when absent), as Twilio's own validators do.
    UrlAnyPort,
    /// Twilio: the form parameters of the body sorted by name then value, each
    /// written as name followed by value. When the URL's query carries
    /// `bodySHA256` (JSON bodies), this is empty and the body's SHA-256 must
    /// equal that parameter instead.
    FormParams,
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
    /// Checks the scheme is coherent: the template only uses what the scheme
    /// provides, covers the body, and a timestamp is only accepted if signed.
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
        if self.algorithm == Algorithm::Token {
            if self.timestamp.is_some() || !self.signed.is_empty() {
                return Err("a token scheme signs nothing: no template, no timestamp".into());
            }
            return Ok(());
        }
        if let Some(ts) = &self.timestamp {
            match &ts.source {
                TimestampSource::Header(_) | TimestampSource::Param(_)
                    if !self.signed.contains(&Part::Timestamp) =>
                {
                    return Err(
                        "the timestamp is not part of the signed template, so it proves nothing"
                            .into(),
                    );
                }
                TimestampSource::Param(_)
                    if !matches!(self.format, SignatureFormat::Params { .. }) =>
                {
                    return Err("a timestamp parameter needs a key=value signature format".into());
                }
                TimestampSource::JsonBody(_) if !self.signed.contains(&Part::Body) => {
                    return Err("a timestamp in the body needs {body} in the template".into());
                }
                _ => {}
            }
        }
        if !self.signed.contains(&Part::Body) && !self.signed.contains(&Part::FormParams) {
            return Err("the signed template must include {body}".into());
        }
        Ok(())
    }

    /// The request headers verification reads (signature, id, timestamp):
    /// each must arrive once, since the application reads them too.
    pub fn read_headers(&self) -> Vec<HeaderName> {
        let id = self.id.as_ref().map(|spec| &spec.header);
        let timestamp = match self.timestamp.as_ref().map(|spec| &spec.source) {
            Some(TimestampSource::Header(name)) => Some(name),
            Some(TimestampSource::Param(_) | TimestampSource::JsonBody(_)) | None => None,
        };
        std::iter::once(&self.signature_header)
            .chain(id)
            .chain(timestamp)
            .cloned()
            .collect()
    }

    /// Whether a timestamp window applies (and so `tolerance` means something).
    pub fn has_timestamp(&self) -> bool {
        self.timestamp.is_some()
    }

    /// Whether the signed bytes include the URL (the route then needs `public_url`).
    pub fn signs_url(&self) -> bool {
        self.signed.contains(&Part::Url) || self.signed.contains(&Part::UrlAnyPort)
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
    /// `None` for `Algorithm::Token`, which has no MAC.
    fn new(algorithm: Algorithm, key: &[u8]) -> Option<Self> {
        // HMAC accepts keys of any length, so `new_from_slice` cannot fail here.
        Some(match algorithm {
            Algorithm::Sha256 => PreparedMac::Sha256(
                <Hmac<Sha256> as Mac>::new_from_slice(key).unwrap_or_else(|_| unreachable!()),
            ),
            Algorithm::Sha512 => PreparedMac::Sha512(
                <Hmac<Sha512> as Mac>::new_from_slice(key).unwrap_or_else(|_| unreachable!()),
            ),
            Algorithm::Sha1 => PreparedMac::Sha1(
                <Hmac<sha1::Sha1> as Mac>::new_from_slice(key).unwrap_or_else(|_| unreachable!()),
            ),
            Algorithm::Token => return None,
        })
    }

    fn update(&mut self, bytes: &[u8]) {
        match self {
            PreparedMac::Sha256(m) => m.update(bytes),
            PreparedMac::Sha512(m) => m.update(bytes),
            PreparedMac::Sha1(m) => m.update(bytes),
        }
    }

    fn finalize(self) -> Tag {
        match self {
            PreparedMac::Sha256(m) => Tag::new(&m.finalize().into_bytes()),
            PreparedMac::Sha512(m) => Tag::new(&m.finalize().into_bytes()),
            PreparedMac::Sha1(m) => Tag::new(&m.finalize().into_bytes()),
        }
    }
}

/// A MAC, an Ed25519 signature or a digest: at most 64 bytes, no allocation.
struct Tag {
    bytes: [u8; 64],
    len: usize,
}

impl Tag {
    fn new(out: &[u8]) -> Self {
        let len = out.len().min(64);
        let mut bytes = [0; 64];
        bytes[..len].copy_from_slice(&out[..len]);
        Tag { bytes, len }
    }

    fn as_slice(&self) -> &[u8] {
        &self.bytes[..self.len]
    }
}

/// A key derived from one configured secret. Never printed.
#[derive(Clone)]
enum Key {
    Mac(PreparedMac),
    /// The token itself (for `sign`) and its SHA-256 (what is compared).
    Token {
        token: Vec<u8>,
        digest: [u8; 32],
    },
    /// A `whpk_` public key verifies only; a `whsk_` signing key can also sign.
    Ed25519 {
        public: VerifyingKey,
        signing: Option<Box<SigningKey>>,
    },
}

impl fmt::Debug for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Key(<redacted>)")
    }
}

/// A request body as received: one slice, or the blocks it was read into.
/// Blocks are never joined for verification (a MAC reads them in order), so a
/// large body is held once; the few schemes that parse the body (a JSON
/// timestamp, Twilio's form) read a contiguous copy.
#[derive(Debug, Clone, Copy)]
pub enum Payload<'a> {
    Whole(&'a [u8]),
    Blocks(&'a [Bytes]),
}

impl<'a> Payload<'a> {
    /// The body's bytes, in order, block by block.
    pub fn chunks(self) -> impl Iterator<Item = &'a [u8]> {
        let (whole, blocks): (Option<&'a [u8]>, &'a [Bytes]) = match self {
            Payload::Whole(b) => (Some(b), &[]),
            Payload::Blocks(blocks) => (None, blocks),
        };
        whole.into_iter().chain(blocks.iter().map(|b| &b[..]))
    }

    pub fn len(self) -> usize {
        self.chunks().map(<[u8]>::len).sum()
    }

    pub fn is_empty(self) -> bool {
        self.len() == 0
    }

    /// The body in one slice: borrowed when it is one, copied otherwise.
    pub fn contiguous(self) -> Cow<'a, [u8]> {
        match self {
            Payload::Whole(b) => Cow::Borrowed(b),
            Payload::Blocks([one]) => Cow::Borrowed(&one[..]),
            Payload::Blocks(blocks) => Cow::Owned(blocks.concat()),
        }
    }
}

/// What verification looks at: the request as received, borrowed.
pub struct Input<'a> {
    pub method: &'a Method,
    /// Path and query exactly as received.
    pub path_and_query: &'a str,
    pub headers: &'a HeaderMap,
    pub body: Payload<'a>,
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

/// Why `Verifier::try_sign` cannot sign.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignError(pub String);

impl fmt::Display for SignError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The bytes the template's parts stand for, in one request or message.
struct Fields<'a> {
    id: &'a [u8],
    timestamp: &'a [u8],
    body: Payload<'a>,
    method: &'a [u8],
    form: &'a [u8],
}

/// Feeds the signed bytes, part by part, to `out` (a MAC, or a buffer for Ed25519).
fn feed(parts: &[Part], f: &Fields<'_>, url: &str, out: &mut impl FnMut(&[u8])) {
    for part in parts {
        match part {
            Part::Text(t) => out(t.as_bytes()),
            Part::Id => out(f.id),
            Part::Timestamp => out(f.timestamp),
            Part::Body => {
                for chunk in f.body.chunks() {
                    out(chunk);
                }
            }
            Part::Url | Part::UrlAnyPort => out(url.as_bytes()),
            Part::Method => out(f.method),
            Part::FormParams => out(f.form),
        }
    }
}

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
            .map(|(i, s)| derive_key(&scheme, s).map_err(|e| (i, e)))
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

    /// The timestamp window in force (the route's `tolerance` or the provider's default).
    pub fn tolerance(&self) -> Duration {
        self.tolerance
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

        // A timestamp inside the body is read after the MAC check (unless the
        // template itself uses it): unauthenticated JSON is never parsed.
        let json_after_mac = match &scheme.timestamp {
            Some(TimestampSpec {
                source: TimestampSource::JsonBody(field),
                unit,
            }) if !scheme.signed.contains(&Part::Timestamp) => Some((field, *unit)),
            _ => None,
        };
        let json_ts;
        let timestamp: &[u8] = match &scheme.timestamp {
            None => &[],
            Some(_) if json_after_mac.is_some() => &[],
            Some(spec) => {
                let text = match &spec.source {
                    TimestampSource::Header(name) => header(input.headers, name),
                    TimestampSource::Param(key) => param(raw, &scheme.format, key),
                    TimestampSource::JsonBody(field) => {
                        json_ts = json_timestamp(&input.body.contiguous(), field)?;
                        Some(json_ts.as_bytes())
                    }
                }
                .ok_or(Rejection::MissingSignature)?;
                check_timestamp(text, spec.unit, self.tolerance, now)?;
                text
            }
        };

        let url = scheme.signs_url().then(|| signed_url(input));
        let urls: Vec<String> = match &url {
            Some(u) if scheme.signed.contains(&Part::UrlAnyPort) => port_variants(u),
            Some(u) => vec![u.clone()],
            None => vec![String::new()],
        };
        let form = if scheme.signed.contains(&Part::FormParams) {
            form_params(url.as_deref().unwrap_or(""), &input.body.contiguous())?
        } else {
            Vec::new()
        };
        let fields = Fields {
            id: id.unwrap_or(&[]),
            timestamp,
            body: input.body,
            method: input.method.as_str().as_bytes(),
            form: &form,
        };

        let (secret_index, tag) = self.match_key(raw, &fields, &urls)?;
        if let Some((field, unit)) = json_after_mac {
            let text = json_timestamp(&input.body.contiguous(), field)?;
            check_timestamp(text.as_bytes(), unit, self.tolerance, now)?;
        }

        let signed_id = scheme.id.as_ref().is_some_and(|s| s.signed);
        let replay_id: [u8; 32] = match id {
            Some(id) if signed_id => Sha256::new()
                .chain_update(b"id\0")
                .chain_update(id)
                .finalize()
                .into(),
            // An unsigned id header proves nothing: anyone replaying a captured
            // delivery could rewrite or drop it to slip past deduplication. So
            // dedup rests on what was authenticated (the MAC, the Ed25519
            // signature, or for a bare token the body's digest), and the id
            // header only names the delivery in logs. Genuine deliveries of
            // byte-identical bodies are, by DESIGN §4, the same delivery.
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

    /// The first key (in configuration order) that a signature entry matches,
    /// with what deduplication hashes: the MAC, the Ed25519 signature, or for
    /// a token (the same on every delivery) the body's digest.
    fn match_key(
        &self,
        raw: &[u8],
        fields: &Fields<'_>,
        urls: &[String],
    ) -> Result<(usize, Tag), Rejection> {
        let scheme = &self.scheme;
        let mac_candidates = candidates(raw, &scheme.format, scheme.encoding, false);
        let asym_candidates = match &scheme.format {
            SignatureFormat::Versioned {
                asymmetric: Some(_),
                ..
            } => candidates(raw, &scheme.format, Encoding::Base64, true),
            _ => Vec::new(),
        };
        let token_candidate = (scheme.algorithm == Algorithm::Token)
            .then(|| token_digest(raw, &scheme.format))
            .flatten();
        if mac_candidates.is_empty() && asym_candidates.is_empty() && token_candidate.is_none() {
            return Err(Rejection::InvalidSignature);
        }
        let mut message: Option<Vec<u8>> = None;
        for (i, key) in self.keys.iter().enumerate() {
            match key {
                Key::Mac(prepared) => {
                    for url in urls {
                        let mut mac = prepared.clone();
                        feed(&scheme.signed, fields, url, &mut |b| mac.update(b));
                        let tag = mac.finalize();
                        // Every candidate is compared (no early exit inside the
                        // comparison); `ct_eq` is constant-time for equal lengths
                        // and false otherwise.
                        let hit = mac_candidates
                            .iter()
                            .fold(subtle::Choice::from(0), |acc, c| {
                                acc | tag.as_slice().ct_eq(c.as_slice())
                            });
                        if bool::from(hit) {
                            return Ok((i, tag));
                        }
                    }
                }
                Key::Token { digest, .. } => {
                    if let Some(c) = &token_candidate {
                        if bool::from(digest.ct_eq(c)) {
                            let digest = fields
                                .body
                                .chunks()
                                .fold(Sha256::new(), |h, c| h.chain_update(c))
                                .finalize();
                            return Ok((i, Tag::new(&digest)));
                        }
                    }
                }
                Key::Ed25519 { public, .. } => {
                    if asym_candidates.is_empty() {
                        continue;
                    }
                    // Ed25519 verifies a whole message, not a stream: built once.
                    let msg = message.get_or_insert_with(|| {
                        let mut buf = Vec::with_capacity(fields.body.len() + 64);
                        let url = urls.first().map_or("", String::as_str);
                        feed(&scheme.signed, fields, url, &mut |b| {
                            buf.extend_from_slice(b)
                        });
                        buf
                    });
                    for c in &asym_candidates {
                        let Ok(bytes) = <[u8; 64]>::try_from(c.as_slice()) else {
                            continue;
                        };
                        let sig = ed25519_dalek::Signature::from_bytes(&bytes);
                        if public.verify_strict(msg, &sig).is_ok() {
                            return Ok((i, Tag::new(&bytes)));
                        }
                    }
                }
            }
        }
        Err(Rejection::InvalidSignature)
    }

    /// The headers a provider would send for `body`, signed with secret
    /// `key_index`; empty when that key cannot sign (see `try_sign`).
    /// Used by the demo and tests; tests also check against official vectors.
    pub fn sign(&self, key_index: usize, msg: &Message<'_>) -> Vec<(HeaderName, String)> {
        self.try_sign(key_index, msg).unwrap_or_default()
    }

    /// The headers a provider would send for `body`, signed with secret `key_index`.
    pub fn try_sign(
        &self,
        key_index: usize,
        msg: &Message<'_>,
    ) -> Result<Vec<(HeaderName, String)>, SignError> {
        let Message {
            body,
            id,
            timestamp,
            method,
            path_and_query,
            public_url,
        } = *msg;
        let scheme = &self.scheme;
        let key = self
            .keys
            .get(key_index)
            .ok_or_else(|| SignError(format!("no secret at position {key_index}")))?;
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
            body: Payload::Whole(body),
            public_url,
        };
        let url = signed_url(&input);
        let form = if scheme.signed.contains(&Part::FormParams) {
            form_params(&url, body).map_err(|_| {
                SignError("the URL's bodySHA256 parameter is not the body's SHA-256".into())
            })?
        } else {
            Vec::new()
        };
        let body_ts;
        let ts_signed: &[u8] = match (&scheme.timestamp, &ts) {
            (
                Some(TimestampSpec {
                    source: TimestampSource::JsonBody(field),
                    ..
                }),
                _,
            ) => {
                body_ts = json_timestamp(body, field).map_err(|_| {
                    SignError(format!(
                        "this provider signs the timestamp inside the JSON body: the body needs a numeric top-level \"{field}\""
                    ))
                })?;
                body_ts.as_bytes()
            }
            (_, Some(ts)) => ts.as_bytes(),
            (_, None) => &[],
        };
        let fields = Fields {
            id: id.as_bytes(),
            timestamp: ts_signed,
            body: Payload::Whole(body),
            method: method.as_str().as_bytes(),
            form: &form,
        };
        let (sig, version) = match key {
            Key::Mac(prepared) => {
                let mut mac = prepared.clone();
                feed(&scheme.signed, &fields, &url, &mut |b| mac.update(b));
                (encode(scheme.encoding, mac.finalize().as_slice()), None)
            }
            Key::Token { token, .. } => (String::from_utf8_lossy(token).into_owned(), None),
            Key::Ed25519 { signing, .. } => {
                let signing = signing.as_ref().ok_or_else(|| {
                    SignError(
                        "a whpk_ public key can only verify: signing needs the whsk_ signing key"
                            .into(),
                    )
                })?;
                let mut buf = Vec::new();
                feed(&scheme.signed, &fields, &url, &mut |b| {
                    buf.extend_from_slice(b)
                });
                let sig = signing.sign(&buf);
                let version = match &scheme.format {
                    SignatureFormat::Versioned { asymmetric, .. } => asymmetric.clone(),
                    _ => None,
                };
                (encode(Encoding::Base64, &sig.to_bytes()), version)
            }
        };
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
            SignatureFormat::Versioned { version: v, .. } => {
                format!("{},{sig}", version.as_deref().unwrap_or(v))
            }
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
        Ok(headers)
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

/// A top-level integer field of a JSON body, as decimal text. Absent (or a
/// body that is not a JSON object) is a missing timestamp; anything but a
/// non-negative integer is a malformed one.
fn json_timestamp(body: &[u8], field: &str) -> Result<String, Rejection> {
    let value: serde_json::Value =
        serde_json::from_slice(body).map_err(|_| Rejection::MissingSignature)?;
    let v = value.get(field).ok_or(Rejection::MissingSignature)?;
    v.as_u64()
        .map(|n| n.to_string())
        .ok_or(Rejection::StaleTimestamp)
}

/// The decoded signatures a header offers; malformed entries are skipped so that
/// they cannot hide a later valid one. `asymmetric` selects the `Versioned`
/// format's asymmetric entries (`v1a`) instead of its HMAC ones.
fn candidates(
    raw: &[u8],
    format: &SignatureFormat,
    encoding: Encoding,
    asymmetric: bool,
) -> Vec<Vec<u8>> {
    let decode_one = |text: &[u8]| decode(encoding, text.trim_ascii());
    match format {
        SignatureFormat::Plain { prefix } => strip_prefix(raw, prefix)
            .and_then(decode_one)
            .into_iter()
            .collect(),
        SignatureFormat::Versioned {
            version,
            asymmetric: asym,
        } => {
            let wanted = if asymmetric {
                match asym {
                    Some(a) => a.as_bytes(),
                    None => return Vec::new(),
                }
            } else {
                version.as_bytes()
            };
            raw.split(|b| *b == b' ')
                .filter_map(|entry| {
                    let comma = entry.iter().position(|b| *b == b',')?;
                    (&entry[..comma] == wanted).then(|| decode_one(&entry[comma + 1..]))?
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
                    (&pair[..eq] == key.as_bytes()).then(|| decode_one(&pair[eq + 1..]))?
                })
                .collect()
        }
    }
}

fn strip_prefix<'r>(raw: &'r [u8], prefix: &str) -> Option<&'r [u8]> {
    let prefix = prefix.as_bytes();
    (raw.len() >= prefix.len() && raw[..prefix.len()].eq_ignore_ascii_case(prefix))
        .then(|| &raw[prefix.len()..])
}

/// A token header's SHA-256 (compared against the secret's, so that neither
/// the content nor the length of the secret leaks through timing).
fn token_digest(raw: &[u8], format: &SignatureFormat) -> Option<[u8; 32]> {
    let rest = match format {
        SignatureFormat::Plain { prefix } => strip_prefix(raw, prefix)?,
        SignatureFormat::Versioned { .. } | SignatureFormat::Params { .. } => raw,
    };
    let rest = rest.trim_ascii();
    (!rest.is_empty()).then(|| Sha256::digest(rest).into())
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

/// Twilio signs the URL sometimes with, sometimes without the port; its own
/// validators try the URL without any port and with one (the scheme's default
/// added when absent). Returns those two forms.
fn port_variants(url: &str) -> Vec<String> {
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
fn form_params(url: &str, body: &[u8]) -> Result<Vec<u8>, Rejection> {
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

/// The key one secret stands for under `scheme`: an HMAC key, a token, or
/// (for `whpk_`/`whsk_` secrets on a scheme with asymmetric entries) Ed25519.
fn derive_key(scheme: &Scheme, secret: &[u8]) -> Result<Key, KeyError> {
    if scheme.algorithm == Algorithm::Token {
        let token = decode_key(scheme.key_encoding, secret)?;
        let digest = Sha256::digest(&token).into();
        return Ok(Key::Token { token, digest });
    }
    let ed25519 = scheme.key_encoding == KeyEncoding::Whsec
        && (secret.starts_with(b"whpk_") || secret.starts_with(b"whsk_"));
    if ed25519 {
        if !matches!(
            scheme.format,
            SignatureFormat::Versioned {
                asymmetric: Some(_),
                ..
            }
        ) {
            return Err(KeyError(
                "is an Ed25519 key (whpk_/whsk_), but this scheme has no asymmetric signatures"
                    .into(),
            ));
        }
        return ed25519_key(secret);
    }
    let bytes = decode_key(scheme.key_encoding, secret)?;
    // `derive_key` returned above for Token, the only algorithm without a MAC.
    let mac = PreparedMac::new(scheme.algorithm, &bytes).unwrap_or_else(|| unreachable!());
    Ok(Key::Mac(mac))
}

/// `whpk_` + base64(32-byte public key), or `whsk_` + base64(32-byte seed ||
/// 32-byte public key) as Svix prints signing keys.
fn ed25519_key(secret: &[u8]) -> Result<Key, KeyError> {
    let bad = |what: &str| KeyError(format!("is not a valid Ed25519 {what}"));
    if let Some(b64) = secret.strip_prefix(b"whpk_") {
        let bytes = BASE64_LENIENT
            .decode(b64)
            .map_err(|_| bad("public key (whpk_ + base64)"))?;
        let bytes: [u8; 32] = bytes.try_into().map_err(|_| bad("public key (32 bytes)"))?;
        let public = VerifyingKey::from_bytes(&bytes).map_err(|_| bad("public key"))?;
        return Ok(Key::Ed25519 {
            public,
            signing: None,
        });
    }
    let b64 = secret.strip_prefix(b"whsk_").unwrap_or(secret);
    let bytes = BASE64_LENIENT
        .decode(b64)
        .map_err(|_| bad("signing key (whsk_ + base64)"))?;
    let signing = match bytes.len() {
        64 => {
            let arr: [u8; 64] = bytes
                .try_into()
                .map_err(|_| bad("signing key (64 bytes)"))?;
            SigningKey::from_keypair_bytes(&arr).map_err(|_| bad("signing key pair"))?
        }
        32 => {
            let arr: [u8; 32] = bytes
                .try_into()
                .map_err(|_| bad("signing key (32 bytes)"))?;
            SigningKey::from_bytes(&arr)
        }
        _ => return Err(bad("signing key (32 or 64 bytes)")),
    };
    Ok(Key::Ed25519 {
        public: signing.verifying_key(),
        signing: Some(Box::new(signing)),
    })
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
            body: Payload::Whole(body),
            public_url: None,
        }
    }

    #[test]
    fn a_body_in_blocks_verifies_as_the_same_body_whole() {
        // hookgate verifies a large body in the blocks it was read into, never
        // joined: every provider must see the same bytes either way.
        let body = br#"{"type":"test","webhookTimestamp":1700000000000,"x":"aaaaaaaaaaaaaaaa"}"#;
        let blocks: Vec<Bytes> = body.chunks(7).map(Bytes::copy_from_slice).collect();
        let at = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        for name in providers::NAMES {
            let scheme = providers::builtin(name).unwrap();
            let v = Verifier::new(
                scheme,
                &[secret_for(&providers::builtin(name).unwrap())],
                None,
            )
            .unwrap();
            let msg = Message {
                body,
                id: "msg_1",
                timestamp: at,
                method: &Method::POST,
                path_and_query: "/hook?a=1",
                public_url: Some("https://example.com/hook"),
            };
            let mut headers = HeaderMap::new();
            for (k, val) in v.sign(0, &msg) {
                headers.insert(k, val.parse().unwrap());
            }
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

    fn secret_for(scheme: &Scheme) -> &'static [u8] {
        if scheme.key_encoding == KeyEncoding::Whsec {
            b"whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
        } else {
            b"a-shared-secret"
        }
    }

    #[test]
    fn sign_then_verify_round_trips_for_every_builtin() {
        let now = at(1_700_000_000);
        for name in providers::NAMES {
            let scheme = providers::builtin(name).unwrap();
            let v = Verifier::new(scheme.clone(), &[secret_for(&scheme)], None).unwrap();
            let body = providers::example_body(name, now);
            let url = Some("https://hooks.example.com/hook");
            let m = Message {
                public_url: url,
                ..msg(&body, now)
            };
            let headers: HeaderMap = v
                .try_sign(0, &m)
                .unwrap()
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
            if *name == "gitlab" {
                // A shared token signs nothing: GitLab bodies are not protected.
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
