//! [`MpiPoolExecutor`]: tasks on the ranks of an MPI job, Python's `mpi4py.futures.MPIPoolExecutor`
//! (feature `mpi`).
//!
//! When one machine's cores are not enough, the same code moves from the
//! [`ProcessPoolExecutor`](crate::ProcessPoolExecutor) to this pool: it implements
//! [`Executor`](crate::Executor), its futures are [`PoolFuture`]s, and tasks are the same plain
//! `fn(A) -> R` with serde arguments, sent to ranks that run the same program.
//!
//! # Two ways to start
//!
//! - **Spawn mode** ([`MpiPoolExecutor::new`], [`MpiPoolBuilder::build`]): the program, run on its
//!   own or as one rank of a job, starts `N` workers with `MPI_Comm_spawn` of its own executable.
//!   A spawned copy never runs `main`: a constructor (an `.init_array` entry, as the process pool
//!   uses) sees the worker argument in its `argv`, serves, and exits.
//! - **Static mode** ([`MpiPoolExecutor::from_world`], [`MpiPoolBuilder::from_world`]): `mpirun -n N
//!   ./app` starts every rank; rank 0 gets the pool and goes on with `main`, every other rank serves
//!   inside `from_world` until the client shuts the pool down, then exits the process (`main` goes no
//!   further there).
//!
//! # How it runs
//!
//! - One thread owns all MPI calls (it initializes MPI with `MPI_THREAD_FUNNELED` and finalizes it
//!   when the pool is done), on the client and on every rank, as in mpi4py.futures. So a process has
//!   one MPI pool in its life, and must make no MPI calls of its own.
//! - MPI has nothing to block on without spinning, so the owner polls: while a reply is expected it
//!   sleeps between polls for a time that doubles from a microsecond to a cap
//!   ([`backoff`](MpiPoolBuilder::backoff), 1 ms by default, mpi4py's value); with nothing
//!   expected it sleeps until the next heartbeat is due, and a submit wakes it at once. An idle
//!   client therefore costs one wake-up per heartbeat interval.
//! - A rank runs one task at a time, on another thread than its MPI owner, so it answers heartbeats
//!   while a task runs. **RUNNING means dispatched**, as in the process pool: a queued task can be
//!   cancelled, a task sent to a rank cannot.
//! - A panic or `Err` in a task fails that future only; the rank lives on.
//!
//! # When a rank dies
//!
//! MPI without fault tolerance (ULFM) does not report a dead rank, and a receive from one waits
//! forever. So the client sends each rank a heartbeat when it has been quiet for an
//! [`interval`](MpiPoolBuilder::heartbeat), and gives a rank up when nothing (answer, result,
//! greeting) came from it for the heartbeat *timeout*, or when it held one task longer than the
//! [`task_deadline`](MpiPoolBuilder::task_deadline). The pool is then broken, as a process pool is
//! when a worker dies: every queued and running future fails with [`Error::BrokenProcessPool`] whose
//! cause is [`BrokenCause::RankLost`](crate::BrokenCause::RankLost), naming the rank; the other ranks
//! are stopped, and later submits are refused. A rank likewise exits when its client has been silent
//! for the timeout, and when one of its own MPI calls has not returned for the timeout + 5 s (a
//! watchdog thread: Open MPI can spin for ever inside one once a peer's connection broke). After a
//! lost rank no process calls `MPI_Finalize`, which would wait for the lost one. No send ever blocks (all are `MPI_Isend`), so a dead peer cannot stall the owner.
//!
//! In static mode, `mpirun` itself ends the whole job when one rank dies, unless it is started with
//! `--enable-recovery` (or `OMPI_MCA_orte_enable_recovery=1` in the environment, Open MPI 4).
//!
//! # Trust
//!
//! A rank calls code addresses the client sends. Before the first one, the two prove they run the
//! same build: each compares the other's identity (a digest of the program's code bytes, their
//! length and layout, the crate version) with its own, so a different binary on another host
//! fails with a clear [`BrokenCause::StartFailed`](crate::BrokenCause::StartFailed) instead of
//! calling a wrong address. That is a check against mistakes, not a defence: MPI does not
//! authenticate its peers, so **every process of the MPI job is trusted** (whatever `mpirun`, the
//! hostfile and the spawn started, over whatever network the MPI transport uses). Run MPI pools only
//! on hosts and networks where everyone who can join the job may run the program's code.

