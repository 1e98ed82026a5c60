//! [`ProcessPoolBuilder`]: the knobs of Python's `ProcessPoolExecutor(...)` constructor, and a few more.

use std::ffi::OsString;
use std::fmt;
use std::time::Duration;

use super::code;
use super::proc::EnvOp;
use super::{Config, ProcessPoolExecutor, WorkerDeath};
use crate::error::Error;
use crate::executor::Payload;
use crate::pool::{InitResult, Sizes};

/// Configures and builds a [`ProcessPoolExecutor`].
///
/// ```
/// use concurrent_futures::process_pool::{ProcessPoolExecutor, WorkerDeath};
///
/// fn setup(level: u8) { std::env::set_var("LEVEL", level.to_string()); }
///
/// let pool = ProcessPoolExecutor::builder()
///     .max_workers(2)
///     .initializer(setup, 3)               // runs in each worker before its first task
///     .max_tasks_per_child(100)            // recycle workers (memory-leaky libraries)
///     .env("RUST_LOG", "info")             // the workers' environment
///     .on_worker_death(WorkerDeath::Respawn) // a crash fails only the crashed task
///     .build()?;
/// let level = pool.submit(|(): ()| std::env::var("LEVEL").unwrap(), ())?.result(None)?;
/// assert_eq!(level, "3");
/// pool.shutdown(concurrent_futures::Queued::Run);
/// # Ok::<(), concurrent_futures::Error>(())
/// ```
pub struct ProcessPoolBuilder {
    max_workers: Option<usize>,
    init: Option<Result<Vec<u8>, Error>>,
    max_tasks_per_child: Option<usize>,
    env: Vec<EnvOp>,
    on_worker_death: WorkerDeath,
    handshake_timeout: Duration,
    frame_cap: usize,
    capacity: Option<usize>,
}

impl Default for ProcessPoolBuilder {
    fn default() -> Self {
        ProcessPoolBuilder {
            max_workers: None,
            init: None,
            max_tasks_per_child: None,
            env: Vec::new(),
            on_worker_death: WorkerDeath::BreakPool,
            handshake_timeout: Duration::from_secs(10),
            frame_cap: super::wire::DEFAULT_MAX_FRAME,
            capacity: None,
        }
    }
}

impl ProcessPoolBuilder {
    /// A builder with Python's defaults.
    pub fn new() -> Self {
        Self::default()
    }

    /// The most worker processes (default: the available parallelism, as Python's
    /// `os.process_cpu_count()`). Workers start on demand. Must be at least 1.
    pub fn max_workers(mut self, n: usize) -> Self {
        self.max_workers = Some(n);
        self
    }

