//! Waiting for an event — a file, a log line, an HTTP status, a catalog state — instead
//! of sleeping and hoping it happened. CI runs on a busy machine, so every wait has a
//! generous deadline and says what it waited for when that deadline passes; how soon
//! the event comes is never asserted.

use std::time::{Duration, Instant};

/// Polls `done` until it holds, at most `timeout`; whether it held. Checks often at
/// first (what is waited for usually comes soon), then every 100 ms.
pub fn poll_until(timeout: Duration, mut done: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    let mut pause = Duration::from_millis(5);
    loop {
        if done() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(pause);
        pause = (pause * 2).min(Duration::from_millis(100));
    }
}

/// Waits until `done` holds, polling; panics naming `what` once `timeout` has passed.
pub fn wait_until(timeout: Duration, what: &str, done: impl FnMut() -> bool) {
    assert!(
        poll_until(timeout, done),
        "timed out after {timeout:?} waiting for {what}"
    );
}
