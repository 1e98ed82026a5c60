//! The state machine every future runs through, and the one lock that decides its races.
//!
//! ```text
//!            start()              complete(outcome)
//! Pending ───────────▶ Running ─────────────────────▶ Notifying ──▶ Done ──take──▶ Taken
//!    │                                                    ▲
//!    └────────────────────── cancel() ────────────────────┘
//! ```
//!
//! `cancel()` and a worker's `start()` race for the same lock: whichever takes `Pending` first wins, so
//! `cancel()` returns `true` exactly when the task will never run.
//!
//! `Notifying` is the phase in which the done callbacks run. The outcome is decided (so `done()` is true
//! and `cancel()` can no longer succeed) but it is held by the thread running the callbacks, outside the
//! lock, so callbacks see it by reference without the lock held. Whoever wants to *take* the outcome
//! (the owner's `.await` or `result()`) waits until `Done`, which is also when every waiter is woken.

use std::mem;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll, Waker};

use crate::error::{panic_message, Error};
use crate::sync::{lock, Mutex, MutexGuard};

use super::FutureId;

/// How a future ended, without the value: what the predicates and `Debug` need.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Ending {
    /// The task returned a value.
    Returned,
    /// The task failed: a panic, an `Err` from a fallible task, a broken pool.
    Raised,
    /// Cancelled before it ran.
    Cancelled,
}

/// The phase of a future as seen from outside, read in one lock so that `done`, `cancelled` and the
/// outcome always agree.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Phase {
    Pending,
    Running,
    Ended(Ending),
}

pub(crate) type Callback<T> = Box<dyn FnOnce(&Result<T, Error>) + Send + 'static>;

enum State<T> {
    /// Queued; `cancel()` can still win.
    Pending,
    /// A worker took it; it will finish with an outcome.
    Running,
    /// The outcome is decided and its callbacks are running on some thread, which holds the outcome.
    Notifying(Ending),
    /// The outcome is stored and can be read or taken.
    Done(Ending, Result<T, Error>),
    /// The owner took the value out (only successful values are taken; errors stay to be read again).
    Taken,
}

/// Wakers of `wait`/`as_completed` calls watching this future, and done callbacks: both rare enough
/// that a plain submit-and-await allocates neither.
struct Extras<T> {
    waiters: Vec<(u64, Waker)>,
    next_key: u64,
    callbacks: Vec<Callback<T>>,
}

struct Inner<T> {
    state: State<T>,
    /// The waker of the owner's `.await` or blocking `result()`.
    owner: Option<Waker>,
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

    fn phase(&self) -> Phase {
        match &self.state {
            State::Pending => Phase::Pending,
            State::Running => Phase::Running,
            State::Notifying(e) | State::Done(e, _) => Phase::Ended(*e),
            State::Taken => Phase::Ended(Ending::Returned),
        }
    }
}

/// The shared heart of one future.
pub(crate) struct Core<T> {
    /// The future's id, with [`ENDED`] set (under the lock) once the outcome is decided, so `done()`
    /// and the first pass of `wait`/`as_completed` over many futures read one atomic instead of taking
    /// each lock. One word for both keeps a queued task in a smaller allocation. A std atomic even
    /// under loom: see `has_ended`.
    id_and_ended: AtomicU64,
    inner: Mutex<Inner<T>>,
}

/// The bit of `Core::id_and_ended` that says the outcome is decided; ids stay far below it.
const ENDED: u64 = 1 << 63;

static NEXT_ID: AtomicU64 = AtomicU64::new(1);

impl<T> Core<T> {
    pub(crate) fn new() -> Self {
        Core {
            id_and_ended: AtomicU64::new(NEXT_ID.fetch_add(1, Ordering::Relaxed)),
            inner: Mutex::new(Inner {
                state: State::Pending,
                owner: None,
                extras: None,
            }),
        }
    }

    pub(crate) fn id(&self) -> FutureId {
        FutureId(self.id_and_ended.load(Ordering::Relaxed) & !ENDED)
    }

