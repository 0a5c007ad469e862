//! The faults, injected one after another while traffic flows; each leaves a window (when, what it may excuse, what it may cost) for the checker.

use std::time::{Duration, Instant};

use nix::sys::signal::Signal;

use super::app::{App, Mode};
use super::procs::{GateConfig, Hookgate, Redis, Variant};
use super::provider::{Provider, VIA};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Fault {
    App5xx,
    AppResetBefore,
    AppRefuse,
    AppResetMid,
    AppHang,
    AppStall,
    AppSlow,
    RedisStop,
    RedisKill,
    RedisBounce,
    RedisSleep,
    Kill9,
    Sigterm,
    SighupStorm,
}

/// One cycle of the timeline, in order. The kill -9 comes early so that the
/// claims it strands (held for the lease, `upstream.timeout` + 5 s) lapse
/// while later faults run.
const CYCLE: [Fault; 14] = [
    Fault::App5xx,
    Fault::Kill9,
    Fault::AppResetBefore,
    Fault::RedisStop,
    Fault::AppRefuse,
    Fault::AppResetMid,
    Fault::SighupStorm,
    Fault::AppHang,
    Fault::RedisKill,
    Fault::AppStall,
    Fault::RedisBounce,
    Fault::Sigterm,
    Fault::RedisSleep,
    Fault::AppSlow,
];

impl Fault {
    pub fn label(self) -> &'static str {
        match self {
            Fault::App5xx => "app answers a 5xx burst",
            Fault::AppResetBefore => "app resets before answering",
            Fault::AppRefuse => "app refuses connections",
            Fault::AppResetMid => "app resets mid-response",
            Fault::AppHang => "app hangs past upstream.timeout",
            Fault::AppStall => "app stalls its response body",
            Fault::AppSlow => "app answers slowly",
            Fault::RedisStop => "redis paused (SIGSTOP/SIGCONT)",
            Fault::RedisKill => "redis killed, restarted 1 s later",
            Fault::RedisBounce => "redis killed, restarted at once",
            Fault::RedisSleep => "redis paused (DEBUG SLEEP)",
            Fault::Kill9 => "hookgate kill -9 mid-forward",
            Fault::Sigterm => "hookgate SIGTERM + restart",
            Fault::SighupStorm => "hookgate SIGHUP storm",
        }
    }

    /// Whether a 5xx in its window is the expected effect: the app failing or
    /// unreachable (502/504 or its own 5xx), or the replay store down (503).
    /// A slow app, a stalled body (its 2xx head came in time), a reload, a
    /// graceful restart or the other instance's crash must not make hookgate
    /// answer 5xx: those windows excuse nothing.
    pub fn excuses_5xx(self) -> bool {
        match self {
            Fault::App5xx
            | Fault::AppResetBefore
            | Fault::AppRefuse
            | Fault::AppResetMid
            | Fault::AppHang
            | Fault::RedisStop
            | Fault::RedisKill
            | Fault::RedisBounce
            | Fault::RedisSleep => true,
            Fault::AppStall
            | Fault::AppSlow
            | Fault::Kill9
            | Fault::Sigterm
            | Fault::SighupStorm => false,
        }
    }

    /// Whether it can forget a claim or never record a delivery: a Redis
    /// without persistence restarting empty, or an instance killed between
    /// the app's 2xx and recording it. A retry of a delivery in flight then
    /// may reach the app again: at-least-once, not exactly-once.
    pub fn loses_claims(self) -> bool {
        matches!(self, Fault::RedisKill | Fault::RedisBounce | Fault::Kill9)
    }

    /// Whether something comes back at its end (a listener, Redis, an
    /// instance): the timeline then probes both instances at once, since a
    /// first request after a recovery is where a stale connection shows.
    pub fn recovers(self) -> bool {
        match self {
            Fault::AppRefuse
            | Fault::RedisStop
            | Fault::RedisKill
            | Fault::RedisBounce
            | Fault::RedisSleep
            | Fault::Kill9
            | Fault::Sigterm => true,
            Fault::App5xx
            | Fault::AppResetBefore
            | Fault::AppResetMid
            | Fault::AppHang
            | Fault::AppStall
            | Fault::AppSlow
            | Fault::SighupStorm => false,
        }
    }
}

