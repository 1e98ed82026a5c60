//! The state machine every future runs through, and the one lock that decides its races.
//!
//! ```text
//!            start()              complete(outcome)             publish
//! Pending ───────────▶ Running ─────────────────────▶ Settling ─────────▶ Done ──take──▶ Taken
//!    │                                                    ▲                │  ▲
//!    └────────────────────── cancel() ────────────────────┘   late callback │  │ it returned
//!                                                                          ▼  │
//!                                                                          Lent
//! ```
//!
//! `cancel()` and a worker's `start()` race for the same lock: whichever takes `Pending` first wins, so
//! `cancel()` returns `true` exactly when the task will never run.
//!
//! # The order of a completion: callbacks, publish, wake
//!
//! `Settling` is the phase in which the done callbacks registered so far run, on the thread that decided
//! the outcome, which holds the outcome outside the lock and lends it to each callback by reference.
//! Only when they have returned is the outcome *published*: stored in the future's slot (`Done`), the
//! [`ENDED`] bit set, and then every waiter woken. Until publication the future looks unfinished from
//! outside: `done()` is false, `wait`/`as_completed`/`exception()` keep waiting, a completing task still
//! reads as running and `cancel()` of it fails. So `done()` implies the outcome can be read (and, for the
//! owner, taken) at once, on every thread, at every moment. A successful `cancel()` settles the same
//! way on the cancelling thread: until its callbacks return the future still reads as pending (neither
//! running nor cancelled), `start()` already refuses it, and a second `cancel()` returns `true`. The
//! cancelling thread drops the task's work first: the slot that held it takes the outcome.
//!
//! This diverges from CPython (conformance #36), which publishes, wakes the waiters and only then calls
//! back, so a Python waiter can see a future done while its callbacks still run. Python can, because its
//! callbacks and its owner share the value by reference counting. Here a callback borrows
//! `&Result<T, Error>` for a `T` that need not be `Clone`, while the owner *moves* the value out the
//! moment it sees the future done: both cannot hold at once for the same value. Calling back before
//! publication keeps the borrow strictly before the move.
//!
//! A callback added to a future that is already `Done` runs at once on the adding thread, and the
//! future must stay done and readable meanwhile. An error is cloned (`Error: Clone`) and the slot keeps
//! its own. A value (`T` is only `Send`, so it cannot be shared between threads) is *lent*: moved to the
//! adding thread for the callback and put back when it returns, while the state (`Lent`) still answers
//! everything other threads ask: done, not cancelled, no exception. Only the owner's take needs the
//! value itself, and it cannot happen meanwhile: a late callback runs inside
//! `PoolFuture::add_done_callback(&self)`, and taking needs `&mut PoolFuture` (or `Pin<&mut _>`), which
//! the borrow checker keeps apart from any `&PoolFuture`. (Should it happen anyway, the take waits for
//! the value's return like any other wait.) Callbacks added while a value is lent join the lending
//! thread's and run right after, on it, as they do while settling.

use std::mem::{self, ManuallyDrop, MaybeUninit};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll, Waker};

use crate::error::{panic_message, Error};
use crate::sync::UnsafeCell;

use super::word::{StateGuard, StateLock, ID_SHIFT};
use super::{FutureId, Job};

/// How a future ended, without the value: what the predicates and `Debug` need. (The discriminants
/// are part of the state's tag: see [`STATES`].)
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Ending {
    /// The task returned a value.
    Returned = 0,
    /// The task failed: a panic, an `Err` from a fallible task, a broken pool.
    Raised = 1,
    /// Cancelled before it ran.
    Cancelled = 2,
}

/// What became of the waker a watcher gave to [`Core::watch`]. (`pub` only because the sealed
/// `Watched` trait names it; nothing outside the crate can reach it.)
#[doc(hidden)]
#[derive(Debug)]
pub enum Registration {
    /// The future keeps it, under this key, until it ends or the watcher unwatches.
    Kept(u64),
    /// The future has already ended: nothing is registered, and here is the waker back.
    Ended(Waker),
}

/// What a [`Core::cancel_by`] call amounted to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Cancel {
    /// This call moved the future from PENDING to cancelled: the task's work is this caller's to drop.
    Won,
    /// Another call cancelled it first.
    AlreadyCancelled,
    /// The task started or ended: not cancelled.
    Refused,
}

/// The phase of a future as seen from outside, read in one lock so that `done`, `cancelled` and the
/// outcome always agree. A settling future shows the phase it is leaving (see the module docs).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Phase {
    Pending,
    Running,
    Ended(Ending),
}

pub(crate) type Callback<T> = Box<dyn FnOnce(&Result<T, Error>) + Send + 'static>;

