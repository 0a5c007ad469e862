//! The delivery invariant over the provider's and the app's logs, and the table a run prints.
//!
//! 1. every delivery the provider saw a 2xx for reached the app;
//! 2. exactly once, unless a fault that loses claims (Redis restarted empty,
//!    an instance killed -9) began within the delivery's lifetime, from its
//!    first attempt to its first 2xx: then at least once;
//! 3. every genuine delivery reached the app and was answered 2xx within its budget;
//! 4. nothing unverified reached the app (each arrival is verified again
//!    there), and no forged delivery was answered 2xx;
//! 5. no 5xx was answered outside the window of a fault that excuses it: the
//!    attempt was sent before the fault was over and answered within
//!    `upstream.timeout` + 1 s of its end (a request sent once the app or
//!    Redis is back must not meet a 5xx: that is how the 503 after a Redis
//!    restart, fixed in 9b581df, shows).
//!
//! "Reached the app" means the app started a 2xx answer to it (`Mode::accepts`):
//! an arrival the app failed, reset or left hanging is not a delivery, and
//! its retry reaching the app again is not a duplicate.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::time::{Duration, Instant};

use super::app::Arrival;
use super::provider::{Attempt, Delivery, Hangup, Outcome, Route, VIA};
use super::timeline::{Fault, Timeline, Window};

pub struct Input<'a> {
    pub deliveries: &'a [Delivery],
    pub attempts: &'a [Attempt],
    pub arrivals: &'a [Arrival],
    pub timeline: &'a Timeline,
    /// Added to the end of each window when excusing a 5xx: `upstream.timeout` + 1 s.
    pub grace: Duration,
    pub t0: Instant,
    pub seed: u64,
}

pub struct Report {
    pub table: String,
    pub violations: Vec<String>,
}

#[derive(Default)]
struct Counts {
    lost: usize,
    unfinished: usize,
    duplicates: usize,
    duplicates_after_lost_claim: usize,
    exposed: usize,
    unverified: usize,
    stray_5xx: usize,
    excused_5xx: usize,
}

