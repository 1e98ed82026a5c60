//! The state a process pool's handle and its driver threads share: the queue, each driver's slot, the
//! lifecycle. One mutex guards it; it is never held while user code (callbacks) runs or while blocking
//! on a worker.
//!
//! Each driver owns one slot, whose [`Phase`] says what its worker is doing. A worker runs one task at a
//! time, so "which worker holds which task" is exact: the task lives in its worker's `Busy` phase.
//!
//! Dispatch: a submit that finds an idle worker claims it (`Idle → Busy`) under the lock, writes what
//! the socket takes without blocking (a small frame, whole) and hands the rest to that worker's
//! driver, which writes it from its own thread (so a large argument never blocks the submitting
//! thread, which may be an async runtime's); otherwise the task waits in the queue and a driver takes
//! it when its worker replies. Whoever claims a worker is the only writer of that frame, and the
//! driver writes a handed-over rest only after the claimer is done, so frames never interleave.
//!
//! An idle worker's death is learned from its driver (which watches the worker's exit: `proc::ExitWatch`), not asked
//! of the kernel at each submit. The driver's word lags the death by its wake-up, so the submit
//! writes holding the worker's turn, which the driver needs to read the death and lets go of only
//! after marking it.
//!
//! A task is never failed by the death of a worker that got none of it. Whoever writes a task's
//! frame (a submit to an idle worker, a driver handing its worker the next queued task after a reply
//! or after the handshake, a caller that read the reply in the driver's place) learns from the write
//! whether the worker's end was already closed before its first byte ([`Sent::Refused`]). Then the
//! task is handed back ([`Shared::redeliver`]), RUNNING still (see [`ProcTask::redeliver`]), and
//! dispatched again as a submit would be: to an idle worker at once, else ahead of the queue, for
//! whichever driver looks first. The death is settled as an idle worker's, under the policy:
//! - [`WorkerDeath::Respawn`](super::WorkerDeath::Respawn): it fails nothing; the task runs on
//!   another worker (the dead one's replacement if no other frees up first).
//! - [`WorkerDeath::BreakPool`](super::WorkerDeath::BreakPool): the pool breaks, and the task, if no
//!   other worker finished it first, fails with [`Error::BrokenProcessPool`] as every pending task
//!   does (CPython's behaviour), never with a death of its own.
//!
//! A task the pool itself stopped meanwhile ends as the stop says: the pool broke or was stopped by
//! force (`terminate_workers`/`kill_workers`), or the worker was killed for this very task (its
//! interrupt, its time limit).
//!
//! With a `queue_capacity`, the queue (tasks no worker has claimed) holds at most that many tasks: a
//! sync submit waits on `room`, an async one on `room_async`, `try_submit` is refused.

use std::collections::VecDeque;
use std::io;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::Waker;
use std::thread::JoinHandle;

use super::lineage::{Birth, Lineage};
use super::proc::{KillReason, Proc, Sent};
use super::task::ProcTask;
use super::timer::Timer;
use super::wire::KEEP_BUFFER;
use super::Config;
use crate::error::{BrokenCause, BrokenProcessPool, BrokenSeenBy, Error};
pub(crate) use crate::pool::WhenFull;
use crate::pool::{Backend, Exits, InCallback, Metrics, Queued, Room, Sweep};
use crate::sync::{lock, Condvar, Mutex, MutexGuard};

/// Why a task was not queued; a task refused for want of room comes back, so an async submit can
/// retry with it.
pub(crate) type Rejected = crate::pool::Rejected<Arc<dyn ProcTask>>;

/// The counters of [`Metrics`] that change outside the lock.
#[derive(Default)]
pub(crate) struct Counters {
    pub(crate) completed: AtomicU64,
    pub(crate) failed: AtomicU64,
    pub(crate) panicked: AtomicU64,
    pub(crate) cancelled: AtomicU64,
}

impl Counters {
    pub(crate) fn add(counter: &AtomicU64, n: u64) {
        if n > 0 {
            counter.fetch_add(n, Ordering::Relaxed);
        }
    }
}

/// Where the pool is in its life; a broken pool keeps why it broke, for the futures it fails.
pub(crate) type Lifecycle = crate::pool::Lifecycle<BrokenProcessPool>;

/// What one driver's worker is doing.
pub(crate) enum Phase {
    /// Spawning the process and shaking hands (or about to respawn).
    Starting,
    /// Waiting for work; listed in `PoolState::idle`.
    Idle,
    /// Running this task (it was written to the worker).
    Busy(Arc<dyn ProcTask>),
    /// Told to exit, or being killed: gets no more work; the driver waits for its end-of-file.
    Retiring,
    /// The driver thread has left.
    Gone,
}

/// How the pool's workers are being stopped, which decides what becomes of a task handed back for
/// redelivery ([`Shared::redeliver`]) once the pool is closed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Stop {
    /// Open, or closed by `shutdown()`: a task handed back still runs, on the worker started in its
    /// dead worker's place.
    Gracefully,
    /// `terminate_workers()` / `kill_workers()`: a task handed back fails as the killed workers'
    /// running tasks do, and no worker is started for it.
    ByForce,
}

pub(crate) struct Slot {
    pub(crate) phase: Phase,
    pub(crate) proc: Option<Arc<Proc>>,
}

