//! [`ProcessPoolExecutor`]: Python's process pool, whose futures are awaitable.
//!
//! The same code switches from threads to processes by changing one type (both implement
//! [`Executor`](crate::Executor)). Tasks are plain functions `fn(A) -> R` whose argument and result are
//! serde types ([`Payload`]); use a tuple for several arguments, and non-capturing closures coerce.
//!
//! ```
//! use concurrent_futures::{Executor, Queued, ProcessPoolExecutor};
//!
//! fn pid_and_square(n: u64) -> (u32, u64) { (std::process::id(), n * n) }
//!
//! let pool = ProcessPoolExecutor::new(2)?;
//! let (pid, sq) = pool.submit(pid_and_square, 12)?.result(None)?;
//! assert_eq!(sq, 144);
//! assert_ne!(pid, std::process::id()); // it ran in another process
//! let squares: Vec<_> = pool.map(pid_and_square, 1..=4)?.into_iter().map(|r| r.unwrap().1).collect();
//! assert_eq!(squares, [1, 4, 9, 16]);
//! pool.shutdown(Queued::Run);
//! # Ok::<(), concurrent_futures::Error>(())
//! ```
//!
//! # Setup: none
//!
//! Workers are the current executable re-executed (`/proc/self/exe`), never `fork()` without `exec`.
//! A constructor linked into every program that builds a pool (an `.init_array` entry, as the `ctor`
//! crate makes) sees a marker in the environment and runs the worker loop instead of `main`. So
//! binaries, examples, `cargo test` integration tests and doctests need **no setup line**. Consequences:
//!
//! - A worker never runs your `main`, nor anything else of your program except the tasks and the
//!   initializer. Constructors of other crates that the linker orders after this crate's may not run in
//!   workers.
//! - So whatever `main` sets up is missing in a worker: a logger, a tracing subscriber, a panic hook,
//!   FFI libraries' global init, `std::env::set_var`s. Do that in the pool's
//!   [`initializer`](ProcessPoolBuilder::initializer), which runs in each worker before its first
//!   task (and breaks the pool, with its message, if it fails).
//! - std's pre-`main` setup that the worker needs is done by the worker itself: SIGPIPE is ignored, and
//!   a closed stdin, stdout or stderr is pointed at `/dev/null` (so a file a task opens cannot land on
//!   descriptor 1 and receive its prints).
//! - With `panic = "abort"`, a panicking task cannot be caught: it aborts its worker. The future then
//!   fails as a worker death ([`Error::BrokenProcessPool`] by default, [`Error::WorkerDied`] under
//!   [`WorkerDeath::Respawn`]) instead of [`Error::Panicked`].
//! - If a worker somehow runs `main` anyway (the constructor was not linked, e.g. the pool lives in a
//!   shared library loaded into another program), building a pool there fails with
//!   [`Error::ProcessSetup`]: no recursion, no fork bomb; the parent's handshake times out and the pool
//!   breaks with a clear [`BrokenCause::StartFailed`](crate::BrokenCause::StartFailed).
//! - Linux only (it relies on `/proc/self/exe`, `.init_array`, `PR_SET_PDEATHSIG` and `SO_PEERCRED`;
//!   it uses pidfds where it may: see *Without pidfds* below).
//! - Two copies of this crate linked into one program (two major versions pulled in by different
//!   dependencies) each have their own marker, so each finds its own workers.
//!
//! # Trust: who may drive a worker
//!
//! A worker calls code addresses it receives, so it must know who sends them: otherwise any program
//! that links a pool would run functions of its caller's choosing for whoever can start it with the
//! marker in its environment and a socket as its stdin. Before it reveals or trusts a single code
//! offset, a worker asks the kernel (not the channel) and serves only if:
//!
//! - the process is not *secure-exec* (setuid, setgid, file capabilities: `AT_SECURE`). Process pools
//!   therefore do not work in such programs; building one there fails with [`Error::ProcessSetup`];
//! - its parent is the pid named in the marker, and the channel's peer credentials (`SO_PEERCRED`)
//!   name that parent and the worker's own user id, which is also its effective one;
//! - the parent runs the same executable file (device and inode of `/proc/<pid>/exe`). The kernel
//!   shows that only to a process allowed to trace the parent: a program that made itself
//!   non-dumpable (`prctl(PR_SET_DUMPABLE, 0)`) cannot use a process pool unless it runs with
//!   `CAP_SYS_PTRACE` (as root does).
//!
//! Otherwise it exits at once, saying why on stderr; its parent (if it was a pool) breaks with a
//! [`BrokenCause::StartFailed`](crate::BrokenCause::StartFailed) carrying that reason. The parent in
//! turn accepts a worker only after its handshake shows the same build (next section).
//!
//! # How a task runs
//!
//! - Each worker has one private channel (a socketpair, passed as its stdin so no other child inherits
//!   it) and one driver thread in the parent. Frames are length-prefixed with a size cap
//!   ([`max_frame_bytes`](ProcessPoolBuilder::max_frame_bytes)); payloads are postcard.
//! - Binary data crosses as one block (one copy in, one copy out on each side): a `Vec<u8>` or
//!   `[u8]` wherever serde hands it over whole (an argument, a result, a field, an element, a map
//!   value), and [`ByteBlock`](crate::ByteBlock) (or another type that serializes with
//!   `serialize_bytes`, such as `serde_bytes::ByteBuf`) everywhere, also inside an `Option`.
//! - A thread blocked in [`result`](crate::PoolFuture::result) on a running task reads its worker's
//!   reply itself and completes the future (its done callbacks run there), so the reply wakes one
//!   thread, not the driver and then the caller; the driver still sees a death, a timeout leaves it
//!   the reply, and futures awaited or watched otherwise are completed by the driver.
//! - Before it sleeps on its worker's channel, a driver may ask it again for a few microseconds, under
//!   the crate-wide spin policy (only while that has been paying off, with a spinner slot free and a
//!   CPU to spare): a short task's reply then arrives without a wake-up of the driver. None while the
//!   pool is idle, or while a caller reads the reply itself.
//! - A task crosses as two code offsets from one base symbol (the user's function and a monomorphized
//!   trampoline that decodes `A`, calls, encodes `R`), plus the argument bytes. Before any offset is
//!   trusted, a two-way handshake proves the worker runs the same executable file with the same
//!   layout, and the parent is the program that started it (see *Trust* above); a mismatch breaks
//!   the pool with a clear error, never undefined behaviour.
//! - The argument is encoded on the submitting thread; if it does not encode, that future fails with
//!   [`Error::Serialization`] (it is not an error of `submit`) and the pool carries on. A result that
//!   does not encode in the worker, or decode in the parent, likewise fails only its future. The
//!   error keeps the message of a custom serde error (`S::Error::custom("…")`), which postcard's own
//!   error type drops.
//! - A worker runs one task at a time. **RUNNING means dispatched**: a future turns RUNNING when its
//!   frame is written to a worker, which is then busy with exactly that task, so
//!   [`cancel`](crate::PoolFuture::cancel) fails from then on (as in CPython, where a task in the call
//!   queue can no longer be cancelled; here there is no extra queued call). A submit that finds an idle
//!   worker claims it and writes what the socket takes without blocking (a small task's frame,
//!   whole); the rest of a large one is handed to that worker's driver thread, which writes it. The
//!   submitting thread never blocks on a worker's socket, however large the argument.
//! - A bounded queue ([`queue_capacity`](ProcessPoolBuilder::queue_capacity)) holds the tasks no
//!   worker has claimed: [`submit`](ProcessPoolExecutor::submit) blocks while it is full,
//!   [`try_submit`](ProcessPoolExecutor::try_submit) fails with [`Error::Full`],
//!   [`submit_async`](ProcessPoolExecutor::submit_async) waits by waker. A submit made on a driver
//!   thread (from a done callback) does not wait: only drivers make room, so it overfills instead.
//! - A panic in a task is [`Error::Panicked`] with the worker's message; the worker lives on. A
//!   fallible task's `Err` travels as its `Display` text ([`Error::Failed`]). The task's stdout and
//!   stderr are the parent's (stdout is flushed after each task).
//! - The parent needs no async runtime: futures complete from the driver threads. From async code,
//!   `.await` the futures, submit with [`submit_async`](ProcessPoolExecutor::submit_async) (or
//!   `submit` on an unbounded pool) and use
//!   [`shutdown_async`](ProcessPoolExecutor::shutdown_async): nothing blocks the runtime's threads
//!   (serializing the argument is the only work done on the caller's thread).
//! - A pool belongs to the process that made it. In a copy of that process made by `fork` without
//!   exec (a pre-fork server, a daemonizing library), the inherited pool refuses submits with
//!   [`Error::ProcessSetup`], its shutdowns (`shutdown_after` included), forced shutdowns and drop
//!   do nothing, and its [`metrics`](ProcessPoolExecutor::metrics),
//!   [`worker_pids`](ProcessPoolExecutor::worker_pids) and
//!   [`workers_started`](ProcessPoolExecutor::workers_started) are empty: the workers and their
//!   channels are the parent's, and the copy has none of the pool's threads. Futures the
//!   copy inherited are not its own either: their tasks run for the parent, which gets their
//!   replies; in the copy they end only if they had ended before the fork (a wait with a timeout
//!   times out, `interrupt` does nothing).
//!   Make a new pool in the copy.
//! - [`metrics`](ProcessPoolExecutor::metrics) returns the same [`Metrics`] as the thread pool, with
//!   [`workers_respawned`](Metrics::workers_respawned).
//!
//! # When a worker dies
//!
//! A worker's death (SIGKILL, abort, `process::exit`, the OOM killer) is seen at once: its driver is
//! blocked waiting on the channel and on the process itself (a pidfd), so it sees the exit even if a
//! process the task forked still holds the channel open; it then reaps the worker and reads its status.
//!
//! - [`WorkerDeath::BreakPool`] (default, Python's behaviour): the pool is broken. Every pending and
//!   running future fails with [`Error::BrokenProcessPool`], carrying the dead worker's pid and exit
//!   status or signal ([`BrokenProcessPool::worker_exit`](crate::BrokenProcessPool::worker_exit)); the
//!   other workers are killed; later submits fail at once. This holds even when an idle worker dies.
//! - [`WorkerDeath::Respawn`]: only the dead worker's task fails, with [`Error::WorkerDied`]; a new
//!   worker takes the queue.
//! - A task handed to a worker that turns out dead before it read a byte of it (killed just before
//!   a submit wrote to it while idle, or just after its reply or its handshake, as it was handed the
//!   next queued task) did not run there, and is never failed by that death as its own: it is
//!   dispatched again, to whichever worker can take it first (an idle one at once). Under
//!   `BreakPool` the death still breaks the pool, and the task, unless another worker finished it
//!   first, fails with [`Error::BrokenProcessPool`] as every pending task does; under `Respawn` it
//!   runs. It stays RUNNING meanwhile ([`cancel`](crate::PoolFuture::cancel) is refused, an
//!   interrupt ends it with [`Error::Interrupted`]).
//! - A worker that cannot be started or fails its handshake or initializer breaks the pool under both
//!   policies.
//!
//! # Without pidfds
//!
//! Kernels before 5.3 have no pidfds, and some sandboxes refuse them (seccomp profiles of older
//! Docker releases answer `EPERM`; gVisor and valgrind answer `ENOSYS`). The pool then works the
//! same, with two differences. Each worker costs one more thread in the parent, blocked in
//! `waitid` until the worker exits (it stands in for the pidfd, so a death is still seen at once,
//! also while a process the task forked holds the worker's channel open). And in a host that
//! ignores SIGCHLD, a kill racing the worker's own exit could reach a process that took over its
//! pid in that instant: signals are then guarded only by the pool's own bookkeeping, which cannot
//! see the kernel reap a worker.
//!
//! # Beyond Python
//!
//! - [`PoolFuture::interrupt`](crate::PoolFuture::interrupt) stops a *running* task by killing its
//!   worker (and its process group); the future ends with [`Error::Interrupted`] and a new worker takes
//!   over. [`submit_with_time_limit`](ProcessPoolExecutor::submit_with_time_limit) does the same when a
//!   task runs too long, ending it with [`Error::TimeLimit`]. Neither breaks the pool.
//! - No orphans: each worker leads its own process group, and every kill or reap of a worker kills the
//!   whole group, so processes a task started die with its worker, unless they leave the group: one
//!   started in a group or session of its own (`Command::process_group`, `setsid`, a daemon) is
//!   beyond the pool's reach. A worker dies with its parent (`PR_SET_PDEATHSIG`). One exception: in
//!   a host that ignores SIGCHLD, a worker that dies by itself (exits, crashes, is killed from
//!   outside) is reaped by the kernel at once, and its group is then no longer signalled (see the
//!   next point), so what its task started lives on.
//! - Signals reach only the pool's own processes: a worker is signalled through its pidfd, and its
//!   group only while the pidfd shows the worker unreaped, so a reused pid is never hit, even in a
//!   host that ignores SIGCHLD (where the kernel reaps workers itself). Without pidfds such a host
//!   loses that guarantee (see below).
//! - [`terminate_workers`](ProcessPoolExecutor::terminate_workers) and
//!   [`kill_workers`](ProcessPoolExecutor::kill_workers) as in Python 3.14.
//! - `max_tasks_per_child` recycling is done by the driver that served the worker, which replaces it
//!   itself: the number of live workers is always exact (CPython's gh-115634 hang cannot happen).

