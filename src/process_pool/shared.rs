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
//! after marking it: a write that finds the worker's end closed before its first byte hands the task
//! back to the queue (RUNNING still, see [`ProcTask::redeliver`]) and the death is settled as an idle
//! worker's.
//!
//! With a `queue_capacity`, the queue (tasks no worker has claimed) holds at most that many tasks: a
//! sync submit waits on `room`, an async one on `room_async`, `try_submit` is refused.

use std::collections::VecDeque;
use std::io;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::Waker;
use std::thread::JoinHandle;

use super::proc::{KillReason, Proc, Sent};
use super::task::ProcTask;
use super::timer::Timer;
use super::wire::KEEP_BUFFER;
use super::Config;
use crate::error::{BrokenCause, BrokenProcessPool, BrokenSeenBy, Error};
pub(crate) use crate::pool::WhenFull;
use crate::pool::{Backend, Exits, InCallback, Metrics, Queued, Room};
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
}

/// A frame to write to a worker, outside the lock.
pub(crate) struct Dispatch {
    pub(crate) proc: Arc<Proc>,
    pub(crate) frame: Vec<u8>,
}

impl Dispatch {
    /// Writes the frame (on the worker's driver thread); returns its buffer (see
    /// [`Shared::recycle_frame`]).
    pub(crate) fn send(self) -> Vec<u8> {
        send_frame(&self.proc, self.frame, 0)
    }
}

