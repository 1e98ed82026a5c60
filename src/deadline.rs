//! One deadline, usable from async code and from blocking code (the std clock), for `map`, `wait` and
//! `as_completed`.
//!
//! A deadline that has already passed is ready at once, on every path, without arming any timer.
//! Otherwise the first async poll picks the timer that will wake the task, for the rest of the deadline's life
//! (one exception below):
//!
//! - inside a tokio runtime whose time driver is enabled, tokio's own timer, so the deadline follows
//!   tokio's clock (`tokio::time::pause` and paused-clock tests);
//! - anywhere else (smol, `futures::executor::block_on`, a tokio runtime built without `enable_time`),
//!   one process-wide timer thread shared by every deadline (see [`shared`]).
//!
//! Tokio offers no way to ask a runtime whether its timers are enabled (tokio-rs/tokio#8361): creating a
//! `Sleep` on a runtime without them panics. So the first poll inside a tokio runtime creates the `Sleep`
//! under `catch_unwind`, with the panic hook silenced for that call on that thread only (see `crate::panic::catch_silently`).
//! A deadline that outlives the runtime whose timer it chose (polled on under another executor once
//! that runtime has shut down, where tokio's `Sleep` panics) moves to the shared timer thread.
//! Where panics abort, that probe is impossible, and the shared timer thread is used under tokio too: the
//! deadline then runs on real time even if the tokio clock is paused.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

pub(crate) struct Deadline {
    at_std: Instant,
    at_tokio: tokio::time::Instant,
    timer: Timer,
}

enum Timer {
    /// Not polled yet: no timer chosen.
    Unarmed,
    /// A tokio runtime with timers was current at the first poll; its clock decides.
    Tokio(Pin<Box<tokio::time::Sleep>>),
    /// The shared timer thread; `None` until registered (and again once it has fired).
    Shared(Option<shared::Key>),
}

impl Deadline {
    /// A deadline `timeout` from now, on both clocks.
    pub(crate) fn after(timeout: Duration) -> Deadline {
        // Far enough to mean "never", near enough not to overflow either clock.
        let far = Duration::from_secs(86400 * 365 * 30);
        let timeout = timeout.min(far);
        Deadline {
            at_std: Instant::now() + timeout,
            at_tokio: tokio::time::Instant::now() + timeout,
            timer: Timer::Unarmed,
        }
    }

    /// The std-clock instant, for blocking waits.
    pub(crate) fn instant(&self) -> Instant {
        self.at_std
    }

    /// Ready once the deadline has passed; otherwise arranges for `cx` to be woken when it does.
    pub(crate) fn poll_elapsed(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        if let Timer::Unarmed = self.timer {
            self.timer = match tokio::runtime::Handle::try_current() {
                Ok(_) if tokio::time::Instant::now() >= self.at_tokio => return Poll::Ready(()),
                Ok(_) => match tokio_sleep(self.at_tokio) {
                    Some(sleep) => Timer::Tokio(sleep),
                    None => Timer::Shared(None),
                },
                Err(_) => Timer::Shared(None),
            };
        }
        match &mut self.timer {
            Timer::Unarmed => unreachable!("armed above"),
            Timer::Tokio(sleep) => {
                // tokio's timer only fires on its next tick (up to a millisecond away) even for a
                // deadline already behind its clock; the clock itself answers at once.
                if tokio::time::Instant::now() >= self.at_tokio {
                    return Poll::Ready(());
                }
                match poll_sleep(sleep, cx) {
                    Some(poll) => poll,
                    // The runtime whose timer this is has shut down: the deadline outlived it and
                    // is polled on under another executor. The shared timer serves it from now on.
                    None => {
                        self.timer = Timer::Shared(None);
                        self.poll_elapsed(cx)
                    }
                }
            }
            Timer::Shared(key) => {
                if Instant::now() >= self.at_std {
                    if let Some(key) = key.take() {
                        shared::cancel(key);
                    }
                    return Poll::Ready(());
                }
                match shared::register(key, self.at_std, cx.waker()) {
                    Ok(()) => Poll::Pending,
                    // No timer thread could be started: report the deadline as passed rather than
                    // risk waiting forever.
                    Err(shared::NoThread) => Poll::Ready(()),
                }
            }
        }
    }
}

impl Drop for Deadline {
    fn drop(&mut self) {
        // Nothing stays registered with the shared timer once its deadline is gone.
        if let Timer::Shared(Some(key)) = &mut self.timer {
            shared::cancel(*key);
        }
    }
}

/// A tokio `Sleep` until `at`, or `None` when the current runtime has no timers.
fn tokio_sleep(at: tokio::time::Instant) -> Option<Pin<Box<tokio::time::Sleep>>> {
    #[cfg(panic = "unwind")]
    {
        crate::panic::catch_silently(|| Box::pin(tokio::time::sleep_until(at)))
    }
    #[cfg(not(panic = "unwind"))]
    {
        let _ = at;
        None
    }
}

