//! A process-pool task: the encoded `RUN` frame and its future's state in one allocation, plus what the
//! driver needs to finish it (the reply decoder) and what `interrupt` needs (the worker running it).

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::sync::Arc;
use std::time::Duration;

use super::lineage::{Birth, Lineage};
use super::proc::{KillReason, Proc};
use super::shared::Counters;
use super::wire::Body;
use crate::error::{panic_message, Error};
use crate::future::state::Core;
use crate::future::{Attend, CellRef, FutureId, Job, PoolFuture};
use crate::sync::{lock, Mutex};

/// Turns a reply body into the future's outcome; the `usize` is the number of inputs (map chunks).
pub(crate) type Decode<T> = fn(Body<'_>, usize) -> Result<T, Error>;

/// The pool's view of a queued or running task.
pub(crate) trait ProcTask: Send + Sync {
    fn id(&self) -> FutureId;
    /// PENDING → RUNNING (= dispatched to a worker). `false` if it was cancelled. A task handed
    /// back by [`redeliver`](Self::redeliver) is RUNNING already: its next start is `true`, unless
    /// it was interrupted meanwhile: then it ends with [`Error::Interrupted`] and the start is `false`.
    fn start(&self) -> bool;
    /// A task whose frame no worker got (its worker died idle before reading a byte): it stays
    /// RUNNING (it was reported so, and a cancel was refused), gets its frame back, and waits in the
    /// queue for the next worker.
    fn redeliver(&self, frame: Vec<u8>);
    /// Whether the task waits to be redelivered: queued, but RUNNING, so no cancel can end it.
    fn awaits_redelivery(&self) -> bool;
    /// The frame to write, once.
    fn take_frame(&self) -> Option<Vec<u8>>;
    /// Records the worker that runs it (or forgets it), so `interrupt` can kill exactly that worker.
    fn bind(&self, proc: Option<&Arc<Proc>>);
    /// Whether its future was attended to otherwise than by a blocking `result` ([`Attend::attend`]):
    /// then the driver must read its reply, and listens for it from the dispatch on.
    fn attended(&self) -> bool;
    fn time_limit(&self) -> Option<Duration>;
    /// Completes the future from the worker's reply, counting the outcome first (so a caller that
    /// saw the future end sees it counted).
    fn finish(&self, body: Body<'_>, counters: &Counters);
    /// Completes the future with an error, unless it already ended.
    fn fail(&self, error: Error);
    /// Cancels it if it has not been dispatched.
    fn cancel(&self) -> bool;
    /// Whether a cancel has decided, while the task was queued, that it will never run: it waits for
    /// no worker, and one that takes it off the queue skips it.
    fn cancelled(&self) -> bool;
}

pub(crate) struct ProcJob<T> {
    id: FutureId,
    frame: Mutex<Option<Vec<u8>>>,
    items: usize,
    decode: Decode<T>,
    limit: Option<Duration>,
    on: Mutex<Option<Arc<Proc>>>,
    /// Whether the task waits to be dispatched again ([`Redelivery`]).
    redelivery: AtomicU8,
    /// [`ProcTask::attended`]: set once, before `on` is read, so that a dispatch binding the task
    /// (which writes `on`, then reads this) either sees it or is seen by the reader of `on`.
    attended: AtomicBool,
    /// When the task was made. In a copy of the process made by `fork` without exec, the future is a
    /// copy whose task runs for the owner: its worker, reply and the driver's wait set are the
    /// owner's, so the copy's future neither reads the reply, nor moves the socket, nor kills the
    /// worker (see [`Lineage`]).
    birth: Birth,
}

/// Where a task handed back by [`ProcTask::redeliver`] is: RUNNING, queued, bound to no worker, so
/// neither a cancel nor a kill can stop it; an interrupt is recorded here and honoured at its next
/// dispatch.
#[derive(Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
enum Redelivery {
    /// Not handed back (or dispatched again since).
    None = 0,
    /// Waiting in the queue for the next worker, which runs it.
    Awaiting = 1,
    /// Interrupted while waiting: its next dispatch ends it with [`Error::Interrupted`] instead.
    Interrupted = 2,
}

impl<T> ProcJob<T> {
    /// Drops the frame of a task that will never be sent.
    fn drop_frame(&self) {
        *lock(&self.frame) = None;
    }

    /// The gate of every entry point of the future that reaches the worker: whether this is the
    /// future its owner made, or a copy of it in a process forked without exec.
    fn lineage(&self) -> Lineage {
        self.birth.lineage()
    }
}

#[allow(unsafe_code)] // `Job::discard` is unsafe to call, not to implement here (the frame is locked)
impl<T: Send + 'static> Job for ProcJob<T> {
    unsafe fn discard(&self, _slot: *mut u8) {
        self.drop_frame();
        // After the future left PENDING: a submit that reads the count then finds the task cancelled.
        crate::pool::count_discarded();
    }

    /// A running task is stopped by killing its worker (the pool starts a new one); the future ends
    /// with [`Error::Interrupted`].
    fn interrupt(&self) -> bool {
        if self.lineage() == Lineage::ForkedCopy {
            return false;
        }
        let awaiting = self.redelivery.compare_exchange(
            Redelivery::Awaiting as u8,
            Redelivery::Interrupted as u8,
            Ordering::AcqRel,
            Ordering::Acquire,
        );
        if awaiting.is_ok() {
            return true;
        }
        let on = lock(&self.on).clone();
        on.is_some_and(|p| p.kill_running(self.id, KillReason::Interrupt))
    }

    /// The caller reads the reply of the worker running this task itself, if it can (see
    /// [`Proc::help`]). Being bound to a worker is not enough to wait for its reply: the binding is
    /// made just before the task starts, and undone if a cancel wins, so `help` also asks `started`.
    fn help_until(&self, deadline: Option<std::time::Instant>, started: &dyn Fn() -> bool) {
        if self.lineage() == Lineage::ForkedCopy {
            return;
        }
        let on = lock(&self.on).clone();
        if let Some(proc) = on {
            proc.help(self.id, deadline, started);
        }
    }
}

impl<T: Send + 'static> Attend for ProcJob<T> {
    /// Something other than a blocking `result` waits for this task's end: its worker's driver
    /// listens for the reply from now on (at the dispatch, if the task is queued).
    fn attend(&self) {
        if self.attended.load(Ordering::Acquire)
            || self.lineage() == Lineage::ForkedCopy
            || self.attended.swap(true, Ordering::SeqCst)
        {
            return;
        }
        let on = lock(&self.on).clone();
        if let Some(proc) = on {
            proc.attend();
        }
    }
}

