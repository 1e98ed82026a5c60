//! The parent side of one worker: a driver thread that spawns the worker process, shakes hands, then
//! blocks reading its replies, completing futures and handing the worker its next task, until the
//! process ends; then it decides whether to start another.
//!
//! ```text
//!            spawn + handshake            reply: next task / idle / retire
//! Starting ───────────────────▶ serving ◀───────────────────────────────┐
//!    ▲                             │  └─────────────────────────────────┘
//!    │ respawn (work queued)       │ end-of-file (exit, kill, crash)
//!    └──────────────────────────── reap ──▶ leave (no work, or pool broken)
//! ```
//!
//! Why a thread per worker: the driver is always blocked waiting on its worker's socket and exit
//! descriptor (its pidfd, or where pidfds are refused an eventfd a watcher thread signals:
//! `proc::ExitWatch`), so a death (even of an idle worker) is seen at once, with no polling; the
//! kernel closes the socket when the process dies, whatever killed it, and the exit descriptor turns
//! readable even when a process that inherited the worker's end (a task's fork without exec) keeps
//! the socket open. The thread also owns
//! the process for its whole life, which `PR_SET_PDEATHSIG` needs (it fires when the *thread* that
//! spawned the child exits).
//!
//! A caller blocked on the running task's result may read the reply in its place (`Proc::help`):
//! it takes the socket out of the driver's wait set (if it is in: the socket is there only while
//! something else waits for the reply, `proc::Listener`), then takes the reader right (`proc::Reader`,
//! one compare-and-swap), reads the reply in one blocking `recv` (a `poll` and a read when it has a
//! deadline), handles it with the same [`reply_step`], gives the right back and puts the socket back.
//! The reply then wakes only the caller. The driver keeps watching the worker's exit meanwhile: it
//! never waits for the turn while a caller may be blocked reading, and when the worker exits it shuts
//! the socket's read side (`Proc::end_reads`), which ends the caller's `recv` even when a process
//! the task forked keeps the worker's end open; then it handles the death as always.

use std::cell::Cell;
use std::io;
use std::mem;
use std::sync::Arc;

use super::code;
use super::handshake;
use super::proc::{self, KillReason, Listener, Proc, Ready, Turn};
use super::shared::{
    send_frame, send_whole, Aftermath, Dispatch, Lifecycle, Phase, PoolState, Shared, Slot,
};
use super::task::ProcTask;
use super::wire::Body;
use super::WorkerDeath;
use crate::error::{BrokenCause, BrokenProcessPool, BrokenSeenBy, Error, WorkerExit};
use crate::sync::lock;

thread_local! {
    /// The pool (address of its `Shared`) this thread is a counted driver of, 0 if none: a
    /// `shutdown()` from a done callback running here must not wait for its own driver.
    static DRIVING: Cell<usize> = const { Cell::new(0) };
}

/// Whether the current thread is one of `shared`'s live (counted) drivers.
pub(crate) fn is_driving(shared: &Arc<Shared>) -> bool {
    DRIVING.with(|d| d.get() == Arc::as_ptr(shared) as usize)
}

/// Starts a driver thread (with the pool locked, so the count cannot overshoot).
pub(crate) fn spawn(shared: &Arc<Shared>, st: &mut PoolState) -> io::Result<()> {
    st.handles.retain(|h| !h.is_finished());
    let slot = st
        .slots
        .iter()
        .position(|s| matches!(s.phase, Phase::Gone))
        .unwrap_or(st.slots.len());
    let driver = Driver {
        shared: shared.clone(),
        slot,
    };
    let handle = std::thread::Builder::new()
        .name(format!("process-pool-driver-{slot}"))
        .spawn(move || driver.run())?;
    // The thread cannot look at its slot before we release the lock.
    let fresh = Slot {
        phase: Phase::Starting,
        proc: None,
    };
    if slot == st.slots.len() {
        st.slots.push(fresh);
    } else {
        st.slots[slot] = fresh;
    }
    st.drivers += 1;
    st.starting += 1;
    st.handles.push(handle);
    Ok(())
}

