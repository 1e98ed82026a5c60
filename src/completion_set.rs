//! [`CompletionSet`]: a growing set of futures, drained in completion order (tokio's `JoinSet`).

use std::fmt;
use std::future::{poll_fn, Future};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use futures_core::{FusedStream, Stream};

use crate::error::Error;
use crate::future::{block_until, deadline_after, FutureId, PoolFuture, TaskHandle};
use crate::watch::ReadyQueue;

/// A set of [`PoolFuture`]s that grows while it is drained, yielding each outcome as its task ends:
/// tokio's `JoinSet` for pool tasks, where [`as_completed`](crate::as_completed) is fixed at creation.
///
/// [`push`](CompletionSet::push) futures from any pool (or [`Promise`](crate::Promise)s) at any time;
/// take outcomes with [`join_next`](CompletionSet::join_next)`.await`, as a [`Stream`], or with the
/// blocking [`next_blocking`](CompletionSet::next_blocking). Each future has its own waker feeding one
/// ready queue, so a completion costs O(1) however many futures the set holds.
///
/// Dropping the set *detaches* its futures: their tasks run on and their outcomes are dropped, as when
/// a [`PoolFuture`] is dropped (and unlike tokio's `JoinSet`, which aborts). Ask for cancellation
/// explicitly, with [`cancel_all`](CompletionSet::cancel_all) / [`interrupt_all`](CompletionSet::interrupt_all),
/// or for every drop with [`cancel_on_drop`](CompletionSet::cancel_on_drop). Cancelled tasks are still
/// yielded, with [`Error::Cancelled`], so every pushed future is accounted for.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), concurrent_futures::Error> {
/// use concurrent_futures::{CompletionSet, ThreadPoolExecutor};
///
/// let pool = ThreadPoolExecutor::new(2)?;
/// let mut set = CompletionSet::new();
/// set.push(pool.submit(|n: u64| n * n, 3)?);
/// let mut total = 0;
/// while let Some(outcome) = set.join_next().await {
///     let n = outcome?;
///     total += n;
///     if n < 1000 {
///         set.push(pool.submit(|n: u64| n * n, n)?); // work that finds more work
///     }
/// }
/// assert_eq!(total, 9 + 81 + 6561);
/// # Ok(()) }
/// ```
#[must_use = "a CompletionSet yields nothing unless drained"]
pub struct CompletionSet<T> {
    /// Futures by slot; `None` for a free slot (its index is in `free`).
    slots: Vec<Option<Entry<T>>>,
    free: Vec<usize>,
    len: usize,
    /// Slots whose waker fired (or that were just pushed), to poll on the next turn.
    ready: Arc<ReadyQueue>,
    cancel_on_drop: bool,
}

struct Entry<T> {
    future: PoolFuture<T>,
    /// This slot's waker, kept so each poll registers the same one (no clone per completion).
    waker: Waker,
}

impl<T> CompletionSet<T> {
    /// An empty set.
    pub fn new() -> Self {
        CompletionSet {
            slots: Vec::new(),
            free: Vec::new(),
            len: 0,
            ready: ReadyQueue::new(),
            cancel_on_drop: false,
        }
    }

    /// Makes dropping the set cancel every task in it that has not started (running tasks are left to
    /// finish; use [`interrupt_all`](Self::interrupt_all) before dropping to stop those too).
    ///
    /// ```
    /// use concurrent_futures::{CompletionSet, ThreadPoolExecutor};
    /// use std::sync::mpsc;
    ///
    /// let pool = ThreadPoolExecutor::new(1)?;
    /// let (started_tx, started) = mpsc::channel();
    /// let (release, release_rx) = mpsc::channel::<()>();
    /// let busy = pool.spawn(move || { started_tx.send(()).unwrap(); release_rx.recv().ok(); })?;
    /// started.recv().unwrap();
    /// let queued = pool.spawn(|| ())?;
    /// let watch = queued.handle();
    /// let mut set = CompletionSet::new().cancel_on_drop();
    /// set.push(queued);
    /// drop(set);
    /// assert!(watch.cancelled());
    /// release.send(()).unwrap();
    /// # drop(busy);
    /// # Ok::<(), concurrent_futures::Error>(())
    /// ```
    pub fn cancel_on_drop(mut self) -> Self {
        self.cancel_on_drop = true;
        self
    }

