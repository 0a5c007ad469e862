//! Which configured key a request's signature matches: HMAC (constant-time, every candidate
//! compared), a shared token (as digests), Ed25519 (strict) or ECDSA P-256 (low-S normalised).

use p256::ecdsa::signature::Verifier as _;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::engine::{feed, Fields};
use super::key::{Key, PreparedMac, Tag};
use super::parse::{candidates, token_digest};
use super::{Algorithm, Encoding, Rejection, Scheme, SignatureFormat, Verifier};

/// The signatures a request offers, decoded once per request.
pub(super) struct Offered {
    /// Entries of the scheme's kind: MACs, or the Ed25519 / P-256 signatures
    /// of a scheme whose algorithm is one.
    main: Vec<Vec<u8>>,
    /// Svix / Standard Webhooks `v1a` entries, for `whpk_`/`whsk_` keys.
    asymmetric: Vec<Vec<u8>>,
    /// The digest of a token header (GitLab).
    token: Option<[u8; 32]>,
    /// Which HMAC a Twilio request announces (the scheme's algorithm otherwise).
    announced: Algorithm,
}

impl Offered {
    /// `raws` holds the value of every signature header present (at least one).
    pub(super) fn read(scheme: &Scheme, raws: &[&[u8]], announced: Algorithm) -> Self {
        let all = |encoding, asymmetric| -> Vec<Vec<u8>> {
            raws.iter()
                .flat_map(|raw| candidates(raw, &scheme.format, encoding, asymmetric))
                .collect()
        };
        let asymmetric = match &scheme.format {
            SignatureFormat::Versioned {
                asymmetric: Some(_),
                ..
            } => all(Encoding::Base64, true),
            _ => Vec::new(),
        };
        let token = (scheme.algorithm == Algorithm::Token)
            .then(|| {
                raws.iter()
                    .find_map(|raw| token_digest(raw, &scheme.format))
            })
            .flatten();
        Offered {
            main: all(scheme.encoding, false),
            asymmetric,
            token,
            announced,
        }
    }

    fn is_empty(&self) -> bool {
        self.main.is_empty() && self.asymmetric.is_empty() && self.token.is_none()
    }
}

impl Verifier {
    /// The first key (in configuration order) inside its validity window at
    /// `now` that a signature matches, with what deduplication hashes: the
    /// MAC, the signature, or for a token (the same on every delivery) the
    /// body's digest. Keys outside their window are skipped before any
    /// comparison: which keys are in force is configuration, not a secret.
    pub(super) fn match_key(
        &self,
        offered: &Offered,
        fields: &Fields<'_>,
        urls: &[String],
        now: std::time::SystemTime,
    ) -> Result<(usize, Tag), Rejection> {
        if offered.is_empty() {
            return Err(Rejection::InvalidSignature);
        }
        let scheme = &self.scheme;
        // A signature verifies a whole message, not a stream: built once.
        let mut message: Option<Vec<u8>> = None;
        let mut whole = || -> Vec<u8> {
            message
                .get_or_insert_with(|| {
                    let mut buf = Vec::with_capacity(fields.body.len() + 64);
                    let url = urls.first().map_or("", String::as_str);
                    feed(&scheme.signed, fields, url, &mut |b| {
                        buf.extend_from_slice(b)
                    });
                    buf
                })
                .clone()
        };
        for (i, (key, validity)) in self.keys.iter().zip(&self.validity).enumerate() {
            if !validity.contains(now) {
                continue;
            }
            let hit = match key {
                Key::Mac(prepared) => self.mac_match(prepared, offered, fields, urls),
                Key::Announced(pair) => {
                    // `announced` is SHA-256 or SHA-1 for Twilio (see `Verifier::announced`).
                    let mac = if offered.announced == Algorithm::Sha256 {
                        &pair.sha256
                    } else {
                        &pair.sha1
                    };
                    self.mac_match(mac, offered, fields, urls)
                }
                Key::Token { digest, .. } => token_match(digest, offered, fields),
                Key::Ed25519 { public, .. } => {
                    let entries = if scheme.algorithm == Algorithm::Ed25519 {
                        &offered.main
                    } else {
                        &offered.asymmetric
                    };
                    if entries.is_empty() {
                        continue;
                    }
                    ed25519_match(public, &whole(), entries)
                }
                Key::P256 { public, .. } => p256_match(public, &whole(), &offered.main),
            };
            if let Some(tag) = hit {
                return Ok((i, tag));
            }
        }
        Err(Rejection::InvalidSignature)
    }

    fn mac_match(
        &self,
        prepared: &PreparedMac,
        offered: &Offered,
        fields: &Fields<'_>,
        urls: &[String],
    ) -> Option<Tag> {
        for url in urls {
            let mut mac = prepared.clone();
            feed(&self.scheme.signed, fields, url, &mut |b| mac.update(b));
            let tag = mac.finalize();
            // Every candidate is compared (no early exit inside the
            // comparison); `ct_eq` is constant-time for equal lengths and
            // false otherwise.
            let hit = offered.main.iter().fold(subtle::Choice::from(0), |acc, c| {
                acc | tag.as_slice().ct_eq(c.as_slice())
            });
            if bool::from(hit) {
                return Some(tag);
            }
        }
        None
    }
}

fn token_match(digest: &[u8; 32], offered: &Offered, fields: &Fields<'_>) -> Option<Tag> {
    let offered = offered.token.as_ref()?;
    if !bool::from(digest.ct_eq(offered)) {
        return None;
    }
    let body = fields
        .body
        .chunks()
        .fold(Sha256::new(), |h, c| h.chain_update(c))
        .finalize();
    Some(Tag::new(&body))
}

/// `verify_strict`: no small-order keys, no malleable (non-canonical) `s`, so
/// one message has one accepted signature and the replay id holds.
fn ed25519_match(
    public: &ed25519_dalek::VerifyingKey,
    message: &[u8],
    entries: &[Vec<u8>],
) -> Option<Tag> {
    entries.iter().find_map(|c| {
        let bytes = <[u8; 64]>::try_from(c.as_slice()).ok()?;
        let sig = ed25519_dalek::Signature::from_bytes(&bytes);
        public
            .verify_strict(message, &sig)
            .is_ok()
            .then(|| Tag::new(&bytes))
    })
}

/// DER signatures, strictly parsed. ECDSA is malleable: `(r, s)` and
/// `(r, n - s)` both verify, and so do other encodings of one pair, so the
/// replay id hashes the pair normalised to low `s`, not the bytes received.
fn p256_match(
    public: &p256::ecdsa::VerifyingKey,
    message: &[u8],
    entries: &[Vec<u8>],
) -> Option<Tag> {
    entries.iter().find_map(|c| {
        let sig = p256::ecdsa::Signature::from_der(c).ok()?;
        public.verify(message, &sig).ok()?;
        let canonical = sig.normalize_s().unwrap_or(sig);
        Some(Tag::new(&canonical.to_bytes()))
    })
}