/// Consecutive worker deaths during start-up tolerated under [`WorkerDeath::Respawn`].
const MAX_START_RETRIES: u32 = 3;

struct Driver {
    shared: Arc<Shared>,
    slot: usize,
}

/// Which thread handles a reply: the worker's driver, or a caller blocked on the task's result that
/// read the reply itself (`Proc::help`).
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum By {
    Driver,
    Caller,
}

/// What the worker does after a reply (decided under the lock, done outside it).
enum Next {
    Run(Dispatch),
    /// Listed idle; a submit will write to it.
    Idle,
    /// Close its write side: it exits after reading everything.
    Retire,
    /// A kill is on its way: wait for the end-of-file.
    Wait,
}

impl Next {
    /// Does it, for the worker of `slot`. A task whose frame the worker never got a byte of (it
    /// died just after its reply or its handshake) is handed back, as a submit's would be
    /// ([`Shared::written`]): its driver has not settled the death, as this thread holds the turn.
    fn perform(self, shared: &Shared, slot: usize, proc: &Proc, by: By) {
        match self {
            Next::Run(Dispatch { proc: to, frame }) => {
                let sent = match by {
                    By::Driver => send_whole(&to, frame),
                    // A caller does not block on a large write for the pool: what the socket does
                    // not take at once goes to the driver, as a submit's frame does.
                    By::Caller => to.send_or_post(frame),
                };
                shared.written(slot, &to, sent);
            }
            Next::Retire => proc.close_write(),
            Next::Idle | Next::Wait => {}
        }
    }
}

/// When a worker that just replied is told what to do next.
enum Then {
    /// At once: it is to exit or is being killed, and takes no task.
    Now(Next),
    /// Once the replied task's future is complete (its done callbacks have run).
    AfterCompletion,
}

/// Whether a ready worker may be handed a queued task.
enum Offer {
    /// Yes: the next queued task, if any.
    Queue,
    /// No: the worker is known to be dead; its driver's next read settles it.
    Nothing,
}

/// The next thing for a ready worker: a queued task, or idleness, or retirement once the pool is closed.
fn take_next(shared: &Shared, slot: usize, st: &mut PoolState, offer: Offer) -> Next {
    st.slots[slot].phase = Phase::Retiring;
    if matches!(st.lifecycle, Lifecycle::Broken(_)) {
        return Next::Wait; // every worker is being killed
    }
    if let Offer::Queue = offer {
        while let Some(task) = st.queue.pop_front() {
            shared.made_room(st);
            if let Some(d) = shared.assign(st, slot, task) {
                return Next::Run(d);
            }
        }
    }
    if matches!(st.lifecycle, Lifecycle::Open) {
        st.slots[slot].phase = Phase::Idle;
        st.idle.push(slot);
        Next::Idle
    } else {
        Next::Retire
    }
}

/// The driver leaves the pool: its slot is freed and shutdowns are woken. Runs on the driver thread.
fn leave(shared: &Shared, slot: usize, st: &mut PoolState) -> Vec<std::task::Waker> {
    st.slots[slot] = Slot {
        phase: Phase::Gone,
        proc: None,
    };
    st.idle.retain(|&i| i != slot);
    st.drivers -= 1;
    DRIVING.with(|d| d.set(0));
    // Every departure, not only the last: a `shutdown()` called from a done callback on another
    // driver waits for all drivers but its own, and would never be woken by the last one alone.
    shared.exited.notify_all();
    if st.drivers > 0 {
        return Vec::new();
    }
    if !matches!(st.lifecycle, Lifecycle::Open) {
        shared.timer.close();
    }
    mem::take(&mut st.exit_wakers)
}

