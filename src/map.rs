//! `map`: apply a function to every input on a pool, results in input order.

use std::collections::VecDeque;
use std::fmt;
use std::future::Future;
use std::iter::FusedIterator;
use std::num::NonZeroUsize;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use futures_core::{FusedStream, Stream};

use crate::deadline::Deadline;
use crate::error::Error;
use crate::future::{block_until, PoolFuture};

/// How [`map`](crate::Executor::map) runs: an overall timeout, inputs per task, and a bound on the
/// tasks in flight.
///
/// ```
/// use concurrent_futures::MapOptions;
/// use std::time::Duration;
///
/// let opts = MapOptions::new()
///     .timeout(Duration::from_secs(5)) // one deadline for the whole iteration, from the map() call
///     .chunksize(16)                   // 16 inputs per task (one round trip each in a process pool)
///     .buffer(4);                      // at most 4 tasks in flight: endless inputs work
/// # let _ = opts;
/// ```
#[derive(Clone, Copy, Debug)]
pub struct MapOptions {
    timeout: Option<Duration>,
    chunksize: usize,
    buffer: Option<usize>,
}

impl Default for MapOptions {
    fn default() -> Self {
        MapOptions {
            timeout: None,
            chunksize: 1,
            buffer: None,
        }
    }
}

impl MapOptions {
    /// Python's defaults: no timeout, one input per task, every input submitted at once.
    pub fn new() -> Self {
        Self::default()
    }

    /// One deadline for the whole iteration, counted from the `map` call. When it passes, the result
    /// being waited for is an [`Error::Timeout`], the remaining tasks are cancelled, and the stream ends.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }

    /// Inputs sent per task (default 1). Each element still gets its own result, in order; a panic in
    /// one element fails only that element.
    ///
    /// Both pools honour it and both refuse 0: `map` then fails at the call with
    /// [`Error::InvalidArgument`]`("chunksize must be >= 1")`, before reading any input. (Python's
    /// process pool raises the same; its thread pool ignores `chunksize`, whatever its value. Here one
    /// rule for both, so that code generic over [`Executor`](crate::Executor) behaves the same on either.
    /// A negative value, which Python's thread pool also ignores, cannot be written with `usize`.)
    ///
    /// ```
    /// use concurrent_futures::{Error, MapOptions, ThreadPoolExecutor};
    ///
    /// let pool = ThreadPoolExecutor::new(1)?;
    /// let refused = pool.map_with(|n: u32| n, 0..4, MapOptions::new().chunksize(0));
    /// assert!(matches!(refused, Err(Error::InvalidArgument(_))));
    /// # Ok::<(), Error>(())
    /// ```
    pub fn chunksize(mut self, chunksize: usize) -> Self {
        self.chunksize = chunksize;
        self
    }

    /// At most `tasks` tasks (chunks) in flight: `map` reads and submits that many at the call, and one
    /// more each time a task's results are taken, so an endless iterator works and memory stays bounded.
    /// The task that replaces a taken one runs while the reader handles its results. Must be at least 1.
    pub fn buffer(mut self, tasks: usize) -> Self {
        self.buffer = Some(tasks);
        self
    }

    pub(crate) fn chunk_len(&self) -> Result<NonZeroUsize, Error> {
        NonZeroUsize::new(self.chunksize)
            .ok_or_else(|| Error::InvalidArgument("chunksize must be >= 1".into()))
    }

    fn in_flight_limit(&self) -> Result<usize, Error> {
        match self.buffer {
            None => Ok(usize::MAX),
            Some(0) => Err(Error::InvalidArgument(
                "buffersize must be None or > 0".into(),
            )),
            Some(n) => Ok(n),
        }
    }
}

/// What one map task returns: a single result, or one per element of its chunk.
#[doc(hidden)]
pub enum ChunkOut<R> {
    One(R),
    Many(Vec<Result<R, Error>>),
}

/// One submitted task of a map: its future, and how many inputs it carries.
pub(crate) struct Chunk<R> {
    pub(crate) future: PoolFuture<ChunkOut<R>>,
    pub(crate) inputs: usize,
}

