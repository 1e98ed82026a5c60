//! `wait`: block or await until some, the first failing, or all of a set of futures are done.

use std::fmt;
use std::future::{Future, IntoFuture};
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use crate::deadline::Deadline;
use crate::future::{block_until, deadline_after, Watch};
use crate::watch::WatchSet;

/// When [`wait`] returns (Python's `FIRST_COMPLETED`, `FIRST_EXCEPTION`, `ALL_COMPLETED`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ReturnWhen {
    /// As soon as any future is done (finished or cancelled).
    FirstCompleted,
    /// As soon as any future fails: a panic, a broken pool, an `Err` from a fallible task. A
    /// cancellation is not a failure. With no failure this is the same as `AllCompleted`.
    FirstException,
    /// When every future is done.
    #[default]
    AllCompleted,
}

/// What [`wait`] gives back: the futures that are done, and those that are not (each in input order,
/// duplicates removed).
#[derive(Debug)]
pub struct Done<F> {
    /// Futures that had finished or been cancelled when `wait` returned.
    pub done: Vec<F>,
    /// The rest.
    pub not_done: Vec<F>,
}

/// Waits for futures: `.await` it, or call [`blocking`](Wait::blocking) from sync code.
///
/// Takes futures by value (they come back in [`Done`]) or by reference, from any mix of pools. Cancelled
/// futures count as done. A timeout makes `wait` return normally with whatever is done by then; it never
/// cancels anything. Dropping an unfinished `wait` removes its wakers from every future.
///
/// ```
/// use concurrent_futures::{wait, ReturnWhen, ThreadPoolExecutor};
///
/// let pool = ThreadPoolExecutor::new(4)?;
/// let futures: Vec<_> = (1..=10u64).map(|i| pool.submit(|i: u64| i * i, i)).collect::<Result<_, _>>()?;
/// let done = wait(&futures).return_when(ReturnWhen::AllCompleted).blocking();
/// assert_eq!(done.done.len(), 10);
/// assert!(done.not_done.is_empty());
/// let sum: u64 = futures.into_iter().map(|mut f| f.result(None).unwrap()).sum();
/// assert_eq!(sum, 385);
/// # Ok::<(), concurrent_futures::Error>(())
/// ```
///
/// In async code, the timeout runs on tokio's clock inside a tokio runtime with timers (so it follows
/// `tokio::time::pause`); under any other executor, or a tokio runtime built without `enable_time`, one
/// timer thread shared by every timeout of the process wakes it. (The same holds for the timeouts of
/// [`as_completed`](crate::as_completed) and [`map`](crate::MapOptions::timeout).) A paused tokio clock
/// jumps to the next timer whenever the runtime has nothing to do, and a runtime awaiting pool work has
/// nothing to do: there, a timeout of any length passes at once, with the tasks still running (tokio's
/// `spawn_blocking` holds a paused clock; the pools' threads cannot). A zero or already passed timeout
/// returns without waiting for either:
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), concurrent_futures::Error> {
/// use concurrent_futures::{wait, ReturnWhen, ThreadPoolExecutor};
/// use std::time::Duration;
///
/// let pool = ThreadPoolExecutor::new(2)?;
/// let (tx, rx) = std::sync::mpsc::channel::<()>();
/// let slow = pool.spawn(move || rx.recv().ok())?;
/// let fast = pool.spawn(|| None)?;
/// let done = wait([&slow, &fast])
///     .return_when(ReturnWhen::FirstCompleted)
///     .timeout(Duration::from_secs(10))
///     .await;
/// assert_eq!(done.done.len(), 1);
/// assert_eq!(done.done[0].id(), fast.id());
/// tx.send(()).unwrap();
/// # Ok(()) }
/// ```
pub fn wait<I>(futures: I) -> Wait<I::Item>
where
    I: IntoIterator,
    I::Item: Watch,
{
    Wait {
        set: WatchSet::new(futures),
        return_when: ReturnWhen::AllCompleted,
        timeout: None,
    }
}

/// A pending [`wait`] call, to configure and then `.await` or run with [`blocking`](Wait::blocking).
#[must_use = "a Wait does nothing until awaited or run with .blocking()"]
pub struct Wait<F: Watch> {
    set: WatchSet<F>,
    return_when: ReturnWhen,
    timeout: Option<Duration>,
}

impl<F: Watch> Wait<F> {
    /// When to return (default [`ReturnWhen::AllCompleted`]).
    pub fn return_when(mut self, return_when: ReturnWhen) -> Self {
        self.return_when = return_when;
        self
    }

    /// Return after at most `timeout` (counted from the `.await` or `blocking()`), done or not.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }

    /// Waits on this thread. Do not call from async code; `.await` instead.
    pub fn blocking(self) -> Done<F> {
        let deadline = deadline_after(self.timeout);
        let mut state = WaitState::new(self.set, self.return_when);
        match block_until(deadline, |cx| state.poll_progress(cx)) {
            Some(()) | None => state.finish(),
        }
    }
}

impl<F: Watch> IntoFuture for Wait<F> {
    type Output = Done<F>;
    type IntoFuture = WaitFuture<F>;

    fn into_future(self) -> WaitFuture<F> {
        WaitFuture {
            deadline: self.timeout.map(Deadline::after),
            state: Some(WaitState::new(self.set, self.return_when)),
        }
    }
}

impl<F: Watch> fmt::Debug for Wait<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Wait")
            .field("futures", &self.set.len())
            .field("return_when", &self.return_when)
            .field("timeout", &self.timeout)
            .finish()
    }
}

