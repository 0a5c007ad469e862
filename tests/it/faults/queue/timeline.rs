//! The queue run's faults, both seeded and running at once for the run's span: hookgate killed -9 at
//! random moments and restarted on the same store (each kill logged with its time), and the app flapping
//! between well, slow, failing with 5xx, hanging past `upstream.timeout` and down (refusing connections).

use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::super::app::{App, Mode};
use super::super::procs::Hookgate;

/// One kill -9 and the restart after it.
pub struct Kill {
    pub at: Instant,
    /// When the restarted instance listened again.
    pub back: Instant,
    /// Requests the app was handling at the kill (deliveries in flight).
    pub app_busy: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Flap {
    Normal,
    Slow,
    Fail5xx,
    Hang,
    /// The app's process is gone: connections refused.
    Down,
}

impl Flap {
    pub fn label(self) -> &'static str {
        match self {
            Flap::Normal => "app well",
            Flap::Slow => "app slow (300-700 ms)",
            Flap::Fail5xx => "app answers 5xx",
            Flap::Hang => "app hangs past upstream.timeout",
            Flap::Down => "app down (connections refused)",
        }
    }
}

#[derive(Default)]
pub struct Timeline {
    pub kills: Vec<Kill>,
    pub flaps: Vec<(Flap, Instant, Instant)>,
}

/// Kills (after a random wait in `kill_every`, every other one then waiting for a delivery in
/// flight; restarting 0-300 ms later) and flaps (each 0.3-1.2 s)
/// until `span` has passed; ends with the app well and the instance running.
pub async fn run(
    gate: &mut Hookgate,
    app: &App,
    span: Duration,
    kill_every: (Duration, Duration),
    seed: u64,
) -> Timeline {
    let end = Instant::now() + span;
    let kills = async {
        let mut rng = StdRng::seed_from_u64(seed ^ 0x6b69_6c6c);
        let mut kills = Vec::new();
        loop {
            let wait = rng.random_range(kill_every.0..=kill_every.1);
            if Instant::now() + wait >= end {
                break;
            }
            tokio::time::sleep(wait).await;
            // Every other kill waits (1 s at most) for a delivery in flight at the app: the
            // crash window between the app's 2xx and the queue's record of it.
            if kills.len() % 2 == 1 {
                let deadline = Instant::now() + Duration::from_secs(1);
                while app.in_progress_total() == 0 && Instant::now() < deadline {
                    tokio::time::sleep(Duration::from_millis(2)).await;
                }
            }
            let app_busy = app.in_progress_total();
            let at = Instant::now();
            gate.kill9();
            tokio::time::sleep(Duration::from_millis(rng.random_range(0..300))).await;
            gate.restart().await;
            kills.push(Kill {
                at,
                back: Instant::now(),
                app_busy,
            });
        }
        kills
    };
    let flaps = async {
        let mut rng = StdRng::seed_from_u64(seed ^ 0x666c_6170);
        let mut flaps = Vec::new();
        while Instant::now() < end {
            // Weighted: well most often, then slow, failing and down, a hang now and then.
            let flap = match rng.random_range(0..10) {
                0..=2 => Flap::Normal,
                3 | 4 => Flap::Slow,
                5 | 6 => Flap::Fail5xx,
                7 => Flap::Hang,
                _ => Flap::Down,
            };
            let hold = Duration::from_millis(rng.random_range(300..1200));
            let start = Instant::now();
            match flap {
                Flap::Normal => app.set_mode(Mode::Normal),
                Flap::Slow => app.set_mode(Mode::Slow),
                Flap::Fail5xx => app.set_mode(Mode::Fail5xx),
                Flap::Hang => app.set_mode(Mode::Hang),
                Flap::Down => {
                    // An app that dies while answering 2xx has processed a request it never
                    // acknowledged: that is the app's crash window, not the queue's. Go down
                    // once nothing is in progress (failing meanwhile, so nothing new is accepted).
                    app.set_mode(Mode::Fail5xx);
                    let deadline = Instant::now() + Duration::from_secs(5);
                    while app.in_progress_total() > 0 && Instant::now() < deadline {
                        tokio::time::sleep(Duration::from_millis(5)).await;
                    }
                    app.refuse();
                }
            }
            tokio::time::sleep(hold).await;
            if flap == Flap::Down {
                app.reopen().await;
            }
            app.set_mode(Mode::Normal);
            flaps.push((flap, start, Instant::now()));
        }
        flaps
    };
    let (kills, flaps) = tokio::join!(kills, flaps);
    Timeline { kills, flaps }
}
