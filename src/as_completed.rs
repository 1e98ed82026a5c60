//! `as_completed`: the futures of a set, in the order they finish.

use std::collections::VecDeque;
use std::fmt;
use std::iter::FusedIterator;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use futures_core::{FusedStream, Stream};

use crate::deadline::Deadline;
use crate::error::Error;
use crate::future::{block_until, Watch};
use crate::watch::WatchSet;

/// Yields futures as they finish: those already done first (in input order), then the rest in
/// completion order. A `Stream` for async code (usable in `tokio::select!`), and an iterator for sync
/// code (`for f in as_completed(fs)` blocks between items).
///
/// Each distinct future is yielded once; duplicates are dropped. Cancelled futures count as done.
/// With a [`timeout`](AsCompleted::timeout), counted from that call, the stream yields one
/// [`Error::Unfinished`] (`"2 (of 4) futures unfinished"`) when it runs out and then ends. A yielded
/// future is no longer held; dropping the stream unregisters it from every future it still watches.
///
/// ```
/// use concurrent_futures::{as_completed, ThreadPoolExecutor};
/// use std::collections::HashMap;
///
/// let pool = ThreadPoolExecutor::new(4)?;
/// let mut inputs = HashMap::new();
/// let mut futures = Vec::new();
/// for n in [3u64, 1, 2] {
///     let f = pool.submit(|n: u64| n * 10, n)?;
///     inputs.insert(f.id(), n); // Python's future_to_url idiom
///     futures.push(f);
/// }
/// let mut total = 0;
/// for f in as_completed(futures) {
///     let mut f = f?;
///     let n = inputs[&f.id()];
///     assert_eq!(f.result(None)?, n * 10);
///     total += n;
/// }
/// assert_eq!(total, 6);
/// # Ok::<(), concurrent_futures::Error>(())
/// ```
///
/// As a stream:
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), concurrent_futures::Error> {
/// use concurrent_futures::{as_completed, ThreadPoolExecutor};
/// use futures::StreamExt;
///
/// let pool = ThreadPoolExecutor::new(2)?;
/// let futures = (0..4u32).map(|i| pool.submit(|i: u32| i + 1, i)).collect::<Result<Vec<_>, _>>()?;
/// let mut sum = 0;
/// let mut stream = as_completed(futures);
/// while let Some(f) = stream.next().await {
///     sum += f?.await?;
/// }
/// assert_eq!(sum, 10);
/// # Ok(()) }
/// ```
pub fn as_completed<I>(futures: I) -> AsCompleted<I::Item>
where
    I: IntoIterator,
    I::Item: Watch,
{
    AsCompleted {
        set: WatchSet::new(futures),
        ready: VecDeque::new(),
        scratch: Vec::new(),
        deadline: None,
        state: StreamState::Yielding,
    }
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum StreamState {
    Yielding,
    /// The timeout error has been yielded: the next poll ends the stream.
    Expired,
    /// The stream has returned `None`: nothing more comes.
    Ended,
}

/// The stream (and iterator, through `IntoIterator`) returned by [`as_completed`].
#[must_use = "streams do nothing unless polled"]
pub struct AsCompleted<F: Watch> {
    set: WatchSet<F>,
    ready: VecDeque<usize>,
    scratch: Vec<usize>,
    deadline: Option<Deadline>,
    state: StreamState,
}

impl<F: Watch> AsCompleted<F> {
    /// Gives up after `timeout`, counted from this call (Python counts from `as_completed`'s, which
    /// this one follows in `as_completed(fs).timeout(t)`): yields one [`Error::Unfinished`] and ends.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.deadline = Some(Deadline::after(timeout));
        self
    }

    /// Distinct futures not yet yielded.
    pub fn remaining(&self) -> usize {
        self.ready.len() + self.set.pending()
    }

    fn poll_core(&mut self, cx: &mut Context<'_>) -> Poll<Option<F>> {
        if self.state != StreamState::Yielding {
            self.state = StreamState::Ended;
            return Poll::Ready(None);
        }
        if self.ready.is_empty() && self.set.pending() > 0 {
            self.scratch.clear();
            if self.set.poll_ended(cx, &mut self.scratch).is_ready() {
                self.ready.extend(self.scratch.drain(..));
            }
        }
        match self.ready.pop_front() {
            Some(i) => Poll::Ready(Some(self.set.take(i))),
            None if self.set.pending() == 0 => {
                self.state = StreamState::Ended;
                Poll::Ready(None)
            }
            None => Poll::Pending,
        }
    }

    fn expire(&mut self) -> Error {
        self.state = StreamState::Expired;
        let err = Error::Unfinished {
            pending: self.set.pending() + self.ready.len(),
            total: self.set.len(),
        };
        // Stop watching now rather than when the stream is dropped.
        drop(self.set.take_rest());
        err
    }
}

impl<F: Watch + Unpin> Stream for AsCompleted<F> {
    type Item = Result<F, Error>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        if let Poll::Ready(item) = this.poll_core(cx) {
            return Poll::Ready(item.map(Ok));
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

    fn size_hint(&self) -> (usize, Option<usize>) {
        if self.state != StreamState::Yielding {
            (0, Some(0))
        } else {
            (0, Some(self.remaining() + 1))
        }
    }
}

/// Terminated once the stream has returned `None`, so `futures::select!` takes
/// `as_completed(…).next()` without `.fuse()`.
///
/// ```
/// # futures::executor::block_on(async {
/// use concurrent_futures::{as_completed, ThreadPoolExecutor};
/// use futures::StreamExt;
///
/// let pool = ThreadPoolExecutor::new(2)?;
/// let mut done = as_completed(vec![pool.submit(|n: u32| n, 1)?, pool.submit(|n: u32| n, 2)?]);
/// let mut sum = 0;
/// loop {
///     futures::select! {
///         f = done.next() => if let Some(f) = f { sum += f?.await? },
///         complete => break,
///     }
/// }
/// assert_eq!(sum, 3);
/// # Ok::<(), concurrent_futures::Error>(()) }).unwrap();
/// ```
impl<F: Watch + Unpin> FusedStream for AsCompleted<F> {
    fn is_terminated(&self) -> bool {
        self.state == StreamState::Ended
    }
}

impl<F: Watch> IntoIterator for AsCompleted<F> {
    type Item = Result<F, Error>;
    type IntoIter = AsCompletedIter<F>;

    fn into_iter(self) -> AsCompletedIter<F> {
        AsCompletedIter(self)
    }
}

/// The blocking iterator over an [`AsCompleted`]: each `next()` blocks this thread until a future
/// finishes.
pub struct AsCompletedIter<F: Watch>(AsCompleted<F>);

impl<F: Watch> Iterator for AsCompletedIter<F> {
    type Item = Result<F, Error>;

    fn next(&mut self) -> Option<Self::Item> {
        let inner = &mut self.0;
        let deadline = inner.deadline.as_ref().map(Deadline::instant);
        match block_until(deadline, |cx| inner.poll_core(cx)) {
            Some(item) => item.map(Ok),
            None => Some(Err(inner.expire())),
        }
    }
}

impl<F: Watch> FusedIterator for AsCompletedIter<F> {}

impl<F: Watch> fmt::Debug for AsCompleted<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AsCompleted")
            .field("total", &self.set.len())
            .field("remaining", &self.remaining())
            .finish()
    }
}

impl<F: Watch> fmt::Debug for AsCompletedIter<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}