/// Handles one reply of the worker of `slot`, with its [`Turn`] held (`served` is the turn's count):
/// completes the task it answers (its done callbacks run on this thread), then hands the worker its
/// next task, or lists it idle, or retires it. Runs on the driver, or on a caller that read the reply
/// itself (`by`), which for the callbacks' sake counts as a driver meanwhile (a done callback's
/// `shutdown()` must not wait for this worker, which cannot retire before the callback returns).
pub(crate) fn reply_step(
    shared: &Shared,
    slot: usize,
    proc: &Proc,
    body: Body<'_>,
    served: &mut usize,
    by: By,
) {
    let _driving = (by == By::Caller).then(|| DrivingAs::enter(shared));
    let max_tasks = shared.config.max_tasks_per_child;
    let (task, then) = {
        let mut st = shared.lock();
        let task = match mem::replace(&mut st.slots[slot].phase, Phase::Retiring) {
            Phase::Busy(task) => task,
            other => {
                st.slots[slot].phase = other;
                drop(st);
                let why = KillReason::Protocol("a reply with no task".into());
                proc.kill(why, libc::SIGKILL);
                return;
            }
        };
        let kill_pending = proc.set_running(None);
        if task.time_limit().is_some() {
            shared.timer.disarm(task.id());
        }
        *served += 1;
        // What this task needed is the guess for the next one's (`Proc::listen_for`): not who
        // read it, which a race decides.
        proc.replied_to(if task.attended() {
            Listener::Driver
        } else {
            Listener::Caller
        });
        let then = if kill_pending {
            Then::Now(Next::Wait)
        } else if max_tasks.is_some_and(|m| *served >= m) {
            // Recycled: this driver replaces the process itself, so the count of live
            // workers stays exact (CPython's gh-115634 cannot happen).
            Then::Now(Next::Retire)
        } else {
            // No next task before this one's future is complete: its done callbacks run on
            // this thread, and one may wait on the task queued behind it (another worker must
            // be able to take it) or cancel the queued work. Meanwhile the worker counts as
            // starting: it will take queued work next, so a submit need not start another.
            st.slots[slot].phase = Phase::Starting;
            st.starting += 1;
            Then::AfterCompletion
        };
        (task, then)
    };
    match then {
        Then::Now(next) => {
            next.perform(shared, slot, proc, by);
            finish(task, body, shared);
        }
        Then::AfterCompletion => {
            finish(task, body, shared);
            let next = {
                let mut st = shared.lock();
                st.starting -= 1;
                // A worker killed while the callbacks ran (its owner may have seen the result
                // and killed it as an idle worker) is handed no task: it would fail with the
                // death. Asked under the pool lock, as a submit asks of an idle worker, so a
                // task queued after the death was seen never goes to it.
                let offer = if !st.queue.is_empty() && proc.is_gone() {
                    Offer::Nothing
                } else {
                    Offer::Queue
                };
                take_next(shared, slot, &mut st, offer)
            };
            next.perform(shared, slot, proc, by);
        }
    }
}

/// Completes `task` with its reply, then lets go of this thread's share of it. For a detached task
/// (its future dropped) that share is the last, and dropping it drops the user's value, whose `Drop`
/// may panic: that must not take the driver down (and break the pool) with it.
fn finish(task: Arc<dyn ProcTask>, body: Body<'_>, shared: &Shared) {
    task.finish(body, &shared.counters);
    crate::panic::contain(|| drop(task));
}

/// Marks the current thread as one of `shared`'s drivers until dropped (restoring what it was).
struct DrivingAs(usize);

impl DrivingAs {
    fn enter(shared: &Shared) -> DrivingAs {
        // The same number `is_driving` compares: the address of the `Shared` in its `Arc`.
        DrivingAs(DRIVING.with(|d| d.replace(shared as *const Shared as usize)))
    }
}

impl Drop for DrivingAs {
    fn drop(&mut self) {
        DRIVING.with(|d| d.set(self.0));
    }
}

