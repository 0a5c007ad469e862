//! The queue run's invariants over the provider's log, the app's log, the kills and the store left
//! at the end, and the table a run prints. A stored request is known at the app by its delivery and
//! the provider's attempt that was stored (`x-attempt`, passed on).
//!
//! 1. every attempt answered 202 reached the app (the app started a 2xx answer to that very stored
//!    request), and every delivery answered `200 duplicate` reached it too; every genuine delivery
//!    got a 2xx within its budget; the store is empty once drained (nothing pending, nothing
//!    dead-lettered);
//! 2. no stored request reached the app again after the app answered 2xx for it, unless hookgate
//!    was down in between, from a kill -9 until its restart listened (the crash window between the
//!    app's 2xx and the queue's record of it): counted apart, at most one per route per kill. A
//!    request the killed instance wrote just before it died can reach the app's handler just
//!    after the kill's timestamp, and the app's answer then goes to a dead socket: so the time
//!    down, not only the instant of the kill, excuses the repeat. A delivery stored twice (two
//!    attempts) only when the first attempt's answer was lost to a kill that also emptied the
//!    replay store (memory);
//! 3. nothing unverified was stored or delivered: every arrival verifies again at the app and is a
//!    genuine delivery; no forged or stale delivery was answered 2xx; no attempt answered anything
//!    but 2xx reached the app;
//! 4. order per route: a request stored (answered 202) before another of its route was sent reached
//!    the app (2xx) before the other first reached it;
//! 5. the provider never saw a 5xx: in queue mode the app's failures are the queue's to retry.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::time::Instant;

use super::super::app::Arrival;
use super::super::provider::{Attempt, Delivery, Forgery, Hangup, Outcome, Route};
use super::timeline::{Flap, Timeline};

pub struct Input<'a> {
    pub deliveries: &'a [Delivery],
    pub attempts: &'a [Attempt],
    pub arrivals: &'a [Arrival],
    pub timeline: &'a Timeline,
    /// (pending, dead-lettered) records in the store after the drain and a SIGTERM.
    pub in_store: (u64, u64),
    /// Queue routes: deliveries in flight at once, at most.
    pub routes: usize,
    pub t0: Instant,
    pub seed: u64,
}

pub struct Report {
    pub table: String,
    pub violations: Vec<String>,
}

#[derive(Default)]
struct Counts {
    accepted: usize,
    duplicate: usize,
    lost: usize,
    unfinished: usize,
    crash_window: usize,
    stored_twice: usize,
    unverified: usize,
    out_of_order: usize,
    provider_5xx: usize,
    refused_yet_delivered: usize,
    exactly_once: usize,
}

