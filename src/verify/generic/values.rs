//! The generic scheme's enum-like values as serde reads them, each mapped
//! onto the engine's own enum by an exhaustive `match`: a value allowed here
//! without its mapping does not compile.

use serde::Deserialize;

use crate::verify::{Algorithm, Encoding, KeyEncoding, Part, TimestampUnit};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(super) enum HashName {
    Sha256,
    Sha512,
    Sha1,
}

impl From<HashName> for Algorithm {
    fn from(h: HashName) -> Self {
        match h {
            HashName::Sha256 => Algorithm::Sha256,
            HashName::Sha512 => Algorithm::Sha512,
            HashName::Sha1 => Algorithm::Sha1,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(super) enum SignatureEncoding {
    Hex,
    Base64,
    Base64url,
}

impl From<SignatureEncoding> for Encoding {
    fn from(e: SignatureEncoding) -> Self {
        match e {
            SignatureEncoding::Hex => Encoding::Hex,
            SignatureEncoding::Base64 => Encoding::Base64,
            SignatureEncoding::Base64url => Encoding::Base64Url,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(super) enum SecretEncoding {
    Utf8,
    Base64,
    Hex,
    Whsec,
}

impl From<SecretEncoding> for KeyEncoding {
    fn from(e: SecretEncoding) -> Self {
        match e {
            SecretEncoding::Utf8 => KeyEncoding::Utf8,
            SecretEncoding::Base64 => KeyEncoding::Base64,
            SecretEncoding::Hex => KeyEncoding::Hex,
            SecretEncoding::Whsec => KeyEncoding::Whsec,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(super) enum FormatName {
    Plain,
    Versioned,
    Params,
}

impl FormatName {
    pub(super) fn name(self) -> &'static str {
        match self {
            FormatName::Plain => "plain",
            FormatName::Versioned => "versioned",
            FormatName::Params => "params",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub(super) enum Unit {
    #[serde(rename = "s")]
    Seconds,
    #[serde(rename = "ms")]
    Millis,
}

impl From<Unit> for TimestampUnit {
    fn from(u: Unit) -> Self {
        match u {
            Unit::Seconds => TimestampUnit::Seconds,
            Unit::Millis => TimestampUnit::Millis,
        }
    }
}

/// A `{…}` placeholder of the `signed` template.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(super) enum Placeholder {
    Id,
    Timestamp,
    Body,
    Url,
    Method,
}

impl From<Placeholder> for Part {
    fn from(p: Placeholder) -> Self {
        match p {
            Placeholder::Id => Part::Id,
            Placeholder::Timestamp => Part::Timestamp,
            Placeholder::Body => Part::Body,
            Placeholder::Url => Part::Url,
            Placeholder::Method => Part::Method,
        }
    }
}
