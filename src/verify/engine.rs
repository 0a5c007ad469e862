//! `Verifier`: a scheme with its keys. `verify` reads what a request offers (signatures, id,
//! timestamp, URL, form) and hands it to `matching`; it returns the only `Verified`.

use std::borrow::Cow;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use http::{HeaderMap, Method};
use sha2::{Digest, Sha256};

use super::key::{derive_key, Key, KeyError, Tag};
use super::matching::Offered;
use super::parse::{announced_algorithm, check_timestamp, header, param, printable_id};
use super::scheme::TWILIO_SETTINGS;
use super::twilio::{form_params, port_variants, signed_url};
use super::{
    json, Algorithm, Part, Rejection, Scheme, SignatureFormat, TimestampSource, TimestampSpec,
    TimestampUnit, Validity, Verified,
};

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

impl<'a> Input<'a> {
    /// The request as hyper parsed it, with its body's blocks.
    pub fn of(
        parts: &'a http::request::Parts,
        blocks: &'a [bytes::Bytes],
        public_url: Option<&'a str>,
    ) -> Self {
        Input {
            method: &parts.method,
            path_and_query: parts
                .uri
                .path_and_query()
                .map_or("/", http::uri::PathAndQuery::as_str),
            headers: &parts.headers,
            body: Payload::Blocks(blocks),
            public_url,
        }
    }
}

/// A scheme with its keys and tolerance: one per route.
#[derive(Debug, Clone)]
pub struct Verifier {
    pub(super) scheme: Scheme,
    pub(super) keys: Vec<Key>,
    /// One per key: when it may verify (`Validity::ALWAYS` unless configured).
    pub(super) validity: Vec<Validity>,
    tolerance: Duration,
}

/// The bytes the template's parts stand for, in one request or message.
pub(super) struct Fields<'a> {
    pub(super) id: &'a [u8],
    pub(super) timestamp: &'a [u8],
    pub(super) body: Payload<'a>,
    pub(super) method: &'a [u8],
    pub(super) form: &'a [u8],
}

