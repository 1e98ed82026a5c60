//! A task's allocation, and the thin pointers that share it: one word each, where `Arc<dyn _>` takes
//! two, because a queued task is held twice (by the queue and by the caller's future) and a burst of
//! queued tasks pays for both (issue 9).
//!
//! The allocation is a `#[repr(C)]` [`TaskCell`]: a [`Header`] (the reference counts, and a pointer
//! to the [`TaskVTable`] of the cell's concrete type), then the future's [`Core<T>`], then the job.
//! What needs the concrete type (dropping the core and the job, freeing with the right `Layout`, the
//! `dyn Job` and `dyn Runnable` views) goes through the vtable, as in async-task's `RawTask` and tokio's
//! `task/raw.rs`. The core needs no vtable: in a `repr(C)` struct a field's offset depends only on the
//! fields before it, so `Core<T>` sits at the same offset whatever the job, and a pointer typed by the
//! output alone reaches it.
//!
//! The counts follow `Arc`: strong references keep the core and job alive, weak ones the memory, and
//! the strong references together hold one weak reference, given up after the last strong one has
//! dropped the core and job. Both counts live in one word (so the header is as large as `Arc`'s two
//! counts): increments are Relaxed (a new reference comes from an existing one, which already keeps
//! the cell alive), decrements Release, and the thread that takes a count to zero fences with Acquire
//! before it drops or frees, so every other holder's last use happens before. An upgrade from a weak
//! reference is a CAS that never raises a strong count of zero.
//!
//! The pointers: [`CellRef<T, J>`] (strong, the concrete type: what a pool builds), [`TaskRef<T>`]
//! (strong, the output's type only: a future's), [`WeakTaskRef<T>`] (a task handle's),
//! [`RunnableRef`] and [`WeakRunnableRef`] (a thread pool's queue and a scope's list).

use std::alloc::{dealloc, Layout};
use std::marker::PhantomData;
use std::mem::offset_of;
use std::ops::Deref;
use std::ptr::{self, NonNull};

use super::state::{Cancel, Core, Phase};
use super::{Attend, Job, NoJob};
use crate::sync::atomic::{fence, AtomicU64, Ordering};
use crate::thread_pool::Runnable;

/// One strong reference, in the low half of the count word.
const STRONG: u64 = 1;
/// One weak reference, in the high half.
const WEAK: u64 = 1 << 32;
/// Past this many references of one kind the process aborts, as `Arc` does past `isize::MAX`: the
/// margin up to `u32::MAX` absorbs the increments racing the one that sees it.
const MAX_REFS: u64 = (u32::MAX >> 1) as u64;

fn strong(refs: u64) -> u64 {
    refs & u64::from(u32::MAX)
}

fn weak(refs: u64) -> u64 {
    refs >> 32
}

/// What every task allocation starts with.
pub(crate) struct Header {
    /// Strong count in the low 32 bits, weak count (plus one for all the strong ones) in the high.
    refs: AtomicU64,
    vtable: &'static TaskVTable,
}

/// What needs a cell's concrete type, one static per type.
struct TaskVTable {
    /// Drops the core and the job in place (the last strong reference).
    drop_cell: unsafe fn(NonNull<Header>),
    /// Frees the memory (the last reference of either kind).
    dealloc: unsafe fn(NonNull<Header>),
    job: unsafe fn(NonNull<Header>) -> *const dyn Job,
    /// `Some` for a cell that a thread pool runs.
    runnable: Option<unsafe fn(NonNull<Header>) -> *const dyn Runnable>,
    /// `Some` for a cell whose job is told when its future is attended to ([`Attend`]). The others
    /// (thread-pool tasks, promises) have nothing to do then, and `None` spares their every poll and
    /// state check two indirect calls.
    attend: Option<unsafe fn(NonNull<Header>)>,
}

/// A future's state and its job in one allocation, after the header that counts references to it.
#[repr(C)]
pub(crate) struct TaskCell<T, J> {
    header: Header,
    pub(crate) core: Core<T>,
    pub(crate) job: J,
}

impl<T, J: Job> TaskCell<T, J> {
    /// PENDING → cancelled, dropping the work at once (by the one call that cancelled it, before the
    /// callbacks run). Every cancel of a task goes through here.
    pub(crate) fn cancel(&self) -> bool {
        cancel(&self.core, &self.job)
    }
}

fn cancel<T, J: Job + ?Sized>(core: &Core<T>, job: &J) -> bool {
    match core.cancel_by(job) {
        Cancel::Won | Cancel::AlreadyCancelled => true,
        Cancel::Refused => false,
    }
}

