//! What every pool shares, below the pools: no pool imports another, and a new backend (the MPI
//! pool, any later one) writes only what is its own.
//!
//! # Plugging in a backend
//!
//! A backend brings its shared state (one struct behind one lock, usually `Shared`) and implements
//! [`Backend`] for it: lock it, show its [`Exits`] (live workers, those waiting in their own
//! pool's shutdown, their join handles, async shutdowns' wakers), say whether the calling thread is
//! one of its workers, `close` (stop taking work, cancel or keep the queue), and `metrics`. Its
//! public executor holds a [`Pool`] and implements [`Frontend`]. In return it gets, written once:
//!
//! - the handle: clones share the pool, the last one dropped closes it without waiting;
//! - [`WeakPool`], for `map`'s feeding (a buffered `map` never keeps a pool alive);
//! - `shutdown` (waiting, with the own-worker rule), `shutdown_nowait`, `shutdown_async` and
//!   [`shutdown_after`], so each public method is one line;
//! - the vocabulary: [`Queued`], [`Metrics`], [`InitResult`], [`WhenFull`] and [`Rejected`] for its
//!   submits, [`Sizes`] for its builder, and the [`Lifecycle`] state with its named moves;
//! - [`Room`] for a bounded queue: blocked and async submitters waiting for room, woken as workers
//!   take tasks or the pool closes;
//! - the [`Executor`](crate::Executor) impl, from `executor.rs`'s `impl_executor!`, once the
//!   executor has the inherent methods the trait names.
//!
//! What stays the backend's own: starting workers, sending a task, receiving a result, noticing a
//! dead worker, and keeping [`Exits`] true as its workers leave (lower `live`, notify
//! [`Backend::exited`], wake the wakers when the last one goes).

mod backend;
mod handle;
mod lifecycle;
mod room;
mod shutdown;
mod vocab;

pub(crate) use backend::{Backend, Exits};
pub(crate) use handle::{Frontend, Pool, WeakPool};
pub(crate) use lifecycle::Lifecycle;
pub(crate) use room::Room;
pub(crate) use shutdown::shutdown_after;
pub use vocab::{InitResult, Metrics, Queued};
pub(crate) use vocab::{Rejected, Sizes, WhenFull};
