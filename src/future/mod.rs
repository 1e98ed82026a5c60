//! [`PoolFuture`]: the handle to one submitted task, awaitable and blockable.

mod handle;
mod park;
mod promise;
mod raw;
pub(crate) mod state;
mod word;

#[cfg(loom)]
pub use raw::{LoomTask, LoomWeakTask};
#[cfg(loom)]
pub use word::LoomWordLock;

use std::fmt;
use std::future::Future;
use std::panic::{RefUnwindSafe, UnwindSafe};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};
use std::time::Duration;

use futures_core::FusedFuture;
use tokio_util::sync::CancellationToken;

use crate::error::Error;
pub use handle::TaskHandle;
pub(crate) use park::{block_until, deadline_after};
pub use promise::Promise;
pub(crate) use raw::{CellRef, RunnableCellRef, RunnableRef, TaskCell, TaskRef, WeakRunnableRef};
pub(crate) use state::Registration;
use state::{Callback, Ending, Phase};

/// A stable, process-unique identity for a future: use it as a map key to get back from a result to
/// the input that produced it (Python's `future_to_url[future]` idiom).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct FutureId(pub(crate) u64);

impl fmt::Display for FutureId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "#{}", self.0)
    }
}

/// What a future carries besides its state: the work it stands for, type-erased so the handle does not
/// name the closure's type. One allocation holds both.
pub(crate) trait Job: Send + Sync {
    /// Drops the work without running it, so captured data is freed at once. `slot` is the address of
    /// the future's slot, where a job may keep its work while the future is PENDING (see
    /// `Core::with_work`).
    ///
    /// # Safety
    /// Only the call that cancelled the future ([`state::Cancel::Won`]) calls it, or the drop of a
    /// task whose future never left PENDING; once: a job may rely on having its work to itself here,
    /// and on nobody having taken it (the thread pool's closure has no lock, and no tag of its own).
    #[allow(unsafe_code)] // a contract on the caller, which `Core::cancel_by` and `raw`'s drop keep
    unsafe fn discard(&self, slot: *mut u8);
    /// Asks a running task to stop, if it can be asked: `true` if the request was delivered.
    fn interrupt(&self) -> bool {
        false
    }
    /// Called by a thread about to block until this future ends (`result`), which may do part of the
    /// work that ends it meanwhile: a process pool's caller reads its worker's reply itself (one
    /// wake-up instead of two). Returns by `deadline` at the latest; the future may still be pending.
    /// `started` tells whether the future is RUNNING: a job may wait for the end of its task only
    /// once the task has started, since a task cancelled before it started sends nothing to wait for.
    fn help_until(&self, _deadline: Option<std::time::Instant>, _started: &dyn Fn() -> bool) {}
}

/// A job that must know when its future is attended to: a process-pool task, whose end someone must
/// read (its worker's reply, which a blocking caller reads itself: [`Job::help_until`]). Only a cell
/// built with `CellRef::new_attended` calls it; every other future skips the call.
#[cfg_attr(loom, allow(dead_code))] // under loom, the process pool (its only user) is not built
pub(crate) trait Attend: Job {
    /// Called whenever the future is attended to otherwise than by a thread blocked in `result`
    /// without a deadline: polled, watched by `wait`/`as_completed`, given a callback, dropped, or
    /// looked at (`done`, `running`, ...). The job has its pool read its end from now on. Cheap
    /// after the first call.
    fn attend(&self);
}

/// The job of a future completed by hand (a [`Promise`]) or by a process-pool driver: nothing to drop.
pub(crate) struct NoJob;

#[allow(unsafe_code)] // an empty `Job::discard`
impl Job for NoJob {
    unsafe fn discard(&self, _slot: *mut u8) {}
}

