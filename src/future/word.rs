//! [`WordLock`]: the lock of a future's state, kept in the same atomic word as the future's id and the
//! flags read without the lock.
//!
//! Every queued task carries one future, so its size is what a burst of queued tasks costs. A std
//! `Mutex` takes a word of its own (its futex and poison flag, padded), next to the word that already
//! holds the id and the flags; here the two lock bits live in that word instead, as parking_lot's
//! `RawMutex` keeps them in a byte:
//!
//! ```text
//!  63 ........................ 9   8 .. 5      4          3          2         1        0
//! [          future id          ] [ state ] [ ENDED ][ HANDED_OUT ][ FIRST_IS_ ][ PARKED ][ LOCKED ]
//!                                                                    WATCHER
//! ```
//!
//! `LOCKED` is the lock. `PARKED` says a thread sleeps (or is about to) waiting for it, so the unlock
//! must wake one. A thread that finds the lock taken spins a few rounds (the holder never runs user code
//! and never blocks, so it is usually about to release it), if the crate's spin policy allows any spin
//! now (`crate::spin::allowed`: not on one CPU, nor while the machine has more runnable threads than
//! CPUs, when the holder is likely preempted and a spin or a yield only feeds the threads ahead of it);
//! then parks in parking_lot's global table,
//! keyed by the word's address: no memory per future, and nothing allocated while nobody waits.
//! As with parking_lot's `RawMutex`, an unlock does not hand the lock to the thread it wakes (the woken
//! one competes with newcomers): a holder holds it for a few loads and stores, not for user code.
//!
//! The flags and the state's tag are the future's (see `state.rs`); they are written only by the lock's
//! holder, but with read-modify-write operations, since a waiter may set `PARKED` meanwhile. Under `--cfg loom` the word
//! is a loom atomic, the data a loom `UnsafeCell`, and parking_lot's table a loom mutex and condvar;
//! the lock is modelled on its own (`LoomWordLock`), while the state machine's models take the state
//! lock as a plain loom mutex (see `StateLock`).

use std::marker::PhantomData;
use std::ops::{Deref, DerefMut};

use crate::sync::atomic::{AtomicU64, Ordering};

/// The lock bit.
const LOCKED: u64 = 1 << 0;
/// A thread waits for the lock: the unlock must wake one.
const PARKED: u64 = 1 << 1;
/// The bits the lock itself uses; the others are the owner's (see [`WordLock::set_flags`]).
const LOCK_BITS: u64 = LOCKED | PARKED;
/// Where the id starts: the bits below are the lock's, the flags' and the state's tag.
pub(crate) const ID_SHIFT: u32 = 9;

/// The lock of a future's state: a [`WordLock`].
#[cfg(not(loom))]
pub(crate) type StateLock<T> = WordLock<T>;
#[cfg(not(loom))]
pub(crate) type StateGuard<'a, T> = WordGuard<'a, T>;

/// Under loom, the state machine's models take a future's state lock as one loom mutex, next to a
/// std atomic for the id and flags: a loom atomic word explored bit by bit (every relaxed load of the
/// id a branch) would multiply their interleavings by a thousand or more. The lock bits themselves are checked on their own ([`LoomWordLock`], model 7 of
/// tests/loom.rs).
#[cfg(loom)]
pub(crate) type StateGuard<'a, T> = loom::sync::MutexGuard<'a, T>;

#[cfg(loom)]
pub(crate) struct StateLock<T> {
    word: std::sync::atomic::AtomicU64,
    data: loom::sync::Mutex<T>,
}

#[cfg(loom)]
impl<T> StateLock<T> {
    pub(crate) fn new(flags: u64, data: T) -> Self {
        StateLock {
            word: std::sync::atomic::AtomicU64::new(flags),
            data: loom::sync::Mutex::new(data),
        }
    }

    pub(crate) fn flags(&self, order: Ordering) -> u64 {
        self.word.load(order)
    }

    pub(crate) fn set_flags(&self, set: u64, clear: u64, order: Ordering) {
        let word = self.word.load(Ordering::Relaxed);
        self.word.store((word & !clear) | set, order);
    }

