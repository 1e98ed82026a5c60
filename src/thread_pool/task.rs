//! A thread-pool task: the closure and its future's state in one allocation, and what the worker loop
//! needs: claim the task as it leaves the queue, then run the closure, run the future's callbacks, let
//! the worker book the task, and publish the outcome.

use std::future::Future;
use std::marker::PhantomData;
use std::mem::MaybeUninit;
use std::sync::Arc;
use std::task::{Wake, Waker};
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;

use crate::deadline::Alarm;
use crate::error::Error;
use crate::future::state::{fits_in_slot, Core};
use crate::future::{CellRef, Job, PoolFuture, RunnableCellRef, RunnableRef, TaskCell};
use crate::sync::UnsafeCell;

/// What running a claimed task amounted to, for the pool's metrics.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Ran {
    Returned,
    Failed,
    Panicked,
}

/// The worker's view of a queued task.
pub(crate) trait Runnable: Send + Sync {
    /// PENDING → RUNNING, by the worker taking the task off the queue, with the pool locked: a task is
    /// then either queued (where a cancelling shutdown finds it) or started, never in between. `false`
    /// if it was cancelled meanwhile: skip it.
    fn claim(&self) -> bool;
    /// Runs a claimed task's closure, then completes its future: runs its done callbacks, calls
    /// `before_publish` with how the task went, publishes the outcome and wakes the waiters. The worker
    /// uses `before_publish` to book the task and count itself idle *after* the callbacks (one may submit
    /// and wait: it must not count on this thread) but *before* anyone can see the result, so a caller
    /// who sees it and submits again finds this thread idle instead of starting another (Python's
    /// idle-thread reuse).
    ///
    /// # Safety
    /// The caller's [`claim`](Runnable::claim) of this task returned `true`, and this is the one
    /// `run` after it: the closure is then in the task, and the caller's to take.
    #[allow(unsafe_code)] // a contract on the caller, which the worker loop keeps
    unsafe fn run(&self, before_publish: &mut dyn FnMut(Ran));
    /// Whether a cancel has decided, while the task was queued, that it will never run: it waits for
    /// no worker, and one that takes it off the queue skips it.
    fn cancelled(&self) -> bool;
    /// Cancels the task if it has not started (`shutdown(cancel_futures)`, a dropped `map`).
    fn cancel(&self) -> bool;
    /// Ends a task that will never run with `error` (a broken pool), if it has not started.
    fn fail(&self, error: Error);
}

/// What a task runs. A closure for most submits; `try_submit` and `try_spawn` keep the user's function
/// (and argument) as they were given, so that a rejected submit can hand them back unchanged.
pub(crate) trait Work<T>: Send + 'static {
    fn run(self) -> Result<T, Error>;
}

impl<T, F> Work<T> for F
where
    F: FnOnce() -> Result<T, Error> + Send + 'static,
{
    fn run(self) -> Result<T, Error> {
        self()
    }
}

/// `f(arg)`, as `try_submit` got them.
pub(crate) struct Call<F, A>(pub(crate) F, pub(crate) A);

impl<F, A, R> Work<R> for Call<F, A>
where
    F: FnOnce(A) -> R + Send + 'static,
    A: Send + 'static,
{
    fn run(self) -> Result<R, Error> {
        Ok((self.0)(self.1))
    }
}

/// `f()`, as `try_spawn` got it.
pub(crate) struct Spawn<F>(pub(crate) F);

impl<F, R> Work<R> for Spawn<F>
where
    F: FnOnce() -> R + Send + 'static,
{
    fn run(self) -> Result<R, Error> {
        Ok((self.0)())
    }
}

/// A task's cancellation token, if it has one: `()` for a plain task (no room taken in the task), or
/// the shared token state for `spawn_cancellable` and its siblings.
pub(crate) trait TokenSlot: Send + Sync + 'static {
    fn state(&self) -> Option<&TokenState>;
}

