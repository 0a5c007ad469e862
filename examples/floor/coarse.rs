//! floor+guards' `coarse` timers (`FLOOR_GUARDS=...,coarse`): every deadline
//! of a worker (hyper's header read timeout, the body's, the application's
//! answer's) checked against one clock the worker reads ten times a second,
//! as nginx checks its timers against a time cached once per event-loop turn,
//! instead of a tokio timer registered and removed per deadline and a clock
//! read for hyper's every request head. A measuring instrument: what cheaper
//! timers would save, before any goes into hookgate.
//!
//! A deadline not yet due, when first found pending, leaves its waker in its
//! worker's list (a mutex no other thread takes, one slot reused from a free
//! list) and takes it back when dropped; the worker's ticker advances the
//! clock every `TICK` and wakes whoever is due. Deadlines fire up to `TICK`
//! late, never early.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

/// How often a worker reads the clock for its deadlines.
const TICK: Duration = Duration::from_millis(100);

/// Whence every worker's coarse clock counts, in milliseconds.
fn base() -> Instant {
    static BASE: OnceLock<Instant> = OnceLock::new();
    *BASE.get_or_init(Instant::now)
}

fn millis(at: Instant) -> u64 {
    u64::try_from(at.saturating_duration_since(base()).as_millis()).unwrap_or(u64::MAX)
}

/// One worker's clock and the wakers of its pending deadlines.
pub(crate) struct Wheel {
    now_ms: AtomicU64,
    waiting: Mutex<Waiting>,
}

#[derive(Default)]
struct Waiting {
    slots: Vec<Option<(u64, Waker)>>,
    free: Vec<usize>,
}

thread_local! {
    /// This worker's wheel, made at its first use.
    static WHEEL: std::cell::OnceCell<Arc<Wheel>> = const { std::cell::OnceCell::new() };
}

impl Wheel {
    /// This worker's wheel, made (and its ticker spawned on the worker's
    /// runtime) at its first use.
    fn current() -> Arc<Wheel> {
        WHEEL.with(|w| {
            Arc::clone(w.get_or_init(|| {
                let wheel = Arc::new(Wheel {
                    now_ms: AtomicU64::new(millis(Instant::now())),
                    waiting: Mutex::new(Waiting::default()),
                });
                let ticking = Arc::clone(&wheel);
                tokio::spawn(async move {
                    let mut tick = tokio::time::interval(TICK);
                    loop {
                        tick.tick().await;
                        ticking.advance();
                    }
                });
                wheel
            }))
        })
    }

    /// The clock read once, every deadline due by it woken.
    fn advance(&self) {
        let now = millis(Instant::now());
        self.now_ms.store(now, Ordering::Relaxed);
        let waiting = self.waiting.lock().unwrap_or_else(|e| e.into_inner());
        for (due, waker) in waiting.slots.iter().flatten() {
            if *due <= now {
                waker.wake_by_ref();
            }
        }
    }

    /// The worker's coarse reading of the clock.
    pub(crate) fn now() -> Instant {
        let ms = Wheel::current().now_ms.load(Ordering::Relaxed);
        base() + Duration::from_millis(ms)
    }

    /// A deadline at `at`, on this worker's wheel.
    pub(crate) fn sleep_until(at: Instant) -> Deadline {
        Deadline {
            wheel: Wheel::current(),
            due: millis(at),
            slot: None,
        }
    }
}

/// A deadline on a worker's wheel: ready once its clock reaches `due`.
pub(crate) struct Deadline {
    wheel: Arc<Wheel>,
    due: u64,
    slot: Option<usize>,
}

impl Future for Deadline {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.wheel.now_ms.load(Ordering::Relaxed) >= self.due {
            return Poll::Ready(());
        }
        let due = self.due;
        let mut waiting = self.wheel.waiting.lock().unwrap_or_else(|e| e.into_inner());
        match self.slot {
            Some(i) => {
                if let Some((_, w)) = &mut waiting.slots[i] {
                    if !w.will_wake(cx.waker()) {
                        *w = cx.waker().clone();
                    }
                }
            }
            None => {
                let entry = Some((due, cx.waker().clone()));
                let i = match waiting.free.pop() {
                    Some(i) => {
                        waiting.slots[i] = entry;
                        i
                    }
                    None => {
                        waiting.slots.push(entry);
                        waiting.slots.len() - 1
                    }
                };
                drop(waiting);
                self.slot = Some(i);
            }
        }
        Poll::Pending
    }
}

impl Drop for Deadline {
    fn drop(&mut self) {
        if let Some(i) = self.slot {
            let mut waiting = self.wheel.waiting.lock().unwrap_or_else(|e| e.into_inner());
            waiting.slots[i] = None;
            waiting.free.push(i);
        }
    }
}

impl hyper::rt::Sleep for Deadline {}

/// hyper's timer on the worker's wheel, for its header read timeout.
#[derive(Clone, Copy)]
pub(crate) struct CoarseTimer;

impl hyper::rt::Timer for CoarseTimer {
    fn sleep(&self, duration: Duration) -> Pin<Box<dyn hyper::rt::Sleep>> {
        Box::pin(Wheel::sleep_until(Wheel::now() + duration))
    }

    fn sleep_until(&self, deadline: Instant) -> Pin<Box<dyn hyper::rt::Sleep>> {
        Box::pin(Wheel::sleep_until(deadline))
    }

    fn now(&self) -> Instant {
        Wheel::now()
    }
}

/// `f`, or `Err(())` once the worker's clock reaches `at`.
pub(crate) async fn within<F: Future>(at: Instant, f: F) -> Result<F::Output, ()> {
    let deadline = Wheel::sleep_until(at);
    tokio::select! {
        biased;
        out = f => Ok(out),
        () = deadline => Err(()),
    }
}
