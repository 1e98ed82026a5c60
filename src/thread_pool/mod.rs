//! [`ThreadPoolExecutor`]: Python's thread pool, whose futures are awaitable.

mod builder;
mod scope;
mod shared;
mod task;
mod worker;

use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

pub use builder::ThreadPoolBuilder;
pub use scope::{Scope, ScopedJoinHandle};
use shared::{Rejected, Shared, WhenFull};
pub use task::CancelToken;
pub(crate) use task::Runnable;
use task::{
    new_task, new_typed_task, Call, Holder, InSlot, Spawn, Spilled, TokenSlot, TokenState, Work,
};

use crate::error::{Error, TaskError};
use crate::future::state::fits_in_slot;
use crate::future::PoolFuture;
use crate::map::{ChunkOut, Map, MapOptions};
use crate::pool::{Frontend, Metrics, Pool, Queued, Sizes};

pub(crate) type Initializer = Arc<dyn Fn() -> Result<(), String> + Send + Sync>;

pub(crate) struct Config {
    pub(crate) sizes: Sizes,
    pub(crate) name_prefix: String,
    pub(crate) initializer: Option<Initializer>,
    pub(crate) stack_size: Option<usize>,
    /// How long an idle worker waits for work before its thread exits.
    pub(crate) keep_alive: std::time::Duration,
}

/// Under loom: what a model's [`ThreadPoolExecutor::loom_wake_idle_workers`] stands for.
#[cfg(loom)]
#[doc(hidden)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LoomWake {
    /// A spurious wake-up, which std's `Condvar` allows and loom's never makes.
    Spurious,
    /// The keep-alive running out (loom's timed waits never time out): from now on every wait
    /// ends as timed out.
    KeepAliveRanOut,
}

/// A pool of threads running blocking or CPU-bound closures; every submission returns a
/// [`PoolFuture`]. Python's `concurrent.futures.ThreadPoolExecutor`.
///
/// Threads start lazily (one per submit that finds no idle thread, up to `max_workers`) and live until
/// shutdown, or until they have been idle for the [`keep_alive`](ThreadPoolBuilder::keep_alive)
/// (default 10 s; the next submit that finds no idle thread starts one again). Tasks start in submission order. A task that panics fails its own future with
/// [`Error::Panicked`]; the worker lives on.
///
/// The handle is cheap to clone (a task may submit more work to its own pool). When the last handle is
/// dropped the pool shuts down *without blocking*: queued work still runs, then the threads exit. To
/// wait, call [`shutdown`](Self::shutdown), [`shutdown_async`](Self::shutdown_async), or use
/// [`shutdown_after`](Self::shutdown_after) (Python's `with` block). To run tasks that borrow from the
/// caller's stack, see [`scope`](Self::scope).
///
/// ```
/// use concurrent_futures::ThreadPoolExecutor;
///
/// let results = ThreadPoolExecutor::new(2)?.shutdown_after(|pool| {
///     let squares = pool.map(|n: u64| n * n, 1..=5)?;
///     squares.into_iter().collect::<Result<Vec<_>, _>>()
/// })?;
/// assert_eq!(results, [1, 4, 9, 16, 25]);
/// # Ok::<(), concurrent_futures::Error>(())
/// ```
#[derive(Clone)]
pub struct ThreadPoolExecutor {
    pool: Pool<Shared>,
}

impl Frontend for ThreadPoolExecutor {
    type Backend = Shared;

    fn pool(&self) -> &Pool<Shared> {
        &self.pool
    }

    fn from_pool(pool: Pool<Shared>) -> Self {
        ThreadPoolExecutor { pool }
    }
}

impl ThreadPoolExecutor {
    /// A pool of at most `max_workers` threads (an error if 0).
    pub fn new(max_workers: usize) -> Result<Self, Error> {
        Self::builder().max_workers(max_workers).build()
    }

    /// A builder for the other settings (thread names, initializer, stack size, queue bound).
    pub fn builder() -> ThreadPoolBuilder {
        ThreadPoolBuilder::new()
    }

