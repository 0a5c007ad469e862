//! Running alone: the fault run's invariants are timings (no 5xx once Redis is back), so while it
//! runs no other test may load the machine. Every gateway a test starts holds a `Shared` guard
//! for as long as it lives; `alone()` waits until none is alive and keeps new ones waiting until
//! its guard drops. Readers are never kept out by a waiting writer, so a test that starts a
//! second gateway while holding a first one cannot deadlock.

use std::sync::{Condvar, Mutex};

struct State {
    gateways: usize,
    alone: bool,
}

static STATE: Mutex<State> = Mutex::new(State {
    gateways: 0,
    alone: false,
});
static CHANGED: Condvar = Condvar::new();

/// Held by each live gateway (in-process or a child process).
pub struct Shared(());

/// Held by the one test that needs the machine to itself.
pub struct Alone(());

/// Waits while a test runs alone, then counts one more live gateway.
pub fn shared() -> Shared {
    let mut s = STATE
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    while s.alone {
        s = CHANGED
            .wait(s)
            .unwrap_or_else(std::sync::PoisonError::into_inner);
    }
    s.gateways += 1;
    Shared(())
}

/// Waits until no gateway is alive and no other test runs alone.
pub fn alone() -> Alone {
    let mut s = STATE
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    while s.alone || s.gateways > 0 {
        s = CHANGED
            .wait(s)
            .unwrap_or_else(std::sync::PoisonError::into_inner);
    }
    s.alone = true;
    Alone(())
}

impl Drop for Shared {
    fn drop(&mut self) {
        let mut s = STATE
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        s.gateways -= 1;
        CHANGED.notify_all();
    }
}

impl Drop for Alone {
    fn drop(&mut self) {
        let mut s = STATE
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        s.alone = false;
        CHANGED.notify_all();
    }
}
