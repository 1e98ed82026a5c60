//! [`MpiPoolBuilder`]: the MPI pool's settings and its two ways to start.

use std::sync::Arc;
use std::time::Duration;

use super::bootstrap::{self, Role, Start};
use super::shared::Shared;
use super::{Config, MpiPoolExecutor};
use crate::error::Error;
use crate::pool::Pool;

/// Settings for an [`MpiPoolExecutor`]; [`build`](Self::build) starts it in spawn mode,
/// [`from_world`](Self::from_world) in static mode.
///
/// ```no_run
/// use concurrent_futures::MpiPoolExecutor;
/// use std::time::Duration;
///
/// let pool = MpiPoolExecutor::builder()
///     .workers(4)
///     .heartbeat(Duration::from_millis(500), Duration::from_secs(5))
///     .task_deadline(Duration::from_secs(600))
///     .build()?;
/// # Ok::<(), concurrent_futures::Error>(())
/// ```
#[derive(Debug, Clone)]
#[must_use = "a builder does nothing until `build` or `from_world`"]
pub struct MpiPoolBuilder {
    workers: usize,
    capacity: Option<usize>,
    config: Config,
}

impl Default for MpiPoolBuilder {
    fn default() -> Self {
        Self::new()
    }
}

impl MpiPoolBuilder {
    /// The defaults: one spawned worker, a heartbeat every second given up after 10 s of silence,
    /// no task deadline, a 1 ms backoff cap, 8 tasks per rank.
    pub fn new() -> Self {
        MpiPoolBuilder {
            workers: 1,
            capacity: None,
            config: Config {
                heartbeat_interval: Duration::from_secs(1),
                heartbeat_timeout: Duration::from_secs(10),
                task_deadline: None,
                backoff: Duration::from_millis(1),
                tasks_per_rank: 8,
            },
        }
    }

    /// How many workers spawn mode starts (ignored by [`from_world`](Self::from_world), where the
    /// world's size decides).
    pub fn workers(mut self, n: usize) -> Self {
        self.workers = n;
        self
    }

    /// A rank quiet for `interval` is sent a heartbeat; one silent for `timeout` (no answer, no
    /// result) is presumed dead and breaks the pool. A rank whose client is silent for `timeout`
    /// exits. `timeout` must exceed `interval`.
    pub fn heartbeat(mut self, interval: Duration, timeout: Duration) -> Self {
        self.config.heartbeat_interval = interval;
        self.config.heartbeat_timeout = timeout;
        self
    }

    /// A rank that holds one task longer than `deadline` is presumed lost and breaks the pool (for
    /// programs whose tasks have a known bound; a hung rank otherwise still answers heartbeats).
    pub fn task_deadline(mut self, deadline: Duration) -> Self {
        self.config.task_deadline = Some(deadline);
        self
    }

    /// The longest sleep between two polls of MPI while a reply is expected (mpi4py.futures'
    /// `backoff`, 1 ms by default): lower answers sooner and costs more CPU while tasks run.
    pub fn backoff(mut self, cap: Duration) -> Self {
        self.config.backoff = cap;
        self
    }

    /// Bounds the queue of tasks no rank has taken yet (Python's queue is unbounded, and so is
    /// this one by default): when it holds `n`, [`submit`](MpiPoolExecutor::submit) blocks,
    /// [`try_submit`](MpiPoolExecutor::try_submit) fails with [`Error::Full`], and
    /// [`submit_async`](MpiPoolExecutor::submit_async) waits, except in a done callback (run by the
    /// pool's owner thread, which makes the room), where both queue past the bound. `map` bounds
    /// its own in-flight work
    /// instead. Zero is an [`Error::InvalidArgument`] from `build`/`from_world`. A task cancelled
    /// while queued gives its place back to the next submit that finds the queue full (a submitter
    /// already waiting gets in when a rank next takes a task).
    pub fn queue_capacity(mut self, n: usize) -> Self {
        self.capacity = Some(n);
        self
    }

    /// How many tasks the client sends one rank before the first comes back (default 8). A rank
    /// runs them one at a time; the next one is already there when one ends, so many small tasks
    /// do not each wait a round trip. Tasks sent are RUNNING, and no longer cancel: 1 keeps every
    /// task not yet running cancellable, as mpi4py.futures does.
    pub fn tasks_per_rank(mut self, n: usize) -> Self {
        self.config.tasks_per_rank = n;
        self
    }

    fn check(&self) -> Result<(), Error> {
        let c = &self.config;
        if c.heartbeat_interval.is_zero() || c.heartbeat_timeout <= c.heartbeat_interval {
            return Err(Error::InvalidArgument(format!(
                "the heartbeat timeout ({:?}) must exceed its interval ({:?}), which must be above zero",
                c.heartbeat_timeout, c.heartbeat_interval
            )));
        }
        if self.capacity == Some(0) {
            return Err(Error::InvalidArgument(
                "queue_capacity must be greater than 0".into(),
            ));
        }
        if c.tasks_per_rank == 0 {
            return Err(Error::InvalidArgument("tasks_per_rank must be >= 1".into()));
        }
        if c.task_deadline.is_some_and(|d| d.is_zero()) {
            return Err(Error::InvalidArgument(
                "the task deadline must be above zero".into(),
            ));
        }
        Ok(())
    }

    /// Spawn mode: starts the workers with `MPI_Comm_spawn` of this program.
    pub fn build(self) -> Result<MpiPoolExecutor, Error> {
        self.check()?;
        if self.workers == 0 {
            return Err(Error::InvalidArgument("workers must be >= 1".into()));
        }
        let workers = self.workers;
        self.start(Start::Spawn(workers))
    }

    /// Static mode: on rank 0 of `MPI_COMM_WORLD`, the pool of the other ranks; on every other rank,
    /// serves the pool until rank 0 shuts it down, then exits the process (this call does not return
    /// there, so the rest of `main` runs on rank 0 only). The other ranks must build the pool with the
    /// same settings.
    pub fn from_world(self) -> Result<MpiPoolExecutor, Error> {
        self.check()?;
        self.start(Start::World)
    }

    fn start(self, start: Start) -> Result<MpiPoolExecutor, Error> {
        let shared = Shared::new(self.capacity);
        let (role, owner) = bootstrap::start(start, Arc::new(self.config), shared.clone())?;
        match role {
            Role::Client { ranks } => {
                let _ = shared.workers.set(ranks);
                shared.owner_started(owner);
                Ok(MpiPoolExecutor {
                    pool: Pool::new(shared),
                })
            }
            Role::Worker { run, done } => bootstrap::serve_then_exit(run, done, owner),
        }
    }
}
