//! [`ThreadPoolExecutor::scope`]: tasks that borrow from the caller's stack, as `std::thread::scope` and
//! `rayon::scope` allow, run on the pool's threads.
//!
//! The pool's queue holds `'static` tasks, so a scoped task's closure, which may borrow anything that
//! outlives the scope, has its lifetime erased to be queued: the one `unsafe` operation here. What makes
//! it sound is the join count. Every scoped task carries a [`Done`] token that is given back only after
//! its closure and everything the closure captured are gone, whether the task ran, or was dropped unrun
//! (cancelled by a shutdown or through its handle, failed by a broken pool, refused at submit); and
//! `scope` does not return, not even by unwinding, until every token is back.
//!
//! A scope waiting on one of its pool's own workers would deadlock a pool whose workers are all busy
//! waiting (one worker, a task that opens a scope). So a waiting scope on a worker *helps*: it takes its
//! own tasks that are still queued out of the queue and runs them itself, as rayon's scopes do. It runs
//! only its own tasks, and only on a worker, so the pool never runs more tasks at once than it has
//! workers, and a scope opened from outside the pool keeps its tasks on the pool's threads.

use std::fmt;
use std::marker::PhantomData;
use std::panic::{catch_unwind, resume_unwind, AssertUnwindSafe};
use std::sync::Arc;

use super::shared::{Rejected, Shared, WhenFull};
use super::task::{new_task, Ran, Runnable};
use super::ThreadPoolExecutor;
use crate::error::{Error, Panic};
use crate::future::{PoolFuture, RunnableRef, WeakRunnableRef};
use crate::sync::{lock, Condvar, Mutex};

/// A scope's closure with its lifetime erased, as the pool's queue holds it. It returns the panic
/// message if the user's closure panicked.
type ErasedWork = Box<dyn FnOnce() -> Option<String> + Send + 'static>;

/// What the tasks of one scope share with the thread waiting at its end.
struct ScopeData {
    state: Mutex<ScopeState>,
    /// Signalled when a task's token comes back and when a task is queued (a waiter that helps may take it).
    changed: Condvar,
    /// Whether the scope's thread is one of its pool's workers: only then does it run its own queued
    /// tasks while it waits.
    helps: bool,
}

struct ScopeState {
    /// Tasks whose closures are not yet gone.
    pending: usize,
    /// The first panic of a task that nobody joined, re-raised by `scope` once every task has ended.
    panic: Option<Panic>,
    /// Tasks that may still be queued, newest last; kept only when the scope helps.
    queued: Vec<WeakRunnableRef>,
}

/// A task's share of the join count, given back when dropped.
struct Done(Arc<ScopeData>);

impl Drop for Done {
    fn drop(&mut self) {
        let mut st = lock(&self.0.state);
        st.pending -= 1;
        drop(st);
        self.0.changed.notify_all();
    }
}

/// A queued scoped task. The fields drop in declaration order: the closure (and what it borrows) first,
/// then the token. That order is what the lifetime erasure relies on.
struct ScopedJob {
    work: Option<ErasedWork>,
    _done: Done,
}

impl ScopedJob {
    fn run(mut self) -> Result<(), Error> {
        let work = self.work.take().expect("a job runs once");
        // Calling the box consumes the closure and its captures before `self` (the token) drops.
        if let Some(message) = work() {
            // The payload itself went to the task's handle (or to `scope`); re-raising the message lets
            // the pool count the task as panicked. `resume_unwind` does not run the panic hook again.
            resume_unwind(Box::new(message));
        }
        Ok(())
    }
}

/// Where a scoped task leaves its outcome for its handle.
struct Packet<T> {
    scope: Arc<ScopeData>,
    result: Mutex<Option<Result<T, Panic>>>,
}

impl<T> Drop for Packet<T> {
    fn drop(&mut self) {
        // A panic nobody joined goes to the scope, which re-raises it. The packet's last owner is the
        // task (its handle already gone) or the handle; either drops it before the scope ends (see
        // `ScopedJoinHandle`).
        let outcome = lock(&self.result).take();
        if let Some(Err(panic)) = outcome {
            let mut st = lock(&self.scope.state);
            if st.panic.is_none() {
                st.panic = Some(panic);
            }
        }
    }
}

