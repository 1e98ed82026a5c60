//! The [`Executor`] trait: the part of the API both pools share, so the same code switches between
//! threads and processes by changing one type.

use std::future::Future;

use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::error::Error;
use crate::future::PoolFuture;
use crate::map::{Map, MapOptions};
use crate::pool::{Metrics, Queued};

/// A value that can be a task's argument or result in either pool: it can cross a thread boundary
/// (`Send + 'static`) and a process boundary (serde). Implemented for every such type.
pub trait Payload: Serialize + DeserializeOwned + Send + 'static {}

impl<T: Serialize + DeserializeOwned + Send + 'static> Payload for T {}

/// What Python's `concurrent.futures.Executor` offers, for code generic over the pool.
///
/// Tasks are plain functions `fn(A) -> R` (non-capturing closures coerce), because only a function can
/// be named in another process; use a tuple for several arguments.
///
/// ```
/// use concurrent_futures::{Executor, Queued, ThreadPoolExecutor};
///
/// fn square(n: u64) -> u64 { n * n }
///
/// fn sum_of_squares(pool: &impl Executor, n: u64) -> Result<u64, concurrent_futures::Error> {
///     pool.map(square, 1..=n)?.into_iter().sum()
/// }
///
/// let pool = ThreadPoolExecutor::new(2)?;
/// assert_eq!(sum_of_squares(&pool, 10)?, 385);
/// Executor::shutdown(&pool, Queued::Run);
/// # Ok::<(), concurrent_futures::Error>(())
/// ```
pub trait Executor {
    /// Runs `f(arg)` on the pool.
    fn submit<A: Payload, R: Payload>(&self, f: fn(A) -> R, arg: A)
        -> Result<PoolFuture<R>, Error>;

    /// [`submit`](Executor::submit) that never blocks: with a bounded queue that is full (or a pool
    /// that is shut down or broken), fails with a [`Rejected`](crate::Rejected) that holds the
    /// [`Error`] and hands the work back.
    #[allow(clippy::type_complexity)]
    fn try_submit<A: Payload, R: Payload>(
        &self,
        f: fn(A) -> R,
        arg: A,
    ) -> Result<PoolFuture<R>, crate::Rejected<(fn(A) -> R, A)>>;

    /// [`submit`](Executor::submit) for async code: with a bounded queue that is full, waits for room
    /// without blocking the thread.
    ///
    /// ```
    /// use concurrent_futures::{Executor, ThreadPoolExecutor};
    ///
    /// fn triple(n: u32) -> u32 { n * 3 }
    ///
    /// async fn triples(pool: &impl Executor) -> Result<Vec<u32>, concurrent_futures::Error> {
    ///     let mut futures = Vec::new();
    ///     for n in 1..=3 {
    ///         futures.push(pool.submit_async(triple, n).await?);
    ///     }
    ///     let mut out = Vec::new();
    ///     for f in futures {
    ///         out.push(f.await?);
    ///     }
    ///     Ok(out)
    /// }
    ///
    /// let pool = ThreadPoolExecutor::builder().max_workers(1).queue_capacity(1).build()?;
    /// let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
    /// assert_eq!(rt.block_on(triples(&pool))?, [3, 6, 9]);
    /// # Ok::<(), concurrent_futures::Error>(())
    /// ```
    fn submit_async<A: Payload, R: Payload>(
        &self,
        f: fn(A) -> R,
        arg: A,
    ) -> impl Future<Output = Result<PoolFuture<R>, Error>> + Send + '_;

    /// A snapshot of the pool's counters.
    fn metrics(&self) -> Metrics;

    /// Runs a task that can fail: an `Err` ends the future with [`Error::Failed`].
    fn submit_fallible<A, R, E>(
        &self,
        f: fn(A) -> Result<R, E>,
        arg: A,
    ) -> Result<PoolFuture<R>, Error>
    where
        A: Payload,
        R: Payload,
        E: Into<Box<dyn std::error::Error + Send + Sync>> + Send + 'static;

