//! The crate's one error type.

use std::fmt;
use std::sync::Arc;

/// Everything that can go wrong with a pool or one of its futures.
///
/// One enum covers Python's `CancelledError`, `TimeoutError`, `BrokenExecutor` and its subclasses,
/// `InvalidStateError` and the "cannot schedule new futures after shutdown" `RuntimeError`, plus the
/// Rust-specific ways a task can end: a panic ([`Error::Panicked`]) or an `Err` from a task submitted
/// as fallible ([`Error::Failed`]).
///
/// `Error` is `Clone` so that a failed future can hand out its error again on every call to
/// [`PoolFuture::result`](crate::PoolFuture::result), as Python re-raises the same exception.
///
/// # Messages
///
/// `Display` texts follow Rust's convention (the API guidelines' C-GOOD-ERR), not Python's sentences:
/// lower case, no trailing punctuation, so they compose into larger messages (`"loading the model:
/// {e}"`) and error-chain reports. The wording is Python's wherever that helps someone porting code
/// find the counterpart: `"cannot schedule new futures after shutdown"`, `"2 (of 4) futures
/// unfinished"`, `"a child process terminated abruptly, the process pool is not usable anymore"`,
/// and Python's state names in capitals (`"CANCELLED: the future already ended (#3)"`). Texts that
/// carry someone else's message (a panic's, a task's error, a serde error) keep it as it was.
/// A panic's text says where it happened; `{:#}` adds its backtrace when one was captured.
///
/// ```
/// use concurrent_futures::{Error, ThreadPoolExecutor};
///
/// let pool = ThreadPoolExecutor::new(1)?;
/// let mut f = pool.spawn(|| -> u32 { panic!("the value 5 is no good") })?;
/// match f.result(None) {
///     Err(Error::Panicked(p)) => assert_eq!(p.message(), "the value 5 is no good"),
///     other => panic!("unexpected {other:?}"),
/// }
/// # Ok::<(), Error>(())
/// ```
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum Error {
    /// The future was cancelled before its task started (Python's `CancelledError`).
    Cancelled,
    /// A wait with a deadline gave up: `result(timeout)`, `exception(timeout)`, a `map` deadline, or
    /// `CompletionSet::next_blocking(timeout)`. (`wait` is not among them: its timeout returns the
    /// futures split as they are.) The task itself keeps running; this is never the task's own error.
    Timeout,
    /// `as_completed` reached its deadline with futures still unfinished. Displays exactly as Python's
    /// message: `"2 (of 4) futures unfinished"`.
    Unfinished {
        /// Futures not yet done when the deadline passed.
        pending: usize,
        /// Distinct futures given to `as_completed`.
        total: usize,
    },
    /// The task panicked. The [`Panic`] keeps its message, location, backtrace (if asked for) and
    /// payload (to re-raise). The worker survives.
    Panicked(Panic),
    /// A task submitted as fallible returned `Err`; the error is kept and can be downcast.
    Failed(TaskError),
    /// A running task was interrupted on request (see [`PoolFuture::interrupt`](crate::PoolFuture::interrupt))
    /// or by its own time limit, and gave up.
    Interrupted,
    /// The thread pool is broken: a worker's initializer failed. Carries the initializer's error.
    BrokenThreadPool(String),
    /// Submitting to an executor that is shut down (Python: "cannot schedule new futures after shutdown").
    Shutdown,
    /// A bounded work queue is full (`try_submit`).
    Full,
    /// An operation that the future's state does not allow, e.g. taking a result twice.
    InvalidState(String),
    /// The producer of a future was dropped without completing it (a [`Promise`](crate::Promise)).
    Abandoned,
    /// A bad argument, such as `max_workers = 0`.
    InvalidArgument(String),
    /// The process pool is broken (Python's `BrokenProcessPool`): a worker died abruptly (by default
    /// any worker death breaks the pool), an initializer failed, or a worker could not be started.
    /// Carries the cause, with the dead worker's pid and exit status when there is one.
    BrokenProcessPool(BrokenProcessPool),
    /// The worker process running this task died (killed, aborted, `process::exit`), under the resilient
    /// policy where only this task fails and the pool carries on with a new worker.
    WorkerDied(WorkerExit),
    /// The task ran past its time limit, so its worker process was killed (process pool).
    TimeLimit(std::time::Duration),
    /// A value could not cross the process boundary: the argument or the result failed to serialize or
    /// deserialize, or was larger than the frame size cap. Only that task fails; the pool carries on.
    Serialization(String),
    /// The process pool cannot run here: this process is itself a worker whose entry point did not run,
    /// the task function is not in the executable, or the platform is not supported.
    ProcessSetup(String),
}