/// Where a future is in the machine above: the tag kept in the future's word (under the lock, like
/// the flags), which also names what the slot holds (see [`Core`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    /// Queued; `cancel()` can still win. The slot holds the task's work, if its job keeps it there.
    Pending,
    /// A worker took it; it will finish with an outcome. The slot holds the work until the worker
    /// takes it out, which it does before completing.
    Running,
    /// The outcome is decided and held by the deciding thread, which is running the callbacks; it is
    /// published (`Done`) when they return. The slot is empty.
    Settling(Ending),
    /// The outcome is published: a value, in the slot, which can be read or taken.
    Done,
    /// The outcome is published: an error (the task's, or `Cancelled`), boxed in the slot, which stays
    /// to be read again. Boxed, so that the slot, which every queued task carries, is no larger than
    /// a small value (an `Error` is 32 bytes) and failures pay for the room they need.
    DoneWithError(Ending),
    /// Published with a value, which a callback added afterwards is reading on the thread that added it;
    /// that thread puts it back (`Done`) when its callbacks return. The slot is empty meanwhile.
    Lent,
    /// The owner took the value out (only successful values are taken; errors stay to be read again).
    /// The slot is empty.
    Taken,
}

/// Where the state's tag sits in the word (see `word.rs`), and its four bits.
const TAG_SHIFT: u32 = 5;
const TAG_MASK: u64 = 0b1111 << TAG_SHIFT;

/// Every state, at the index of its tag: [`State::bits`] names each, [`State::of`] reads them back.
const STATES: [State; 11] = [
    State::Pending,
    State::Running,
    State::Settling(Ending::Returned),
    State::Settling(Ending::Raised),
    State::Settling(Ending::Cancelled),
    State::Done,
    State::DoneWithError(Ending::Returned),
    State::DoneWithError(Ending::Raised),
    State::DoneWithError(Ending::Cancelled),
    State::Lent,
    State::Taken,
];

impl State {
    /// The tag's bits in the word: the state's index in [`STATES`].
    #[inline]
    fn bits(self) -> u64 {
        let code = match self {
            State::Pending => 0,
            State::Running => 1,
            State::Settling(e) => 2 + e as u64,
            State::Done => 5,
            State::DoneWithError(e) => 6 + e as u64,
            State::Lent => 9,
            State::Taken => 10,
        };
        code << TAG_SHIFT
    }

    /// The state whose tag is in `word`. Only [`State::bits`] writes tags, so the index is in range.
    #[inline]
    fn of(word: u64) -> State {
        STATES[((word & TAG_MASK) >> TAG_SHIFT) as usize]
    }

    fn phase(self) -> Phase {
        match self {
            State::Pending | State::Settling(Ending::Cancelled) => Phase::Pending,
            State::Running | State::Settling(_) => Phase::Running,
            State::Done | State::Lent | State::Taken => Phase::Ended(Ending::Returned),
            State::DoneWithError(e) => Phase::Ended(e),
        }
    }
}

/// What the slot holds once the outcome is published; the state says which field.
union Slot<T> {
    value: ManuallyDrop<T>,
    error: ManuallyDrop<Box<Error>>,
}

/// Whether a task's work `W` fits in the slot of a `Core<T>`, so that the job need not keep it
/// (see [`Core::with_work`]).
pub(crate) const fn fits_in_slot<W, T>() -> bool {
    mem::size_of::<W>() <= mem::size_of::<Slot<T>>()
        && mem::align_of::<W>() <= mem::align_of::<Slot<T>>()
}

/// Wakers of `wait`/`as_completed` calls watching this future, and done callbacks: both rare enough
/// that a plain submit-and-await allocates neither.
struct Extras<T> {
    waiters: Vec<(u64, Waker)>,
    next_key: u64,
    callbacks: Vec<Callback<T>>,
}

/// What the lock guards besides the slot. Only reached through the lock's guard, so a `&Inner<T>`
/// proves the lock is held: the slot's accessors take one.
struct Inner<T> {
    /// One waker kept inline, so that the common waits allocate nothing: the owner's (`.await`,
    /// `result()`), or, while the owner has none here, one watcher's (`wait`, `as_completed`,
    /// `exception()`), registered under [`INLINE_KEY`] and flagged by [`FIRST_IS_WATCHER`]. The others
    /// go to the extras' list, the owner's under [`OWNER_KEY`].
    first: Option<Waker>,
    extras: Option<Box<Extras<T>>>,
}

impl<T> Inner<T> {
    fn extras(&mut self) -> &mut Extras<T> {
        self.extras.get_or_insert_with(|| {
            Box::new(Extras {
                waiters: Vec::new(),
                next_key: 0,
                callbacks: Vec::new(),
            })
        })
    }

    /// Takes the next batch of callbacks to run, if any were added.
    fn take_callbacks(&mut self) -> Option<Vec<Callback<T>>> {
        match self.extras.as_mut() {
            Some(x) if !x.callbacks.is_empty() => Some(mem::take(&mut x.callbacks)),
            _ => None,
        }
    }
}

/// The shared heart of one future.
///
/// One slot holds what the future carries in each state, so that a queued task pays for the larger
/// of its work and its outcome, not for both: the task's work while PENDING (the thread pool's
/// closure, when it fits: [`with_work`](Self::with_work)), the value once `Done`, the boxed error
/// once `DoneWithError`, and nothing otherwise. The state's tag, in the word, says which. The
/// outcome is written and read under the lock; the work belongs to the one call that moves the
/// future out of PENDING (see `Job::discard`), which takes it out before completing the future.
pub(crate) struct Core<T> {
    /// The lock, whose word also holds the future's id, the state's tag and the flags: [`ENDED`],
    /// set (under the lock) once the outcome is published, so `done()` and the first pass of
    /// `wait`/`as_completed` over many futures read one atomic instead of taking each lock. One word
    /// for the lock, the id, the state and the flags keeps a queued task in a smaller allocation.
    inner: StateLock<Inner<T>>,
    slot: UnsafeCell<MaybeUninit<Slot<T>>>,
}