/// A scope in which tasks may borrow from the enclosing stack: see [`ThreadPoolExecutor::scope`].
///
/// `'scope` is the lifetime of the scope itself (tasks may borrow the `Scope` to spawn more tasks);
/// `'env` is the lifetime of whatever the tasks borrow from outside. As with `std::thread::Scope`.
///
/// ```
/// use concurrent_futures::{Scope, ThreadPoolExecutor};
/// use std::sync::atomic::{AtomicU64, Ordering};
///
/// /// Sums `values` by halves, each half a task of its own, down to 64 values.
/// fn sum<'scope>(s: &'scope Scope<'scope, '_>, values: &'scope [u64], total: &'scope AtomicU64) {
///     if values.len() <= 64 {
///         total.fetch_add(values.iter().sum(), Ordering::Relaxed);
///         return;
///     }
///     let (left, right) = values.split_at(values.len() / 2);
///     s.spawn(move || sum(s, left, total)).unwrap();
///     s.spawn(move || sum(s, right, total)).unwrap();
/// }
///
/// let pool = ThreadPoolExecutor::new(2)?;
/// let values: Vec<u64> = (1..=1000).collect();
/// let total = AtomicU64::new(0);
/// pool.scope(|s| sum(s, &values, &total));
/// assert_eq!(total.into_inner(), 500_500); // every task, however deep, ended with the scope
/// # Ok::<(), concurrent_futures::Error>(())
/// ```
pub struct Scope<'scope, 'env: 'scope> {
    pool: ThreadPoolExecutor,
    data: Arc<ScopeData>,
    // Invariance, as std's scope has: neither lifetime may be shortened or lengthened.
    scope: PhantomData<&'scope mut &'scope ()>,
    env: PhantomData<&'env mut &'env ()>,
}

/// The handle to one scoped task: [`join`](Self::join) waits for it and gives its value.
///
/// Dropping the handle does not cancel the task: the scope still joins it at its end, and re-raises its
/// panic if it panicked.
///
/// ```
/// use concurrent_futures::ThreadPoolExecutor;
///
/// let pool = ThreadPoolExecutor::new(2)?;
/// let text = "a handle borrows nothing but gives back what its task returned";
/// let longest = pool.scope(|s| {
///     let words = s.spawn(|| text.split(' ').count())?;
///     let longest = s.spawn(|| text.split(' ').max_by_key(|w| w.len()))?;
///     assert_eq!(words.join()?, 11);
///     longest.join() // a `&str` borrowed from `text`
/// })?;
/// assert_eq!(longest, Some("returned"));
/// # Ok::<(), concurrent_futures::Error>(())
/// ```
pub struct ScopedJoinHandle<'scope, T> {
    packet: Arc<Packet<T>>,
    future: PoolFuture<()>,
    task: WeakRunnableRef,
    shared: Arc<Shared>,
    scope: PhantomData<&'scope ()>,
}