impl Error {
    /// Whether this error means the pool can take no more work because it broke (Python's `BrokenExecutor`).
    pub fn is_broken(&self) -> bool {
        matches!(
            self,
            Error::BrokenThreadPool(_) | Error::BrokenProcessPool(_)
        )
    }

    /// Whether a submit failed because the executor will take no more work: shut down or broken (Python raises
    /// `RuntimeError` for both).
    pub fn is_rejected(&self) -> bool {
        matches!(self, Error::Shutdown) || self.is_broken()
    }

    /// Whether this is a wait that ran out of time ([`Error::Timeout`] or [`Error::Unfinished`]).
    pub fn is_timeout(&self) -> bool {
        matches!(self, Error::Timeout | Error::Unfinished { .. })
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Cancelled => f.write_str("the future was cancelled"),
            Error::Timeout => f.write_str("timed out waiting for the future"),
            Error::Unfinished { pending, total } => {
                write!(f, "{pending} (of {total}) futures unfinished")
            }
            Error::Panicked(p) => {
                match p.location() {
                    Some(at) => write!(f, "the task panicked at {at}: {}", p.message())?,
                    None => write!(f, "the task panicked: {}", p.message())?,
                }
                match p.backtrace() {
                    Some(bt) if f.alternate() => write!(f, "\nstack backtrace:\n{bt}"),
                    _ => Ok(()),
                }
            }
            Error::Failed(e) => write!(f, "the task failed: {e}"),
            Error::Interrupted => f.write_str("the running task was interrupted"),
            Error::BrokenThreadPool(why) => write!(
                f,
                "a thread initializer failed, the thread pool is not usable anymore: {why}"
            ),
            Error::Shutdown => f.write_str("cannot schedule new futures after shutdown"),
            Error::Full => f.write_str("the work queue is full"),
            Error::InvalidState(what) => f.write_str(what),
            Error::Abandoned => f.write_str("the future's producer was dropped without a result"),
            Error::InvalidArgument(what) => f.write_str(what),
            Error::BrokenProcessPool(b) => fmt::Display::fmt(b, f),
            Error::WorkerDied(exit) => write!(
                f,
                "the worker process running the task terminated abruptly ({exit})"
            ),
            Error::TimeLimit(limit) => write!(
                f,
                "the task ran past its time limit of {limit:?} and its worker process was killed"
            ),
            Error::Serialization(what) => f.write_str(what),
            Error::ProcessSetup(what) => f.write_str(what),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Failed(e) => Some(&*e.0),
            _ => None,
        }
    }
}

/// The error a fallible task returned, kept behind an `Arc` so the future can hand it out more than once.
///
/// ```
/// use concurrent_futures::{Error, ThreadPoolExecutor};
///
/// #[derive(Debug)]
/// struct ValueError(u32);
/// impl std::fmt::Display for ValueError {
///     fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
///         write!(f, "the value {} is no good", self.0)
///     }
/// }
/// impl std::error::Error for ValueError {}
///
/// let pool = ThreadPoolExecutor::new(1)?;
/// let f = pool.spawn_fallible(|| Err::<(), _>(ValueError(5)))?;
/// let Some(Error::Failed(e)) = f.exception(None)? else { panic!() };
/// assert_eq!(e.downcast_ref::<ValueError>().unwrap().0, 5);
/// # Ok::<(), Error>(())
/// ```
#[derive(Clone)]
pub struct TaskError(Arc<dyn std::error::Error + Send + Sync + 'static>);

// The task's error is only ever read through `&`, and the crate never mutates it: as `anyhow::Error`
// does, vouch for it so that `Error` (and the futures that hold one) work inside `catch_unwind`.
impl std::panic::UnwindSafe for TaskError {}
impl std::panic::RefUnwindSafe for TaskError {}

impl TaskError {
    /// Wraps any error.
    pub fn new(e: impl Into<Box<dyn std::error::Error + Send + Sync + 'static>>) -> Self {
        TaskError(Arc::from(e.into()))
    }

    /// The task's error as its concrete type, if it is one.
    pub fn downcast_ref<E: std::error::Error + 'static>(&self) -> Option<&E> {
        self.0.downcast_ref::<E>()
    }

    /// The task's error as a trait object.
    pub fn get(&self) -> &(dyn std::error::Error + Send + Sync + 'static) {
        &*self.0
    }
}