// SAFETY: the slot holds a `T` (or a boxed `Error`, or a job's `Send` work) and is never shared: its
// outcome is reached under the lock only, and moved, never lent by reference, between threads; its
// work by one thread at a time (the type's docs). So sharing a core shares no `&T`: it is `Sync`
// when `T` may be sent, as std's `Mutex<T>` is.
#[allow(unsafe_code)]
unsafe impl<T: Send> Sync for Core<T> {}

/// The flag that says the outcome is published.
const ENDED: u64 = 1 << 4;
/// The flag that says the owner was handed the outcome (`FusedFuture`): kept here rather than in the
/// owner's handle, which stays one pointer wide.
const HANDED_OUT: u64 = 1 << 3;
/// The flag that says `Inner::first` holds a watcher's waker, not the owner's. Like the other flags,
/// written only under the lock.
const FIRST_IS_WATCHER: u64 = 1 << 2;

/// The key of the watcher whose waker is in `Inner::first`.
const INLINE_KEY: u64 = u64::MAX;
/// The key of the owner's waker when it is in the list (a watcher holds `Inner::first`).
const OWNER_KEY: u64 = u64::MAX - 1;

static NEXT_ID: AtomicU64 = AtomicU64::new(1);

impl<T> Core<T> {
    pub(crate) fn new() -> Self {
        // Ids count up from 1 in the word's top bits (55 of them): they do not run out in a
        // process's life.
        let id = NEXT_ID.fetch_add(1, Ordering::Relaxed);
        Core {
            inner: StateLock::new(
                (id << ID_SHIFT) | State::Pending.bits(),
                Inner {
                    first: None,
                    extras: None,
                },
            ),
            slot: UnsafeCell::new(MaybeUninit::uninit()),
        }
    }