/// The handle to a submitted task: Python's `concurrent.futures.Future`, and a Rust [`Future`].
///
/// `.await` it from any executor (tokio, `futures::executor::block_on`, smol), or block on
/// [`result`](PoolFuture::result) from sync code. The state runs PENDING → RUNNING → FINISHED, or
/// PENDING → CANCELLED; [`cancel`](PoolFuture::cancel) wins only while the task has not started.
///
/// Dropping a `PoolFuture` detaches it: the task still runs, as in Python and tokio. Wrap it with
/// [`cancel_on_drop`](PoolFuture::cancel_on_drop) to cancel instead. Timing out a wait on it (with
/// [`result`](PoolFuture::result) or `tokio::time::timeout`) leaves the task running and the future
/// usable.
///
/// A successful value is *moved out* by `.await` or `result()`; asking again gives
/// [`Error::InvalidState`]. An error stays and is given out (cloned) every time.
///
/// ```
/// use concurrent_futures::ThreadPoolExecutor;
///
/// let pool = ThreadPoolExecutor::new(2)?;
/// let mut f = pool.submit(|n: u64| n * n, 12)?;
/// assert_eq!(f.result(None)?, 144);
/// assert!(f.done() && !f.cancelled());
///
/// // The same future type is awaitable:
/// let g = pool.submit(|n: u64| n + 1, 41)?;
/// assert_eq!(futures::executor::block_on(g)?, 42);
/// # Ok::<(), concurrent_futures::Error>(())
/// ```
#[must_use = "a PoolFuture does nothing unless you await it or ask for its result (dropping it detaches the task)"]
pub struct PoolFuture<T> {
    task: TaskRef<T>,
}

// One word: a burst of queued tasks pays for every caller's handle (issue 9).
const _: () = assert!(std::mem::size_of::<PoolFuture<u64>>() == std::mem::size_of::<usize>());

// A `PoolFuture` shares its state with the worker only through the crate's own locks, which never run
// user code while held and ignore poisoning; the value is moved out, never shared. So a panic while one
// is borrowed cannot leave it in a state that a later use would misread (tokio's `JoinHandle` says the
// same). Without these the compiler derives neither, because of the type-erased job behind the pointer.
impl<T> UnwindSafe for PoolFuture<T> {}
impl<T> RefUnwindSafe for PoolFuture<T> {}

impl<T> PoolFuture<T> {
    pub(crate) fn from_task(task: TaskRef<T>) -> Self {
        PoolFuture { task }
    }

    /// This future's stable identity.
    pub fn id(&self) -> FutureId {
        self.task.core().id()
    }

    /// Cancels the task if it has not started. Returns `true` if the future is cancelled (now or
    /// before), `false` if the task is running or finished. A successful cancel runs the done callbacks
    /// on this thread, then marks the future cancelled and done and wakes every waiter. (A second
    /// `cancel()` racing those callbacks also returns `true`: the task will never run.)
    ///
    /// ```
    /// use concurrent_futures::{Error, ThreadPoolExecutor};
    /// use std::sync::mpsc;
    ///
    /// let pool = ThreadPoolExecutor::new(1)?;
    /// let (started_tx, started) = mpsc::channel();
    /// let (release, release_rx) = mpsc::channel::<()>();
    /// let mut busy = pool.spawn(move || { started_tx.send(()).unwrap(); release_rx.recv().ok(); })?;
    /// let mut queued = pool.spawn(|| 1)?;
    /// started.recv().unwrap();
    /// assert!(!busy.cancel());            // running: too late
    /// assert!(queued.cancel());           // still queued: it will never run
    /// assert!(matches!(queued.result(None), Err(Error::Cancelled)));
    /// release.send(()).unwrap();
    /// busy.result(None)?;
    /// # Ok::<(), Error>(())
    /// ```
    pub fn cancel(&self) -> bool {
        self.task.cancel()
    }

    /// Asks the task to stop, even if it is running: cancels it if it has not started (`true`), signals
    /// its [`CancelToken`](crate::CancelToken) if it is running and has one (`true`; the task ends when
    /// it next checks the token), and otherwise does nothing (`false`).
    pub fn interrupt(&self) -> bool {
        self.task.interrupt()
    }

    /// A cloneable handle that cancels or interrupts this task from elsewhere (another thread, a
    /// shutdown path, a request's cancellation), without owning the future: see [`TaskHandle`].
    ///
    /// ```
    /// use concurrent_futures::ThreadPoolExecutor;
    /// # let pool = ThreadPoolExecutor::new(1)?;
    /// let f = pool.submit(|n: u32| n, 1)?;
    /// let handle = f.handle();
    /// assert_eq!(handle.id(), f.id());
    /// drop(f); // detached: the handle still reaches the task until it ends
    /// # Ok::<(), concurrent_futures::Error>(())
    /// ```
    pub fn handle(&self) -> TaskHandle
    where
        T: Send + 'static,
    {
        TaskHandle::new(self.id(), &self.task)
    }

