//! Which process a pool, or a task, belongs to. A pool's workers, their channels and its driver
//! threads are the process's that made the pool; a copy of that process made by `fork` without exec
//! (a pre-fork server, a daemonizing library) shares the channels but has none of the threads. So
//! every entry point that would reach the workers, the pool's lock or its drivers first asks the
//! pool's (or the task's) [`Birth`] for its [`Lineage`]: in a forked copy it refuses a submit, and
//! does nothing for a shutdown, a drop, a kill, a wait for a reply or an interrupt.
//!
//! The copy is told by a count of forks, bumped in the child of every `fork` by a `pthread_atfork`
//! handler, rather than by `getpid`: every submit asks, and `getpid` is a system call (about 0.4 µs
//! here).

use std::sync::atomic::{AtomicU64, Ordering};

/// How many `fork`s (without exec) lie between this process and the first pool of the program:
/// bumped in the child of every `fork` once [`Birth::first_in_process`] has run.
static FORKS: AtomicU64 = AtomicU64::new(0);

extern "C" fn count_fork_in_child() {
    // Async-signal-safe, as a handler run in the child of a threaded program's fork must be.
    FORKS.fetch_add(1, Ordering::Relaxed);
}

/// Whether this process is the one that made a pool or a task, or a copy of it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Lineage {
    /// The process that made it: its workers, channels and driver threads are this process's.
    Owner,
    /// A copy of that process made by `fork` without exec. It shares the workers' channels with the
    /// owner (a frame it wrote would be run by the owner's worker and its reply read by whichever
    /// process reads first; a channel it shut would end the owner's worker) and has none of the
    /// driver threads (a wait for them would never end, and the pool's lock may have been held by one
    /// at the fork, never to be released in the copy). It leaves all of them alone.
    ForkedCopy,
}

/// When a pool or a task was made: the count of forks then.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Birth {
    forks: u64,
}

impl Birth {
    /// A pool's birth: starts counting forks first (once per process; a child inherits the
    /// registration).
    #[allow(unsafe_code)]
    pub(crate) fn first_in_process() -> Birth {
        static ONCE: std::sync::Once = std::sync::Once::new();
        ONCE.call_once(|| {
            // SAFETY: registers a handler that only bumps an atomic (async-signal-safe), with no
            // prepare or parent handler; `pthread_atfork` keeps the function pointer, which is static.
            unsafe {
                libc::pthread_atfork(None, None, Some(count_fork_in_child));
            }
        });
        Birth::now()
    }

    /// A task's birth: its pool, made first, has started counting forks.
    pub(crate) fn now() -> Birth {
        Birth {
            forks: FORKS.load(Ordering::Relaxed),
        }
    }

    /// The gate: whether this process is the one born here, or a forked copy of it.
    pub(crate) fn lineage(self) -> Lineage {
        if Birth::now().forks == self.forks {
            Lineage::Owner
        } else {
            Lineage::ForkedCopy
        }
    }
}