    /// A PENDING future whose slot holds `work` (which must [fit](fits_in_slot)), for a job that
    /// keeps its work there: whoever moves the future out of PENDING takes it out, through
    /// [`with_slot`](Self::with_slot).
    #[allow(unsafe_code)] // see the SAFETY comment
    pub(crate) fn with_work<W: Send + 'static>(work: W) -> Self {
        assert!(fits_in_slot::<W, T>(), "the work does not fit in the slot");
        let core = Self::new();
        // SAFETY: the slot is large and aligned enough for a `W` (asserted), and nothing else can
        // reach a core that is still being built.
        core.slot
            .with_mut(|slot| unsafe { slot.cast::<W>().write(work) });
        core
    }

    /// Calls `f` with the address of the slot, where a job that keeps its work in it finds it.
    pub(crate) fn with_slot<R>(&self, f: impl FnOnce(*mut u8) -> R) -> R {
        self.slot.with_mut(|slot| f(slot.cast()))
    }

    pub(crate) fn id(&self) -> FutureId {
        FutureId(self.inner.flags(Ordering::Relaxed) >> ID_SHIFT)
    }

    fn lock(&self) -> StateGuard<'_, Inner<T>> {
        self.inner.lock()
    }

    /// The state; `_held` proves the lock is held, so no other thread changes it meanwhile.
    fn state(&self, _held: &Inner<T>) -> State {
        State::of(self.inner.flags(Ordering::Relaxed))
    }

    /// Moves the state from `from` (which it is) to `to`, in one atomic operation on the word.
    fn set_state(&self, _held: &mut Inner<T>, from: State, to: State) {
        if from != to {
            self.inner
                .toggle_flags(from.bits() ^ to.bits(), Ordering::Relaxed);
        }
    }

    pub(crate) fn phase(&self) -> Phase {
        let inner = self.lock();
        self.state(&inner).phase()
    }

    /// The state, read without the lock through `&mut self` (a task being dropped: the last strong
    /// reference's Acquire fence orders every other holder's accesses before this one).
    fn state_mut(&mut self) -> State {
        State::of(self.inner.flags(Ordering::Relaxed))
    }

    /// Whether the future is still PENDING, read through `&mut self` (a task being dropped, whose work
    /// is then still in it).
    pub(crate) fn is_pending_mut(&mut self) -> bool {
        self.state_mut() == State::Pending
    }

    /// The id and whether the outcome is published, in one load.
    #[cfg(not(loom))]
    pub(crate) fn snapshot(&self) -> (FutureId, bool) {
        let word = self.inner.flags(Ordering::Acquire);
        (FutureId(word >> ID_SHIFT), word & ENDED != 0)
    }

    #[cfg(loom)]
    pub(crate) fn snapshot(&self) -> (FutureId, bool) {
        (self.id(), self.has_ended())
    }

    /// Whether the future has left PENDING: a worker claimed it, or a cancel has decided it will never
    /// run (its done callbacks may still be running). One load, like [`has_ended`](Self::has_ended).
    #[cfg(not(loom))]
    pub(crate) fn left_pending(&self) -> bool {
        State::of(self.inner.flags(Ordering::Acquire)) != State::Pending
    }

    /// Under loom, read under the lock, as [`has_ended`](Self::has_ended) is.
    #[cfg(loom)]
    pub(crate) fn left_pending(&self) -> bool {
        let inner = self.lock();
        self.state(&inner) != State::Pending
    }

    /// Whether the outcome is published (finished or cancelled), without taking the lock. The bit is set
    /// after the outcome is stored, in the same locked section, so a reader that sees it and then takes
    /// the lock finds the outcome there.
    #[cfg(not(loom))]
    pub(crate) fn has_ended(&self) -> bool {
        self.inner.flags(Ordering::Acquire) & ENDED != 0
    }

    /// Under loom, read the state under the lock instead. The flag is set under the lock before it is
    /// released, so both readings agree; but the flag lets a watcher see the end while the completing
    /// thread still holds the lock, and that thread's wake-up then unparks a watcher blocked on the
    /// mutex, which loom 0.7 cannot model (it asserts, as in tokio-rs/loom#249).
    #[cfg(loom)]
    pub(crate) fn has_ended(&self) -> bool {
        matches!(self.phase(), Phase::Ended(_))
    }

    /// Whether the future ended in a way `wait(FirstException)` reacts to.
    pub(crate) fn raised(&self) -> bool {
        matches!(self.phase(), Phase::Ended(Ending::Raised))
    }

    /// PENDING → RUNNING, the worker's side of the race with `cancel()`. `false` means the future was
    /// cancelled and the task must be skipped. A job that keeps its work in the slot takes it out after
    /// a `true` here, before completing the future.
    pub(crate) fn start(&self) -> bool {
        let mut inner = self.lock();
        match self.state(&inner) {
            State::Pending => {
                self.set_state(&mut inner, State::Pending, State::Running);
                true
            }
            // Cancelled (or being cancelled): skip the task. Any other state is a second start (only
            // possible through a misused `Promise`), refused rather than a panic.
            _ => false,
        }
    }

    /// PENDING → cancelled. The future is cancelled unless this returns [`Cancel::Refused`]: by this
    /// call, before, or by a cancel on another thread whose callbacks are still running (the task
    /// will never run in any of these cases). The call that made the transition ([`Cancel::Won`])
    /// discards `job`'s work before it runs the callbacks: it is the only one that ever touches it.
    #[allow(unsafe_code)] // `Job::discard`'s contract: see the SAFETY comment
    pub(crate) fn cancel_by<J: Job + ?Sized>(&self, job: &J) -> Cancel {
        let mut inner = self.lock();
        match self.state(&inner) {
            State::Pending => {
                let settling = State::Settling(Ending::Cancelled);
                self.set_state(&mut inner, State::Pending, settling);
                drop(inner);
                // SAFETY: this call moved the future out of PENDING, so the work is still there and
                // its alone; it is discarded before the slot takes the outcome. Its `Drop` is the
                // user's: one that panics is reported, and the future still settles.
                crate::panic::contain(|| self.with_slot(|slot| unsafe { job.discard(slot) }));
                self.settle(
                    self.lock(),
                    settling,
                    Ending::Cancelled,
                    Err(Error::Cancelled),
                    None,
                );
                Cancel::Won
            }
            State::Settling(Ending::Cancelled) | State::DoneWithError(Ending::Cancelled) => {
                Cancel::AlreadyCancelled
            }
            _ => Cancel::Refused,
        }
    }

    /// Decides the outcome (from PENDING or RUNNING), runs the callbacks, publishes it and wakes every
    /// waiter. A future that already ended keeps its first outcome and the new one is given back as
    /// `InvalidState`. The slot must hold no work: a job that keeps its work there takes it out
    /// ([`start`](Self::start), then [`with_slot`](Self::with_slot)) before completing.
    pub(crate) fn complete(&self, outcome: Result<T, Error>) -> Result<(), Error> {
        self.complete_then(outcome, None)
    }

    /// [`complete`](Self::complete), calling `before_publish` after the callbacks have returned and
    /// before the outcome is published (with no lock of this future held). A pool's worker uses it to
    /// book the task and count itself idle before anyone can see the result.
    pub(crate) fn complete_then(
        &self,
        outcome: Result<T, Error>,
        before_publish: Option<&mut dyn FnMut()>,
    ) -> Result<(), Error> {
        let inner = self.lock();
        let now = self.state(&inner);
        let ending = match now {
            State::Pending | State::Running => match outcome {
                Ok(_) => Ending::Returned,
                Err(_) => Ending::Raised,
            },
            State::Settling(e) | State::DoneWithError(e) => return Err(self.already_ended(e)),
            State::Done | State::Lent | State::Taken => {
                return Err(self.already_ended(Ending::Returned))
            }
        };
        self.settle(inner, now, ending, outcome, before_publish);
        Ok(())
    }

    fn already_ended(&self, ending: Ending) -> Error {
        Error::InvalidState(format!(
            "{}: the future already ended ({})",
            match ending {
                Ending::Cancelled => "CANCELLED",
                _ => "FINISHED",
            },
            self.id()
        ))
    }

    /// SETTLING (from the state `from`): runs the callbacks (outside the lock, lending them
    /// `outcome`), then `before_publish`, then publishes the outcome and wakes everyone.
    fn settle<'a>(
        &'a self,
        mut inner: StateGuard<'a, Inner<T>>,
        from: State,
        ending: Ending,
        outcome: Result<T, Error>,
        mut before_publish: Option<&mut dyn FnMut()>,
    ) {
        let settling = State::Settling(ending);
        self.set_state(&mut inner, from, settling);
        loop {
            if let Some(batch) = inner.take_callbacks() {
                drop(inner);
                for cb in batch {
                    run_callback(self.id(), cb, &outcome);
                }
            } else if let Some(hook) = before_publish.take() {
                drop(inner);
                hook();
            } else {
                break;
            }
            // Callbacks added meanwhile (from a callback, or another thread) were queued for us: go
            // round until none are left, so each runs before the outcome is published.
            inner = self.lock();
        }
        // PUBLISH: the outcome first, then the bit, in one locked section (see `has_ended`). The
        // inline slot is emptied below, so it stops being a watcher's; only the owner registers from
        // now on (a late callback's lending).
        let published = self.put(&mut inner, ending, outcome);
        self.inner.set_flags(
            ENDED | published.bits(),
            FIRST_IS_WATCHER | settling.bits(),
            Ordering::Release,
        );
        let first = inner.first.take();
        let waiters = inner
            .extras
            .as_mut()
            .map(|x| mem::take(&mut x.waiters))
            .unwrap_or_default();
        drop(inner);
        // WAKE
        if let Some(w) = first {
            crate::panic::wake(w);
        }
        for (_, w) in waiters {
            crate::panic::wake(w);
        }
    }

    /// Stores the outcome in the slot and returns the state that publishes it (which the caller
    /// then sets, under the same lock). The slot must be empty: the future is settling, or lent.
    #[allow(unsafe_code)] // see the SAFETY comment
    fn put(&self, _held: &mut Inner<T>, ending: Ending, outcome: Result<T, Error>) -> State {
        // SAFETY: the lock is held (`_held`), under which alone the outcome is reached, and the slot
        // is empty (the caller's state has none), so nothing is overwritten.
        self.slot.with_mut(|slot| unsafe {
            match outcome {
                Ok(v) => {
                    slot.write(MaybeUninit::new(Slot {
                        value: ManuallyDrop::new(v),
                    }));
                    State::Done
                }
                Err(e) => {
                    slot.write(MaybeUninit::new(Slot {
                        error: ManuallyDrop::new(Box::new(e)),
                    }));
                    State::DoneWithError(ending)
                }
            }
        })
    }

    /// Moves the value out of the slot, leaving it empty.
    ///
    /// # Safety
    /// The state is `Done`, and the caller moves it on (to `Lent` or `Taken`) under the lock it holds.
    #[allow(unsafe_code)]
    unsafe fn take_value(&self, _held: &mut Inner<T>) -> T {
        // SAFETY: `Done` says the slot holds a value; the caller's state change says it is read once.
        self.slot
            .with_mut(|slot| unsafe { ManuallyDrop::into_inner((*slot).assume_init_read().value) })
    }

    /// The published error, borrowed for as long as the lock is held.
    ///
    /// # Safety
    /// The state is `DoneWithError` (which only the core's drop leaves).
    #[allow(unsafe_code)]
    unsafe fn error<'a>(&'a self, _held: &'a Inner<T>) -> &'a Error {
        // SAFETY: `DoneWithError` says the slot holds a boxed error, which stays until the core is
        // dropped; no one writes the slot meanwhile, and the borrow ends with the caller's lock.
        self.slot
            .with_mut(|slot| unsafe { &**(*slot).assume_init_ref().error })
    }

    /// Runs `cb` once with the outcome: later, on the thread that settles the future, or now on this one
    /// if the outcome is already published. Called only through `PoolFuture::add_done_callback(&self)`,
    /// which is what keeps a lent value from being taken while `cb` reads it (see the module docs).
    #[allow(unsafe_code)] // the slot's accesses: see the SAFETY comments
    pub(crate) fn add_callback(&self, cb: Callback<T>) {
        let mut inner = self.lock();
        let value = match self.state(&inner) {
            State::Done => {
                // SAFETY: `Done`, and the state moves on to `Lent` at once, under this lock.
                let v = unsafe { self.take_value(&mut inner) };
                self.set_state(&mut inner, State::Done, State::Lent);
                v
            }
            State::DoneWithError(_) => {
                // Errors are cheap to clone: the slot keeps its own, untouched.
                // SAFETY: `DoneWithError`, read under this lock.
                let copy = Err(unsafe { self.error(&inner) }.clone());
                drop(inner);
                run_callback(self.id(), cb, &copy);
                return;
            }
            State::Taken => {
                drop(inner);
                let gone = Err(Error::InvalidState(
                    "the result was already taken from this future".into(),
                ));
                run_callback(self.id(), cb, &gone);
                return;
            }
            State::Pending | State::Running | State::Settling(_) | State::Lent => {
                // Not yet published, or lent to another late callback: the thread settling the
                // future, or the one holding its value, runs it after the callbacks before it.
                inner.extras().callbacks.push(cb);
                return;
            }
        };
        // LENT: run it (and any added meanwhile) with the value outside the lock, then put it back.
        let outcome = Ok(value);
        let mut batch = vec![cb];
        loop {
            drop(inner);
            for cb in batch {
                run_callback(self.id(), cb, &outcome);
            }
            inner = self.lock();
            match inner.take_callbacks() {
                Some(more) => batch = more,
                None => break,
            }
        }
        let published = self.put(&mut inner, Ending::Returned, outcome);
        self.set_state(&mut inner, State::Lent, published);
        // Published: the inline slot can only hold the owner's waker.
        let owner = inner.first.take();
        drop(inner);
        if let Some(w) = owner {
            crate::panic::wake(w);
        }
    }

    /// The owner's poll: takes a value out, or clones an error (which stays to be read again).
    #[allow(unsafe_code)] // the slot's accesses: see the SAFETY comments
    pub(crate) fn poll_take(&self, cx: &mut Context<'_>) -> Poll<Result<T, Error>> {
        let mut inner = self.lock();
        let outcome = match self.state(&inner) {
            State::Done => {
                // SAFETY: `Done`, and the state moves on to `Taken` at once, under this lock.
                let v = unsafe { self.take_value(&mut inner) };
                self.set_state(&mut inner, State::Done, State::Taken);
                Poll::Ready(Ok(v))
            }
            // SAFETY: `DoneWithError`, read under this lock.
            State::DoneWithError(_) => Poll::Ready(Err(unsafe { self.error(&inner) }.clone())),
            State::Taken => Poll::Ready(Err(Error::InvalidState(
                "the result was already taken from this future".into(),
            ))),
            // Not yet published; or lent to a late callback, which the borrow rules exclude here (see
            // the module docs), but would mean "wait for it to come back" all the same.
            State::Pending | State::Running | State::Settling(_) | State::Lent => {
                let replaced = self.register_owner(&mut inner, cx.waker());
                drop(inner);
                drop(replaced);
                return Poll::Pending;
            }
        };
        // Only the owner polls here, so only its own later reads look at the bit.
        self.inner.set_flags(HANDED_OUT, 0, Ordering::Relaxed);
        outcome
    }

    /// Whether the owner has been handed the outcome ([`poll_take`](Self::poll_take) was ready).
    pub(crate) fn handed_out(&self) -> bool {
        self.inner.flags(Ordering::Relaxed) & HANDED_OUT != 0
    }

    /// The owner handle is gone: drops the waker its last poll left, rather than keeping it (and
    /// whatever task it would wake) alive until the future ends.
    pub(crate) fn release_owner(&self) {
        if self.has_ended() {
            // Publication already took it, and only the owner registers here.
            return;
        }
        let mut inner = self.lock();
        let first = if self.first_is_watcher() {
            None
        } else {
            inner.first.take()
        };
        let listed = remove_listed(&mut inner, OWNER_KEY);
        drop(inner);
        drop((first, listed));
    }

    /// Waiting for the outcome without taking it (`exception()`): `Some(error)` or `None` for a value.
    /// Several threads may wait at once (it takes `&self`), so each registers under its own `key`, as
    /// watchers do, rather than in the single owner slot; the caller unwatches `key` if it gives up.
    #[allow(unsafe_code)] // the slot's access: see the SAFETY comment
    pub(crate) fn poll_exception(
        &self,
        cx: &mut Context<'_>,
        key: &mut Option<u64>,
    ) -> Poll<Option<Error>> {
        let mut inner = self.lock();
        let ready = match self.state(&inner) {
            // SAFETY: `DoneWithError`, read under this lock.
            State::DoneWithError(_) => Some(unsafe { self.error(&inner) }.clone()),
            State::Done | State::Lent | State::Taken => None,
            State::Pending | State::Running | State::Settling(_) => {
                let replaced = self.register_watcher(&mut inner, cx.waker(), key);
                drop(inner);
                drop(replaced);
                return Poll::Pending;
            }
        };
        let removed = key.take().and_then(|k| self.remove_watcher(&mut inner, k));
        drop(inner);
        drop(removed);
        Poll::Ready(ready)
    }

    /// A watcher's poll (`wait`, `as_completed`): ready once the future has ended. `key` is this watcher's
    /// registration, kept so that a later poll replaces its waker and `unwatch` can remove it.
    pub(crate) fn poll_ended(&self, cx: &mut Context<'_>, key: &mut Option<u64>) -> Poll<()> {
        let mut inner = self.lock();
        if let Phase::Ended(_) = self.state(&inner).phase() {
            if let Some(k) = key.take() {
                let waker = self.remove_watcher(&mut inner, k);
                drop(inner);
                drop(waker);
            }
            return Poll::Ready(());
        }
        let replaced = self.register_watcher(&mut inner, cx.waker(), key);
        drop(inner);
        drop(replaced);
        Poll::Pending
    }

    /// A watcher's first registration, with a waker it gives rather than lends (no clone is made):
    /// kept under a new key, or handed back if the future has already ended.
    pub(crate) fn watch(&self, waker: Waker) -> Registration {
        let mut inner = self.lock();
        if let Phase::Ended(_) = self.state(&inner).phase() {
            return Registration::Ended(waker);
        }
        if inner.first.is_none() {
            // A `wait` over many futures comes here for each: the flag is set by the unlock's own
            // atomic operation, one fewer per future.
            inner.first = Some(waker);
            self.inner.unlock_setting(inner, FIRST_IS_WATCHER, 0);
            return Registration::Kept(INLINE_KEY);
        }
        Registration::Kept(self.add_watcher(&mut inner, waker))
    }

    /// Removes a watcher's registration (a dropped `wait` or `as_completed`) and hands its waker back,
    /// if the future still held it, for the caller to drop or reuse (the lock is released by then).
    pub(crate) fn unwatch(&self, key: u64) -> Option<Waker> {
        let mut inner = self.lock();
        if key == INLINE_KEY && self.first_is_watcher() {
            // As in `watch`: the flag is cleared by the unlock.
            let waker = inner.first.take();
            self.inner.unlock_setting(inner, 0, FIRST_IS_WATCHER);
            return waker;
        }
        self.remove_watcher(&mut inner, key)
    }

    fn first_is_watcher(&self) -> bool {
        self.inner.flags(Ordering::Relaxed) & FIRST_IS_WATCHER != 0
    }

    /// Registers (or refreshes) the owner's waker: inline, unless a watcher holds that slot. Returns
    /// the waker it replaced, for the caller to drop once the lock is released (a waker's drop may
    /// run user code, which may reach this future).
    fn register_owner(&self, inner: &mut Inner<T>, waker: &Waker) -> Option<Waker> {
        if self.first_is_watcher() {
            register_listed(inner, OWNER_KEY, waker)
        } else {
            register(&mut inner.first, waker)
        }
    }

    /// Registers (or refreshes) the watcher `key`, woken once the outcome is published: in the inline
    /// slot if it is free (a `wait` over many futures then allocates nothing per future), else in the
    /// list. Called only before publication, so a watcher holding the inline slot still holds it.
    /// Returns the waker it replaced, to be dropped once the lock is released.
    fn register_watcher(
        &self,
        inner: &mut Inner<T>,
        waker: &Waker,
        key: &mut Option<u64>,
    ) -> Option<Waker> {
        match *key {
            Some(INLINE_KEY) => register(&mut inner.first, waker),
            Some(k) => register_listed(inner, k, waker),
            None => {
                *key = Some(self.add_watcher(inner, waker.clone()));
                None
            }
        }
    }

    /// Adds a new watcher's `waker` and returns its key: in the inline slot if it is free, else in the
    /// list. Called only before publication.
    fn add_watcher(&self, inner: &mut Inner<T>, waker: Waker) -> u64 {
        if inner.first.is_none() {
            inner.first = Some(waker);
            self.inner.set_flags(FIRST_IS_WATCHER, 0, Ordering::Relaxed);
            return INLINE_KEY;
        }
        let x = inner.extras();
        let k = x.next_key;
        x.next_key += 1;
        x.waiters.push((k, waker));
        k
    }

    /// Takes the watcher `key`'s waker out, for the caller to drop once the lock is released. After
    /// publication the inline slot is no watcher's, so a stale `INLINE_KEY` finds nothing.
    fn remove_watcher(&self, inner: &mut Inner<T>, key: u64) -> Option<Waker> {
        if key != INLINE_KEY {
            return remove_listed(inner, key);
        }
        if !self.first_is_watcher() {
            return None;
        }
        self.inner.set_flags(0, FIRST_IS_WATCHER, Ordering::Relaxed);
        inner.first.take()
    }

    /// `Debug` text in the manner of Python's repr: `pending`, `running`, `cancelled`,
    /// `finished returned f64`, `finished raised Panicked`.
    #[allow(unsafe_code)] // the slot's access: see the SAFETY comment
    pub(crate) fn describe(&self) -> String {
        let inner = self.lock();
        match self.state(&inner) {
            State::Pending | State::Settling(Ending::Cancelled) => "pending".into(),
            State::Running | State::Settling(_) => "running".into(),
            State::DoneWithError(Ending::Cancelled) => "cancelled".into(),
            // SAFETY: `DoneWithError`, read under this lock.
            State::DoneWithError(_) => {
                format!(
                    "finished raised {}",
                    variant_name(unsafe { self.error(&inner) })
                )
            }
            State::Done | State::Lent | State::Taken => {
                format!("finished returned {}", short_type_name::<T>())
            }
        }
    }
}

