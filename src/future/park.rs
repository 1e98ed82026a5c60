//! Blocking on a poll function: the bridge from the async core to `result(timeout)`, blocking `wait`,
//! blocking `as_completed` and the blocking `map` iterator.
//!
//! The waiting thread registers a waker that unparks it, then parks until woken or until the deadline.
//! Spurious unparks are harmless because the poll function is always asked again.

use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};
use std::time::Instant;

use crate::sync::thread;

struct Unparker(thread::Thread);

impl Wake for Unparker {
    fn wake(self: Arc<Self>) {
        self.0.unpark();
    }
    fn wake_by_ref(self: &Arc<Self>) {
        self.0.unpark();
    }
}

#[cfg(not(loom))]
thread_local! {
    // One waker per thread, made once: blocking calls in a loop allocate nothing.
    static WAKER: std::cell::RefCell<Option<Waker>> = const { std::cell::RefCell::new(None) };
}

#[cfg(not(loom))]
fn current_waker() -> Waker {
    WAKER.with(|w| {
        w.borrow_mut()
            .get_or_insert_with(|| Waker::from(Arc::new(Unparker(thread::current()))))
            .clone()
    })
}

// loom runs all its threads, and every execution of a model, on one OS thread: a std thread-local
// would hand one loom thread's waker to another. Make a fresh one per blocking call instead.
#[cfg(loom)]
fn current_waker() -> Waker {
    Waker::from(Arc::new(Unparker(thread::current())))
}

/// Polls `poll` on this thread until it is ready or `deadline` passes. `None` means the deadline passed
/// first. A deadline already in the past still polls once, so a zero timeout is a non-blocking check.
pub(crate) fn block_until<R>(
    deadline: Option<Instant>,
    mut poll: impl FnMut(&mut Context<'_>) -> Poll<R>,
) -> Option<R> {
    let waker = current_waker();
    let mut cx = Context::from_waker(&waker);
    loop {
        if let Poll::Ready(r) = poll(&mut cx) {
            return Some(r);
        }
        match deadline {
            None => thread::park(),
            Some(d) => {
                let now = Instant::now();
                if now >= d {
                    return None;
                }
                park_timeout(d - now);
            }
        }
    }
}

#[cfg(not(loom))]
fn park_timeout(d: std::time::Duration) {
    thread::park_timeout(d);
}

#[cfg(loom)]
fn park_timeout(_d: std::time::Duration) {
    // loom has no clock: a timed park is a yield, and the caller re-checks its deadline.
    thread::yield_now();
}

/// Turns a relative timeout into an absolute deadline (`None` waits without limit).
pub(crate) fn deadline_after(timeout: Option<std::time::Duration>) -> Option<Instant> {
    timeout.map(|t| Instant::now().checked_add(t).unwrap_or_else(far_future))
}

fn far_future() -> Instant {
    // About 30 years: the same trick tokio uses for "never".
    Instant::now() + std::time::Duration::from_secs(86400 * 365 * 30)
}