pub fn check(input: &Input<'_>) -> Report {
    let mut v: Vec<String> = Vec::new();
    let mut c = Counts::default();
    let at = |i: Instant| i.saturating_duration_since(input.t0).as_secs_f64();
    let by_id: HashMap<u64, &Delivery> = input.deliveries.iter().map(|d| (d.id, d)).collect();
    // hookgate was down (killed, not yet listening again) at some point from `a` to `b`.
    let down_between = |a: Instant, b: Instant| {
        input
            .timeline
            .kills
            .iter()
            .any(|k| k.at <= b && a <= k.back.max(k.at))
    };

    // Arrivals by stored request (delivery, attempt), in order; (3) each verifies and is genuine.
    let mut stored: BTreeMap<(u64, u32), Vec<&Arrival>> = BTreeMap::new();
    for a in input.arrivals {
        let genuine = a
            .delivery
            .and_then(|id| by_id.get(&id))
            .is_some_and(|d| d.genuine() && d.route.path() == a.path);
        if !a.verified || !genuine {
            c.unverified += 1;
            v.push(format!(
                "(3) an unverified request reached the app at {:.2}s: {} delivery {:?} attempt {:?} (verifies: {})",
                at(a.at),
                a.path,
                a.delivery,
                a.attempt,
                a.verified
            ));
        }
        match (a.delivery, a.attempt) {
            (Some(d), Some(n)) => stored.entry((d, n)).or_default().push(a),
            _ => v.push(format!(
                "(3) an arrival at {:.2}s names no delivery or attempt",
                at(a.at)
            )),
        }
    }
    for arrivals in stored.values_mut() {
        arrivals.sort_by_key(|a| a.at);
    }
    let first_2xx = |key: &(u64, u32)| -> Option<Instant> {
        stored
            .get(key)?
            .iter()
            .find(|a| a.mode.accepts())
            .map(|a| a.at)
    };

    let mut attempts: HashMap<u64, Vec<&Attempt>> = HashMap::new();
    for a in input.attempts {
        attempts.entry(a.delivery).or_default().push(a);
        match a.status() {
            Some(500..) => {
                c.provider_5xx += 1;
                v.push(format!(
                    "(5) the provider got {:?} for delivery {} attempt {} at {:.2}s",
                    a.status(),
                    a.delivery,
                    a.n,
                    at(a.done)
                ));
            }
            Some(202) => {
                c.accepted += 1;
                if first_2xx(&(a.delivery, a.n)).is_none() {
                    c.lost += 1;
                    v.push(format!(
                        "(1) delivery {} attempt {} was answered 202 at {:.2}s and never reached the app",
                        a.delivery,
                        a.n,
                        at(a.done)
                    ));
                }
            }
            Some(200) => c.duplicate += 1,
            // Refused (401 forged, 409 in flight, ...): it must not have been stored.
            Some(status)
                if !(200..300).contains(&status) && stored.contains_key(&(a.delivery, a.n)) =>
            {
                c.refused_yet_delivered += 1;
                v.push(format!(
                    "(3) delivery {} attempt {} was answered {status} and still reached the app",
                    a.delivery, a.n
                ));
            }
            _ => {}
        }
    }

    for d in input.deliveries {
        let tried = attempts.get(&d.id).map(Vec::as_slice).unwrap_or_default();
        if !d.genuine() {
            if let Some(a) = tried.iter().find(|a| a.status().is_some_and(|s| s < 300)) {
                v.push(format!(
                    "(3) forged delivery {} ({:?}) was answered {:?}",
                    d.id,
                    d.forgery,
                    a.status()
                ));
            }
            continue;
        }
        if !tried.iter().any(|a| a.succeeded()) {
            c.unfinished += 1;
            v.push(format!(
                "(1) delivery {} got no 2xx within its budget ({} attempts)",
                d.id,
                tried.len()
            ));
        }
        // Its stored requests that reached the app, by when the provider sent them.
        let mut reached: Vec<&&Attempt> = tried
            .iter()
            .filter(|a| first_2xx(&(d.id, a.n)).is_some())
            .collect();
        reached.sort_by_key(|a| a.sent);
        if tried.iter().any(|a| a.status() == Some(200)) && reached.is_empty() {
            c.lost += 1;
            v.push(format!(
                "(1) delivery {} was answered 200 duplicate but never reached the app",
                d.id
            ));
        }
        for pair in reached.windows(2) {
            let (first, again) = (pair[0], pair[1]);
            if first.status().is_none() && down_between(first.sent, again.sent) {
                c.stored_twice += 1;
            } else {
                v.push(format!(
                    "(2) delivery {} was stored twice (attempts {} and {}; the first answered {:?}) with no kill between",
                    d.id,
                    first.n,
                    again.n,
                    first.status()
                ));
            }
        }
        // (2) each stored request: after the app's 2xx, again only across a kill.
        for a in &reached {
            let accepted: Vec<Instant> = stored[&(d.id, a.n)]
                .iter()
                .filter(|x| x.mode.accepts())
                .map(|x| x.at)
                .collect();
            if accepted.len() == 1 {
                c.exactly_once += 1;
            }
            for w in accepted.windows(2) {
                if down_between(w[0], w[1]) {
                    c.crash_window += 1;
                } else {
                    v.push(format!(
                        "(2) delivery {} attempt {} reached the app again at {:.2}s after its 2xx at {:.2}s, with no kill between",
                        d.id,
                        a.n,
                        at(w[1]),
                        at(w[0])
                    ));
                }
            }
        }
    }
    let bound = input.timeline.kills.len() * input.routes;
    if c.crash_window > bound {
        v.push(format!(
            "(2) {} deliveries repeated in a crash window, more than one per route per kill ({bound})",
            c.crash_window
        ));
    }

    // (4) order per route, over requests answered 202 (the provider knows when they were stored).
    for route in [Route::Svix, Route::Levanta, Route::LeafLink] {
        let mut done: Vec<(Instant, Instant, &Attempt)> = input
            .attempts
            .iter()
            .filter(|a| a.status() == Some(202))
            .filter(|a| by_id.get(&a.delivery).is_some_and(|d| d.route == route))
            .filter_map(|a| Some((a.done, first_2xx(&(a.delivery, a.n))?, a)))
            .collect();
        done.sort_by_key(|(d, _, _)| *d);
        // The latest 2xx among the requests stored by each point, and whose it was.
        let mut latest: Vec<(Instant, &Attempt)> = Vec::with_capacity(done.len());
        for (_, ok, a) in &done {
            let prev = latest.last().copied();
            latest.push(match prev {
                Some((p, pa)) if p > *ok => (p, pa),
                _ => (*ok, a),
            });
        }
        for (_, _, y) in &done {
            let Some(first) = stored.get(&(y.delivery, y.n)).and_then(|a| a.first()) else {
                continue;
            };
            let before = done.partition_point(|(d, _, _)| *d < y.sent);
            if before == 0 {
                continue;
            }
            let (ok, x) = latest[before - 1];
            if ok > first.at {
                c.out_of_order += 1;
                v.push(format!(
                    "(4) {}: delivery {} attempt {} reached the app at {:.2}s, before delivery {} attempt {} (stored before it was sent) was delivered at {:.2}s",
                    route.name(),
                    y.delivery,
                    y.n,
                    at(first.at),
                    x.delivery,
                    x.n,
                    at(ok)
                ));
            }
        }
    }

    if input.in_store != (0, 0) {
        v.push(format!(
            "(1) the drained store still holds {} pending and {} dead-lettered requests",
            input.in_store.0, input.in_store.1
        ));
    }
    Report {
        table: table(input, &c),
        violations: v,
    }
}

