//! The state a thread pool's handle and its workers share: the queue, the lifecycle, the counters.
//!
//! One mutex guards it all, and is never held while user code runs. Workers sleep on `work` and are
//! woken one at a time: a submit hands a wake-up *credit* (`notified`) to exactly one idle worker, as
//! tokio's blocking pool does, so a spurious wake-up never steals a task's wake-up.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::Waker;

use super::Config;
use crate::error::Error;
use crate::future::RunnableRef;
pub(crate) use crate::pool::WhenFull;
use crate::pool::{Backend, Exits, InCallback, Metrics, Queued, Room, Sweep};
use crate::sync::{lock, Condvar, Mutex, MutexGuard};

/// Where the pool is in its life; a broken pool keeps its initializer's error.
pub(crate) type Lifecycle = crate::pool::Lifecycle<String>;

/// Why a task was not queued; a task refused for want of room comes back.
pub(crate) type Rejected = crate::pool::Rejected<RunnableRef>;

pub(crate) struct PoolState {
    pub(crate) queue: VecDeque<RunnableRef>,
    pub(crate) lifecycle: Lifecycle,
    /// Live worker threads.
    pub(crate) threads: usize,
    /// Workers counted idle and not yet handed a wake-up credit.
    pub(crate) idle: usize,
    /// Wake-up credits handed out and not yet taken by a worker.
    pub(crate) notified: usize,
    /// Idle workers asleep on `work` that no `notify_one` was sent for yet (the other idle ones are
    /// spinning, about to look at `notified`, or already signalled and on their way to the lock).
    pub(crate) sleeping: usize,
    /// `notify_one`s sent to sleepers that have not yet woken and taken the lock (see
    /// [`PoolState::signal_sleeper`]).
    pub(crate) signalled: usize,
    /// Threads started so far, for naming (`prefix_0`, `prefix_1`, …).
    pub(crate) started: usize,
    /// Tasks being executed now.
    pub(crate) running: usize,
    pub(crate) completed: u64,
    pub(crate) failed: u64,
    pub(crate) panicked: u64,
    pub(crate) cancelled: u64,
    /// Threads blocked in a sync submit waiting for room.
    pub(crate) blocked_submitters: usize,
    /// Workers blocked in a waiting `shutdown` called from their own task.
    pub(crate) workers_in_shutdown: usize,
    /// The handles of the workers that have not retired: those counted in `threads`, and once the
    /// pool closes those that left the count and are exiting. Joined by a waiting shutdown; a thread
    /// whose handle is here is one of the pool's own workers.
    pub(crate) handles: Vec<crate::sync::thread::JoinHandle<()>>,
    /// The handles of workers that retired after their keep-alive, out of the count and exiting
    /// (their thread-locals' destructors are the user's code), joined by a waiting shutdown too.
    pub(crate) retired: Vec<crate::sync::thread::JoinHandle<()>>,
    /// Async shutdowns waiting for the last worker to exit.
    pub(crate) exit_wakers: Vec<Waker>,
    /// Under loom, whose timed waits never time out: set by a model once the keep-alive has run out
    /// (`ThreadPoolExecutor::loom_wake_idle_workers` with `LoomWake::KeepAliveRanOut`), after which
    /// every wait on `work` ends as timed out.
    #[cfg(loom)]
    pub(crate) keep_alive_passed: bool,
    /// When a full queue was last searched for cancelled tasks.
    pub(crate) sweep: Sweep,
}

impl PoolState {
    /// Whether a credit just handed out needs a `notify_one`: only while some sleeper was not
    /// signalled yet. A worker counted idle but awake looks at `notified` under the lock before it
    /// sleeps, and one already signalled is on its way: a second `notify_one` for it would be a
    /// futex system call that wakes nobody, which under CPU hogs is a large share of the calls.
    pub(crate) fn signal_sleeper(&mut self) -> bool {
        if self.sleeping == 0 {
            return false;
        }
        self.sleeping -= 1;
        self.signalled += 1;
        #[cfg(loom)]
        self.check_idle_counts();
        true
    }

