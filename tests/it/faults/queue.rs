//! The fault run in queue mode (issue 16): the same provider and recording app as the main run, one
//! hookgate whose three routes are `delivery = "queue"` on the disk store, killed -9 at random moments
//! (restarted on the same store directory) while the app flaps (down, slow, 5xx, hanging).
//!
//! ```text
//! provider ──> hookgate (3 queue routes, disk store; kill -9, restart) ──> app (recording, verifying)
//!  (signed, forged, stale; hang-ups)        │                                 (flapping)
//!                                      queue.redb (kept across restarts)
//! ```
//!
//! - `timeline`: the kills and the app's flaps, seeded, each logged with its time
//! - `checker`: every 202 delivered, duplicates only in the crash window (bounded by the kills),
//!   nothing unverified stored or delivered, order per route, the store empty at the end
//!
//! Short run (in `cargo test`): `cargo test --test it faults::queue`. Long run:
//! `cargo test --release --test it faults::queue -- --ignored --nocapture`; `FAULTS_SEED` replays.

mod checker;
mod timeline;

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use http::Method;

use super::app::App;
use super::procs::{free_port, Hookgate, Launch};
use super::provider::{self, Provider};

/// `upstream.timeout`: well past the app's slow answers (300-700 ms), so only a hang or a kill
/// leaves an answer unread; the app's hang outlasts it.
const UPSTREAM_TIMEOUT: Duration = Duration::from_millis(2500);
/// The provider's own per-attempt timeout.
const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(5);
/// The queue's routes: at most one delivery in flight each (order per route), so at most this many
/// requests can be in the crash window of one kill.
const ROUTES: usize = 3;

/// The short run's seed (its deliveries, kill times and flaps; `FAULTS_SEED` overrides it): the same
/// run in every `cargo test`, as far as timing allows.
const SHORT_SEED: u64 = 0x5eed_0016_9e37_79b9;

