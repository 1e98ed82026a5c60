//! Helpers shared by the integration tests. Each test file is its own crate and includes this module
//! with `mod common;`.
// Each test crate uses only part of these helpers; the rest would warn as dead code there.
#![allow(dead_code)]

use std::time::Duration;

pub mod census;
pub mod fixtures;
pub mod logs;
pub mod process;
pub mod threads;
pub mod wakers;

/// Long enough never to expire on a loaded machine; only reached when a test is failing.
pub const LONG: Duration = Duration::from_secs(30);

/// Waits (up to [`LONG`]) until `cond` holds, failing the test with `what` if it never does. For
/// states a test can only observe, not be told of (a pool's metrics, a process's end).
pub fn eventually(what: &str, cond: impl FnMut() -> bool) {
    assert!(holds_within(LONG, cond), "never happened: {what}");
}

/// Runs `body` on another thread and returns what it returns, failing the test if it has not
/// returned within [`LONG`]: a hang detector for a call that must not block for ever.
pub fn within<T: Send + 'static>(what: &str, body: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(body());
    });
    match rx.recv_timeout(LONG) {
        Ok(v) => v,
        Err(_) => panic!("hang: {what} did not return within {LONG:?}"),
    }
}

/// Polls `cond` until it holds (`true`) or `limit` passes (`false`): [`eventually`] for a test
/// that words its own failure, with what it saw then.
pub fn holds_within(limit: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let bound = std::time::Instant::now() + limit;
    while !cond() {
        if std::time::Instant::now() > bound {
            return false;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    true
}
