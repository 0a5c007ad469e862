//! The declarative types a provider is written in: `Scheme` and its parts, and their coherence check.

use std::time::Duration;

use http::HeaderName;

/// Where Twilio announces the algorithm of a SharedKey signature.
pub(super) static TWILIO_SETTINGS: HeaderName =
    HeaderName::from_static("x-twilio-webhooks-signature-settings");

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Algorithm {
    Sha256,
    Sha512,
    Sha1,
    /// No MAC: the header carries the shared secret itself (GitLab), compared
    /// in constant time (as SHA-256 digests, so the length does not leak either).
    Token,
    /// Twilio: HMAC-SHA1 (the Auth Token signature), or HMAC-SHA256 when the
    /// request's `X-Twilio-Webhooks-Signature-Settings` header announces
    /// `algorithm=HMAC_SHA256` (SharedKey signatures); any other announced
    /// algorithm verifies nothing. The header is not signed, but switching it
    /// only changes which MAC of the same key must match.
    TwilioAnnounced,
    /// An Ed25519 signature over the template, by the public key the secret
    /// gives (`KeyEncoding::Hex`: 32 bytes public, or 64 bytes seed + public
    /// for a key that can also sign). Discord.
    Ed25519,
    /// An ECDSA P-256 / SHA-256 signature (DER) over the template, by the
    /// public key the secret gives (base64 SPKI DER; a base64 PKCS#8 private
    /// key also signs). SendGrid.
    EcdsaP256,
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
    /// Mailgun: no header; the JSON body's member `object` holds the string
    /// fields `signature` (the candidate), `token` (what `{id}` stands for: a
    /// signed, per-delivery id) and `timestamp` (`TimestampSource::Param`).
    /// The body is parsed before the check to find them, and is not signed
    /// itself; `signature_header` is not read.
    JsonBody { object: String },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TimestampSource {
    Header(HeaderName),
    /// A pair inside the signature header (`t` for Stripe, `ts` for Paddle),
    /// or a field of the body's signature object (`SignatureFormat::JsonBody`).
    Param(String),
    /// A top-level integer field of the JSON body (Linear `webhookTimestamp`):
    /// signed because the body is.
    JsonBody(String),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimestampUnit {
    Seconds,
    Millis,
    /// RFC 3339 text in UTC (`2019-11-16T10:11:12.634234626Z`, or `+00:00`): compared in
    /// whole seconds, the fraction dropped. Twitch, Zendesk.
    Rfc3339,
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
    /// Further headers that may carry a signature in the same format (Shopify
    /// "Events" deliveries name theirs without the `X-` prefix): each one
    /// present offers candidates too. Signing writes `signature_header` only.
    pub more_signature_headers: Vec<HeaderName>,
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
                Part::Id if self.id.is_none() && !self.carried_in_body() => {
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
        let asymmetric = matches!(self.algorithm, Algorithm::Ed25519 | Algorithm::EcdsaP256);
        if asymmetric && !matches!(self.format, SignatureFormat::Plain { .. }) {
            return Err("an Ed25519 or ECDSA signature is one value: format must be plain".into());
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
                    if !matches!(
                        self.format,
                        SignatureFormat::Params { .. } | SignatureFormat::JsonBody { .. }
                    ) =>
                {
                    return Err("a timestamp parameter needs a key=value signature format".into());
                }
                TimestampSource::JsonBody(_) if ts.unit == TimestampUnit::Rfc3339 => {
                    return Err("a timestamp in the body is an integer, not RFC 3339 text".into());
                }
                TimestampSource::JsonBody(_) if !self.signed.contains(&Part::Body) => {
                    return Err("a timestamp in the body needs {body} in the template".into());
                }
                _ => {}
            }
        }
        if self.carried_in_body() {
            if self.signed != [Part::Timestamp, Part::Id] || self.id.is_some() {
                return Err("a signature in the body signs {timestamp}{id} (the token)".into());
            }
            return Ok(());
        }
        if !self.signs_body() {
            return Err("the signed template must include {body}".into());
        }
        Ok(())
    }

    /// Whether the signature travels inside the body (Mailgun) instead of a header.
    pub fn carried_in_body(&self) -> bool {
        matches!(self.format, SignatureFormat::JsonBody { .. })
    }

    /// Whether the body is signed (directly, or as Twilio's form): GitLab's
    /// token and Mailgun's signature leave it unprotected.
    pub fn signs_body(&self) -> bool {
        self.signed.contains(&Part::Body) || self.signed.contains(&Part::FormParams)
    }

    /// The request headers verification reads (signature, id, timestamp):
    /// each must arrive once, since the application reads them too.
    pub fn read_headers(&self) -> Vec<HeaderName> {
        let id = self.id.as_ref().map(|spec| &spec.header);
        let timestamp = match self.timestamp.as_ref().map(|spec| &spec.source) {
            Some(TimestampSource::Header(name)) => Some(name),
            Some(TimestampSource::Param(_) | TimestampSource::JsonBody(_)) | None => None,
        };
        let settings = (self.algorithm == Algorithm::TwilioAnnounced).then_some(&TWILIO_SETTINGS);
        let signature = (!self.carried_in_body()).then_some(&self.signature_header);
        signature
            .into_iter()
            .chain(&self.more_signature_headers)
            .chain(settings)
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
