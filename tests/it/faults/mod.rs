//! The fault-injection suite (issue 12 §1): a retrying provider, two real hookgate processes on one Redis, a recording app, faults on a timeline, and the delivery invariant checked from both ends.
//!
//! ```text
//! provider ──(alternating per attempt)──> hookgate a ─┐
//!    (Svix, Levanta, LeafLink;            hookgate b ─┼──> app (recording, verifying)
//!     forged share; hang-ups)                  │      │
//!                                              └─ redis (replay store, no persistence)
//! ```
//!
//! - `procs`: redis-server and `hookgate run` as child processes, killed on drop
//! - `app`: the recording application, its behaviour switched at run time
//! - `provider`: the deliveries, signed and retried on a compressed Svix schedule
//! - `timeline`: the faults, one after another, each leaving a window; after
//!   each recovery a probe delivery through each instance
//! - `checker`: the invariants over the provider's and the app's logs, and the table
//! - `queue`: the same provider and app against `delivery = "queue"` routes on the disk store, with
//!   kill -9 at random moments and the app flapping (its own timeline and checker)
//!
//! Short run (in `cargo test`): `cargo test --test it faults::`. Full run (the README's figures):
//! `cargo test --release --test it faults:: -- --ignored --nocapture`.
//! `FAULTS_SEED=0x…` replays a run's deliveries, bodies, jitter and hang-ups;
//! `FAULTS_HOOKGATE_BIN=path` runs it against another hookgate build.

mod app;
mod checker;
mod procs;
mod provider;
mod queue;
mod timeline;

use std::sync::Arc;
use std::time::{Duration, Instant};

use app::App;
use procs::{free_port, GateConfig, Hookgate, Launch, Redis, Variant};
use provider::{Provider, VIA};
use timeline::World;

/// `upstream.timeout` of both instances: the app's hang and stall outlast it.
const UPSTREAM_TIMEOUT: Duration = Duration::from_secs(2);
/// The provider's own per-attempt timeout: hookgate must answer before it.
const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(5);

struct Plan {
    deliveries: usize,
    /// Times the whole fault timeline is played.
    cycles: usize,
    /// Quiet time between two faults.
    gap: Duration,
    /// First attempts are spread over this long (about the timeline's length).
    span: Duration,
    /// How long a genuine delivery is retried.
    budget: Duration,
    /// Attempts in flight at once.
    concurrency: usize,
    /// Chance of each kind of hang-up per attempt.
    hangup: f64,
    /// One delivery in this many is forged.
    forged_every: u64,
}

/// One cycle of faults takes about 29 s with 0.5 s gaps.
const CYCLE: Duration = Duration::from_secs(29);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn under_every_fault_each_delivery_reaches_the_app_once_and_nothing_unverified_does() {
    run(Plan {
        deliveries: 150,
        cycles: 1,
        gap: Duration::from_millis(500),
        span: CYCLE,
        // Faults can chain on one delivery: a claim that lands in a paused
        // Redis after hookgate gave up on it holds the id for the lease
        // (`upstream.timeout` + 5 s, answered 409), then the next fault.
        budget: Duration::from_secs(40),
        concurrency: 24,
        hangup: 0.03,
        forged_every: 10,
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "minutes long: cargo test --release --test it faults:: -- --ignored --nocapture"]
async fn full_fault_run_of_2000_deliveries_loses_nothing() {
    run(Plan {
        deliveries: 2000,
        cycles: 5,
        gap: Duration::from_millis(500),
        span: CYCLE * 5,
        budget: Duration::from_secs(60),
        concurrency: 32,
        hangup: 0.03,
        forged_every: 10,
    })
    .await;
}

async fn run(plan: Plan) {
    // Its invariants are timings: no other test's gateway may load the machine meanwhile.
    let _alone = crate::support::alone::alone();
    let seed = std::env::var("FAULTS_SEED")
        .ok()
        .and_then(|s| u64::from_str_radix(s.trim_start_matches("0x"), 16).ok())
        .unwrap_or_else(rand::random);
    let t0 = Instant::now();
    let redis = Redis::start().await;
    let app = App::start(free_port(), UPSTREAM_TIMEOUT).await;
    let dir = tempfile::tempdir().unwrap();
    let configs = [0, 1].map(|_| GateConfig {
        port: free_port(),
        admin: free_port(),
        app: app.port,
        redis: redis.port,
        upstream_timeout: UPSTREAM_TIMEOUT,
    });
    let mut gates = Vec::new();
    for (i, config) in configs.iter().enumerate() {
        let path = dir.path().join(format!("hookgate-{}.toml", VIA[i]));
        config.write(&path, Variant::Baseline);
        let launch = Launch {
            name: VIA[i],
            alone: true,
            ..Launch::default()
        };
        gates.push(Hookgate::launch(&path, launch).await);
    }
    let gates: [Hookgate; 2] = gates.try_into().ok().unwrap();
    let deliveries = Arc::new(provider::plan(
        plan.deliveries,
        plan.forged_every,
        plan.span,
        seed,
    ));
    let provider = Provider::new(
        [gates[0].addr, gates[1].addr],
        plan.concurrency,
        plan.budget,
        ATTEMPT_TIMEOUT,
        plan.hangup,
        seed,
    );
    let started = Instant::now();
    let traffic = tokio::spawn(provider.clone().run(deliveries.clone(), started));
    let mut world = World {
        app: app.clone(),
        redis,
        gates,
        configs,
        provider: provider.clone(),
    };
    let timeline = timeline::run(&mut world, plan.cycles, plan.gap).await;
    // Every delivery ends within its start, its budget and one attempt.
    let limit = (started + plan.span + plan.budget + ATTEMPT_TIMEOUT * 2)
        .saturating_duration_since(Instant::now());
    tokio::time::timeout(limit, traffic)
        .await
        .expect("the provider did not finish within its bounds")
        .unwrap();
    let probes = tokio::time::timeout(plan.budget + ATTEMPT_TIMEOUT * 2, provider.probes())
        .await
        .expect("the probes did not finish within their bounds");
    let deliveries: Vec<provider::Delivery> = deliveries.iter().cloned().chain(probes).collect();

    let attempts = provider.log();
    let arrivals = app.log();
    let report = checker::check(&checker::Input {
        deliveries: &deliveries,
        attempts: &attempts,
        arrivals: &arrivals,
        timeline: &timeline,
        grace: UPSTREAM_TIMEOUT + Duration::from_secs(1),
        t0: started,
        seed,
    });
    println!(
        "fault run: {} deliveries, {} cycle(s), 2 hookgate instances on one Redis, {:.1?} in all\n\n{}",
        plan.deliveries,
        plan.cycles,
        t0.elapsed(),
        report.table
    );
    assert!(
        report.violations.is_empty(),
        "{} violation(s) (seed {seed:#x}):\n{}",
        report.violations.len(),
        report.violations.join("\n")
    );
}
