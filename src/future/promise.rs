//! [`Promise`]: the producer side of a [`PoolFuture`] that no pool runs.

use super::{CellRef, NoJob, PoolFuture};
use crate::error::Error;
use std::fmt;

/// Completes a [`PoolFuture`] by hand: Python's `Future()` with `set_running_or_notify_cancel`,
/// `set_result` and `set_exception`.
///
/// Useful for adapting another source of work to the crate's `wait`/`as_completed`, and for tests. If a
/// promise is dropped without a result its future ends with [`Error::Abandoned`]: no future is left
/// pending forever.
///
/// ```
/// use concurrent_futures::Promise;
///
/// let (promise, mut fut) = Promise::new();
/// assert!(promise.set_running());
/// std::thread::spawn(move || promise.set_result(42).unwrap());
/// assert_eq!(fut.result(None)?, 42);
/// # Ok::<(), concurrent_futures::Error>(())
/// ```
pub struct Promise<T> {
    cell: CellRef<T, NoJob>,
}

impl<T> Promise<T> {
    /// A pending future and the promise that completes it.
    pub fn new() -> (Promise<T>, PoolFuture<T>) {
        let cell = CellRef::new(super::state::Core::new(), NoJob);
        let fut = PoolFuture::from_task(cell.typed());
        (Promise { cell }, fut)
    }

    /// PENDING → RUNNING. `false` if the future was cancelled: then do not run the work. (Python's
    /// `set_running_or_notify_cancel`.) Also `false`, and nothing changes, if the future is already
    /// running or finished.
    pub fn set_running(&self) -> bool {
        self.cell.core.start()
    }

    /// Finishes the future with a value. Fails with [`Error::InvalidState`] if it already ended
    /// (including by cancellation); the first outcome is kept.
    pub fn set_result(&self, value: T) -> Result<(), Error> {
        self.cell.core.complete(Ok(value))
    }

    /// Finishes the future with an error. Fails with [`Error::InvalidState`] if it already ended.
    pub fn set_error(&self, error: Error) -> Result<(), Error> {
        self.cell.core.complete(Err(error))
    }

    /// Finishes the future with an outcome.
    pub fn complete(&self, outcome: Result<T, Error>) -> Result<(), Error> {
        self.cell.core.complete(outcome)
    }

    /// The id of the future this promise completes.
    pub fn id(&self) -> super::FutureId {
        self.cell.core.id()
    }
}

impl<T> Drop for Promise<T> {
    fn drop(&mut self) {
        // Harmless if the future already ended: the first outcome is kept.
        let _ = self.cell.core.complete(Err(Error::Abandoned));
    }
}

impl<T> fmt::Debug for Promise<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "Promise {{ id: {}, state: {} }}",
            self.id(),
            self.cell.core.describe()
        )
    }
}
