//! Helpers shared by the integration tests. Each test file is its own crate and includes this module
//! with `mod common;`.
// Each test crate uses only part of these helpers; the rest would warn as dead code there.
#![allow(dead_code)]

use std::time::Duration;

pub mod fixtures;
pub mod logs;
pub mod process;
pub mod threads;
pub mod wakers;

/// Long enough never to expire on a loaded machine; only reached when a test is failing.
pub const LONG: Duration = Duration::from_secs(30);

/// Waits (up to [`LONG`]) until `cond` holds, failing the test with `what` if it never does. For
/// states a test can only observe, not be told of (a pool's metrics, a process's end).
pub fn eventually(what: &str, mut cond: impl FnMut() -> bool) {
    let bound = std::time::Instant::now() + LONG;
    while !cond() {
        assert!(std::time::Instant::now() < bound, "never happened: {what}");
        std::thread::sleep(Duration::from_millis(1));
    }
}