    /// A sleeper is back with the lock. It leaves `signalled` if a signal is still counted there,
    /// else `sleeping` (it woke on its own: a time-out, a `notify_all`, a spurious wake-up). Which
    /// sleeper a signal woke does not matter: `sleeping + signalled` stays the number of workers
    /// inside the wait, so `sleeping == 0` means a signal is on its way to every one of them, and
    /// each will look at `notified` once it has the lock.
    pub(crate) fn woke(&mut self) {
        if self.signalled > 0 {
            self.signalled -= 1;
        } else {
            self.sleeping -= 1;
        }
        #[cfg(loom)]
        self.check_idle_counts();
    }

    /// Whether a wait on `work` that just ended ran out the keep-alive, besides its own time-out:
    /// never in a real build; under loom, once a model says so (see `keep_alive_passed`).
    #[cfg(not(loom))]
    #[inline]
    pub(crate) fn keep_alive_passed(&self) -> bool {
        false
    }

    #[cfg(loom)]
    pub(crate) fn keep_alive_passed(&self) -> bool {
        self.keep_alive_passed
    }

    /// Under loom: panics unless the idle counts agree. Every worker inside the wait on `work`
    /// (`sleeping + signalled`) is idle and has taken no credit yet, so it is counted in `idle` or
    /// has a credit waiting in `notified`; and those are live threads. (The models run in release,
    /// where a count taken below zero would wrap around silently rather than panic.)
    #[cfg(loom)]
    pub(crate) fn check_idle_counts(&self) {
        let inside = self.sleeping.checked_add(self.signalled);
        let idle = self.idle.checked_add(self.notified);
        assert!(
            matches!((inside, idle), (Some(i), Some(n)) if i <= n && n <= self.threads),
            "idle counts disagree: sleeping {} + signalled {}, idle {} + notified {}, threads {}",
            self.sleeping,
            self.signalled,
            self.idle,
            self.notified,
            self.threads
        );
    }
}

pub(crate) struct Shared {
    pub(crate) state: Mutex<PoolState>,
    /// A lock-free mirror of `PoolState::notified` (plus 1 when the pool closes), read by workers that
    /// spin briefly before sleeping, so a task submitted right after another finishes is picked up
    /// without a futex sleep and wake-up on the worker's side.
    pub(crate) wake_hint: AtomicUsize,
    /// Idle workers sleep here.
    pub(crate) work: Condvar,
    /// Submitters wait here for room in a bounded queue.
    pub(crate) room: Room,
    /// Sync shutdowns wait here for the last worker to exit.
    pub(crate) exited: Condvar,
    pub(crate) config: Config,
}

impl Shared {
    pub(crate) fn new(config: Config) -> Arc<Self> {
        Arc::new(Shared {
            state: Mutex::new(PoolState {
                queue: VecDeque::new(),
                lifecycle: Lifecycle::Open,
                threads: 0,
                idle: 0,
                notified: 0,
                sleeping: 0,
                signalled: 0,
                started: 0,
                running: 0,
                completed: 0,
                failed: 0,
                panicked: 0,
                cancelled: 0,
                blocked_submitters: 0,
                workers_in_shutdown: 0,
                handles: Vec::new(),
                retired: Vec::new(),
                exit_wakers: Vec::new(),
                #[cfg(loom)]
                keep_alive_passed: false,
                sweep: Sweep::default(),
            }),
            wake_hint: AtomicUsize::new(0),
            work: Condvar::new(),
            room: Room::new(config.sizes.capacity),
            exited: Condvar::new(),
            config,
        })
    }