impl TokenSlot for () {
    fn state(&self) -> Option<&TokenState> {
        None
    }
}

impl TokenSlot for Arc<TokenState> {
    fn state(&self) -> Option<&TokenState> {
        Some(self)
    }
}

/// Where a task keeps its work (the closure) until a worker takes it or a cancel drops it: in the
/// future's slot when it fits ([`InSlot`]), so that a queued task carries one slot for its work and
/// its outcome, or next to it ([`Spilled`]). The choice is made per closure and output type at submit:
/// the slot lives in `Core<T>`, which the future reaches without knowing the closure's type. (A slot
/// sized for both inside the type-erased job would need a `dyn` job generic over `T`, and so
/// `T: 'static`, which `Promise<T>` does not ask for.)
///
/// No lock guards the work: the future's state machine does. The one call that moves the future out
/// of PENDING (a worker's claim, the winning cancel, a failing pool's start, a submit taking back the
/// work the queue refused) is the only one that ever touches the work afterwards, and before that
/// nothing but the builder has it.
///
/// No tag says whether the work is still here either (an `Option` would add a word to every queued
/// task of a one-word closure): the state does. The work is here exactly while the future is PENDING,
/// since whoever moves it out of PENDING takes the work; so a task dropped while still PENDING
/// (refused by a closed queue, say) drops its work then (the task's last strong reference does).
pub(crate) trait Holder: Send + Sync + 'static {
    type Work: Send + 'static;

    /// The core of a new task and the holder, holding `work` between them.
    fn new<T>(work: Self::Work) -> (Core<T>, Self);

    /// Takes the work out. `slot` is the address of the future's slot.
    ///
    /// # Safety
    /// The caller has the work to itself, and it is still here: the caller moved the future out of
    /// PENDING (or drops a task that never left it), so no other call takes it, nor took it before.
    #[allow(unsafe_code)] // a contract on the caller
    unsafe fn take(&self, slot: *mut u8) -> Self::Work;
}

/// The work kept in the future's slot, which it [fits](fits_in_slot): the holder itself is empty.
pub(crate) struct InSlot<W>(PhantomData<fn() -> W>);

#[allow(unsafe_code)] // the slot's access: see the SAFETY comment.
impl<W: Send + 'static> Holder for InSlot<W> {
    type Work = W;

    fn new<T>(work: W) -> (Core<T>, Self) {
        (Core::with_work(work), InSlot(PhantomData))
    }

    unsafe fn take(&self, slot: *mut u8) -> W {
        // SAFETY: `Core::with_work` put a `W` at `slot`, and the caller has it to itself, once
        // (`take`'s contract); the slot is not read as a `W` again.
        unsafe { slot.cast::<W>().read() }
    }
}

/// The work kept next to the future's slot, which it does not fit.
pub(crate) struct Spilled<W>(UnsafeCell<MaybeUninit<W>>);

// SAFETY: the work is `Send` and is touched by one thread at a time (see `Holder`'s docs); the state
// machine's lock orders the hand-over between threads.
#[allow(unsafe_code)]
unsafe impl<W: Send> Sync for Spilled<W> {}

#[allow(unsafe_code)] // the work's access: see the SAFETY comment.
impl<W: Send + 'static> Holder for Spilled<W> {
    type Work = W;

    fn new<T>(work: W) -> (Core<T>, Self) {
        (
            Core::new(),
            Spilled(UnsafeCell::new(MaybeUninit::new(work))),
        )
    }

    unsafe fn take(&self, _slot: *mut u8) -> W {
        // SAFETY: exclusive access to an initialized cell, as the caller promises; the cell is not
        // read again (the future has left PENDING, or the task is being dropped).
        self.0.with_mut(|w| unsafe { (*w).assume_init_read() })
    }
}

/// A thread-pool task's job: its work, and its cancellation token if it has one.
pub(crate) struct FuncJob<H, K> {
    work: H,
    token: K,
}