fn table(input: &Input<'_>, c: &Counts) -> String {
    let ds = input.deliveries;
    let genuine = ds.iter().filter(|d| d.genuine()).count();
    let forged = |f: Forgery| ds.iter().filter(|d| d.forgery == f).count();
    let mut statuses: BTreeMap<u16, usize> = BTreeMap::new();
    let (mut no_answer, mut hangups) = (0, 0);
    for a in input.attempts {
        match &a.outcome {
            Outcome::Status { status, .. } => *statuses.entry(*status).or_default() += 1,
            Outcome::Failed(_) | Outcome::Timeout => no_answer += 1,
            Outcome::HungUp(Hangup::MidBody | Hangup::AfterRequest) => hangups += 1,
        }
    }
    let mut flaps: BTreeMap<Flap, (usize, f64)> = BTreeMap::new();
    for (f, s, e) in &input.timeline.flaps {
        let entry = flaps.entry(*f).or_default();
        entry.0 += 1;
        entry.1 += e.saturating_duration_since(*s).as_secs_f64();
    }
    let accepted = input.arrivals.iter().filter(|a| a.mode.accepts()).count();
    let busy: usize = input.timeline.kills.iter().map(|k| k.app_busy).sum();

    let mut t = String::new();
    let row = |t: &mut String, label: &str, n: usize, note: String| {
        let _ = writeln!(t, "| {label:<38} | {n:>6} | {note}");
    };
    let _ = writeln!(t, "| {:<38} | {:>6} | detail", "", "count");
    let _ = writeln!(t, "|{}|{}|---", "-".repeat(40), "-".repeat(8));
    row(
        &mut t,
        "deliveries",
        ds.len(),
        format!(
            "genuine {genuine}, forged {} (wrong secret {}, tampered {}, stale {})",
            ds.len() - genuine,
            forged(Forgery::WrongSecret),
            forged(Forgery::Tampered),
            forged(Forgery::Stale)
        ),
    );
    let statuses: Vec<String> = statuses.iter().map(|(s, n)| format!("{s}: {n}")).collect();
    row(
        &mut t,
        "attempts",
        input.attempts.len(),
        format!(
            "{}; no answer (refused, reset, timeout): {no_answer}; provider hang-ups: {hangups}",
            statuses.join(", ")
        ),
    );
    row(
        &mut t,
        "kill -9 (restarted on the same store)",
        input.timeline.kills.len(),
        format!("the app was handling {busy} requests at the kills in all"),
    );
    for (f, (n, secs)) in &flaps {
        row(
            &mut t,
            &format!("  {}", f.label()),
            *n,
            format!("{secs:.1} s in all"),
        );
    }
    row(
        &mut t,
        "arrivals at the app",
        input.arrivals.len(),
        format!(
            "{accepted} answered 2xx by the app, {} failed or hung by it",
            input.arrivals.len() - accepted
        ),
    );
    row(
        &mut t,
        "stored requests delivered exactly once",
        c.exactly_once,
        format!(
            "of {} answered 202 (and {} answered 200 duplicate)",
            c.accepted, c.duplicate
        ),
    );
    row(
        &mut t,
        "repeated in the crash window",
        c.crash_window,
        format!(
            "app's 2xx then kill -9 before the queue recorded it; at most {} (routes x kills)",
            input.timeline.kills.len() * input.routes
        ),
    );
    row(
        &mut t,
        "stored twice after a kill lost the 202",
        c.stored_twice,
        "the provider resent; the kill had emptied the (memory) replay store".into(),
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
        c.unverified + c.refused_yet_delivered,
        "must be 0".into(),
    );
    row(
        &mut t,
        "out of order per route",
        c.out_of_order,
        "must be 0".into(),
    );
    row(
        &mut t,
        "5xx to the provider",
        c.provider_5xx,
        "must be 0".into(),
    );
    row(
        &mut t,
        "left in the store after the drain",
        usize::try_from(input.in_store.0 + input.in_store.1).unwrap_or(usize::MAX),
        "must be 0 (pending + dead-lettered)".into(),
    );
    let _ = writeln!(t, "\nseed {:#x}; kills (seconds from start):", input.seed);
    let at = |i: Instant| i.saturating_duration_since(input.t0).as_secs_f64();
    for k in &input.timeline.kills {
        let _ = writeln!(
            t,
            "  {:>7.2} - {:>7.2}  kill -9, restart ({} in progress at the app)",
            at(k.at),
            at(k.back),
            k.app_busy
        );
    }
    t
}

