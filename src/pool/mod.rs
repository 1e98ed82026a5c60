//! What every pool shares, below the pools: no pool imports another, and a new backend (the MPI
//! pool, any later one) writes only what is its own.
//!
//! # Plugging in a backend
//!
//! A backend brings its shared state (one struct behind one lock, `Shared` by convention) and
//! implements [`Backend`] for it; its public executor holds a [`Pool`] of it and implements
//! [`Frontend`]:
//!
//! ```text
//! pub struct MpiPoolExecutor { pool: Pool<Shared> }
//! impl Frontend for MpiPoolExecutor { type Backend = Shared; fn pool(…); fn from_pool(…) }
//! impl Backend for Shared {
//!     type State = PoolState;                     // what its one lock guards
//!     fn lock(&self) -> MutexGuard<'_, PoolState>;
//!     fn exits(st: &mut PoolState) -> Exits<'_>;  // live workers, those in their own pool's
//!                                                 // shutdown, join handles (retired ones
//!                                                 // apart), async wakers
//!     fn exited(&self) -> &Condvar;               // notified by every worker that leaves
//!     const SHUTDOWN_IN_CALLBACK: InCallback;     // may its workers wait on a callback's future?
//!     fn on_own_worker(self: &Arc<Self>, st: &PoolState) -> bool; // called on a worker?
//!     fn close(&self, queued: Queued);            // Lifecycle::shut_down; cancel or keep the queue
//!     fn metrics(&self) -> Metrics;
//! }
//! crate::executor::impl_executor!(MpiPoolExecutor); // once its inherent methods exist
//! ```
//!
//! In return it gets, written once:
//!
//! - the handle: clones share the pool, the last one dropped closes it without waiting;
//! - `shutdown` (waiting, with the own-worker rule), `shutdown_nowait`, `shutdown_async` on
//!   [`Pool`], and [`shutdown_after`]: each public method is one line;
//! - `map`'s feeding, [`start_map`]: one task per input or per chunk, through a weak handle so a
//!   buffered `map` never keeps a pool alive; the backend says how to submit one input and one
//!   chunk;
//! - [`Room`] for a bounded queue: blocked and async submitters waiting for room, woken as workers
//!   take tasks or the pool closes, and [`Sweep`] to give the places of tasks cancelled while
//!   queued back (its task's discard calls [`count_discarded`]);
//! - the vocabulary: [`Queued`], [`Metrics`], [`InitResult`], [`WhenFull`] and [`Rejected`] for its
//!   submits, [`Sizes`] for its builder, the [`Lifecycle`] state with its named moves (alias it with
//!   the pool's own cause of breakage: `type Lifecycle = pool::Lifecycle<BrokenMpiPool>`);
//! - the [`Executor`](crate::Executor) impl, from `impl_executor!`.
//!
//! What stays its own: starting workers, sending a task, receiving a result, noticing a dead
//! worker, and keeping [`Exits`] true as its workers leave (lower `live`, notify
//! [`Backend::exited`], and the last one wakes the wakers).

mod backend;
mod feed;
mod handle;
mod lifecycle;
mod room;
mod shutdown;
mod sweep;
mod vocab;

pub(crate) use backend::{Backend, Exits, InCallback};
pub(crate) use feed::start_map;
pub(crate) use handle::{Frontend, Pool};
pub(crate) use lifecycle::Lifecycle;
pub(crate) use room::Room;
pub(crate) use shutdown::shutdown_after;
pub(crate) use sweep::{count_discarded, Sweep};
pub use vocab::{InitResult, Metrics, Queued};
pub(crate) use vocab::{Rejected, Sizes, WhenFull};
