//! The words every pool uses: what a shutdown does with queued tasks, the metrics snapshot, what an
//! initializer returns, what a submit does when the queue is full, and the settings every builder
//! checks the same way.

use std::fmt;

use crate::error::Error;

/// What `shutdown` does with tasks still waiting in the queue (Python's `cancel_futures`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Queued {
    /// Run them before the workers exit (`cancel_futures=False`).
    #[default]
    Run,
    /// Cancel them; their futures end cancelled and wake their waiters (`cancel_futures=True`). Running
    /// tasks are never cancelled.
    Cancel,
}

/// A snapshot of a pool's activity.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Metrics {
    /// Live worker threads.
    pub workers: usize,
    /// Workers waiting for work.
    pub idle: usize,
    /// Tasks in the queue. A task cancelled while queued may still count here until it is taken out
    /// of the queue (then dropped without running, and counted in `cancelled`).
    pub queued: usize,
    /// Tasks running now: started (never one still waiting to start) and not yet finished, their done
    /// callbacks included.
    pub running: usize,
    /// Tasks that ran to an end (returned, failed or panicked).
    pub completed: u64,
    /// Of those, tasks that returned `Err` (fallible tasks).
    pub failed: u64,
    /// Of those, tasks that panicked.
    pub panicked: u64,
    /// Tasks cancelled before they ran, seen by a worker or by `shutdown(Queued::Cancel)`.
    pub cancelled: u64,
    /// Worker processes started to replace one that ended (a death under `WorkerDeath::Respawn`, an
    /// interrupt, a time limit, `max_tasks_per_child`). Always 0 for the thread pool, whose threads
    /// survive their tasks' panics.
    pub workers_respawned: u64,
}

/// What an initializer may return: nothing, or a `Result` whose `Err` breaks the pool.
pub trait InitResult {
    /// The failure, as text, if there was one.
    fn into_failure(self) -> Option<String>;
}

impl InitResult for () {
    fn into_failure(self) -> Option<String> {
        None
    }
}

impl<E: fmt::Display> InitResult for Result<(), E> {
    fn into_failure(self) -> Option<String> {
        self.err().map(|e| e.to_string())
    }
}

/// What a submit does when a bounded queue is full.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum WhenFull {
    /// Give the task back (`try_submit`).
    Reject,
    /// Block this thread until there is room (`submit`), except on one of the pool's own threads
    /// (a worker, a driver running done callbacks), which would wait for room only such threads
    /// make: there, queue it anyway.
    Block,
    /// Give the task back so the caller can wait for room by waker (each attempt of
    /// `submit_async`), except on one of the pool's own threads, as for `Block`: there, queue it
    /// anyway.
    Await,
    /// Queue it anyway (`map`, which bounds its own in-flight work).
    Overfill,
}

/// Why a pool did not queue a task; a task refused for want of room comes back, so that an async
/// submit can retry with it.
pub(crate) enum Rejected<T> {
    Full(T),
    Closed(Error),
}

/// The sizes every builder takes, checked the same way for every pool.
pub(crate) struct Sizes {
    /// The most workers the pool runs.
    pub(crate) max_workers: usize,
    /// The most tasks waiting for a worker (`None`: unbounded).
    pub(crate) capacity: Option<usize>,
}

impl Sizes {
    /// Checks what a builder was given: zero workers or a zero-task queue is an
    /// [`Error::InvalidArgument`]; no `max_workers` means the pool's `default_workers`.
    pub(crate) fn check(
        max_workers: Option<usize>,
        default_workers: impl FnOnce() -> usize,
        capacity: Option<usize>,
    ) -> Result<Self, Error> {
        let max_workers = match max_workers {
            Some(0) => {
                return Err(Error::InvalidArgument(
                    "max_workers must be greater than 0".into(),
                ))
            }
            Some(n) => n,
            None => default_workers(),
        };
        if capacity == Some(0) {
            return Err(Error::InvalidArgument(
                "queue_capacity must be greater than 0".into(),
            ));
        }
        Ok(Sizes {
            max_workers,
            capacity,
        })
    }
}
