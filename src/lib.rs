//! Python's [`concurrent.futures`](https://docs.python.org/3/library/concurrent.futures.html) for Rust,
//! where every future is also a Rust [`Future`](std::future::Future).
//!
//! Blocking or CPU-bound work goes to a [`ThreadPoolExecutor`], or to a [`ProcessPoolExecutor`] (Linux)
//! when it needs isolation from crashes, aborts, leaks or unsafe native code; the [`Executor`] trait lets
//! the same code use either. Each submission returns a
//! [`PoolFuture`] that an async service can `.await` (from tokio, smol or any executor), race in
//! `select!`, or that sync code can block on with [`result`](PoolFuture::result). [`as_completed`] is a
//! `Stream` and an iterator, [`wait`] is awaitable and blocking, and [`map`](ThreadPoolExecutor::map)
//! streams results in input order.
//!
//! # Python → Rust
//!
//! | Python | Rust |
//! |---|---|
//! | `ThreadPoolExecutor(max_workers, thread_name_prefix, initializer, initargs)` | [`ThreadPoolExecutor::new`], [`ThreadPoolExecutor::builder`] |
//! | `ProcessPoolExecutor(max_workers, initializer, initargs, max_tasks_per_child)` | [`ProcessPoolExecutor::new`], [`ProcessPoolExecutor::builder`] (Linux; see [`process_pool`]) |
//! | `ex.submit(fn, arg)` | [`submit(f, arg)`](ThreadPoolExecutor::submit), [`spawn(closure)`](ThreadPoolExecutor::spawn), [`Executor::submit`] |
//! | `ex.map(fn, it, timeout=, chunksize=)` | [`map`](ThreadPoolExecutor::map), [`map_with`](ThreadPoolExecutor::map_with) + [`MapOptions`] (adds a bound on in-flight tasks) |
//! | `ex.shutdown(wait, cancel_futures)` | [`shutdown`](ThreadPoolExecutor::shutdown), [`shutdown_nowait`](ThreadPoolExecutor::shutdown_nowait), [`shutdown_async`](ThreadPoolExecutor::shutdown_async) with [`Queued`] |
//! | `with ThreadPoolExecutor() as ex:` | [`ThreadPoolExecutor::shutdown_after`] |
//! | `Future` | [`PoolFuture`]: `.await`, [`cancel`](PoolFuture::cancel), [`cancelled`](PoolFuture::cancelled), [`running`](PoolFuture::running), [`done`](PoolFuture::done), [`result`](PoolFuture::result), [`exception`](PoolFuture::exception), [`add_done_callback`](PoolFuture::add_done_callback) |
//! | `Future()` + `set_result` | [`Promise`] |
//! | `wait(fs, timeout, return_when)` | [`wait`]`(fs).return_when(…).timeout(…)` then `.await` or `.blocking()` |
//! | `as_completed(fs, timeout)` | [`as_completed`]`(fs).timeout(…)`: a `Stream`, or `for f in …`; a [`CompletionSet`] to add work while draining |
//! | `CancelledError`, `TimeoutError`, `BrokenThreadPool`, `BrokenProcessPool`, `InvalidStateError`, `RuntimeError` | [`Error`] variants |
//! | `mpi4py.futures.MPIPoolExecutor` | `MpiPoolExecutor` (feature `mpi`; see `mpi_pool`) |
//!
//! # Beyond Python
//!
//! - A bounded queue: [`queue_capacity`](ThreadPoolBuilder::queue_capacity) with
//!   [`try_submit`](ThreadPoolExecutor::try_submit) (fails with a [`Rejected`] holding [`Error::Full`]
//!   and the work, handed back) and
//!   [`submit_async`](ThreadPoolExecutor::submit_async) (waits for room); `map` with a
//!   [`buffer`](MapOptions::buffer) works on endless inputs.
//! - Stopping a *running* task cooperatively: [`spawn_cancellable`](ThreadPoolExecutor::spawn_cancellable),
//!   [`spawn_with_time_limit`](ThreadPoolExecutor::spawn_with_time_limit), [`PoolFuture::interrupt`]; the
//!   task's [`CancelToken`] is tokio-util's `CancellationToken` inside, and a task follows a caller's token
//!   with [`spawn_cancellable_with`](ThreadPoolExecutor::spawn_cancellable_with) or
//!   [`PoolFuture::interrupt_on_cancel`] (either pool).
//! - Handles as tokio users expect: a cloneable [`TaskHandle`] (tokio's `AbortHandle`), a growing
//!   [`CompletionSet`] (tokio's `JoinSet`), fused futures and streams for `futures::select!`, and a
//!   [`Panic`] that re-raises its original payload ([`Panic::resume_unwind`]).
//! - [`Metrics`] as stable API; a stable [`FutureId`] per future.
//! - Scoped tasks that borrow from the caller's stack: [`ThreadPoolExecutor::scope`], like
//!   `std::thread::scope` on the pool's threads (every task joined at the scope's end, panics
//!   propagated).
//! - A good neighbour inside someone else's program: idle threads exit after a
//!   [`keep_alive`](ThreadPoolBuilder::keep_alive) (default 10 s); a thread about to wait spins only for
//!   a few microseconds, only while that has been paying off, with at most half the CPUs spinning at
//!   once across all pools and none while the machine has more runnable threads than CPUs. Set
//!   `CONCURRENT_FUTURES_SPIN=0` in the environment to turn spinning off.
//! - CPython's bug where cancelled futures never count as done in `wait`/`as_completed` (gh-92001,
//!   gh-109934) is not copied: a cancelled future is done, and wakes its waiters.
//!
//! # Semantics worth knowing
//!
//! - A running task holds its worker until it returns; with every worker busy, later tasks wait.
//! - [`cancel`](PoolFuture::cancel) succeeds only for a task that has not started.
//! - Dropping a [`PoolFuture`] detaches it (the task still runs); dropping a [`Map`] cancels its tasks
//!   that have not started; dropping the pool shuts it down without blocking, and queued work still runs.
//! - A future that ends calls back, then publishes, then wakes. The callbacks added before the end run
//!   first, with the outcome by reference; only when they have returned does the future become done
//!   ([`done`](PoolFuture::done), [`wait`], [`as_completed`], [`exception`](PoolFuture::exception))
//!   and its waiters wake. Meanwhile it still reads as running (or, for a cancel, pending). So `done()`
//!   means the outcome is readable at once, on every thread: `result(Duration::ZERO)` does not time
//!   out. CPython publishes and wakes first; here the owner *moves* the value out as soon as it sees the
//!   future done, while callbacks borrow it (`T` need not be `Clone`), so they must come first.
//! - Which thread runs a callback: one added before the end runs on the thread that ends the future:
//!   the thread-pool worker that ran the task, the process pool's driver thread for the worker that ran
//!   it, or the thread that calls [`cancel`](PoolFuture::cancel) (also a cancelling shutdown, or a
//!   [`Promise`]'s producer). One added after the end runs at once on the adding thread, and the
//!   future stays done and readable meanwhile. Callbacks run in the order added; a panicking callback
//!   is reported and the others still run.
//! - A worker takes its next task only after the callbacks of its last one have returned, and a task
//!   leaves the queue only to start at once. So a callback may wait on another task of the same pool
//!   when another worker is free to run it (never on its own future: that is published only after the
//!   callback returns), and `shutdown(Queued::Cancel)` from a callback cancels every task not started.
//! - A task's panic is [`Error::Panicked`] on its future, with its message, location (and backtrace
//!   when `RUST_BACKTRACE` asks), and the payload to re-raise with [`Panic::resume_unwind`]; the worker
//!   survives.
//! - Threads suit blocking I/O and, in Rust, CPU work too (no GIL).
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), concurrent_futures::Error> {
//! use concurrent_futures::{as_completed, ThreadPoolExecutor};
//! use futures::StreamExt;
//!
//! let pool = ThreadPoolExecutor::new(4)?;
//! // Awaiting does not block the runtime: the work runs on the pool's threads.
//! let n = pool.submit(|n: u64| (1..=n).product::<u64>(), 10)?.await?;
//! assert_eq!(n, 3_628_800);
//!
//! let futures = (1..=3u64).map(|i| pool.submit(|i: u64| i * 100, i)).collect::<Result<Vec<_>, _>>()?;
//! let mut completed = as_completed(futures);
//! let mut total = 0;
//! while let Some(f) = completed.next().await {
//!     total += f?.await?;
//! }
//! assert_eq!(total, 600);
//! pool.shutdown_async(concurrent_futures::Queued::Run).await;
//! # Ok(()) }
//! ```
//!
//! # Cargo features
//!
//! - `tracing` (off by default): one [`tracing`](https://docs.rs/tracing) span per task, named `task`
//!   (target `concurrent_futures`), created at submit under the submitter's current span, so a
//!   service's traces show where a request's time went. Its fields: `pool` (the thread-name prefix, or
//!   `ProcessPoolExecutor`), `pool.kind` (`thread` or `process`), `task.id` (the [`FutureId`]),
//!   `queue_wait_us` (submit to start), `run_us` and `outcome` (`returned`, `failed`, `panicked`,
//!   `interrupted`, `cancelled` or `broken`), the last three recorded as the task ends. A thread-pool
//!   task's span is entered on the worker while it runs, so the task's own events nest in it. A
//!   process-pool task runs in another process: its span lives on the parent, from submit to the
//!   reply, entered on the pool's driver thread while the reply is decoded.

#![warn(missing_docs, missing_debug_implementations, rust_2018_idioms)]
#![cfg_attr(docsrs, feature(doc_cfg))]
#![deny(unsafe_code)] // allowed only on the few items that need it (system calls, the process pool's code
                      // addresses, the lifetime erasure of scoped tasks, a future's lock word and its
                      // slot (a thread-pool task's closure, then the outcome), the watch set's waker
                      // vtable, the byte-vector shortcut's type
                      // check), each with a SAFETY comment

mod as_completed;
mod byte_block;
mod completion_set;
mod deadline;
mod error;
mod executor;
mod future;
mod map;
#[cfg(all(feature = "mpi", target_os = "linux", not(loom)))]
#[cfg_attr(docsrs, doc(cfg(feature = "mpi")))]
pub mod mpi_pool;
mod panic;
mod pool;
#[cfg(all(target_os = "linux", not(loom)))]
pub mod process_pool;
mod report;
mod spin;
mod sync;
mod thread_pool;
#[cfg(feature = "tracing")]
mod trace;
mod wait;
mod watch;

pub use as_completed::{as_completed, AsCompleted, AsCompletedIter};
pub use byte_block::ByteBlock;
#[allow(deprecated)]
pub use byte_block::Bytes;
pub use completion_set::CompletionSet;
pub use error::{
    BrokenCause, BrokenProcessPool, BrokenSeenBy, Error, Panic, RankLost, RankSilence, Rejected,
    TaskError, WorkerExit,
};
pub use executor::{Executor, Payload};
pub use future::{CancelOnDrop, FutureId, PoolFuture, Promise, TaskHandle, Watch};
pub use map::{Map, MapIter, MapOptions};
#[cfg(all(feature = "mpi", target_os = "linux", not(loom)))]
pub use mpi_pool::{MpiPoolBuilder, MpiPoolExecutor};
pub use pool::{InitResult, Metrics, Queued};
#[cfg(all(target_os = "linux", not(loom)))]
pub use process_pool::{ProcessPoolBuilder, ProcessPoolExecutor, WorkerDeath};
pub use thread_pool::{
    CancelToken, Scope, ScopedJoinHandle, ThreadPoolBuilder, ThreadPoolExecutor,
};
pub use wait::{wait, Done, ReturnWhen, Wait, WaitFuture};

#[doc(hidden)]
pub use future::Watched;
#[cfg(loom)]
#[doc(hidden)]
pub use future::{LoomTask, LoomWeakTask, LoomWordLock};
#[cfg(loom)]
#[doc(hidden)]
pub use thread_pool::LoomWake;

/// The README's code blocks, compiled and run as doctests so they stay true.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