impl Driver {
    fn run(mut self) {
        DRIVING.with(|d| d.set(Arc::as_ptr(&self.shared) as usize));
        let mut guard = PanicGuard {
            shared: self.shared.clone(),
            slot: self.slot,
            armed: true,
        };
        let mut failed_starts = 0;
        loop {
            let proc = match self.start() {
                Ok(proc) => {
                    failed_starts = 0;
                    proc
                }
                // Under the resilient policy a worker that *died* while starting (killed from outside,
                // say) is retried a few times before the pool gives up; a refused handshake or a
                // failing initializer is not.
                Err(StartError::Failed(_, Retry::Worth))
                    if self.shared.config.on_worker_death == WorkerDeath::Respawn
                        && failed_starts < MAX_START_RETRIES =>
                {
                    failed_starts += 1;
                    continue;
                }
                Err(StartError::Failed(cause, _)) => {
                    self.fail_start(cause);
                    break;
                }
                Err(StartError::Stopped) => {
                    self.stopped_while_starting();
                    break;
                }
            };
            let end = self.serve(&proc);
            if !self.after_end(&proc, end) {
                break;
            }
        }
        guard.armed = false;
    }

    /// Spawns a worker process and shakes hands with it (and runs the initializer). On failure, also
    /// says whether another start is worth a try under the resilient policy.
    fn start(&mut self) -> Result<Arc<Proc>, StartError> {
        let config = &self.shared.config;
        let proc = Proc::spawn(
            &config.env,
            config.frame_cap,
            Arc::downgrade(&self.shared),
            self.slot,
        )
        .map_err(|e| StartError::Failed(BrokenCause::StartFailed(e.to_string()), Retry::Futile))?;
        let broken = {
            let mut st = self.shared.lock();
            st.spawned += 1;
            // A start while a worker that ended has not been replaced yet replaces it.
            if st.ended > st.respawned {
                st.respawned += 1;
            }
            st.slots[self.slot].proc = Some(proc.clone());
            matches!(st.lifecycle, Lifecycle::Broken(_))
        };
        if broken {
            proc.kill(KillReason::PoolBroken, libc::SIGKILL);
        }
        match self.handshake(&proc) {
            Ok(()) => Ok(proc),
            Err(failure) => {
                proc.kill(KillReason::Protocol("handshake".into()), libc::SIGKILL);
                let (status, kill) = proc.reap();
                {
                    let mut st = self.shared.lock();
                    st.slots[self.slot].proc = None;
                    if matches!(st.lifecycle, Lifecycle::Open) {
                        st.ended += 1;
                    }
                }
                // The pool itself stopped this worker (`terminate_workers`/`kill_workers`, or another
                // worker broke the pool): not a start-up failure, so it neither breaks the pool nor,
                // under the resilient policy, starts a new worker.
                if matches!(kill, Some(KillReason::Forced | KillReason::PoolBroken)) {
                    return Err(StartError::Stopped);
                }
                let exit = WorkerExit {
                    pid: proc.pid,
                    status,
                };
                let retry = match self.shared.lock().lifecycle {
                    Lifecycle::Broken(_) => Retry::Futile,
                    _ => Retry::Worth,
                };
                Err(match failure {
                    Failure::Start(msg, WorkerEnd::Died) => StartError::Failed(
                        BrokenCause::StartFailed(format!("{msg} ({exit})")),
                        retry,
                    ),
                    Failure::Start(msg, WorkerEnd::Killed) => {
                        StartError::Failed(BrokenCause::StartFailed(msg), Retry::Futile)
                    }
                    Failure::Init(msg, WorkerEnd::Died) => StartError::Failed(
                        BrokenCause::InitializerFailed(format!("{msg} ({exit})")),
                        retry,
                    ),
                    Failure::Init(msg, WorkerEnd::Killed) => {
                        StartError::Failed(BrokenCause::InitializerFailed(msg), Retry::Futile)
                    }
                })
            }
        }
    }