pub fn check(input: &Input<'_>) -> Report {
    let mut violations: Vec<String> = input
        .timeline
        .problems
        .iter()
        .map(|p| format!("fault injection: {p}"))
        .collect();
    let mut c = Counts::default();
    let at = |i: Instant| i.saturating_duration_since(input.t0).as_secs_f64();

    let mut attempts: HashMap<u64, Vec<&Attempt>> = HashMap::new();
    for a in input.attempts {
        attempts.entry(a.delivery).or_default().push(a);
    }
    let mut arrivals: HashMap<u64, Vec<&Arrival>> = HashMap::new();
    let by_id: HashMap<u64, &Delivery> = input.deliveries.iter().map(|d| (d.id, d)).collect();

    // (4) at the app: every arrival verifies and belongs to a genuine delivery.
    for a in input.arrivals {
        let genuine = a
            .delivery
            .and_then(|id| by_id.get(&id))
            .is_some_and(|d| d.genuine());
        if !a.verified || !genuine {
            c.unverified += 1;
            violations.push(format!(
                "(4) an unverified request reached the app at {:.2}s via {}: {} delivery {:?} (verifies: {})",
                at(a.at),
                a.via,
                a.path,
                a.delivery,
                a.verified
            ));
        }
        if let Some(id) = a.delivery {
            arrivals.entry(id).or_default().push(a);
        }
    }

    let loses_claims: Vec<&Window> = input
        .timeline
        .windows
        .iter()
        .filter(|w| w.fault.loses_claims())
        .collect();
    for d in input.deliveries {
        let tried = attempts.get(&d.id).map(Vec::as_slice).unwrap_or_default();
        let first_2xx = tried.iter().filter(|a| a.succeeded()).map(|a| a.done).min();
        if !d.genuine() {
            if let Some(a) = tried.iter().find(|a| a.status().is_some_and(|s| s < 300)) {
                violations.push(format!(
                    "(4) forged delivery {} ({:?}, {}) was answered {:?} at {:.2}s",
                    d.id,
                    d.forgery,
                    d.route.name(),
                    a.status(),
                    at(a.done)
                ));
            }
            continue;
        }
        let reached = arrivals.get(&d.id).map(Vec::as_slice).unwrap_or_default();
        let accepted = reached.iter().filter(|a| a.mode.accepts()).count();
        let story = || describe(tried, reached, input.t0);
        if accepted == 0 {
            c.lost += 1;
            let which = if first_2xx.is_some() { "(1)" } else { "(3)" };
            violations.push(format!(
                "{which} delivery {} ({}) never reached the app; {}",
                d.id,
                d.route.name(),
                story()
            ));
        }
        if first_2xx.is_none() {
            c.unfinished += 1;
            violations.push(format!(
                "(3) delivery {} ({}) got no 2xx within its budget; {}",
                d.id,
                d.route.name(),
                story()
            ));
        }
        let Some(first) = tried.iter().map(|a| a.sent).min() else {
            continue;
        };
        let last = first_2xx.unwrap_or_else(|| tried.iter().map(|a| a.done).max().unwrap_or(first));
        // A claim is lost only if it was taken before the fault began and
        // settled (or retried) after: the delivery's lifetime spans the start.
        let exposed = loses_claims
            .iter()
            .find(|w| first <= w.start && w.start <= last);
        if exposed.is_some() {
            c.exposed += 1;
        }
        if accepted > 1 {
            c.duplicates += 1;
            match exposed {
                Some(_) => c.duplicates_after_lost_claim += 1,
                None => violations.push(format!(
                    "(2) delivery {} ({}) reached the app {accepted} times with no lost claim in its lifetime; {}",
                    d.id,
                    d.route.name(),
                    story()
                )),
            }
        }
    }

    // (5) every 5xx the provider saw falls in the window of a fault that excuses it.
    for a in input.attempts {
        let Some(status) = a.status().filter(|s| *s >= 500) else {
            continue;
        };
        let excused = input
            .timeline
            .windows
            .iter()
            .any(|w| w.excuses(a.sent, a.done, input.grace));
        if excused {
            c.excused_5xx += 1;
            continue;
        }
        c.stray_5xx += 1;
        let during: Vec<&str> = input
            .timeline
            .windows
            .iter()
            .filter(|w| w.meets(a.sent, a.done, input.grace))
            .map(|w| w.fault.label())
            .collect();
        violations.push(format!(
            "(5) {status} outside a fault window that excuses it: delivery {} attempt {} via {}, sent {:.2}s, answered {:.2}s (windows met: {during:?})",
            a.delivery,
            a.n,
            VIA[a.via],
            at(a.sent),
            at(a.done)
        ));
    }

    Report {
        table: table(input, &c),
        violations,
    }
}

/// One delivery's attempts and arrivals, for a violation's message.
fn describe(tried: &[&Attempt], reached: &[&Arrival], t0: Instant) -> String {
    let at = |i: Instant| i.saturating_duration_since(t0).as_secs_f64();
    let mut s = String::from("attempts:");
    for a in tried {
        let what = match &a.outcome {
            Outcome::Status { status, complete } => {
                format!("{status}{}", if *complete { "" } else { " (body cut)" })
            }
            Outcome::Failed(e) => format!("failed ({e})"),
            Outcome::Timeout => "timeout".into(),
            Outcome::HungUp(h) => format!("hung up {h:?}"),
        };
        let _ = write!(
            s,
            " [#{} via {} {:.2}s-{:.2}s {what}]",
            a.n,
            VIA[a.via],
            at(a.sent),
            at(a.done)
        );
    }
    s.push_str("; at the app:");
    for a in reached {
        let _ = write!(s, " [{:.2}s via {} {:?}]", at(a.at), a.via, a.mode);
    }
    s
}

