//! Tasks cancelled while queued, taken out of a full bounded queue: a caller shedding load cancels
//! queued work to make room, and a task that will never run waits for no worker, so it gives its
//! place back at once rather than when a worker reaches it.
//!
//! A look through the queue costs a load per queued task, under the pool's lock. A process-wide count
//! of tasks discarded unrun gates it: a pool looks only when the count moved since its last look, so
//! a stream of submits refused by a full queue of live tasks costs one load each. The count is a hint
//! shared by every pool (a cancel in one makes the others look once), which keeps a cancel's cost at
//! one atomic add.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};

/// Tasks, in every pool, whose work was discarded unrun (cancelled, or dropped while pending). A std
/// atomic even under loom: a hint whose ordering the models need not explore.
static DISCARDED: AtomicU64 = AtomicU64::new(0);

/// Counts a task whose work was discarded unrun. Called after its future left PENDING, so a look that
/// reads the count then finds the task cancelled (the Release pairs with [`Sweep::take_cancelled`]'s
/// Acquire; on x86 both orderings are the same `lock xadd`).
pub(crate) fn count_discarded() {
    DISCARDED.fetch_add(1, Ordering::Release);
}

/// One pool's memory of its last look: the count of discarded tasks it had seen. Kept in the pool's
/// locked state.
#[derive(Default)]
pub(crate) struct Sweep {
    seen: u64,
}

impl Sweep {
    /// Takes out of `queue` the tasks `cancelled` says will never run, if any task anywhere was
    /// discarded since the last look; returns how many. The caller counts them as cancelled, as a
    /// worker skipping them would have.
    pub(crate) fn take_cancelled<T>(
        &mut self,
        queue: &mut VecDeque<T>,
        mut cancelled: impl FnMut(&T) -> bool,
    ) -> usize {
        // Read before looking: a task discarded after this is seen by the next look.
        let discarded = DISCARDED.load(Ordering::Acquire);
        if discarded == self.seen {
            return 0;
        }
        self.seen = discarded;
        let before = queue.len();
        queue.retain(|t| !cancelled(t));
        before - queue.len()
    }
}