/// Feeds the signed bytes, part by part, to `out` (a MAC, or a buffer for a signature).
pub(super) fn feed(parts: &[Part], f: &Fields<'_>, url: &str, out: &mut impl FnMut(&[u8])) {
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
            validity: vec![Validity::ALWAYS; keys.len()],
            keys,
            tolerance,
        })
    }

    /// Gives each key, in order, its validity window; keys beyond `windows`
    /// keep `Validity::ALWAYS`. A key outside its window is skipped by
    /// `verify` (it still signs: `try_sign` is for tests and the demo).
    pub fn with_validity(mut self, windows: impl IntoIterator<Item = Validity>) -> Self {
        for (slot, window) in self.validity.iter_mut().zip(windows) {
            *slot = window;
        }
        self
    }

    /// Each key's validity window, in configuration order.
    pub fn validity(&self) -> &[Validity] {
        &self.validity
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
        // Mailgun's signature is inside the body, which must be parsed to find it.
        let carried = match &scheme.format {
            SignatureFormat::JsonBody { object } => {
                Some(json::carried(&input.body.contiguous(), object)?)
            }
            _ => None,
        };
        let raws = match &carried {
            Some(c) => vec![c.signature.as_bytes()],
            None => self.signature_values(input.headers)?,
        };
        let id = match &carried {
            Some(c) => Some(c.token.as_bytes()),
            None => self.read_id(input.headers)?,
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
                let text = match (&spec.source, &carried) {
                    (TimestampSource::Param(_), Some(c)) => Some(c.timestamp.as_bytes()),
                    (TimestampSource::Param(key), None) => param(raws[0], &scheme.format, key),
                    (TimestampSource::Header(name), _) => header(input.headers, name),
                    (TimestampSource::JsonBody(field), _) => {
                        json_ts = json::json_timestamp(&input.body.contiguous(), field)?;
                        Some(json_ts.as_bytes())
                    }
                }
                .ok_or(Rejection::MissingSignature)?;
                check_timestamp(text, spec.unit, self.tolerance, now)?;
                text
            }
        };
        let (urls, form) = self.urls_and_form(input)?;
        let fields = Fields {
            id: id.unwrap_or(&[]),
            timestamp,
            body: input.body,
            method: input.method.as_str().as_bytes(),
            form: &form,
        };
        let offered = Offered::read(scheme, &raws, self.announced(input.headers)?);
        let (secret_index, tag) = self.match_key(&offered, &fields, &urls, now)?;
        if let Some((field, unit)) = json_after_mac {
            let text = json::json_timestamp(&input.body.contiguous(), field)?;
            check_timestamp(text.as_bytes(), unit, self.tolerance, now)?;
        }
        let signed_id = carried.is_some() || scheme.id.as_ref().is_some_and(|s| s.signed);
        Ok(Verified {
            secret_index,
            message_id: id.map(printable_id),
            replay_id: replay_id(id.filter(|_| signed_id), &tag),
        })
    }

    /// The id header: required when the scheme signs it, optional otherwise.
    fn read_id<'h>(&self, headers: &'h HeaderMap) -> Result<Option<&'h [u8]>, Rejection> {
        Ok(match &self.scheme.id {
            Some(spec) if spec.signed => {
                Some(header(headers, &spec.header).ok_or(Rejection::MissingSignature)?)
            }
            Some(spec) => header(headers, &spec.header),
            None => None,
        })
    }

    /// The URLs to try (one, or Twilio's port variants; one empty string when
    /// the URL is not signed) and Twilio's signed form parameters.
    fn urls_and_form(
        &self,
        input: &Input<'_>,
    ) -> Result<(Cow<'static, [String]>, Vec<u8>), Rejection> {
        /// What an unsigned URL is tried as, without an allocation per request.
        static NO_URL: [String; 1] = [String::new()];
        let scheme = &self.scheme;
        let url = scheme.signs_url().then(|| signed_url(input));
        let urls = match &url {
            Some(u) if scheme.signed.contains(&Part::UrlAnyPort) => Cow::Owned(port_variants(u)),
            Some(u) => Cow::Owned(vec![u.clone()]),
            None => Cow::Borrowed(&NO_URL[..]),
        };
        let form = if scheme.signed.contains(&Part::FormParams) {
            form_params(url.as_deref().unwrap_or(""), &input.body.contiguous())?
        } else {
            Vec::new()
        };
        Ok((urls, form))
    }

    /// The signature header's value, then those of the scheme's further
    /// signature headers that are present; none at all is a missing signature.
    fn signature_values<'h>(&self, headers: &'h HeaderMap) -> Result<Vec<&'h [u8]>, Rejection> {
        let scheme = &self.scheme;
        let raws: Vec<&[u8]> = std::iter::once(&scheme.signature_header)
            .chain(&scheme.more_signature_headers)
            .filter_map(|name| header(headers, name))
            .collect();
        if raws.is_empty() {
            return Err(Rejection::MissingSignature);
        }
        Ok(raws)
    }

    /// The HMAC a Twilio request says signed it; the scheme's own algorithm otherwise.
    fn announced(&self, headers: &HeaderMap) -> Result<Algorithm, Rejection> {
        match self.scheme.algorithm {
            Algorithm::TwilioAnnounced => announced_algorithm(header(headers, &TWILIO_SETTINGS))
                .ok_or(Rejection::InvalidSignature),
            other => Ok(other),
        }
    }
}

/// What the replay store deduplicates on. A signed id alone; otherwise what
/// was authenticated (the MAC, the signature, or for a bare token the body's
/// digest): an unsigned id header proves nothing, since anyone replaying a
/// captured delivery could rewrite or drop it to slip past deduplication, so
/// it only names the delivery in logs. Genuine deliveries of byte-identical
/// bodies are, by DESIGN §4, the same delivery.
fn replay_id(signed_id: Option<&[u8]>, tag: &Tag) -> [u8; 32] {
    match signed_id {
        Some(id) => Sha256::new()
            .chain_update(b"id\0")
            .chain_update(id)
            .finalize()
            .into(),
        None => Sha256::new()
            .chain_update(b"sig\0")
            .chain_update(tag.as_slice())
            .finalize()
            .into(),
    }
}

/// Seconds, milliseconds or RFC 3339 text for `at`, as `unit` writes it.
pub(super) fn timestamp_text(unit: TimestampUnit, at: SystemTime) -> String {
    let since = at.duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    match unit {
        TimestampUnit::Seconds => since.as_secs().to_string(),
        TimestampUnit::Millis => since.as_millis().to_string(),
        TimestampUnit::Rfc3339 => humantime::format_rfc3339_seconds(at).to_string(),
    }
}