impl<T, J: Job + 'static> TaskCell<T, J> {
    const VTABLE: TaskVTable = TaskVTable {
        drop_cell: drop_cell::<T, J>,
        dealloc: dealloc_cell::<T, J>,
        job: job::<T, J>,
        runnable: None,
        attend: None,
    };

    /// The offset of the core, which [`TaskRef<T>`] relies on being the same for every job.
    const CORE_AT: usize = {
        let at = offset_of!(TaskCell<T, J>, core);
        assert!(at == offset_of!(TaskCell<T, NoJob>, core));
        at
    };
}

impl<T, J> TaskCell<T, J>
where
    J: Job + 'static,
    Self: Runnable + 'static,
{
    const RUNNABLE_VTABLE: TaskVTable = TaskVTable {
        runnable: Some(runnable::<T, J>),
        ..Self::VTABLE
    };
}

impl<T, J: Attend + 'static> TaskCell<T, J> {
    #[cfg_attr(loom, allow(dead_code))] // under loom, the process pool (its only user) is not built
    const ATTENDED_VTABLE: TaskVTable = TaskVTable {
        attend: Some(attend::<T, J>),
        ..Self::VTABLE
    };
}

#[allow(unsafe_code)] // the vtable's entries: see the SAFETY comments
mod entries {
    use super::*;

    /// Drops the core and the job in place: first the work of a task that never left PENDING (a job
    /// keeps no tag of its own, see the thread pool's `Holder`), then the fields. The header stays:
    /// weak references may still read the counts. Each part is dropped even if dropping one before
    /// it panics (the work, the value, a callback or a waker is the user's): the rest go while the
    /// panic unwinds, as a struct's fields do, so that the caller can still free the memory.
    ///
    /// # Safety
    /// `ptr` is a `TaskCell<T, J>` whose strong count just reached zero, after an Acquire fence: no
    /// other thread reaches its core or job again, and this runs once.
    pub(super) unsafe fn drop_cell<T, J: Job>(ptr: NonNull<Header>) {
        let cell = ptr.cast::<TaskCell<T, J>>().as_ptr();
        // SAFETY: the caller has the core and job to itself (see above), and each is dropped once:
        // by its guard, at the end of this scope or while a panic unwinds through it (the job's
        // guard, made first, goes last). The `&mut` covers the core alone, never the header, whose
        // counts weak holders may still touch.
        unsafe {
            let _job = DropInPlace(ptr::addr_of_mut!((*cell).job));
            let core = DropInPlace(ptr::addr_of_mut!((*cell).core));
            if (*core.0).is_pending_mut() {
                let job = &*ptr::addr_of!((*cell).job);
                // SAFETY: never left PENDING, so no cancel won the work and nothing took it
                // (`Job::discard`'s contract); this is the last use.
                (*core.0).with_slot(|slot| job.discard(slot));
            }
        }
    }

    /// Drops what it points to when it goes, at the end of its scope or in an unwinding panic.
    struct DropInPlace<X>(*mut X);

    impl<X> Drop for DropInPlace<X> {
        fn drop(&mut self) {
            // SAFETY: made only in `drop_cell`, over a field that is dropped once, here.
            unsafe { ptr::drop_in_place(self.0) }
        }
    }

    /// # Safety
    /// `ptr` came from `Box<TaskCell<T, J>>`, whose core and job were dropped, and no reference of
    /// either kind is left.
    pub(super) unsafe fn dealloc_cell<T, J>(ptr: NonNull<Header>) {
        // SAFETY: `Box` allocated it with the global allocator and this layout; nothing else will
        // read it, and its fields need no more dropping (the header owns nothing).
        unsafe { dealloc(ptr.as_ptr().cast(), Layout::new::<TaskCell<T, J>>()) }
    }

