//! The state a process pool's handle and its driver threads share: the queue, each driver's slot, the
//! lifecycle. One mutex guards it; it is never held while user code (callbacks) runs or while blocking
//! on a worker.
//!
//! Each driver owns one slot, whose [`Phase`] says what its worker is doing. A worker runs one task at a
//! time, so "which worker holds which task" is exact: the task lives in its worker's `Busy` phase.
//!
//! Dispatch: a submit that finds an idle worker claims it (`Idle → Busy`) under the lock and writes the
//! frame itself, right away; otherwise the task waits in the queue and a driver takes it when its worker
//! replies. Whoever moves a worker out of `Idle` is the only writer until the reply, so frames never
//! interleave.

use std::collections::VecDeque;
use std::io;
use std::sync::Arc;
use std::task::Waker;
use std::thread::JoinHandle;

use super::proc::{KillReason, Proc};
use super::task::ProcTask;
use super::timer::Timer;
use super::wire::KEEP_BUFFER;
use super::Config;
use crate::error::{BrokenCause, BrokenProcessPool, BrokenSeenBy, Error};
use crate::sync::{lock, Condvar, Mutex, MutexGuard};

/// Where the pool is in its life.
#[derive(Clone, Debug)]
pub(crate) enum Lifecycle {
    /// Taking work.
    Open,
    /// No new work; queued work still runs (unless cancelled), then the workers exit.
    ShutDown,
    /// No new work; every queued and running future failed with this error.
    Broken(BrokenProcessPool),
}

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
}

pub(crate) struct Shared {
    pub(crate) state: Mutex<PoolState>,
    /// Sync shutdowns wait here for the last driver to leave.
    pub(crate) exited: Condvar,
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
    /// Writes the frame; returns its buffer (see [`Shared::recycle_frame`]).
    pub(crate) fn send(self) -> Vec<u8> {
        if let Err(e) = self.proc.send(&self.frame) {
            match e.kind() {
                // The worker died: its driver sees end-of-file and handles the task.
                io::ErrorKind::BrokenPipe | io::ErrorKind::ConnectionReset => {}
                _ => {
                    self.proc.kill(
                        KillReason::Protocol(format!("writing a task failed: {e}")),
                        libc::SIGKILL,
                    );
                }
            }
        }
        self.frame
    }
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
    pub(crate) fn run(self) {
        for (p, why, sig) in self.kill {
            p.kill(why, sig);
        }
        for p in self.close {
            p.close_write();
        }
        for t in self.cancel {
            t.cancel();
        }
        for (t, e) in self.fail {
            t.fail(e);
        }
        for w in self.wake {
            w.wake();
        }
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
            }),
            exited: Condvar::new(),
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
    /// [`KEEP_BUFFER`]). Benchmark fix: a fresh frame per submit meant, for a 1 MiB argument, a fresh
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
        match lifecycle {
            Lifecycle::Open => None,
            Lifecycle::ShutDown => Some(Error::Shutdown),
            Lifecycle::Broken(b) => Some(Error::BrokenProcessPool(b.seen_by(BrokenSeenBy::Submit))),
        }
    }

    /// Queues a task: hands it straight to an idle worker if there is one, otherwise queues it and
    /// starts a driver if none is idle or starting for it and the pool is below `max_workers`.
    pub(crate) fn enqueue(self: &Arc<Self>, task: Arc<dyn ProcTask>) -> Result<(), Error> {
        let mut st = self.lock();
        if let Some(e) = Self::refusal(&st.lifecycle) {
            return Err(e);
        }
        while let Some(slot) = st.idle.pop() {
            // An idle worker killed from outside has closed its end before its driver noticed the
            // end-of-file: do not hand it a task that would then fail without having run (review fix;
            // it made the resilient policy fail a fresh task for an idle worker's death). Its driver
            // still handles the death: it breaks the pool (default policy; the task queued below then
            // fails with it, as in CPython) or respawns for the queue. A death after this check is
            // indistinguishable from one during the task and fails the task.
            if st.slots[slot].proc.as_ref().is_some_and(|p| p.is_gone()) {
                continue;
            }
            let dispatch = self.assign(&mut st, slot, task);
            drop(st);
            if let Some(d) = dispatch {
                self.recycle_frame(d.send());
            }
            return Ok(());
        }
        st.queue.push_back(task);
        if st.drivers < self.config.max_workers && st.queue.len() > st.starting {
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
        // Review fix: bind the worker *before* the future turns RUNNING. `interrupt` reads the
        // binding without the pool lock as soon as it sees RUNNING; bound afterwards, it could find
        // none and report `false` for a running task (a caller spinning on `running()` then calling
        // `interrupt()` missed a third of the time). Nothing kills by this binding before `start`:
        // `interrupt` cancels a PENDING task instead, and the time limit is armed below.
        proc.set_running(Some(task.id()));
        task.bind(Some(&proc));
        if !task.start() {
            // Cancelled before dispatch: a ready worker stays ready.
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
        let broken = match &st.lifecycle {
            Lifecycle::Broken(b) => b.clone(),
            _ => {
                let b = BrokenProcessPool::new(cause, BrokenSeenBy::Future);
                st.lifecycle = Lifecycle::Broken(b.clone());
                b
            }
        };
        let err = Error::BrokenProcessPool(broken);
        after.fail = st.queue.drain(..).map(|t| (t, err.clone())).collect();
        after.kill = st
            .slots
            .iter()
            .filter_map(|s| s.proc.clone())
            .map(|p| (p, KillReason::PoolBroken, libc::SIGKILL))
            .collect();
        after
    }

    /// Stops taking work. With `cancel`, cancels the queued tasks. Idle workers are told to exit; busy
    /// ones exit when the queue is empty.
    pub(crate) fn close(&self, cancel: bool) -> Aftermath {
        let mut st = self.lock();
        if matches!(st.lifecycle, Lifecycle::Open) {
            st.lifecycle = Lifecycle::ShutDown;
        }
        let mut after = Aftermath::default();
        if cancel {
            after.cancel = st.queue.drain(..).collect();
        }
        // An idle worker means an empty queue (a task is only queued when no worker is idle).
        let idle = std::mem::take(&mut st.idle);
        for i in idle {
            st.slots[i].phase = Phase::Retiring;
            after.close.extend(st.slots[i].proc.clone());
        }
        // The last driver to leave closes the timer, but only once the pool is closed: if every
        // driver had already left (all workers recycled, or idle ones died under the resilient
        // policy), no one else will, and its thread would wait forever (review fix).
        if st.drivers == 0 {
            self.timer.close();
        }
        after
    }

    /// `terminate_workers` / `kill_workers`: close with cancel, then signal every live worker.
    pub(crate) fn force(&self, signal: i32) -> Aftermath {
        let mut after = self.close(true);
        let st = self.lock();
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