/// Pulls the next chunk of inputs and submits it; `None` once the inputs are exhausted.
pub(crate) type Feed<R> = Box<dyn FnMut() -> Option<Result<Chunk<R>, Error>> + Send + 'static>;

enum InFlight<R> {
    Task(Chunk<R>),
    /// A submit that failed after the call returned (the pool shut down or broke): reported in place.
    Rejected(Error),
}

/// The results of a `map`, in input order: a `Stream` of `Result<R, Error>` for async code, and an
/// iterator (through `IntoIterator`) for sync code.
///
/// A failed element yields its error in place and iteration goes on (CPython's newest behaviour); a
/// chunk that fails as a whole (cancelled by a shutdown, failed by a broken pool) yields its error once
/// for each of its inputs, so every result stays lined up with its input. A timeout yields one
/// [`Error::Timeout`], cancels what has not started, and ends the stream. Dropping the `Map`, read or
/// not, cancels every task that has not started.
///
/// An input iterator that panics in `next()` hands its panic to the reader (from `next()` or
/// `poll_next`), once: the map reads no more input, and the tasks already in flight are still delivered,
/// in order, before it ends.
///
/// With a [`buffer`](MapOptions::buffer), inputs are read as results are taken. If the pool is shut down
/// (or breaks) meanwhile, the input read for the next task cannot be submitted: its place yields the
/// pool's error ([`Error::Shutdown`] or the broken pool's) and the map ends after the tasks already in
/// flight. If the pool's last handle is dropped instead, the map stops reading inputs and ends quietly
/// after the tasks in flight, as Python 3.14's map does with its weak reference to the executor.
#[must_use = "dropping a Map cancels its tasks that have not started"]
pub struct Map<R> {
    feed: Option<Feed<R>>,
    in_flight: VecDeque<InFlight<R>>,
    ready: VecDeque<Result<R, Error>>,
    limit: usize,
    deadline: Option<Deadline>,
    /// The stream has returned `None`.
    ended: bool,
}

impl<R> Map<R> {
    /// Starts a map: submits the first `limit` chunks (all of them without a buffer) before returning.
    /// A pool that rejects the very first submit makes the call fail, as in Python.
    pub(crate) fn start(mut feed: Feed<R>, opts: MapOptions) -> Result<Map<R>, Error> {
        opts.chunk_len()?;
        let limit = opts.in_flight_limit()?;
        let deadline = opts.timeout.map(Deadline::after);
        let first = match feed() {
            None => None,
            Some(Ok(chunk)) => Some(chunk),
            Some(Err(e)) => return Err(e),
        };
        let mut map = Map {
            feed: first.is_some().then_some(feed),
            in_flight: first.into_iter().map(InFlight::Task).collect(),
            ready: VecDeque::new(),
            limit,
            deadline,
            ended: false,
        };
        map.refill();
        Ok(map)
    }

    /// Reads and submits inputs until `limit` tasks are in flight or the inputs end. The feed is out of
    /// the map while it runs the user's iterator: if that panics, the panic goes to the reader and the
    /// map reads no more input (an iterator that panicked is in no state to be asked again), while the
    /// tasks already in flight are still delivered.
    fn refill(&mut self) {
        while self.in_flight.len() < self.limit {
            let Some(mut feed) = self.feed.take() else {
                return;
            };
            match feed() {
                Some(Ok(chunk)) => {
                    self.in_flight.push_back(InFlight::Task(chunk));
                    self.feed = Some(feed);
                }
                Some(Err(e)) => self.in_flight.push_back(InFlight::Rejected(e)),
                None => {}
            }
        }
    }