    /// Ties the task to a tokio-util [`CancellationToken`] (a request's, a service's shutdown): once
    /// `token` is cancelled, the task is [interrupted](PoolFuture::interrupt): cancelled if it has not
    /// started, told to stop if it runs (a thread-pool task's [`CancelToken`](crate::CancelToken)
    /// fires; a process-pool task's worker is killed). At once if `token` is already cancelled.
    ///
    /// The link holds one registration on `token`, dropped when the task ends, so a long-lived token
    /// gathers nothing from finished tasks. Any number of futures may be tied to one token. The task is
    /// interrupted on the thread that cancels `token`, before `cancel()` returns (which also runs the
    /// done callbacks of a task it cancels there).
    ///
    /// ```
    /// use concurrent_futures::{Error, ThreadPoolExecutor};
    /// use tokio_util::sync::CancellationToken;
    ///
    /// let pool = ThreadPoolExecutor::new(1)?;
    /// let (started_tx, started) = std::sync::mpsc::channel();
    /// let request = CancellationToken::new();
    /// let running = pool.spawn_cancellable(move |token| {
    ///     started_tx.send(()).unwrap();
    ///     while !token.is_cancelled() { std::thread::yield_now(); }
    ///     Err::<(), _>(Error::Interrupted)
    /// })?;
    /// let queued = pool.submit(|n: u32| n, 1)?;
    /// running.interrupt_on_cancel(&request);
    /// queued.interrupt_on_cancel(&request);
    /// started.recv().unwrap();
    ///
    /// request.cancel();
    /// assert!(matches!(futures::executor::block_on(running), Err(Error::Interrupted)));
    /// assert!(queued.cancelled());
    /// # Ok::<(), Error>(())
    /// ```
    pub fn interrupt_on_cancel(&self, token: &CancellationToken)
    where
        T: Send + 'static,
    {
        if self.done() {
            return;
        }
        let mut registration = Box::pin(token.clone().cancelled_owned());
        let waker = Waker::from(Arc::new(InterruptOnWake {
            token: token.clone(),
            task: self.handle(),
        }));
        if registration
            .as_mut()
            .poll(&mut Context::from_waker(&waker))
            .is_ready()
        {
            self.interrupt();
            return;
        }
        // The callback owns the registration: it goes when the task ends (at once if it just did).
        self.on_outcome(move |_| drop(registration));
    }

    /// Whether the future was cancelled.
    pub fn cancelled(&self) -> bool {
        self.task.attend();
        self.task.core().phase() == Phase::Ended(Ending::Cancelled)
    }

    /// Whether the task is running now: started and not yet finished (a finished task whose done
    /// callbacks are still running counts as running; it is done once they return).
    pub fn running(&self) -> bool {
        self.task.attend();
        self.task.core().phase() == Phase::Running
    }

    /// Whether the future has ended: finished with a value or an error, or cancelled. Once it is true,
    /// the outcome is readable at once on every thread: `result(Duration::ZERO)` and
    /// `exception(Duration::ZERO)` do not time out.
    pub fn done(&self) -> bool {
        self.task.attend();
        self.task.core().has_ended()
    }

    /// Waits for the outcome and takes it: the value, the task's error, or [`Error::Cancelled`].
    ///
    /// `timeout` is `None` to wait without limit, or a duration (`Duration::ZERO` polls without
    /// blocking). When it passes, the call returns [`Error::Timeout`] and nothing else changes: the task
    /// keeps running and the future can be asked again. This blocks the calling thread; from async code,
    /// `.await` the future instead.
    ///
    /// ```
    /// use concurrent_futures::{Error, ThreadPoolExecutor};
    /// use std::{sync::mpsc, time::Duration};
    ///
    /// let pool = ThreadPoolExecutor::new(1)?;
    /// let (tx, rx) = mpsc::channel::<u32>();
    /// let mut f = pool.spawn(move || rx.recv().unwrap())?;
    /// assert!(matches!(f.result(Duration::ZERO), Err(Error::Timeout)));
    /// tx.send(7).unwrap();
    /// assert_eq!(f.result(Duration::from_secs(30))?, 7);
    /// # Ok::<(), Error>(())
    /// ```
    pub fn result(&mut self, timeout: impl Into<Option<Duration>>) -> Result<T, Error> {
        let core = self.task.core();
        let deadline = deadline_after(timeout.into());
        let job = self.task.job();
        job.help_until(deadline, &|| core.phase() == Phase::Running);
        // Not ended yet (the task is queued, or the wait timed out, or someone else read its end):
        // whatever ends it must not wait for this thread.
        if !core.has_ended() {
            self.task.attend();
        }
        block_until(deadline, |cx| core.poll_take(cx)).unwrap_or(Err(Error::Timeout))
    }