    /// # Safety
    /// `ptr` is a `TaskCell<T, J>` kept alive by a strong reference for as long as the result is used.
    pub(super) unsafe fn job<T, J: Job + 'static>(ptr: NonNull<Header>) -> *const dyn Job {
        // SAFETY: in bounds of a live allocation, whose pointer covers all of it (see `CellRef::new`).
        unsafe { ptr::addr_of!((*ptr.cast::<TaskCell<T, J>>().as_ptr()).job) }
    }

    /// # Safety
    /// `ptr` is a `TaskCell<T, J>` kept alive by a strong reference while this runs.
    #[cfg_attr(loom, allow(dead_code))] // under loom, the process pool (its only user) is not built
    pub(super) unsafe fn attend<T, J: Attend>(ptr: NonNull<Header>) {
        // SAFETY: as in `job`; the job is only ever shared.
        unsafe { (*ptr::addr_of!((*ptr.cast::<TaskCell<T, J>>().as_ptr()).job)).attend() }
    }

    /// # Safety
    /// As [`job`].
    pub(super) unsafe fn runnable<T, J>(ptr: NonNull<Header>) -> *const dyn Runnable
    where
        TaskCell<T, J>: Runnable + 'static,
    {
        ptr.cast::<TaskCell<T, J>>().as_ptr() as *const dyn Runnable
    }
}

use entries::{attend, dealloc_cell, drop_cell, job, runnable};

/// The counting shared by every pointer type below: a pointer to a header that this value counts
/// once, as strong or as weak (its owner says which).
#[allow(unsafe_code)] // reads the header of a live allocation: see the SAFETY comments
mod counts {
    use super::*;

    /// # Safety
    /// `ptr` points to a live header: the caller holds a reference of either kind.
    pub(super) unsafe fn header<'a>(ptr: NonNull<Header>) -> &'a Header {
        // SAFETY: as the caller promises; the header is only ever shared (its count is atomic).
        unsafe { ptr.as_ref() }
    }

    fn overflowed(old: u64) {
        if strong(old) > MAX_REFS || weak(old) > MAX_REFS {
            std::process::abort();
        }
    }

    /// # Safety
    /// The caller holds a strong reference to `ptr`.
    pub(super) unsafe fn inc_strong(ptr: NonNull<Header>) {
        // SAFETY: the caller's reference keeps the header alive.
        let old = unsafe { header(ptr) }
            .refs
            .fetch_add(STRONG, Ordering::Relaxed);
        overflowed(old);
    }

    /// # Safety
    /// The caller holds a reference (of either kind) to `ptr`.
    pub(super) unsafe fn inc_weak(ptr: NonNull<Header>) {
        // SAFETY: the caller's reference keeps the header alive.
        let old = unsafe { header(ptr) }
            .refs
            .fetch_add(WEAK, Ordering::Relaxed);
        overflowed(old);
    }

    /// A new strong reference, unless the strong count is already zero (the core and job are gone or
    /// going): then `false`, and the count stays zero.
    ///
    /// # Safety
    /// The caller holds a weak reference to `ptr`.
    pub(super) unsafe fn try_inc_strong(ptr: NonNull<Header>) -> bool {
        // SAFETY: the caller's weak reference keeps the header alive.
        let refs = &unsafe { header(ptr) }.refs;
        let mut now = refs.load(Ordering::Relaxed);
        loop {
            if strong(now) == 0 {
                return false;
            }
            overflowed(now);
            // Acquire on success, as `Weak::upgrade`: the new reference sees the cell as the other
            // strong holders left it.
            match refs.compare_exchange_weak(
                now,
                now + STRONG,
                Ordering::Acquire,
                Ordering::Relaxed,
            ) {
                Ok(_) => return true,
                Err(seen) => now = seen,
            }
        }
    }

    /// Gives up a strong reference: the last one drops the core and job, then the strong references'
    /// shared weak one.
    ///
    /// # Safety
    /// The caller holds a strong reference to `ptr` and does not use it again.
    pub(super) unsafe fn dec_strong(ptr: NonNull<Header>) {
        // SAFETY: the caller's reference keeps the header alive until this decrement; after it the
        // header is touched only by the thread that took the count to zero.
        let old = unsafe { header(ptr) }
            .refs
            .fetch_sub(STRONG, Ordering::Release);
        if strong(old) != 1 {
            return;
        }
        // Every other strong holder's uses happen before what follows (their decrements are Release).
        fence(Ordering::Acquire);
        // SAFETY: the count is ours alone to act on now (see above).
        let vtable = unsafe { header(ptr) }.vtable;
        // Given up after the core and job are dropped, even if dropping them panics (user code):
        // they are dropped all the same (`drop_cell`), and the memory must not leak.
        let _shared_weak = ReleaseSharedWeak {
            ptr,
            last: weak(old) == 1,
        };
        // SAFETY: the last strong reference, after the fence: `drop_cell`'s contract.
        unsafe { (vtable.drop_cell)(ptr) };
    }

