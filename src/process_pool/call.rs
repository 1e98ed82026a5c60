//! A `fn(A) -> R` task as the pools that send code offsets (processes, MPI ranks) describe it: which
//! trampoline runs which function on how many inputs, how its reply is read, its time limit; and its
//! encoding into a `RUN` frame on the submitting thread.

use std::sync::Arc;
use std::time::Duration;

use super::code::{self, Trampoline};
use super::task::{self, Decode, ProcTask};
use crate::error::Error;
use crate::executor::Payload;
use crate::future::PoolFuture;
use crate::map::ChunkOut;

/// How one task is run and read back.
pub(crate) struct Call<T> {
    tramp: Trampoline,
    func: usize,
    items: usize,
    decode: Decode<T>,
    limit: Option<Duration>,
}

/// A task ready to queue, and its future.
pub(crate) type Encoded<T> = (Arc<dyn ProcTask>, PoolFuture<T>);

impl<R: Payload> Call<R> {
    /// `submit(f, arg)`, with an optional time limit.
    pub(crate) fn one<A: Payload>(f: fn(A) -> R, limit: Option<Duration>) -> Self {
        Call {
            tramp: code::run_one::<A, R>,
            func: f as usize,
            items: 1,
            decode: code::decode_one::<R>,
            limit,
        }
    }

    /// `submit_fallible(f, arg)`: an `Err` fails the future with its `Display` text.
    pub(crate) fn fallible<A, E>(f: fn(A) -> Result<R, E>) -> Self
    where
        A: Payload,
        E: Into<Box<dyn std::error::Error + Send + Sync>> + Send + 'static,
    {
        Call {
            tramp: code::run_fallible::<A, R, E>,
            func: f as usize,
            items: 1,
            decode: code::decode_one::<R>,
            limit: None,
        }
    }
}

impl<R: Payload> Call<ChunkOut<R>> {
    /// One input of a `map` with chunks of one.
    pub(crate) fn map_one<A: Payload>(f: fn(A) -> R) -> Self {
        Call {
            tramp: code::run_one::<A, R>,
            func: f as usize,
            items: 1,
            decode: code::decode_single::<R>,
            limit: None,
        }
    }

    /// A chunk of `n` inputs of a `map`, each with its own result.
    pub(crate) fn map_chunk<A: Payload>(f: fn(A) -> R, n: usize) -> Self {
        Call {
            tramp: code::run_chunk::<A, R>,
            func: f as usize,
            items: n,
            decode: code::decode_chunk::<R>,
            limit: None,
        }
    }
}

impl<T: Send + 'static> Call<T> {
    /// Encodes the task with its argument into a frame of at most `frame_cap` bytes (reusing
    /// `spare`'s allocation). `Err` is the submit's answer already: the future failed by
    /// `on_encode_error` when the argument does not serialize, or the error for a frame that cannot
    /// be built at all.
    #[allow(clippy::type_complexity)]
    pub(crate) fn encode(
        self,
        arg: &impl serde::Serialize,
        frame_cap: usize,
        spare: Vec<u8>,
        on_encode_error: impl FnOnce(Error) -> Result<T, Error>,
    ) -> Result<Encoded<T>, Result<PoolFuture<T>, Error>> {
        let frame = match code::run_frame(self.tramp, self.func, arg, frame_cap, spare) {
            Ok(frame) => frame,
            Err(e @ Error::Serialization(_)) => {
                return Err(Ok(task::completed(on_encode_error(e))))
            }
            Err(e) => return Err(Err(e)),
        };
        Ok(task::new_task(frame, self.items, self.decode, self.limit))
    }
}
