//! A timeout too far away for the clock (`Duration::MAX`, a user's "forever") means "no limit": never a
//! panic from the `Instant` arithmetic, never a limit that has already passed.

mod common;

use std::time::Duration;

use common::LONG;
use concurrent_futures::{wait, ReturnWhen, ThreadPoolExecutor};

#[test]
fn blocking_wait_with_an_endless_timeout() {
    let pool = ThreadPoolExecutor::new(1).unwrap();
    let f = pool.spawn(|| 1).unwrap();
    let done = wait([&f])
        .return_when(ReturnWhen::AllCompleted)
        .timeout(Duration::MAX)
        .blocking();
    assert_eq!(done.done.len(), 1);
}

#[test]
fn an_endless_time_limit_never_fires() {
    let pool = ThreadPoolExecutor::new(1).unwrap();
    let mut f = pool
        .spawn_with_time_limit(Duration::MAX, |token| Ok(token.is_cancelled()))
        .unwrap();
    assert!(!f.result(LONG).unwrap(), "the endless limit fired at once");
}