pub(crate) struct PoolState {
    pub(crate) lifecycle: Lifecycle,
    pub(crate) queue: VecDeque<Arc<dyn ProcTask>>,
    pub(crate) slots: Vec<Slot>,
    pub(crate) idle: Vec<usize>,
    /// Live driver threads (each serves at most one worker process at a time).
    pub(crate) drivers: usize,
    /// Drivers whose thread is inside `shutdown()` (called from a done callback): they cannot exit
    /// until it returns, so shutdowns wait only for the drivers not counted here.
    pub(crate) drivers_in_shutdown: usize,
    /// Drivers in `Starting`: they will take queued work once their worker is up.
    pub(crate) starting: usize,
    pub(crate) handles: Vec<JoinHandle<()>>,
    /// Async shutdowns waiting for the last driver to leave.
    pub(crate) exit_wakers: Vec<Waker>,
    /// Worker processes started so far.
    pub(crate) spawned: u64,
    /// Threads blocked in a sync submit, waiting for room in a bounded queue.
    pub(crate) blocked_submitters: usize,
    /// When a full queue was last searched for cancelled tasks.
    pub(crate) sweep: Sweep,
    /// Worker processes that ended while the pool was open (deaths, kills, recycling).
    pub(crate) ended: u64,
    /// Worker processes started to replace one of those (never more than `ended`).
    pub(crate) respawned: u64,
    pub(crate) stop: Stop,
}

pub(crate) struct Shared {
    pub(crate) state: Mutex<PoolState>,
    /// Sync shutdowns wait here for the last driver to leave.
    pub(crate) exited: Condvar,
    /// Submitters wait here for room in a bounded queue.
    pub(crate) room: Room,
    pub(crate) counters: Counters,
    /// The buffer of the last frame written to a worker, for the next submit to encode into (see
    /// [`Shared::recycle_frame`]).
    spare_frame: Mutex<Vec<u8>>,
    pub(crate) timer: Arc<Timer>,
    pub(crate) config: Config,
    /// The pid of the process that made the pool, for the refusal in a forked copy of it.
    owner_pid: u32,
    /// When the pool was made, to tell a forked copy of its owner ([`Shared::lineage`]).
    birth: Birth,
}

/// Whether [`Shared::hand_to_idle`] found a worker for a task.
enum Handed<'a> {
    /// An idle worker took it (or a cancel ended it before it was written).
    Yes,
    /// No worker is idle: the lock, still held, and the task.
    NoIdle(MutexGuard<'a, PoolState>, Arc<dyn ProcTask>),
}

/// A frame to write to a worker, outside the lock.
pub(crate) struct Dispatch {
    pub(crate) proc: Arc<Proc>,
    pub(crate) frame: Vec<u8>,
}

/// Writes `frame` whole to `proc`, blocking, on the worker's driver thread (its writer: what the
/// socket does not take at once is written here, not posted). Says what became of it, as
/// [`Proc::send_or_post`] does; [`Sent::Posted`] only when a caller took the rest to write it.
pub(crate) fn send_whole(proc: &Proc, frame: Vec<u8>) -> Sent {
    match proc.send_or_post(frame) {
        // Taken back at once. Only a caller holding the worker's turn can take it first (the
        // driver holds the turn here except at the first dispatch after the handshake); that
        // caller then writes the rest itself.
        Sent::Posted => match proc.take_post() {
            Some((frame, from)) => Sent::Whole(send_frame(proc, frame, from)),
            None => Sent::Posted,
        },
        sent => sent,
    }
}

/// Writes `frame[from..]` to `proc`, blocking until it is written or the worker exited; returns the
/// buffer. A worker that died meanwhile is its driver's to handle (it sees the exit and fails the
/// task); any other failure leaves the stream in an unknown state, so the worker is killed.
pub(crate) fn send_frame(proc: &Proc, frame: Vec<u8>, from: usize) -> Vec<u8> {
    if let Err(e) = proc.send(&frame[from..]) {
        match e.kind() {
            io::ErrorKind::BrokenPipe | io::ErrorKind::ConnectionReset => {}
            _ => {
                proc.kill(
                    KillReason::Protocol(format!("writing a task failed: {e}")),
                    libc::SIGKILL,
                );
            }
        }
    }
    frame
}

/// Failing futures and stopping workers, done by the caller once the lock is released.
#[derive(Default)]
pub(crate) struct Aftermath {
    pub(crate) fail: Vec<(Arc<dyn ProcTask>, Error)>,
    pub(crate) cancel: Vec<Arc<dyn ProcTask>>,
    pub(crate) kill: Vec<(Arc<Proc>, KillReason, i32)>,
    pub(crate) close: Vec<Arc<Proc>>,
    pub(crate) wake: Vec<Waker>,
}

impl Aftermath {
    /// Does it all; returns how many tasks this cancelled (for [`Metrics::cancelled`]).
    pub(crate) fn run(self) -> u64 {
        for (p, why, sig) in self.kill {
            p.kill(why, sig);
        }
        for p in self.close {
            p.close_write();
        }
        let mut cancelled = 0;
        for t in self.cancel {
            if t.cancel() {
                cancelled += 1;
            }
        }
        for (t, e) in self.fail {
            t.fail(e);
        }
        for w in self.wake {
            crate::panic::wake(w);
        }
        cancelled
    }
}

