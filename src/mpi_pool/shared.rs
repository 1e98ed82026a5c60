//! What the pool's handles and its MPI owner thread share: the queue of tasks no rank has taken,
//! where the pool is in its life, and the counters.

use std::collections::VecDeque;
use std::sync::{Arc, OnceLock};
use std::task::Waker;
use std::time::Duration;

use crate::error::{BrokenCause, BrokenProcessPool, BrokenSeenBy, Error};
use crate::pool::{
    self, Backend, Exits, InCallback, Metrics, Queued, Rejected, Room, Sweep, WhenFull,
};
use crate::process_pool::task::ProcTask;
use crate::process_pool::Counters;
use crate::sync::thread::JoinHandle;
use crate::sync::{lock, Condvar, Mutex, MutexGuard};

/// Where the pool is in its life; a broken MPI pool keeps the process pool's error (its cause names
/// the lost rank).
pub(crate) type Lifecycle = pool::Lifecycle<BrokenProcessPool>;

pub(crate) struct State {
    pub(crate) lifecycle: Lifecycle,
    pub(crate) queue: VecDeque<Arc<dyn ProcTask>>,
    /// Set by anything the owner must look at now (a submit, a shutdown); cleared by the owner.
    pub(crate) kicked: bool,
    /// Ranks that shook hands, and tasks sent to them and not yet answered (kept by the owner for
    /// `metrics`).
    pub(crate) ranks: usize,
    pub(crate) busy: usize,
    /// Threads blocked in a sync submit waiting for room in a bounded queue.
    blocked_submitters: usize,
    /// When a full queue was last searched for cancelled tasks.
    sweep: Sweep,
    /// The owner thread, as shutdowns see it: 1 while it runs (it is the pool's one worker here).
    live: usize,
    in_shutdown: usize,
    handles: Vec<JoinHandle<()>>,
    exit_wakers: Vec<Waker>,
}

pub(crate) struct Shared {
    state: Mutex<State>,
    /// The owner waits here between polls; submits and shutdowns wake it.
    kick: Condvar,
    /// Blocking `shutdown` waits here for the owner to exit.
    exited: Condvar,
    /// Submitters waiting for room in a bounded queue (`queue_capacity`).
    room: Room,
    pub(crate) counters: Counters,
    /// How many worker ranks the pool has, once started.
    pub(crate) workers: OnceLock<usize>,
    /// The owner thread's id, once started: done callbacks run there.
    pub(crate) owner: OnceLock<std::thread::ThreadId>,
}

impl Backend for Shared {
    type State = State;

    const SHUTDOWN_IN_CALLBACK: InCallback = InCallback::Wait;