struct WaitState<F: Watch> {
    set: WatchSet<F>,
    return_when: ReturnWhen,
    ended: Vec<usize>,
    raised: bool,
}

impl<F: Watch> WaitState<F> {
    fn new(set: WatchSet<F>, return_when: ReturnWhen) -> Self {
        WaitState {
            set,
            return_when,
            ended: Vec::new(),
            raised: false,
        }
    }

    fn poll_progress(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        loop {
            let before = self.ended.len();
            if self.satisfied() {
                return Poll::Ready(());
            }
            if self.set.poll_ended(cx, &mut self.ended).is_pending() {
                return Poll::Pending;
            }
            for &i in &self.ended[before..] {
                if self.set.raised(i) {
                    self.raised = true;
                }
            }
        }
    }

    fn satisfied(&self) -> bool {
        let all = self.set.pending() == 0;
        match self.return_when {
            ReturnWhen::AllCompleted => all,
            ReturnWhen::FirstCompleted => all || !self.ended.is_empty(),
            ReturnWhen::FirstException => all || self.raised,
        }
    }

    fn finish(mut self) -> Done<F> {
        let mut ended = std::mem::take(&mut self.ended);
        ended.sort_unstable();
        let done = ended.into_iter().map(|i| self.set.take(i)).collect();
        Done {
            done,
            not_done: self.set.take_rest(),
        }
    }
}

pin_project_lite::pin_project! {
    /// The future of an awaited [`Wait`].
    #[must_use = "futures do nothing unless awaited"]
    pub struct WaitFuture<F: Watch> {
        deadline: Option<Deadline>,
        state: Option<WaitState<F>>,
    }
}

impl<F: Watch> Future for WaitFuture<F> {
    type Output = Done<F>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Done<F>> {
        let this = self.project();
        let state = this
            .state
            .as_mut()
            .expect("WaitFuture polled after completion");
        let ready = state.poll_progress(cx).is_ready()
            || this
                .deadline
                .as_mut()
                .is_some_and(|d| d.poll_elapsed(cx).is_ready());
        if ready {
            Poll::Ready(this.state.take().expect("checked above").finish())
        } else {
            Poll::Pending
        }
    }
}