impl ThreadPoolExecutor {
    /// Runs `body` with a [`Scope`] whose tasks run on this pool and may borrow anything that outlives
    /// the call, like `std::thread::scope` and `rayon::scope` (Python and tokio have no counterpart).
    ///
    /// Returns only once every task spawned in the scope has ended, even if `body` or a task panics.
    /// Then a panic propagates as std's scope does: the body's own, otherwise the first panic of a task
    /// whose handle was not [`join`](ScopedJoinHandle::join)ed. The pool lives on; for Python's `with`
    /// block, which shuts the pool down at its end, see [`shutdown_after`](Self::shutdown_after).
    ///
    /// A scope waiting on one of this pool's own workers (the scope was opened from a task, or a handle
    /// is joined there) runs its own tasks that are still queued itself, so it cannot deadlock a pool
    /// whose workers are all waiting. Elsewhere, the tasks run on the pool's threads only.
    ///
    /// ```
    /// use concurrent_futures::ThreadPoolExecutor;
    ///
    /// let pool = ThreadPoolExecutor::new(4)?;
    /// let mut data = vec![1u64; 1000];
    /// let offset = 10; // borrowed by every task
    /// let total = pool.scope(|s| {
    ///     for chunk in data.chunks_mut(100) {
    ///         s.spawn(|| chunk.iter_mut().for_each(|x| *x += offset))?;
    ///     }
    ///     let sum = s.spawn(|| offset * 2)?;
    ///     sum.join()
    /// })?;
    /// assert_eq!(total, 20);
    /// assert!(data.iter().all(|&x| x == 11)); // every task has ended: `data` is ours again
    /// # Ok::<(), concurrent_futures::Error>(())
    /// ```
    pub fn scope<'env, F, R>(&self, body: F) -> R
    where
        F: for<'scope> FnOnce(&'scope Scope<'scope, 'env>) -> R,
    {
        let scope = Scope {
            pool: self.clone(),
            data: Arc::new(ScopeData {
                state: Mutex::new(ScopeState {
                    pending: 0,
                    panic: None,
                    queued: Vec::new(),
                }),
                changed: Condvar::new(),
                helps: on_worker(self.shared()),
            }),
            scope: PhantomData,
            env: PhantomData,
        };
        let outcome = catch_unwind(AssertUnwindSafe(|| body(&scope)));
        scope.wait_all();
        let task_panic = lock(&scope.data.state).panic.take();
        match (outcome, task_panic) {
            (Err(body_panic), _) => resume_unwind(body_panic),
            (Ok(_), Some(task_panic)) => task_panic.resume_unwind(),
            (Ok(value), None) => value,
        }
    }
}

impl<'scope, 'env> Scope<'scope, 'env> {
    /// Runs `f` on the pool; it may borrow anything that outlives the scope. The task is joined when
    /// the scope ends, if not before through the returned handle.
    ///
    /// Fails as [`ThreadPoolExecutor::spawn`] does: [`Error::Shutdown`] once the pool is shut down, a
    /// broken pool's error. With a bounded queue that is full this blocks until there is room, except on
    /// one of the pool's own workers, which runs the task itself rather than wait for a queue that only
    /// it may be able to drain.
    ///
    /// ```
    /// use concurrent_futures::ThreadPoolExecutor;
    ///
    /// let pool = ThreadPoolExecutor::new(2)?;
    /// let words = ["scoped", "tasks", "borrow"];
    /// let lengths = pool.scope(|s| {
    ///     let handles = words
    ///         .iter()
    ///         .map(|w| s.spawn(move || w.len()))
    ///         .collect::<Result<Vec<_>, _>>()?;
    ///     handles.into_iter().map(|h| h.join()).collect::<Result<Vec<_>, _>>()
    /// })?;
    /// assert_eq!(lengths, [6, 5, 6]);
    /// # Ok::<(), concurrent_futures::Error>(())
    /// ```
    #[allow(unsafe_code)] // running a task it claimed: see the SAFETY comment
    pub fn spawn<F, T>(&'scope self, f: F) -> Result<ScopedJoinHandle<'scope, T>, Error>
    where
        F: FnOnce() -> T + Send + 'scope,
        T: Send + 'scope,
    {
        let packet = Arc::new(Packet {
            scope: self.data.clone(),
            result: Mutex::new(None),
        });
        let theirs = packet.clone();
        let work: Box<dyn FnOnce() -> Option<String> + Send + 'scope> = Box::new(move || {
            // The crate's catch keeps the location (and backtrace) as well as the payload.
            let outcome = crate::panic::catch(f);
            let message = outcome.as_ref().err().map(|p| p.message().to_owned());
            *lock(&theirs.result) = Some(outcome);
            // `theirs` drops here, with the closure: if the handle is gone, so is the packet, and an
            // unjoined panic reaches the scope before this task's token is given back.
            message
        });
        lock(&self.data.state).pending += 1;
        let job = ScopedJob {
            work: Some(erase(work)),
            _done: Done(self.data.clone()),
        };
        let run = move || job.run();
        #[cfg(feature = "tracing")]
        let (run, span) = crate::trace::thread_task(&self.pool.shared().config.name_prefix, run);
        let (task, future) = new_task(run, ());
        #[cfg(feature = "tracing")]
        crate::trace::record_id(&span, future.id());
        let weak = task.downgrade();
        let shared = self.pool.shared();
        // On one of the pool's workers (this scope's thread if it helps, or a scoped task spawning more)
        // a full queue is refused, and the task runs here instead: the room it would wait for may
        // only come from this worker. Only a bounded queue is ever full, so only then is it worth
        // looking whether this thread is a worker.
        let here_on_worker =
            self.data.helps || (shared.config.sizes.capacity.is_some() && on_worker(shared));
        let when_full = if here_on_worker {
            WhenFull::Reject
        } else {
            WhenFull::Block
        };
        match shared.enqueue(task, when_full) {
            Ok(()) => self.queued(weak.clone()),
            // On a worker with the queue full: run it here (this worker would otherwise wait for room
            // that may only come from itself).
            Err(Rejected::Full(task)) => {
                if task.claim() {
                    shared.lock().running += 1;
                    // SAFETY: claimed just above, and run once.
                    unsafe { run_claimed(shared, &*task) };
                }
            }
            Err(Rejected::Closed(e)) => {
                // Dropping the future drops the task, whose token comes back.
                drop(future);
                return Err(e);
            }
        }
        Ok(ScopedJoinHandle {
            packet,
            future,
            task: weak,
            shared: shared.clone(),
            scope: PhantomData,
        })
    }

    /// Records a queued task for a helping waiter, and wakes it.
    fn queued(&self, task: WeakRunnableRef) {
        let mut st = lock(&self.data.state);
        if self.data.helps {
            // Forget the tasks that are gone whenever the length reaches a power of two (from 64 on):
            // the sweeps cost O(1) per spawn, amortized, and the list never holds more than twice the
            // tasks that outlived the last sweep (or 64).
            if st.queued.len() >= 64 && st.queued.len().is_power_of_two() {
                st.queued.retain(|t| t.is_alive());
            }
            st.queued.push(task);
        }
        drop(st);
        self.data.changed.notify_all();
    }

    /// Waits until every task of the scope has ended, running its own queued tasks if it helps.
    fn wait_all(&self) {
        let shared = self.pool.shared();
        let mut st = lock(&self.data.state);
        while st.pending > 0 {
            if self.data.helps {
                if let Some(task) = st.queued.pop() {
                    drop(st);
                    if let Some(task) = task.upgrade() {
                        run_if_queued(shared, &task);
                    }
                    st = lock(&self.data.state);
                    continue;
                }
            }
            st = self
                .data
                .changed
                .wait(st)
                .unwrap_or_else(|e| e.into_inner());
        }
    }
}

