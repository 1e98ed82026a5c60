//! Catching a task's panic with more than its payload: where it happened, and a backtrace when
//! `RUST_BACKTRACE` asks for one.
//!
//! A payload carries neither, and only a panic hook sees them. So the first [`catch`] installs one hook
//! for the process, chained in front of whatever hook was there: it records the location (and maybe a
//! backtrace) of a panic raised on a thread that is inside `catch` right now, and then hands every
//! panic on to the previous hook, so the usual report is printed as before. Panics elsewhere are not
//! touched. If the program later replaces the hook, panics still become [`Panic`]s, without a location.
//! The same hook keeps quiet about a panic the crate provokes on purpose and expects
//! ([`catch_silently`]): it is the crate's only hook.
//!
//! The same code runs in a process-pool worker, whose replies carry the location and backtrace across.

use std::panic::{catch_unwind, AssertUnwindSafe};

use crate::error::{panic_message, Panic};

/// Runs `f`, turning a panic into a [`Panic`] that keeps the payload, the message, the location and
/// (when `RUST_BACKTRACE` asks for one) the backtrace.
pub(crate) fn catch<R>(f: impl FnOnce() -> R) -> Result<R, Panic> {
    let (outcome, site) = hook::watch(|| catch_unwind(AssertUnwindSafe(f)));
    outcome.map_err(|payload| {
        let message = panic_message(&*payload);
        let (location, backtrace) = site.unwrap_or_default();
        Panic::with_details(message, location, backtrace, Some(payload))
    })
}

/// Wakes `w`. A waker is the caller's code: one that panics is reported, never unwinds into the
/// pool's thread that woke it, nor keeps the wake-ups after it from happening.
pub(crate) fn wake(w: std::task::Waker) {
    if let Err(payload) = catch_unwind(AssertUnwindSafe(|| w.wake())) {
        crate::report::waker_panicked(&panic_message(&*payload));
    }
}

/// Runs `f`, which drops the user's data (a task's captures, a cancelled task's closure, a detached
/// task's value) on a thread with more to do: a pool's worker, or a shutdown or `map` ending many
/// tasks. A panicking `Drop` is reported and gives `None`, never unwinds into the pool's code: that
/// would kill the worker (stranding the tasks queued behind) or leave the rest of the tasks unended.
pub(crate) fn contain<R>(f: impl FnOnce() -> R) -> Option<R> {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(r) => Some(r),
        Err(payload) => {
            crate::report::drop_panicked(&panic_message(&*payload));
            None
        }
    }
}

/// Runs `f`, or gives `None` if it panicked, without the panic being printed or reported: for a call
/// the crate expects may panic and has an answer for (asking tokio for a timer on a runtime built
/// without one).
pub(crate) fn catch_silently<T>(f: impl FnOnce() -> T) -> Option<T> {
    hook::silence(|| catch_unwind(AssertUnwindSafe(f))).ok()
}

/// Where a panic happened: `file:line:col`, and the backtrace text if one was captured.
type Site = (Option<String>, Option<String>);

/// The crate's one panic hook, installed at the first use, in front of whatever hook was there.
#[cfg(not(loom))]
mod hook {
    use std::backtrace::{Backtrace, BacktraceStatus};
    use std::cell::RefCell;
    use std::panic;
    use std::sync::Once;

    use super::Site;

    /// What a panic raised on this thread means to the hook right now.
    enum Watch {
        /// Not inside a crate call that catches: hand the panic on to the previous hook.
        Off,
        /// Inside [`watch`]: record where (and the backtrace), then hand it on.
        Recording(Option<Site>),
        /// Inside [`silence`]: an expected panic, which nobody needs to hear about.
        Silencing,
    }

    thread_local! {
        static WATCH: RefCell<Watch> = const { RefCell::new(Watch::Off) };
    }

    fn install() {
        static HOOK: Once = Once::new();
        HOOK.call_once(|| {
            let previous = panic::take_hook();
            panic::set_hook(Box::new(move |info| {
                if !observe(info.location().map(|l| l.to_string())) {
                    previous(info);
                }
            }));
        });
    }

    /// Runs `f` in `mode`, restoring the mode it found (calls nest: a `map` chunk's elements inside its
    /// task each see their own panics); returns what `f` gave and the mode as `f` left it.
    fn within<T>(mode: Watch, f: impl FnOnce() -> T) -> (T, Watch) {
        install();
        let outer = WATCH.with(|w| w.replace(mode));
        let out = f();
        let inner = WATCH.with(|w| w.replace(outer));
        (out, inner)
    }

    /// Runs `f` and returns what the hook saw of the last panic raised on this thread meanwhile.
    pub(super) fn watch<T>(f: impl FnOnce() -> T) -> (T, Option<Site>) {
        match within(Watch::Recording(None), f) {
            (out, Watch::Recording(site)) => (out, site),
            (out, _) => (out, None),
        }
    }

    /// Runs `f` with this thread's panics kept from the previous hook.
    pub(super) fn silence<T>(f: impl FnOnce() -> T) -> T {
        within(Watch::Silencing, f).0
    }

    /// The hook's view of one panic; `true` if it is silenced. A hook must not panic (that aborts):
    /// `try_*` everywhere.
    fn observe(location: Option<String>) -> bool {
        WATCH
            .try_with(|w| {
                let Ok(mut w) = w.try_borrow_mut() else {
                    return false;
                };
                match &mut *w {
                    Watch::Off => false,
                    Watch::Silencing => true,
                    Watch::Recording(seen) => {
                        // `capture` honours RUST_BACKTRACE / RUST_LIB_BACKTRACE, as the default hook
                        // does.
                        let bt = Backtrace::capture();
                        let bt = (bt.status() == BacktraceStatus::Captured).then(|| bt.to_string());
                        *seen = Some((location, bt));
                        false
                    }
                }
            })
            .unwrap_or(false)
    }
}

/// Under loom, threads are coroutines sharing one OS thread's locals: no hook, no location.
#[cfg(loom)]
mod hook {
    use super::Site;

    pub(super) fn watch<T>(f: impl FnOnce() -> T) -> (T, Option<Site>) {
        (f(), None)
    }

    pub(super) fn silence<T>(f: impl FnOnce() -> T) -> T {
        f()
    }
}