fn table(input: &Input<'_>, c: &Counts) -> String {
    let ds = input.deliveries;
    let genuine = ds.iter().filter(|d| d.genuine()).count();
    let per_route = |r: Route| ds.iter().filter(|d| d.genuine() && d.route == r).count();
    let mut statuses: BTreeMap<u16, usize> = BTreeMap::new();
    let (mut no_answer, mut mid_body, mut after_request) = (0, 0, 0);
    for a in input.attempts {
        match &a.outcome {
            Outcome::Status { status, .. } => *statuses.entry(*status).or_default() += 1,
            Outcome::Failed(_) | Outcome::Timeout => no_answer += 1,
            Outcome::HungUp(Hangup::MidBody) => mid_body += 1,
            Outcome::HungUp(Hangup::AfterRequest) => after_request += 1,
        }
    }
    let mut faults: BTreeMap<Fault, usize> = BTreeMap::new();
    for w in &input.timeline.windows {
        *faults.entry(w.fault).or_default() += 1;
    }
    let injected = input.timeline.windows.len() + mid_body + after_request;
    let accepted = input.arrivals.iter().filter(|a| a.mode.accepts()).count();

    let mut t = String::new();
    let row = |t: &mut String, label: &str, n: usize, note: String| {
        let _ = writeln!(t, "| {label:<36} | {n:>6} | {note}");
    };
    let _ = writeln!(t, "| {:<36} | {:>6} | detail", "", "count");
    let _ = writeln!(t, "|{}|{}|---", "-".repeat(38), "-".repeat(8));
    row(
        &mut t,
        "deliveries",
        ds.len(),
        format!(
            "genuine {genuine} (svix {}, levanta {}, leaflink {}; {} of them probes sent right after a recovery), forged {}",
            per_route(Route::Svix),
            per_route(Route::Levanta),
            per_route(Route::LeafLink),
            ds.iter().filter(|d| d.is_probe()).count(),
            ds.len() - genuine
        ),
    );
    let statuses: Vec<String> = statuses.iter().map(|(s, n)| format!("{s}: {n}")).collect();
    row(
        &mut t,
        "attempts",
        input.attempts.len(),
        format!("{}; no answer: {no_answer}", statuses.join(", ")),
    );
    row(&mut t, "faults injected", injected, String::new());
    for (fault, n) in &faults {
        row(&mut t, &format!("  {}", fault.label()), *n, String::new());
    }
    row(
        &mut t,
        "  provider hangs up mid-body",
        mid_body,
        String::new(),
    );
    row(
        &mut t,
        "  provider hangs up after request",
        after_request,
        String::new(),
    );
    row(
        &mut t,
        "arrivals at the app",
        input.arrivals.len(),
        format!(
            "{accepted} answered 2xx by the app, {} failed/reset/hung by it",
            input.arrivals.len() - accepted
        ),
    );
    row(
        &mut t,
        "duplicates to the app",
        c.duplicates,
        format!(
            "{} after a lost claim (at-least-once for the {} deliveries a Redis restart or kill -9 met); exactly-once checked for the other {}",
            c.duplicates_after_lost_claim,
            c.exposed,
            genuine - c.exposed
        ),
    );
    row(&mut t, "lost", c.lost, "must be 0".into());
    row(
        &mut t,
        "no 2xx within budget",
        c.unfinished,
        "must be 0".into(),
    );
    row(
        &mut t,
        "unverified at the app",
        c.unverified,
        "must be 0".into(),
    );
    row(
        &mut t,
        "5xx outside fault windows",
        c.stray_5xx,
        format!(
            "must be 0 ({} inside windows that excuse them)",
            c.excused_5xx
        ),
    );
    let _ = writeln!(
        t,
        "\nseed {:#x}; fault windows (seconds from start):",
        input.seed
    );
    let at = |i: Instant| i.saturating_duration_since(input.t0).as_secs_f64();
    for w in &input.timeline.windows {
        let _ = writeln!(
            t,
            "  {:>7.2} - {:>7.2}  {}{}{}",
            at(w.start),
            at(w.end),
            w.fault.label(),
            if w.note.is_empty() { "" } else { ": " },
            w.note
        );
    }
    t
}

/// The checker itself, on made-up logs: each invariant it guards fails when broken.
#[cfg(test)]
mod tests {
    use super::*;
    use crate::faults::app::Mode;
    use crate::faults::provider::plan;

    fn attempt(delivery: u64, sent: Instant, status: u16) -> Attempt {
        Attempt {
            delivery,
            n: 0,
            via: 0,
            sent,
            done: sent + Duration::from_millis(10),
            outcome: Outcome::Status {
                status,
                complete: true,
            },
        }
    }