    pub(crate) fn lock(&self) -> MutexGuard<'_, PoolState> {
        lock(&self.state)
    }

    fn closed_error(lifecycle: &Lifecycle) -> Option<Error> {
        lifecycle.refusal(|why| Error::BrokenThreadPool(why.clone()))
    }

    /// Queues a task and makes sure a worker will run it: wakes an idle one, or starts a thread if none
    /// is idle and the pool is below `max_workers`.
    pub(crate) fn enqueue(
        self: &Arc<Self>,
        task: RunnableRef,
        when_full: WhenFull,
    ) -> Result<(), Rejected> {
        let mut st = self.lock();
        loop {
            if let Some(e) = Self::closed_error(&st.lifecycle) {
                return Err(Rejected::Closed(e));
            }
            if !self.room.is_full(st.queue.len()) || when_full == WhenFull::Overfill {
                break;
            }
            // Tasks cancelled while queued wait for no worker: they leave the queue now rather than
            // when a worker reaches them. Their closures went with the cancel: no user code runs here.
            let PoolState { sweep, queue, .. } = &mut *st;
            let gone = sweep.take_cancelled(queue, |t| t.cancelled());
            st.cancelled += gone as u64;
            if self.room.swept(gone, st.queue.len(), st.blocked_submitters) {
                break;
            }
            if when_full == WhenFull::Reject {
                return Err(Rejected::Full(task));
            }
            // A task (or a done callback) submitting to its own pool would wait for room that only
            // the workers make, this one among them: with every worker doing so, none ever would.
            // It queues past the capacity instead, whether it would wait blocked or by waker.
            if self.on_own_worker(&st) {
                break;
            }
            if when_full == WhenFull::Await {
                return Err(Rejected::Full(task));
            }
            st = self.room.wait(st, |st| &mut st.blocked_submitters);
        }
        st.queue.push_back(task);
        // Start a thread when none is idle. Also when the only idle one may be this very thread: a
        // worker publishing its task's outcome, counted idle already but taking no task until the
        // wakers it runs return, one of which submits now and may wait for this task.
        let below_max = st.threads < self.config.sizes.max_workers;
        let none_idle = match st.idle {
            0 => true,
            1 => super::worker::publishing_here(self),
            _ => false,
        };
        if below_max && none_idle {
            match super::worker::spawn(self, &mut st) {
                Ok(()) => return Ok(()),
                Err(e) if st.threads == 0 => {
                    // No worker will ever take it: fail it rather than strand it.
                    let task = st.queue.pop_back().expect("just pushed");
                    drop(st);
                    task.fail(Error::BrokenThreadPool(format!(
                        "could not start a worker thread: {e}"
                    )));
                    return Ok(());
                }
                // A live worker gets to it: an idle one is handed a credit below, a busy one looks
                // at the queue when its task ends.
                Err(_) => {}
            }
        }
        if st.idle > 0 {
            st.idle -= 1;
            st.notified += 1;
            self.wake_hint.fetch_add(1, Ordering::Release);
            // An idle worker that is not asleep (spinning, or on its way to sleep) looks at
            // `notified` under this lock before it sleeps, so only a sleeper needs the futex wake-up.
            let sleeper = st.signal_sleeper();
            drop(st);
            if sleeper {
                self.work.notify_one();
            }
        }
        Ok(())
    }

    /// A task left the queue: let one waiting submitter in.
    pub(crate) fn made_room(&self, st: &PoolState) {
        self.room.made(st.blocked_submitters);
    }

    /// Breaks the pool after an initializer failure and takes the queued tasks out to be failed.
    pub(crate) fn break_pool(&self, why: String) -> Vec<RunnableRef> {
        let mut st = self.lock();
        if st.lifecycle.is_open() {
            self.wake_hint.fetch_add(1, Ordering::Release);
        }
        st.lifecycle.break_with(|| why);
        let drained = st.queue.drain(..).collect();
        drop(st);
        self.work.notify_all();
        self.room.closed();
        drained
    }
}

impl Backend for Shared {
    type State = PoolState;

    const SHUTDOWN_IN_CALLBACK: InCallback = InCallback::Return;