mod builder;
pub(crate) mod call;
pub(crate) mod child;
pub(crate) mod code;
mod driver;
mod entry;
pub(crate) mod handshake;
mod lineage;
mod os;
mod proc;
mod serde_msg;
mod shared;
pub(crate) mod task;
mod timer;
pub(crate) mod wire;

use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

pub use builder::ProcessPoolBuilder;
use call::{Call, Encoded};
use lineage::Lineage;
use proc::EnvOp;
pub(crate) use shared::Counters;
use shared::{Rejected, Shared, WhenFull};
#[cfg(feature = "tracing")]
pub(crate) use {proc::Proc, task::ProcTask};

use crate::error::Error;
use crate::executor::Payload;
use crate::future::PoolFuture;
use crate::map::{ChunkOut, Map, MapOptions};
use crate::pool::{Frontend, Metrics, Pool, Queued, Sizes};

/// What the abrupt death of a worker process does to the pool.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum WorkerDeath {
    /// Python's behaviour: the pool is broken; every pending and running future fails with
    /// [`Error::BrokenProcessPool`] and later submits are refused.
    #[default]
    BreakPool,
    /// Only the task the worker was running fails, with [`Error::WorkerDied`]; a new worker is started
    /// for the remaining work.
    Respawn,
}

pub(crate) struct Config {
    pub(crate) sizes: Sizes,
    /// The initializer's `RUN` frame, sent to each worker after the handshake.
    pub(crate) init: Option<Vec<u8>>,
    pub(crate) max_tasks_per_child: Option<usize>,
    pub(crate) env: Vec<EnvOp>,
    pub(crate) on_worker_death: WorkerDeath,
    pub(crate) handshake_timeout: Duration,
    pub(crate) frame_cap: usize,
}