    fn from_config(config: Config) -> Self {
        ThreadPoolExecutor {
            pool: Pool::new(Shared::new(config)),
        }
    }

    fn shared(&self) -> &Arc<Shared> {
        self.pool.backend()
    }

    /// Under loom: wakes every worker asleep on the pool's condvar without a credit or a signal, as
    /// `wake` says (see [`LoomWake`]). Checks the idle counts first (see
    /// `PoolState::check_idle_counts`).
    #[cfg(loom)]
    #[doc(hidden)]
    pub fn loom_wake_idle_workers(&self, wake: LoomWake) {
        let shared = self.shared();
        let mut st = shared.lock();
        st.check_idle_counts();
        if wake == LoomWake::KeepAliveRanOut {
            st.keep_alive_passed = true;
        }
        drop(st);
        shared.work.notify_all();
    }

    /// The most threads this pool runs.
    pub fn max_workers(&self) -> usize {
        self.shared().config.sizes.max_workers
    }

    /// Queues `func`; `token` is `()` for a plain task, or the task's token state.
    fn push<T, F, K>(&self, func: F, token: K, when_full: WhenFull) -> Result<PoolFuture<T>, Error>
    where
        F: FnOnce() -> Result<T, Error> + Send + 'static,
        T: Send + 'static,
        K: TokenSlot,
    {
        self.push_tied(func, token, when_full, |_| {})
    }

    /// [`push`](Self::push), with `tie` given the future before the task is queued, when no worker
    /// can have started it yet.
    fn push_tied<T, F, K>(
        &self,
        func: F,
        token: K,
        when_full: WhenFull,
        tie: impl FnOnce(&PoolFuture<T>),
    ) -> Result<PoolFuture<T>, Error>
    where
        F: FnOnce() -> Result<T, Error> + Send + 'static,
        T: Send + 'static,
        K: TokenSlot,
    {
        #[cfg(feature = "tracing")]
        let (func, span) = crate::trace::thread_task(&self.shared().config.name_prefix, func);
        let (task, fut) = new_task(func, token);
        #[cfg(feature = "tracing")]
        crate::trace::record_id(&span, fut.id());
        tie(&fut);
        match self.shared().enqueue(task, when_full) {
            Ok(()) => Ok(fut),
            Err(Rejected::Full(_)) => Err(Error::Full),
            Err(Rejected::Closed(e)) => Err(e),
        }
    }

    /// Queues `work` if there is room now; otherwise hands it back with the reason.
    fn try_push<T, W>(&self, work: W) -> Result<PoolFuture<T>, crate::Rejected<W>>
    where
        W: Work<T>,
        T: Send + 'static,
    {
        // The work goes in the future's slot if it fits there, as in `new_task`.
        if fits_in_slot::<W, T>() {
            self.try_push_in::<T, InSlot<W>>(work)
        } else {
            self.try_push_in::<T, Spilled<W>>(work)
        }
    }

    /// [`try_push`](Self::try_push), with the work kept by `H`.
    #[allow(unsafe_code)] // taking the work back out of a refused task: see the SAFETY comment.
    fn try_push_in<T, H>(&self, work: H::Work) -> Result<PoolFuture<T>, crate::Rejected<H::Work>>
    where
        H: Holder,
        H::Work: Work<T>,
        T: Send + 'static,
    {
        let (task, fut) = new_typed_task::<H, T, ()>(work, ());
        let error = match self.shared().enqueue(task.runnable(), WhenFull::Reject) {
            Ok(()) => return Ok(fut),
            Err(Rejected::Full(_)) => Error::Full,
            Err(Rejected::Closed(e)) => e,
        };
        // SAFETY: the queue refused the task and `fut` is still ours: nothing else can reach it.
        let work =
            unsafe { task.take_work() }.expect("a task the queue refused still has its work");
        Err(crate::Rejected::new(error, work))
    }