    /// Waits for the outcome and reports the failure without taking anything: `Ok(None)` for a value,
    /// `Ok(Some(error))` for a failed task, `Err(Cancelled)` for a cancelled one, `Err(Timeout)` if the
    /// timeout passed first (Python's `exception(timeout)`).
    pub fn exception(&self, timeout: impl Into<Option<Duration>>) -> Result<Option<Error>, Error> {
        let core = self.task.core();
        self.task.attend();
        let mut key = None;
        let outcome = block_until(deadline_after(timeout.into()), |cx| {
            core.poll_exception(cx, &mut key)
        });
        if let Some(k) = key {
            // Timed out: leave no waker behind.
            drop(core.unwatch(k));
        }
        match outcome {
            None => Err(Error::Timeout),
            Some(Some(Error::Cancelled)) if self.cancelled() => Err(Error::Cancelled),
            Some(e) => Ok(e),
        }
    }

    /// Runs `callback` with the outcome once the future ends; at once, on this thread, if it already has.
    ///
    /// Otherwise the callback runs on the thread that ends the future: a pool's worker (the thread pool's
    /// worker that ran the task, the process pool's driver thread of the worker that ran it, or the
    /// thread blocked in [`result`](PoolFuture::result) on it, which reads that worker's reply
    /// itself), or the thread that calls [`cancel`](PoolFuture::cancel). Keep callbacks short and
    /// non-blocking. Callbacks run in the order they were added, each exactly once. A panicking callback is caught and reported
    /// (to the `log` crate, or stderr without a logger); the others still run and the worker lives on.
    ///
    /// Callbacks registered before the end run *before* the outcome is published: while they run the
    /// future still looks unfinished ([`done`](PoolFuture::done) is false, a completing task reads as
    /// [`running`](PoolFuture::running), waiters keep waiting). Once it is done, its outcome is readable
    /// at once. A callback added while they run (from one of them, say) joins them and runs right after
    /// them, on that same thread. A callback added after the end runs at once on this thread, and other
    /// threads keep reading the outcome meanwhile; one added after `.await` or
    /// [`result`](PoolFuture::result) took the value out gets `Err(Error::InvalidState(..))`, since the
    /// value is gone.
    ///
    /// A callback must not block on its own future (through a handle it captured): the outcome is
    /// published only after the callbacks return, so it would wait for itself. Waiting on *another*
    /// future of the same pool is fine as long as a worker is free to run it: a worker takes its next
    /// task only after the callbacks of its last one have returned.
    ///
    /// ```
    /// use concurrent_futures::ThreadPoolExecutor;
    /// use std::sync::mpsc;
    ///
    /// let pool = ThreadPoolExecutor::new(1)?;
    /// let (tx, rx) = mpsc::channel();
    /// let f = pool.submit(|n: u32| n * 2, 21)?;
    /// f.add_done_callback(move |outcome| tx.send(*outcome.as_ref().unwrap()).unwrap());
    /// assert_eq!(rx.recv().unwrap(), 42);
    /// # Ok::<(), concurrent_futures::Error>(())
    /// ```
    pub fn add_done_callback<F>(&self, callback: F)
    where
        F: FnOnce(&Result<T, Error>) + Send + 'static,
    {
        self.task.attend();
        self.on_outcome(callback);
    }

    /// A callback of the crate's own that only watches the outcome go by (a tracing span closing, a
    /// registration dropped): unlike a user's [`add_done_callback`](Self::add_done_callback) it does
    /// not ask for the outcome to be read early, so a process task's reply stays its blocking
    /// caller's to read, and the callback runs whenever it is read.
    pub(crate) fn on_outcome<F>(&self, callback: F)
    where
        F: FnOnce(&Result<T, Error>) + Send + 'static,
    {
        let cb: Callback<T> = Box::new(callback);
        self.task.core().add_callback(cb);
    }

    /// Wraps the future so that dropping it cancels the task if it has not started (like tokio-util's
    /// `AbortOnDropHandle`).
    pub fn cancel_on_drop(self) -> CancelOnDrop<T> {
        CancelOnDrop(Some(self))
    }
}

impl<T> Drop for PoolFuture<T> {
    fn drop(&mut self) {
        // Detaching: the task runs on, but the waker of our last poll must not live until it ends.
        // No one may read its end for it now.
        let core = self.task.core();
        if !core.has_ended() {
            self.task.attend();
        }
        core.release_owner();
    }
}