/// A pool of worker processes running `fn(A) -> R` tasks; every submission returns a [`PoolFuture`].
/// Python's `concurrent.futures.ProcessPoolExecutor`. See the [module docs](self) for how it works.
///
/// Workers start on demand (one per submit that finds no idle worker, up to `max_workers`). The handle
/// is cheap to clone. When the last handle is dropped the pool shuts down *without blocking*: queued
/// work still runs, then the workers exit. To wait, call [`shutdown`](Self::shutdown),
/// [`shutdown_async`](Self::shutdown_async), or use [`shutdown_after`](Self::shutdown_after).
#[derive(Clone)]
pub struct ProcessPoolExecutor {
    pool: Pool<Shared>,
}

impl Frontend for ProcessPoolExecutor {
    type Backend = Shared;

    fn pool(&self) -> &Pool<Shared> {
        &self.pool
    }

    fn from_pool(pool: Pool<Shared>) -> Self {
        ProcessPoolExecutor { pool }
    }
}

impl ProcessPoolExecutor {
    /// A pool of at most `max_workers` processes (an error if 0).
    pub fn new(max_workers: usize) -> Result<Self, Error> {
        Self::builder().max_workers(max_workers).build()
    }

    /// A builder for the other settings (initializer, recycling, environment, death policy).
    pub fn builder() -> ProcessPoolBuilder {
        ProcessPoolBuilder::new()
    }