    /// The strong references' shared weak one, given up when this goes.
    struct ReleaseSharedWeak {
        ptr: NonNull<Header>,
        /// No other weak reference was left when the last strong one went, and none can be made
        /// without a strong one: nobody else reaches the memory, which this frees at once.
        last: bool,
    }

    impl Drop for ReleaseSharedWeak {
        fn drop(&mut self) {
            if self.last {
                // SAFETY: no reference of either kind is left, and the core and job were dropped
                // (made only in `dec_strong`, after `drop_cell` ran or unwound).
                unsafe { (header(self.ptr).vtable.dealloc)(self.ptr) };
            } else {
                // SAFETY: the strong references' shared weak one, given up once.
                unsafe { dec_weak(self.ptr) };
            }
        }
    }

    /// Gives up a weak reference: the last of all frees the memory.
    ///
    /// # Safety
    /// The caller holds a weak reference to `ptr` (or the strong ones' shared one) and does not use
    /// it again.
    pub(super) unsafe fn dec_weak(ptr: NonNull<Header>) {
        // SAFETY: the caller's reference keeps the header alive until this decrement.
        let old = unsafe { header(ptr) }
            .refs
            .fetch_sub(WEAK, Ordering::Release);
        if weak(old) != 1 {
            return;
        }
        debug_assert_eq!(strong(old), 0, "the strong references hold a weak one");
        fence(Ordering::Acquire);
        // SAFETY: the last reference of all, after the fence; the last strong one dropped the core and
        // job before it gave up the weak one it held.
        unsafe {
            let vtable = header(ptr).vtable;
            (vtable.dealloc)(ptr);
        }
    }

    /// Whether any strong reference is left.
    ///
    /// # Safety
    /// The caller holds a reference (of either kind) to `ptr`.
    pub(super) unsafe fn is_alive(ptr: NonNull<Header>) -> bool {
        // SAFETY: the caller's reference keeps the header alive.
        strong(unsafe { header(ptr) }.refs.load(Ordering::Relaxed)) > 0
    }
}

/// A strong reference to a task of a known concrete type: what a pool builds, and turns into the
/// [`TaskRef<T>`] of the caller's future and, for the thread pool, the [`RunnableRef`] of its queue.
pub(crate) struct CellRef<T, J> {
    ptr: NonNull<Header>,
    /// As `Arc<TaskCell<T, J>>` would: `Unpin`, unwind-safe when the cell is, invariant in `T` (the
    /// core's `UnsafeCell`).
    cell: PhantomData<*const TaskCell<T, J>>,
}

// SAFETY: a `CellRef` shares its cell between the threads that hold clones, and the last of them
// drops it: as `Arc<TaskCell<T, J>>`, it is `Send` and `Sync` when the cell is both.
#[allow(unsafe_code)]
unsafe impl<T, J> Send for CellRef<T, J> where TaskCell<T, J>: Send + Sync {}
// SAFETY: as for `Send`.
#[allow(unsafe_code)]
unsafe impl<T, J> Sync for CellRef<T, J> where TaskCell<T, J>: Send + Sync {}

impl<T, J: Job + 'static> CellRef<T, J> {
    /// A new task, with one strong reference: this one.
    pub(crate) fn new(core: Core<T>, job: J) -> Self {
        Self::with_vtable(core, job, &TaskCell::<T, J>::VTABLE)
    }

    /// A new task whose job is told whenever its future is attended to, with one strong reference:
    /// this one.
    #[cfg_attr(loom, allow(dead_code))] // under loom, the process pool (its only user) is not built
    pub(crate) fn new_attended(core: Core<T>, job: J) -> Self
    where
        J: Attend,
    {
        Self::with_vtable(core, job, &TaskCell::<T, J>::ATTENDED_VTABLE)
    }

    fn with_vtable(core: Core<T>, job: J, vtable: &'static TaskVTable) -> Self {
        // Evaluated per type: a job that moved the core would fail to compile here.
        let _core_at = TaskCell::<T, J>::CORE_AT;
        let cell = Box::new(TaskCell {
            header: Header {
                refs: AtomicU64::new(STRONG + WEAK),
                vtable,
            },
            core,
            job,
        });
        // From the `Box` itself, so the pointer covers the whole cell, which the vtable's entries
        // and `TaskRef::core` reach through it.
        CellRef {
            ptr: NonNull::from(Box::leak(cell)).cast(),
            cell: PhantomData,
        }
    }

    /// Another strong reference, typed by the output alone: the caller's future.
    pub(crate) fn typed(&self) -> TaskRef<T> {
        // SAFETY: `self` is a strong reference.
        #[allow(unsafe_code)]
        unsafe {
            counts::inc_strong(self.ptr)
        };
        TaskRef {
            ptr: self.ptr,
            output: PhantomData,
        }
    }
}

