//! Sizes ("25MiB", "100kB" or bytes) and durations ("250ms", "5m"), read by serde.
//!
//! A bad value is serde's error at its key, so it carries the key path and
//! toml's line and column like any other.

use std::fmt;
use std::time::Duration;

use serde::de::{self, Deserializer, Visitor};
use serde::Deserialize;

/// A byte count more than zero: a string with a unit or a bare number.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Size(pub(super) u64);

impl<'de> Deserialize<'de> for Size {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct SizeVisitor;
        impl Visitor<'_> for SizeVisitor {
            type Value = Size;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a size like \"64KiB\", \"25MiB\" or a number of bytes")
            }
            fn visit_i64<E: de::Error>(self, n: i64) -> Result<Size, E> {
                u64::try_from(n)
                    .ok()
                    .filter(|n| *n > 0)
                    .map(Size)
                    .ok_or_else(|| E::custom(format!("{n} must be a positive number of bytes")))
            }
            fn visit_u64<E: de::Error>(self, n: u64) -> Result<Size, E> {
                if n == 0 {
                    return Err(E::custom("0 must be a positive number of bytes"));
                }
                Ok(Size(n))
            }
            fn visit_str<E: de::Error>(self, text: &str) -> Result<Size, E> {
                parse_size(text).map(Size).map_err(E::custom)
            }
        }
        deserializer.deserialize_any(SizeVisitor)
    }
}

/// A humantime duration of at most a year.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Dur(pub(super) Duration);

impl<'de> Deserialize<'de> for Dur {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        parse_duration(&text).map(Dur).map_err(de::Error::custom)
    }
}

/// Parses a humantime duration ("250ms", "5m") of at most a year.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    // A year bounds every setting: larger values are typos, and `Instant + d`
    // must never overflow on the request path.
    const MAX: Duration = Duration::from_secs(366 * 24 * 3600);
    let d = humantime::parse_duration(text)
        .map_err(|e| format!("{text:?} is not a duration like \"250ms\" or \"5m\": {e}"))?;
    if d > MAX {
        return Err(format!("{text:?} is longer than a year"));
    }
    Ok(d)
}

/// The units a size may carry, and the bytes each stands for.
const UNITS: [(&str, u64); 8] = [
    ("", 1),
    ("B", 1),
    ("KiB", 1 << 10),
    ("MiB", 1 << 20),
    ("GiB", 1 << 30),
    ("kB", 1_000),
    ("MB", 1_000_000),
    ("GB", 1_000_000_000),
];

/// Parses "64KiB", "25MiB", "1GiB", "100kB", "2MB" or a bare byte count.
pub fn parse_size(text: &str) -> Result<u64, String> {
    let bad = || format!("{text:?} is not a size like \"64KiB\", \"25MiB\" or a number of bytes");
    let t = text.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (digits, unit) = t.split_at(split);
    let n: u64 = digits.parse().map_err(|_| bad())?;
    // "KB" is read as kB, as people write it.
    let unit = if unit.trim() == "KB" {
        "kB"
    } else {
        unit.trim()
    };
    let (_, mult) = UNITS.iter().find(|(u, _)| *u == unit).ok_or_else(bad)?;
    let bytes = n.checked_mul(*mult).ok_or_else(bad)?;
    if bytes == 0 {
        return Err(format!("{text:?} must be more than zero bytes"));
    }
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn sizes_and_durations_parse() {
        assert_eq!(parse_size("64KiB").unwrap(), 65536);
        assert_eq!(parse_size("25MiB").unwrap(), 25 << 20);
        assert_eq!(parse_size("100kB").unwrap(), 100_000);
        assert_eq!(parse_size("2KB").unwrap(), 2_000);
        assert_eq!(parse_size("1000").unwrap(), 1000);
        assert!(parse_size("12 parsecs").is_err());
        assert!(parse_size("0").is_err());
        assert!(parse_size("5kib").is_err());
        assert_eq!(parse_duration("250ms").unwrap(), Duration::from_millis(250));
        assert_eq!(parse_duration("5min").unwrap(), Duration::from_secs(300));
        assert!(parse_duration("5 fortnights").is_err());
        assert!(parse_duration("2years").is_err());
    }
}