    fn from_config(config: Config) -> Self {
        ProcessPoolExecutor {
            pool: Pool::new(Shared::new(config)),
        }
    }

    fn shared(&self) -> &Arc<Shared> {
        self.pool.backend()
    }

    /// The gate every entry point that reaches the workers, the pool's lock or its drivers passes
    /// first (see [`Lineage`]): in a forked copy of the pool's owner, it refuses a submit or does
    /// nothing.
    fn lineage(&self) -> Lineage {
        self.shared().lineage()
    }

    /// The most processes this pool runs.
    pub fn max_workers(&self) -> usize {
        self.shared().config.sizes.max_workers
    }

    /// The pids of the worker processes alive now.
    pub fn worker_pids(&self) -> Vec<u32> {
        match self.lineage() {
            Lineage::Owner => self.shared().pids(),
            Lineage::ForkedCopy => Vec::new(),
        }
    }

    /// How many worker processes the pool has started so far (respawns and recycling included).
    pub fn workers_started(&self) -> u64 {
        match self.lineage() {
            Lineage::Owner => self.shared().lock().spawned,
            Lineage::ForkedCopy => 0,
        }
    }

    /// Encodes one task on the calling thread (so an argument that does not serialize fails at once,
    /// and the cost stays with the caller who asked for it): `Err` is that future, already failed.
    fn encode<T: Send + 'static>(
        &self,
        call: Call<T>,
        arg: &impl serde::Serialize,
        on_encode_error: impl FnOnce(Error) -> Result<T, Error>,
    ) -> Result<Encoded<T>, Result<PoolFuture<T>, Error>> {
        let shared = self.shared();
        if self.lineage() == Lineage::ForkedCopy {
            return Err(Err(shared.fork_refusal()));
        }
        if let Some(e) = Shared::refusal(&shared.lock().lifecycle) {
            return Err(Err(e));
        }
        let spare = shared.take_spare_frame();
        let (task, fut) = call.encode(arg, shared.config.frame_cap, spare, on_encode_error)?;
        #[cfg(feature = "tracing")]
        let task = crate::trace::process::wrap(task, &fut);
        Ok((task, fut))
    }

    /// Encodes and queues one task.
    fn push<T: Send + 'static>(
        &self,
        call: Call<T>,
        arg: &impl serde::Serialize,
        on_encode_error: impl FnOnce(Error) -> Result<T, Error>,
        when_full: WhenFull,
    ) -> Result<PoolFuture<T>, Error> {
        let (task, fut) = match self.encode(call, arg, on_encode_error) {
            Ok(pair) => pair,
            Err(done) => return done,
        };
        match self.shared().enqueue(task, when_full) {
            Ok(()) => Ok(fut),
            Err(Rejected::Full(_)) => Err(Error::Full),
            Err(Rejected::Closed(e)) => Err(e),
        }
    }

    /// Runs `f(arg)` in a worker process: Python's `submit(fn, arg)` (use a tuple for several
    /// arguments). Fails with [`Error::Shutdown`] after shutdown, or the pool's
    /// [`Error::BrokenProcessPool`] once it is broken. An argument that does not serialize gives a
    /// future failed with [`Error::Serialization`]. The argument is serialized on the calling
    /// thread; the frame is written by the worker's driver thread. With a bounded queue that is full,
    /// this blocks until there is room, except in a done callback, where it queues past the bound
    /// (the drivers that run callbacks are the ones that make room; see [`try_submit`](Self::try_submit) and
    /// [`submit_async`](Self::submit_async) for callers that must not block).
    pub fn submit<A: Payload, R: Payload>(
        &self,
        f: fn(A) -> R,
        arg: A,
    ) -> Result<PoolFuture<R>, Error> {
        self.push(Call::one(f, None), &arg, Err, WhenFull::Block)
    }

    /// [`submit`](Self::submit) that never blocks: with a bounded queue that is full, fails with a
    /// [`Rejected`](crate::Rejected) holding [`Error::Full`] and the work (`(f, arg)`), which
    /// `into_inner()` hands back; `?` turns it into the [`Error`]. A shut-down or broken pool rejects
    /// the same way.
    ///
    /// ```
    /// use concurrent_futures::{Error, ProcessPoolExecutor};
    ///
    /// fn forever((): ()) { loop { std::thread::park() } }
    /// fn double(n: u32) -> u32 { n * 2 }
    ///
    /// let pool = ProcessPoolExecutor::builder().max_workers(1).queue_capacity(1).build()?;
    /// let busy = pool.submit(forever, ())?;
    /// while !busy.running() { std::thread::yield_now() } // the worker has it: the queue is empty
    /// let queued = pool.try_submit(double, 1)?; // fills the queue
    /// let rejected = pool.try_submit(double, 2).unwrap_err();
    /// assert!(matches!(rejected.error(), Error::Full));
    /// let (_f, arg) = rejected.into_inner(); // the work comes back
    /// assert_eq!(arg, 2);
    /// pool.kill_workers(); // ends `forever` (its future fails) and cancels `queued`
    /// assert!(queued.cancelled());
    /// # Ok::<(), Error>(())
    /// ```
    #[allow(clippy::type_complexity)]
    pub fn try_submit<A: Payload, R: Payload>(
        &self,
        f: fn(A) -> R,
        arg: A,
    ) -> Result<PoolFuture<R>, crate::Rejected<(fn(A) -> R, A)>> {
        self.push(Call::one(f, None), &arg, Err, WhenFull::Reject)
            .map_err(|e| crate::Rejected::new(e, (f, arg)))
    }

    /// [`submit`](Self::submit) for async code: with a bounded queue that is full, waits for room
    /// without blocking the thread (it is woken when a worker takes a queued task). Nothing here
    /// blocks: the argument is serialized on the calling thread, and the frame is written by the
    /// worker's driver thread. Dropping the returned future before it resolves drops the task.
    /// Polled in a done callback, it does not wait for room but queues past the bound, as
    /// [`submit`](Self::submit) does there.
    ///
    /// ```
    /// use concurrent_futures::ProcessPoolExecutor;
    ///
    /// fn double(n: u32) -> u32 { n * 2 }
    ///
    /// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
    /// let pool = ProcessPoolExecutor::builder().max_workers(1).queue_capacity(2).build()?;
    /// let mut futures = Vec::new();
    /// for n in 0..5 {
    ///     futures.push(pool.submit_async(double, n).await?); // waits while 2 are queued
    /// }
    /// let mut doubled = Vec::new();
    /// for f in futures {
    ///     doubled.push(f.await?);
    /// }
    /// assert_eq!(doubled, [0, 2, 4, 6, 8]);
    /// # Ok::<(), concurrent_futures::Error>(())
    /// # }).unwrap();
    /// ```
    pub async fn submit_async<A: Payload, R: Payload>(
        &self,
        f: fn(A) -> R,
        arg: A,
    ) -> Result<PoolFuture<R>, Error> {
        let (task, fut) = match self.encode(Call::one(f, None), &arg, Err) {
            Ok(pair) => pair,
            Err(done) => return done,
        };
        drop(arg);
        let shared = self.shared();
        shared
            .room
            .enqueue(task, |t| shared.enqueue(t, WhenFull::Await))
            .await?;
        Ok(fut)
    }

    /// A snapshot of the pool's counters: worker processes (live drivers, including workers being
    /// started), idle ones, queued and running tasks, tasks that ended with a reply (returned,
    /// failed, panicked), cancelled ones, and [`workers_respawned`](Metrics::workers_respawned):
    /// workers started to replace one that ended (a death under [`WorkerDeath::Respawn`], an
    /// interrupt, a time limit, recycling by `max_tasks_per_child`).
    ///
    /// ```
    /// use concurrent_futures::ProcessPoolExecutor;
    ///
    /// let pool = ProcessPoolExecutor::builder().max_workers(1).max_tasks_per_child(1).build()?;
    /// for n in 0..3u8 {
    ///     pool.submit(|n: u8| n, n)?.result(None)?;
    /// }
    /// let m = pool.metrics();
    /// assert_eq!(m.completed, 3);
    /// assert_eq!(m.workers_respawned, 2); // each task had a fresh worker
    /// # Ok::<(), concurrent_futures::Error>(())
    /// ```
    pub fn metrics(&self) -> Metrics {
        match self.lineage() {
            Lineage::Owner => self.pool.metrics(),
            // Not the lock, which a driver may have held at the fork. The copy has no workers, and
            // no task of its own.
            Lineage::ForkedCopy => Metrics::default(),
        }
    }

    /// Runs a task that can fail: an `Err` ends the future with [`Error::Failed`], carrying the error's
    /// `Display` text (the error value itself stays in the worker).
    ///
    /// ```
    /// use concurrent_futures::{Error, ProcessPoolExecutor};
    ///
    /// fn parse(s: String) -> Result<u32, std::num::ParseIntError> { s.parse() }
    ///
    /// let pool = ProcessPoolExecutor::new(1)?;
    /// let f = pool.submit_fallible(parse, "five".to_string())?;
    /// let Some(Error::Failed(e)) = f.exception(None)? else { panic!() };
    /// assert_eq!(e.to_string(), "invalid digit found in string");
    /// # Ok::<(), Error>(())
    /// ```
    pub fn submit_fallible<A, R, E>(
        &self,
        f: fn(A) -> Result<R, E>,
        arg: A,
    ) -> Result<PoolFuture<R>, Error>
    where
        A: Payload,
        R: Payload,
        E: Into<Box<dyn std::error::Error + Send + Sync>> + Send + 'static,
    {
        self.push(Call::fallible(f), &arg, Err, WhenFull::Block)
    }

    /// [`submit`](Self::submit) with a time limit counted from the moment the task is dispatched: if it
    /// has not finished by then, its worker is killed (a new one takes over) and the future ends with
    /// [`Error::TimeLimit`].
    ///
    /// ```
    /// use concurrent_futures::{Error, ProcessPoolExecutor};
    /// use std::time::Duration;
    ///
    /// fn forever((): ()) { loop { std::thread::sleep(Duration::from_secs(1)) } }
    ///
    /// let pool = ProcessPoolExecutor::new(1)?;
    /// let mut f = pool.submit_with_time_limit(Duration::from_millis(50), forever, ())?;
    /// assert!(matches!(f.result(None), Err(Error::TimeLimit(_))));
    /// assert_eq!(pool.submit(|x: u8| x + 1, 1)?.result(None)?, 2); // the pool carries on
    /// # Ok::<(), Error>(())
    /// ```
    pub fn submit_with_time_limit<A: Payload, R: Payload>(
        &self,
        limit: Duration,
        f: fn(A) -> R,
        arg: A,
    ) -> Result<PoolFuture<R>, Error> {
        self.push(Call::one(f, Some(limit)), &arg, Err, WhenFull::Block)
    }

    /// Applies `f` to every input in worker processes: Python's `executor.map`. Results come in input
    /// order. Every input is submitted before this returns; see [`map_with`](Self::map_with).
    pub fn map<A, R, I>(&self, f: fn(A) -> R, inputs: I) -> Result<Map<R>, Error>
    where
        A: Payload,
        R: Payload,
        I: IntoIterator<Item = A>,
        I::IntoIter: Send + 'static,
    {
        self.map_with(f, inputs, MapOptions::new())
    }

    /// [`map`](Self::map) with options. With a [`chunksize`](MapOptions::chunksize) of `n`, each task
    /// carries `n` inputs in one round trip; each element still gets its own result (a panic fails
    /// only its element). An argument that does not serialize fails every element of its chunk.
    ///
    /// ```
    /// use concurrent_futures::{MapOptions, ProcessPoolExecutor};
    ///
    /// let pool = ProcessPoolExecutor::new(2)?;
    /// let doubled = pool
    ///     .map_with(|n: u32| n * 2, 0..40, MapOptions::new().chunksize(6))?
    ///     .into_iter()
    ///     .collect::<Result<Vec<_>, _>>()?;
    /// assert_eq!(doubled, (0..40).map(|n| n * 2).collect::<Vec<_>>());
    /// # Ok::<(), concurrent_futures::Error>(())
    /// ```
    pub fn map_with<A, R, I>(
        &self,
        f: fn(A) -> R,
        inputs: I,
        opts: MapOptions,
    ) -> Result<Map<R>, Error>
    where
        A: Payload,
        R: Payload,
        I: IntoIterator<Item = A>,
        I::IntoIter: Send + 'static,
    {
        crate::pool::start_map(
            self,
            inputs,
            opts,
            move |pool, a| pool.push(Call::map_one(f), &a, Err, WhenFull::Overfill),
            move |pool, items| {
                let n = items.len();
                pool.push(
                    Call::map_chunk(f, n),
                    &items,
                    move |e| Ok(ChunkOut::Many((0..n).map(|_| Err(e.clone())).collect())),
                    WhenFull::Overfill,
                )
            },
        )
    }

    /// Shuts the pool down and waits until every worker process has exited and been reaped: Python's
    /// `shutdown(wait=True, cancel_futures=…)`. Running tasks finish; queued ones run or are cancelled
    /// as `queued` says. Calling it again is harmless. Called from a done callback (which runs on a
    /// driver thread), it waits for the other workers only.
    pub fn shutdown(&self, queued: Queued) {
        match self.lineage() {
            Lineage::Owner => self.pool.shutdown(queued),
            Lineage::ForkedCopy => {}
        }
    }

    /// Shuts the pool down without waiting: Python's `shutdown(wait=False, cancel_futures=…)`. Queued
    /// tasks still run (unless cancelled); the workers exit when the queue is empty.
    pub fn shutdown_nowait(&self, queued: Queued) {
        // Gated where it closes the pool, as every drop is (`Shared::close`).
        self.pool.shutdown_nowait(queued)
    }

    /// [`shutdown`](Self::shutdown) for async code: resolves when every worker has exited and been
    /// reaped, without blocking the runtime's threads.
    pub fn shutdown_async(&self, queued: Queued) -> impl Future<Output = ()> + Send + '_ {
        let wait = match self.lineage() {
            Lineage::Owner => Some(self.pool.shutdown_async(queued)),
            Lineage::ForkedCopy => None,
        };
        async move {
            if let Some(wait) = wait {
                wait.await
            }
        }
    }

    /// Python 3.14's `terminate_workers()`: shuts down with queued tasks cancelled, then sends SIGTERM
    /// to every worker (and its process group), then SIGCONT, so that a stopped worker gets it too.
    /// Running futures fail with [`Error::BrokenProcessPool`]
    /// ([`ForcedShutdown`](crate::BrokenCause::ForcedShutdown)); later submits get [`Error::Shutdown`].
    /// Does not wait; follow with [`shutdown`](Self::shutdown) to reap the workers.
    pub fn terminate_workers(&self) {
        if self.lineage() == Lineage::ForkedCopy {
            return;
        }
        let cancelled = self.shared().force(libc::SIGTERM).run();
        Counters::add(&self.shared().counters.cancelled, cancelled);
    }

    /// Python 3.14's `kill_workers()`: as [`terminate_workers`](Self::terminate_workers) with SIGKILL.
    pub fn kill_workers(&self) {
        if self.lineage() == Lineage::ForkedCopy {
            return;
        }
        let cancelled = self.shared().force(libc::SIGKILL).run();
        Counters::add(&self.shared().counters.cancelled, cancelled);
    }

    /// Runs `body` with the pool, then shuts it down and waits, even if `body` panics: Python's
    /// `with ProcessPoolExecutor(...) as ex:`.
    pub fn shutdown_after<R>(self, body: impl FnOnce(&ProcessPoolExecutor) -> R) -> R {
        match self.lineage() {
            Lineage::Owner => crate::pool::shutdown_after(self, body),
            // The shutdown would wait for drivers that the copy does not have.
            Lineage::ForkedCopy => body(&self),
        }
    }
}

impl fmt::Debug for ProcessPoolExecutor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.lineage() == Lineage::ForkedCopy {
            // Not the lock: a driver may have held it at the fork.
            return f
                .debug_struct("ProcessPoolExecutor")
                .field("max_workers", &self.shared().config.sizes.max_workers)
                .field("inherited_by_fork", &true)
                .finish();
        }
        let st = self.shared().lock();
        f.debug_struct("ProcessPoolExecutor")
            .field("max_workers", &self.shared().config.sizes.max_workers)
            .field("drivers", &st.drivers)
            .field("idle", &st.idle.len())
            .field("queued", &st.queue.len())
            .field("lifecycle", &st.lifecycle)
            .finish()
    }
}