/// Erases the lifetime of a scoped task's closure so that the pool's queue can hold it.
#[allow(unsafe_code)]
fn erase<'scope>(work: Box<dyn FnOnce() -> Option<String> + Send + 'scope>) -> ErasedWork {
    // SAFETY: the two types differ only in the trait object's lifetime bound, so they have the same
    // layout. The closure is never called or dropped after 'scope ends: `spawn` puts it in a
    // `ScopedJob`, next to a `Done` token that drops only after it (field order; `run` consumes it
    // first), having counted the token in `pending` before. `Scope::wait_all` returns only when
    // `pending` is 0, i.e. when every such closure is gone, and `scope` calls it after the body has
    // returned or unwound, before it returns; 'scope ends only when `scope` returns. The wait cannot be
    // skipped: the `Scope` lives in `scope`'s frame and is only lent to the body, and the wait does not
    // panic (its locks ignore poison). A closure whose task is never run nor dropped (a leaked pool
    // task) keeps `scope` waiting forever, which is a hang, not a dangling borrow.
    unsafe {
        std::mem::transmute::<
            Box<dyn FnOnce() -> Option<String> + Send + 'scope>,
            Box<dyn FnOnce() -> Option<String> + Send + 'static>,
        >(work)
    }
}

/// Whether this thread is one of the pool's workers.
fn on_worker(shared: &Shared) -> bool {
    let me = crate::sync::thread::current().id();
    shared.lock().handles.iter().any(|h| h.thread().id() == me)
}