    /// Adds a future; its outcome will be yielded once it ends (at the next poll if it already has).
    /// Returns its id. O(1).
    ///
    /// ```
    /// use concurrent_futures::{CompletionSet, Promise};
    ///
    /// let mut set = CompletionSet::new();
    /// assert!(set.is_empty());
    /// let (promise, future) = Promise::new();
    /// let id = set.push(future);
    /// assert_eq!(set.len(), 1);
    /// promise.set_result("done")?;
    /// let (got, outcome) = set.next_blocking(None)?.unwrap();
    /// assert_eq!((got, outcome?), (id, "done"));
    /// assert!(set.is_empty());
    /// # Ok::<(), concurrent_futures::Error>(())
    /// ```
    pub fn push(&mut self, future: PoolFuture<T>) -> FutureId {
        let id = future.id();
        let index = match self.free.pop() {
            Some(i) => i,
            None => {
                self.slots.push(None);
                self.slots.len() - 1
            }
        };
        let waker = self.ready.waker(index);
        self.slots[index] = Some(Entry { future, waker });
        self.len += 1;
        // Polled at the next turn, which registers its waker (or finds it already done).
        self.ready.push(index);
        id
    }

    /// Futures in the set: pushed and not yet yielded.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the set holds no future.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Cancels every task in the set that has not started; returns how many it cancelled. They stay in
    /// the set and are yielded with [`Error::Cancelled`].
    ///
    /// ```
    /// use concurrent_futures::{CompletionSet, Error, Promise};
    ///
    /// let (running, a) = Promise::<u8>::new();
    /// let (_queued, b) = Promise::<u8>::new();
    /// assert!(running.set_running());
    /// let mut set: CompletionSet<u8> = [a, b].into_iter().collect();
    /// assert_eq!(set.cancel_all(), 1); // the running one is not cancelled
    /// let (_, outcome) = set.next_blocking(None)?.unwrap();
    /// assert!(matches!(outcome, Err(Error::Cancelled)));
    /// running.set_result(1)?;
    /// assert_eq!(set.next_blocking(None)?.unwrap().1?, 1);
    /// # Ok::<(), Error>(())
    /// ```
    pub fn cancel_all(&self) -> usize {
        self.futures().filter(|f| cancel_one(f)).count()
    }

    /// Cancels every task that has not started and asks every running one to stop
    /// ([`PoolFuture::interrupt`]); returns how many it reached. All stay in the set until they end.
    ///
    /// ```
    /// use concurrent_futures::{CompletionSet, Error, ThreadPoolExecutor};
    /// use std::sync::mpsc;
    ///
    /// let pool = ThreadPoolExecutor::new(1)?;
    /// let (started_tx, started) = mpsc::channel();
    /// let mut set = CompletionSet::new();
    /// set.push(pool.spawn_cancellable(move |token| {
    ///     started_tx.send(()).unwrap();
    ///     while !token.is_cancelled() { std::thread::yield_now(); }
    ///     Err::<u8, _>(Error::Interrupted)
    /// })?);
    /// set.push(pool.spawn(|| 2)?);
    /// started.recv().unwrap();
    /// assert_eq!(set.interrupt_all(), 2); // one interrupted, one cancelled
    /// while let Some((_, outcome)) = set.next_blocking(None)? {
    ///     assert!(matches!(outcome, Err(Error::Interrupted | Error::Cancelled)));
    /// }
    /// # Ok::<(), Error>(())
    /// ```
    pub fn interrupt_all(&self) -> usize {
        // Queued ones first: a running task stopped first could free its worker to start one of them.
        let cancelled: Vec<bool> = self.futures().map(cancel_one).collect();
        let interrupted = self
            .futures()
            .zip(&cancelled)
            .filter(|(f, &was_cancelled)| !was_cancelled && f.interrupt())
            .count();
        cancelled.iter().filter(|&&c| c).count() + interrupted
    }