    async fn push_async<T, F>(&self, func: F) -> Result<PoolFuture<T>, Error>
    where
        F: FnOnce() -> Result<T, Error> + Send + 'static,
        T: Send + 'static,
    {
        #[cfg(feature = "tracing")]
        let (func, span) = crate::trace::thread_task(&self.shared().config.name_prefix, func);
        let (task, fut) = new_task(func, ());
        #[cfg(feature = "tracing")]
        crate::trace::record_id(&span, fut.id());
        let shared = self.shared();
        shared
            .room
            .enqueue(task, |t| shared.enqueue(t, WhenFull::Await))
            .await?;
        Ok(fut)
    }

    /// Runs `f(arg)` on the pool: Python's `submit(fn, arg)` (use a tuple for several arguments).
    /// Fails with [`Error::Shutdown`] after shutdown, or a broken pool's error. With a bounded queue
    /// that is full, this blocks until there is room, except on one of the pool's own threads (a
    /// task or a done callback), where it queues past the bound: the room could only come from the
    /// pool's threads, this one among them.
    pub fn submit<A, R, F>(&self, f: F, arg: A) -> Result<PoolFuture<R>, Error>
    where
        F: FnOnce(A) -> R + Send + 'static,
        A: Send + 'static,
        R: Send + 'static,
    {
        self.push(move || Ok(f(arg)), (), WhenFull::Block)
    }

    /// Runs a closure on the pool. With a bounded queue that is full, this blocks until there is room.
    ///
    /// ```
    /// # let pool = concurrent_futures::ThreadPoolExecutor::new(1)?;
    /// let name = String::from("world");
    /// let mut f = pool.spawn(move || format!("hello {name}"))?;
    /// assert_eq!(f.result(None)?, "hello world");
    /// # Ok::<(), concurrent_futures::Error>(())
    /// ```
    pub fn spawn<R, F>(&self, f: F) -> Result<PoolFuture<R>, Error>
    where
        F: FnOnce() -> R + Send + 'static,
        R: Send + 'static,
    {
        self.push(move || Ok(f()), (), WhenFull::Block)
    }

