//! `Verifier::try_sign`: the headers a provider would send for a message, made by the same
//! engine that verifies (the demo, `hookgate sign` and the tests use it).

use std::fmt;
use std::time::SystemTime;

use ed25519_dalek::Signer as _;
use http::{HeaderMap, HeaderName, Method};

use super::encoding::encode;
use super::engine::{feed, timestamp_text, Fields};
use super::key::Key;
use super::twilio::{form_params, signed_url};
use super::{
    json, Encoding, Input, Part, Payload, SignatureFormat, TimestampSource, TimestampSpec, Verifier,
};

/// What `Verifier::try_sign` signs: a message as a provider would send it.
#[derive(Debug, Clone, Copy)]
pub struct Message<'a> {
    pub body: &'a [u8],
    pub id: &'a str,
    pub timestamp: SystemTime,
    pub method: &'a Method,
    pub path_and_query: &'a str,
    pub public_url: Option<&'a str>,
}

/// Why `Verifier::try_sign` cannot sign.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignError(pub String);

impl fmt::Display for SignError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A message as its provider sends it: the headers, and the body (the
/// message's own, or for Mailgun the event wrapped with its signature object).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Signed {
    pub headers: Vec<(HeaderName, String)>,
    pub body: Vec<u8>,
}

/// Where Mailgun puts the event next to its `signature` object.
const MAILGUN_EVENT: &str = "event-data";

impl Verifier {
    /// The headers a provider would send for `msg`, for the providers that
    /// sign in headers (all but Mailgun: see `sign_message`).
    pub fn try_sign(
        &self,
        key_index: usize,
        msg: &Message<'_>,
    ) -> Result<Vec<(HeaderName, String)>, SignError> {
        if self.scheme.carried_in_body() {
            return Err(SignError(
                "this provider carries its signature inside the body: sign_message returns that body"
                    .into(),
            ));
        }
        Ok(self.sign_message(key_index, msg)?.headers)
    }

    /// `msg` signed with secret `key_index`, as its provider sends it. Fails
    /// for a key that can only verify (a public key), a body that lacks what
    /// the provider signs inside it, or a position with no secret. Twilio's
    /// is the Auth Token form (HMAC-SHA1).
    pub fn sign_message(&self, key_index: usize, msg: &Message<'_>) -> Result<Signed, SignError> {
        let scheme = &self.scheme;
        let key = self
            .keys
            .get(key_index)
            .ok_or_else(|| SignError(format!("no secret at position {key_index}")))?;
        let ts = scheme
            .timestamp
            .as_ref()
            .map(|spec| timestamp_text(spec.unit, msg.timestamp));
        let empty = HeaderMap::new();
        let url = signed_url(&Input {
            method: msg.method,
            path_and_query: msg.path_and_query,
            headers: &empty,
            body: Payload::Whole(msg.body),
            public_url: msg.public_url,
        });
        let form = if scheme.signed.contains(&Part::FormParams) {
            form_params(&url, msg.body).map_err(|_| {
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
                body_ts = json::json_timestamp(msg.body, field).map_err(|_| {
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
            id: msg.id.as_bytes(),
            timestamp: ts_signed,
            body: Payload::Whole(msg.body),
            method: msg.method.as_str().as_bytes(),
            form: &form,
        };
        let (sig, version) = self.signature(key, &fields, &url)?;
        if let SignatureFormat::JsonBody { object } = &scheme.format {
            if msg.id.is_empty() {
                return Err(SignError("this provider signs a token: give an id".into()));
            }
            let carried = json::Carried {
                signature: sig,
                token: msg.id.to_string(),
                timestamp: ts.unwrap_or_default(),
            };
            let body = json::wrap(object, &carried, MAILGUN_EVENT, msg.body).map_err(SignError)?;
            return Ok(Signed {
                headers: Vec::new(),
                body,
            });
        }
        Ok(Signed {
            headers: self.headers(msg.id, ts, &sig, version.as_deref()),
            body: msg.body.to_vec(),
        })
    }

    /// The encoded signature, and for a Svix `v1a` entry its version.
    fn signature(
        &self,
        key: &Key,
        fields: &Fields<'_>,
        url: &str,
    ) -> Result<(String, Option<String>), SignError> {
        let scheme = &self.scheme;
        let whole = || {
            let mut buf = Vec::new();
            feed(&scheme.signed, fields, url, &mut |b| {
                buf.extend_from_slice(b)
            });
            buf
        };
        let public_only = || {
            SignError(
                "this secret is a public key, which can only verify: signing needs the private key"
                    .into(),
            )
        };
        Ok(match key {
            Key::Mac(prepared) => {
                let mut mac = prepared.clone();
                feed(&scheme.signed, fields, url, &mut |b| mac.update(b));
                (encode(scheme.encoding, mac.finalize().as_slice()), None)
            }
            Key::Announced(pair) => {
                let mut mac = pair.sha1.clone();
                feed(&scheme.signed, fields, url, &mut |b| mac.update(b));
                (encode(scheme.encoding, mac.finalize().as_slice()), None)
            }
            Key::Token { token, .. } => (String::from_utf8_lossy(token).into_owned(), None),
            Key::Ed25519 { signing, .. } => {
                let signing = signing.as_ref().ok_or_else(public_only)?;
                let sig = signing.sign(&whole()).to_bytes();
                match &scheme.format {
                    SignatureFormat::Versioned { asymmetric, .. } => {
                        (encode(Encoding::Base64, &sig), asymmetric.clone())
                    }
                    SignatureFormat::Plain { .. }
                    | SignatureFormat::Params { .. }
                    | SignatureFormat::JsonBody { .. } => (encode(scheme.encoding, &sig), None),
                }
            }
            Key::P256 { signing, .. } => {
                let signing = signing.as_ref().ok_or_else(public_only)?;
                let sig: p256::ecdsa::Signature =
                    p256::ecdsa::signature::Signer::sign(signing.as_ref(), &whole());
                (encode(scheme.encoding, sig.to_der().as_bytes()), None)
            }
        })
    }

    /// The id and timestamp headers (where the scheme has them), then the signature header.
    fn headers(
        &self,
        id: &str,
        ts: Option<String>,
        sig: &str,
        version: Option<&str>,
    ) -> Vec<(HeaderName, String)> {
        let scheme = &self.scheme;
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
                format!("{},{sig}", version.unwrap_or(v))
            }
            SignatureFormat::Params { separator, key } => match (ts_param, &ts) {
                (Some(tk), Some(ts)) => format!("{tk}={ts}{separator}{key}={sig}"),
                _ => format!("{key}={sig}"),
            },
            // Written into the body by `sign_message`, never into a header.
            SignatureFormat::JsonBody { .. } => sig.to_string(),
        };
        let mut headers = Vec::new();
        if let Some(spec) = &scheme.id {
            headers.push((spec.header.clone(), id.to_string()));
        }
        if let (
            Some(TimestampSpec {
                source: TimestampSource::Header(name),
                ..
            }),
            Some(ts),
        ) = (&scheme.timestamp, ts)
        {
            headers.push((name.clone(), ts));
        }
        headers.push((scheme.signature_header.clone(), value));
        headers
    }
}