/// Builds a task from its frame; the pair is the queue's handle and the caller's future.
pub(crate) fn new_task<T: Send + 'static>(
    frame: Vec<u8>,
    items: usize,
    decode: Decode<T>,
    limit: Option<Duration>,
) -> (Arc<dyn ProcTask>, PoolFuture<T>) {
    let core = Core::new();
    let job = ProcJob {
        id: core.id(),
        frame: Mutex::new(Some(frame)),
        items,
        decode,
        limit,
        on: Mutex::new(None),
        redelivery: AtomicU8::new(Redelivery::None as u8),
        attended: AtomicBool::new(false),
        birth: Birth::now(),
    };
    // The queue keeps `Arc<dyn ProcTask>` (the tracing feature wraps it): a second, small allocation
    // around the task's, which a process-pool task, with its frame, hardly notices.
    let cell = CellRef::new_attended(core, job);
    let fut = PoolFuture::from_task(cell.typed());
    (Arc::new(cell), fut)
}

/// A future that has already ended (an argument that does not serialize): the pool never sees it.
pub(crate) fn completed<T: Send + 'static>(outcome: Result<T, Error>) -> PoolFuture<T> {
    let (promise, fut) = crate::future::Promise::new();
    let _ = promise.complete(outcome);
    fut
}

impl<T: Send + 'static> ProcTask for CellRef<T, ProcJob<T>> {
    fn id(&self) -> FutureId {
        self.job.id
    }

    fn start(&self) -> bool {
        let was = self
            .job
            .redelivery
            .swap(Redelivery::None as u8, Ordering::AcqRel);
        match was {
            x if x == Redelivery::Awaiting as u8 => true,
            x if x == Redelivery::Interrupted as u8 => {
                self.fail(Error::Interrupted);
                false
            }
            _ => self.core.start(),
        }
    }

    fn redeliver(&self, frame: Vec<u8>) {
        *lock(&self.job.frame) = Some(frame);
        self.job
            .redelivery
            .store(Redelivery::Awaiting as u8, Ordering::Release);
    }

    fn awaits_redelivery(&self) -> bool {
        self.job.redelivery.load(Ordering::Acquire) != Redelivery::None as u8
    }

    fn take_frame(&self) -> Option<Vec<u8>> {
        lock(&self.job.frame).take()
    }

    fn bind(&self, proc: Option<&Arc<Proc>>) {
        *lock(&self.job.on) = proc.cloned();
    }

    fn attended(&self) -> bool {
        self.job.attended.load(Ordering::SeqCst)
    }

    fn time_limit(&self) -> Option<Duration> {
        self.job.limit
    }

    fn finish(&self, body: Body<'_>, counters: &Counters) {
        *lock(&self.job.on) = None;
        // A `Deserialize` impl that panics (CPython D12) fails this future; the driver lives on.
        let outcome = catch_unwind(AssertUnwindSafe(|| (self.job.decode)(body, self.job.items)))
            .unwrap_or_else(|p| {
                Err(Error::Panicked(
                    format!("deserializing the result panicked: {}", panic_message(&*p)).into(),
                ))
            });
        match &outcome {
            Err(Error::Failed(_)) => Counters::add(&counters.failed, 1),
            Err(Error::Panicked(_)) => Counters::add(&counters.panicked, 1),
            _ => {}
        }
        Counters::add(&counters.completed, 1);
        let _ = self.core.complete(outcome);
    }

    fn fail(&self, error: Error) {
        *lock(&self.job.on) = None;
        self.job.drop_frame();
        let _ = self.core.complete(Err(error));
    }

    fn cancel(&self) -> bool {
        (**self).cancel()
    }

    fn cancelled(&self) -> bool {
        // Queued, a task leaves PENDING only by a cancel, except one handed back for redelivery,
        // which is RUNNING and waits for the next worker.
        !self.awaits_redelivery() && self.core.left_pending()
    }
}