/// Writes `frame[from..]` to `proc`, blocking; returns the buffer. A worker that died meanwhile is its
/// driver's to handle (it sees end-of-file and fails the task); any other failure leaves the stream
/// in an unknown state, so the worker is killed.
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
        })
    }

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
        task: Arc<dyn ProcTask>,
        when_full: WhenFull,
    ) -> Result<(), Rejected> {
        let mut st = self.lock();
        loop {
            if let Some(e) = Self::refusal(&st.lifecycle) {
                return Err(Rejected::Closed(e));
            }
            while let Some(slot) = st.idle.pop() {
                let proc = st.slots[slot]
                    .proc
                    .clone()
                    .expect("an idle worker has a process");
                // An idle worker killed from outside must not be handed a task that would then
                // fail without having run (it made the resilient policy fail a fresh task for an
                // idle worker's death). Its driver still handles the death: it breaks the pool
                // (default policy; the task queued below then fails with it, as in CPython) or
                // respawns for the queue.
                //
                // Holding the worker's turn, this thread asks its driver's word ([`Proc::known_gone`]:
                // no system call) and writes the task. The driver reads a death with the turn and
                // marks it before letting go ([`Proc::mark_ended`]), so if the write finds the
                // worker's end closed, the death is not settled yet and the task is still this
                // thread's to hand back ([`Shared::redeliver`]). A turn held elsewhere (a reply
                // being handled, or the driver reading the death) is rare: then the kernel is
                // asked, as the driver's word may lag the death.
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
                if let Some(d) = dispatch {
                    match d.proc.send_or_post(d.frame) {
                        Sent::Whole(buf) | Sent::Lost(buf) => self.recycle_frame(buf),
                        Sent::Posted => {}
                        // Without the turn the driver may have failed the task already; with
                        // it, the death is not settled yet and the task never ran.
                        Sent::Refused(frame) if turn.is_some() => {
                            self.redeliver(slot, &d.proc, frame)
                        }
                        // A death after the check, without the turn: like one during the task, it
                        // fails the task.
                        Sent::Refused(buf) => self.recycle_frame(buf),
                    }
                }
                drop(turn);
                return Ok(());
            }
            let full = self.room.is_full(st.queue.len());
            if !full || when_full == WhenFull::Overfill {
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

    /// Hands back the task just written to the idle worker of `slot`, whose end of the socket turned
    /// out closed before the first byte: the worker died idle, and its driver has not settled the
    /// death (the caller holds the worker's turn, which reading the death needs). The task never
    /// ran: it goes to the head of the queue, RUNNING still, and the slot reads as an idle worker's
    /// death, which the driver settles as such (the pool breaks under the default policy, failing
    /// the task with it; under the resilient one a new worker starts for the queue and runs it).
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
        proc.set_running(None);
        task.bind(None);
        if task.time_limit().is_some() {
            self.timer.disarm(task.id());
        }
        task.redeliver(frame);
        // The queue was failed when the pool broke, or when its workers were killed; nothing is
        // to take the task from there.
        let failed = match (&st.lifecycle, st.stop) {
            (Lifecycle::Broken(b), _) => Some(Error::BrokenProcessPool(b.clone())),
            (_, Stop::ByForce) => Some(forced_shutdown()),
            (_, Stop::Gracefully) => None,
        };
        if let Some(e) = failed {
            drop(st);
            task.fail(e);
            return;
        }
        st.queue.push_front(task);
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

    fn close(&self, queued: Queued) {
        let cancelled = self.shut_down(queued).run();
        Counters::add(&self.counters.cancelled, cancelled);
    }

    fn metrics(&self) -> Metrics {
        let st = self.lock();
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

    /// `kill_workers()` fails every task that was running, the ones waiting to be redelivered
    /// included. A submit whose write found its idle worker dead hands its task back a moment
    /// after the write; a `kill_workers()` that lands in that moment must fail it too, not leave it
    /// queued for a worker started after the pool was stopped by force. The window is opened here
    /// by hand: the worker's turn is held, as the submit holds it, so its driver cannot settle the
    /// death meanwhile.
    #[test]
    fn a_task_handed_back_after_the_workers_were_killed_fails_with_the_forced_shutdown() {
        let pool = crate::ProcessPoolExecutor::new(1).unwrap();
        assert_eq!(pool.submit(echo, 1).unwrap().result(None).unwrap(), 1);
        let bounded = std::time::Instant::now() + Duration::from_secs(60);
        while pool.metrics().idle != 1 {
            assert!(
                std::time::Instant::now() < bounded,
                "the worker never went idle"
            );
            std::thread::yield_now();
        }
        let shared = pool.shared().clone();
        let proc = shared.lock().slots[0].proc.clone().unwrap();
        let turn = lock(&proc.turn);
        let call = super::super::call::Call::one(echo, None);
        let Ok((task, mut fut)) = call.encode(&7u8, shared.config.frame_cap, Vec::new(), Err)
        else {
            panic!("the argument encodes");
        };
        let (slot, dispatch) = {
            let mut st = shared.lock();
            let slot = st.idle.pop().unwrap();
            (slot, shared.assign(&mut st, slot, task).unwrap())
        };
        // The worker dies idle, killed from outside; its driver waits for the turn.
        // SAFETY: signals our own, unreaped child (its driver cannot reap it without the turn).
        #[allow(unsafe_code)]
        unsafe {
            libc::kill(proc.pid as i32, libc::SIGKILL);
        }
        while !proc.is_gone() {
            assert!(std::time::Instant::now() < bounded, "the worker never died");
            std::thread::yield_now();
        }
        let Sent::Refused(frame) = dispatch.proc.send_or_post(dispatch.frame) else {
            panic!("a dead worker's socket took the task");
        };
        shared.force(libc::SIGKILL).run();
        shared.redeliver(slot, &proc, frame);
        drop(turn);
        match fut.result(Duration::from_secs(60)) {
            Err(Error::BrokenProcessPool(b)) => assert_eq!(b.cause(), &BrokenCause::ForcedShutdown),
            other => panic!("expected a forced-shutdown error, got {other:?}"),
        }
    }

    /// A task waiting to be redelivered is RUNNING but on no worker: an interrupt cannot kill a
    /// worker for it, so it is recorded, and the task's next dispatch ends it with
    /// [`Error::Interrupted`] instead of running it; the worker stays ready.
    #[test]
    fn an_interrupt_of_a_task_awaiting_redelivery_ends_it_at_its_next_dispatch() {
        let pool = crate::ProcessPoolExecutor::new(1).unwrap();
        assert_eq!(pool.submit(echo, 1).unwrap().result(None).unwrap(), 1);
        let bounded = std::time::Instant::now() + Duration::from_secs(60);
        while pool.metrics().idle != 1 {
            assert!(
                std::time::Instant::now() < bounded,
                "the worker never went idle"
            );
            std::thread::yield_now();
        }
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
