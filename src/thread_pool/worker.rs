//! The worker thread: run queued tasks (BUSY), sleep until handed a wake-up credit (IDLE), exit once the
//! pool is closed and the queue is empty.

use std::cell::Cell;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::Ordering;
use std::sync::Arc;

use super::shared::{Lifecycle, PoolState, Shared};
use super::task::Ran;
use crate::error::{panic_message, Error};
use crate::future::RunnableRef;
use crate::spin::{self, Adaptive, Probe};
use crate::sync::{thread, MutexGuard};

/// Starts one more worker. Called with the pool locked, so the thread count cannot overshoot.
pub(crate) fn spawn(shared: &Arc<Shared>, st: &mut PoolState) -> std::io::Result<()> {
    let index = st.started;
    let mut builder =
        thread::Builder::new().name(format!("{}_{}", shared.config.name_prefix, index));
    if let Some(size) = shared.config.stack_size {
        builder = builder.stack_size(size);
    }
    let worker = Worker {
        shared: shared.clone(),
    };
    let handle = builder.spawn(move || worker.run())?;
    st.handles.push(handle);
    st.started += 1;
    st.threads += 1;
    Ok(())
}

struct Worker {
    shared: Arc<Shared>,
}

/// What a worker carries between its idle spells.
struct Idle<'a> {
    /// Whether spinning for the next task has been paying off on this thread.
    spin: Adaptive,
    /// How the thread leaves: set to `Retired` when it retires, having left the pool's count itself.
    leaving: &'a Cell<Leaving>,
}

/// How a worker leaves the pool.
#[derive(Default)]
enum Leaving {
    /// Still counted in `threads`: its exit takes it out and wakes the shutdowns waiting for it.
    #[default]
    Counted,
    /// Retired after its keep-alive, out of the count already. Before it exits it joins the retired
    /// threads it took over from the pool's list (see [`retire_handle`]).
    Retired(Vec<thread::JoinHandle<()>>),
}

/// Moves the retiring thread's handle from the workers' list to the retired one: it is no longer
/// one of the pool's workers (a shutdown or a submit from its thread-locals' destructors is an
/// outsider's), yet a waiting shutdown still joins it.
///
/// Retired threads whose main function has returned (`is_finished`) are taken out of the list, so
/// threads that come and go leave nothing behind, and returned for this thread to join before it
/// exits. They may still be running their thread-locals' destructors (`is_finished` turns true
/// before those run): dropping their handles would let a waiting shutdown return before they exit,
/// whereas a shutdown that joins this thread now waits for them too.
fn retire_handle(st: &mut PoolState) -> Vec<thread::JoinHandle<()>> {
    let me = thread::current().id();
    if let Some(at) = st.handles.iter().position(|h| h.thread().id() == me) {
        let handle = st.handles.swap_remove(at);
        st.retired.push(handle);
    }
    retired_here::set(st);
    take_finished(&mut st.retired)
}

#[cfg(not(loom))]
fn take_finished(retired: &mut Vec<thread::JoinHandle<()>>) -> Vec<thread::JoinHandle<()>> {
    let (finished, exiting) = std::mem::take(retired)
        .into_iter()
        .partition(|h| h.is_finished());
    *retired = exiting;
    finished
}

// loom's handles cannot tell; its models retire a few threads at most.
#[cfg(loom)]
fn take_finished(_: &mut Vec<thread::JoinHandle<()>>) -> Vec<thread::JoinHandle<()>> {
    Vec::new()
}

/// Marks this thread as retired from the pool whose state is at that address, for the rest of its
/// life. A waiting shutdown called from its thread-locals' destructors joins the workers but no
/// retired thread: a retired thread may be joining this one (it took this one's handle over, see
/// [`retire_handle`]), and joining it back would leave both waiting for ever.
#[cfg(not(loom))]
mod retired_here {
    use std::cell::Cell;

    use super::PoolState;

    thread_local! {
        static POOL: Cell<usize> = const { Cell::new(0) };
    }

    pub(super) fn set(st: &PoolState) {
        let at = st as *const PoolState as usize;
        let _ = POOL.try_with(|p| p.set(at));
    }

    pub(crate) fn is(st: &PoolState) -> bool {
        POOL.try_with(|p| p.get() == st as *const PoolState as usize)
            .unwrap_or(false)
    }
}

// loom runs every thread of a model on one OS thread, whose locals they would share; no retired
// thread takes another's handle over there, so none can be joining this one.
#[cfg(loom)]
mod retired_here {
    use super::PoolState;

    pub(super) fn set(_: &PoolState) {}

    pub(crate) fn is(_: &PoolState) -> bool {
        false
    }
}

/// Whether this thread retired from the pool whose state `st` is (see [`retired_here`]).
pub(crate) fn retired_from(st: &PoolState) -> bool {
    retired_here::is(st)
}