    fn lock(&self) -> MutexGuard<'_, State> {
        lock(&self.state)
    }

    fn exits(st: &mut State) -> Exits<'_> {
        Exits {
            live: st.live,
            in_shutdown: &mut st.in_shutdown,
            handles: &mut st.handles,
            retired: None,
            wakers: &mut st.exit_wakers,
        }
    }

    fn exited(&self) -> &Condvar {
        &self.exited
    }

    /// Done callbacks run on the owner thread, which completes the futures.
    fn on_own_worker(self: &Arc<Self>, _: &State) -> bool {
        self.owner.get() == Some(&std::thread::current().id())
    }

    fn close(&self, queued: Queued) {
        self.close_queue(queued);
    }

    fn metrics(&self) -> Metrics {
        use std::sync::atomic::Ordering::Relaxed;
        let st = lock(&self.state);
        let c = &self.counters;
        Metrics {
            workers: st.ranks,
            idle: st.ranks.saturating_sub(st.busy),
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

impl Shared {
    pub(crate) fn new(capacity: Option<usize>) -> Arc<Self> {
        Arc::new(Shared {
            state: Mutex::new(State {
                lifecycle: Lifecycle::Open,
                queue: VecDeque::new(),
                kicked: false,
                ranks: 0,
                busy: 0,
                blocked_submitters: 0,
                sweep: Sweep::default(),
                live: 1,
                in_shutdown: 0,
                handles: Vec::new(),
                exit_wakers: Vec::new(),
            }),
            kick: Condvar::new(),
            exited: Condvar::new(),
            room: Room::new(capacity),
            counters: Counters::default(),
            workers: OnceLock::new(),
            owner: OnceLock::new(),
        })
    }

    /// Why a submit is refused now, if it is.
    pub(crate) fn refusal(lifecycle: &Lifecycle) -> Option<Error> {
        lifecycle.refusal(|b| Error::BrokenProcessPool(b.seen_by(BrokenSeenBy::Submit)))
    }

    /// Keeps the owner thread's handle, for a waiting shutdown to join.
    pub(crate) fn owner_started(&self, handle: JoinHandle<()>) {
        lock(&self.state).handles.push(handle);
    }

    /// Queues a task for the owner; with a bounded queue that is full, `when_full` says what to do.
    /// A refused task is handed back, unfailed.
    pub(crate) fn enqueue(
        &self,
        task: Arc<dyn ProcTask>,
        when_full: WhenFull,
    ) -> Result<(), Rejected<Arc<dyn ProcTask>>> {
        let mut st = self.lock();
        loop {
            if let Some(e) = Self::refusal(&st.lifecycle) {
                return Err(Rejected::Closed(e));
            }
            if !self.room.is_full(st.queue.len()) || when_full == WhenFull::Overfill {
                break;
            }
            // Tasks cancelled while queued wait for no rank: they leave the queue now rather than
            // when the owner reaches them.
            let State { sweep, queue, .. } = &mut *st;
            let gone = sweep.take_cancelled(queue, |t| t.cancelled());
            Counters::add(&self.counters.cancelled, gone as u64);
            if self.room.swept(gone, st.queue.len(), st.blocked_submitters) {
                break;
            }
            if when_full == WhenFull::Reject {
                return Err(Rejected::Full(task));
            }
            // The owner thread makes the room (and runs the done callbacks, whose submits come
            // from it): it overfills rather than wait for itself, blocked or by waker.
            if self.owner.get() == Some(&std::thread::current().id()) {
                break;
            }
            if when_full == WhenFull::Await {
                return Err(Rejected::Full(task));
            }
            st = self.room.wait(st, |st| &mut st.blocked_submitters);
        }
        st.queue.push_back(task);
        st.kicked = true;
        drop(st);
        self.kick.notify_one();
        Ok(())
    }

    /// No new work; the queued tasks run or are cancelled, as `queued` says. Returns how many were
    /// cancelled.
    fn close_queue(&self, queued: Queued) -> u64 {
        let mut st = self.lock();
        st.lifecycle.shut_down();
        let dropped: Vec<_> = match queued {
            Queued::Cancel => st.queue.drain(..).collect(),
            Queued::Run => Vec::new(),
        };
        st.kicked = true;
        drop(st);
        self.kick.notify_one();
        self.room.closed();
        // Completing a future runs its callbacks: never under the lock.
        let cancelled = dropped.iter().filter(|t| t.cancel()).count() as u64;
        Counters::add(&self.counters.cancelled, cancelled);
        cancelled
    }

    /// Breaks the pool: later submits are refused and every queued task fails (the owner fails the
    /// running ones).
    pub(crate) fn break_pool(&self, cause: BrokenCause) -> BrokenProcessPool {
        let mut st = self.lock();
        let broken = st
            .lifecycle
            .break_with(|| BrokenProcessPool::new(cause, BrokenSeenBy::Future))
            .clone();
        let queued: Vec<_> = st.queue.drain(..).collect();
        drop(st);
        self.room.closed();
        for t in queued {
            t.fail(Error::BrokenProcessPool(broken.clone()));
        }
        broken
    }

    /// The waiting room of a bounded queue, for async submits.
    pub(crate) fn room(&self) -> &Room {
        &self.room
    }

    /// The owner took `taken` tasks out of the queue: as many waiting submitters may come in.
    pub(crate) fn made_room(&self, st: &State, taken: usize) {
        for _ in 0..taken {
            self.room.made(st.blocked_submitters);
        }
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

    /// The owner is done: wakes every `shutdown` waiting for it. Called once.
    pub(crate) fn owner_exited(&self) {
        let mut st = self.lock();
        st.live = 0;
        st.ranks = 0;
        st.busy = 0;
        let wakers = std::mem::take(&mut st.exit_wakers);
        drop(st);
        self.exited.notify_all();
        for w in wakers {
            crate::panic::wake(w);
        }
    }
}