pub struct Window {
    pub fault: Fault,
    pub start: Instant,
    pub end: Instant,
    pub note: String,
}

/// How long after a recovery the timeline probes both instances.
const PROBE_AFTER: Duration = Duration::from_millis(200);

impl Window {
    /// Whether this fault accounts for a 5xx answered at `done` to an attempt
    /// sent at `sent`: one it excuses, to an attempt sent before it was over,
    /// answered after it began and within `grace` of its end. A window's end
    /// is noted once the recovery is done (the listener bound, Redis
    /// answering PING, the mode switched back), so a request sent later met
    /// a world without the fault.
    pub fn excuses(&self, sent: Instant, done: Instant, grace: Duration) -> bool {
        self.fault.excuses_5xx()
            && sent <= self.end
            && done >= self.start
            && done <= self.end + grace
    }

    /// Whether `[from, to]` meets the window extended by `grace` at its end.
    pub fn meets(&self, from: Instant, to: Instant, grace: Duration) -> bool {
        from <= self.end + grace && to >= self.start
    }
}

/// Everything the timeline acts on.
pub struct World {
    pub app: App,
    pub redis: Redis,
    pub gates: [Hookgate; 2],
    pub configs: [GateConfig; 2],
    pub provider: std::sync::Arc<Provider>,
}

#[derive(Default)]
pub struct Timeline {
    pub windows: Vec<Window>,
    /// What went wrong in the faults themselves (an exit code, a refused DEBUG SLEEP).
    pub problems: Vec<String>,
}

/// Runs `cycles` cycles of every fault, `gap` apart.
pub async fn run(w: &mut World, cycles: usize, gap: Duration) -> Timeline {
    let mut t = Timeline::default();
    for cycle in 0..cycles {
        // Alternate which instance is killed or terminated.
        let victim = cycle % 2;
        for fault in CYCLE {
            tokio::time::sleep(gap).await;
            let start = Instant::now();
            let (start, note) = inject(w, fault, victim, start, &mut t.problems).await;
            t.windows.push(Window {
                fault,
                start,
                end: Instant::now(),
                note,
            });
            if fault.recovers() {
                // A first request through each instance once it is over
                // (traffic may or may not have sent one already).
                tokio::time::sleep(PROBE_AFTER).await;
                for via in 0..2 {
                    w.provider.probe(via);
                }
            }
        }
    }
    tokio::time::sleep(gap).await;
    t
}

/// Injects one fault and returns when it is over (the window's start may
/// move to the moment the fault really began, e.g. the kill itself).
async fn inject(
    w: &mut World,
    fault: Fault,
    victim: usize,
    start: Instant,
    problems: &mut Vec<String>,
) -> (Instant, String) {
    let secs = Duration::from_secs_f64;
    match fault {
        Fault::App5xx => app_mode(&w.app, Mode::Fail5xx, secs(1.2)).await,
        Fault::AppResetBefore => app_mode(&w.app, Mode::ResetBefore, secs(1.0)).await,
        Fault::AppResetMid => app_mode(&w.app, Mode::ResetMid, secs(1.0)).await,
        Fault::AppHang => app_mode(&w.app, Mode::Hang, secs(2.5)).await,
        Fault::AppStall => app_mode(&w.app, Mode::Stall, secs(1.5)).await,
        Fault::AppSlow => app_mode(&w.app, Mode::Slow, secs(1.5)).await,
        Fault::AppRefuse => {
            w.app.refuse();
            tokio::time::sleep(secs(1.2)).await;
            w.app.reopen().await;
        }
        Fault::RedisStop => {
            w.redis.signal(Signal::SIGSTOP);
            tokio::time::sleep(secs(1.5)).await;
            w.redis.signal(Signal::SIGCONT);
        }
        Fault::RedisKill => {
            w.redis.kill();
            tokio::time::sleep(secs(1.0)).await;
            w.redis.restart().await;
        }
        // Back before most instances sent it anything: their next command
        // meets a connection that died while idle (issue 12's 503).
        Fault::RedisBounce => w.redis.restart().await,
        Fault::RedisSleep => {
            if let Err(e) = Redis::debug_sleep(w.redis.port, 1.5).await {
                problems.push(format!("DEBUG SLEEP: {e}"));
            }
        }
        Fault::Kill9 => return kill9(w, victim).await,
        Fault::Sigterm => return sigterm(w, victim, problems).await,
        Fault::SighupStorm => return (start, sighup_storm(w, problems).await),
    }
    (start, String::new())
}