impl<T, J> CellRef<T, J>
where
    J: Job + 'static,
    TaskCell<T, J>: Runnable + 'static,
{
    /// A new task that a thread pool can run, with one strong reference: this one.
    pub(crate) fn new_runnable(core: Core<T>, job: J) -> RunnableCellRef<T, J> {
        RunnableCellRef(Self::with_vtable(
            core,
            job,
            &TaskCell::<T, J>::RUNNABLE_VTABLE,
        ))
    }
}

/// A [`CellRef`] whose vtable has the `Runnable` view: the only kind [`RunnableRef`]s are made from.
pub(crate) struct RunnableCellRef<T, J>(CellRef<T, J>);

impl<T, J> RunnableCellRef<T, J> {
    /// Another strong reference, as the thread pool's queue holds it.
    pub(crate) fn runnable(&self) -> RunnableRef {
        // SAFETY: `self` is a strong reference.
        #[allow(unsafe_code)]
        unsafe {
            counts::inc_strong(self.0.ptr)
        };
        RunnableRef { ptr: self.0.ptr }
    }
}

impl<T, J> Deref for RunnableCellRef<T, J> {
    type Target = CellRef<T, J>;

    fn deref(&self) -> &CellRef<T, J> {
        &self.0
    }
}

impl<T, J> Deref for CellRef<T, J> {
    type Target = TaskCell<T, J>;

    fn deref(&self) -> &TaskCell<T, J> {
        // SAFETY: a strong reference to a `TaskCell<T, J>` (the type says so), whose core and job stay
        // until it is dropped; the cell is only ever shared.
        #[allow(unsafe_code)]
        unsafe {
            self.ptr.cast().as_ref()
        }
    }
}

impl<T, J> Clone for CellRef<T, J> {
    fn clone(&self) -> Self {
        // SAFETY: `self` is a strong reference.
        #[allow(unsafe_code)]
        unsafe {
            counts::inc_strong(self.ptr)
        };
        CellRef {
            ptr: self.ptr,
            cell: PhantomData,
        }
    }
}

impl<T, J> Drop for CellRef<T, J> {
    fn drop(&mut self) {
        // SAFETY: a strong reference, given up once.
        #[allow(unsafe_code)]
        unsafe {
            counts::dec_strong(self.ptr)
        }
    }
}

/// A strong reference to a task whose output is a `T`, whatever its job: a [`PoolFuture`]'s.
///
/// [`PoolFuture`]: super::PoolFuture
pub(crate) struct TaskRef<T> {
    ptr: NonNull<Header>,
    /// As `Arc<TaskCell<T, _>>` would: `Unpin` whatever `T`, and invariant in `T` (a promise writes
    /// the value its future reads).
    output: PhantomData<*const Core<T>>,
}

// SAFETY: the cell's job is `Send + Sync` (`Job`'s bounds), so the cell may be shared and dropped on
// any thread exactly when its core may.
#[allow(unsafe_code)]
unsafe impl<T> Send for TaskRef<T> where Core<T>: Send + Sync {}
// SAFETY: as for `Send`.
#[allow(unsafe_code)]
unsafe impl<T> Sync for TaskRef<T> where Core<T>: Send + Sync {}

#[allow(unsafe_code)] // reaching into the cell: see the SAFETY comments
impl<T> TaskRef<T> {
    pub(crate) fn core(&self) -> &Core<T> {
        // SAFETY: a strong reference keeps the core alive; it sits at the same offset in every
        // `TaskCell<T, _>` (`TaskCell::CORE_AT`, checked for each job a cell is built with), and the
        // pointer covers the whole cell.
        unsafe {
            &*self
                .ptr
                .as_ptr()
                .cast::<u8>()
                .add(TaskCell::<T, NoJob>::CORE_AT)
                .cast::<Core<T>>()
        }
    }

    pub(crate) fn job(&self) -> &dyn Job {
        // SAFETY: a strong reference keeps the job alive for as long as `self` is borrowed.
        unsafe { &*(counts::header(self.ptr).vtable.job)(self.ptr) }
    }

    /// Tells the job that the future is attended to ([`Attend`]), if it is a job that asks.
    pub(crate) fn attend(&self) {
        // SAFETY: a strong reference keeps the header alive.
        if let Some(attend) = unsafe { counts::header(self.ptr) }.vtable.attend {
            // SAFETY: a strong reference keeps the job alive; the entry was made for this cell's type.
            unsafe { attend(self.ptr) }
        }
    }