/// The checker itself, on made-up logs: each invariant it guards fails when broken.
#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::faults::app::Mode;
    use crate::faults::provider::plan;
    use crate::faults::queue::timeline::Kill;

    fn attempt(delivery: u64, n: u32, sent: Instant, status: Option<u16>) -> Attempt {
        Attempt {
            delivery,
            n,
            via: 0,
            sent,
            done: sent + Duration::from_millis(10),
            outcome: match status {
                Some(status) => Outcome::Status {
                    status,
                    complete: true,
                },
                None => Outcome::Failed("reset".into()),
            },
        }
    }

    fn arrival(delivery: u64, n: u32, at: Instant) -> Arrival {
        let path = [Route::Svix, Route::Levanta, Route::LeafLink]
            [usize::try_from(delivery % 3).unwrap()]
        .path();
        Arrival {
            at,
            delivery: Some(delivery),
            attempt: Some(n),
            path: path.into(),
            via: "a".into(),
            verified: true,
            mode: Mode::Normal,
        }
    }

    /// `kills`: (killed at, listening again at).
    fn violations(
        kills: &[(Instant, Instant)],
        attempts: &[Attempt],
        arrivals: &[Arrival],
        t0: Instant,
    ) -> Vec<String> {
        let deliveries = plan(6, 0, Duration::ZERO, 1);
        let timeline = Timeline {
            kills: kills
                .iter()
                .map(|&(at, back)| Kill {
                    at,
                    back,
                    app_busy: 0,
                })
                .collect(),
            flaps: Vec::new(),
        };
        check(&Input {
            deliveries: &deliveries,
            attempts,
            arrivals,
            timeline: &timeline,
            in_store: (0, 0),
            routes: 3,
            t0,
            seed: 1,
        })
        .violations
    }

    #[test]
    fn the_queue_checker_flags_a_loss_a_repeat_without_a_kill_and_an_order_inversion() {
        let t0 = Instant::now();
        let ms = |n: u64| t0 + Duration::from_millis(n);
        // 0 and 3 share a route (svix): 0 stored first, so it must reach the app first.
        let attempts = [
            attempt(0, 0, ms(0), Some(202)),
            attempt(1, 0, ms(0), Some(202)),
            attempt(2, 0, ms(0), Some(202)),
            attempt(3, 0, ms(100), Some(202)),
            attempt(4, 0, ms(0), Some(202)),
            attempt(5, 0, ms(0), Some(202)),
        ];
        let arrivals = [
            arrival(3, 0, ms(200)),
            arrival(0, 0, ms(300)),
            arrival(1, 0, ms(300)),
            arrival(1, 0, ms(400)),
            arrival(4, 0, ms(300)),
            arrival(5, 0, ms(300)),
        ];
        let found = violations(&[], &attempts, &arrivals, t0);
        let has = |prefix: &str| found.iter().any(|v| v.starts_with(prefix));
        assert!(
            has("(1) delivery 2 attempt 0 was answered 202"),
            "{found:#?}"
        );
        assert!(
            has("(2) delivery 1 attempt 0 reached the app again"),
            "{found:#?}"
        );
        assert!(has("(4) svix: delivery 3 attempt 0"), "{found:#?}");
        assert_eq!(found.len(), 3, "{found:#?}");
        // A kill between delivery 1's 2xx and its repeat: the crash window, not a violation.
        let found = violations(&[(ms(350), ms(360))], &attempts, &arrivals, t0);
        assert!(!found.iter().any(|v| v.starts_with("(2)")), "{found:#?}");
        // Killed at 290 ms, delivery 1's first arrival read at 300 ms (written by the instance
        // just before it died; its 2xx went to a dead socket): excused while it was still down...
        let found = violations(&[(ms(290), ms(320))], &attempts, &arrivals, t0);
        assert!(!found.iter().any(|v| v.starts_with("(2)")), "{found:#?}");
        // ...but not when the restarted instance was listening before that arrival.
        let found = violations(&[(ms(250), ms(280))], &attempts, &arrivals, t0);
        assert!(
            found
                .iter()
                .any(|v| v.starts_with("(2) delivery 1 attempt 0 reached the app again")),
            "{found:#?}"
        );
    }

    #[test]
    fn a_delivery_stored_twice_is_excused_only_after_a_kill_lost_its_first_answer() {
        let t0 = Instant::now();
        let ms = |n: u64| t0 + Duration::from_millis(n);
        let mut attempts: Vec<Attempt> = (0..6).map(|d| attempt(d, 0, ms(0), Some(202))).collect();
        attempts[0] = attempt(0, 0, ms(0), None);
        attempts.push(attempt(0, 1, ms(500), Some(202)));
        let mut arrivals: Vec<Arrival> = (0..6).map(|d| arrival(d, 0, ms(100))).collect();
        arrivals.push(arrival(0, 1, ms(600)));
        let found = violations(&[(ms(200), ms(250))], &attempts, &arrivals, t0);
        assert!(found.is_empty(), "{found:#?}");
        let found = violations(&[], &attempts, &arrivals, t0);
        assert!(
            found
                .iter()
                .any(|v| v.starts_with("(2) delivery 0 was stored twice")),
            "{found:#?}"
        );
    }
}