#[allow(unsafe_code)] // `Job::discard`'s contract: see the SAFETY comment.
impl<H: Holder, K: TokenSlot> Job for FuncJob<H, K> {
    unsafe fn discard(&self, slot: *mut u8) {
        // SAFETY: called only by the cancel that won the future's PENDING, or the drop of a task
        // still PENDING (`Job::discard`'s contract): the work is here, and this call's alone.
        drop(unsafe { self.work.take(slot) });
        // After the future left PENDING: a submit that reads the count then finds the task cancelled.
        crate::pool::count_discarded();
    }

    fn interrupt(&self) -> bool {
        match self.token.state() {
            Some(t) => {
                t.token.cancel();
                true
            }
            None => false,
        }
    }
}

pub(crate) type Task<H, T, K> = TaskCell<T, FuncJob<H, K>>;

/// Builds a task; the returned pair is the queue's handle and the caller's future, sharing one
/// allocation. The closure goes in the future's slot if it fits there.
pub(crate) fn new_task<F, T, K>(func: F, token: K) -> (RunnableRef, PoolFuture<T>)
where
    F: Work<T>,
    T: Send + 'static,
    K: TokenSlot,
{
    if fits_in_slot::<F, T>() {
        let (cell, fut) = new_typed_task::<InSlot<F>, T, K>(func, token);
        (cell.runnable(), fut)
    } else {
        let (cell, fut) = new_typed_task::<Spilled<F>, T, K>(func, token);
        (cell.runnable(), fut)
    }
}

/// [`new_task`] with the holder `H` chosen by the caller, keeping the task's type: whoever queues it
/// can take the work back out if the queue refuses it ([`Task::take_work`]).
pub(crate) fn new_typed_task<H, T, K>(
    func: H::Work,
    token: K,
) -> (RunnableCellRef<T, FuncJob<H, K>>, PoolFuture<T>)
where
    H: Holder,
    H::Work: Work<T>,
    T: Send + 'static,
    K: TokenSlot,
{
    let (core, work) = H::new(func);
    let cell = CellRef::new_runnable(core, FuncJob { work, token });
    let fut = PoolFuture::from_task(cell.typed());
    (cell, fut)
}

#[allow(unsafe_code)] // the work's accesses: see the SAFETY comments.
impl<H: Holder, T: Send, K: TokenSlot> Task<H, T, K>
where
    H::Work: Work<T>,
{
    /// Takes the work out. `self.core.start()` must have returned `true` to the caller.
    ///
    /// # Safety
    /// As [`Holder::take`]: the caller's start moved the future out of PENDING, and this is the one
    /// take after it.
    unsafe fn take(&self) -> H::Work {
        // SAFETY: passed on from the caller.
        self.core
            .with_slot(|slot| unsafe { self.job.work.take(slot) })
    }

    /// The work of a task that never reached the queue, handed back to the submitter. (Its future, never
    /// seen by anyone, is dropped with it.)
    ///
    /// # Safety
    /// The queue refused the task and its future has not left the submitter: nothing else can reach it.
    pub(crate) unsafe fn take_work(&self) -> Option<H::Work> {
        // Out of PENDING first, as every taker of the work does, so the task's drop leaves it be.
        if !self.core.start() {
            return None;
        }
        // SAFETY: this start moved the future out of PENDING, so the work is still here and ours
        // alone (and, as the caller promises, nothing else reaches the task anyway).
        Some(unsafe { self.take() })
    }
}

