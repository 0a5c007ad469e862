//! A secret's validity window (`not_before`, `not_after`): whether its key may verify at an instant.
//!
//! Both bounds are inclusive: a key verifies at exactly `not_before` and at
//! exactly `not_after`, and not a nanosecond outside. The window is
//! configuration, not a secret, so skipping a key outside it leaks nothing.

use std::fmt;
use std::time::SystemTime;

/// When a key verifies: from `not_before` through `not_after`, either bound optional.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Validity {
    pub not_before: Option<SystemTime>,
    pub not_after: Option<SystemTime>,
}

impl Validity {
    /// No bound: the key verifies at any time.
    pub const ALWAYS: Validity = Validity {
        not_before: None,
        not_after: None,
    };

    /// A window; `not_before` must come strictly before `not_after`.
    pub fn new(
        not_before: Option<SystemTime>,
        not_after: Option<SystemTime>,
    ) -> Result<Self, &'static str> {
        if let (Some(nb), Some(na)) = (not_before, not_after) {
            if nb >= na {
                return Err("not_before must be earlier than not_after");
            }
        }
        Ok(Validity {
            not_before,
            not_after,
        })
    }

    /// Whether `now` is inside the window (bounds included).
    pub fn contains(&self, now: SystemTime) -> bool {
        self.not_before.is_none_or(|nb| now >= nb) && self.not_after.is_none_or(|na| now <= na)
    }

    pub fn is_always(&self) -> bool {
        self.not_before.is_none() && self.not_after.is_none()
    }
}

impl fmt::Display for Validity {
    /// `always`, `from <t>`, `until <t>` or `from <t> until <t>`, in RFC 3339 UTC.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let t = |at: SystemTime| humantime::format_rfc3339(at);
        match (self.not_before, self.not_after) {
            (None, None) => f.write_str("always"),
            (Some(nb), None) => write!(f, "from {}", t(nb)),
            (None, Some(na)) => write!(f, "until {}", t(na)),
            (Some(nb), Some(na)) => write!(f, "from {} until {}", t(nb), t(na)),
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use std::time::{Duration, UNIX_EPOCH};

    fn at(secs: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(secs)
    }

    #[test]
    fn bounds_are_inclusive_and_a_nanosecond_outside_is_out() {
        let w = Validity::new(Some(at(100)), Some(at(200))).unwrap();
        let ns = Duration::from_nanos(1);
        assert!(!w.contains(at(100) - ns));
        assert!(w.contains(at(100)));
        assert!(w.contains(at(150)));
        assert!(w.contains(at(200)));
        assert!(!w.contains(at(200) + ns));
    }

    #[test]
    fn either_bound_is_optional() {
        let from = Validity::new(Some(at(100)), None).unwrap();
        assert!(
            !from.contains(at(99)) && from.contains(at(100)) && from.contains(at(u32::MAX.into()))
        );
        let until = Validity::new(None, Some(at(100))).unwrap();
        assert!(until.contains(UNIX_EPOCH) && until.contains(at(100)) && !until.contains(at(101)));
        assert!(Validity::ALWAYS.contains(UNIX_EPOCH) && Validity::ALWAYS.is_always());
    }

    #[test]
    fn an_empty_or_reversed_window_is_refused() {
        assert!(Validity::new(Some(at(100)), Some(at(100))).is_err());
        assert!(Validity::new(Some(at(200)), Some(at(100))).is_err());
    }

    #[test]
    fn display_is_rfc3339_utc() {
        let w = Validity::new(Some(at(1_796_083_200)), Some(at(1_796_688_000))).unwrap();
        assert_eq!(
            w.to_string(),
            "from 2026-12-01T00:00:00Z until 2026-12-08T00:00:00Z"
        );
        assert_eq!(Validity::ALWAYS.to_string(), "always");
    }
}
