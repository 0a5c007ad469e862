//! The generic `provider = "hmac"` scheme: its route keys, typed by serde, -> a `Scheme`.
//!
//! Every built-in HMAC provider can be written this way (the tests check it
//! against the official vectors); Twilio, GitLab and Ed25519 cannot, because
//! they are not an HMAC over a template.
//!
//! Each enum-like key is a serde enum (`values`) mapped onto the engine's own
//! enum by an exhaustive `match`: a value allowed here without its mapping
//! does not compile.

// Every enum match here names each variant: a new one must be decided, not defaulted.
#![warn(clippy::wildcard_enum_match_arm)]

use std::fmt;
use std::time::Duration;

use http::HeaderName;
use serde::de::{self, IntoDeserializer, MapAccess};
use serde::Deserialize;

use super::{IdSpec, Part, Scheme, SignatureFormat, TimestampSource, TimestampSpec};

mod values;

use values::{FormatName, HashName, Placeholder, SecretEncoding, SignatureEncoding, Unit};

/// The keys a `provider = "hmac"` route may hold besides the common route keys.
pub const KEYS: [&str; 15] = [
    "header",
    "algorithm",
    "encoding",
    "format",
    "prefix",
    "version",
    "separator",
    "signature_param",
    "signed",
    "id_header",
    "timestamp_header",
    "timestamp_param",
    "timestamp_json",
    "timestamp_unit",
    "key_encoding",
];

/// One key of the generic scheme; serde refuses any other name and lists `KEYS`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(field_identifier, rename_all = "snake_case")]
pub enum Key {
    Header,
    Algorithm,
    Encoding,
    Format,
    Prefix,
    Version,
    Separator,
    SignatureParam,
    Signed,
    IdHeader,
    TimestampHeader,
    TimestampParam,
    TimestampJson,
    TimestampUnit,
    KeyEncoding,
}

impl Key {
    /// The name as written in the configuration.
    pub fn name(self) -> &'static str {
        match self {
            Key::Header => "header",
            Key::Algorithm => "algorithm",
            Key::Encoding => "encoding",
            Key::Format => "format",
            Key::Prefix => "prefix",
            Key::Version => "version",
            Key::Separator => "separator",
            Key::SignatureParam => "signature_param",
            Key::Signed => "signed",
            Key::IdHeader => "id_header",
            Key::TimestampHeader => "timestamp_header",
            Key::TimestampParam => "timestamp_param",
            Key::TimestampJson => "timestamp_json",
            Key::TimestampUnit => "timestamp_unit",
            Key::KeyEncoding => "key_encoding",
        }
    }

    /// The key named `name`, if the generic scheme has one.
    pub fn from_name(name: &str) -> Option<Key> {
        let name: de::value::StrDeserializer<'_, de::value::Error> = name.into_deserializer();
        Key::deserialize(name).ok()
    }
}

/// The generic scheme's keys as written, each typed; `scheme` checks how they combine.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Raw {
    /// The keys set, in the order written (for errors that name one).
    set: Vec<Key>,
    header: Option<String>,
    algorithm: Option<HashName>,
    encoding: Option<SignatureEncoding>,
    format: Option<FormatName>,
    prefix: Option<String>,
    version: Option<String>,
    separator: Option<String>,
    signature_param: Option<String>,
    signed: Option<String>,
    id_header: Option<String>,
    timestamp_header: Option<String>,
    timestamp_param: Option<String>,
    timestamp_json: Option<String>,
    timestamp_unit: Option<Unit>,
    key_encoding: Option<SecretEncoding>,
}

impl Raw {
    /// Reads the value of `key` from `map` (a route table holding the
    /// generic keys among its own), typed: a bad value is serde's error at that key.
    pub fn read<'de, A: MapAccess<'de>>(&mut self, key: Key, map: &mut A) -> Result<(), A::Error> {
        match key {
            Key::Header => self.header = Some(map.next_value()?),
            Key::Algorithm => self.algorithm = Some(map.next_value()?),
            Key::Encoding => self.encoding = Some(map.next_value()?),
            Key::Format => self.format = Some(map.next_value()?),
            Key::Prefix => self.prefix = Some(map.next_value()?),
            Key::Version => self.version = Some(map.next_value()?),
            Key::Separator => self.separator = Some(map.next_value()?),
            Key::SignatureParam => self.signature_param = Some(map.next_value()?),
            Key::Signed => self.signed = Some(map.next_value()?),
            Key::IdHeader => self.id_header = Some(map.next_value()?),
            Key::TimestampHeader => self.timestamp_header = Some(map.next_value()?),
            Key::TimestampParam => self.timestamp_param = Some(map.next_value()?),
            Key::TimestampJson => self.timestamp_json = Some(map.next_value()?),
            Key::TimestampUnit => self.timestamp_unit = Some(map.next_value()?),
            Key::KeyEncoding => self.key_encoding = Some(map.next_value()?),
        }
        if !self.set.contains(&key) {
            self.set.push(key);
        }
        Ok(())
    }