#[allow(unsafe_code)] // the work's accesses: see the SAFETY comments.
impl<H, T, K> Runnable for Task<H, T, K>
where
    H: Holder,
    H::Work: Work<T>,
    T: Send + 'static,
    K: TokenSlot,
{
    fn claim(&self) -> bool {
        self.core.start()
    }

    fn cancelled(&self) -> bool {
        // Queued, a task leaves PENDING only by a cancel (a worker's claim takes it off the queue
        // first).
        self.core.left_pending()
    }

    unsafe fn run(&self, before_publish: &mut dyn FnMut(Ran)) {
        // SAFETY: the caller's claim moved the future out of PENDING (`run`'s contract), so the
        // work is still here and ours alone.
        let func = unsafe { self.take() };
        let token = self.job.token.state();
        if let Some(t) = token {
            t.started(Instant::now());
        }
        // The closure (and everything it captured) is consumed here, before the outcome is published.
        let (ran, outcome) = match crate::panic::catch(|| func.run()) {
            Ok(Ok(v)) => (Ran::Returned, Ok(v)),
            Ok(Err(e)) => (Ran::Failed, Err(e)),
            Err(panic) => (Ran::Panicked, Err(Error::Panicked(panic))),
        };
        if let Some(t) = token {
            t.finished();
        }
        // Our claim won the race, so nothing else can have completed the future.
        let _ = self
            .core
            .complete_then(outcome, Some(&mut || before_publish(ran)));
    }

    fn cancel(&self) -> bool {
        TaskCell::cancel(self)
    }

    fn fail(&self, error: Error) {
        if self.core.start() {
            // SAFETY: this start moved the future out of PENDING: the work is ours alone.
            let work = unsafe { self.take() };
            // The work's `Drop` is the user's: one that panics must not leave the future RUNNING.
            crate::panic::contain(|| drop(work));
            let _ = self.core.complete(Err(error));
        }
    }
}

/// The shared half of a [`CancelToken`]: the token, and the time limit that cancels it.
pub(crate) struct TokenState {
    token: CancellationToken,
    limit: Option<Duration>,
    deadline: std::sync::OnceLock<Instant>,
    /// Cancels `token` when the time limit runs out, registered while the task runs. A std mutex even
    /// under loom: no model looks at time limits.
    alarm: std::sync::Mutex<Option<Alarm>>,
}

impl TokenState {
    /// A fresh token, or `token` (a caller's child token) for a task tied to a caller's cancellation.
    pub(crate) fn new(token: Option<CancellationToken>, limit: Option<Duration>) -> Arc<Self> {
        Arc::new(TokenState {
            token: token.unwrap_or_default(),
            limit,
            deadline: std::sync::OnceLock::new(),
            alarm: std::sync::Mutex::new(None),
        })
    }

    fn started(&self, now: Instant) {
        if let Some(limit) = self.limit {
            // A limit past the clock's end is no limit: the task is never asked to stop for it.
            let Some(deadline) = now.checked_add(limit) else {
                return;
            };
            let _ = self.deadline.set(deadline);
            // `is_cancelled` also compares the clock, so a late (or missing) timer thread delays only
            // the awaiters of `cancelled()`.
            let waker = Waker::from(Arc::new(CancelOnWake(self.token.clone())));
            *self.alarm.lock().unwrap_or_else(|e| e.into_inner()) = Alarm::set(deadline, &waker);
        }
    }

    fn finished(&self) {
        let alarm = self.alarm.lock().unwrap_or_else(|e| e.into_inner()).take();
        drop(alarm);
    }
}

/// A waker that cancels a token: what the timer thread calls when a task's time limit runs out.
struct CancelOnWake(CancellationToken);

impl Wake for CancelOnWake {
    fn wake(self: Arc<Self>) {
        self.0.cancel();
    }
}

