//! [`ThreadPoolBuilder`]: the knobs of Python's `ThreadPoolExecutor(...)` constructor, and a few more.

use std::fmt;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use super::{Config, Initializer, ThreadPoolExecutor};
use crate::error::Error;
use crate::pool::{InitResult, Sizes};

/// Configures and builds a [`ThreadPoolExecutor`].
///
/// ```
/// use concurrent_futures::ThreadPoolExecutor;
///
/// let pool = ThreadPoolExecutor::builder()
///     .max_workers(4)
///     .thread_name_prefix("resize")
///     .initializer(|| println!("worker {:?} ready", std::thread::current().name()))
///     .queue_capacity(1000)
///     .build()?;
/// # drop(pool);
/// # Ok::<(), concurrent_futures::Error>(())
/// ```
#[derive(Default)]
pub struct ThreadPoolBuilder {
    max_workers: Option<usize>,
    name_prefix: Option<String>,
    initializer: Option<Initializer>,
    stack_size: Option<usize>,
    capacity: Option<usize>,
    keep_alive: Option<Duration>,
}

/// How long an idle worker thread lives on by default (tokio's blocking pool uses the same).
pub(crate) const DEFAULT_KEEP_ALIVE: Duration = Duration::from_secs(10);

static POOL_COUNTER: AtomicUsize = AtomicUsize::new(0);

impl ThreadPoolBuilder {
    /// A builder with Python's defaults.
    pub fn new() -> Self {
        Self::default()
    }

    /// The most threads the pool will run (default `min(32, cpus + 4)`, as Python). Threads start
    /// lazily, one per submit that finds no idle thread. Must be at least 1.
    pub fn max_workers(mut self, n: usize) -> Self {
        self.max_workers = Some(n);
        self
    }

    /// Threads are named `{prefix}_{i}` (default `ThreadPoolExecutor-{k}_{i}`). Linux shows only the
    /// first 15 bytes of a thread name in tools like `top`. A prefix holding a NUL byte makes
    /// [`build`](Self::build) fail with [`Error::InvalidArgument`].
    pub fn thread_name_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.name_prefix = Some(prefix.into());
        self
    }

    /// Runs once on each worker thread before its first task (Python's `initializer`/`initargs`:
    /// capture the arguments in the closure). If it returns `Err` or panics, the pool breaks: queued
    /// futures fail with [`Error::BrokenThreadPool`], and so does every later submit.
    pub fn initializer<F, R>(mut self, init: F) -> Self
    where
        F: Fn() -> R + Send + Sync + 'static,
        R: InitResult,
    {
        self.initializer = Some(Arc::new(move || match init().into_failure() {
            None => Ok(()),
            Some(e) => Err(e),
        }));
        self
    }

    /// Stack size of each worker thread, in bytes (default: std's, 2 MiB).
    pub fn stack_size(mut self, bytes: usize) -> Self {
        self.stack_size = Some(bytes);
        self
    }

    /// How long a worker thread stays idle before it exits (default 10 s, as tokio's blocking pool),
    /// so that an idle pool holds no threads. The next submit that finds no idle thread starts one
    /// again (and runs the [`initializer`](Self::initializer) on it, as on every new thread). Zero
    /// makes a thread exit as soon as it finds the queue empty.
    ///
    /// ```
    /// use std::time::Duration;
    /// use concurrent_futures::ThreadPoolExecutor;
    ///
    /// let pool = ThreadPoolExecutor::builder()
    ///     .max_workers(2)
    ///     .keep_alive(Duration::from_millis(500))
    ///     .build()?;
    /// assert_eq!(pool.spawn(|| 1 + 1)?.result(None)?, 2);
    /// # Ok::<(), concurrent_futures::Error>(())
    /// ```
    pub fn keep_alive(mut self, idle_for: Duration) -> Self {
        self.keep_alive = Some(idle_for);
        self
    }

    /// Bounds the queue of tasks waiting for a thread (Python's is unbounded). When it is full,
    /// `try_submit` fails with [`Error::Full`], `submit_async` waits for room, and `submit` blocks,
    /// except on one of the pool's own threads (a task or a done callback submitting more work, or
    /// driving a `submit_async` there), where waiting could wait for itself: there both queue past
    /// the bound. `map` is bounded by its own [`buffer`](crate::MapOptions::buffer) instead. Must be
    /// at least 1. A task cancelled while queued gives its place back to the next submit that finds the
    /// queue full (a submitter already waiting gets in when a worker next takes a task).
    pub fn queue_capacity(mut self, tasks: usize) -> Self {
        self.capacity = Some(tasks);
        self
    }

    /// Builds the pool. No thread starts until the first submit.
    pub fn build(self) -> Result<ThreadPoolExecutor, Error> {
        let sizes = Sizes::check(self.max_workers, default_max_workers, self.capacity)?;
        if self.name_prefix.as_ref().is_some_and(|p| p.contains('\0')) {
            // std cannot name a thread so, and panics when asked to at the first submit.
            return Err(Error::InvalidArgument(
                "thread_name_prefix must not contain a NUL byte".into(),
            ));
        }
        let name_prefix = self.name_prefix.unwrap_or_else(|| {
            format!(
                "ThreadPoolExecutor-{}",
                POOL_COUNTER.fetch_add(1, Ordering::Relaxed)
            )
        });
        Ok(ThreadPoolExecutor::from_config(Config {
            sizes,
            name_prefix,
            initializer: self.initializer,
            stack_size: self.stack_size,
            keep_alive: self.keep_alive.unwrap_or(DEFAULT_KEEP_ALIVE),
        }))
    }
}

/// Python's default: `min(32, cpus + 4)`, with the CPU count that honours affinity and cgroup limits.
pub(crate) fn default_max_workers() -> usize {
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    (cpus + 4).min(32)
}

impl fmt::Debug for ThreadPoolBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ThreadPoolBuilder")
            .field("max_workers", &self.max_workers)
            .field("thread_name_prefix", &self.name_prefix)
            .field("initializer", &self.initializer.is_some())
            .field("stack_size", &self.stack_size)
            .field("queue_capacity", &self.capacity)
            .field("keep_alive", &self.keep_alive)
            .finish()
    }
}