    /// Runs a task that can fail: an `Err` ends the future with [`Error::Failed`] (the error kept,
    /// downcastable), which `wait(FirstException)` reacts to, as Python's raised exceptions.
    pub fn submit_fallible<A, R, E, F>(&self, f: F, arg: A) -> Result<PoolFuture<R>, Error>
    where
        F: FnOnce(A) -> Result<R, E> + Send + 'static,
        A: Send + 'static,
        R: Send + 'static,
        E: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        self.push(
            move || f(arg).map_err(|e| Error::Failed(TaskError::new(e))),
            (),
            WhenFull::Block,
        )
    }

    /// [`submit_fallible`](Self::submit_fallible) for a closure.
    pub fn spawn_fallible<R, E, F>(&self, f: F) -> Result<PoolFuture<R>, Error>
    where
        F: FnOnce() -> Result<R, E> + Send + 'static,
        R: Send + 'static,
        E: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        self.push(
            move || f().map_err(|e| Error::Failed(TaskError::new(e))),
            (),
            WhenFull::Block,
        )
    }

    /// Runs a task that can be stopped while it runs: it gets a [`CancelToken`] to check, which fires
    /// on [`PoolFuture::interrupt`]. Returning `Err(e)` ends the future with `e` as it is (so
    /// `token.check()?` ends it with [`Error::Interrupted`]).
    pub fn spawn_cancellable<R, F>(&self, f: F) -> Result<PoolFuture<R>, Error>
    where
        F: FnOnce(&CancelToken) -> Result<R, Error> + Send + 'static,
        R: Send + 'static,
    {
        let state = TokenState::new(None, None);
        let token = CancelToken(state.clone());
        self.push(move || f(&token), state, WhenFull::Block)
    }

    /// [`spawn_cancellable`](Self::spawn_cancellable) tied to a caller's tokio-util
    /// [`CancellationToken`](tokio_util::sync::CancellationToken), such as a request's: cancelling it
    /// cancels the task if it is still queued ([`Error::Cancelled`]) and fires the task's token if it
    /// is running. The task's token is a [child](tokio_util::sync::CancellationToken::child_token) of
    /// `token`, so interrupting the task does not cancel the caller's token.
    ///
    /// A token wakes its waiters one by one, so a task that a worker takes while `token.cancel()` is
    /// still running may start rather than be cancelled; it starts with its own token already fired,
    /// and ends at its first check. By the time `cancel()` returns, every task of `token` still queued
    /// is cancelled. A task submitted with a token already cancelled never runs: it is cancelled
    /// before it is queued.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), concurrent_futures::Error> {
    /// use concurrent_futures::{Error, ThreadPoolExecutor};
    /// use tokio_util::sync::CancellationToken;
    ///
    /// let pool = ThreadPoolExecutor::new(1)?;
    /// let shutdown = CancellationToken::new(); // the service's
    /// let request = shutdown.child_token();    // one request's
    /// let work = pool.spawn_cancellable_with(request, |token| {
    ///     while !token.is_cancelled() { std::thread::yield_now(); } // long work, checking the token
    ///     Err::<(), _>(Error::Interrupted)
    /// })?;
    /// shutdown.cancel(); // reaches the running task through the request's token
    /// assert!(matches!(work.await, Err(Error::Interrupted) | Err(Error::Cancelled)));
    /// # Ok(()) }
    /// ```
    pub fn spawn_cancellable_with<R, F>(
        &self,
        token: tokio_util::sync::CancellationToken,
        f: F,
    ) -> Result<PoolFuture<R>, Error>
    where
        F: FnOnce(&CancelToken) -> Result<R, Error> + Send + 'static,
        R: Send + 'static,
    {
        let state = TokenState::new(Some(token.child_token()), None);
        let task_token = CancelToken(state.clone());
        // Tied before it is queued: a token cancelled already (or while the submit waits for room)
        // cancels the task, which no worker can have started yet.
        self.push_tied(
            move || f(&task_token),
            state,
            WhenFull::Block,
            |fut| fut.interrupt_on_cancel(&token),
        )
    }

    /// [`spawn_cancellable`](Self::spawn_cancellable) with a time limit: the token also fires `limit`
    /// after the task starts running. Threads cannot be killed, so the task must check the token.
    ///
    /// ```
    /// use concurrent_futures::{Error, ThreadPoolExecutor};
    /// use std::time::Duration;
    ///
    /// let pool = ThreadPoolExecutor::new(1)?;
    /// let mut forever = pool.spawn_with_time_limit(Duration::from_millis(20), |token| loop {
    ///     token.check()?;
    ///     std::thread::sleep(Duration::from_millis(1));
    /// })?;
    /// let outcome: Result<(), Error> = forever.result(None);
    /// assert!(matches!(outcome, Err(Error::Interrupted)));
    /// # Ok::<(), Error>(())
    /// ```
    pub fn spawn_with_time_limit<R, F>(&self, limit: Duration, f: F) -> Result<PoolFuture<R>, Error>
    where
        F: FnOnce(&CancelToken) -> Result<R, Error> + Send + 'static,
        R: Send + 'static,
    {
        let state = TokenState::new(None, Some(limit));
        let token = CancelToken(state.clone());
        self.push(move || f(&token), state, WhenFull::Block)
    }

    /// [`submit`](Self::submit) that never blocks: with a bounded queue that is full, fails with
    /// [`Error::Full`]. A failure (full, shut down or broken) hands `(f, arg)` back in the
    /// [`Rejected`](crate::Rejected), which converts into [`Error`] with `?`.
    ///
    /// ```
    /// use concurrent_futures::{Error, ThreadPoolExecutor};
    /// use std::sync::mpsc;
    ///
    /// let pool = ThreadPoolExecutor::builder().max_workers(1).queue_capacity(1).build()?;
    /// let (tx, rx) = mpsc::channel::<()>();
    /// let (started_tx, started) = mpsc::channel();
    /// let busy = pool.spawn(move || { started_tx.send(()).unwrap(); rx.recv().ok(); })?;
    /// started.recv().unwrap();
    /// let queued = pool.try_submit(|x: u8| x, 1)?; // fills the queue
    /// let rejected = pool.try_submit(|x: u8| x, 2).unwrap_err();
    /// assert!(rejected.is_full());
    /// let (f, arg) = rejected.into_inner();
    /// assert_eq!(f(arg), 2);
    /// tx.send(()).unwrap();
    /// # drop((busy, queued));
    /// # Ok::<(), Error>(())
    /// ```
    pub fn try_submit<A, R, F>(
        &self,
        f: F,
        arg: A,
    ) -> Result<PoolFuture<R>, crate::Rejected<(F, A)>>
    where
        F: FnOnce(A) -> R + Send + 'static,
        A: Send + 'static,
        R: Send + 'static,
    {
        self.try_push(Call(f, arg)).map_err(|r| {
            let (error, Call(f, arg)) = r.into_parts();
            crate::Rejected::new(error, (f, arg))
        })
    }

    /// [`spawn`](Self::spawn) that never blocks: fails with [`Error::Full`] when a bounded queue is full,
    /// handing the closure back in the [`Rejected`](crate::Rejected).
    ///
    /// ```
    /// use concurrent_futures::{Error, ThreadPoolExecutor};
    ///
    /// let pool = ThreadPoolExecutor::new(1)?;
    /// pool.shutdown(concurrent_futures::Queued::Run);
    /// let rejected = pool.try_spawn(|| 6 * 7).unwrap_err();
    /// assert!(matches!(rejected.error(), Error::Shutdown));
    /// assert_eq!(rejected.into_inner()(), 42);
    /// # Ok::<(), Error>(())
    /// ```
    pub fn try_spawn<R, F>(&self, f: F) -> Result<PoolFuture<R>, crate::Rejected<F>>
    where
        F: FnOnce() -> R + Send + 'static,
        R: Send + 'static,
    {
        self.try_push(Spawn(f)).map_err(|r| {
            let (error, Spawn(f)) = r.into_parts();
            crate::Rejected::new(error, f)
        })
    }

    /// [`submit`](Self::submit) for async code: with a bounded queue that is full, waits (without
    /// blocking the thread) for room. Dropping the returned future before it resolves drops the task.
    ///
    /// Polled on one of the pool's own threads (a task or a done callback running it to completion
    /// with `block_on`), it does not wait: the room would have to come from that thread. It queues
    /// past the bound there, as [`submit`](Self::submit) does.
    pub async fn submit_async<A, R, F>(&self, f: F, arg: A) -> Result<PoolFuture<R>, Error>
    where
        F: FnOnce(A) -> R + Send + 'static,
        A: Send + 'static,
        R: Send + 'static,
    {
        self.push_async(move || Ok(f(arg))).await
    }

    /// [`spawn`](Self::spawn) for async code: waits for room in a bounded queue without blocking,
    /// except when polled on one of the pool's own threads, where it queues past the bound (see
    /// [`submit_async`](Self::submit_async)).
    pub async fn spawn_async<R, F>(&self, f: F) -> Result<PoolFuture<R>, Error>
    where
        F: FnOnce() -> R + Send + 'static,
        R: Send + 'static,
    {
        self.push_async(move || Ok(f())).await
    }

    /// Applies `f` to every input: Python's `executor.map`. Results come in input order. Every input is
    /// submitted before this returns; use [`map_with`](Self::map_with) for a timeout, chunks, or a
    /// bound on in-flight tasks (needed for endless inputs).
    pub fn map<A, R, F, I>(&self, f: F, inputs: I) -> Result<Map<R>, Error>
    where
        F: Fn(A) -> R + Send + Sync + 'static,
        I: IntoIterator<Item = A>,
        I::IntoIter: Send + 'static,
        A: Send + 'static,
        R: Send + 'static,
    {
        self.map_with(f, inputs, MapOptions::new())
    }

    /// [`map`](Self::map) with options.
    ///
    /// ```
    /// use concurrent_futures::{MapOptions, ThreadPoolExecutor};
    ///
    /// let pool = ThreadPoolExecutor::new(2)?;
    /// // An endless input works with a bound on the tasks in flight.
    /// let evens: Vec<u64> = pool
    ///     .map_with(|n: u64| n * 2, 0.., MapOptions::new().buffer(4).chunksize(8))?
    ///     .into_iter()
    ///     .take(100)
    ///     .collect::<Result<_, _>>()?;
    /// assert_eq!(evens[99], 198);
    /// # Ok::<(), concurrent_futures::Error>(())
    /// ```
    pub fn map_with<A, R, F, I>(&self, f: F, inputs: I, opts: MapOptions) -> Result<Map<R>, Error>
    where
        F: Fn(A) -> R + Send + Sync + 'static,
        I: IntoIterator<Item = A>,
        I::IntoIter: Send + 'static,
        A: Send + 'static,
        R: Send + 'static,
    {
        let f = Arc::new(f);
        let g = f.clone();
        crate::pool::start_map(
            self,
            inputs,
            opts,
            move |pool, a| {
                let f = f.clone();
                pool.push(move || Ok(ChunkOut::One(f(a))), (), WhenFull::Overfill)
            },
            move |pool, items| {
                let f = g.clone();
                pool.push(
                    move || {
                        Ok(ChunkOut::Many(
                            items
                                .into_iter()
                                .map(|a| crate::panic::catch(|| f(a)).map_err(Error::Panicked))
                                .collect(),
                        ))
                    },
                    (),
                    WhenFull::Overfill,
                )
            },
        )
    }

    /// Shuts the pool down and waits until every worker thread has exited: Python's
    /// `shutdown(wait=True, cancel_futures=…)`. Running tasks finish; queued ones run or are cancelled
    /// as `queued` says. Calling it again is harmless. Called from one of this pool's own tasks, it waits
    /// for the other workers only. Called from a done callback, it closes the pool and returns without
    /// waiting: a callback runs before its future's outcome is published, so a task of the pool that
    /// waits for that outcome could not finish while the callback waited for it.
    pub fn shutdown(&self, queued: Queued) {
        self.pool.shutdown(queued)
    }

    /// Shuts the pool down without waiting: Python's `shutdown(wait=False, cancel_futures=…)`. Queued
    /// tasks still run (unless cancelled), and the threads exit when the queue is empty.
    pub fn shutdown_nowait(&self, queued: Queued) {
        self.pool.shutdown_nowait(queued)
    }

    /// [`shutdown`](Self::shutdown) for async code: resolves when every worker has exited, without
    /// blocking the runtime's threads. Polled in a done callback, it resolves at once, as `shutdown`
    /// returns there.
    pub fn shutdown_async(&self, queued: Queued) -> impl Future<Output = ()> + Send + '_ {
        self.pool.shutdown_async(queued)
    }

    /// Runs `body` with the pool, then shuts it down and waits for all its work, even if `body` panics:
    /// Python's `with ThreadPoolExecutor(...) as ex:` block.
    ///
    /// ```
    /// use concurrent_futures::ThreadPoolExecutor;
    /// use std::sync::atomic::{AtomicUsize, Ordering};
    /// use std::sync::Arc;
    ///
    /// let count = Arc::new(AtomicUsize::new(0));
    /// ThreadPoolExecutor::new(2)?.shutdown_after(|pool| {
    ///     for _ in 0..4 {
    ///         let count = count.clone();
    ///         drop(pool.spawn(move || count.fetch_add(1, Ordering::SeqCst)));
    ///     }
    /// });
    /// assert_eq!(count.load(Ordering::SeqCst), 4); // every task ran before the block returned
    /// # Ok::<(), concurrent_futures::Error>(())
    /// ```
    ///
    /// This consumes the pool and ends it. Tasks that borrow from the caller's stack, joined at the end
    /// of a block while the pool lives on, are [`scope`](Self::scope)'s.
    pub fn shutdown_after<R>(self, body: impl FnOnce(&ThreadPoolExecutor) -> R) -> R {
        crate::pool::shutdown_after(self, body)
    }

    /// A snapshot of the pool's counters.
    pub fn metrics(&self) -> Metrics {
        self.pool.metrics()
    }
}

impl fmt::Debug for ThreadPoolExecutor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let m = self.metrics();
        f.debug_struct("ThreadPoolExecutor")
            .field("max_workers", &self.max_workers())
            .field("workers", &m.workers)
            .field("queued", &m.queued)
            .field("running", &m.running)
            .finish()
    }
}
