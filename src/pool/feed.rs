//! Feeding a `map`: its inputs become tasks, one per input or one per chunk, submitted through a
//! weak handle so that a buffered `map` never keeps its pool alive (Python 3.14 holds a weak
//! reference too).

use super::handle::{Frontend, WeakPool};
use crate::error::Error;
use crate::future::PoolFuture;
use crate::map::{Chunk, ChunkOut, Feed, Map, MapOptions};

/// Starts a `map` over `inputs` on `executor`: `one` submits the task of a single input (with a
/// chunk size of 1), `chunk` the task of several. Both submit with
/// [`WhenFull::Overfill`](super::WhenFull::Overfill): `map` bounds its own in-flight work
/// ([`MapOptions::buffer`]).
pub(crate) fn start_map<E, A, R, I>(
    executor: &E,
    inputs: I,
    opts: MapOptions,
    one: impl Fn(&E, A) -> Result<PoolFuture<ChunkOut<R>>, Error> + Send + 'static,
    chunk: impl Fn(&E, Vec<A>) -> Result<PoolFuture<ChunkOut<R>>, Error> + Send + 'static,
) -> Result<Map<R>, Error>
where
    E: Frontend + 'static,
    I: IntoIterator<Item = A>,
    I::IntoIter: Send + 'static,
    A: Send + 'static,
    R: Send + 'static,
{
    let len = opts.chunk_len()?.get();
    let pool = WeakPool::new(executor);
    let mut inputs = inputs.into_iter();
    let feed: Feed<R> = Box::new(move || {
        let pool = pool.upgrade()?;
        if len == 1 {
            let a = inputs.next()?;
            return Some(one(&pool, a).map(|future| Chunk { future, inputs: 1 }));
        }
        let items: Vec<A> = inputs.by_ref().take(len).collect();
        if items.is_empty() {
            return None;
        }
        let n = items.len();
        Some(chunk(&pool, items).map(|future| Chunk { future, inputs: n }))
    });
    Map::start(feed, opts)
}