    fn arrival(delivery: u64, at: Instant, verified: bool) -> Arrival {
        Arrival {
            at,
            delivery: Some(delivery),
            path: "/webhooks/levers".into(),
            via: "a".into(),
            attempt: Some(0),
            verified,
            mode: Mode::Normal,
        }
    }

    fn violations(
        timeline: &Timeline,
        attempts: &[Attempt],
        arrivals: &[Arrival],
        t0: Instant,
    ) -> Vec<String> {
        let deliveries = plan(4, 0, Duration::ZERO, 1);
        check(&Input {
            deliveries: &deliveries,
            attempts,
            arrivals,
            timeline,
            grace: Duration::from_secs(1),
            t0,
            seed: 1,
        })
        .violations
    }

    #[test]
    fn the_checker_flags_a_duplicate_a_loss_an_unverified_arrival_and_a_stray_5xx() {
        let t0 = Instant::now();
        let s = |secs: u64| t0 + Duration::from_secs(secs);
        let attempts = [
            attempt(0, s(1), 200),
            attempt(1, s(2), 503),
            attempt(2, s(3), 200),
            attempt(3, s(4), 200),
        ];
        let arrivals = [
            arrival(0, s(1), true),
            arrival(0, s(5), true),
            arrival(2, s(3), false),
            arrival(3, s(4), true),
        ];
        let found = violations(&Timeline::default(), &attempts, &arrivals, t0);
        let has = |prefix: &str| found.iter().any(|v| v.starts_with(prefix));
        assert!(has("(2) delivery 0 "), "{found:#?}");
        assert!(has("(3) delivery 1 "), "{found:#?}");
        assert!(has("(4) an unverified request"), "{found:#?}");
        assert!(has("(5) 503 "), "{found:#?}");
        assert!(
            !found.iter().any(|v| v.contains("delivery 3 ")),
            "{found:#?}"
        );
    }

    #[test]
    fn a_5xx_is_excused_only_for_a_request_sent_before_its_fault_was_over() {
        let t0 = Instant::now();
        let ms = |n: u64| t0 + Duration::from_millis(n);
        let mut timeline = Timeline::default();
        timeline.windows.push(Window {
            fault: Fault::RedisKill,
            start: ms(1000),
            end: ms(2000),
            note: String::new(),
        });
        let mut attempts: Vec<Attempt> = (0..4).map(|d| attempt(d, ms(100), 200)).collect();
        attempts[1] = attempt(1, ms(1900), 503);
        attempts.push(attempt(1, ms(2500), 503));
        attempts.push(attempt(1, ms(3000), 200));
        let arrivals: Vec<Arrival> = (0..4).map(|d| arrival(d, ms(100), true)).collect();
        let found = violations(&timeline, &attempts, &arrivals, t0);
        let stray: Vec<&String> = found.iter().filter(|v| v.starts_with("(5)")).collect();
        assert_eq!(stray.len(), 1, "{found:#?}");
        assert!(stray[0].contains("sent 2.50s"), "{found:#?}");
    }

    #[test]
    fn a_duplicate_after_a_redis_restart_in_its_lifetime_is_at_least_once_not_a_violation() {
        let t0 = Instant::now();
        let s = |secs: u64| t0 + Duration::from_secs(secs);
        let mut attempts: Vec<Attempt> = (0..4).map(|d| attempt(d, s(1), 200)).collect();
        // Delivery 0: its first attempt's answer is lost, Redis restarts empty, the retry goes through again.
        attempts[0].outcome = Outcome::Failed("reset".into());
        attempts.push(attempt(0, s(4), 200));
        let mut arrivals: Vec<Arrival> = (0..4).map(|d| arrival(d, s(1), true)).collect();
        arrivals.push(arrival(0, s(4), true));
        let mut timeline = Timeline::default();
        timeline.windows.push(Window {
            fault: Fault::RedisKill,
            start: s(2),
            end: s(3),
            note: String::new(),
        });
        let found = violations(&timeline, &attempts, &arrivals, t0);
        assert!(found.is_empty(), "{found:#?}");
        // Without the restart, the same logs are a duplicate.
        let found = violations(&Timeline::default(), &attempts, &arrivals, t0);
        assert!(
            found.iter().any(|v| v.starts_with("(2) delivery 0 ")),
            "{found:#?}"
        );
    }
}