impl fmt::Debug for TaskError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&*self.0, f)
    }
}

impl fmt::Display for TaskError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&*self.0, f)
    }
}

/// A task's panic, as [`Error::Panicked`] keeps it: the message, where it happened, a backtrace when
/// `RUST_BACKTRACE` asked for one, and the original payload for the first taker to re-raise.
///
/// The location and backtrace come from a panic hook the crate installs, chained in front of the hook
/// already there (which still prints its report), the first time a pool runs a task. They are there
/// for panics in thread-pool tasks and in process-pool workers alike (the worker sends them back with
/// the message); they are `None` if the program replaced the panic hook afterwards, or for a `Panic`
/// made by hand.
///
/// Cloning is cheap (one `Arc`). The payload is kept once: [`into_panic`](Panic::into_panic) and
/// [`resume_unwind`](Panic::resume_unwind) give the first caller among all clones the original payload
/// (`downcast` it to your own panic type); later callers, and panics from a process-pool worker
/// (whose payload stayed in the worker), get a `String` payload holding the message.
///
/// ```
/// use concurrent_futures::{Error, ThreadPoolExecutor};
///
/// #[derive(Debug, PartialEq)]
/// struct Oops(u32);
///
/// let pool = ThreadPoolExecutor::new(1)?;
/// let mut f = pool.spawn(|| -> u8 { panic!("the value {} is no good", 5) })?;
/// let Err(Error::Panicked(p)) = f.result(None) else { panic!() };
/// assert_eq!(p, "the value 5 is no good");
/// assert!(p.location().unwrap().contains(".rs:")); // file:line:column of the panic
///
/// // The original payload, to re-raise with std::panic::resume_unwind:
/// let mut g = pool.spawn(|| -> u8 { std::panic::panic_any(Oops(7)) })?;
/// let Err(Error::Panicked(p)) = g.result(None) else { panic!() };
/// assert_eq!(p.message(), "Box<dyn Any>");
/// assert_eq!(p.into_panic().downcast::<Oops>().ok().map(|b| *b), Some(Oops(7)));
/// # Ok::<(), Error>(())
/// ```
#[derive(Clone)]
pub struct Panic(Arc<PanicInner>);

struct PanicInner {
    message: String,
    location: Option<String>,
    backtrace: Option<String>,
    /// The original payload until someone takes it. A std mutex even under loom: no model looks at it.
    payload: std::sync::Mutex<Option<Box<dyn std::any::Any + Send>>>,
}

impl Panic {
    /// A panic with only a message (no location, backtrace or original payload), as a
    /// [`Promise`](crate::Promise) producer may report one.
    ///
    /// ```
    /// use concurrent_futures::{Error, Panic};
    ///
    /// let p = Panic::new("worker gave up");
    /// assert_eq!((p.message(), p.location(), p.backtrace()), ("worker gave up", None, None));
    /// assert_eq!(Error::Panicked(p).to_string(), "the task panicked: worker gave up");
    /// ```
    pub fn new(message: impl Into<String>) -> Self {
        Self::with_details(message.into(), None, None, None)
    }

    /// A panic from the payload `std::panic::catch_unwind` gave back; its message is the payload's
    /// text (`&str` or `String` payloads), and the payload is kept for [`into_panic`](Panic::into_panic).
    ///
    /// ```
    /// use concurrent_futures::{Error, Panic, Promise};
    ///
    /// let (promise, mut fut) = Promise::<u8>::new();
    /// let payload = std::panic::catch_unwind(|| -> u8 { panic!("no") }).unwrap_err();
    /// promise.set_error(Error::Panicked(Panic::from_payload(payload)))?;
    /// let Err(Error::Panicked(p)) = fut.result(None) else { panic!() };
    /// assert_eq!(p, "no");
    /// # Ok::<(), Error>(())
    /// ```
    pub fn from_payload(payload: Box<dyn std::any::Any + Send>) -> Self {
        Self::with_details(panic_message(&*payload), None, None, Some(payload))
    }

    pub(crate) fn with_details(
        message: String,
        location: Option<String>,
        backtrace: Option<String>,
        payload: Option<Box<dyn std::any::Any + Send>>,
    ) -> Self {
        Panic(Arc::new(PanicInner {
            message,
            location,
            backtrace,
            payload: std::sync::Mutex::new(payload),
        }))
    }

