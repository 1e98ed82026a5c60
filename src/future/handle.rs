//! [`TaskHandle`]: a cloneable, type-erased handle to cancel or interrupt a task from elsewhere.

use std::fmt;
use std::sync::Arc;

use super::raw::{TaskRef, WeakTaskRef};
use super::state::{Ending, Phase};
use super::FutureId;

/// Cancels or interrupts a task from anywhere, without owning its [`PoolFuture`](crate::PoolFuture)
/// (tokio's `AbortHandle`). Made by [`PoolFuture::handle`](crate::PoolFuture::handle); cheap to clone,
/// `Send + Sync`, and not generic, so handles of tasks with different outputs fit in one collection.
///
/// A handle does not keep the task's result alive: once the future is dropped and the task has ended,
/// the handle only remembers that it is [`done`](TaskHandle::done). It works the same for both pools:
/// [`interrupt`](TaskHandle::interrupt) signals a thread-pool task's token and kills a process-pool
/// task's worker, as [`PoolFuture::interrupt`](crate::PoolFuture::interrupt) does.
///
/// ```
/// use concurrent_futures::{Error, ThreadPoolExecutor};
/// use std::sync::mpsc;
///
/// let pool = ThreadPoolExecutor::new(1)?;
/// let (started_tx, started) = mpsc::channel();
/// let mut running = pool.spawn_cancellable(move |token| {
///     started_tx.send(()).unwrap();
///     while !token.is_cancelled() { std::thread::yield_now(); }
///     Err::<(), _>(Error::Interrupted)
/// })?;
/// let mut queued = pool.spawn(|| 1)?;
/// let (stop_running, stop_queued) = (running.handle(), queued.handle());
/// started.recv().unwrap();
///
/// // Another thread stops both: the queued task never runs, the running one is told to stop.
/// std::thread::spawn(move || {
///     assert!(stop_queued.cancel());
///     assert!(stop_running.interrupt());
/// }).join().unwrap();
/// assert!(matches!(queued.result(None), Err(Error::Cancelled)));
/// assert!(matches!(running.result(None), Err(Error::Interrupted)));
/// # Ok::<(), Error>(())
/// ```
#[derive(Clone)]
pub struct TaskHandle {
    id: FutureId,
    task: Arc<dyn Control>,
}

// As for `PoolFuture`: the controls act only through the task's own locks, which run no user code
// while held (tokio's `AbortHandle` says the same).
impl std::panic::UnwindSafe for TaskHandle {}
impl std::panic::RefUnwindSafe for TaskHandle {}

/// The type-erased controls of one task.
trait Control: Send + Sync {
    /// `None` once the task's state is gone: it had ended and its future was dropped.
    fn phase(&self) -> Option<Phase>;
    fn cancel(&self) -> bool;
    fn interrupt(&self) -> bool;
}

/// A weak reference: a handle must not keep a finished task's value alive after its future is dropped.
/// While the task is queued or running, its pool holds the state, so the controls reach it.
struct Controls<T>(WeakTaskRef<T>);

impl<T: Send> Control for Controls<T> {
    fn phase(&self) -> Option<Phase> {
        self.0.upgrade().map(|task| {
            task.attend();
            task.core().phase()
        })
    }
    fn cancel(&self) -> bool {
        self.0.upgrade().is_some_and(|task| task.cancel())
    }
    fn interrupt(&self) -> bool {
        self.0.upgrade().is_some_and(|task| task.interrupt())
    }
}

impl TaskHandle {
    pub(crate) fn new<T: Send + 'static>(id: FutureId, task: &TaskRef<T>) -> Self {
        TaskHandle {
            id,
            task: Arc::new(Controls(task.downgrade())),
        }
    }

    /// The task's future's id: the same as [`PoolFuture::id`](crate::PoolFuture::id), to tell handles
    /// apart or find the input a task came from.
    ///
    /// ```
    /// use concurrent_futures::Promise;
    ///
    /// let (_p, f) = Promise::<u8>::new();
    /// assert_eq!(f.handle().id(), f.id());
    /// ```
    pub fn id(&self) -> FutureId {
        self.id
    }

    /// Cancels the task if it has not started: [`PoolFuture::cancel`](crate::PoolFuture::cancel).
    pub fn cancel(&self) -> bool {
        self.task.cancel()
    }

    /// Cancels the task if it has not started, or asks it to stop if it is running:
    /// [`PoolFuture::interrupt`](crate::PoolFuture::interrupt).
    pub fn interrupt(&self) -> bool {
        self.task.interrupt()
    }

    /// Whether the task has ended (finished or cancelled): [`PoolFuture::done`](crate::PoolFuture::done).
    ///
    /// ```
    /// use concurrent_futures::Promise;
    ///
    /// let (promise, f) = Promise::<u8>::new();
    /// let handle = f.handle();
    /// assert!(!handle.done() && !handle.running());
    /// promise.set_running();
    /// assert!(handle.running());
    /// promise.set_result(1)?;
    /// assert!(handle.done() && !handle.cancelled());
    /// drop(f);
    /// assert!(handle.done()); // still known once the future is gone
    /// # Ok::<(), concurrent_futures::Error>(())
    /// ```
    pub fn done(&self) -> bool {
        !matches!(self.task.phase(), Some(Phase::Pending | Phase::Running))
    }

    /// Whether the task is running now: [`PoolFuture::running`](crate::PoolFuture::running).
    pub fn running(&self) -> bool {
        self.task.phase() == Some(Phase::Running)
    }

    /// Whether the task was cancelled. (`false` once its future is dropped after it ended: the handle
    /// then only knows that it is done.)
    pub fn cancelled(&self) -> bool {
        self.task.phase() == Some(Phase::Ended(Ending::Cancelled))
    }
}

impl fmt::Debug for TaskHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = match self.task.phase() {
            Some(Phase::Pending) => "pending",
            Some(Phase::Running) => "running",
            Some(Phase::Ended(Ending::Cancelled)) => "cancelled",
            Some(Phase::Ended(_)) | None => "finished",
        };
        write!(f, "TaskHandle {{ id: {}, state: {state} }}", self.id)
    }
}