    /// [`TaskCell::cancel`].
    pub(crate) fn cancel(&self) -> bool {
        cancel(self.core(), self.job())
    }

    /// Cancels the task if it has not started, or asks its job to stop it if it is running.
    pub(crate) fn interrupt(&self) -> bool {
        self.cancel() || (self.core().phase() == Phase::Running && self.job().interrupt())
    }

    pub(crate) fn downgrade(&self) -> WeakTaskRef<T> {
        // SAFETY: `self` is a strong reference.
        unsafe { counts::inc_weak(self.ptr) };
        WeakTaskRef {
            ptr: self.ptr,
            output: PhantomData,
        }
    }
}

impl<T> Drop for TaskRef<T> {
    fn drop(&mut self) {
        // SAFETY: a strong reference, given up once.
        #[allow(unsafe_code)]
        unsafe {
            counts::dec_strong(self.ptr)
        }
    }
}

/// A weak reference to a task whose output is a `T`: a [`TaskHandle`](super::TaskHandle)'s, which must
/// not keep a finished task's value alive.
pub(crate) struct WeakTaskRef<T> {
    ptr: NonNull<Header>,
    output: PhantomData<*const Core<T>>,
}

// SAFETY: as `TaskRef`, which is all it can become.
#[allow(unsafe_code)]
unsafe impl<T> Send for WeakTaskRef<T> where Core<T>: Send + Sync {}
// SAFETY: as `TaskRef`.
#[allow(unsafe_code)]
unsafe impl<T> Sync for WeakTaskRef<T> where Core<T>: Send + Sync {}

impl<T> WeakTaskRef<T> {
    /// A strong reference, if the task's core is still there.
    pub(crate) fn upgrade(&self) -> Option<TaskRef<T>> {
        // SAFETY: `self` is a weak reference.
        #[allow(unsafe_code)]
        let alive = unsafe { counts::try_inc_strong(self.ptr) };
        alive.then(|| TaskRef {
            ptr: self.ptr,
            output: PhantomData,
        })
    }
}

impl<T> Drop for WeakTaskRef<T> {
    fn drop(&mut self) {
        // SAFETY: a weak reference, given up once.
        #[allow(unsafe_code)]
        unsafe {
            counts::dec_weak(self.ptr)
        }
    }
}

/// A strong reference to a task a thread pool runs, whatever its output and work: what the pool's
/// queue holds. Made only by [`RunnableCellRef::runnable`], from a cell whose vtable has the
/// `Runnable` view.
pub(crate) struct RunnableRef {
    ptr: NonNull<Header>,
}

// SAFETY: made only from a cell that is `Runnable`, hence `Send + Sync` (its supertraits): shared and
// dropped on any thread as `Arc<dyn Runnable>` is.
#[allow(unsafe_code)]
unsafe impl Send for RunnableRef {}
// SAFETY: as for `Send`.
#[allow(unsafe_code)]
unsafe impl Sync for RunnableRef {}

impl RunnableRef {
    /// Whether `self` and `other` are the same task.
    pub(crate) fn is(&self, other: &RunnableRef) -> bool {
        self.ptr == other.ptr
    }

    pub(crate) fn downgrade(&self) -> WeakRunnableRef {
        // SAFETY: `self` is a strong reference.
        #[allow(unsafe_code)]
        unsafe {
            counts::inc_weak(self.ptr)
        };
        WeakRunnableRef { ptr: self.ptr }
    }
}

impl Deref for RunnableRef {
    type Target = dyn Runnable;

    fn deref(&self) -> &(dyn Runnable + 'static) {
        // SAFETY: a strong reference keeps the cell alive for as long as `self` is borrowed.
        #[allow(unsafe_code)]
        let view = unsafe { counts::header(self.ptr) }.vtable.runnable;
        match view {
            // SAFETY: as above; the entry was made for this cell's type.
            #[allow(unsafe_code)]
            Some(view) => unsafe { &*view(self.ptr) },
            None => unreachable!("a RunnableRef is made only from a runnable cell"),
        }
    }
}

impl Clone for RunnableRef {
    fn clone(&self) -> Self {
        // SAFETY: `self` is a strong reference.
        #[allow(unsafe_code)]
        unsafe {
            counts::inc_strong(self.ptr)
        };
        RunnableRef { ptr: self.ptr }
    }
}