    /// Applies `f` to every input; results in input order.
    fn map<A, R, I>(&self, f: fn(A) -> R, inputs: I) -> Result<Map<R>, Error>
    where
        A: Payload,
        R: Payload,
        I: IntoIterator<Item = A>,
        I::IntoIter: Send + 'static,
    {
        self.map_with(f, inputs, MapOptions::new())
    }

    /// [`map`](Executor::map) with a timeout, chunk size and in-flight bound.
    fn map_with<A, R, I>(
        &self,
        f: fn(A) -> R,
        inputs: I,
        opts: MapOptions,
    ) -> Result<Map<R>, Error>
    where
        A: Payload,
        R: Payload,
        I: IntoIterator<Item = A>,
        I::IntoIter: Send + 'static;

    /// Shuts down and waits for the workers to exit.
    fn shutdown(&self, queued: Queued);

    /// Shuts down without waiting.
    fn shutdown_nowait(&self, queued: Queued);

    /// Shuts down; resolves when the workers have exited, without blocking a runtime thread.
    fn shutdown_async(&self, queued: Queued) -> impl Future<Output = ()> + Send + '_;
}

/// Implements [`Executor`] for a pool by its inherent methods of the same names (every pool has them,
/// so the trait's calls read as the pool's own): one line per pool, here for the built-in ones, in
/// its own module for a pool behind a feature.
macro_rules! impl_executor {
    ($pool:ty) => {
        impl $crate::Executor for $pool {
            fn submit<A: $crate::Payload, R: $crate::Payload>(
                &self,
                f: fn(A) -> R,
                arg: A,
            ) -> Result<$crate::PoolFuture<R>, $crate::Error> {
                <$pool>::submit(self, f, arg)
            }

            fn try_submit<A: $crate::Payload, R: $crate::Payload>(
                &self,
                f: fn(A) -> R,
                arg: A,
            ) -> Result<$crate::PoolFuture<R>, $crate::Rejected<(fn(A) -> R, A)>> {
                <$pool>::try_submit(self, f, arg)
            }

            fn submit_async<A: $crate::Payload, R: $crate::Payload>(
                &self,
                f: fn(A) -> R,
                arg: A,
            ) -> impl ::std::future::Future<Output = Result<$crate::PoolFuture<R>, $crate::Error>>
                   + Send
                   + '_ {
                <$pool>::submit_async(self, f, arg)
            }

            fn metrics(&self) -> $crate::Metrics {
                <$pool>::metrics(self)
            }

            fn submit_fallible<A, R, E>(
                &self,
                f: fn(A) -> Result<R, E>,
                arg: A,
            ) -> Result<$crate::PoolFuture<R>, $crate::Error>
            where
                A: $crate::Payload,
                R: $crate::Payload,
                E: Into<Box<dyn ::std::error::Error + Send + Sync>> + Send + 'static,
            {
                <$pool>::submit_fallible(self, f, arg)
            }

            fn map_with<A, R, I>(
                &self,
                f: fn(A) -> R,
                inputs: I,
                opts: $crate::MapOptions,
            ) -> Result<$crate::Map<R>, $crate::Error>
            where
                A: $crate::Payload,
                R: $crate::Payload,
                I: IntoIterator<Item = A>,
                I::IntoIter: Send + 'static,
            {
                <$pool>::map_with(self, f, inputs, opts)
            }

            fn shutdown(&self, queued: $crate::Queued) {
                <$pool>::shutdown(self, queued)
            }

            fn shutdown_nowait(&self, queued: $crate::Queued) {
                <$pool>::shutdown_nowait(self, queued)
            }

            fn shutdown_async(
                &self,
                queued: $crate::Queued,
            ) -> impl ::std::future::Future<Output = ()> + Send + '_ {
                <$pool>::shutdown_async(self, queued)
            }
        }
    };
}
pub(crate) use impl_executor;

crate::executor::impl_executor!(crate::ThreadPoolExecutor);
#[cfg(all(target_os = "linux", not(loom)))]
crate::executor::impl_executor!(crate::process_pool::ProcessPoolExecutor);
