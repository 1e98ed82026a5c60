//! Blocking on a poll function: the bridge from the async core to `result(timeout)`, blocking `wait`,
//! blocking `as_completed` and the blocking `map` iterator.
//!
//! The waiting thread registers a waker that unparks it, then parks until woken or until the deadline.
//! Spurious unparks are harmless because the poll function is always asked again.
//!
//! Before its first park, a waiter may spin for a moment watching its waker's flag: a short task often
//! finishes within that time, and catching the wake-up while spinning saves the futex sleep and
//! wake-up that dominate a round trip. Whether it spins, and for how long, is the crate-wide policy of
//! [`crate::spin`]: a few microseconds at most, only while spinning has been paying off on this thread,
//! only when a spinner slot is free and the machine has a CPU to spare, and once per call, so a long
//! wait costs no CPU.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};
use std::time::{Duration, Instant};

use crate::sync::thread;

struct Unparker {
    thread: thread::Thread,
    /// Set by every wake; lets a spinning waiter see the wake-up without parking.
    woken: AtomicBool,
}

impl Wake for Unparker {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }
    fn wake_by_ref(self: &Arc<Self>) {
        self.woken.store(true, Ordering::Release);
        self.thread.unpark();
    }
}

fn new_unparker() -> (Arc<Unparker>, Waker) {
    let unparker = Arc::new(Unparker {
        thread: thread::current(),
        woken: AtomicBool::new(false),
    });
    (unparker.clone(), Waker::from(unparker))
}

#[cfg(not(loom))]
thread_local! {
    // One waker per thread, made once: blocking calls in a loop allocate nothing.
    static WAKER: std::cell::RefCell<Option<(Arc<Unparker>, Waker)>> =
        const { std::cell::RefCell::new(None) };
}

#[cfg(not(loom))]
fn current_waker() -> (Arc<Unparker>, Waker) {
    // A blocking wait in another thread-local's destructor may come after this one is gone: it
    // then makes a waker of its own.
    WAKER
        .try_with(|w| w.borrow_mut().get_or_insert_with(new_unparker).clone())
        .unwrap_or_else(|_| new_unparker())
}

// loom runs all its threads, and every execution of a model, on one OS thread: a std thread-local
// would hand one loom thread's waker to another. Make a fresh one per blocking call instead.
#[cfg(loom)]
fn current_waker() -> (Arc<Unparker>, Waker) {
    new_unparker()
}

/// Polls `poll` on this thread until it is ready or `deadline` passes. `None` means the deadline passed
/// first. A deadline already in the past still polls once, so a zero timeout is a non-blocking check.
pub(crate) fn block_until<R>(
    deadline: Option<Instant>,
    mut poll: impl FnMut(&mut Context<'_>) -> Poll<R>,
) -> Option<R> {
    let (unparker, waker) = current_waker();
    let mut cx = Context::from_waker(&waker);
    let mut spun = false;
    loop {
        // Cleared before polling, so a wake-up that lands after the poll registered us is seen.
        unparker.woken.store(false, Ordering::Relaxed);
        if let Poll::Ready(r) = poll(&mut cx) {
            return Some(r);
        }
        let left = match deadline {
            None => None,
            Some(d) => match d.checked_duration_since(Instant::now()) {
                Some(left) if !left.is_zero() => Some(left),
                _ => return None,
            },
        };
        if !spun {
            spun = true;
            // A deadline closer than a spin is not worth one.
            let worth = left.map_or(true, |l| l >= SPIN_WORTH);
            if worth
                && crate::spin::spin_here(crate::spin::Probe::Load, || {
                    unparker.woken.load(Ordering::Acquire)
                })
            {
                continue;
            }
        }
        match left {
            None => thread::park(),
            Some(left) => park_timeout(left),
        }
    }
}

/// The shortest time left before a deadline for which a waiter still spins first.
const SPIN_WORTH: Duration = Duration::from_micros(10);

#[cfg(not(loom))]
fn park_timeout(d: Duration) {
    thread::park_timeout(d);
}

#[cfg(loom)]
fn park_timeout(_d: Duration) {
    // loom has no clock: a timed park is a yield, and the caller re-checks its deadline.
    thread::yield_now();
}

/// Turns a relative timeout into an absolute deadline (`None` waits without limit).
pub(crate) fn deadline_after(timeout: Option<Duration>) -> Option<Instant> {
    timeout.map(|t| Instant::now().checked_add(t).unwrap_or_else(far_future))
}

fn far_future() -> Instant {
    // About 30 years: the same trick tokio uses for "never".
    Instant::now() + Duration::from_secs(86400 * 365 * 30)
}
