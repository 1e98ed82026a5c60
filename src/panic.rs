//! Catching a task's panic with more than its payload: where it happened, and a backtrace when
//! `RUST_BACKTRACE` asks for one.
//!
//! A payload carries neither, and only a panic hook sees them. So the first [`catch`] installs one hook
//! for the process, chained in front of whatever hook was there: it records the location (and maybe a
//! backtrace) of a panic raised on a thread that is inside `catch` right now, and then hands every
//! panic on to the previous hook, so the usual report is printed as before. Panics elsewhere are not
//! touched. If the program later replaces the hook, panics still become [`Panic`]s, without a location.
//!
//! The same code runs in a process-pool worker, whose replies carry the location and backtrace across.

use std::panic::{catch_unwind, AssertUnwindSafe};

use crate::error::{panic_message, Panic};

/// Runs `f`, turning a panic into a [`Panic`] that keeps the payload, the message, the location and
/// (when `RUST_BACKTRACE` asks for one) the backtrace.
pub(crate) fn catch<R>(f: impl FnOnce() -> R) -> Result<R, Panic> {
    let (outcome, site) = site::watch(|| catch_unwind(AssertUnwindSafe(f)));
    outcome.map_err(|payload| {
        let message = panic_message(&*payload);
        let (location, backtrace) = site.unwrap_or_default();
        Panic::with_details(message, location, backtrace, Some(payload))
    })
}

/// Where a panic happened: `file:line:col`, and the backtrace text if one was captured.
type Site = (Option<String>, Option<String>);

#[cfg(not(loom))]
mod site {
    use std::backtrace::{Backtrace, BacktraceStatus};
    use std::cell::RefCell;
    use std::panic;
    use std::sync::Once;

    use super::Site;

    thread_local! {
        /// `None` outside `watch`; `Some(None)` inside it until a panic is seen; then `Some(Some(site))`.
        static SLOT: RefCell<Option<Option<Site>>> = const { RefCell::new(None) };
    }

    /// Runs `f` and returns what the hook saw of the last panic raised on this thread meanwhile.
    pub(super) fn watch<T>(f: impl FnOnce() -> T) -> (T, Option<Site>) {
        static HOOK: Once = Once::new();
        HOOK.call_once(|| {
            let previous = panic::take_hook();
            panic::set_hook(Box::new(move |info| {
                record(info.location().map(|l| l.to_string()));
                previous(info);
            }));
        });
        // Nested calls (a `map` chunk's elements inside its task) each see their own panics.
        let outer = SLOT.with(|s| s.replace(Some(None)));
        let out = f();
        let site = SLOT.with(|s| s.replace(outer)).flatten();
        (out, site)
    }

    fn record(location: Option<String>) {
        // A hook must not panic (that aborts): `try_*` everywhere, and nothing while unarmed.
        let _ = SLOT.try_with(|s| {
            let Ok(mut slot) = s.try_borrow_mut() else {
                return;
            };
            if let Some(seen) = slot.as_mut() {
                // `capture` honours RUST_BACKTRACE / RUST_LIB_BACKTRACE, as the default hook does.
                let bt = Backtrace::capture();
                let bt = (bt.status() == BacktraceStatus::Captured).then(|| bt.to_string());
                *seen = Some((location, bt));
            }
        });
    }
}

/// Under loom, threads are coroutines sharing one OS thread's locals: no hook, no location.
#[cfg(loom)]
mod site {
    use super::Site;

    pub(super) fn watch<T>(f: impl FnOnce() -> T) -> (T, Option<Site>) {
        (f(), None)
    }
}