/// The core drops the published outcome it still holds; the work of a task dropped while PENDING is its
/// job's to drop (the task's last strong reference, which discards it first: `raw.rs`).
#[allow(unsafe_code)] // the slot's accesses: see the SAFETY comment
impl<T> Drop for Core<T> {
    fn drop(&mut self) {
        let state = self.state_mut();
        // SAFETY: `&mut self` makes this the last access; the state says what the slot holds.
        self.slot.with_mut(|slot| unsafe {
            match state {
                State::Done => ManuallyDrop::drop(&mut (*slot).assume_init_mut().value),
                State::DoneWithError(_) => ManuallyDrop::drop(&mut (*slot).assume_init_mut().error),
                _ => {}
            }
        });
    }
}

/// Registers (or refreshes) the waker in `slot`; returns the one it replaced.
fn register(slot: &mut Option<Waker>, waker: &Waker) -> Option<Waker> {
    match slot {
        Some(w) if w.will_wake(waker) => None,
        _ => slot.replace(waker.clone()),
    }
}

/// Registers (or refreshes) the waker listed under `key`; returns the one it replaced.
fn register_listed<T>(inner: &mut Inner<T>, key: u64, waker: &Waker) -> Option<Waker> {
    let x = inner.extras();
    match x.waiters.iter_mut().find(|(k, _)| *k == key) {
        Some((_, w)) if w.will_wake(waker) => None,
        Some((_, w)) => Some(mem::replace(w, waker.clone())),
        None => {
            x.waiters.push((key, waker.clone()));
            None
        }
    }
}