impl Drop for RunnableRef {
    fn drop(&mut self) {
        // SAFETY: a strong reference, given up once.
        #[allow(unsafe_code)]
        unsafe {
            counts::dec_strong(self.ptr)
        }
    }
}

/// A weak reference to a task a thread pool runs: a scope's list of its tasks that may be queued.
pub(crate) struct WeakRunnableRef {
    ptr: NonNull<Header>,
}

// SAFETY: as `RunnableRef`, which is all it can become.
#[allow(unsafe_code)]
unsafe impl Send for WeakRunnableRef {}
// SAFETY: as `RunnableRef`.
#[allow(unsafe_code)]
unsafe impl Sync for WeakRunnableRef {}

#[allow(unsafe_code)] // a weak reference's count: see the SAFETY comments
impl WeakRunnableRef {
    pub(crate) fn upgrade(&self) -> Option<RunnableRef> {
        // SAFETY: `self` is a weak reference.
        let alive = unsafe { counts::try_inc_strong(self.ptr) };
        alive.then(|| RunnableRef { ptr: self.ptr })
    }

    /// Whether the task is still held by a strong reference (the queue, a worker, its future).
    pub(crate) fn is_alive(&self) -> bool {
        // SAFETY: `self` is a weak reference.
        unsafe { counts::is_alive(self.ptr) }
    }
}

impl Clone for WeakRunnableRef {
    fn clone(&self) -> Self {
        // SAFETY: `self` is a weak reference.
        #[allow(unsafe_code)]
        unsafe {
            counts::inc_weak(self.ptr)
        };
        WeakRunnableRef { ptr: self.ptr }
    }
}

impl Drop for WeakRunnableRef {
    fn drop(&mut self) {
        // SAFETY: a weak reference, given up once.
        #[allow(unsafe_code)]
        unsafe {
            counts::dec_weak(self.ptr)
        }
    }
}

/// A task whose job counts its drops, for the loom models of the counts (tests/loom.rs).
#[cfg(loom)]
#[doc(hidden)]
pub struct LoomTask(TaskRef<u64>);

/// A weak reference to a [`LoomTask`].
#[cfg(loom)]
#[doc(hidden)]
pub struct LoomWeakTask(WeakTaskRef<u64>);

#[cfg(loom)]
impl std::fmt::Debug for LoomTask {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("LoomTask")
    }
}

#[cfg(loom)]
impl std::fmt::Debug for LoomWeakTask {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("LoomWeakTask")
    }
}

#[cfg(loom)]
struct CountDrops(std::sync::Arc<crate::sync::atomic::AtomicUsize>);

#[cfg(loom)]
#[allow(unsafe_code)] // an empty `Job::discard`
impl Job for CountDrops {
    unsafe fn discard(&self, _slot: *mut u8) {}
}

#[cfg(loom)]
impl Drop for CountDrops {
    fn drop(&mut self) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

#[cfg(loom)]
impl LoomTask {
    /// A task with one strong reference (this one), whose job adds one to `drops` when dropped.
    pub fn new(drops: std::sync::Arc<crate::sync::atomic::AtomicUsize>) -> Self {
        LoomTask(CellRef::new(Core::new(), CountDrops(drops)).typed())
    }

    /// A weak reference to the task.
    pub fn downgrade(&self) -> LoomWeakTask {
        LoomWeakTask(self.0.downgrade())
    }