impl Shared {
    pub(crate) fn new(config: Config) -> Arc<Self> {
        Arc::new(Shared {
            state: Mutex::new(PoolState {
                lifecycle: Lifecycle::Open,
                queue: VecDeque::new(),
                slots: Vec::new(),
                idle: Vec::new(),
                drivers: 0,
                drivers_in_shutdown: 0,
                starting: 0,
                handles: Vec::new(),
                exit_wakers: Vec::new(),
                spawned: 0,
                blocked_submitters: 0,
                sweep: Sweep::default(),
                ended: 0,
                respawned: 0,
                stop: Stop::Gracefully,
            }),
            exited: Condvar::new(),
            room: Room::new(config.sizes.capacity),
            counters: Counters::default(),
            spare_frame: Mutex::new(Vec::new()),
            timer: Arc::default(),
            config,
            owner_pid: std::process::id(),
            birth: Birth::first_in_process(),
        })
    }

    /// The gate of every entry point that reaches the workers, the pool's lock or its drivers:
    /// whether this process made the pool, or is a copy of it made by `fork` without exec, which
    /// neither submits nor shuts anything down, and asks before it takes the pool's lock (which a
    /// driver may have held at the fork). See [`Lineage`].
    pub(crate) fn lineage(&self) -> Lineage {
        self.birth.lineage()
    }

    /// The refusal of a submit in a copy of the owner made by `fork` (see [`Shared::lineage`]).
    pub(crate) fn fork_refusal(&self) -> Error {
        Error::ProcessSetup(format!(
            "this process (pid {}) is a fork, without exec, of the process that made the process \
             pool (pid {}): the pool's workers serve that process only; make a new pool here",
            std::process::id(),
            self.owner_pid
        ))
    }

