//! Room in a bounded queue: the submitters waiting for it, blocked (a condvar) or async (a
//! `Notify`), and the waking of them as workers take tasks or the pool stops taking work.

use tokio::sync::Notify;

use super::vocab::Rejected;
use crate::error::Error;
use crate::sync::{Condvar, MutexGuard};

/// The waiting side of a pool's `queue_capacity`. The queue and the count of blocked submitters
/// stay in the pool's locked state; this holds only what the waiters sleep on.
pub(crate) struct Room {
    /// The most tasks waiting for a worker (`None`: unbounded, and nobody ever waits).
    capacity: Option<usize>,
    /// Sync submitters wait here.
    blocked: Condvar,
    /// Async submitters wait here.
    waiting: Notify,
}

impl Room {
    pub(crate) fn new(capacity: Option<usize>) -> Self {
        Room {
            capacity,
            blocked: Condvar::new(),
            waiting: Notify::new(),
        }
    }

    /// Whether a queue of `queued` tasks has no room for one more.
    pub(crate) fn is_full(&self, queued: usize) -> bool {
        matches!(self.capacity, Some(cap) if queued >= cap)
    }

    /// Blocks a sync submitter, counted in `*blocked` meanwhile, until a task leaves the queue or the
    /// pool closes; the caller looks again.
    pub(crate) fn wait<'a, S>(
        &self,
        mut st: MutexGuard<'a, S>,
        blocked: fn(&mut S) -> &mut usize,
    ) -> MutexGuard<'a, S> {
        *blocked(&mut st) += 1;
        st = self.blocked.wait(st).unwrap_or_else(|e| e.into_inner());
        *blocked(&mut st) -= 1;
        st
    }

    /// A task left the queue: lets one waiting submitter in (`blocked` sync ones are waiting).
    pub(crate) fn made(&self, blocked: usize) {
        if self.capacity.is_some() {
            if blocked > 0 {
                self.blocked.notify_one();
            }
            self.waiting.notify_one();
        }
    }

    /// A submit's look through a full queue (see [`Sweep`](super::Sweep)) took `gone` cancelled tasks
    /// out of it, leaving `queued`: whether that made room, for this submit's task. Waiting
    /// submitters (`blocked` sync ones) are let in for the other places made.
    pub(crate) fn swept(&self, gone: usize, queued: usize, blocked: usize) -> bool {
        if gone == 0 || self.is_full(queued) {
            return false;
        }
        for _ in 1..gone {
            self.made(blocked);
        }
        true
    }

    /// The pool stopped taking work: every waiting submitter wakes and sees it.
    pub(crate) fn closed(&self) {
        self.blocked.notify_all();
        self.waiting.notify_waiters();
    }

    /// An async submit: offers `task` to `enqueue` (which must refuse a full queue rather than
    /// block: `WhenFull::Await`) until it is taken, waiting for room in between without blocking
    /// the thread. Dropping the future drops the task.
    pub(crate) async fn enqueue<T>(
        &self,
        mut task: T,
        mut enqueue: impl FnMut(T) -> Result<(), Rejected<T>>,
    ) -> Result<(), Error> {
        loop {
            let room = self.waiting.notified();
            let mut room = std::pin::pin!(room);
            // Register before trying, so room made between the try and the await is not missed.
            room.as_mut().enable();
            match enqueue(task) {
                Ok(()) => return Ok(()),
                Err(Rejected::Full(t)) => task = t,
                Err(Rejected::Closed(e)) => return Err(e),
            }
            room.await;
        }
    }
}
