//! `hookgate_secret_expiry_seconds`, computed when scraped from the
//! `not_after` of the secrets of every route table still alive: a table
//! dropped after a reload takes its series with it.

use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::time::SystemTime;

use prometheus::core::{Collector, Desc};
use prometheus::proto::MetricFamily;
use prometheus::{GaugeVec, Opts};

use super::must;

/// One secret's end, as its route table declared it.
struct ExpiryEntry {
    route: String,
    secret: String,
    not_after: SystemTime,
}

/// A route's secrets' ends: the series of `hookgate_secret_expiry_seconds`
/// exist while a handle lives (the route table holds it).
#[derive(Clone, Default)]
pub struct SecretExpiries {
    _held: Vec<Arc<ExpiryEntry>>,
}

/// The collector behind `hookgate_secret_expiry_seconds{route,secret}`:
/// seconds from the scrape until each secret's `not_after` (negative once it
/// has passed), for secrets that have one.
pub(super) struct SecretExpiry {
    gauge: GaugeVec,
    /// Registration order: a later table's entry (after a reload) wins.
    entries: Mutex<Vec<Weak<ExpiryEntry>>>,
    clock: fn() -> SystemTime,
}

impl SecretExpiry {
    pub(super) fn new(clock: fn() -> SystemTime) -> Self {
        SecretExpiry {
            gauge: must(GaugeVec::new(
                Opts::new(
                    "hookgate_secret_expiry_seconds",
                    "Seconds until a route secret's not_after (negative once passed); absent for a secret without one.",
                ),
                &["route", "secret"],
            )),
            entries: Mutex::new(Vec::new()),
            clock,
        }
    }

    pub(super) fn register(&self, route: &str, secrets: &[(String, SystemTime)]) -> SecretExpiries {
        let handles: Vec<Arc<ExpiryEntry>> = secrets
            .iter()
            .map(|(secret, not_after)| {
                Arc::new(ExpiryEntry {
                    route: route.to_string(),
                    secret: secret.clone(),
                    not_after: *not_after,
                })
            })
            .collect();
        // A poisoned lock only means another scrape panicked; the list is still whole.
        let mut entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        entries.retain(|w| w.strong_count() > 0);
        entries.extend(handles.iter().map(Arc::downgrade));
        SecretExpiries { _held: handles }
    }
}

/// The registry owns a `Box<dyn Collector>`; `Metrics` keeps the other `Arc`.
pub(super) struct ExpiryCollector(pub(super) Arc<SecretExpiry>);

impl Collector for ExpiryCollector {
    fn desc(&self) -> Vec<&Desc> {
        self.0.gauge.desc()
    }

    fn collect(&self) -> Vec<MetricFamily> {
        let inner = &self.0;
        // Held across reset + set + collect, so concurrent scrapes do not interleave.
        let mut entries = inner.entries.lock().unwrap_or_else(PoisonError::into_inner);
        entries.retain(|w| w.strong_count() > 0);
        inner.gauge.reset();
        let now = (inner.clock)();
        for e in entries.iter().filter_map(Weak::upgrade) {
            let seconds = match e.not_after.duration_since(now) {
                Ok(left) => left.as_secs_f64(),
                Err(past) => -past.duration().as_secs_f64(),
            };
            inner
                .gauge
                .with_label_values(&[e.route.as_str(), e.secret.as_str()])
                .set(seconds);
        }
        inner.gauge.collect()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use std::time::{Duration, UNIX_EPOCH};

    use super::*;
    use crate::metrics::Metrics;

    fn fixed_now() -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(1_796_083_200)
    }

    fn values(c: &ExpiryCollector) -> Vec<(String, String, f64)> {
        let mut out = Vec::new();
        for family in c.collect() {
            for m in family.get_metric() {
                let label = |n: &str| {
                    m.get_label()
                        .iter()
                        .find(|l| l.name() == n)
                        .map(|l| l.value().to_string())
                        .unwrap()
                };
                out.push((label("route"), label("secret"), m.get_gauge().get_value()));
            }
        }
        out.sort_by(|a, b| a.1.cmp(&b.1));
        out
    }

    #[test]
    fn expiry_is_seconds_to_not_after_at_scrape_and_lives_with_its_table() {
        let c = ExpiryCollector(Arc::new(SecretExpiry::new(fixed_now)));
        let now = fixed_now();
        let week = Duration::from_secs(7 * 86_400);
        let table = c.0.register(
            "levers",
            &[
                ("old".into(), now + week),
                ("older".into(), now - Duration::from_secs(60)),
            ],
        );
        assert_eq!(
            values(&c),
            vec![
                ("levers".into(), "old".into(), 604_800.0),
                ("levers".into(), "older".into(), -60.0),
            ]
        );
        // A reload builds a new table: while both live, the newer entry wins;
        // once the old one is dropped, only the new table's series remain.
        let reloaded = c.0.register("levers", &[("old".into(), now + week + week)]);
        assert_eq!(values(&c)[0].2, 2.0 * 604_800.0);
        drop(table);
        assert_eq!(
            values(&c),
            vec![("levers".into(), "old".into(), 1_209_600.0)]
        );
        drop(reloaded);
        assert!(values(&c).is_empty());
    }

    #[test]
    fn the_gauge_is_in_the_exposition_only_for_secrets_with_an_end() {
        let m = Metrics::new();
        assert!(!m.encode().contains("hookgate_secret_expiry_seconds{"));
        let _held = m.secret_expiries(
            "r",
            &[("0".into(), SystemTime::now() + Duration::from_secs(3600))],
        );
        let text = m.encode();
        let line = text
            .lines()
            .find(|l| l.starts_with("hookgate_secret_expiry_seconds{"))
            .unwrap();
        assert!(
            line.contains(r#"route="r""#) && line.contains(r#"secret="0""#),
            "{line}"
        );
        let v: f64 = line.rsplit(' ').next().unwrap().parse().unwrap();
        assert!((3500.0..=3600.0).contains(&v), "{line}");
    }
}