    /// The pool's lock. An entry point reached from the user's code asks
    /// [`lineage`](Self::lineage) first: in a forked copy of the owner, a driver may have held it at
    /// the fork, and then it is never released there.
    pub(crate) fn lock(&self) -> MutexGuard<'_, PoolState> {
        lock(&self.state)
    }

    /// A buffer to encode the next frame into: the spare one, or an empty `Vec`.
    pub(crate) fn take_spare_frame(&self) -> Vec<u8> {
        std::mem::take(&mut *lock(&self.spare_frame))
    }

    /// Keeps a written frame's buffer for the next submit (the larger of it and the spare one, up to
    /// [`KEEP_BUFFER`]). A fresh frame per submit would mean, for a 1 MiB argument, a fresh
    /// 1 MiB allocation per task, which glibc serves by growing the heap and trims again after the
    /// frame and the argument are freed: ~256 page faults per task, more than the copies cost.
    pub(crate) fn recycle_frame(&self, frame: Vec<u8>) {
        if frame.capacity() > KEEP_BUFFER {
            return;
        }
        let mut spare = lock(&self.spare_frame);
        if frame.capacity() > spare.capacity() {
            *spare = frame;
        }
    }

    /// The error a submit gets from a pool that takes no more work.
    pub(crate) fn refusal(lifecycle: &Lifecycle) -> Option<Error> {
        lifecycle.refusal(|b| Error::BrokenProcessPool(b.seen_by(BrokenSeenBy::Submit)))
    }

    /// Queues a task: hands it straight to an idle worker if there is one (its driver writes the
    /// frame), otherwise queues it and starts a driver if none is idle or starting for it and the pool
    /// is below `max_workers`. A full bounded queue is handled as `when_full` says.
    pub(crate) fn enqueue(
        self: &Arc<Self>,
        mut task: Arc<dyn ProcTask>,
        when_full: WhenFull,
    ) -> Result<(), Rejected> {
        let mut st = self.lock();
        loop {
            if let Some(e) = Self::refusal(&st.lifecycle) {
                return Err(Rejected::Closed(e));
            }
            (st, task) = match self.hand_to_idle(st, task) {
                Handed::Yes => return Ok(()),
                Handed::NoIdle(st, task) => (st, task),
            };
            let full = self.room.is_full(st.queue.len());
            if !full || when_full == WhenFull::Overfill {
                break;
            }
            // Tasks cancelled while queued wait for no worker: they leave the queue now rather than
            // when a driver reaches them.
            let PoolState { sweep, queue, .. } = &mut *st;
            let gone = sweep.take_cancelled(queue, |t| t.cancelled());
            Counters::add(&self.counters.cancelled, gone as u64);
            if self.room.swept(gone, st.queue.len(), st.blocked_submitters) {
                break;
            }
            if when_full == WhenFull::Reject {
                return Err(Rejected::Full(task));
            }
            // A driver cannot wait for room, blocked or by waker: only drivers make it (a done
            // callback's submit runs on one), so its submit overfills the queue instead of
            // deadlocking the pool.
            if super::driver::is_driving(self) {
                break;
            }
            if when_full == WhenFull::Await {
                return Err(Rejected::Full(task));
            }
            st = self.room.wait(st, |st| &mut st.blocked_submitters);
        }
        st.queue.push_back(task);
        // The queued task waits for a worker's reply, whoever its caller is.
        Self::attend_busy(&st);
        if st.drivers < self.config.sizes.max_workers && st.queue.len() > st.starting {
            if let Err(e) = super::driver::spawn(self, &mut st) {
                if st.drivers == 0 {
                    let after = self.break_locked(
                        &mut st,
                        BrokenCause::StartFailed(format!("could not start a driver thread: {e}")),
                    );
                    drop(st);
                    after.run();
                }
                // Otherwise the live drivers will get to it.
            }
        }
        Ok(())
    }

    /// Hands `task` to an idle worker, if one is listed, and writes its frame (what the socket takes
    /// without blocking; the worker's driver writes the rest). A task the write finds refused goes
    /// back through [`Shared::redeliver`]. The lock is given back with the task if no worker is idle.
    fn hand_to_idle<'a>(
        &'a self,
        mut st: MutexGuard<'a, PoolState>,
        task: Arc<dyn ProcTask>,
    ) -> Handed<'a> {
        while let Some(slot) = st.idle.pop() {
            let proc = st.slots[slot]
                .proc
                .clone()
                .expect("an idle worker has a process");
            // An idle worker killed from outside must not be handed a task that would then
            // fail without having run (under the resilient policy, a fresh task would fail for
            // an idle worker's death). Its driver still handles the death: it breaks the pool
            // (default policy; a task queued meanwhile then fails with it, as in CPython) or
            // respawns for the queue.
            //
            // Holding the worker's turn, this thread asks its driver's word ([`Proc::known_gone`]:
            // no system call) and writes the task. The driver reads a death with the turn and
            // marks it before letting go ([`Proc::mark_ended`]), so a death it has not marked
            // shows in the write: the worker's end is closed, and the task goes back
            // ([`Shared::redeliver`]). A turn held elsewhere (a reply being handled, or the
            // driver reading the death) is rare: then the kernel is asked, as the driver's
            // word may lag the death.
            let turn = match proc.turn.try_lock() {
                Ok(turn) => Some(turn),
                Err(std::sync::TryLockError::Poisoned(e)) => Some(e.into_inner()),
                Err(std::sync::TryLockError::WouldBlock) => None,
            };
            let gone = match turn {
                Some(_) => proc.known_gone(),
                None => proc.is_gone(),
            };
            if gone {
                continue;
            }
            let dispatch = self.assign(&mut st, slot, task);
            drop(st);
            if let Some(Dispatch { proc, frame }) = dispatch {
                let sent = proc.send_or_post(frame);
                self.written(slot, &proc, sent);
            }
            drop(turn);
            return Handed::Yes;
        }
        Handed::NoIdle(st, task)
    }

    /// Settles what became of a frame written to the worker of `slot`: a buffer to keep, or a task
    /// to hand back because not a byte of it reached the worker ([`Sent::Refused`]).
    pub(crate) fn written(&self, slot: usize, proc: &Arc<Proc>, sent: Sent) {
        match sent {
            Sent::Whole(buf) | Sent::Lost(buf) => self.recycle_frame(buf),
            Sent::Posted => {}
            Sent::Refused(frame) => self.redeliver(slot, proc, frame),
        }
    }

    /// Hands back the task just written to the worker of `slot`, whose end of the socket turned out
    /// closed before the first byte: the worker died (or shut its channel) before it could read any
    /// of the task, whether a submit claimed it idle or its driver (or a caller reading a reply in
    /// its place) handed it the next queued task. The task never ran. Unless the pool stopped it, or
    /// the worker was killed for this very task, it is dispatched again as a submit would be, ahead
    /// of the queue ([`Shared::resubmit`]), RUNNING still ([`ProcTask::redeliver`]); the slot reads
    /// as an idle worker's death, which the driver settles as such (the default policy breaks the
    /// pool; the resilient one starts a new worker if work is queued).
    ///
    /// Whoever wrote may or may not hold the worker's turn; the death is settled under the pool lock
    /// either way, so the task is handed back here only if its driver has not failed it with the
    /// death already (its slot still holds it).
    fn redeliver(&self, slot: usize, proc: &Arc<Proc>, frame: Vec<u8>) {
        let mut st = self.lock();
        let same = st.slots[slot]
            .proc
            .as_ref()
            .is_some_and(|p| Arc::ptr_eq(p, proc));
        if !same || !matches!(st.slots[slot].phase, Phase::Busy(_)) {
            return; // settled already: the task failed with the death
        }
        let Phase::Busy(task) = std::mem::replace(&mut st.slots[slot].phase, Phase::Idle) else {
            unreachable!("checked above")
        };
        // Awaiting redelivery before the worker lets go of it: an interrupt from here on is
        // recorded on the task; one before it killed the worker, which the kill's reason says.
        task.redeliver(frame);
        proc.set_running(None);
        task.bind(None);
        if task.time_limit().is_some() {
            self.timer.disarm(task.id());
        }
        let failed = match (&st.lifecycle, st.stop, proc.kill_reason()) {
            // The queue was failed when the pool broke, or when its workers were killed; nothing
            // is to take the task from there.
            (Lifecycle::Broken(b), _, _) => Some(Error::BrokenProcessPool(b.clone())),
            (_, Stop::ByForce, _) => Some(forced_shutdown()),
            // Only a worker running a task is killed for it, and this one ran nothing else since
            // it was claimed: the kill was for this task, which ends as it asked, once. (A time
            // limit that expires before the task's first byte is written would otherwise expire
            // again at each redelivery, killing a worker each time.)
            (_, _, Some(KillReason::Interrupt)) => Some(Error::Interrupted),
            (_, _, Some(KillReason::TimeLimit(limit))) => Some(Error::TimeLimit(limit)),
            _ => None,
        };
        if let Some(e) = failed {
            drop(st);
            task.fail(e);
            return;
        }
        self.resubmit(st, task);
    }

    /// Dispatches a task handed back by [`Shared::redeliver`] to whichever worker can take it first:
    /// an idle one at once, else the first driver to look at the queue (a worker replying, one
    /// starting, or the dead worker's replacement), ahead of the tasks queued after it. The queue's
    /// bound does not apply: the task was admitted once already.
    fn resubmit(&self, st: MutexGuard<'_, PoolState>, task: Arc<dyn ProcTask>) {
        if let Handed::NoIdle(mut st, task) = self.hand_to_idle(st, task) {
            st.queue.push_front(task);
            Self::attend_busy(&st);
        }
    }

    /// Has every busy worker's driver read its next reply: the pool needs the worker back (a task
    /// is queued, the pool is shutting down, or its state is looked at), whether or not a caller
    /// waits for that reply.
    fn attend_busy(st: &PoolState) {
        for s in &st.slots {
            if let (Phase::Busy(_), Some(proc)) = (&s.phase, &s.proc) {
                proc.attend();
            }
        }
    }

    /// A task left the queue: let one waiting submitter in.
    pub(crate) fn made_room(&self, st: &PoolState) {
        self.room.made(st.blocked_submitters);
    }

    /// Gives `task` to the worker of `slot` (which must be ready: idle or just up). `None` if the task
    /// was cancelled meanwhile, in which case the slot is left as it was.
    pub(crate) fn assign(
        &self,
        st: &mut PoolState,
        slot: usize,
        task: Arc<dyn ProcTask>,
    ) -> Option<Dispatch> {
        let proc = st.slots[slot]
            .proc
            .clone()
            .expect("a ready worker has a process");
        // Bind the worker *before* the future turns RUNNING. `interrupt` reads the
        // binding without the pool lock as soon as it sees RUNNING; bound afterwards, it could find
        // none and report `false` for a running task (a caller spinning on `running()` then calling
        // `interrupt()` would miss). Nothing kills by this binding before `start`:
        // `interrupt` cancels a PENDING task instead, and the time limit is armed below.
        proc.set_running(Some(task.id()));
        task.bind(Some(&proc));
        if !task.start() {
            // Cancelled before dispatch: a ready worker stays ready.
            Counters::add(&self.counters.cancelled, 1);
            task.bind(None);
            proc.set_running(None);
            if matches!(st.slots[slot].phase, Phase::Idle) {
                st.idle.push(slot);
            }
            return None;
        }
        let Some(frame) = task.take_frame() else {
            // Unreachable: only a cancel discards the frame, and start() beat it. Fail, never strand.
            task.fail(Error::InvalidState("a dispatched task had no frame".into()));
            proc.set_running(None);
            if matches!(st.slots[slot].phase, Phase::Idle) {
                st.idle.push(slot);
            }
            return None;
        };
        if let Some(limit) = task.time_limit() {
            self.timer.arm(task.id(), &proc, limit);
        }
        // Who reads the reply, set before the task is written (a quick reply must not find the
        // driver listening for a caller that is about to read it). Asked after the binding above,
        // and with the worker's watch locked: a future attended to before is seen attended here,
        // one attended to after finds the worker bound and has it listen.
        let closing = !matches!(st.lifecycle, Lifecycle::Open);
        let queued = !st.queue.is_empty();
        proc.listen_for(|| task.attended() || queued || closing);
        st.slots[slot].phase = Phase::Busy(task);
        Some(Dispatch { proc, frame })
    }

    /// Breaks the pool (once): later submits are refused, queued futures fail, every worker is killed
    /// (their drivers fail the futures they were running). Returns the work to do outside the lock.
    pub(crate) fn break_locked(&self, st: &mut PoolState, cause: BrokenCause) -> Aftermath {
        let mut after = Aftermath::default();
        let broken = st
            .lifecycle
            .break_with(|| BrokenProcessPool::new(cause, BrokenSeenBy::Future))
            .clone();
        let err = Error::BrokenProcessPool(broken);
        after.fail = st.queue.drain(..).map(|t| (t, err.clone())).collect();
        self.room.closed();
        after.kill = st
            .slots
            .iter()
            .filter_map(|s| s.proc.clone())
            .map(|p| (p, KillReason::PoolBroken, libc::SIGKILL))
            .collect();
        after
    }

    /// Stops taking work. With `Queued::Cancel`, cancels the queued tasks. Idle workers are told to
    /// exit; busy ones exit when the queue is empty.
    pub(crate) fn shut_down(&self, queued: Queued) -> Aftermath {
        let mut st = self.lock();
        st.lifecycle.shut_down();
        let mut after = Aftermath::default();
        if queued == Queued::Cancel {
            // A task waiting to be redelivered is RUNNING: no cancel can end it, and it runs.
            let (running, pending): (VecDeque<_>, VecDeque<_>) =
                st.queue.drain(..).partition(|t| t.awaits_redelivery());
            st.queue = running;
            after.cancel = pending.into();
        }
        self.room.closed();
        Self::attend_busy(&st);
        // An idle worker means an empty queue (a task is only queued when no worker is idle).
        let idle = std::mem::take(&mut st.idle);
        for i in idle {
            st.slots[i].phase = Phase::Retiring;
            after.close.extend(st.slots[i].proc.clone());
        }
        // The last driver to leave closes the timer, but only once the pool is closed: if every
        // driver had already left (all workers recycled, or idle ones died under the resilient
        // policy), no one else will, and its thread would wait forever.
        if st.drivers == 0 {
            self.timer.close();
        }
        after
    }

    /// `terminate_workers` / `kill_workers`: close with cancel, then signal every live worker.
    pub(crate) fn force(&self, signal: i32) -> Aftermath {
        let mut after = self.shut_down(Queued::Cancel);
        let mut st = self.lock();
        st.stop = Stop::ByForce;
        // What is left queued is RUNNING, waiting to be redelivered: it fails as the running
        // tasks of the killed workers do (and so does one handed back later: `redeliver`).
        let forced = forced_shutdown();
        after.fail = st.queue.drain(..).map(|t| (t, forced.clone())).collect();
        after.kill = st
            .slots
            .iter()
            .filter_map(|s| s.proc.clone())
            .map(|p| (p, KillReason::Forced, signal))
            .collect();
        after
    }

    /// Live workers' pids.
    pub(crate) fn pids(&self) -> Vec<u32> {
        self.lock()
            .slots
            .iter()
            .filter_map(|s| s.proc.as_ref().map(|p| p.pid))
            .collect()
    }
}