    pub(crate) fn toggle_flags(&self, bits: u64, order: Ordering) {
        let word = self.word.load(Ordering::Relaxed);
        self.word.store(word ^ bits, order);
    }

    pub(crate) fn lock(&self) -> StateGuard<'_, T> {
        crate::sync::lock(&self.data)
    }

    /// The flag change, then the unlock: the same outcome as `WordLock::unlock_setting`'s one step.
    pub(crate) fn unlock_setting(&self, guard: StateGuard<'_, T>, set: u64, clear: u64) {
        self.set_flags(set, clear, Ordering::Relaxed);
        drop(guard);
    }
}

/// A mutex whose state shares one atomic word with the owner's flags.
pub(crate) struct WordLock<T> {
    word: AtomicU64,
    data: crate::sync::UnsafeCell<T>,
    /// Under loom, parking_lot's table for this lock: its queue lock, over the number of threads in
    /// the queue, and where they sleep.
    #[cfg(loom)]
    table: (loom::sync::Mutex<usize>, loom::sync::Condvar),
}

// SAFETY: the data is reached only through a guard, and the lock bit lets one guard exist at a time;
// the lock's Acquire/Release orders each holder's accesses after the previous holder's. So the lock is
// `Sync` when the data may be sent between threads, as std's `Mutex` is.
#[allow(unsafe_code)]
unsafe impl<T: Send> Sync for WordLock<T> {}

impl<T> WordLock<T> {
    /// An unlocked lock over `data`, with `flags` (which must leave the lock bits clear) in its word.
    pub(crate) fn new(flags: u64, data: T) -> Self {
        debug_assert_eq!(flags & LOCK_BITS, 0);
        WordLock {
            word: AtomicU64::new(flags),
            data: crate::sync::UnsafeCell::new(data),
            #[cfg(loom)]
            table: (loom::sync::Mutex::new(0), loom::sync::Condvar::new()),
        }
    }

    /// The word without the lock bits.
    #[cfg_attr(loom, allow(dead_code))] // under loom, the state machine reads its flags elsewhere
    pub(crate) fn flags(&self, order: Ordering) -> u64 {
        self.word.load(order) & !LOCK_BITS
    }

    /// Sets the bits `set` and clears `clear` of the flags. Call with the lock held: only its holder
    /// writes flags, so no flag changes meanwhile; `PARKED` may, hence read-modify-writes.
    pub(crate) fn set_flags(&self, set: u64, clear: u64, order: Ordering) {
        debug_assert_eq!((set | clear) & LOCK_BITS, 0);
        if clear == 0 {
            self.word.fetch_or(set, order);
        } else if set == 0 {
            self.word.fetch_and(!clear, order);
        } else {
            let mut word = self.word.load(Ordering::Relaxed);
            while let Err(now) = self.word.compare_exchange_weak(
                word,
                (word & !clear) | set,
                order,
                Ordering::Relaxed,
            ) {
                word = now;
            }
        }
    }

    /// Flips the flag bits `bits`: one atomic operation where the holder knows which of them are
    /// set (it changes the state's tag from a known one to another). Call with the lock held, as
    /// [`set_flags`](Self::set_flags).
    #[cfg_attr(loom, allow(dead_code))] // under loom, the state machine's tag lives in `StateLock`
    pub(crate) fn toggle_flags(&self, bits: u64, order: Ordering) {
        debug_assert_eq!(bits & LOCK_BITS, 0);
        self.word.fetch_xor(bits, order);
    }