    /// The first key set, if any (a route of another provider must hold none).
    pub fn first_key(&self) -> Option<Key> {
        self.set.first().copied()
    }

    fn has(&self, key: Key) -> bool {
        self.set.contains(&key)
    }

    /// Builds the scheme these keys describe (`header` is required).
    pub fn scheme(&self) -> Result<Scheme, FieldError> {
        let Some(header) = &self.header else {
            return fail(
                Key::Header,
                "provider \"hmac\" needs the signature header name",
            );
        };
        let signature_header = header_name(Key::Header, header)?;
        let format = self.format()?;
        let signed = template(self.signed.as_deref().unwrap_or("{body}"))?;
        let id = self
            .id_header
            .as_deref()
            .map(|h| {
                Ok::<_, FieldError>(IdSpec {
                    header: header_name(Key::IdHeader, h)?,
                    signed: signed.contains(&Part::Id),
                })
            })
            .transpose()?;
        let timestamp = self.timestamp()?;
        let scheme = Scheme {
            signature_header,
            format,
            algorithm: self.algorithm.unwrap_or(HashName::Sha256).into(),
            encoding: self.encoding.unwrap_or(SignatureEncoding::Hex).into(),
            default_tolerance: timestamp.as_ref().map(|_| Duration::from_secs(300)),
            signed,
            id,
            timestamp,
            key_encoding: self.key_encoding.unwrap_or(SecretEncoding::Utf8).into(),
            more_signature_headers: Vec::new(),
        };
        if let Err(e) = scheme.validate() {
            return fail(Key::Signed, e);
        }
        Ok(scheme)
    }

    fn format(&self) -> Result<SignatureFormat, FieldError> {
        let format = self.format.unwrap_or(FormatName::Plain);
        let only_for = |key: Key, only: FormatName| -> Result<(), FieldError> {
            if self.has(key) && format != only {
                return fail(key, format!("only applies to format = {:?}", only.name()));
            }
            Ok(())
        };
        only_for(Key::Prefix, FormatName::Plain)?;
        only_for(Key::Version, FormatName::Versioned)?;
        only_for(Key::Separator, FormatName::Params)?;
        only_for(Key::SignatureParam, FormatName::Params)?;
        only_for(Key::TimestampParam, FormatName::Params)?;
        Ok(match format {
            FormatName::Plain => SignatureFormat::Plain {
                prefix: self.prefix.clone().unwrap_or_default(),
            },
            FormatName::Versioned => SignatureFormat::Versioned {
                version: self.version.clone().unwrap_or_else(|| "v1".into()),
                asymmetric: None,
            },
            FormatName::Params => {
                // One byte of valid UTF-8 is one ASCII character.
                let &[separator] = self.separator.as_deref().unwrap_or(",").as_bytes() else {
                    return fail(Key::Separator, "must be one ASCII character other than '='");
                };
                if separator == b'=' {
                    return fail(Key::Separator, "must be one ASCII character other than '='");
                }
                let Some(key) = self.signature_param.clone() else {
                    return fail(
                        Key::SignatureParam,
                        "format = \"params\" needs the name of the signature pair (e.g. \"v1\")",
                    );
                };
                SignatureFormat::Params {
                    separator: char::from(separator),
                    key,
                }
            }
        })
    }