    /// A [`TaskHandle`] for every task in the set, to stop them from elsewhere.
    ///
    /// ```
    /// use concurrent_futures::{CompletionSet, Promise};
    ///
    /// let (_p, f) = Promise::<u8>::new();
    /// let set: CompletionSet<u8> = [f].into_iter().collect();
    /// let handles = set.handles();
    /// std::thread::spawn(move || assert!(handles[0].cancel())).join().unwrap();
    /// # drop(set);
    /// ```
    pub fn handles(&self) -> Vec<TaskHandle>
    where
        T: Send + 'static,
    {
        self.futures().map(PoolFuture::handle).collect()
    }

    fn futures(&self) -> impl Iterator<Item = &PoolFuture<T>> {
        self.slots.iter().flatten().map(|e| &e.future)
    }

    /// The next outcome, with the id of the future it came from: `Ready(None)` once the set is empty.
    /// For hand-written futures and `poll_fn`; registers `cx`'s waker when it returns `Pending`.
    ///
    /// ```
    /// # futures::executor::block_on(async {
    /// use concurrent_futures::{CompletionSet, Promise};
    /// use std::future::poll_fn;
    ///
    /// let mut set = CompletionSet::new();
    /// let (promise, f) = Promise::new();
    /// set.push(f);
    /// promise.set_result(5u8)?;
    /// let (_, outcome) = poll_fn(|cx| set.poll_join_next_with_id(cx)).await.unwrap();
    /// assert_eq!(outcome?, 5);
    /// # Ok::<(), concurrent_futures::Error>(()) }).unwrap();
    /// ```
    pub fn poll_join_next_with_id(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<Option<(FutureId, Result<T, Error>)>> {
        // Register first: an index queued after the drain below still wakes this task.
        self.ready.set_parent(cx.waker());
        while let Some(i) = self.ready.pop() {
            // A stale index (its future yielded, the slot free or reused) costs one extra poll at most.
            let Some(entry) = self.slots.get_mut(i).and_then(Option::as_mut) else {
                continue;
            };
            let mut slot_cx = Context::from_waker(&entry.waker);
            if let Poll::Ready(outcome) = Pin::new(&mut entry.future).poll(&mut slot_cx) {
                let entry = self.slots[i].take().expect("just polled");
                self.free.push(i);
                self.len -= 1;
                return Poll::Ready(Some((entry.future.id(), outcome)));
            }
        }
        if self.len == 0 {
            Poll::Ready(None)
        } else {
            Poll::Pending
        }
    }

    /// Waits for the next task to end and gives its outcome; `None` once the set is empty (which a set
    /// that is still being pushed to may only be for now). Cancel-safe: dropping the returned future
    /// loses nothing, so it can be a `select!` branch.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), concurrent_futures::Error> {
    /// use concurrent_futures::{CompletionSet, ThreadPoolExecutor};
    /// use std::time::Duration;
    ///
    /// let pool = ThreadPoolExecutor::new(1)?;
    /// let mut set = CompletionSet::new();
    /// set.push(pool.submit(|n: u32| n + 1, 1)?);
    /// let first = tokio::time::timeout(Duration::from_secs(30), set.join_next()).await;
    /// assert_eq!(first.unwrap().unwrap()?, 2);
    /// assert!(set.join_next().await.is_none());
    /// # Ok(()) }
    /// ```
    pub fn join_next(&mut self) -> impl Future<Output = Option<Result<T, Error>>> + '_ {
        poll_fn(|cx| {
            self.poll_join_next_with_id(cx)
                .map(|next| next.map(|(_, outcome)| outcome))
        })
    }