    fn lock(&self) -> MutexGuard<'_, Inner<T>> {
        lock(&self.inner)
    }

    pub(crate) fn phase(&self) -> Phase {
        self.lock().phase()
    }

    /// The id and whether the outcome is decided, in one load.
    #[cfg(not(loom))]
    pub(crate) fn snapshot(&self) -> (FutureId, bool) {
        let word = self.id_and_ended.load(Ordering::Acquire);
        (FutureId(word & !ENDED), word & ENDED != 0)
    }

    #[cfg(loom)]
    pub(crate) fn snapshot(&self) -> (FutureId, bool) {
        (self.id(), self.has_ended())
    }

    /// Whether the outcome is decided (finished or cancelled), without taking the lock.
    #[cfg(not(loom))]
    pub(crate) fn has_ended(&self) -> bool {
        self.id_and_ended.load(Ordering::Acquire) & ENDED != 0
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
    /// cancelled and the task must be skipped.
    pub(crate) fn start(&self) -> bool {
        let mut inner = self.lock();
        match inner.state {
            State::Pending => {
                inner.state = State::Running;
                true
            }
            // Cancelled: skip the task. Any other state is a second start (only possible through a
            // misused `Promise`), refused rather than a panic.
            _ => false,
        }
    }

    /// PENDING → cancelled. `true` if the future is now cancelled (also when it already was).
    pub(crate) fn cancel(&self) -> bool {
        let inner = self.lock();
        match inner.phase() {
            Phase::Pending => {
                self.settle(inner, Ending::Cancelled, Err(Error::Cancelled));
                true
            }
            Phase::Ended(Ending::Cancelled) => true,
            _ => false,
        }
    }

    /// Stores the outcome (from PENDING or RUNNING), runs the callbacks and wakes every waiter. A future
    /// that already ended keeps its first outcome and the new one is given back as `InvalidState`.
    pub(crate) fn complete(&self, outcome: Result<T, Error>) -> Result<(), Error> {
        let inner = self.lock();
        match inner.phase() {
            Phase::Pending | Phase::Running => {
                let ending = if outcome.is_ok() {
                    Ending::Returned
                } else {
                    Ending::Raised
                };
                self.settle(inner, ending, outcome);
                Ok(())
            }
            Phase::Ended(e) => Err(Error::InvalidState(format!(
                "{}: the future already ended ({})",
                match e {
                    Ending::Cancelled => "CANCELLED",
                    _ => "FINISHED",
                },
                self.id()
            ))),
        }
    }

    /// Runs the callbacks (outside the lock), then publishes the outcome and wakes everyone.
    fn settle<'a>(
        &'a self,
        mut inner: MutexGuard<'a, Inner<T>>,
        ending: Ending,
        outcome: Result<T, Error>,
    ) {
        self.id_and_ended.fetch_or(ENDED, Ordering::Release);
        loop {
            let batch = match inner.extras.as_mut() {
                Some(x) if !x.callbacks.is_empty() => mem::take(&mut x.callbacks),
                _ => break,
            };
            inner.state = State::Notifying(ending);
            drop(inner);
            for cb in batch {
                run_callback(self.id(), cb, &outcome);
            }
            // Callbacks added while these ran were queued for us: loop until none are left.
            inner = self.lock();
        }
        inner.state = State::Done(ending, outcome);
        let owner = inner.owner.take();
        let waiters = inner
            .extras
            .as_mut()
            .map(|x| mem::take(&mut x.waiters))
            .unwrap_or_default();
        drop(inner);
        if let Some(w) = owner {
            w.wake();
        }
        for (_, w) in waiters {
            w.wake();
        }
    }

    /// Runs `cb` once with the outcome: later, on the completing thread, or now on this one if the future
    /// has already ended.
    pub(crate) fn add_callback(&self, cb: Callback<T>) {
        let mut inner = self.lock();
        match mem::replace(&mut inner.state, State::Taken) {
            State::Done(ending, outcome) => {
                inner.extras().callbacks.push(cb);
                self.settle(inner, ending, outcome);
            }
            State::Taken => {
                drop(inner);
                let gone = Err(Error::InvalidState(
                    "the result was already taken from this future".into(),
                ));
                run_callback(self.id(), cb, &gone);
            }
            live => {
                inner.state = live;
                inner.extras().callbacks.push(cb);
            }
        }
    }

    /// The owner's poll: takes a value out, or clones an error (which stays to be read again).
    pub(crate) fn poll_take(&self, cx: &mut Context<'_>) -> Poll<Result<T, Error>> {
        let mut inner = self.lock();
        match mem::replace(&mut inner.state, State::Taken) {
            State::Done(_, Ok(v)) => Poll::Ready(Ok(v)),
            State::Done(ending, Err(e)) => {
                inner.state = State::Done(ending, Err(e.clone()));
                Poll::Ready(Err(e))
            }
            State::Taken => Poll::Ready(Err(Error::InvalidState(
                "the result was already taken from this future".into(),
            ))),
            live => {
                inner.state = live;
                register(&mut inner.owner, cx.waker());
                Poll::Pending
            }
        }
    }

    /// Waiting for the outcome without taking it (`exception()`): `Some(error)` or `None` for a value.
    /// Several threads may wait at once (it takes `&self`), so each registers under its own `key`, as
    /// watchers do, rather than in the single owner slot; the caller unwatches `key` if it gives up.
    pub(crate) fn poll_exception(
        &self,
        cx: &mut Context<'_>,
        key: &mut Option<u64>,
    ) -> Poll<Option<Error>> {
        let mut inner = self.lock();
        let ready = match &inner.state {
            State::Done(_, Err(e)) => Some(e.clone()),
            State::Done(_, Ok(_)) | State::Taken => None,
            _ => {
                register_keyed(&mut inner, cx, key);
                return Poll::Pending;
            }
        };
        if let Some(k) = key.take() {
            remove_waiter(&mut inner, k);
        }
        Poll::Ready(ready)
    }

    /// A watcher's poll (`wait`, `as_completed`): ready once the future has ended. `key` is this watcher's
    /// registration, kept so that a later poll replaces its waker and `unwatch` can remove it.
    pub(crate) fn poll_ended(&self, cx: &mut Context<'_>, key: &mut Option<u64>) -> Poll<()> {
        let mut inner = self.lock();
        if let Phase::Ended(_) = inner.phase() {
            if let Some(k) = key.take() {
                remove_waiter(&mut inner, k);
            }
            return Poll::Ready(());
        }
        register_keyed(&mut inner, cx, key);
        Poll::Pending
    }

    /// Removes a watcher's registration (a dropped `wait` or `as_completed`).
    pub(crate) fn unwatch(&self, key: u64) {
        remove_waiter(&mut self.lock(), key);
    }

    /// `Debug` text in the manner of Python's repr: `pending`, `running`, `cancelled`,
    /// `finished returned f64`, `finished raised Panicked`.
    pub(crate) fn describe(&self) -> String {
        let inner = self.lock();
        match &inner.state {
            State::Pending => "pending".into(),
            State::Running => "running".into(),
            State::Notifying(Ending::Cancelled) | State::Done(Ending::Cancelled, _) => {
                "cancelled".into()
            }
            State::Done(_, Err(e)) => format!("finished raised {}", variant_name(e)),
            State::Notifying(Ending::Raised) => "finished raised".into(),
            _ => format!("finished returned {}", short_type_name::<T>()),
        }
    }
}