    fn timestamp(&self) -> Result<Option<TimestampSpec>, FieldError> {
        let mut set: Vec<(Key, TimestampSource)> = Vec::new();
        if let Some(h) = &self.timestamp_header {
            let header = header_name(Key::TimestampHeader, h)?;
            set.push((Key::TimestampHeader, TimestampSource::Header(header)));
        }
        if let Some(p) = &self.timestamp_param {
            set.push((Key::TimestampParam, TimestampSource::Param(p.clone())));
        }
        if let Some(j) = &self.timestamp_json {
            set.push((Key::TimestampJson, TimestampSource::JsonBody(j.clone())));
        }
        if let [_, (second, _), ..] = set.as_slice() {
            let names: Vec<&str> = set.iter().map(|(k, _)| k.name()).collect();
            return fail(
                *second,
                format!("only one of {} may be set", names.join(", ")),
            );
        }
        let Some((_, source)) = set.pop() else {
            if self.has(Key::TimestampUnit) {
                return fail(Key::TimestampUnit, "no timestamp is configured");
            }
            return Ok(None);
        };
        Ok(Some(TimestampSpec {
            source,
            unit: self.timestamp_unit.unwrap_or(Unit::Seconds).into(),
        }))
    }
}

/// A standalone table of generic keys (no common route keys): unknown keys are refused.
impl<'de> Deserialize<'de> for Raw {
    fn deserialize<D: de::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl<'de> de::Visitor<'de> for Visitor {
            type Value = Raw;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a table of generic hmac scheme keys")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Raw, A::Error> {
                let mut raw = Raw::default();
                while let Some(key) = map.next_key::<Key>()? {
                    raw.read(key, &mut map)?;
                }
                Ok(raw)
            }
        }
        deserializer.deserialize_map(Visitor)
    }
}

/// A problem with one key: the key's name and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    pub field: String,
    pub message: String,
}

fn fail<T>(key: Key, message: impl Into<String>) -> Result<T, FieldError> {
    Err(FieldError {
        field: key.name().to_string(),
        message: message.into(),
    })
}

fn header_name(key: Key, value: &str) -> Result<HeaderName, FieldError> {
    HeaderName::from_bytes(value.trim().as_bytes())
        .or_else(|_| fail(key, format!("{value:?} is not a valid header name")))
}

/// Builds the scheme a table of generic keys describes (may be empty:
/// `header` is then reported missing).
pub fn scheme(table: &toml::Table) -> Result<Scheme, FieldError> {
    let raw: Raw =
        serde_path_to_error::deserialize(toml::Value::Table(table.clone())).map_err(|e| {
            FieldError {
                field: e.path().to_string(),
                message: e.into_inner().message().to_string(),
            }
        })?;
    raw.scheme()
}