    /// Takes the lock, waiting for it if another thread holds it.
    pub(crate) fn lock(&self) -> WordGuard<'_, T> {
        // One atomic bit-test-and-set when the lock is free, which is nearly always.
        if self.word.fetch_or(LOCKED, Ordering::Acquire) & LOCKED != 0 {
            self.lock_contended();
        }
        WordGuard::new(self)
    }

    /// The lock was taken: spin briefly (the holder is between a few loads and stores), then sleep
    /// until an unlock wakes us, and try again.
    #[cold]
    fn lock_contended(&self) {
        // The policy is asked once per wait: it allows all the rounds (bounded by `SPINS`) or none.
        let mut spins = if crate::spin::allowed() { 0 } else { SPINS };
        let mut word = self.word.load(Ordering::Relaxed);
        loop {
            if word & LOCKED == 0 {
                match self.word.compare_exchange_weak(
                    word,
                    word | LOCKED,
                    Ordering::Acquire,
                    Ordering::Relaxed,
                ) {
                    Ok(_) => return,
                    Err(now) => {
                        word = now;
                        continue;
                    }
                }
            }
            // Nobody parked yet: spin a little first (no spin once someone sleeps: the holder
            // will hand the lock on through a wake-up anyway).
            if word & PARKED == 0 && spins < SPINS {
                spins += 1;
                spin_once(spins);
                word = self.word.load(Ordering::Relaxed);
                continue;
            }
            if word & PARKED == 0 {
                if let Err(now) = self.word.compare_exchange_weak(
                    word,
                    word | PARKED,
                    Ordering::Relaxed,
                    Ordering::Relaxed,
                ) {
                    word = now;
                    continue;
                }
            }
            self.park();
            spins = if crate::spin::allowed() { 0 } else { SPINS };
            word = self.word.load(Ordering::Relaxed);
        }
    }

    /// Sleeps until an unlock wakes us, unless the lock was released (or the flag cleared) before
    /// the sleep could begin.
    #[cfg(not(loom))]
    #[allow(unsafe_code)] // parking_lot_core's contract: see the SAFETY comment.
    fn park(&self) {
        let key = self.key();
        // SAFETY: the key is this lock's word, which no other primitive uses as a key; it stays
        // allocated while we sleep (we borrow the lock). `validate` runs with the table's queue
        // locked, only loads, and cannot panic; the other callbacks do nothing.
        unsafe {
            parking_lot_core::park(
                key,
                || self.word.load(Ordering::Relaxed) & LOCK_BITS == LOCK_BITS,
                || {},
                |_, _| {},
                parking_lot_core::DEFAULT_PARK_TOKEN,
                None,
            );
        }
    }

    /// Under loom, parking_lot's table is modelled by a loom mutex (its queue lock, under which the
    /// word is validated and the queue counted, and the unlock clears the bits) and a condvar (its
    /// sleepers, which loom never wakes spuriously).
    #[cfg(loom)]
    fn park(&self) {
        let mut queue = crate::sync::lock(&self.table.0);
        if self.word.load(Ordering::Relaxed) & LOCK_BITS == LOCK_BITS {
            // The unpark that wakes us takes us off the count, as parking_lot's takes its thread
            // off the queue.
            *queue += 1;
            drop(self.table.1.wait(queue));
        }
    }

    /// Releases the lock held by `guard`, setting the flag bits `set` and clearing `clear` (as
    /// [`set_flags`](Self::set_flags) would, then the unlock): in the unlock's own compare-exchange
    /// while nobody is parked; with a sleeper to wake, the flags change first and the parked path
    /// then releases the lock. For a holder whose last step is a flag change, which readers of the
    /// flag see once they hold the lock.
    pub(crate) fn unlock_setting(&self, guard: WordGuard<'_, T>, set: u64, clear: u64) {
        debug_assert!(std::ptr::eq(guard.lock, self));
        debug_assert_eq!((set | clear) & LOCK_BITS, 0);
        #[cfg(loom)]
        let mut guard = guard;
        #[cfg(loom)]
        drop(guard.data.take());
        // The guard's own drop would unlock without the flags.
        std::mem::forget(guard);
        self.unlock_changing(set, clear);
    }

    /// Releases the lock, waking one sleeper if any.
    fn unlock(&self) {
        self.unlock_changing(0, 0);
    }

    /// Releases the lock, waking one sleeper if any, with the flag bits `set` set and `clear` cleared.
    fn unlock_changing(&self, set: u64, clear: u64) {
        let mut word = self.word.load(Ordering::Relaxed);
        loop {
            if word & PARKED != 0 {
                if set | clear != 0 {
                    self.set_flags(set, clear, Ordering::Relaxed);
                }
                return self.unlock_parked();
            }
            match self.word.compare_exchange_weak(
                word,
                (word & !(LOCKED | clear)) | set,
                Ordering::Release,
                Ordering::Relaxed,
            ) {
                Ok(_) => return,
                Err(now) => word = now,
            }
        }
    }

    /// Wakes one sleeper and releases the lock in one step of the table's queue, so that a thread
    /// about to sleep either sees the lock free or is already in the queue this wake-up looks at.
    #[cfg(not(loom))]
    #[allow(unsafe_code)] // parking_lot_core's contract: see the SAFETY comment.
    #[cold]
    fn unlock_parked(&self) {
        let key = self.key();
        // SAFETY: as in `park`; the callback runs with the queue locked, does one atomic operation
        // and cannot panic.
        unsafe {
            parking_lot_core::unpark_one(key, |result| {
                let clear = if result.have_more_threads {
                    LOCKED
                } else {
                    LOCK_BITS
                };
                self.word.fetch_and(!clear, Ordering::Release);
                parking_lot_core::DEFAULT_UNPARK_TOKEN
            });
        }
    }

    /// As parking_lot's `unpark_one`: under the queue lock, the bits change first (`PARKED` stays
    /// while another thread is left in the queue), then one sleeper, if any is queued yet, is woken.
    #[cfg(loom)]
    fn unlock_parked(&self) {
        let mut queue = crate::sync::lock(&self.table.0);
        let clear = if *queue > 1 { LOCKED } else { LOCK_BITS };
        self.word.fetch_and(!clear, Ordering::Release);
        if *queue > 0 {
            *queue -= 1;
            self.table.1.notify_one();
        }
    }

    #[cfg(not(loom))]
    fn key(&self) -> usize {
        std::ptr::from_ref(&self.word) as usize
    }
}