    /// [`join_next`](Self::join_next), with the id of the future the outcome came from (Python's
    /// `future_to_url[future]` idiom: keep a map from [`push`](Self::push)'s id to the input).
    ///
    /// ```
    /// # futures::executor::block_on(async {
    /// use concurrent_futures::{CompletionSet, ThreadPoolExecutor};
    /// use std::collections::HashMap;
    ///
    /// let pool = ThreadPoolExecutor::new(2)?;
    /// let mut set = CompletionSet::new();
    /// let mut inputs = HashMap::new();
    /// for url in ["a", "bb", "ccc"] {
    ///     inputs.insert(set.push(pool.submit(|s: &str| s.len(), url)?), url);
    /// }
    /// while let Some((id, len)) = set.join_next_with_id().await {
    ///     assert_eq!(inputs[&id].len(), len?);
    /// }
    /// # Ok::<(), concurrent_futures::Error>(()) }).unwrap();
    /// ```
    pub fn join_next_with_id(
        &mut self,
    ) -> impl Future<Output = Option<(FutureId, Result<T, Error>)>> + '_ {
        poll_fn(|cx| self.poll_join_next_with_id(cx))
    }

    /// Blocks this thread until a task ends, for sync code: `Ok(Some((id, outcome)))`, `Ok(None)` if
    /// the set is empty, or `Err(Error::Timeout)` if `timeout` passed first (`None` waits without
    /// limit; `Duration::ZERO` only looks). A timeout changes nothing: ask again later.
    ///
    /// ```
    /// use concurrent_futures::{CompletionSet, ThreadPoolExecutor};
    ///
    /// let pool = ThreadPoolExecutor::new(2)?;
    /// let mut set = CompletionSet::new();
    /// for n in 1..=3u32 {
    ///     set.push(pool.submit(|n: u32| n * 2, n)?);
    /// }
    /// let mut sum = 0;
    /// while let Some((_id, outcome)) = set.next_blocking(None)? {
    ///     sum += outcome?;
    /// }
    /// assert_eq!(sum, 12);
    /// # Ok::<(), concurrent_futures::Error>(())
    /// ```
    #[allow(clippy::type_complexity)]
    pub fn next_blocking(
        &mut self,
        timeout: impl Into<Option<Duration>>,
    ) -> Result<Option<(FutureId, Result<T, Error>)>, Error> {
        block_until(deadline_after(timeout.into()), |cx| {
            self.poll_join_next_with_id(cx)
        })
        .ok_or(Error::Timeout)
    }
}

/// Cancels one task of a set being cancelled as a whole. Cancelling drops the task's closure: a panic
/// there (after the cancel has won) is reported rather than leaving the rest of the set running, or
/// aborting a set dropped while its thread unwinds.
fn cancel_one<T>(f: &PoolFuture<T>) -> bool {
    crate::panic::contain(|| f.cancel()).unwrap_or(true)
}

impl<T> Default for CompletionSet<T> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T> Extend<PoolFuture<T>> for CompletionSet<T> {
    fn extend<I: IntoIterator<Item = PoolFuture<T>>>(&mut self, futures: I) {
        for f in futures {
            self.push(f);
        }
    }
}

impl<T> FromIterator<PoolFuture<T>> for CompletionSet<T> {
    fn from_iter<I: IntoIterator<Item = PoolFuture<T>>>(futures: I) -> Self {
        let mut set = CompletionSet::new();
        set.extend(futures);
        set
    }
}

/// Yields `(id, outcome)` in completion order, and ends (`None`) whenever the set is empty. A set that
/// is pushed to after that yields again; meanwhile its [`FusedStream::is_terminated`] is `true`, so
/// `futures::select!` skips an empty set and takes it up again once it holds work.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), concurrent_futures::Error> {
/// use concurrent_futures::{CompletionSet, ThreadPoolExecutor};
/// use futures::{StreamExt, TryStreamExt};
///
/// let pool = ThreadPoolExecutor::new(2)?;
/// let set: CompletionSet<u32> = (1..=4).map(|n| pool.submit(|n: u32| n, n)).collect::<Result<_, _>>()?;
/// let mut all: Vec<u32> = set.map(|(_id, outcome)| outcome).try_collect().await?;
/// all.sort();
/// assert_eq!(all, [1, 2, 3, 4]);
/// # Ok(()) }
/// ```
impl<T> Stream for CompletionSet<T> {
    type Item = (FutureId, Result<T, Error>);

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.get_mut().poll_join_next_with_id(cx)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        // Every future in the set is yielded once; more may be pushed.
        (self.len, None)
    }
}

impl<T> FusedStream for CompletionSet<T> {
    fn is_terminated(&self) -> bool {
        self.len == 0
    }
}

impl<T> Drop for CompletionSet<T> {
    fn drop(&mut self) {
        if self.cancel_on_drop {
            self.cancel_all();
        }
    }
}

impl<T> fmt::Debug for CompletionSet<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CompletionSet")
            .field("len", &self.len)
            .field("cancel_on_drop", &self.cancel_on_drop)
            .finish()
    }
}