impl<T> Future for PoolFuture<T> {
    type Output = Result<T, Error>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        self.task.attend();
        self.task.core().poll_take(cx)
    }
}

/// Terminated once the outcome has been handed out, by `.await` (or a poll) or by
/// [`result`](PoolFuture::result): so `futures::select!` takes a `PoolFuture` as it is, without
/// `.fuse()`, and never polls it again after its branch ran. A future that is merely
/// [`done`](PoolFuture::done) is not terminated: its outcome is still to be taken.
///
/// ```
/// # futures::executor::block_on(async {
/// use concurrent_futures::ThreadPoolExecutor;
/// use futures::future::FusedFuture;
///
/// let pool = ThreadPoolExecutor::new(1)?;
/// let (mut a, mut b) = (pool.submit(|n: u32| n, 1)?, pool.submit(|n: u32| n, 2)?);
/// let mut sum = 0;
/// loop {
///     futures::select! {
///         x = a => sum += x?,
///         y = b => sum += y?,
///         complete => break,
///     }
/// }
/// assert_eq!(sum, 3);
/// assert!(a.is_terminated() && b.is_terminated());
/// # Ok::<(), concurrent_futures::Error>(()) }).unwrap();
/// ```
impl<T> FusedFuture for PoolFuture<T> {
    fn is_terminated(&self) -> bool {
        self.task.core().handed_out()
    }
}

impl<T> fmt::Debug for PoolFuture<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "PoolFuture {{ id: {}, state: {} }}",
            self.id(),
            self.task.core().describe()
        )
    }
}

/// What a token tied by [`PoolFuture::interrupt_on_cancel`] wakes: interrupts the task, once the token
/// is really cancelled (a wake-up alone proves nothing).
struct InterruptOnWake {
    token: CancellationToken,
    task: TaskHandle,
}

impl Wake for InterruptOnWake {
    fn wake(self: Arc<Self>) {
        if self.token.is_cancelled() {
            self.task.interrupt();
        }
    }
}

/// A [`PoolFuture`] that cancels its task when dropped, unless the task has already started.
///
/// ```
/// use concurrent_futures::ThreadPoolExecutor;
/// # let pool = ThreadPoolExecutor::new(1)?;
/// let guarded = pool.submit(|n: u8| n, 1)?.cancel_on_drop();
/// let f = guarded.detach(); // back to a plain, detaching future
/// # drop(f);
/// # Ok::<(), concurrent_futures::Error>(())
/// ```
#[derive(Debug)]
pub struct CancelOnDrop<T>(Option<PoolFuture<T>>);

impl<T> CancelOnDrop<T> {
    /// Gives back the plain future, which no longer cancels on drop.
    pub fn detach(mut self) -> PoolFuture<T> {
        self.0.take().expect("present until dropped")
    }
}

impl<T> std::ops::Deref for CancelOnDrop<T> {
    type Target = PoolFuture<T>;
    fn deref(&self) -> &PoolFuture<T> {
        self.0.as_ref().expect("present until dropped")
    }
}

impl<T> std::ops::DerefMut for CancelOnDrop<T> {
    fn deref_mut(&mut self) -> &mut PoolFuture<T> {
        self.0.as_mut().expect("present until dropped")
    }
}

impl<T> Future for CancelOnDrop<T> {
    type Output = Result<T, Error>;
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        Pin::new(&mut **self).poll(cx)
    }
}

impl<T> FusedFuture for CancelOnDrop<T> {
    fn is_terminated(&self) -> bool {
        self.0.as_ref().map_or(true, |f| f.is_terminated())
    }
}

impl<T> Drop for CancelOnDrop<T> {
    fn drop(&mut self) {
        if let Some(f) = self.0.take() {
            f.cancel();
        }
    }
}

/// Something `wait` and `as_completed` can watch: a [`PoolFuture`] by value or by reference.
///
/// Owned futures come back out of `wait`/`as_completed` ready to be awaited; references let you keep
/// your own collection (and may repeat: duplicates are watched once).
pub trait Watch {
    /// The future being watched.
    #[doc(hidden)]
    fn watched(&self) -> &dyn Watched;
}