/// Spin rounds before a waiter parks, when the spin policy allows any. parking_lot's `SpinWait` does
/// 10 (3 of them growing busy loops, then yields); the sections under this lock are shorter than a
/// mutex's usual, so fewer will do. Bounded by iterations, not by time or a spinner slot: at most 14
/// `spin_loop` hints, then 3 yields.
/// None under loom, where a spin round is only more interleavings to explore.
const SPINS: u32 = if cfg!(loom) { 0 } else { 6 };

#[cfg(not(loom))]
fn spin_once(round: u32) {
    if round <= 3 {
        for _ in 0..(1 << round) {
            std::hint::spin_loop();
        }
    } else {
        std::thread::yield_now();
    }
}

#[cfg(loom)]
fn spin_once(_round: u32) {}

/// The proof of holding a [`WordLock`]: reaches the data, and releases the lock when dropped.
pub(crate) struct WordGuard<'a, T> {
    lock: &'a WordLock<T>,
    /// The guard lends `&T` to whoever shares it, so it may be shared between threads only if `T`
    /// may (as std's `MutexGuard`); the lock reference alone would make it `Sync` for any `T: Send`.
    _data: PhantomData<&'a mut T>,
    #[cfg(loom)]
    data: Option<loom::cell::MutPtr<T>>,
}

#[allow(unsafe_code)] // the data's accesses: see the SAFETY comments.
impl<'a, T> WordGuard<'a, T> {
    #[cfg(not(loom))]
    fn new(lock: &'a WordLock<T>) -> Self {
        WordGuard {
            lock,
            _data: PhantomData,
        }
    }

    #[cfg(loom)]
    fn new(lock: &'a WordLock<T>) -> Self {
        // loom tracks the access from here until the guard drops it, before the unlock.
        WordGuard {
            lock,
            _data: PhantomData,
            data: Some(lock.data.get_mut()),
        }
    }

    #[cfg(not(loom))]
    fn ptr(&self) -> *mut T {
        self.lock.data.with_mut(|p| p)
    }

    #[cfg(loom)]
    fn ptr(&self) -> *mut T {
        // SAFETY: the pointer is only dereferenced through this guard, which holds the lock.
        unsafe { self.data.as_ref().expect("held until drop").deref() }
    }
}