/// Handed to a task started with [`spawn_cancellable`](crate::ThreadPoolExecutor::spawn_cancellable)
/// (and its siblings): tells a *running* task that it should stop. A thread cannot be stopped from
/// outside, so the task checks the token at points where stopping is safe, or awaits
/// [`cancelled`](CancelToken::cancelled) from async code it drives.
///
/// It is a thin wrapper over tokio-util's [`CancellationToken`], which
/// [`cancellation_token`](CancelToken::cancellation_token) gives out, so the task can hand it (or a
/// child of it) to async code, or `select!` on it. It fires when
/// [`PoolFuture::interrupt`](crate::PoolFuture::interrupt) (or a [`TaskHandle`](crate::TaskHandle)'s)
/// is called, when the task's time limit (counted from the moment it started) runs out, or, for
/// [`spawn_cancellable_with`](crate::ThreadPoolExecutor::spawn_cancellable_with), when the caller's
/// token is cancelled.
///
/// ```
/// use concurrent_futures::{Error, ThreadPoolExecutor};
///
/// let pool = ThreadPoolExecutor::new(1)?;
/// let mut f = pool.spawn_cancellable(|token| -> Result<(), Error> {
///     loop {
///         token.check()?; // Err(Error::Interrupted) once interrupted
///         std::thread::yield_now();
///     }
/// })?;
/// while !f.running() { std::thread::yield_now(); }
/// assert!(f.interrupt());
/// assert!(matches!(f.result(None), Err(Error::Interrupted)));
/// # Ok::<(), Error>(())
/// ```
#[derive(Clone)]
pub struct CancelToken(pub(crate) Arc<TokenState>);

impl CancelToken {
    /// Whether the task has been asked to stop (interrupted, past its time limit, or its caller's
    /// token cancelled).
    pub fn is_cancelled(&self) -> bool {
        if self.0.token.is_cancelled() {
            return true;
        }
        match self.0.deadline.get() {
            Some(d) => Instant::now() >= *d,
            None => false,
        }
    }

    /// `Err(Error::Interrupted)` once the task should stop, for use with `?`.
    pub fn check(&self) -> Result<(), Error> {
        if self.is_cancelled() {
            Err(Error::Interrupted)
        } else {
            Ok(())
        }
    }

    /// When the task's time limit runs out, if it has one.
    pub fn deadline(&self) -> Option<Instant> {
        self.0.deadline.get().copied()
    }

    /// Resolves once the task should stop (from any executor; the time limit is served by a timer
    /// thread). For a task that drives async work itself, e.g. with `block_on`.
    ///
    /// ```
    /// use concurrent_futures::{Error, ThreadPoolExecutor};
    /// use std::time::Duration;
    ///
    /// let pool = ThreadPoolExecutor::new(1)?;
    /// let mut f = pool.spawn_with_time_limit(Duration::from_millis(10), |token| {
    ///     futures::executor::block_on(token.cancelled()); // an async wait, ended by the limit
    ///     Err::<(), _>(Error::Interrupted)
    /// })?;
    /// assert!(matches!(f.result(None), Err(Error::Interrupted)));
    /// # Ok::<(), Error>(())
    /// ```
    pub fn cancelled(&self) -> impl Future<Output = ()> + Send + '_ {
        self.0.token.cancelled()
    }

    /// The tokio-util token itself: pass it (or [`child_token`](CancellationToken::child_token)) to
    /// async code the task runs, or cancel it to stop the task from inside.
    ///
    /// ```
    /// use concurrent_futures::ThreadPoolExecutor;
    ///
    /// let pool = ThreadPoolExecutor::new(1)?;
    /// let mut f = pool.spawn_cancellable(|token| {
    ///     let for_async_code = token.cancellation_token().child_token();
    ///     token.cancellation_token().cancel(); // giving up from inside
    ///     Ok(for_async_code.is_cancelled() && token.is_cancelled())
    /// })?;
    /// assert!(f.result(None)?);
    /// # Ok::<(), concurrent_futures::Error>(())
    /// ```
    pub fn cancellation_token(&self) -> &CancellationToken {
        &self.0.token
    }
}

impl From<CancelToken> for CancellationToken {
    fn from(token: CancelToken) -> CancellationToken {
        token.0.token.clone()
    }
}

impl std::fmt::Debug for CancelToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CancelToken")
            .field("cancelled", &self.is_cancelled())
            .field("deadline", &self.deadline())
            .finish()
    }
}

#[cfg(all(test, target_pointer_width = "64"))]
mod tests {
    use std::sync::Arc;