fn remove_listed<T>(inner: &mut Inner<T>, key: u64) -> Option<Waker> {
    let x = inner.extras.as_mut()?;
    let i = x.waiters.iter().position(|(k, _)| *k == key)?;
    Some(x.waiters.swap_remove(i).1)
}

fn run_callback<T>(id: FutureId, cb: Callback<T>, outcome: &Result<T, Error>) {
    let _marked = in_callback::Mark::enter();
    // A panicking callback must not take the worker down, nor stop the callbacks after it.
    if let Err(payload) = catch_unwind(AssertUnwindSafe(|| cb(outcome))) {
        crate::report::callback_panicked(id, &panic_message(&*payload));
    }
}

/// Whether this thread is running a done callback. Its future's outcome is not published until the
/// callback returns (see the module docs), so whoever waits for that outcome, a pool's task perhaps,
/// cannot finish meanwhile: a waiting `shutdown` called here must not wait for the pool's workers.
pub(crate) fn in_done_callback() -> bool {
    in_callback::depth() > 0
}

#[cfg(not(loom))]
mod in_callback {
    use std::cell::Cell;

    thread_local! {
        /// How many done callbacks this thread is inside (a callback may complete another future).
        static DEPTH: Cell<usize> = const { Cell::new(0) };
    }

    pub(super) fn depth() -> usize {
        DEPTH.try_with(Cell::get).unwrap_or(0)
    }

