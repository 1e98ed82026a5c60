//! What the pool's handles and its MPI owner thread share: the queue of tasks no rank has taken,
//! where the pool is in its life, and the counters.

use std::collections::VecDeque;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::task::Waker;
use std::time::Duration;

use crate::error::{BrokenCause, BrokenProcessPool, BrokenSeenBy, Error};
use crate::process_pool::task::ProcTask;
use crate::process_pool::Counters;
use crate::thread_pool::Metrics;

/// Where the pool is in its life.
#[derive(Clone, Debug)]
pub(crate) enum Lifecycle {
    /// Taking work.
    Open,
    /// No new work; queued work still runs (unless it was cancelled), then the ranks are stopped.
    ShutDown,
    /// No new work; every queued and running future failed with this error.
    Broken(BrokenProcessPool),
}

/// Whether the MPI owner thread still runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Owner {
    Running,
    /// It stopped the ranks and finalized MPI.
    Exited,
}

pub(crate) struct State {
    pub(crate) lifecycle: Lifecycle,
    pub(crate) owner: Owner,
    pub(crate) queue: VecDeque<Arc<dyn ProcTask>>,
    /// Set by anything the owner must look at now (a submit, a shutdown); cleared by the owner.
    pub(crate) kicked: bool,
    /// Ranks that shook hands, and of those, ranks running a task (kept by the owner for `metrics`).
    pub(crate) ranks: usize,
    pub(crate) busy: usize,
    /// `shutdown_async` callers waiting for the owner to exit.
    pub(crate) exit_wakers: Vec<Waker>,
}

pub(crate) struct Shared {
    state: Mutex<State>,
    /// The owner waits here between polls; submits and shutdowns wake it.
    pub(crate) kick: Condvar,
    /// Blocking `shutdown` waits here for the owner to exit.
    pub(crate) exited: Condvar,
    pub(crate) counters: Counters,
}

impl Shared {
    pub(crate) fn new() -> Arc<Self> {
        Arc::new(Shared {
            state: Mutex::new(State {
                lifecycle: Lifecycle::Open,
                owner: Owner::Running,
                queue: VecDeque::new(),
                kicked: false,
                ranks: 0,
                busy: 0,
                exit_wakers: Vec::new(),
            }),
            kick: Condvar::new(),
            exited: Condvar::new(),
            counters: Counters::default(),
        })
    }

    /// The state. A panic elsewhere while holding it leaves nothing half-done that matters here, so a
    /// poisoned lock is taken as it is.
    pub(crate) fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Why a submit is refused now, if it is.
    pub(crate) fn refusal(lifecycle: &Lifecycle) -> Option<Error> {
        match lifecycle {
            Lifecycle::Open => None,
            Lifecycle::ShutDown => Some(Error::Shutdown),
            Lifecycle::Broken(b) => Some(Error::BrokenProcessPool(b.seen_by(BrokenSeenBy::Submit))),
        }
    }

    /// Queues a task for the owner.
    pub(crate) fn enqueue(&self, task: Arc<dyn ProcTask>) -> Result<(), Error> {
        let mut st = self.lock();
        if let Some(e) = Self::refusal(&st.lifecycle) {
            drop(st);
            task.fail(e.clone());
            return Err(e);
        }
        st.queue.push_back(task);
        st.kicked = true;
        drop(st);
        self.kick.notify_one();
        Ok(())
    }

    /// No new work; with `cancel`, the queued tasks are cancelled. Returns how many were.
    pub(crate) fn close(&self, cancel: bool) -> u64 {
        let mut st = self.lock();
        if matches!(st.lifecycle, Lifecycle::Open) {
            st.lifecycle = Lifecycle::ShutDown;
        }
        let dropped: Vec<_> = if cancel {
            st.queue.drain(..).collect()
        } else {
            Vec::new()
        };
        st.kicked = true;
        drop(st);
        self.kick.notify_one();
        // Completing a future runs its callbacks: never under the lock.
        let cancelled = dropped.iter().filter(|t| t.cancel()).count() as u64;
        Counters::add(&self.counters.cancelled, cancelled);
        cancelled
    }

    /// Breaks the pool: later submits are refused and every queued task fails (the owner fails the
    /// running ones).
    pub(crate) fn break_pool(&self, cause: BrokenCause) -> BrokenProcessPool {
        let broken = BrokenProcessPool::new(cause, BrokenSeenBy::Future);
        let mut st = self.lock();
        if let Lifecycle::Broken(first) = &st.lifecycle {
            return first.clone();
        }
        st.lifecycle = Lifecycle::Broken(broken.clone());
        let queued: Vec<_> = st.queue.drain(..).collect();
        drop(st);
        for t in queued {
            t.fail(Error::BrokenProcessPool(broken.clone()));
        }
        broken
    }

    /// The owner waits for a kick or `timeout`, whichever is first.
    pub(crate) fn idle(&self, timeout: Duration) {
        let mut st = self.lock();
        if !st.kicked && !timeout.is_zero() {
            st = self
                .kick
                .wait_timeout(st, timeout)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
        st.kicked = false;
    }

    /// The owner is done: wakes every `shutdown` waiting for it.
    pub(crate) fn owner_exited(&self) {
        let mut st = self.lock();
        st.owner = Owner::Exited;
        st.ranks = 0;
        st.busy = 0;
        let wakers = std::mem::take(&mut st.exit_wakers);
        drop(st);
        self.exited.notify_all();
        for w in wakers {
            w.wake();
        }
    }

    pub(crate) fn metrics(&self) -> Metrics {
        use std::sync::atomic::Ordering::Relaxed;
        let st = self.lock();
        let c = &self.counters;
        Metrics {
            workers: st.ranks,
            idle: st.ranks - st.busy,
            queued: st.queue.len(),
            running: st.busy,
            completed: c.completed.load(Relaxed),
            failed: c.failed.load(Relaxed),
            panicked: c.panicked.load(Relaxed),
            cancelled: c.cancelled.load(Relaxed),
            workers_respawned: 0,
        }
    }
}
