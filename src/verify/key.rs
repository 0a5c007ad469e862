//! Secrets -> keys: an HMAC state with the key absorbed, a token's digest, or an Ed25519 / P-256 key.

use std::fmt;

use base64::engine::Engine;
use ed25519_dalek::{SigningKey, VerifyingKey};
use hmac::{Hmac, Mac};
use p256::pkcs8::{DecodePrivateKey, DecodePublicKey};
use sha2::{Digest, Sha256, Sha512};

use super::encoding::BASE64_LENIENT;
use super::{Algorithm, KeyEncoding, Scheme, SignatureFormat};

/// Why a secret cannot become a key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyError(pub String);

/// The MAC state with the key already absorbed, cloned per request.
#[derive(Clone)]
pub(super) enum PreparedMac {
    Sha256(Hmac<Sha256>),
    Sha512(Hmac<Sha512>),
    Sha1(Hmac<sha1::Sha1>),
}

impl PreparedMac {
    /// `None` for the algorithms that are not one HMAC.
    pub(super) fn new(algorithm: Algorithm, key: &[u8]) -> Option<Self> {
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
            Algorithm::Token
            | Algorithm::TwilioAnnounced
            | Algorithm::Ed25519
            | Algorithm::EcdsaP256 => return None,
        })
    }

    pub(super) fn update(&mut self, bytes: &[u8]) {
        match self {
            PreparedMac::Sha256(m) => m.update(bytes),
            PreparedMac::Sha512(m) => m.update(bytes),
            PreparedMac::Sha1(m) => m.update(bytes),
        }
    }

    pub(super) fn finalize(self) -> Tag {
        match self {
            PreparedMac::Sha256(m) => Tag::new(&m.finalize().into_bytes()),
            PreparedMac::Sha512(m) => Tag::new(&m.finalize().into_bytes()),
            PreparedMac::Sha1(m) => Tag::new(&m.finalize().into_bytes()),
        }
    }
}

/// A MAC, a signature or a digest: at most 64 bytes, no allocation.
pub(super) struct Tag {
    bytes: [u8; 64],
    len: usize,
}

impl Tag {
    pub(super) fn new(out: &[u8]) -> Self {
        let len = out.len().min(64);
        let mut bytes = [0; 64];
        bytes[..len].copy_from_slice(&out[..len]);
        Tag { bytes, len }
    }

    pub(super) fn as_slice(&self) -> &[u8] {
        &self.bytes[..self.len]
    }
}

/// Twilio's two MAC states for one secret.
#[derive(Clone)]
pub(super) struct Announced {
    pub(super) sha1: PreparedMac,
    pub(super) sha256: PreparedMac,
}

/// A key derived from one configured secret. Never printed.
#[derive(Clone)]
pub(super) enum Key {
    Mac(PreparedMac),
    /// Twilio: one secret as HMAC-SHA1 and as HMAC-SHA256; the request's
    /// settings header says which one signed it.
    Announced(Box<Announced>),
    /// The token itself (for `sign`) and its SHA-256 (what is compared).
    Token {
        token: Vec<u8>,
        digest: [u8; 32],
    },
    /// A public key verifies only; a signing key can also sign.
    Ed25519 {
        public: VerifyingKey,
        signing: Option<Box<SigningKey>>,
    },
    P256 {
        public: p256::ecdsa::VerifyingKey,
        signing: Option<Box<p256::ecdsa::SigningKey>>,
    },
}

impl fmt::Debug for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Key(<redacted>)")
    }
}