    /// The panic's message: the payload's text for `&str` and `String` payloads (what `panic!` makes),
    /// `"Box<dyn Any>"` for any other payload.
    pub fn message(&self) -> &str {
        &self.0.message
    }

    /// Where the task panicked, as `file:line:column`, if known.
    pub fn location(&self) -> Option<&str> {
        self.0.location.as_deref()
    }

    /// The backtrace of the panicking thread (a worker thread, or the worker process's), if
    /// `RUST_BACKTRACE` (or `RUST_LIB_BACKTRACE`) asked for one where the task ran.
    pub fn backtrace(&self) -> Option<&str> {
        self.0.backtrace.as_deref()
    }

    /// The payload to re-raise with [`std::panic::resume_unwind`] (tokio's `JoinError::into_panic`): the
    /// original one for the first caller among this panic's clones, else a `String` with the message.
    ///
    /// ```
    /// use concurrent_futures::{Error, ThreadPoolExecutor};
    ///
    /// let pool = ThreadPoolExecutor::new(1)?;
    /// let mut f = pool.spawn(|| -> u8 { panic!("boom") })?;
    /// let Err(Error::Panicked(p)) = f.result(None) else { panic!() };
    /// let copy = p.clone();
    /// assert_eq!(*p.into_panic().downcast::<&str>().unwrap(), "boom"); // `panic!("boom")`'s payload
    /// assert_eq!(*copy.into_panic().downcast::<String>().unwrap(), "boom"); // the message, later
    /// # Ok::<(), Error>(())
    /// ```
    pub fn into_panic(self) -> Box<dyn std::any::Any + Send> {
        let original = self
            .0
            .payload
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        original.unwrap_or_else(|| Box::new(self.0.message.clone()))
    }

    /// Re-raises the panic on this thread, with the payload [`into_panic`](Panic::into_panic) gives.
    /// (No panic hook runs for it, as with [`std::panic::resume_unwind`].)
    ///
    /// ```
    /// use concurrent_futures::{Error, ThreadPoolExecutor};
    ///
    /// let pool = ThreadPoolExecutor::new(1)?;
    /// let mut f = pool.spawn(|| -> u8 { panic!("boom") })?;
    /// let caught = std::panic::catch_unwind(move || match f.result(None) {
    ///     Err(Error::Panicked(p)) => p.resume_unwind(),
    ///     other => other,
    /// });
    /// assert_eq!(*caught.unwrap_err().downcast::<&str>().unwrap(), "boom");
    /// # Ok::<(), Error>(())
    /// ```
    pub fn resume_unwind(self) -> ! {
        std::panic::resume_unwind(self.into_panic())
    }
}

/// The message only: `{}` of a `Panic` reads as the `panic!` text. [`Error`]'s `Display` adds the location,
/// and with `{:#}` the backtrace.
impl fmt::Display for Panic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0.message)
    }
}

impl fmt::Debug for Panic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Panic")
            .field("message", &self.0.message)
            .field("location", &self.0.location)
            .field("backtrace", &self.0.backtrace.as_ref().map(|_| ".."))
            .finish()
    }
}

impl PartialEq<str> for Panic {
    fn eq(&self, other: &str) -> bool {
        self.0.message == other
    }
}

impl PartialEq<&str> for Panic {
    fn eq(&self, other: &&str) -> bool {
        self.0.message == *other
    }
}

impl PartialEq<String> for Panic {
    fn eq(&self, other: &String) -> bool {
        self.0.message == *other
    }
}

impl From<String> for Panic {
    fn from(message: String) -> Self {
        Panic::new(message)
    }
}

impl From<&str> for Panic {
    fn from(message: &str) -> Self {
        Panic::new(message)
    }
}