/// Decrements the thread count however the worker ends (unless it retired: it left the count when it
/// decided to, in that locked section, and joins the retired threads it took over instead), and wakes
/// shutdowns waiting for it: a blocking shutdown on every exit (one called from a task waits for all
/// workers but its own, not for zero), async shutdowns for the last one.
struct ExitGuard<'a> {
    shared: &'a Shared,
    leaving: &'a Cell<Leaving>,
}

impl Drop for ExitGuard<'_> {
    fn drop(&mut self) {
        if let Leaving::Retired(finished) = self.leaving.take() {
            for handle in finished {
                let _ = handle.join();
            }
            return;
        }
        let mut st = self.shared.lock();
        st.threads -= 1;
        let wakers = if st.threads == 0 {
            std::mem::take(&mut st.exit_wakers)
        } else {
            Vec::new()
        };
        drop(st);
        self.shared.exited.notify_all();
        for w in wakers {
            crate::panic::wake(w);
        }
    }
}

/// Marks this thread, while it publishes a task's outcome having already counted itself idle, as a
/// worker of the pool at that address. Publishing wakes the task's waiters, whose wakers are the
/// caller's code: an inline executor's waker resumes the awaiting code right there, which may submit
/// to this pool and wait. So may the `Drop` of a detached task's value, dropped next. That submit
/// must not hand its task to this thread's idle count, since the thread takes no task before they
/// return.
#[cfg(not(loom))]
mod publishing {
    use std::cell::Cell;

    use super::Shared;

    thread_local! {
        static POOL: Cell<usize> = const { Cell::new(0) };
    }

    pub(super) fn set(shared: Option<&Shared>) {
        let at = shared.map_or(0, |s| s as *const Shared as usize);
        let _ = POOL.try_with(|p| p.set(at));
    }

    pub(crate) fn is(shared: &Shared) -> bool {
        POOL.try_with(|p| p.get() == shared as *const Shared as usize)
            .unwrap_or(false)
    }
}

// loom runs every thread of a model on one OS thread, whose locals they would share; no model has a
// waker that submits.
#[cfg(loom)]
mod publishing {
    use super::Shared;

    pub(super) fn set(_: Option<&Shared>) {}

    pub(crate) fn is(_: &Shared) -> bool {
        false
    }
}

/// Whether this thread is a worker of `shared` publishing a task's outcome, counted idle meanwhile
/// (see [`publishing`]).
pub(crate) fn publishing_here(shared: &Shared) -> bool {
    publishing::is(shared)
}

/// What a worker does once its task's outcome is published, decided while booking the task.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Then {
    /// Look at the queue (work was queued when the task was booked, or the pool is closing).
    TakeNext,
    /// Already counted idle: wait for a wake-up credit.
    Sleep,
}

impl Worker {
    #[allow(unsafe_code)] // running the tasks it claimed: see the SAFETY comment
    fn run(self) {
        let shared = &*self.shared;
        let leaving = Cell::new(Leaving::Counted);
        let _exit = ExitGuard {
            shared,
            leaving: &leaving,
        };
        let idle = &mut Idle {
            spin: Adaptive::new(),
            leaving: &leaving,
        };
        if !self.initialize() {
            return;
        }
        let Some(mut task) = Self::next_task(shared, idle, shared.lock()) else {
            return;
        };
        loop {
            // BUSY: run the task; its future's callbacks run here too, then the hook below, then the
            // outcome is published. No task is taken before that: a callback may wait on the task
            // queued right behind its own (another worker must be able to take it), and a shutdown
            // that cancels queued work from a callback must find it still queued.
            let mut then = Then::TakeNext;
            // SAFETY: `next_task` hands out only tasks whose claim it won, and each is run once.
            unsafe {
                task.run(&mut |ran| {
                    let mut st = shared.lock();
                    st.running -= 1;
                    match ran {
                        Ran::Returned => st.completed += 1,
                        Ran::Failed => {
                            st.completed += 1;
                            st.failed += 1;
                        }
                        Ran::Panicked => {
                            st.completed += 1;
                            st.panicked += 1;
                        }
                    }
                    // The callbacks have returned and the result is not yet visible. With nothing queued,
                    // count this thread idle now, so that a caller who sees the result and submits again
                    // hands this thread a credit instead of starting another. Idle means "will take the
                    // next task", which holds: all that is left of this one is publishing it.
                    if st.queue.is_empty() && st.lifecycle == Lifecycle::Open {
                        st.idle += 1;
                        then = Then::Sleep;
                        publishing::set(Some(shared));
                    }
                })
            };
            // The closure, its captures and the task's share of the future go now, not at the next task.
            // The last share drops a detached task's value here, whose `Drop` is the user's code: like
            // a waker, it runs while this thread is counted idle.
            crate::panic::contain(|| drop(task));
            publishing::set(None);
            let mut st = shared.lock();
            if then == Then::Sleep {
                st = match Self::sleep(shared, idle, st) {
                    Some(st) => st,
                    None => return,
                };
            }
            task = match Self::next_task(shared, idle, st) {
                Some(t) => t,
                None => return,
            };
        }
    }