    fn lock(&self) -> MutexGuard<'_, PoolState> {
        Shared::lock(self)
    }

    fn exits(st: &mut PoolState) -> Exits<'_> {
        // A retired thread is joined by whoever joins it, and joins no other retired one (see
        // `worker::retired_from`).
        let retired_here = super::worker::retired_from(st);
        Exits {
            live: st.threads,
            in_shutdown: &mut st.workers_in_shutdown,
            handles: &mut st.handles,
            retired: if retired_here {
                None
            } else {
                Some(&mut st.retired)
            },
            wakers: &mut st.exit_wakers,
        }
    }

    fn exited(&self) -> &Condvar {
        &self.exited
    }

    fn on_own_worker(self: &Arc<Self>, st: &PoolState) -> bool {
        let me = crate::sync::thread::current().id();
        st.handles.iter().any(|h| h.thread().id() == me)
    }

    /// With `Queued::Cancel`, every queued task is taken out and cancelled once the lock is
    /// released.
    fn close(&self, queued: Queued) {
        let mut st = self.lock();
        if st.lifecycle.shut_down() {
            self.wake_hint.fetch_add(1, Ordering::Release);
        }
        let drained: Vec<_> = match queued {
            Queued::Cancel => st.queue.drain(..).collect(),
            Queued::Run => Vec::new(),
        };
        drop(st);
        // Idle workers wake, find the queue empty (or not), and exit when it is.
        self.work.notify_all();
        // Blocked submitters wake and see the pool closed.
        self.room.closed();
        let mut cancelled = 0;
        for task in drained {
            // Cancelling drops the task's closure, after the cancel has won: a panic there is
            // contained (so the rest are cancelled too) and the task counts as cancelled.
            if crate::panic::contain(|| task.cancel()).unwrap_or(true) {
                cancelled += 1;
            }
        }
        if cancelled > 0 {
            self.lock().cancelled += cancelled;
        }
    }

    fn metrics(&self) -> Metrics {
        let st = self.lock();
        Metrics {
            workers: st.threads,
            idle: st.idle,
            queued: st.queue.len(),
            running: st.running,
            completed: st.completed,
            failed: st.failed,
            panicked: st.panicked,
            cancelled: st.cancelled,
            workers_respawned: 0,
        }
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use crate::pool::Sizes;

    fn shared() -> Arc<Shared> {
        Shared::new(Config {
            sizes: Sizes {
                max_workers: 2,
                capacity: None,
            },
            name_prefix: "test".into(),
            initializer: None,
            stack_size: None,
            keep_alive: std::time::Duration::from_secs(1),
        })
    }

    /// Two sleepers: two credits signal both, and a third finds both signalled already (a third
    /// `notify_one` would wake nobody). However the sleepers come back, the counts end at zero.
    #[test]
    fn a_sleeper_is_signalled_once() {
        let shared = shared();
        let mut st = shared.lock();
        st.sleeping = 2;
        assert!(st.signal_sleeper());
        assert!(st.signal_sleeper());
        assert!(
            !st.signal_sleeper(),
            "both sleepers have a signal on its way"
        );
        st.woke();
        st.woke();
        assert_eq!((st.sleeping, st.signalled), (0, 0));
    }

    /// A signal and a time-out at once: the sleeper that times out takes the lock first and counts
    /// the signal as its own. The one still inside the wait may be the one the signal reached, or
    /// not: it stays a sleeper to signal, so the next credit wakes it (at worst a `notify_one` too
    /// many), and no credit is left with a sleeper nobody signals.
    #[test]
    fn a_time_out_racing_a_signal_leaves_the_other_sleeper_signallable() {
        let shared = shared();
        let mut st = shared.lock();
        st.sleeping = 2;
        assert!(st.signal_sleeper());
        st.woke();
        assert!(st.signal_sleeper());
        st.woke();
        assert_eq!((st.sleeping, st.signalled), (0, 0));
    }
}