    fn handshake(&mut self, proc: &Proc) -> Result<(), Failure> {
        let config = &self.shared.config;
        let pid = proc.pid;
        let mut turn = lock(&proc.turn);
        let _ = proc.stream.set_read_timeout(Some(config.handshake_timeout));
        match turn.reader.read_frame(&proc.stream) {
            Ok(body) => handshake::check_hello(&body.contiguous(), pid)
                .map_err(|m| Failure::Start(m, WorkerEnd::Killed))?,
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) =>
            {
                return Err(Failure::Start(
                    format!(
                        "worker pid {pid} did not complete the handshake within {:?}: is this \
                         program's process-pool worker entry linked, and is it the same build?",
                        config.handshake_timeout
                    ),
                    WorkerEnd::Killed,
                ))
            }
            Err(e) => {
                return Err(Failure::Start(
                    format!(
                        "worker pid {pid} ended before the handshake ({e}){}",
                        handshake::valgrind_hint()
                    ),
                    WorkerEnd::Died,
                ))
            }
        }
        let _ = proc.stream.set_read_timeout(None);
        let Some(init) = &config.init else {
            return Ok(());
        };
        let died = |e: io::Error| {
            Failure::Init(
                format!("the worker died while running the initializer ({e})"),
                WorkerEnd::Died,
            )
        };
        proc.send(init).map_err(died)?;
        let body = turn.reader.read_frame(proc.channel()).map_err(died)?;
        code::decode_one::<()>(body, 1).map_err(|e| {
            let msg = match e {
                Error::Failed(e) => e.to_string(),
                Error::Panicked(m) => format!("the initializer panicked: {m}"),
                other => other.to_string(),
            };
            crate::report::initializer_failed(&msg);
            Failure::Init(msg, WorkerEnd::Killed)
        })
    }

    /// A worker could not be started: the pool breaks (whatever the death policy: a pool that cannot
    /// start workers cannot run its queue).
    fn fail_start(&self, cause: BrokenCause) {
        let mut st = self.shared.lock();
        st.starting -= 1;
        let mut after = self.shared.break_locked(&mut st, cause);
        after.wake = leave(&self.shared, self.slot, &mut st);
        drop(st);
        after.run();
    }

    /// The pool stopped the worker this driver was starting (forced shutdown, or broken): leave. The
    /// queue is empty then (both drain it and refuse submits); should a task be there anyway and no
    /// other driver be left to take it, it fails rather than being stranded.
    fn stopped_while_starting(&self) {
        let mut st = self.shared.lock();
        st.starting -= 1;
        let mut after = Aftermath::default();
        if st.drivers == 1 {
            let err = match &st.lifecycle {
                Lifecycle::Broken(b) => Error::BrokenProcessPool(b.clone()),
                _ => Error::BrokenProcessPool(BrokenProcessPool::new(
                    BrokenCause::ForcedShutdown,
                    BrokenSeenBy::Future,
                )),
            };
            after.fail = st.queue.drain(..).map(|t| (t, err.clone())).collect();
        }
        after.wake = leave(&self.shared, self.slot, &mut st);
        drop(st);
        after.run();
    }

    /// Serves a ready worker until its channel ends; returns how it ended.
    ///
    /// Replies are read by whoever holds the worker's [`Turn`]: this thread, or a caller blocked on
    /// the running task's result (`Proc::help`), which then handles the reply itself. This thread
    /// never waits for the turn while a caller holding it may be blocked reading: it takes the turn
    /// when its wait set says data or the worker's end is there and it holds the reader right (a
    /// caller that holds the turn without the right is not reading, and leaves), or once the worker
    /// exited, after ending every read of its socket. It never waits for the turn while a frame
    /// posted for it to write is pending (the caller may be waiting for the reply to that very frame).
    fn serve(&mut self, proc: &Arc<Proc>) -> io::Error {
        let shared = &*self.shared;
        let slot = self.slot;
        let first = {
            let mut st = shared.lock();
            st.starting -= 1;
            take_next(shared, slot, &mut st, Offer::Queue)
        };
        first.perform(shared, slot, proc, By::Driver);
        let mut woken_by = Ready::Woken;
        loop {
            let read = match woken_by {
                Ready::Woken => Ok(false),
                // Level-triggered: the wait set reports data until it is read. A caller that holds
                // the reader right reads it instead, and puts the socket back in the wait set when
                // it leaves.
                Ready::Readable => {
                    if proc.claim_read() {
                        let read = self.read_reply(proc, Ended::No);
                        proc.release_read();
                        read
                    } else {
                        Ok(false)
                    }
                }
                // What the worker wrote before it exited is read first, then end-of-file, even if
                // a process that inherited the worker's end keeps the socket open: the read side is
                // shut, which also ends a caller's blocking read, so the turn is soon free.
                Ready::Exited => {
                    proc.mark_ended();
                    proc.end_reads();
                    self.read_reply(proc, Ended::Yes)
                }
            };
            match read {
                // A reply was handled: look again before reading (more may be there).
                Ok(true) => {
                    woken_by = Ready::Woken;
                    continue;
                }
                Ok(false) => {}
                Err(e) => return e,
            }
            woken_by = match proc.wait() {
                Ok(ready) => ready,
                Err(e) => {
                    proc.mark_ended();
                    return e;
                }
            };
            // A submit claimed this idle worker and left (the rest of) its frame for us to write.
            if woken_by == Ready::Woken {
                if let Some((frame, from)) = proc.take_post() {
                    shared.recycle_frame(send_frame(proc, frame, from));
                }
            }
        }
    }

    /// Reads and handles the worker's next reply, without blocking: `Ok(true)` if one was handled,
    /// `Ok(false)` if no whole reply is there yet, `Err` once the channel ended (or cannot be
    /// trusted).
    fn read_reply(&self, proc: &Proc, ended: Ended) -> io::Result<bool> {
        let mut turn = lock(&proc.turn);
        let Turn { reader, served } = &mut *turn;
        let read = match proc::read_nowait(reader, &proc.stream) {
            Ok(Some(body)) => {
                reply_step(&self.shared, self.slot, proc, body, served, By::Driver);
                Ok(true)
            }
            Ok(None) if ended == Ended::Yes => Err(io::ErrorKind::UnexpectedEof.into()),
            Ok(None) => Ok(false),
            Err(e) => Err(e),
        };
        if read.is_err() {
            // With the turn still held: a submit that takes the turn next sees the worker gone
            // (see `Shared::enqueue`), before this driver settles the death without it.
            proc.mark_ended();
        }
        read
    }

    /// The worker's channel ended: reap it, settle its task, and decide whether to start another
    /// (`true`) or leave.
    fn after_end(&mut self, proc: &Arc<Proc>, end: io::Error) -> bool {
        let shared = &*self.shared;
        if end.kind() == io::ErrorKind::InvalidData {
            proc.kill(KillReason::Protocol(end.to_string()), libc::SIGKILL);
        }
        let (status, kill) = proc.reap();
        let exit = WorkerExit {
            pid: proc.pid,
            status,
        };
        let mut st = shared.lock();
        if matches!(st.lifecycle, Lifecycle::Open) {
            st.ended += 1;
        }
        let phase = mem::replace(&mut st.slots[self.slot].phase, Phase::Starting);
        st.slots[self.slot].proc = None;
        st.idle.retain(|&i| i != self.slot);
        let planned = matches!(phase, Phase::Retiring);
        let victim = match phase {
            Phase::Busy(task) => Some(task),
            _ => None,
        };
        let mut after = Aftermath::default();
        let crash = |st: &mut PoolState, cause: BrokenCause, after: &mut Aftermath| match shared
            .config
            .on_worker_death
        {
            WorkerDeath::BreakPool => {
                *after = shared.break_locked(st, cause);
                match &st.lifecycle {
                    Lifecycle::Broken(b) => Error::BrokenProcessPool(b.clone()),
                    _ => Error::WorkerDied(exit),
                }
            }
            WorkerDeath::Respawn => Error::WorkerDied(exit),
        };
        let victim_error = match kill {
            Some(KillReason::Interrupt) => Error::Interrupted,
            Some(KillReason::TimeLimit(limit)) => Error::TimeLimit(limit),
            Some(KillReason::Forced) => Error::BrokenProcessPool(BrokenProcessPool::new(
                BrokenCause::ForcedShutdown,
                BrokenSeenBy::Future,
            )),
            Some(KillReason::PoolBroken) => match &st.lifecycle {
                Lifecycle::Broken(b) => Error::BrokenProcessPool(b.clone()),
                _ => Error::WorkerDied(exit),
            },
            Some(KillReason::Protocol(msg)) => {
                crash(&mut st, BrokenCause::Protocol(msg), &mut after)
            }
            None if planned => Error::WorkerDied(exit),
            None => crash(&mut st, BrokenCause::WorkerDied(exit), &mut after),
        };
        if let Some(task) = victim {
            if task.time_limit().is_some() {
                shared.timer.disarm(task.id());
            }
            after.fail.push((task, victim_error));
        }
        let respawn = !matches!(st.lifecycle, Lifecycle::Broken(_)) && !st.queue.is_empty();
        if respawn {
            st.starting += 1;
        } else {
            after.wake = leave(shared, self.slot, &mut st);
        }
        drop(st);
        after.run();
        respawn
    }
}