/// Polls a tokio `Sleep`, or gives `None` if its runtime has shut down (tokio panics then: a timer
/// polled after its runtime is gone can never fire).
fn poll_sleep(sleep: &mut Pin<Box<tokio::time::Sleep>>, cx: &mut Context<'_>) -> Option<Poll<()>> {
    // Only made where the probe in `tokio_sleep` can catch a panic, so this one can too.
    crate::panic::catch_silently(|| sleep.as_mut().poll(cx))
}

/// Wakes a waker at an instant (std clock) from the shared timer thread, until dropped: a time-limited
/// task's token is cancelled this way when its limit runs out.
pub(crate) struct Alarm(Option<shared::Key>);

impl Alarm {
    /// `None` if no timer thread could be started.
    pub(crate) fn set(at: Instant, waker: &std::task::Waker) -> Option<Alarm> {
        let mut key = None;
        shared::register(&mut key, at, waker).ok()?;
        Some(Alarm(key))
    }
}

impl Drop for Alarm {
    fn drop(&mut self) {
        if let Some(key) = self.0.take() {
            shared::cancel(key);
        }
    }
}

/// The process-wide timer for deadlines no tokio timer serves.
///
/// One thread, started at the first registration, sleeps on a condition variable until the earliest
/// registered instant, wakes the wakers that are due, and parks without a timeout when nothing is
/// registered. Registrations live in a map ordered by instant; a deadline removes its own when it is
/// dropped or sees itself elapsed, so abandoned deadlines do not accumulate.
mod shared {
    use std::collections::BTreeMap;
    use std::sync::{Condvar, Mutex, MutexGuard};
    use std::task::Waker;
    use std::time::Instant;

    /// A registration: its instant, and a sequence number telling apart equal instants.
    pub(super) type Key = (Instant, u64);

    /// The timer thread could not be started.
    pub(super) struct NoThread;

    enum Thread {
        NotStarted,
        Running,
        Failed,
    }

    struct Timers {
        due: BTreeMap<Key, Waker>,
        next_seq: u64,
        thread: Thread,
    }

    static TIMERS: Mutex<Timers> = Mutex::new(Timers {
        due: BTreeMap::new(),
        next_seq: 0,
        thread: Thread::NotStarted,
    });

    /// Signalled when a registration becomes the earliest one, so the thread sleeps less.
    static EARLIER: Condvar = Condvar::new();

    fn lock() -> MutexGuard<'static, Timers> {
        // The lock is never held across user code (wakers are called after releasing it), so a
        // poisoned lock still holds a consistent map.
        TIMERS.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Makes sure `waker` is woken at `at`: registers it under a new key, or refreshes the waker of the
    /// registration `key` names. A registration that already fired is made again.
    pub(super) fn register(
        key: &mut Option<Key>,
        at: Instant,
        waker: &Waker,
    ) -> Result<(), NoThread> {
        let mut timers = lock();
        match timers.thread {
            Thread::Running => {}
            Thread::Failed => return Err(NoThread),
            Thread::NotStarted => {
                let spawned = std::thread::Builder::new()
                    .name("cf-timer".into())
                    .spawn(run);
                match spawned {
                    Ok(_) => timers.thread = Thread::Running,
                    Err(_) => {
                        timers.thread = Thread::Failed;
                        return Err(NoThread);
                    }
                }
            }
        }
        if let Some(k) = *key {
            if let Some(registered) = timers.due.get_mut(&k) {
                if !registered.will_wake(waker) {
                    let replaced = std::mem::replace(registered, waker.clone());
                    // A waker's drop is the caller's code, which may drop a deadline (and so lock the
                    // timers): not under the lock.
                    drop(timers);
                    drop(replaced);
                }
                return Ok(());
            }
        }
        let k = (at, timers.next_seq);
        timers.next_seq += 1;
        timers.due.insert(k, waker.clone());
        *key = Some(k);
        if timers.due.keys().next() == Some(&k) {
            EARLIER.notify_one();
        }
        Ok(())
    }

    /// Removes a registration (a no-op if it already fired).
    pub(super) fn cancel(key: Key) {
        let removed = lock().due.remove(&key);
        // Dropped once the lock is released (see `register`).
        drop(removed);
    }

    /// The timer thread's loop.
    fn run() {
        let mut timers = lock();
        loop {
            let now = Instant::now();
            let mut wake = Vec::new();
            while let Some(entry) = timers.due.first_entry() {
                if entry.key().0 > now {
                    break;
                }
                wake.push(entry.remove());
            }
            if !wake.is_empty() {
                drop(timers);
                // A waker is the caller's code: one that panics is reported, and this thread, which
                // every later deadline needs, goes on.
                wake.into_iter().for_each(crate::panic::wake);
                timers = lock();
                continue;
            }
            timers = match timers.due.keys().next() {
                Some(&(at, _)) => {
                    EARLIER
                        .wait_timeout(timers, at - now)
                        .unwrap_or_else(|e| e.into_inner())
                        .0
                }
                // IDLE: nothing registered; park until a registration arrives.
                None => EARLIER.wait(timers).unwrap_or_else(|e| e.into_inner()),
            };
        }
    }
}