    /// Runs `f(arg)` in each worker process before its first task (Python's `initializer`/`initargs`).
    /// `f` returns `()` or a `Result<(), E: Display>`; an `Err` or a panic breaks the pool: queued
    /// futures fail with [`Error::BrokenProcessPool`] whose cause is
    /// [`InitializerFailed`](crate::BrokenCause::InitializerFailed), and so does every later submit.
    ///
    /// Workers never run the program's `main`: this is where to repeat what `main` sets up that the
    /// tasks rely on (a logger, a panic hook, an FFI library's global init).
    pub fn initializer<A: Payload, R: InitResult + 'static>(
        mut self,
        f: fn(A) -> R,
        arg: A,
    ) -> Self {
        self.init = Some(code::run_frame(
            code::run_init::<A, R> as code::Trampoline,
            f as usize,
            &arg,
            usize::MAX,
            Vec::new(),
        ));
        self
    }

    /// Replaces a worker process after it has run `n` tasks (Python's `max_tasks_per_child`): the
    /// driver that served it starts the replacement itself when work is waiting. Must be at least 1.
    pub fn max_tasks_per_child(mut self, n: usize) -> Self {
        self.max_tasks_per_child = Some(n);
        self
    }

    /// Sets an environment variable for the workers (they inherit the parent's environment otherwise).
    pub fn env(mut self, key: impl Into<OsString>, value: impl Into<OsString>) -> Self {
        self.env.push(EnvOp::Set(key.into(), value.into()));
        self
    }

    /// Removes an environment variable from the workers' environment.
    pub fn env_remove(mut self, key: impl Into<OsString>) -> Self {
        self.env.push(EnvOp::Remove(key.into()));
        self
    }

    /// Starts the workers with an empty environment (plus what [`env`](Self::env) adds afterwards).
    pub fn env_clear(mut self) -> Self {
        self.env.push(EnvOp::Clear);
        self
    }

    /// What a worker's abrupt death does (default [`WorkerDeath::BreakPool`], Python's behaviour).
    pub fn on_worker_death(mut self, policy: WorkerDeath) -> Self {
        self.on_worker_death = policy;
        self
    }

    /// How long a new worker may take to answer the handshake before the pool gives up on it and
    /// breaks (default 10 s). It never waits forever. Must not be zero.
    pub fn handshake_timeout(mut self, timeout: Duration) -> Self {
        self.handshake_timeout = timeout;
        self
    }

    /// The largest encoded argument or result, in bytes (default 1 GiB, at least 4 KiB, at most
    /// 4 GiB). A value over it fails its own task with [`Error::Serialization`]; a panic or error
    /// message over it is cut short.
    pub fn max_frame_bytes(mut self, bytes: usize) -> Self {
        self.frame_cap = bytes.clamp(super::wire::MIN_MAX_FRAME, u32::MAX as usize);
        self
    }

    /// Bounds the queue of tasks waiting for a worker (default: unbounded, as Python's). When it is
    /// full, [`submit`](ProcessPoolExecutor::submit) blocks until a worker takes a task,
    /// [`try_submit`](ProcessPoolExecutor::try_submit) fails with [`Error::Full`], and
    /// [`submit_async`](ProcessPoolExecutor::submit_async) waits without blocking its thread, except
    /// in a done callback (run by the pool's driver threads, or by a caller reading a reply in a
    /// driver's place), where both queue past the bound: only the drivers make room. A task
    /// handed straight to an idle worker does not count. `map` is bounded by
    /// [`MapOptions::buffer`](crate::MapOptions::buffer) instead. Must be at least 1. A task
    /// cancelled while queued gives its place back to the next submit that finds the queue full (a
    /// submitter already waiting gets in when a worker next takes a task).
    pub fn queue_capacity(mut self, tasks: usize) -> Self {
        self.capacity = Some(tasks);
        self
    }

    /// Builds the pool. No process starts until the first submit.
    ///
    /// Fails with [`Error::InvalidArgument`] for a zero `max_workers`, `max_tasks_per_child`,
    /// `handshake_timeout` or `queue_capacity`, and with [`Error::ProcessSetup`] in a process that was started as a
    /// worker but is running `main` (which would otherwise start workers of its own, recursively).
    pub fn build(self) -> Result<ProcessPoolExecutor, Error> {
        // Keep the worker entry (a constructor) linked into every program that builds a pool.
        std::hint::black_box(&super::entry::WORKER_ENTRY);
        let marker = super::handshake::marker_name();
        if std::env::var_os(marker).is_some() {
            return Err(Error::ProcessSetup(format!(
                "this process was started as a process-pool worker ({marker} is set) but is running \
                 the program's main code; refusing to start workers from it (no fork bomb). The \
                 worker entry point did not run: is the program a shared library, or was the \
                 variable set by hand?"
            )));
        }
        if super::os::secure_exec() {
            return Err(Error::ProcessSetup(
                "this program runs as secure-exec (setuid, setgid or file capabilities); its \
                 process-pool workers would refuse to serve it (a worker must not run code for \
                 whoever starts a privileged program), so no pool is started"
                    .into(),
            ));
        }
        let sizes = Sizes::check(
            self.max_workers,
            || std::thread::available_parallelism().map_or(1, |n| n.get()),
            self.capacity,
        )?;
        if self.max_tasks_per_child == Some(0) {
            return Err(Error::InvalidArgument(
                "max_tasks_per_child must be >= 1".into(),
            ));
        }
        // std cannot set a zero read timeout: the handshake read would have no timeout at all, and a
        // worker that never answered would hang its driver.
        if self.handshake_timeout.is_zero() {
            return Err(Error::InvalidArgument(
                "handshake_timeout must be greater than 0".into(),
            ));
        }
        let init = self.init.transpose()?;
        if let Some(frame) = &init {
            if frame.len() - super::wire::HEADER > self.frame_cap {
                return Err(Error::Serialization(
                    "the initializer's argument is over the frame size cap".into(),
                ));
            }
        }
        Ok(ProcessPoolExecutor::from_config(Config {
            sizes,
            init,
            max_tasks_per_child: self.max_tasks_per_child,
            env: self.env,
            on_worker_death: self.on_worker_death,
            handshake_timeout: self.handshake_timeout,
            frame_cap: self.frame_cap,
        }))
    }
}

impl fmt::Debug for ProcessPoolBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ProcessPoolBuilder")
            .field("max_workers", &self.max_workers)
            .field("initializer", &self.init.is_some())
            .field("max_tasks_per_child", &self.max_tasks_per_child)
            .field("env", &self.env)
            .field("on_worker_death", &self.on_worker_death)
            .field("handshake_timeout", &self.handshake_timeout)
            .field("max_frame_bytes", &self.frame_cap)
            .field("queue_capacity", &self.capacity)
            .finish()
    }
}