    /// Counts the thread as inside a callback until dropped.
    pub(super) struct Mark;

    impl Mark {
        pub(super) fn enter() -> Mark {
            let _ = DEPTH.try_with(|d| d.set(d.get() + 1));
            Mark
        }
    }

    impl Drop for Mark {
        fn drop(&mut self) {
            let _ = DEPTH.try_with(|d| d.set(d.get() - 1));
        }
    }
}

/// No model looks at shutdowns from callbacks.
#[cfg(loom)]
mod in_callback {
    pub(super) fn depth() -> usize {
        0
    }

    pub(super) struct Mark;

    impl Mark {
        pub(super) fn enter() -> Mark {
            Mark
        }
    }
}

fn variant_name(e: &Error) -> String {
    let s = format!("{e:?}");
    s.split(['(', ' ', '{'])
        .next()
        .unwrap_or("Error")
        .to_owned()
}

fn short_type_name<T>() -> &'static str {
    let full = std::any::type_name::<T>();
    // "alloc::string::String" → "String", keeping generic arguments intact.
    match full.find('<') {
        Some(lt) => {
            let head = &full[..lt];
            &full[head.rfind("::").map_or(0, |i| i + 2)..]
        }
        None => &full[full.rfind("::").map_or(0, |i| i + 2)..],
    }
}