/// A submit that did not queue its work: the [`Error`] saying why ([`Error::Full`], [`Error::Shutdown`],
/// a broken pool), and the work itself, handed back unchanged (as `std::sync::mpsc::TrySendError`
/// does), so the caller can retry it later, run it inline, or drop it.
///
/// Returned by [`try_submit`](crate::ThreadPoolExecutor::try_submit) (the work is `(f, arg)`) and
/// [`try_spawn`](crate::ThreadPoolExecutor::try_spawn) (the closure). It is not a second error enum:
/// [`error`](Rejected::error) is the crate's one [`Error`], and `From<Rejected<W>> for Error` lets `?`
/// turn it into that error (dropping the work) in a function returning `Result<_, Error>`.
///
/// ```
/// use concurrent_futures::{Error, ThreadPoolExecutor};
/// use std::sync::mpsc;
///
/// let pool = ThreadPoolExecutor::builder().max_workers(1).queue_capacity(1).build()?;
/// let (started_tx, started) = mpsc::channel();
/// let (release, release_rx) = mpsc::channel::<()>();
/// let busy = pool.spawn(move || { started_tx.send(()).unwrap(); release_rx.recv().ok(); })?;
/// started.recv().unwrap();
/// let queued = pool.try_submit(|n: u32| n + 1, 1)?; // fills the queue; `?` works as for any Error
///
/// let rejected = pool.try_submit(|n: u32| n * 10, 7).unwrap_err();
/// assert!(matches!(rejected.error(), Error::Full));
/// let (f, arg) = rejected.into_inner(); // the work comes back: run it here instead
/// assert_eq!(f(arg), 70);
/// release.send(()).unwrap();
/// # drop((busy, queued));
/// # Ok::<(), Error>(())
/// ```
pub struct Rejected<W> {
    error: Error,
    work: W,
}

impl<W> Rejected<W> {
    pub(crate) fn new(error: Error, work: W) -> Self {
        Rejected { error, work }
    }

    /// Why the work was not queued.
    pub fn error(&self) -> &Error {
        &self.error
    }

    /// The work, as it was given to the submit.
    pub fn into_inner(self) -> W {
        self.work
    }

    /// The error and the work.
    ///
    /// ```
    /// use concurrent_futures::{Error, Queued, ThreadPoolExecutor};
    ///
    /// let pool = ThreadPoolExecutor::new(1)?;
    /// pool.shutdown(Queued::Run);
    /// let (error, (f, arg)) = pool.try_submit(|n: u8| n + 1, 1).unwrap_err().into_parts();
    /// assert!(matches!(error, Error::Shutdown));
    /// assert_eq!(f(arg), 2);
    /// # Ok::<(), Error>(())
    /// ```
    pub fn into_parts(self) -> (Error, W) {
        (self.error, self.work)
    }

    /// Whether the queue was full (rather than the pool shut down or broken): trying again later may work.
    pub fn is_full(&self) -> bool {
        matches!(self.error, Error::Full)
    }
}

impl<W> From<Rejected<W>> for Error {
    fn from(rejected: Rejected<W>) -> Error {
        rejected.error
    }
}

/// Shows the error only: the work (often a closure) need not be `Debug`.
impl<W> fmt::Debug for Rejected<W> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Rejected")
            .field("error", &self.error)
            .finish_non_exhaustive()
    }
}

impl<W> fmt::Display for Rejected<W> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.error, f)
    }
}

impl<W> std::error::Error for Rejected<W> {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        std::error::Error::source(&self.error)
    }
}

/// Turns a panic payload into the message kept in [`Error::Panicked`].
pub(crate) fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&'static str>() {
        (*s).to_owned()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "Box<dyn Any>".to_owned()
    }
}

/// How a worker process ended: its pid and exit status (an exit code, or the signal that killed it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WorkerExit {
    /// The worker's process id.
    pub pid: u32,
    /// What `waitpid` reported.
    pub status: std::process::ExitStatus,
}

impl WorkerExit {
    /// The exit code, if the worker exited (rather than being killed by a signal).
    pub fn code(&self) -> Option<i32> {
        self.status.code()
    }

    /// The signal that killed the worker, if one did.
    #[cfg(unix)]
    pub fn signal(&self) -> Option<i32> {
        std::os::unix::process::ExitStatusExt::signal(&self.status)
    }
}

impl fmt::Display for WorkerExit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.code() {
            Some(code) => write!(
                f,
                "worker pid {} terminated abruptly with exit code {code}",
                self.pid
            ),
            None => write!(f, "worker pid {} was killed: {}", self.pid, self.status),
        }
    }
}