async fn app_mode(app: &App, mode: Mode, how_long: Duration) {
    app.set_mode(mode);
    tokio::time::sleep(how_long).await;
    app.set_mode(Mode::Normal);
}

/// Waits up to `limit` for `f`.
async fn wait_for(limit: Duration, mut f: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if f() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    f()
}

/// Slows the app down until the victim has a forward in flight, kills it -9
/// right then, and starts it again a second later.
async fn kill9(w: &mut World, victim: usize) -> (Instant, String) {
    w.app.set_mode(Mode::Slow);
    let via = VIA[victim];
    let caught = wait_for(Duration::from_secs(5), || w.app.in_progress(via) > 0).await;
    let in_flight = w.app.in_progress(via);
    let start = Instant::now();
    w.gates[victim].kill9();
    tokio::time::sleep(Duration::from_millis(300)).await;
    w.app.set_mode(Mode::Normal);
    tokio::time::sleep(Duration::from_millis(700)).await;
    w.gates[victim].restart().await;
    let mut note = format!("instance {via}: {in_flight} forward(s) in flight at the kill");
    if !caught {
        note.push_str(" (none caught in flight)");
    }
    (start, note)
}

/// SIGTERM while the victim forwards: it must drain and exit 0; then it is started again.
async fn sigterm(w: &mut World, victim: usize, problems: &mut Vec<String>) -> (Instant, String) {
    w.app.set_mode(Mode::Slow);
    let via = VIA[victim];
    wait_for(Duration::from_secs(5), || w.app.in_progress(via) > 0).await;
    let in_flight = w.app.in_progress(via);
    let start = Instant::now();
    let exit = w.gates[victim].terminate(Duration::from_secs(20)).await;
    let drained = start.elapsed();
    w.app.set_mode(Mode::Normal);
    if exit != Ok(Some(0)) {
        problems.push(format!(
            "SIGTERM: instance {via} ended with {exit:?}, not exit code 0"
        ));
    }
    w.gates[victim].restart().await;
    (
        start,
        format!("instance {via}: {in_flight} forward(s) in flight, drained in {drained:.1?}"),
    )
}

/// SIGHUPs to both instances every 125 ms while their files alternate between
/// valid and broken configurations; ends restored, reloaded and given a
/// poll interval to settle.
async fn sighup_storm(w: &mut World, problems: &mut Vec<String>) -> String {
    const VARIANTS: [Variant; 8] = [
        Variant::Tweaked,
        Variant::NotToml,
        Variant::Baseline,
        Variant::UnknownKey,
        Variant::Tweaked,
        Variant::MissingSecret,
        Variant::UnknownProvider,
        Variant::Baseline,
    ];
    let count =
        |w: &World, needle: &str| -> usize { w.gates.iter().map(|g| g.count_logged(needle)).sum() };
    let (ok0, failed0) = (
        count(w, "configuration reloaded"),
        count(w, "reload failed"),
    );
    let rounds = 16;
    for i in 0..rounds {
        let variant = VARIANTS[i % VARIANTS.len()];
        for (gate, config) in w.gates.iter().zip(&w.configs) {
            config.write(&gate.config, variant);
            gate.signal(Signal::SIGHUP);
        }
        tokio::time::sleep(Duration::from_millis(125)).await;
    }
    for (gate, config) in w.gates.iter().zip(&w.configs) {
        config.write(&gate.config, Variant::Baseline);
        gate.signal(Signal::SIGHUP);
    }
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let (ok, failed) = (
        count(w, "configuration reloaded") - ok0,
        count(w, "reload failed") - failed0,
    );
    if ok == 0 || failed == 0 {
        problems.push(format!(
            "SIGHUP storm: {ok} reloads applied and {failed} refused; expected some of each"
        ));
    }
    format!(
        "{} SIGHUPs: {ok} reloads applied, {failed} refused",
        2 * (rounds + 1)
    )
}