    /// Takes the next queued task and claims it (PENDING → RUNNING) to run it now, sleeping as an idle
    /// worker while there is none. `None` once the pool is closed and the queue drained: the worker
    /// exits. This is the only place a task leaves the queue for a worker, and it starts in the same
    /// locked section: a cancelling shutdown finds every task either queued or started, and `running`
    /// counts only started tasks.
    fn next_task<'a>(
        shared: &'a Shared,
        idle: &mut Idle<'_>,
        mut st: MutexGuard<'a, PoolState>,
    ) -> Option<RunnableRef> {
        loop {
            while let Some(t) = st.queue.pop_front() {
                shared.made_room(&st);
                if t.claim() {
                    st.running += 1;
                    return Some(t);
                }
                // Cancelled while queued: its closure is already gone; only the metric is left.
                st.cancelled += 1;
            }
            // IDLE: the queue is empty.
            if st.lifecycle != Lifecycle::Open {
                return None;
            }
            st.idle += 1;
            st = Self::sleep(shared, idle, st)?;
        }
    }

    /// Sleeps as an idle worker (already counted in `idle`) until handed a credit or the pool closes.
    /// Returns the lock to go BUSY, or `None` to exit: the pool closed with nothing left to run, or
    /// the thread stayed idle for the pool's keep-alive and retired.
    fn sleep<'a>(
        shared: &'a Shared,
        idle: &mut Idle<'_>,
        mut st: MutexGuard<'a, PoolState>,
    ) -> Option<MutexGuard<'a, PoolState>> {
        let keep_alive = shared.config.keep_alive;
        let mut spun = false;
        loop {
            if st.notified > 0 {
                st.notified -= 1;
                shared.wake_hint.fetch_sub(1, Ordering::Release);
                return Some(st);
            }
            if st.lifecycle != Lifecycle::Open {
                st.idle -= 1;
                // Drain whatever is left before exiting (shutdown without cancel runs queued work).
                return if st.queue.is_empty() { None } else { Some(st) };
            }
            // A caller awaiting one task and submitting the next hands it over within a
            // microsecond or two, where a futex sleep and wake-up costs far more: spin briefly for
            // the credit. Whether to spin is `spin_until`'s decision alone (the process-wide
            // policy, see `crate::spin`); when it declines, it looks at the hint once. The lock is
            // let go around it either way, so the worker has one path to its sleep and a submit
            // arriving meanwhile finds the lock free.
            if !std::mem::replace(&mut spun, true) {
                drop(st);
                spin::spin_until(&mut idle.spin, Probe::Load, || {
                    shared.wake_hint.load(Ordering::Acquire) > 0
                });
                st = shared.lock();
                continue;
            }
            // IDLE: sleep on the condvar, counted in `sleeping` so a submit knows a `notify` is
            // needed (a spinning or about-to-sleep worker checks `notified` under the lock instead).
            let timed_out = if keep_alive.is_zero() {
                true
            } else {
                st.sleeping += 1;
                let (guard, res) = shared
                    .work
                    .wait_timeout(st, keep_alive)
                    .unwrap_or_else(|e| e.into_inner());
                st = guard;
                st.woke();
                res.timed_out() || st.keep_alive_passed()
            };
            if timed_out && st.notified == 0 && st.lifecycle == Lifecycle::Open {
                // RETIRE: idle for the whole keep-alive and no credit is waiting. Credits belong to
                // the pool, not to a thread, so one handed out from now on goes to another idle
                // worker, or (none being idle) a submit starts a thread: leaving `idle` and
                // `threads` in this locked section is what makes that so.
                st.idle -= 1;
                st.threads -= 1;

                // The thread has yet to exit (its thread-locals' destructors are the user's code):
                // a waiting shutdown joins it as it joins the others.
                idle.leaving.set(Leaving::Retired(retire_handle(&mut st)));
                return None;
            }
        }
    }

    /// Runs the initializer. On failure the pool breaks: queued tasks fail with `BrokenThreadPool`, and
    /// this worker exits.
    fn initialize(&self) -> bool {
        let Some(init) = &self.shared.config.initializer else {
            return true;
        };
        let why = match catch_unwind(AssertUnwindSafe(|| init())) {
            Ok(Ok(())) => return true,
            Ok(Err(e)) => e,
            Err(payload) => format!("initializer panicked: {}", panic_message(&*payload)),
        };
        crate::report::initializer_failed(&why);
        for task in self.shared.break_pool(why.clone()) {
            // Failing a task drops its closure: a panic there must not stop the others failing.
            crate::panic::contain(|| task.fail(Error::BrokenThreadPool(why.clone())));
        }
        false
    }
}