fn register(slot: &mut Option<Waker>, waker: &Waker) {
    match slot {
        Some(w) if w.will_wake(waker) => {}
        _ => *slot = Some(waker.clone()),
    }
}

/// Registers (or refreshes) the waiter `key` in the list woken once the outcome is published.
fn register_keyed<T>(inner: &mut Inner<T>, cx: &mut Context<'_>, key: &mut Option<u64>) {
    let x = inner.extras();
    match key {
        Some(k) => match x.waiters.iter_mut().find(|(wk, _)| wk == k) {
            Some((_, w)) => {
                if !w.will_wake(cx.waker()) {
                    *w = cx.waker().clone();
                }
            }
            None => x.waiters.push((*k, cx.waker().clone())),
        },
        None => {
            let k = x.next_key;
            x.next_key += 1;
            x.waiters.push((k, cx.waker().clone()));
            *key = Some(k);
        }
    }
}

fn remove_waiter<T>(inner: &mut Inner<T>, key: u64) {
    if let Some(x) = inner.extras.as_mut() {
        if let Some(i) = x.waiters.iter().position(|(k, _)| *k == key) {
            x.waiters.swap_remove(i);
        }
    }
}

fn run_callback<T>(id: FutureId, cb: Callback<T>, outcome: &Result<T, Error>) {
    // A panicking callback must not take the worker down, nor stop the callbacks after it.
    if let Err(payload) = catch_unwind(AssertUnwindSafe(|| cb(outcome))) {
        crate::report::callback_panicked(id, &panic_message(&*payload));
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