/// The key one secret stands for under `scheme`: an HMAC key, a token, or
/// (for `whpk_`/`whsk_` secrets on a scheme with asymmetric entries, or an
/// Ed25519 / P-256 scheme) a public or signing key.
pub(super) fn derive_key(scheme: &Scheme, secret: &[u8]) -> Result<Key, KeyError> {
    let hmac = |algorithm| {
        let bytes = decode_key(scheme.key_encoding, secret)?;
        // `algorithm` is always one of the three HMACs here.
        Ok::<_, KeyError>(PreparedMac::new(algorithm, &bytes).unwrap_or_else(|| unreachable!()))
    };
    match scheme.algorithm {
        Algorithm::Token => {
            let token = decode_key(scheme.key_encoding, secret)?;
            let digest = Sha256::digest(&token).into();
            Ok(Key::Token { token, digest })
        }
        Algorithm::TwilioAnnounced => Ok(Key::Announced(Box::new(Announced {
            sha1: hmac(Algorithm::Sha1)?,
            sha256: hmac(Algorithm::Sha256)?,
        }))),
        Algorithm::Ed25519 => ed25519_raw(&decode_key(scheme.key_encoding, secret)?),
        Algorithm::EcdsaP256 => p256_key(&decode_key(scheme.key_encoding, secret)?),
        Algorithm::Sha256 | Algorithm::Sha512 | Algorithm::Sha1 => {
            let ed25519 = scheme.key_encoding == KeyEncoding::Whsec
                && (secret.starts_with(b"whpk_") || secret.starts_with(b"whsk_"));
            if !ed25519 {
                return Ok(Key::Mac(hmac(scheme.algorithm)?));
            }
            let asymmetric = matches!(
                scheme.format,
                SignatureFormat::Versioned {
                    asymmetric: Some(_),
                    ..
                }
            );
            if !asymmetric {
                return Err(KeyError(
                    "is an Ed25519 key (whpk_/whsk_), but this scheme has no asymmetric signatures"
                        .into(),
                ));
            }
            ed25519_whsk(secret)
        }
    }
}

fn bad(what: &str) -> KeyError {
    KeyError(format!("is not a valid {what}"))
}

/// `whpk_` + base64(32-byte public key), or `whsk_` + base64(32-byte seed ||
/// 32-byte public key) as Svix prints signing keys.
fn ed25519_whsk(secret: &[u8]) -> Result<Key, KeyError> {
    if let Some(b64) = secret.strip_prefix(b"whpk_") {
        let bytes = BASE64_LENIENT
            .decode(b64)
            .map_err(|_| bad("Ed25519 public key (whpk_ + base64)"))?;
        return ed25519_public(&bytes);
    }
    let b64 = secret.strip_prefix(b"whsk_").unwrap_or(secret);
    let bytes = BASE64_LENIENT
        .decode(b64)
        .map_err(|_| bad("Ed25519 signing key (whsk_ + base64)"))?;
    match bytes.len() {
        64 => ed25519_raw(&bytes),
        32 => {
            let arr: [u8; 32] = bytes
                .try_into()
                .map_err(|_| bad("Ed25519 signing key (32 bytes)"))?;
            Ok(ed25519_signing(SigningKey::from_bytes(&arr)))
        }
        _ => Err(bad("Ed25519 signing key (32 or 64 bytes)")),
    }
}

/// 32 bytes: a public key (Discord's application public key); 64 bytes: seed
/// || public key (NaCl's secret key, as Svix prints `whsk_` keys), which signs.
fn ed25519_raw(bytes: &[u8]) -> Result<Key, KeyError> {
    match bytes.len() {
        32 => ed25519_public(bytes),
        64 => {
            let arr: [u8; 64] = bytes
                .try_into()
                .map_err(|_| bad("Ed25519 signing key (64 bytes)"))?;
            let signing = SigningKey::from_keypair_bytes(&arr)
                .map_err(|_| bad("Ed25519 key pair (the public half does not match the seed)"))?;
            Ok(ed25519_signing(signing))
        }
        _ => Err(bad(
            "Ed25519 key: expected a 32-byte public key (or a 64-byte seed + public key)",
        )),
    }
}

fn ed25519_public(bytes: &[u8]) -> Result<Key, KeyError> {
    let arr: [u8; 32] = bytes
        .try_into()
        .map_err(|_| bad("Ed25519 public key (32 bytes)"))?;
    let public = VerifyingKey::from_bytes(&arr).map_err(|_| bad("Ed25519 public key"))?;
    Ok(Key::Ed25519 {
        public,
        signing: None,
    })
}

fn ed25519_signing(signing: SigningKey) -> Key {
    Key::Ed25519 {
        public: signing.verifying_key(),
        signing: Some(Box::new(signing)),
    }
}

/// A P-256 public key as DER SubjectPublicKeyInfo (what SendGrid shows), or a
/// PKCS#8 private key (which can also sign).
fn p256_key(der: &[u8]) -> Result<Key, KeyError> {
    if let Ok(public) = p256::ecdsa::VerifyingKey::from_public_key_der(der) {
        return Ok(Key::P256 {
            public,
            signing: None,
        });
    }
    let signing = p256::ecdsa::SigningKey::from_pkcs8_der(der).map_err(|_| {
        bad("P-256 key: expected base64 of a DER public key (SPKI) or of a PKCS#8 private key")
    })?;
    Ok(Key::P256 {
        public: *signing.verifying_key(),
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
