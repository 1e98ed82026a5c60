//! Helpers shared by the integration tests. Each test file is its own crate and includes this module
//! with `mod common;`.
// Each test crate uses only part of these helpers; the rest would warn as dead code there.
#![allow(dead_code)]

use std::time::Duration;

pub mod fixtures;
pub mod logs;
pub mod process;
pub mod threads;

/// Long enough never to expire on a loaded machine; only reached when a test is failing.
pub const LONG: Duration = Duration::from_secs(30);