mod bootstrap;
mod builder;
mod client;
mod identity;
mod link;
mod server;
mod shared;

use std::fmt;
use std::future::Future;
use std::time::Duration;

pub use builder::MpiPoolBuilder;
use shared::Shared;

use crate::error::Error;
use crate::executor::Payload;
use crate::future::PoolFuture;
use crate::map::{ChunkOut, Map, MapOptions};
use crate::pool::{Backend, Frontend, Metrics, Pool, Queued, Rejected, WhenFull};
use crate::process_pool::call::{Call, Encoded};
use crate::process_pool::wire;

/// The pool's settings, shared by the client and (in static mode) every rank.
#[derive(Debug, Clone)]
pub(crate) struct Config {
    pub(crate) heartbeat_interval: Duration,
    pub(crate) heartbeat_timeout: Duration,
    pub(crate) task_deadline: Option<Duration>,
    pub(crate) backoff: Duration,
    /// The most tasks sent to one rank at a time (it runs them one after the other).
    pub(crate) tasks_per_rank: usize,
}

/// A pool of MPI ranks running `fn(A) -> R` tasks; every submission returns a [`PoolFuture`].
/// Python's `mpi4py.futures.MPIPoolExecutor`. See the [module docs](self).
///
/// ```no_run
/// use concurrent_futures::{Executor, MpiPoolExecutor, Queued};
///
/// fn square(n: u64) -> u64 { n * n }
///
/// // `mpirun -n 3 ./app`: rank 0 continues here with the pool, ranks 1 and 2 serve it.
/// let pool = MpiPoolExecutor::from_world()?;
/// let sum: u64 = pool.map(square, 1..=10)?.into_iter().map(Result::unwrap).sum();
/// assert_eq!(sum, 385);
/// pool.shutdown(Queued::Run); // stops the other ranks; do it before `main` returns
/// # Ok::<(), concurrent_futures::Error>(())
/// ```
#[derive(Clone)]
pub struct MpiPoolExecutor {
    pool: Pool<Shared>,
}

impl Frontend for MpiPoolExecutor {
    type Backend = Shared;

    fn pool(&self) -> &Pool<Shared> {
        &self.pool
    }

    fn from_pool(pool: Pool<Shared>) -> Self {
        MpiPoolExecutor { pool }
    }
}

impl MpiPoolExecutor {
    /// Spawn mode: starts `workers` copies of this program with `MPI_Comm_spawn` (an error if 0).
    pub fn new(workers: usize) -> Result<Self, Error> {
        Self::builder().workers(workers).build()
    }

    /// Static mode: rank 0 of `MPI_COMM_WORLD` gets the pool, every other rank serves it and exits
    /// the process when the pool shuts down (this call does not return there). Fails on a world of
    /// one rank.
    pub fn from_world() -> Result<Self, Error> {
        Self::builder().from_world()
    }

    /// A builder for the other settings (heartbeats, task deadline, backoff).
    pub fn builder() -> MpiPoolBuilder {
        MpiPoolBuilder::new()
    }

    fn shared(&self) -> &Shared {
        self.pool.backend()
    }

    /// How many worker ranks the pool has.
    pub fn max_workers(&self) -> usize {
        self.shared().workers.get().copied().unwrap_or(0)
    }

    /// Encodes and queues one task. The argument is encoded here, on the caller's thread: one that
    /// does not serialize fails its own future, not the submit.
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

