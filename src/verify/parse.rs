//! Reading what a request offers: header values, signature entries, tokens, timestamps, ids.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use http::{HeaderMap, HeaderName};
use sha2::{Digest, Sha256};

use super::encoding::decode;
use super::{Algorithm, Encoding, Rejection, SignatureFormat, TimestampUnit};

/// A header's value, or `None` when absent or blank. Several headers of the same
/// name are not merged: the first is used, as providers send one.
pub(super) fn header<'h>(headers: &'h HeaderMap, name: &HeaderName) -> Option<&'h [u8]> {
    let v = headers.get(name)?.as_bytes();
    let v = v.trim_ascii();
    (!v.is_empty()).then_some(v)
}

pub(super) fn param<'h>(raw: &'h [u8], format: &SignatureFormat, key: &str) -> Option<&'h [u8]> {
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

/// The decoded signatures a header offers; malformed entries are skipped so that
/// they cannot hide a later valid one. `asymmetric` selects the `Versioned`
/// format's asymmetric entries (`v1a`) instead of its HMAC ones.
pub(super) fn candidates(
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
        SignatureFormat::JsonBody { .. } if asymmetric => Vec::new(),
        SignatureFormat::JsonBody { .. } => decode_one(raw).into_iter().collect(),
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

pub(super) fn strip_prefix<'r>(raw: &'r [u8], prefix: &str) -> Option<&'r [u8]> {
    let prefix = prefix.as_bytes();
    (raw.len() >= prefix.len() && raw[..prefix.len()].eq_ignore_ascii_case(prefix))
        .then(|| &raw[prefix.len()..])
}

/// A token header's SHA-256 (compared against the secret's, so that neither
/// the content nor the length of the secret leaks through timing).
pub(super) fn token_digest(raw: &[u8], format: &SignatureFormat) -> Option<[u8; 32]> {
    let rest = match format {
        SignatureFormat::Plain { prefix } => strip_prefix(raw, prefix)?,
        SignatureFormat::Versioned { .. }
        | SignatureFormat::Params { .. }
        | SignatureFormat::JsonBody { .. } => raw,
    };
    let rest = rest.trim_ascii();
    (!rest.is_empty()).then(|| Sha256::digest(rest).into())
}

/// Within `tolerance` of `now` in both directions (the boundary is accepted),
/// in whole units as the providers' own libraries compare. Epoch numbers are
/// digits only; RFC 3339 text is UTC (`Z` or `+00:00`), its fraction dropped.
pub(super) fn check_timestamp(
    text: &[u8],
    unit: TimestampUnit,
    tolerance: Duration,
    now: SystemTime,
) -> Result<(), Rejection> {
    let since = now.duration_since(UNIX_EPOCH).unwrap_or_default();
    let (ts, now, tolerance) = match unit {
        TimestampUnit::Seconds => (epoch_number(text)?, since.as_secs(), tolerance.as_secs()),
        TimestampUnit::Millis => (
            epoch_number(text)?,
            u64::try_from(since.as_millis()).unwrap_or(u64::MAX),
            u64::try_from(tolerance.as_millis()).unwrap_or(u64::MAX),
        ),
        TimestampUnit::Rfc3339 => (rfc3339_secs(text)?, since.as_secs(), tolerance.as_secs()),
    };
    if now.abs_diff(ts) > tolerance {
        return Err(Rejection::StaleTimestamp);
    }
    Ok(())
}

/// 1 to 19 ASCII digits: no sign, no space, no fraction, no overflow.
fn epoch_number(text: &[u8]) -> Result<u64, Rejection> {
    if text.is_empty() || text.len() > 19 || !text.iter().all(u8::is_ascii_digit) {
        return Err(Rejection::StaleTimestamp);
    }
    std::str::from_utf8(text)
        .ok()
        .and_then(|s| s.parse().ok())
        .ok_or(Rejection::StaleTimestamp)
}

/// `YYYY-MM-DDTHH:MM:SS[.fraction]Z` as whole seconds since the epoch. Strict:
/// upper-case `T` and `Z`, no offset other than `Z` or `+00:00` (humantime's
/// RFC 3339 parser), at most 9 fraction digits, a real calendar date, nothing
/// before 1970.
pub(super) fn rfc3339_secs(text: &[u8]) -> Result<u64, Rejection> {
    // The longest accepted form is 20 characters plus '.' and 9 digits.
    if text.len() < 20 || text.len() > 30 || text.get(10) != Some(&b'T') {
        return Err(Rejection::StaleTimestamp);
    }
    let text = std::str::from_utf8(text).map_err(|_| Rejection::StaleTimestamp)?;
    let at = humantime::parse_rfc3339(text).map_err(|_| Rejection::StaleTimestamp)?;
    at.duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .map_err(|_| Rejection::StaleTimestamp)
}

/// The algorithm a Twilio request announces: `algorithm=` in the settings
/// header, HMAC-SHA1 when the header or the pair is absent or empty (as
/// twilio-node's `getSignatureAlgorithm`), `None` for one it does not know.
pub(super) fn announced_algorithm(settings: Option<&[u8]>) -> Option<Algorithm> {
    let value = settings
        .unwrap_or_default()
        .split(|b| *b == b',')
        .find_map(|part| {
            let eq = part.iter().position(|b| *b == b'=')?;
            let value = part[eq + 1..].trim_ascii();
            (part[..eq].trim_ascii() == b"algorithm" && !value.is_empty()).then_some(value)
        });
    match value {
        None => Some(Algorithm::Sha1),
        Some(v) if v.eq_ignore_ascii_case(b"HMAC_SHA1") => Some(Algorithm::Sha1),
        Some(v) if v.eq_ignore_ascii_case(b"HMAC_SHA256") => Some(Algorithm::Sha256),
        Some(_) => None,
    }
}

/// Ids are logged: keep them printable and bounded.
pub(super) fn printable_id(id: &[u8]) -> String {
    let shown: Vec<u8> = id[..id.len().min(128)]
        .iter()
        .map(|&b| if b.is_ascii_graphic() { b } else { b'?' })
        .collect();
    // Every byte is now printable ASCII, so this is always valid UTF-8.
    String::from_utf8(shown).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::printable_id;

    #[test]
    fn a_logged_id_is_printable_ascii_and_at_most_128_bytes() {
        assert_eq!(printable_id(b"msg_2Kx"), "msg_2Kx");
        assert_eq!(printable_id(b"a b\n\"\xc3\xa9\x7f"), "a?b?\"???");
        let long = [b'x'; 300];
        assert_eq!(printable_id(&long), "x".repeat(128));
        assert_eq!(printable_id(b""), "");
    }
}