struct Plan {
    /// `None`: a random one (printed).
    seed: Option<u64>,
    deliveries: usize,
    /// First attempts are spread over this long; kills and flaps happen meanwhile.
    span: Duration,
    /// How long a genuine delivery is retried by the provider.
    budget: Duration,
    /// Attempts in flight at once.
    concurrency: usize,
    /// Chance of each kind of provider hang-up per attempt.
    hangup: f64,
    /// One delivery in this many is forged (wrong secret, tampered, stale).
    forged_every: u64,
    /// A kill comes after a random wait in this range.
    kill_every: (Duration, Duration),
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queue_mode_under_kill_9_and_a_flapping_app_delivers_every_202_in_order_and_nothing_unverified(
) {
    run(Plan {
        seed: Some(SHORT_SEED),
        deliveries: 150,
        span: Duration::from_secs(10),
        budget: Duration::from_secs(20),
        concurrency: 16,
        hangup: 0.02,
        forged_every: 10,
        kill_every: (Duration::from_millis(1200), Duration::from_millis(2500)),
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "minutes long: cargo test --release --test it faults::queue -- --ignored --nocapture"]
async fn full_queue_fault_run_of_2000_deliveries_loses_nothing() {
    run(Plan {
        seed: None,
        deliveries: 2000,
        span: Duration::from_secs(120),
        budget: Duration::from_secs(40),
        concurrency: 32,
        hangup: 0.02,
        forged_every: 10,
        kill_every: (Duration::from_secs(2), Duration::from_secs(6)),
    })
    .await;
}

fn render(port: u16, admin: u16, app: u16, store: &Path) -> String {
    use crate::support::{LEAFLINK_SECRET, LEVANTA_SECRET, SVIX_SECRET, SVIX_SECRET_OLD};
    format!(
        r#"
[listen]
addr = "127.0.0.1:{port}"
[admin]
addr = "127.0.0.1:{admin}"
[upstream]
url = "http://127.0.0.1:{app}"
timeout = "{timeout}ms"
[limits]
shutdown_grace = "5s"
[queue]
path = "{store}"
concurrency = {ROUTES}
max_attempts = 100000
max_age = "1h"
retry_initial = "50ms"
retry_max = "400ms"

[[routes]]
name = "levers"
path = "/webhooks/levers"
provider = "svix"
secrets = ["{SVIX_SECRET}", "{SVIX_SECRET_OLD}"]
delivery = "queue"

[[routes]]
name = "levanta"
path = "/webhooks/levanta"
provider = "levanta"
secrets = ["{LEVANTA_SECRET}"]
delivery = "queue"

[[routes]]
name = "leaflink"
path = "/webhooks/leaflink"
provider = "leaflink"
secrets = ["{LEAFLINK_SECRET}"]
delivery = "queue"
"#,
        timeout = UPSTREAM_TIMEOUT.as_millis(),
        store = store.display(),
    )
}

/// Stored requests of every route, from the admin listener (`None`: no answer).
async fn depth(admin: std::net::SocketAddr) -> Option<f64> {
    let r = crate::support::send(&format!("http://{admin}/metrics"), Method::GET, &[], b"").await;
    if r.status != http::StatusCode::OK {
        return None;
    }
    Some(
        r.text()
            .lines()
            .filter(|l| l.starts_with("hookgate_queue_depth{"))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum(),
    )
}

async fn run(plan: Plan) {
    let _alone = crate::support::alone::alone();
    let seed = std::env::var("FAULTS_SEED")
        .ok()
        .and_then(|s| u64::from_str_radix(s.trim_start_matches("0x"), 16).ok())
        .or(plan.seed)
        .unwrap_or_else(rand::random);
    let t0 = Instant::now();
    let app = App::start(free_port(), UPSTREAM_TIMEOUT).await;
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("queue");
    let config = dir.path().join("hookgate-queue.toml");
    std::fs::write(&config, render(free_port(), free_port(), app.port, &store)).unwrap();
    let launch = Launch {
        name: "queue",
        alone: true,
        ..Launch::default()
    };
    let mut gate = Hookgate::launch(&config, launch).await;
    let deliveries = Arc::new(provider::plan(
        plan.deliveries,
        plan.forged_every,
        plan.span,
        seed,
    ));
    // One instance: both of the provider's "instances" are it (`x-via` alternates all the same).
    let provider = Provider::new(
        [gate.addr, gate.addr],
        plan.concurrency,
        plan.budget,
        ATTEMPT_TIMEOUT,
        plan.hangup,
        seed,
    );
    let started = Instant::now();
    let traffic = tokio::spawn(provider.clone().run(deliveries.clone(), started));
    let timeline = timeline::run(&mut gate, &app, plan.span, plan.kill_every, seed).await;
    let limit = (started + plan.span + plan.budget + ATTEMPT_TIMEOUT * 2)
        .saturating_duration_since(Instant::now());
    tokio::time::timeout(limit, traffic)
        .await
        .expect("the provider did not finish within its bounds")
        .unwrap();

    // The app is up and well again: the backlog drains.
    let admin = gate.admin.expect("an admin listener");
    let drained = Instant::now();
    let mut left = None;
    while drained.elapsed() < Duration::from_secs(60) {
        left = depth(admin).await;
        if left == Some(0.0) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let drain = drained.elapsed();
    let exit = gate.terminate(Duration::from_secs(20)).await;
    let in_store = stored(&store);

    let attempts = provider.log();
    let arrivals = app.log();
    let report = checker::check(&checker::Input {
        deliveries: &deliveries,
        attempts: &attempts,
        arrivals: &arrivals,
        timeline: &timeline,
        in_store,
        routes: ROUTES,
        t0: started,
        seed,
    });
    println!(
        "queue fault run: {} deliveries, one hookgate on a disk store, drained {drain:.1?} after the traffic \
         (depth then {left:?}), {:.1?} in all\n\n{}",
        plan.deliveries,
        t0.elapsed(),
        report.table
    );
    let mut violations = report.violations;
    if exit != Ok(Some(0)) {
        violations.push(format!("SIGTERM at the end: {exit:?}, not exit code 0"));
    }
    assert!(
        violations.is_empty(),
        "{} violation(s) (seed {seed:#x}):\n{}",
        violations.len(),
        violations.join("\n")
    );
}

/// (pending, dead-lettered) records left in the stopped gateway's store.
fn stored(dir: &Path) -> (u64, u64) {
    use hookgate::queue::{DiskStore, Table};
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        match DiskStore::open(dir, u64::MAX) {
            Ok(s) => return (s.len(Table::Pending).unwrap(), s.len(Table::Dead).unwrap()),
            Err(e) => {
                assert!(Instant::now() < deadline, "store not released: {e}");
                std::thread::sleep(Duration::from_millis(50));
            }
        }
    }
}