/// Takes `task` out of the pool's queue and runs it on this thread, if it is still queued.
#[allow(unsafe_code)] // running the task it claimed: see the SAFETY comment
fn run_if_queued(shared: &Shared, task: &RunnableRef) {
    let mut st = shared.lock();
    let Some(at) = st.queue.iter().position(|t| t.is(task)) else {
        return; // a worker has it, or it ended
    };
    let task = st.queue.remove(at).expect("found above");
    shared.made_room(&st);
    // Claimed with the pool locked, as a worker claims: it is queued or started, never in between.
    if !task.claim() {
        st.cancelled += 1;
        return;
    }
    st.running += 1;
    drop(st);
    // SAFETY: claimed just above, and run once.
    unsafe { run_claimed(shared, &*task) };
}

/// Runs a claimed task on this thread and books it as a worker would (the worker's own booking also
/// decides when it sleeps, which does not apply here).
///
/// # Safety
/// As [`Runnable::run`]: the caller's claim of `task` returned `true`, and it is run once.
#[allow(unsafe_code)] // passes `Runnable::run`'s contract on to the caller
unsafe fn run_claimed(shared: &Shared, task: &dyn Runnable) {
    // SAFETY: the caller claimed the task (this function's contract).
    unsafe {
        task.run(&mut |ran| {
            let mut st = shared.lock();
            st.running -= 1;
            st.completed += 1;
            match ran {
                Ran::Returned => {}
                Ran::Failed => st.failed += 1,
                Ran::Panicked => st.panicked += 1,
            }
        })
    };
}

impl<T> ScopedJoinHandle<'_, T> {
    /// Waits for the task and gives its value: [`Error::Panicked`] if it panicked (the scope then does
    /// not re-raise that panic: it was handed over here), [`Error::Cancelled`] if it was cancelled
    /// before it ran, or a broken pool's error.
    ///
    /// On one of the pool's own workers, a task still queued is taken out of the queue and run here.
    ///
    /// ```
    /// use concurrent_futures::{Error, ThreadPoolExecutor};
    ///
    /// let pool = ThreadPoolExecutor::new(2)?;
    /// let outcome = pool.scope(|s| {
    ///     let failing = s.spawn(|| -> u8 { panic!("no") })?;
    ///     Ok::<_, Error>(failing.join())
    /// })?;
    /// assert!(matches!(outcome, Err(Error::Panicked(m)) if m == "no"));
    /// # Ok::<(), Error>(())
    /// ```
    pub fn join(mut self) -> Result<T, Error> {
        if let Some(task) = self.task.upgrade() {
            if on_worker(&self.shared) {
                run_if_queued(&self.shared, &task);
            }
        }
        // Done only after the closure has left its outcome (or been dropped unrun).
        let ended = self.future.result(None);
        let outcome = lock(&self.packet.result).take();
        match outcome {
            Some(Ok(value)) => Ok(value),
            Some(Err(panic)) => Err(Error::Panicked(panic)),
            None => Err(ended.err().unwrap_or(Error::Cancelled)),
        }
    }

    /// Whether the task has ended (then [`join`](Self::join) does not wait).
    pub fn is_finished(&self) -> bool {
        self.future.done()
    }

    /// Cancels the task if it has not started, as [`PoolFuture::cancel`]: `true` if it will never run
    /// (then [`join`](Self::join) gives [`Error::Cancelled`]).
    ///
    /// ```
    /// use concurrent_futures::{Error, ThreadPoolExecutor};
    /// use std::sync::mpsc;
    ///
    /// let pool = ThreadPoolExecutor::new(1)?;
    /// let (release, wait) = mpsc::channel::<()>();
    /// pool.scope(|s| {
    ///     let busy = s.spawn(move || wait.recv().ok())?; // holds the only worker…
    ///     let queued = s.spawn(|| 1)?;                    // …so this one waits in the queue
    ///     assert!(queued.cancel());
    ///     assert!(matches!(queued.join(), Err(Error::Cancelled)));
    ///     release.send(()).unwrap();
    ///     busy.join().map(drop)
    /// })?;
    /// # Ok::<(), Error>(())
    /// ```
    pub fn cancel(&self) -> bool {
        self.future.cancel()
    }
}

impl fmt::Debug for Scope<'_, '_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let st = lock(&self.data.state);
        f.debug_struct("Scope")
            .field("pending", &st.pending)
            .finish_non_exhaustive()
    }
}

impl<T> fmt::Debug for ScopedJoinHandle<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ScopedJoinHandle")
            .field("future", &self.future)
            .finish_non_exhaustive()
    }
}