    /// Encodes one task on the calling thread: `Err` is the submit's answer (a refusal, or the
    /// future already failed by an argument that does not serialize).
    #[allow(clippy::type_complexity)]
    fn encode<T: Send + 'static>(
        &self,
        call: Call<T>,
        arg: &impl serde::Serialize,
        on_encode_error: impl FnOnce(Error) -> Result<T, Error>,
    ) -> Result<Encoded<T>, Result<PoolFuture<T>, Error>> {
        if let Some(e) = Shared::refusal(&self.shared().lock().lifecycle) {
            return Err(Err(e));
        }
        call.encode(arg, wire::DEFAULT_MAX_FRAME, Vec::new(), on_encode_error)
    }

    /// Runs `f(arg)` on a rank: Python's `submit(fn, arg)` (a tuple for several arguments). Fails
    /// with [`Error::Shutdown`] after shutdown, or [`Error::BrokenProcessPool`] once the pool is
    /// broken. An argument that does not serialize gives a future failed with
    /// [`Error::Serialization`]. With a bounded queue
    /// ([`queue_capacity`](MpiPoolBuilder::queue_capacity)) that is full, this blocks until there is
    /// room (in a done callback it queues past the bound instead: the thread running callbacks is
    /// the one that makes room); unbounded (the default), it never blocks.
    pub fn submit<A: Payload, R: Payload>(
        &self,
        f: fn(A) -> R,
        arg: A,
    ) -> Result<PoolFuture<R>, Error> {
        self.push(Call::one(f, None), &arg, Err, WhenFull::Block)
    }

    /// [`submit`](Self::submit) that never blocks: with a bounded queue that is full, fails with a
    /// [`Rejected`](crate::Rejected) holding [`Error::Full`] and the work (`(f, arg)`); a shut-down or
    /// broken pool rejects the same way.
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
    /// without blocking the thread; polled in a done callback, it queues past the bound instead, as
    /// [`submit`](Self::submit) does there.
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
            .room()
            .enqueue(task, |t| shared.enqueue(t, WhenFull::Await))
            .await?;
        Ok(fut)
    }

    /// Runs a task that can fail: an `Err` ends the future with [`Error::Failed`], carrying the
    /// error's `Display` text.
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

    /// A snapshot of the pool's counters: `workers` are the ranks that shook hands.
    pub fn metrics(&self) -> Metrics {
        self.pool.metrics()
    }

    /// Applies `f` to every input on the ranks: Python's `executor.map`; results in input order.
    pub fn map<A, R, I>(&self, f: fn(A) -> R, inputs: I) -> Result<Map<R>, Error>
    where
        A: Payload,
        R: Payload,
        I: IntoIterator<Item = A>,
        I::IntoIter: Send + 'static,
    {
        self.map_with(f, inputs, MapOptions::new())
    }

    /// [`map`](Self::map) with a timeout, a [`chunksize`](MapOptions::chunksize) (`n` inputs per
    /// message, each with its own result) and a bound on tasks in flight.
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
            move |pool: &Self, a: A| pool.push(Call::map_one(f), &a, Err, WhenFull::Overfill),
            move |pool: &Self, items: Vec<A>| {
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

    /// Shuts the pool down and waits until every rank was told to stop and MPI is finalized:
    /// Python's `shutdown(wait=True, cancel_futures=…)`. Running tasks finish; queued ones run or are
    /// cancelled as `queued` says. Calling it again is harmless.
    pub fn shutdown(&self, queued: Queued) {
        self.pool.shutdown(queued)
    }

    /// Shuts the pool down without waiting: queued tasks still run (unless cancelled), then the
    /// ranks are stopped.
    pub fn shutdown_nowait(&self, queued: Queued) {
        self.pool.shutdown_nowait(queued)
    }

    /// [`shutdown`](Self::shutdown) for async code: resolves when the owner thread is done, without
    /// blocking the runtime's threads.
    pub fn shutdown_async(&self, queued: Queued) -> impl Future<Output = ()> + Send + '_ {
        self.pool.shutdown_async(queued)
    }

    /// Runs `body` with the pool, then shuts it down and waits, even if `body` panics: Python's
    /// `with MPIPoolExecutor() as ex:`.
    pub fn shutdown_after<R>(self, body: impl FnOnce(&MpiPoolExecutor) -> R) -> R {
        crate::pool::shutdown_after(self, body)
    }
}

impl fmt::Debug for MpiPoolExecutor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let st = self.shared().lock();
        f.debug_struct("MpiPoolExecutor")
            .field("ranks", &self.max_workers())
            .field("busy", &st.busy)
            .field("queued", &st.queue.len())
            .field("lifecycle", &st.lifecycle)
            .finish()
    }
}

crate::executor::impl_executor!(crate::MpiPoolExecutor);
