//! Signature verification: one declarative engine, `Scheme`, through which every provider is defined.
//!
//! A `Scheme` says where the signature is, how it is encoded, which bytes are
//! signed (a template over the id, timestamp, body, URL and method), and how
//! the key is derived from the configured secret. `Verifier::verify` is the
//! only way to obtain a `Verified`, and forwarding takes a `Pass`, which is
//! made from a `Verified` or, inside this crate and for a shadow-mode route
//! only, by `Pass::shadow_unverified`: forwarding an unverified request by
//! accident does not compile, and no code outside the crate can do it at all.
//!
//! The providers that do not fit "HMAC over a template" are variants of the
//! same engine, not separate verifiers: a shared token compared in constant
//! time (`Algorithm::Token`, GitLab), Ed25519 public keys (Svix `v1a` chosen
//! by the secret's `whpk_` prefix; Discord's hex keys), ECDSA P-256 (SendGrid),
//! a timestamp read from the signed JSON body (`TimestampSource::JsonBody`,
//! Linear) or written in RFC 3339 (Twitch, Zendesk), Twilio's URL + sorted
//! form parameters (`Part::UrlAnyPort`, `Part::FormParams`) under the
//! algorithm its settings header announces, and a signature carried inside
//! the JSON body over its token and timestamp (`SignatureFormat::JsonBody`,
//! Mailgun).
//!
//! Verification reads no clock (`now` is passed in), works over the raw bytes
//! received, and compares MACs in constant time.
//!
//! # Layout
//! - `scheme`    the declarative types (`Scheme`, `Part`, `Algorithm`, …)
//! - `providers` the built-in catalog; `generic` the `provider = "hmac"` form
//! - `engine`    `Verifier::new` and `Verifier::verify`: what a request offers
//! - `matching`  which key a signature matches (HMAC, token, Ed25519, P-256)
//! - `signing`   `Verifier::try_sign`: the headers a provider would send
//! - `key`       secrets -> keys; `encoding` hex/base64
//! - `parse`     header values, signature entries, timestamps
//! - `twilio`    the signed URL, its port variants, sorted form parameters
//! - `json`      a timestamp or a signature object inside the JSON body
//! - `validity`  a secret's `not_before` / `not_after` window

mod encoding;
mod engine;
pub mod generic;
mod json;
mod key;
mod matching;
mod parse;
pub mod providers;
mod scheme;
mod signing;
mod twilio;
mod validity;

#[cfg(test)]
mod capability_tests;
#[cfg(test)]
mod tests;

pub use encoding::encode;
pub use engine::{Input, Payload, Verifier};
pub use key::{decode_key, KeyError};
pub use scheme::{
    Algorithm, Encoding, IdSpec, KeyEncoding, Part, Scheme, SignatureFormat, TimestampSource,
    TimestampSpec, TimestampUnit,
};
pub use signing::{Message, SignError, Signed};
pub use validity::Validity;

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
    /// Crate-private: the request path (`proxy.rs`) calls it for a route whose
    /// mode is `shadow`, and nothing outside the crate can make a `Pass` without
    /// a `Verified`.
    pub(crate) fn shadow_unverified() -> Pass {
        Pass { _private: () }
    }

    /// A request `queue` stored after it verified, now being delivered: the
    /// store holds only what the request path accepted with a `Verified`.
    pub(crate) fn stored() -> Pass {
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

    /// The message id, kept for the request's log line once the rest is used.
    pub fn into_message_id(self) -> Option<String> {
        self.message_id
    }

    /// What the replay store deduplicates on: the signed id where the provider
    /// signs one, otherwise a hash of what was authenticated (the MAC or
    /// signature; for a bare token, the body).
    pub fn replay_id(&self) -> &[u8; 32] {
        &self.replay_id
    }
}