#[cfg(test)]
mod tests {
    use std::task::Context;

    use super::{Core, Registration, State, INLINE_KEY, STATES, TAG_MASK, TAG_SHIFT};

    /// A watcher's first registration takes the inline slot and flags it as a watcher's with the
    /// unlock; the owner's waker then goes to the list. Its unregistration clears the flag with the
    /// unlock, so the owner's next registration takes the inline slot again.
    #[test]
    fn the_watcher_flag_changed_by_the_unlock_steers_the_owner() {
        let core = Core::<u32>::new();
        let waker = futures::task::noop_waker();
        let Registration::Kept(key) = core.watch(waker.clone()) else {
            panic!("a pending future keeps its watcher");
        };
        assert_eq!(key, INLINE_KEY);
        assert!(core.first_is_watcher());
        let listed = |core: &Core<u32>| core.lock().extras.as_ref().map_or(0, |x| x.waiters.len());
        assert!(core
            .poll_take(&mut Context::from_waker(&waker))
            .is_pending());
        assert_eq!(listed(&core), 1, "the owner's waker went to the list");
        assert!(core.unwatch(key).is_some());
        assert!(!core.first_is_watcher());
        core.release_owner();
        assert!(core
            .poll_take(&mut Context::from_waker(&waker))
            .is_pending());
        assert_eq!(listed(&core), 0, "the owner's waker went inline");
        assert!(core.lock().first.is_some());
    }

    /// Each state's tag reads back as that state, and fits in the tag's bits.
    #[test]
    fn every_state_reads_back_from_its_tag() {
        for (i, &state) in STATES.iter().enumerate() {
            assert_eq!(state.bits(), (i as u64) << TAG_SHIFT);
            assert_eq!(state.bits() & !TAG_MASK, 0);
            assert_eq!(State::of(state.bits() | !TAG_MASK), state);
        }
    }
}