    fn poll_core(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<R, Error>>> {
        loop {
            if let Some(r) = self.ready.pop_front() {
                return Poll::Ready(Some(r));
            }
            self.refill();
            let Some(front) = self.in_flight.front_mut() else {
                self.ended = true;
                return Poll::Ready(None);
            };
            let out = match front {
                InFlight::Rejected(_) => match self.in_flight.pop_front() {
                    Some(InFlight::Rejected(e)) => return Poll::Ready(Some(Err(e))),
                    _ => unreachable!("just matched"),
                },
                InFlight::Task(chunk) => match Pin::new(&mut chunk.future).poll(cx) {
                    Poll::Ready(out) => (out, chunk.inputs),
                    Poll::Pending => return Poll::Pending,
                },
            };
            self.in_flight.pop_front();
            match out {
                (Ok(ChunkOut::One(r)), _) => self.ready.push_back(Ok(r)),
                (Ok(ChunkOut::Many(rs)), _) => self.ready.extend(rs),
                // The whole task failed (cancelled, a broken pool): each of its inputs gets the error
                // in its place, so the results after it stay lined up with their inputs.
                (Err(e), inputs) => self
                    .ready
                    .extend(std::iter::repeat(e).take(inputs.max(1)).map(Err)),
            }
            // The task's results are taken: its place goes to the next input now, so the pool works
            // on it while the reader handles these. The results wait in `ready` meanwhile, where an
            // input that panics cannot lose them.
            self.refill();
        }
    }

    /// The deadline passed: cancel what has not started and end.
    fn expire(&mut self) -> Error {
        self.cancel_all();
        self.feed = None;
        self.ready.clear();
        self.deadline = None;
        Error::Timeout
    }

    fn cancel_all(&mut self) {
        for t in self.in_flight.drain(..) {
            if let InFlight::Task(chunk) = t {
                // Cancelling drops the task's input: a panic there must not leave the rest running.
                crate::panic::contain(|| chunk.future.cancel());
            }
        }
    }
}

// Nothing in a Map is pinned in place (the timer is boxed), whatever `R` is.
impl<R> Unpin for Map<R> {}

impl<R> Drop for Map<R> {
    fn drop(&mut self) {
        self.cancel_all();
    }
}

impl<R> Stream for Map<R> {
    type Item = Result<R, Error>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        if let Poll::Ready(item) = this.poll_core(cx) {
            return Poll::Ready(item);
        }
        let elapsed = this
            .deadline
            .as_mut()
            .is_some_and(|d| d.poll_elapsed(cx).is_ready());
        if elapsed {
            Poll::Ready(Some(Err(this.expire())))
        } else {
            Poll::Pending
        }
    }
}

/// Terminated once the stream has returned `None`, so `futures::select!` takes `map(…).next()`
/// without `.fuse()`.
///
/// ```
/// # futures::executor::block_on(async {
/// use concurrent_futures::ThreadPoolExecutor;
/// use futures::StreamExt;
///
/// let pool = ThreadPoolExecutor::new(2)?;
/// let mut squares = pool.map(|n: u32| n * n, 1..=3)?;
/// let mut got = Vec::new();
/// loop {
///     futures::select! {
///         r = squares.next() => if let Some(r) = r { got.push(r?) },
///         complete => break,
///     }
/// }
/// assert_eq!(got, [1, 4, 9]);
/// # Ok::<(), concurrent_futures::Error>(()) }).unwrap();
/// ```
impl<R> FusedStream for Map<R> {
    fn is_terminated(&self) -> bool {
        self.ended
    }
}

impl<R> IntoIterator for Map<R> {
    type Item = Result<R, Error>;
    type IntoIter = MapIter<R>;

    fn into_iter(self) -> MapIter<R> {
        MapIter(self)
    }
}

/// The blocking iterator over a [`Map`]: each `next()` blocks this thread until the next result in
/// input order is ready.
pub struct MapIter<R>(Map<R>);

impl<R> Iterator for MapIter<R> {
    type Item = Result<R, Error>;

    fn next(&mut self) -> Option<Self::Item> {
        let inner = &mut self.0;
        let deadline = inner.deadline.as_ref().map(Deadline::instant);
        match block_until(deadline, |cx| inner.poll_core(cx)) {
            Some(item) => item,
            None => Some(Err(inner.expire())),
        }
    }
}

impl<R> FusedIterator for MapIter<R> {}

impl<R> fmt::Debug for Map<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Map")
            .field("in_flight", &self.in_flight.len())
            .field("buffered_results", &self.ready.len())
            .field("inputs_left", &self.feed.is_some())
            .finish()
    }
}

impl<R> fmt::Debug for MapIter<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}