/// `{id}`, `{timestamp}`, `{body}`, `{url}`, `{method}` and literal text;
/// `{{` and `}}` stand for literal braces.
pub fn template(text: &str) -> Result<Vec<Part>, FieldError> {
    let mut parts = Vec::new();
    let mut literal = String::new();
    let mut rest = text;
    while let Some(c) = rest.chars().next() {
        if let Some(r) = rest.strip_prefix("{{") {
            literal.push('{');
            rest = r;
        } else if let Some(r) = rest.strip_prefix("}}") {
            literal.push('}');
            rest = r;
        } else if c == '{' {
            let Some(end) = rest.find('}') else {
                return fail(Key::Signed, format!("unclosed '{{' in {text:?}"));
            };
            let name: de::value::StrDeserializer<'_, de::value::Error> =
                rest[1..end].into_deserializer();
            let part = Placeholder::deserialize(name).or_else(|e| {
                fail(
                    Key::Signed,
                    format!(
                        "placeholder {}: {e} ({{{{ and }}}} stand for braces)",
                        &rest[..=end]
                    ),
                )
            })?;
            if !literal.is_empty() {
                parts.push(Part::Text(std::mem::take(&mut literal)));
            }
            parts.push(part.into());
            rest = &rest[end + 1..];
        } else if c == '}' {
            return fail(
                Key::Signed,
                format!("unmatched '}}' in {text:?} (write }}}})"),
            );
        } else {
            literal.push(c);
            rest = &rest[c.len_utf8()..];
        }
    }
    if !literal.is_empty() {
        parts.push(Part::Text(literal));
    }
    Ok(parts)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::verify::{Algorithm, Encoding, KeyEncoding, TimestampUnit};

    fn table(text: &str) -> toml::Table {
        text.parse().unwrap()
    }

    #[test]
    fn template_parses_placeholders_literals_and_escapes() {
        assert_eq!(
            template("v0:{timestamp}:{body}").unwrap(),
            vec![
                Part::Text("v0:".into()),
                Part::Timestamp,
                Part::Text(":".into()),
                Part::Body
            ]
        );
        assert_eq!(
            template("{{x}}{body}").unwrap(),
            vec![Part::Text("{x}".into()), Part::Body]
        );
        let e = template("{bdy}").unwrap_err();
        assert_eq!(e.field, "signed");
        assert!(
            e.message.contains("`body`"),
            "lists the placeholders: {}",
            e.message
        );
        assert!(template("{body").is_err());
        assert!(template("}{body}").is_err());
    }

    #[test]
    fn unknown_key_is_refused_by_name_listing_the_known_keys() {
        let e = scheme(&table("header = \"x-sig\"\nalgoritm = \"sha1\"")).unwrap_err();
        assert_eq!(e.field, "algoritm");
        assert!(e.message.contains("`algorithm`"), "{}", e.message);
        assert!(e.message.contains("`key_encoding`"), "{}", e.message);
    }

    #[test]
    fn a_bad_value_names_the_key_and_the_allowed_values() {
        let e = scheme(&table("header = \"x\"\nalgorithm = \"md5\"")).unwrap_err();
        assert_eq!(e.field, "algorithm");
        for allowed in ["`sha256`", "`sha512`", "`sha1`"] {
            assert!(e.message.contains(allowed), "{}", e.message);
        }
        let e = scheme(&table(
            "header = \"x\"\ntimestamp_header = \"t\"\ntimestamp_unit = \"us\"",
        ))
        .unwrap_err();
        assert_eq!(e.field, "timestamp_unit");
        assert!(e.message.contains("`ms`"), "{}", e.message);
    }

    #[test]
    fn every_key_name_round_trips() {
        for name in KEYS {
            assert_eq!(Key::from_name(name).map(Key::name), Some(name));
        }
        assert_eq!(Key::from_name("headr"), None);
    }

    #[test]
    fn missing_header_and_bad_values_name_the_field() {
        assert_eq!(scheme(&table("")).unwrap_err().field, "header");
        let e = scheme(&table("header = \"x\"\nencoding = \"b64\"")).unwrap_err();
        assert_eq!(e.field, "encoding");
        let e = scheme(&table(
            "header = \"x\"\nprefix = \"v1,\"\nformat = \"versioned\"",
        ))
        .unwrap_err();
        assert_eq!(e.field, "prefix");
        let e = scheme(&table(
            "header = \"x\"\nformat = \"params\"\nsignature_param = \"v1\"\nseparator = \"=\"",
        ))
        .unwrap_err();
        assert_eq!(e.field, "separator");
        let e = scheme(&table(
            "header = \"x\"\ntimestamp_header = \"t\"\ntimestamp_json = \"ts\"\nsigned = \"{timestamp}{body}\"",
        ))
        .unwrap_err();
        assert_eq!(e.field, "timestamp_json");
    }

    #[test]
    fn typed_values_map_onto_the_engine() {
        let s = scheme(&table(
            "header = \"x\"\nalgorithm = \"sha512\"\nencoding = \"base64url\"\nkey_encoding = \"whsec\"\nformat = \"params\"\nsignature_param = \"v1\"\nseparator = \";\"\ntimestamp_param = \"t\"\ntimestamp_unit = \"ms\"\nsigned = \"{timestamp}.{body}\"",
        ))
        .unwrap();
        assert_eq!(s.algorithm, Algorithm::Sha512);
        assert_eq!(s.encoding, Encoding::Base64Url);
        assert_eq!(s.key_encoding, KeyEncoding::Whsec);
        assert_eq!(
            s.format,
            SignatureFormat::Params {
                separator: ';',
                key: "v1".into()
            }
        );
        let ts = s.timestamp.unwrap();
        assert_eq!(ts.source, TimestampSource::Param("t".into()));
        assert_eq!(ts.unit, TimestampUnit::Millis);
    }

    #[test]
    fn an_unsigned_timestamp_is_refused() {
        let e = scheme(&table("header = \"x\"\ntimestamp_header = \"x-ts\"")).unwrap_err();
        assert_eq!(e.field, "signed");
        assert!(e.message.contains("proves nothing"), "{}", e.message);
    }

    #[test]
    fn id_in_the_template_is_a_signed_id() {
        let s = scheme(&table(
            "header = \"x\"\nid_header = \"x-id\"\nsigned = \"{id}.{body}\"",
        ))
        .unwrap();
        assert!(s.id.unwrap().signed);
        let s = scheme(&table("header = \"x\"\nid_header = \"x-id\"")).unwrap();
        assert!(!s.id.unwrap().signed);
    }
}
