//! [`Backend`]: what a pool implements so that the shared lifecycle code can shut it down and wait
//! for its workers.

use std::sync::Arc;
use std::task::Waker;

use super::vocab::{Metrics, Queued};
use crate::sync::thread::JoinHandle;
use crate::sync::{Condvar, MutexGuard};

/// The state a pool shares with its workers, seen by the lifecycle code (shutdown in its three
/// forms, the last handle's drop).
///
/// A pool keeps its workers' exit bookkeeping ([`Exits`]) under its one lock, and its workers keep it
/// true as they leave: each leaving worker lowers `live` and notifies [`exited`](Self::exited); the
/// last one also wakes the `wakers` it takes out.
pub(crate) trait Backend: Send + Sync + 'static {
    /// What the pool's lock guards.
    type State;

    /// Locks the pool's state.
    fn lock(&self) -> MutexGuard<'_, Self::State>;

    /// The exit bookkeeping inside the locked state.
    fn exits(st: &mut Self::State) -> Exits<'_>;

    /// Where a blocking shutdown waits for workers to leave.
    fn exited(&self) -> &Condvar;

    /// What a waiting shutdown called from a done callback does (see [`InCallback`]).
    const SHUTDOWN_IN_CALLBACK: InCallback;

    /// Whether the calling thread is one of the pool's counted workers (a task or a done callback
    /// shutting down its own pool): such a thread cannot leave while it waits, so it waits only for
    /// the workers that are not themselves waiting.
    fn on_own_worker(self: &Arc<Self>, st: &Self::State) -> bool;

    /// Stops taking work (`Lifecycle::shut_down`): queued tasks run or are cancelled (and counted) as
    /// `queued` says, waiting submitters are refused, idle workers are told to exit. Never blocks,
    /// and cancels with no lock held (cancelling runs callbacks).
    fn close(&self, queued: Queued);

    /// A snapshot of the pool's counters.
    fn metrics(&self) -> Metrics;
}

/// What a waiting shutdown (`shutdown`, `shutdown_async`, `shutdown_after`'s end) does when called
/// from a done callback. A callback runs before its future's outcome is published, so whoever waits
/// for that outcome cannot finish while the callback waits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum InCallback {
    /// Waits as anywhere else: the pool's workers never wait for a future of this process (a process
    /// pool's workers are other processes).
    Wait,
    /// Closes the pool and returns: the pool's workers run the user's code, which may be waiting for
    /// the callback's future, and the wait could never end.
    Return,
}

/// A pool's workers, as shutdowns see them, borrowed from its locked state.
pub(crate) struct Exits<'a> {
    /// Workers still counted (threads, or a process pool's driver threads).
    pub(crate) live: usize,
    /// Of those, workers blocked in a waiting shutdown of their own pool.
    pub(crate) in_shutdown: &'a mut usize,
    /// The workers' threads, joined by a waiting shutdown from outside the pool.
    pub(crate) handles: &'a mut Vec<JoinHandle<()>>,
    /// Threads that left the count before the pool closed (a thread pool's workers retired after
    /// their keep-alive) and may still be exiting; joined as `handles` are. `None` for a pool whose
    /// threads only leave once it closes, and for a caller that is itself such a thread (another
    /// one may be joining it).
    pub(crate) retired: Option<&'a mut Vec<JoinHandle<()>>>,
    /// Async shutdowns waiting for the last worker to leave.
    pub(crate) wakers: &'a mut Vec<Waker>,
}