/// Why a process pool broke.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum BrokenCause {
    /// A worker process died abruptly (default policy).
    WorkerDied(WorkerExit),
    /// A worker's initializer panicked or returned `Err`; carries its message.
    InitializerFailed(String),
    /// A worker process could not be started or failed the handshake; carries the reason.
    StartFailed(String),
    /// `terminate_workers()` or `kill_workers()` stopped the workers while this task was running.
    ForcedShutdown,
    /// The byte stream to a worker was corrupted (a frame of impossible size or kind).
    Protocol(String),
    /// A rank of an MPI pool stopped answering (feature `mpi`): MPI does not report a dead rank, so
    /// the pool presumes it lost when it misses its heartbeats or overruns a task deadline.
    RankLost(RankLost),
}

/// An MPI rank the pool gave up on, and why (see [`BrokenCause::RankLost`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RankLost {
    /// The rank: in `MPI_COMM_WORLD` in static mode, in the spawned workers' group in spawn mode.
    pub rank: i32,
    /// What the pool saw.
    pub why: RankSilence,
}

/// How a rank showed that it is gone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum RankSilence {
    /// Nothing came from it (no heartbeat answer, no result) for this long.
    Heartbeat(std::time::Duration),
    /// It held one task longer than the pool's task deadline, this one.
    TaskDeadline(std::time::Duration),
}

impl fmt::Display for RankLost {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.why {
            RankSilence::Heartbeat(d) => {
                write!(f, "MPI rank {} did not answer for {d:?}", self.rank)
            }
            RankSilence::TaskDeadline(d) => write!(
                f,
                "MPI rank {} held a task past the task deadline of {d:?}",
                self.rank
            ),
        }
    }
}

/// Where a [`BrokenProcessPool`] error was seen: Python words the two differently.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BrokenSeenBy {
    /// A `submit` on the broken pool was refused.
    Submit,
    /// A pending or running future was failed when the pool broke.
    Future,
}

/// The error of a broken process pool (Python's `BrokenProcessPool`), with its cause.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrokenProcessPool {
    cause: Arc<BrokenCause>,
    seen_by: BrokenSeenBy,
}

impl BrokenProcessPool {
    // Made only by the process pool, which is Linux-only and left out of `--cfg loom` builds.
    #[cfg_attr(not(all(target_os = "linux", not(loom))), allow(dead_code))]
    pub(crate) fn new(cause: BrokenCause, seen_by: BrokenSeenBy) -> Self {
        BrokenProcessPool {
            cause: Arc::new(cause),
            seen_by,
        }
    }

    // Made only by the process pool, which is Linux-only and left out of `--cfg loom` builds.
    #[cfg_attr(not(all(target_os = "linux", not(loom))), allow(dead_code))]
    pub(crate) fn seen_by(&self, seen_by: BrokenSeenBy) -> Self {
        BrokenProcessPool {
            cause: self.cause.clone(),
            seen_by,
        }
    }

    /// Why the pool broke.
    pub fn cause(&self) -> &BrokenCause {
        &self.cause
    }

    /// The dead worker's pid and exit status, when a worker death broke the pool.
    pub fn worker_exit(&self) -> Option<WorkerExit> {
        match &*self.cause {
            BrokenCause::WorkerDied(exit) => Some(*exit),
            _ => None,
        }
    }

    /// Whether a submit or a future saw this error.
    pub fn seen(&self) -> BrokenSeenBy {
        self.seen_by
    }
}

impl fmt::Display for BrokenProcessPool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let lead = match (&*self.cause, self.seen_by) {
            (BrokenCause::ForcedShutdown, _) => {
                return f.write_str(
                    "a worker process exited while the pool was being forcefully shut down; \
                     work that was still enqueued will not be run",
                )
            }
            (_, BrokenSeenBy::Submit) => {
                "a child process terminated abruptly, the process pool is not usable anymore"
            }
            (_, BrokenSeenBy::Future) => {
                "a process in the process pool was terminated abruptly while the future was running or pending"
            }
        };
        match &*self.cause {
            BrokenCause::WorkerDied(exit) => write!(f, "{lead} ({exit})"),
            BrokenCause::InitializerFailed(msg) => {
                write!(f, "{lead} (a worker's initializer failed: {msg})")
            }
            BrokenCause::StartFailed(msg) => {
                write!(f, "{lead} (a worker process could not be started: {msg})")
            }
            BrokenCause::Protocol(msg) => {
                write!(f, "{lead} (the channel to a worker broke: {msg})")
            }
            BrokenCause::RankLost(lost) => write!(f, "{lead} ({lost}, presumed dead)"),
            BrokenCause::ForcedShutdown => unreachable!("handled above"),
        }
    }
}