    /// Reads the task's state (through its lock): the core must still be there.
    pub fn is_pending(&self) -> bool {
        self.0.core().phase() == Phase::Pending
    }
}

#[cfg(loom)]
impl Clone for LoomTask {
    fn clone(&self) -> Self {
        // The typed pointer has no `Clone` of its own (a future is not cloneable): a strong
        // reference from a weak one that is known to succeed.
        LoomTask(
            self.0
                .downgrade()
                .upgrade()
                .expect("a strong reference exists"),
        )
    }
}

#[cfg(loom)]
impl LoomWeakTask {
    /// A strong reference, if the task's job is still there.
    pub fn upgrade(&self) -> Option<LoomTask> {
        self.0.upgrade().map(LoomTask)
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    use super::{Attend, CellRef, Core, Job};

    struct CountDrops(Arc<AtomicUsize>);

    #[allow(unsafe_code)] // an empty `Job::discard`
    impl Job for CountDrops {
        unsafe fn discard(&self, _slot: *mut u8) {}
    }

    impl Drop for CountDrops {
        fn drop(&mut self) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    /// A job aligned beyond the header and the core: the core must not move for it. (Its field is
    /// there for its drop.)
    #[repr(align(64))]
    struct OverAligned(#[allow(dead_code)] CountDrops);

    #[allow(unsafe_code)] // an empty `Job::discard`
    impl Job for OverAligned {
        unsafe fn discard(&self, _slot: *mut u8) {}
    }

    /// Counts the times its future is attended to.
    struct CountAttends(Arc<AtomicUsize>);

    #[allow(unsafe_code)] // an empty `Job::discard`
    impl Job for CountAttends {
        unsafe fn discard(&self, _slot: *mut u8) {}
    }

    impl Attend for CountAttends {
        fn attend(&self) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    /// A future's attend reaches the job of a cell built to be attended, each time, through the
    /// pointer typed by the output alone; a cell built plainly has no attend entry to call.
    #[test]
    fn attend_reaches_the_job_of_an_attended_cell_only() {
        let attends = Arc::new(AtomicUsize::new(0));
        let attended = CellRef::new_attended(Core::<u8>::new(), CountAttends(attends.clone()));
        let future = attended.typed();
        future.attend();
        future.attend();
        assert_eq!(attends.load(Ordering::SeqCst), 2);

        let drops = Arc::new(AtomicUsize::new(0));
        let plain = CellRef::new(Core::<u8>::new(), CountDrops(drops));
        assert!(attended.header.vtable.attend.is_some());
        assert!(plain.header.vtable.attend.is_none());
        plain.typed().attend();
    }

    /// The last strong reference drops the job, once; a weak reference upgrades until then and never
    /// after; the memory goes with the last reference of either kind (checked under valgrind).
    #[test]
    fn the_last_strong_reference_drops_the_job_and_weak_ones_cannot_revive_it() {
        let drops = Arc::new(AtomicUsize::new(0));
        let cell = CellRef::new(Core::<String>::new(), CountDrops(drops.clone()));
        let typed = cell.typed();
        let weak = typed.downgrade();
        let second_weak = typed.downgrade();
        drop(cell);
        let upgraded = weak.upgrade().expect("a strong reference is left");
        drop(typed);
        assert_eq!(drops.load(Ordering::SeqCst), 0);
        drop(upgraded);
        assert_eq!(drops.load(Ordering::SeqCst), 1);
        assert!(weak.upgrade().is_none() && second_weak.upgrade().is_none());
        drop((weak, second_weak));
        assert_eq!(drops.load(Ordering::SeqCst), 1);
    }

    /// A value whose `Drop` panics: the user's code, run by whichever reference goes last.
    struct Bomb;

    impl Drop for Bomb {
        fn drop(&mut self) {
            if !std::thread::panicking() {
                panic!("a Bomb was dropped");
            }
        }
    }

    /// The last reference drops a published value whose `Drop` panics: the panic reaches the caller,
    /// but the job is dropped all the same and the memory freed (checked under valgrind), whether a
    /// weak reference is left or not.
    #[test]
    fn a_panicking_value_still_lets_the_job_go_and_the_memory_free() {
        for keep_weak in [false, true] {
            let drops = Arc::new(AtomicUsize::new(0));
            let cell = CellRef::new(Core::<Bomb>::new(), CountDrops(drops.clone()));
            cell.core.complete(Ok(Bomb)).unwrap();
            let weak = keep_weak.then(|| cell.typed().downgrade());
            let unwound = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| drop(cell)));
            assert!(
                unwound.is_err(),
                "the value's panic reaches the last reference's owner"
            );
            assert_eq!(drops.load(Ordering::SeqCst), 1, "the job is dropped");
            assert!(weak.is_none_or(|w| w.upgrade().is_none()));
        }
    }

    /// A future's pointer reaches the core where the cell has it, whatever the job's alignment; and
    /// the published outcome, a `String` here, is dropped with the core.
    #[test]
    fn the_core_is_found_at_the_same_offset_for_any_job() {
        let drops = Arc::new(AtomicUsize::new(0));
        let cell = CellRef::new(
            Core::<String>::new(),
            OverAligned(CountDrops(drops.clone())),
        );
        let typed = cell.typed();
        assert!(std::ptr::eq(typed.core(), &cell.core));
        assert_eq!(typed.core().id(), cell.core.id());
        cell.core.complete(Ok("published".to_owned())).unwrap();
        drop((cell, typed));
        assert_eq!(drops.load(Ordering::SeqCst), 1);
    }
}