/// The type-erased view `wait` and `as_completed` need of a future. Not implementable outside the crate.
#[doc(hidden)]
pub trait Watched: private::Sealed {
    #[doc(hidden)]
    fn identity(&self) -> FutureId;
    #[doc(hidden)]
    fn poll_ended(&self, cx: &mut Context<'_>, key: &mut Option<u64>) -> Poll<()>;
    /// A first registration with a given waker: see `Core::watch`.
    #[doc(hidden)]
    fn watch(&self, waker: Waker) -> Registration;
    /// Removes the registration `key`, handing its waker back if the future still held it.
    #[doc(hidden)]
    fn unwatch(&self, key: u64) -> Option<Waker>;
    #[doc(hidden)]
    fn is_done(&self) -> bool;
    /// The id and whether the future has ended, read together (one atomic load).
    #[doc(hidden)]
    fn snapshot(&self) -> (FutureId, bool);
    #[doc(hidden)]
    fn raised(&self) -> bool;
}

mod private {
    pub trait Sealed {}
}

impl<T> private::Sealed for PoolFuture<T> {}

impl<T> Watched for PoolFuture<T> {
    fn identity(&self) -> FutureId {
        self.id()
    }
    fn poll_ended(&self, cx: &mut Context<'_>, key: &mut Option<u64>) -> Poll<()> {
        self.task.attend();
        self.task.core().poll_ended(cx, key)
    }
    fn watch(&self, waker: Waker) -> Registration {
        self.task.attend();
        self.task.core().watch(waker)
    }
    fn unwatch(&self, key: u64) -> Option<Waker> {
        self.task.core().unwatch(key)
    }
    fn is_done(&self) -> bool {
        self.done()
    }
    fn snapshot(&self) -> (FutureId, bool) {
        self.task.attend();
        self.task.core().snapshot()
    }
    fn raised(&self) -> bool {
        self.task.attend();
        self.task.core().raised()
    }
}

impl<T> Watch for PoolFuture<T> {
    fn watched(&self) -> &dyn Watched {
        self
    }
}

impl<T> Watch for &PoolFuture<T> {
    fn watched(&self) -> &dyn Watched {
        *self
    }
}

impl<T> Watch for &mut PoolFuture<T> {
    fn watched(&self) -> &dyn Watched {
        &**self
    }
}

impl<T> Watch for CancelOnDrop<T> {
    fn watched(&self) -> &dyn Watched {
        &**self
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use std::cell::Cell;
    use std::marker::PhantomData;
    use std::panic::{RefUnwindSafe, UnwindSafe};
    use std::rc::Rc;

    use super::{PoolFuture, Promise};

    /// `Is::<X>::SEND` is the inherent `true` where `X: Send`, else the trait's `false`; the same for
    /// `SYNC`. `UNWIND_SAFE` has no fallback: naming it is a compile-time assertion.
    struct Is<X: ?Sized>(PhantomData<X>);
    trait Not {
        const SEND: bool = false;
        const SYNC: bool = false;
    }
    impl<X: ?Sized> Not for Is<X> {}
    impl<X: ?Sized + Send> Is<X> {
        const SEND: bool = true;
    }
    impl<X: ?Sized + Sync> Is<X> {
        const SYNC: bool = true;
    }
    impl<X: ?Sized + UnwindSafe + RefUnwindSafe> Is<X> {
        const UNWIND_SAFE: bool = true;
    }

    /// A future and a promise are `Send` and `Sync` exactly when their output may be sent (as std's
    /// `Mutex<T>`), whatever the output's own `Sync`; a future is always unwind-safe.
    #[test]
    fn futures_and_promises_are_send_and_sync_when_their_output_is_send() {
        let auto = [
            (Is::<PoolFuture<u64>>::SEND, Is::<PoolFuture<u64>>::SYNC),
            (
                Is::<PoolFuture<Cell<u8>>>::SEND,
                Is::<PoolFuture<Cell<u8>>>::SYNC,
            ),
            (
                Is::<PoolFuture<Rc<u8>>>::SEND,
                Is::<PoolFuture<Rc<u8>>>::SYNC,
            ),
            (Is::<Promise<Cell<u8>>>::SEND, Is::<Promise<Cell<u8>>>::SYNC),
            (Is::<Promise<Rc<u8>>>::SEND, Is::<Promise<Rc<u8>>>::SYNC),
        ];
        assert_eq!(
            std::hint::black_box(auto),
            [
                (true, true),
                (true, true),
                (false, false),
                (true, true),
                (false, false)
            ]
        );
        assert!(std::hint::black_box(Is::<PoolFuture<Rc<u8>>>::UNWIND_SAFE));
        assert!(std::hint::black_box(
            Is::<PoolFuture<Cell<u8>>>::UNWIND_SAFE
        ));
    }
}