#[allow(unsafe_code)] // the data's accesses: see the SAFETY comments.
impl<T> Deref for WordGuard<'_, T> {
    type Target = T;
    fn deref(&self) -> &T {
        // SAFETY: this guard holds the lock, so no other reference to the data exists; the borrow
        // ends before the guard does.
        unsafe { &*self.ptr() }
    }
}

#[allow(unsafe_code)] // the data's accesses: see the SAFETY comments.
impl<T> DerefMut for WordGuard<'_, T> {
    fn deref_mut(&mut self) -> &mut T {
        // SAFETY: as in `deref`, and `&mut self` makes this the only borrow through the guard.
        unsafe { &mut *self.ptr() }
    }
}

impl<T> Drop for WordGuard<'_, T> {
    fn drop(&mut self) {
        #[cfg(loom)]
        drop(self.data.take());
        self.lock.unlock();
    }
}

/// The lock alone, for the loom model of its bits (tests/loom.rs): a counter under the lock, and the
/// flags its holders set.
#[cfg(loom)]
#[doc(hidden)]
#[derive(Debug)]
pub struct LoomWordLock(WordLock<u64>);

#[cfg(loom)]
impl std::fmt::Debug for WordLock<u64> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("WordLock")
    }
}

#[cfg(loom)]
#[allow(missing_docs, clippy::new_without_default)]
impl LoomWordLock {
    pub fn new() -> Self {
        Self::with_flag(None)
    }

    /// A lock whose word starts with flag number `flag` (0 to 5) set, if any.
    pub fn with_flag(flag: Option<u32>) -> Self {
        LoomWordLock(WordLock::new(flag.map_or(0, |f| 1 << (2 + f)), 0))
    }

    /// Adds `n` to the counter under the lock, reading and writing it on either side of a yield (so
    /// two holders at once would lose an update, and loom's cell would report the race), and sets
    /// flag number `flag` (0 to 5).
    pub fn add_and_flag(&self, n: u64, flag: u32) {
        let mut guard = self.0.lock();
        let seen = *guard;
        loom::thread::yield_now();
        *guard = seen + n;
        self.0.set_flags(1 << (2 + flag), 0, Ordering::Relaxed);
    }

    /// As [`add_and_flag`](Self::add_and_flag), but the flag is set, and flag number `clear` (if any)
    /// cleared, by the unlock itself ([`WordLock::unlock_setting`]).
    pub fn add_and_flag_at_unlock(&self, n: u64, flag: u32, clear: Option<u32>) {
        let mut guard = self.0.lock();
        let seen = *guard;
        loom::thread::yield_now();
        *guard = seen + n;
        let clear = clear.map_or(0, |f| 1 << (2 + f));
        self.0.unlock_setting(guard, 1 << (2 + flag), clear);
    }

    /// The counter, then the whole word once the lock is released (the lock bits must be clear).
    pub fn counter_and_word(&self) -> (u64, u64) {
        let counter = *self.0.lock();
        (counter, self.0.word.load(Ordering::SeqCst))
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use std::cell::Cell;
    use std::marker::PhantomData;

    use super::WordGuard;

    /// `IsSync::<X>::SYNC` is the inherent `true` where `X: Sync`, else the trait's `false`.
    struct IsSync<X: ?Sized>(PhantomData<X>);
    trait NotSync {
        const SYNC: bool = false;
    }
    impl<X: ?Sized> NotSync for IsSync<X> {}
    impl<X: ?Sized + Sync> IsSync<X> {
        const SYNC: bool = true;
    }

    /// A guard derefs to `&T` through a shared borrow, so sharing it between threads shares `&T`:
    /// it must be `Sync` only where `T` is.
    #[test]
    fn a_guard_is_sync_only_over_sync_data() {
        let over_sync = IsSync::<WordGuard<'static, u64>>::SYNC;
        let over_cell = IsSync::<WordGuard<'static, Cell<u64>>>::SYNC;
        assert!(std::hint::black_box(over_sync));
        assert!(
            !std::hint::black_box(over_cell),
            "a guard over a `Cell` can be shared between threads"
        );
    }
}