/// What the running tasks of workers killed by `terminate_workers()` / `kill_workers()` fail with.
fn forced_shutdown() -> Error {
    Error::BrokenProcessPool(BrokenProcessPool::new(
        BrokenCause::ForcedShutdown,
        BrokenSeenBy::Future,
    ))
}

impl Backend for Shared {
    type State = PoolState;

    const SHUTDOWN_IN_CALLBACK: InCallback = InCallback::Wait;

    fn lock(&self) -> MutexGuard<'_, PoolState> {
        Shared::lock(self)
    }

    fn exits(st: &mut PoolState) -> Exits<'_> {
        Exits {
            live: st.drivers,
            in_shutdown: &mut st.drivers_in_shutdown,
            handles: &mut st.handles,
            retired: None,
            wakers: &mut st.exit_wakers,
        }
    }

    fn exited(&self) -> &Condvar {
        &self.exited
    }

    /// A done callback runs on a driver thread; which pool a thread drives is its own thread-local
    /// mark, cleared when its driver leaves the count.
    fn on_own_worker(self: &Arc<Self>, _: &PoolState) -> bool {
        super::driver::is_driving(self)
    }

    /// Also every drop of the pool's last handle, which in a forked copy of the owner does nothing.
    fn close(&self, queued: Queued) {
        match self.lineage() {
            Lineage::Owner => {
                let cancelled = self.shut_down(queued).run();
                Counters::add(&self.counters.cancelled, cancelled);
            }
            Lineage::ForkedCopy => {}
        }
    }

    fn metrics(&self) -> Metrics {
        let st = self.lock();
        // A worker whose reply no one reads would count as running for ever.
        Self::attend_busy(&st);
        let c = &self.counters;
        Metrics {
            workers: st.drivers,
            idle: st.idle.len(),
            queued: st.queue.len(),
            running: st
                .slots
                .iter()
                .filter(|s| matches!(s.phase, Phase::Busy(_)))
                .count(),
            completed: c.completed.load(Ordering::Relaxed),
            failed: c.failed.load(Ordering::Relaxed),
            panicked: c.panicked.load(Ordering::Relaxed),
            cancelled: c.cancelled.load(Ordering::Relaxed),
            workers_respawned: st.respawned,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::task::new_task;
    use super::*;
    use std::time::Duration;

    fn echo(x: u8) -> u8 {
        x
    }

    /// Long enough never to expire on a loaded machine; only reached when a test is failing.
    const LONG: Duration = Duration::from_secs(60);

    /// Waits (up to [`LONG`]) until `cond` holds, failing the test with `what` if it never does.
    fn eventually(what: &str, mut cond: impl FnMut() -> bool) {
        let bound = std::time::Instant::now() + LONG;
        while !cond() {
            assert!(std::time::Instant::now() < bound, "never happened: {what}");
            std::thread::yield_now();
        }
    }

    /// A pool of one worker from `builder`, its worker started and idle.
    fn one_idle_worker(builder: crate::ProcessPoolBuilder) -> crate::ProcessPoolExecutor {
        let pool = builder.max_workers(1).build().unwrap();
        assert_eq!(pool.submit(echo, 1).unwrap().result(None).unwrap(), 1);
        eventually("the worker goes idle", || pool.metrics().idle == 1);
        pool
    }

    /// The only worker of a pool from [`one_idle_worker`].
    fn only_worker(shared: &Shared) -> Arc<Proc> {
        shared.lock().slots[0].proc.clone().unwrap()
    }

    /// A task `echo(7)` as a submit has it just before its write: encoded, and assigned to the idle
    /// worker's slot (the caller holds the worker's turn, as a submit does), its frame not written.
    struct Assigned {
        slot: usize,
        frame: Vec<u8>,
        fut: crate::PoolFuture<u8>,
        id: crate::future::FutureId,
    }

    fn assign_echo_to_the_idle_worker(shared: &Shared) -> Assigned {
        let call = super::super::call::Call::one(echo, None);
        let Ok((task, fut)) = call.encode(&7u8, shared.config.frame_cap, Vec::new(), Err) else {
            panic!("the argument encodes");
        };
        let id = task.id();
        let mut st = shared.lock();
        let slot = st.idle.pop().unwrap();
        let frame = shared.assign(&mut st, slot, task).unwrap().frame;
        Assigned {
            slot,
            frame,
            fut,
            id,
        }
    }

    /// A copy of the process made by `fork` while a driver held the pool's lock (drivers take it
    /// often, so a fork lands there now and then): the copy's lock is held forever, so what it may
    /// still call on the inherited pool (metrics, the worker pids, `Debug`) must not take it. The
    /// test holds the lock across the fork, where a driver would.
    #[test]
    fn a_fork_made_while_the_lock_is_held_still_reads_metrics() {
        let pool = one_idle_worker(crate::ProcessPoolExecutor::builder());
        let shared = pool.shared().clone();
        let (held_tx, held_rx) = std::sync::mpsc::channel();
        let (forked_tx, forked_rx) = std::sync::mpsc::channel::<()>();
        let holder = std::thread::spawn(move || {
            let _st = shared.lock();
            held_tx.send(()).unwrap();
            let _ = forked_rx.recv();
        });
        held_rx.recv().unwrap();
        // SAFETY: the child only reads the pool and leaves with `_exit`, never returning into the
        // harness.
        #[allow(unsafe_code)]
        let child = unsafe { libc::fork() };
        assert!(child >= 0, "fork");
        if child == 0 {
            let empty = pool.metrics() == crate::Metrics::default()
                && pool.worker_pids().is_empty()
                && pool.workers_started() == 0
                && format!("{pool:?}").contains("ProcessPoolExecutor");
            // SAFETY: ends the forked child without running the harness's exit handlers.
            #[allow(unsafe_code)]
            unsafe {
                libc::_exit(if empty { 0 } else { 2 })
            };
        }
        forked_tx.send(()).unwrap();
        holder.join().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut status = 0;
            // SAFETY: waits for our own child.
            #[allow(unsafe_code)]
            unsafe {
                libc::waitpid(child, &mut status, 0)
            };
            let _ = tx.send(status);
        });
        let Ok(status) = rx.recv_timeout(LONG) else {
            // SAFETY: our own child, not yet reaped (the waiter has not returned).
            #[allow(unsafe_code)]
            unsafe {
                libc::kill(child, libc::SIGKILL)
            };
            panic!("hang: the forked child blocked on the lock it inherited held");
        };
        assert!(libc::WIFEXITED(status), "the child died: {status:#x}");
        assert_eq!(
            libc::WEXITSTATUS(status),
            0,
            "the child's reads were not empty"
        );
        assert_eq!(pool.submit(echo, 3).unwrap().result(LONG).unwrap(), 3);
    }

    /// `kill_workers()` fails every task that was running, the ones waiting to be redelivered
    /// included. A submit whose write found its idle worker dead hands its task back a moment
    /// after the write; a `kill_workers()` that lands in that moment must fail it too, not leave it
    /// queued for a worker started after the pool was stopped by force. The window is opened here
    /// by hand: the worker's turn is held, as the submit holds it, so its driver cannot settle the
    /// death meanwhile.
    #[test]
    fn a_task_handed_back_after_the_workers_were_killed_fails_with_the_forced_shutdown() {
        let pool = one_idle_worker(crate::ProcessPoolExecutor::builder());
        let shared = pool.shared().clone();
        let proc = only_worker(&shared);
        let turn = lock(&proc.turn);
        let mut assigned = assign_echo_to_the_idle_worker(&shared);
        // The worker dies idle, killed from outside; its driver waits for the turn.
        // SAFETY: signals our own, unreaped child (its driver cannot reap it without the turn).
        #[allow(unsafe_code)]
        unsafe {
            libc::kill(proc.pid as i32, libc::SIGKILL);
        }
        eventually("the worker dies", || proc.is_gone());
        let Sent::Refused(frame) = proc.send_or_post(assigned.frame) else {
            panic!("a dead worker's socket took the task");
        };
        shared.force(libc::SIGKILL).run();
        shared.redeliver(assigned.slot, &proc, frame);
        drop(turn);
        match assigned.fut.result(LONG) {
            Err(Error::BrokenProcessPool(b)) => assert_eq!(b.cause(), &BrokenCause::ForcedShutdown),
            other => panic!("expected a forced-shutdown error, got {other:?}"),
        }
    }

    /// A submit to an idle worker whose turn is held elsewhere (its driver finishing a reply, say)
    /// asks the kernel whether the worker lives, then writes. A worker that dies between the two
    /// refuses the frame before its first byte: the task never ran there and is handed back, not
    /// failed with the death. The worker is kept alive here (stopped) with its channel refusing
    /// writes (this side shut for writing), and the turn is held by the test.
    #[test]
    fn a_submit_refused_while_the_turn_is_held_elsewhere_is_redelivered() {
        let pool = one_idle_worker(
            crate::ProcessPoolExecutor::builder().on_worker_death(crate::WorkerDeath::Respawn),
        );
        let proc = only_worker(pool.shared());
        let signal = |sig| {
            // SAFETY: signals our own, unreaped child (its driver reaps it only once it exited).
            #[allow(unsafe_code)]
            unsafe {
                libc::kill(proc.pid as i32, sig)
            }
        };
        assert_eq!(signal(libc::SIGSTOP), 0);
        proc.stream.shutdown(std::net::Shutdown::Write).unwrap();
        let turn = lock(&proc.turn);
        let mut fut = pool.submit(echo, 7).unwrap();
        drop(turn);
        // The worker reads end-of-file and exits; a new worker takes the task.
        assert_eq!(signal(libc::SIGCONT), 0);
        let outcome = fut.result(LONG);
        assert!(matches!(outcome, Ok(7)), "{outcome:?}");
        assert_eq!(pool.metrics().workers_respawned, 1);
    }

    /// A task whose worker was killed for it (`stop`: an interrupt, or its time limit expiring)
    /// after the worker was claimed for it but before its frame was written: the write then finds
    /// the worker's end closed. The task is not handed back to run elsewhere: it ends as the kill
    /// says. The window is opened here by hand, holding the worker's turn as a submit does.
    fn killed_before_its_frame_was_written(
        stop: impl FnOnce(&mut crate::PoolFuture<u8>, &Proc, crate::future::FutureId),
    ) -> Result<u8, Error> {
        let pool = one_idle_worker(crate::ProcessPoolExecutor::builder());
        let shared = pool.shared().clone();
        let proc = only_worker(&shared);
        let turn = lock(&proc.turn);
        let mut assigned = assign_echo_to_the_idle_worker(&shared);
        stop(&mut assigned.fut, &proc, assigned.id);
        eventually("the worker dies", || proc.is_gone());
        let Sent::Refused(frame) = proc.send_or_post(assigned.frame) else {
            panic!("a dead worker's socket took the task");
        };
        shared.redeliver(assigned.slot, &proc, frame);
        drop(turn);
        let outcome = assigned.fut.result(LONG);
        assert_eq!(pool.submit(echo, 2).unwrap().result(None).unwrap(), 2);
        outcome
    }

    #[test]
    fn a_task_interrupted_before_its_frame_was_written_is_not_redelivered() {
        let outcome = killed_before_its_frame_was_written(|fut, _, _| {
            assert!(
                fut.interrupt(),
                "the interrupt of a running task was refused"
            )
        });
        assert!(matches!(outcome, Err(Error::Interrupted)), "{outcome:?}");
    }

    /// Redelivered, it would be given the same time limit again, which could expire again before
    /// its write, killing a worker each time.
    #[test]
    fn a_task_past_its_time_limit_before_its_frame_was_written_is_not_redelivered() {
        let limit = Duration::from_millis(1);
        let outcome = killed_before_its_frame_was_written(|_, proc, id| {
            // What the timer does when the limit expires.
            assert!(proc.kill_running(id, KillReason::TimeLimit(limit)));
        });
        assert!(
            matches!(outcome, Err(Error::TimeLimit(l)) if l == limit),
            "{outcome:?}"
        );
    }

    /// A task waiting to be redelivered is RUNNING but on no worker: an interrupt cannot kill a
    /// worker for it, so it is recorded, and the task's next dispatch ends it with
    /// [`Error::Interrupted`] instead of running it; the worker stays ready.
    #[test]
    fn an_interrupt_of_a_task_awaiting_redelivery_ends_it_at_its_next_dispatch() {
        let pool = one_idle_worker(crate::ProcessPoolExecutor::builder());
        let shared = pool.shared().clone();
        let (task, mut fut) = new_task::<u8>(vec![1, 2, 3], 1, |_, _| Ok(0), None);
        // What a submit does when its write finds the worker's end closed.
        assert!(task.start());
        let frame = task.take_frame().unwrap();
        task.redeliver(frame);
        assert!(fut.running());
        assert!(
            fut.interrupt(),
            "the interrupt of a running task was refused"
        );
        {
            let mut st = shared.lock();
            let slot = st.idle.pop().unwrap();
            assert!(shared.assign(&mut st, slot, task).is_none());
            assert_eq!(st.idle, vec![slot], "the worker did not stay ready");
        }
        assert!(matches!(
            fut.result(Duration::ZERO),
            Err(Error::Interrupted)
        ));
        assert_eq!(pool.submit(echo, 2).unwrap().result(None).unwrap(), 2);
    }

    /// A task handed back for redelivery is RUNNING while it waits in the queue: a shutdown that
    /// cancels the queue must leave it there to run (a cancel cannot end it, and dropping it would
    /// leave its future pending forever), and a forced shutdown fails it as it fails running tasks.
    #[test]
    fn a_task_awaiting_redelivery_survives_a_cancelling_shutdown_and_fails_a_forced_one() {
        let pool = crate::ProcessPoolExecutor::new(1).unwrap();
        let shared = pool.shared();
        let (task, mut fut) = new_task::<u8>(vec![1, 2, 3], 1, |_, _| Ok(0), None);
        let (queued, mut pending) = new_task::<u8>(vec![4], 1, |_, _| Ok(0), None);
        // What a submit does when its write finds the worker's end closed.
        assert!(task.start());
        let frame = task.take_frame().unwrap();
        task.redeliver(frame);
        assert!(task.awaits_redelivery());
        {
            let mut st = shared.lock();
            st.queue.push_back(task.clone());
            st.queue.push_back(queued);
        }
        shared.shut_down(Queued::Cancel).run();
        assert!(matches!(
            pending.result(Duration::ZERO),
            Err(Error::Cancelled)
        ));
        assert!(fut.running() && !fut.done());
        assert_eq!(shared.lock().queue.len(), 1);
        shared.force(libc::SIGKILL).run();
        match fut.result(Duration::ZERO) {
            Err(Error::BrokenProcessPool(b)) => assert_eq!(b.cause(), &BrokenCause::ForcedShutdown),
            other => panic!("expected a forced-shutdown error, got {other:?}"),
        }
        // Dispatched again, it starts at once and carries its frame.
        let (again, _fut) = new_task::<u8>(vec![9], 1, |_, _| Ok(0), None);
        assert!(again.start());
        let frame = again.take_frame().unwrap();
        again.redeliver(frame);
        assert!(again.start());
        assert!(!again.awaits_redelivery());
        assert_eq!(again.take_frame(), Some(vec![9]));
    }
}