/// Whether the worker is known to have exited when the driver reads its socket.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Ended {
    /// Its exit descriptor says so: nothing more is coming, whoever holds its end of the socket.
    Yes,
    /// Not known: an empty socket means the reply has not arrived yet.
    No,
}

/// Why `start` gave up.
enum StartError {
    /// Breaks the pool with this cause, unless another start is worth a try.
    Failed(BrokenCause, Retry),
    /// The pool killed the worker on purpose while it started.
    Stopped,
}

/// Whether another start may succeed where one failed, under the resilient policy.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Retry {
    /// The worker died on its own while it started (killed from outside, say), and the pool is not
    /// broken.
    Worth,
    /// No process could be started, the worker refused or failed its start, or the pool broke
    /// meanwhile: another start would end the same way.
    Futile,
}

/// Why starting a worker failed (the handshake, or the initializer), and how the worker ended.
enum Failure {
    Start(String, WorkerEnd),
    Init(String, WorkerEnd),
}

/// How the worker of a failed start ended.
#[derive(Clone, Copy, PartialEq, Eq)]
enum WorkerEnd {
    /// On its own, before it answered: its exit status says why, and goes in the message.
    Died,
    /// Killed by the pool: it refused, failed or did not answer in time.
    Killed,
}

/// If a driver thread panics (a bug), its worker is killed (dropping the last `Proc` reaps it), its
/// task fails, and the pool breaks, so no future is stranded.
struct PanicGuard {
    shared: Arc<Shared>,
    slot: usize,
    armed: bool,
}

impl Drop for PanicGuard {
    fn drop(&mut self) {
        // A panic after this driver left the pool (a user's waker panicking while the
        // aftermath of `leave` runs) must not leave a second time: that would corrupt the count of
        // drivers, or a slot already reused by a new driver.
        if !self.armed || !is_driving(&self.shared) {
            return;
        }
        let mut st = self.shared.lock();
        let phase = mem::replace(&mut st.slots[self.slot].phase, Phase::Retiring);
        if matches!(phase, Phase::Starting) {
            st.starting -= 1;
        }
        let mut after = self.shared.break_locked(
            &mut st,
            BrokenCause::Protocol("internal error: a driver thread panicked".into()),
        );
        if let Phase::Busy(task) = phase {
            let e = match &st.lifecycle {
                Lifecycle::Broken(b) => Error::BrokenProcessPool(b.clone()),
                _ => Error::Abandoned,
            };
            after.fail.push((task, e));
        }
        after.wake = leave(&self.shared, self.slot, &mut st);
        drop(st);
        after.run();
    }
}