    use super::{new_task, new_typed_task, InSlot};
    use crate::future::state::fits_in_slot;
    use crate::Error;

    fn fits<W, T>(_: &W) -> bool {
        fits_in_slot::<W, T>()
    }

    /// What a queued trivial task allocates is what a burst of queued tasks costs (issue 9): the
    /// reference counts and the vtable pointer, the future's state and one slot, shared by a closure
    /// capturing one `u64` and its `u64` output. glibc serves a request of n bytes from a chunk of
    /// (n + 8) rounded up to 16 bytes, so 56 bytes take a 64-byte chunk and 64 would take 80. The
    /// queue's reference and the caller's future are one word each.
    #[test]
    fn a_trivial_task_takes_a_64_byte_chunk() {
        let x = 5u64;
        let work = move || Ok::<u64, Error>(x + 1);
        assert!(fits::<_, u64>(&work));
        let (cell, fut) = new_typed_task::<InSlot<_>, u64, ()>(work, ());
        assert!(
            std::mem::size_of_val(&*cell) <= 56,
            "a trivial task needs {} bytes",
            std::mem::size_of_val(&*cell)
        );
        let queued = cell.runnable();
        assert_eq!(std::mem::size_of_val(&queued), 8);
        assert_eq!(std::mem::size_of_val(&fut), 8);
        drop((cell, queued, fut));
    }

    /// A closure kept in the slot and one kept next to it (too large for a `u8` output's slot) are
    /// each dropped exactly once, whichever way the task goes: run, cancelled, failed, or dropped
    /// while still queued; and the output takes the slot the closure left.
    #[test]
    fn work_in_or_beside_the_slot_is_dropped_once() {
        let small = Arc::new(());
        let large = Arc::new(());
        let tasks = |outcome_of_large: u8| {
            let (s, l) = (small.clone(), large.clone());
            let in_slot = move || Ok::<u64, Error>(Arc::strong_count(&s) as u64);
            let beside = move || Ok::<u8, Error>(Arc::strong_count(&l) as u8 + outcome_of_large);
            assert!(fits::<_, u64>(&in_slot) && !fits::<_, u8>(&beside));
            (new_task(in_slot, ()), new_task(beside, ()))
        };

        // Run: each closure is taken, run, and dropped before its outcome is published.
        let ((a, mut fa), (b, mut fb)) = tasks(100);
        for task in [&a, &b] {
            assert!(task.claim());
            // SAFETY: claimed just above, and run once.
            #[allow(unsafe_code)]
            unsafe {
                task.run(&mut |_| {})
            };
        }
        assert_eq!(fa.result(None).unwrap(), 2); // `small`, and the closure's clone
        assert_eq!(fb.result(None).unwrap(), 102);
        assert_eq!(
            (Arc::strong_count(&small), Arc::strong_count(&large)),
            (1, 1)
        );

        // Cancelled, and failed: dropped at once, the futures keep their errors.
        let ((a, fa), (b, fb)) = tasks(0);
        assert!(a.cancel() && fb.cancel());
        assert_eq!(
            (Arc::strong_count(&small), Arc::strong_count(&large)),
            (1, 1)
        );
        assert!(fa.cancelled() && !b.claim());
        let ((a, mut fa), (b, mut fb)) = tasks(0);
        a.fail(Error::Shutdown);
        b.fail(Error::Shutdown);
        assert_eq!(
            (Arc::strong_count(&small), Arc::strong_count(&large)),
            (1, 1)
        );
        assert!(matches!(fa.result(None), Err(Error::Shutdown)));
        assert!(matches!(fb.result(None), Err(Error::Shutdown)));

        // Dropped while queued: the last reference drops the closure.
        let ((a, fa), (b, fb)) = tasks(0);
        drop((a, fa, b, fb));
        assert_eq!(
            (Arc::strong_count(&small), Arc::strong_count(&large)),
            (1, 1)
        );
    }
}
