//! The generic `provider = "hmac"` scheme: route keys -> a `Scheme` for the one engine.
//!
//! Every built-in HMAC provider can be written this way (the tests check it
//! against the official vectors); Twilio, GitLab and Ed25519 cannot, because
//! they are not an HMAC over a template.

use std::time::Duration;

use http::HeaderName;

use super::{
    Algorithm, Encoding, IdSpec, KeyEncoding, Part, Scheme, SignatureFormat, TimestampSource,
    TimestampSpec, TimestampUnit,
};

/// The keys a `provider = "hmac"` route may hold besides the common route keys.
pub const KEYS: &[&str] = &[
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

/// A problem with one key: the key's name and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    pub field: String,
    pub message: String,
}

fn fail<T>(field: &str, message: impl Into<String>) -> Result<T, FieldError> {
    Err(FieldError {
        field: field.to_string(),
        message: message.into(),
    })
}

/// Builds the scheme a `provider = "hmac"` route describes. `table` holds the
/// route's extra keys (may be empty: `header` is then reported missing).
pub fn scheme(table: &toml::Table) -> Result<Scheme, FieldError> {
    for key in table.keys() {
        if !KEYS.contains(&key.as_str()) {
            return fail(
                key,
                format!(
                    "unknown field {key:?} for provider \"hmac\" (known: {})",
                    KEYS.join(", ")
                ),
            );
        }
    }
    let text = |key: &str| -> Result<Option<&str>, FieldError> {
        match table.get(key) {
            None => Ok(None),
            Some(toml::Value::String(s)) => Ok(Some(s.as_str())),
            Some(_) => fail(key, "must be a string"),
        }
    };
    let header_name = |key: &str, value: &str| -> Result<HeaderName, FieldError> {
        HeaderName::from_bytes(value.trim().as_bytes())
            .or_else(|_| fail(key, format!("{value:?} is not a valid header name")))
    };
    let choice = |key: &str, default: &str, allowed: &[&str]| -> Result<String, FieldError> {
        let v = text(key)?.unwrap_or(default);
        if allowed.contains(&v) {
            Ok(v.to_string())
        } else {
            fail(
                key,
                format!("{v:?} is not one of {}", quoted(allowed).join(", ")),
            )
        }
    };

    let Some(header) = text("header")? else {
        return fail(
            "header",
            "provider \"hmac\" needs the signature header name",
        );
    };
    let signature_header = header_name("header", header)?;
    let algorithm = match choice("algorithm", "sha256", &["sha256", "sha512", "sha1"])?.as_str() {
        "sha512" => Algorithm::Sha512,
        "sha1" => Algorithm::Sha1,
        _ => Algorithm::Sha256,
    };
    let encoding = match choice("encoding", "hex", &["hex", "base64", "base64url"])?.as_str() {
        "base64" => Encoding::Base64,
        "base64url" => Encoding::Base64Url,
        _ => Encoding::Hex,
    };
    let key_encoding =
        match choice("key_encoding", "utf8", &["utf8", "base64", "hex", "whsec"])?.as_str() {
            "base64" => KeyEncoding::Base64,
            "hex" => KeyEncoding::Hex,
            "whsec" => KeyEncoding::Whsec,
            _ => KeyEncoding::Utf8,
        };

    let format_name = choice("format", "plain", &["plain", "versioned", "params"])?;
    let only_for = |key: &str, format: &str| -> Result<(), FieldError> {
        if table.contains_key(key) && format_name != format {
            return fail(key, format!("only applies to format = {format:?}"));
        }
        Ok(())
    };
    only_for("prefix", "plain")?;
    only_for("version", "versioned")?;
    only_for("separator", "params")?;
    only_for("signature_param", "params")?;
    only_for("timestamp_param", "params")?;
    let format = match format_name.as_str() {
        "versioned" => SignatureFormat::Versioned {
            version: text("version")?.unwrap_or("v1").to_string(),
            asymmetric: None,
        },
        "params" => {
            let sep = text("separator")?.unwrap_or(",");
            let mut chars = sep.chars();
            let separator = match (chars.next(), chars.next()) {
                (Some(c), None) if c.is_ascii() && c != '=' => c,
                _ => return fail("separator", "must be one ASCII character other than '='"),
            };
            let Some(key) = text("signature_param")? else {
                return fail(
                    "signature_param",
                    "format = \"params\" needs the name of the signature pair (e.g. \"v1\")",
                );
            };
            SignatureFormat::Params {
                separator,
                key: key.to_string(),
            }
        }
        _ => SignatureFormat::Plain {
            prefix: text("prefix")?.unwrap_or("").to_string(),
        },
    };

    let signed = template(text("signed")?.unwrap_or("{body}"))?;

    let id = text("id_header")?
        .map(|h| {
            Ok::<_, FieldError>(IdSpec {
                header: header_name("id_header", h)?,
                signed: signed.contains(&Part::Id),
            })
        })
        .transpose()?;

    let sources: Vec<&str> = ["timestamp_header", "timestamp_param", "timestamp_json"]
        .into_iter()
        .filter(|k| table.contains_key(*k))
        .collect();
    if sources.len() > 1 {
        return fail(
            sources[1],
            format!("only one of {} may be set", sources.join(", ")),
        );
    }
    let source = match sources.first().copied() {
        Some("timestamp_header") => Some(TimestampSource::Header(header_name(
            "timestamp_header",
            text("timestamp_header")?.unwrap_or(""),
        )?)),
        Some("timestamp_param") => Some(TimestampSource::Param(
            text("timestamp_param")?.unwrap_or("").to_string(),
        )),
        Some(_) => Some(TimestampSource::JsonBody(
            text("timestamp_json")?.unwrap_or("").to_string(),
        )),
        None => None,
    };
    let unit = match choice("timestamp_unit", "s", &["s", "ms"])?.as_str() {
        "ms" => TimestampUnit::Millis,
        _ => TimestampUnit::Seconds,
    };
    if source.is_none() && table.contains_key("timestamp_unit") {
        return fail("timestamp_unit", "no timestamp is configured");
    }
    let timestamp = source.map(|source| TimestampSpec { source, unit });

    let scheme = Scheme {
        signature_header,
        more_signature_headers: Vec::new(),
        format,
        algorithm,
        encoding,
        default_tolerance: timestamp.as_ref().map(|_| Duration::from_secs(300)),
        signed,
        id,
        timestamp,
        key_encoding,
    };
    if let Err(e) = scheme.validate() {
        return fail("signed", e);
    }
    Ok(scheme)
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
                return fail("signed", format!("unclosed '{{' in {text:?}"));
            };
            let part = match &rest[1..end] {
                "id" => Part::Id,
                "timestamp" => Part::Timestamp,
                "body" => Part::Body,
                "url" => Part::Url,
                "method" => Part::Method,
                other => {
                    return fail(
                        "signed",
                        format!(
                            "unknown placeholder {{{other}}} (known: {{id}}, {{timestamp}}, {{body}}, {{url}}, {{method}}; {{{{ and }}}} for braces)"
                        ),
                    )
                }
            };
            if !literal.is_empty() {
                parts.push(Part::Text(std::mem::take(&mut literal)));
            }
            parts.push(part);
            rest = &rest[end + 1..];
        } else if c == '}' {
            return fail("signed", format!("unmatched '}}' in {text:?} (write }}}})"));
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

fn quoted(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| format!("{s:?}")).collect()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

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
        assert_eq!(template("{bdy}").unwrap_err().field, "signed");
        assert!(template("{body").is_err());
        assert!(template("}{body}").is_err());
    }

    #[test]
    fn unknown_key_is_refused_by_name() {
        let e = scheme(&table("header = \"x-sig\"\nalgoritm = \"sha1\"")).unwrap_err();
        assert_eq!(e.field, "algoritm");
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
