//! One worker process as the parent sees it: its pid, the parent's end of its channel, and the lock
//! that makes killing and reaping it race-free.
//!
//! A pid may only be signalled while its process has not been reaped (after `waitpid` the number can be
//! reused by an unrelated process: procspawn#7). Every kill and the reap take [`Ctl`]'s lock, and the
//! reap clears `child`, so a kill after the reap is a no-op. Kills go to the worker's *process group*
//! (each worker leads its own), so whatever the task started dies with it.
//!
//! That lock is not enough when the host program ignores SIGCHLD: the kernel then reaps exited
//! children itself, at once, and their pids can be reused while `child` is still set. So signals
//! go through the worker's pidfd ([`Proc::signal`]): it names the process itself, not a number, and a
//! signal through it fails once the process is reaped. The group is signalled only after the pidfd
//! showed the leader still there (alive or a zombie), which keeps its number, and so its group id,
//! from being reused. Where pidfds are refused (an old kernel, a sandbox), the lock is the only
//! guard, and that one gap stays open; the worker's exit is then watched by a thread instead
//! ([`ExitWatch`]).
//!
//! Replies are read by whoever holds the [`Turn`]: the driver, or a caller blocked on the running
//! task's result ([`Proc::help`]). The turn changes hands without waking anyone: a caller takes the
//! socket out of the driver's wait set (if it is in) and takes the [`Reader`] right with one
//! compare-and-swap, reads (blocking, when it has no deadline), and gives both back. Only a holder of
//! that right, or the driver once the worker exited and every read was ended ([`Proc::end_reads`]),
//! waits for a reply or for the turn: the driver, which alone watches the worker's exit while a
//! caller blocks in `recv`, is never stuck behind that caller.
//!
//! The socket is in the driver's wait set only while someone other than a blocking caller waits for
//! the running task's reply ([`Listener`]): a task is written after its submit returns and before its
//! caller asks for the result, so a socket left in the set would let a quick reply wake the driver
//! before the caller took the socket out (common on few CPUs: the worker, woken with a sync
//! wake-up, often runs before the submitting thread gets that far). So the
//! socket is set up for the running task when it is dispatched (in the set if its future was
//! attended to, see [`Proc::listen_for`]), and put in the set later when the future is.

use std::ffi::OsString;
use std::fmt;
use std::io::{self, Read};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use super::handshake;
use super::os::{self, SocketWatch};
use super::shared::Shared;
use super::wire::{Body, FrameReader, Source, Want};
use crate::future::FutureId;
use crate::sync::{lock, Mutex};

/// Why the parent killed a worker; read when its death is noticed, to tell a deliberate kill from a crash.
#[derive(Clone, Debug)]
pub(crate) enum KillReason {
    /// `PoolFuture::interrupt` of the task running on this worker.
    Interrupt,
    /// The running task ran past its time limit.
    TimeLimit(Duration),
    /// `terminate_workers()` / `kill_workers()`.
    Forced,
    /// Another worker's death broke the pool; every worker is stopped.
    PoolBroken,
    /// The channel carried something impossible (or a write failed oddly): the stream cannot be trusted.
    Protocol(String),
}

struct Ctl {
    /// `None` once reaped.
    child: Option<Child>,
    /// The task the worker is running, for `interrupt` to check it targets the right one.
    running: Option<FutureId>,
    kill: Option<KillReason>,
}

/// What reading the worker's replies needs. Whoever holds it (the driver, or a caller blocked on the
/// running task's result: [`Proc::help`]) reads and handles the next reply; the other waits. Handling
/// a reply ([`super::driver::reply_step`]) happens with it held, so replies are handled one at a time
/// and in order. Only a holder of the [`Reader`] right may wait for a reply with it held.
pub(crate) struct Turn {
    /// The worker's replies, as far as they have arrived.
    pub(crate) reader: FrameReader,
    /// Tasks this worker has finished (for `max_tasks_per_child`).
    pub(crate) served: usize,
}

/// Who may wait for the worker's next reply while holding the [`Turn`]; the right is taken with one
/// compare-and-swap from `Nobody` and given back with one store.
///
/// It keeps the driver from ever waiting for the turn while a caller holding it could be blocked in
/// `recv`: a blocking read cannot watch the worker's exit, so the driver must stay free to see the
/// worker's exit and end that read ([`Proc::end_reads`]). The driver takes the turn only with the
/// right (data or an end is there: handling it does not block on the worker) or after ending every
/// read (the worker exited).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub(crate) enum Reader {
    /// No one: the socket is in the driver's wait set if the driver [listens](Listener::Driver).
    Nobody = 0,
    /// The driver handles what its wait set reported.
    Driver = 1,
    /// A caller blocked on the running task's result reads the reply ([`Proc::help`]); the socket
    /// is out of the driver's wait set.
    Caller = 2,
}

/// The [`Reader`] right, shared by the driver and the callers.
struct ReadRight(AtomicU8);

impl ReadRight {
    /// `Nobody` → `by`; `false` if someone else holds the right.
    fn claim(&self, by: Reader) -> bool {
        self.0
            .compare_exchange(
                Reader::Nobody as u8,
                by as u8,
                Ordering::AcqRel,
                Ordering::Acquire,
            )
            .is_ok()
    }

    /// Back to `Nobody`.
    fn release(&self) {
        self.0.store(Reader::Nobody as u8, Ordering::Release);
    }

    fn holder(&self) -> Reader {
        match self.0.load(Ordering::Acquire) {
            0 => Reader::Nobody,
            1 => Reader::Driver,
            _ => Reader::Caller,
        }
    }
}

/// Who is woken by the worker's next reply: whether its socket is in the driver's wait set.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Listener {
    /// The driver (the socket is in its wait set): the running task's future was attended to
    /// otherwise than by a blocking `result` (polled, given a callback, dropped, looked at), a task
    /// waits in the queue for a worker, or the pool is shutting down.
    Driver,
    /// Only a caller blocked on the running task's result, which reads the reply itself
    /// ([`Proc::help`]): the driver sleeps through the reply.
    Caller,
}

/// Whether a caller reads the worker's replies in its driver's place ([`Proc::help`], [`Reading`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Helper {
    /// No caller reads: replies are the driver's to read, if it listens.
    Absent,
    /// A caller reads the reply itself: the socket is out of the driver's set meanwhile, whoever
    /// listens. One caller at a time: a caller reads only with the [`Turn`] held.
    Reading,
}

/// The socket's place in the driver's wait set: in it when the driver [listens](Listener::Driver)
/// and no caller is reading the reply itself.
struct Watch {
    listener: Listener,
    /// Who the worker's last task needed listening for its reply (the driver if its future was
    /// attended to): what a dispatch expects of the next one (see [`Proc::listen_for`]).
    last_need: Listener,
    helper: Helper,
}

impl Watch {
    fn in_set(&self) -> bool {
        self.socket_watch() == SocketWatch::Readable
    }

    fn socket_watch(&self) -> SocketWatch {
        match (self.listener, self.helper) {
            (Listener::Driver, Helper::Absent) => SocketWatch::Readable,
            (Listener::Caller, _) | (_, Helper::Reading) => SocketWatch::EndOnce,
        }
    }
}

/// The pool and slot a worker belongs to: what a helping caller needs to handle a reply as its
/// driver would.
struct Link {
    shared: Weak<Shared>,
    slot: usize,
}

/// A live (or dying, not yet reaped) worker process.
pub(crate) struct Proc {
    pub(crate) pid: u32,
    pub(crate) stream: UnixStream,
    /// Readable once the worker has exited (see [`Proc::channel`]).
    exit: ExitWatch,
    ctl: Mutex<Ctl>,
    pub(crate) turn: Mutex<Turn>,
    link: Link,
    /// What the driver sleeps on: the socket (while the driver listens and no caller reads: `watch`),
    /// `wake`, `exit`.
    waits: os::WaitSet,
    /// Whether the socket is in `waits`; changed only with this lock held, so the set follows it.
    watch: Mutex<Watch>,
    /// Who may wait for the next reply with the turn held.
    reader: ReadRight,
    /// The driver saw the worker exit or its channel end ([`Proc::mark_ended`]).
    ended: AtomicBool,
    /// A frame a submitting thread handed to the driver to write, and how much of it was written
    /// already (see [`Proc::post`]).
    outbox: Mutex<Option<(Vec<u8>, usize)>>,
    /// `outbox` holds a frame: read without the lock by the driver's spin.
    posted: AtomicBool,
    /// The driver is (about to be) asleep in `poll`: a post must signal `wake`.
    sleeping: AtomicBool,
    /// An eventfd in the driver's `poll`, so a post wakes a sleeping driver.
    wake: OwnedFd,
}

/// A caller reading a worker's replies in its driver's place ([`Proc::help`]): it holds the
/// [`Reader`] right, the socket is out of the driver's wait set, and the driver does not spin for it.
/// Dropping it gives the right back and then puts the socket back if the driver listens, also when
/// handling the reply unwinds (a user's waker that panics), so the driver is never left deaf to the
/// worker: data that arrived meanwhile (or an end) wakes it at once, and it finds the right free.
struct Reading<'a>(&'a Proc);

impl<'a> Reading<'a> {
    /// `None` if the driver is handling what its wait set reported (the reply, perhaps): the caller
    /// then leaves the reply to it. The socket leaves the wait set *before* the right is taken, so
    /// once a caller holds the right, the driver can be woken by the socket at most by what it
    /// reported before (and once by a hang-up): it never spins on a socket it may not read.
    fn start(proc: &'a Proc) -> Option<Self> {
        proc.set_helper(Helper::Reading);
        if proc.reader.claim(Reader::Caller) {
            return Some(Reading(proc));
        }
        proc.set_helper(Helper::Absent);
        None
    }
}

impl Drop for Reading<'_> {
    fn drop(&mut self) {
        self.0.reader.release();
        self.0.set_helper(Helper::Absent);
    }
}

/// The worker's socket read blocking, by a caller that holds the [`Reader`] right: the driver ends
/// such a read when the worker exits ([`Proc::end_reads`]), so it cannot outlast the worker even when
/// a process the task forked holds the worker's end open. The rest of a frame whose header has come
/// is one `recv` that waits for all of it (`MSG_WAITALL`, which that end also ends).
struct Blocking<'a>(&'a UnixStream);

impl Read for Blocking<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.read_for(buf, Want::Some)
    }
}

impl Source for Blocking<'_> {
    fn read_for(&mut self, buf: &mut [u8], want: Want) -> io::Result<usize> {
        os::recv(self.0.as_fd(), buf, want.recv_flags())?
            .ok_or_else(|| io::ErrorKind::Interrupted.into())
    }

    fn read_spare(&mut self, buf: &mut Vec<u8>, max: usize, want: Want) -> io::Result<usize> {
        os::recv_spare(self.0.as_fd(), buf, max, want.recv_flags())?
            .ok_or_else(|| io::ErrorKind::Interrupted.into())
    }
}

/// The worker's side of the channel as the driver reads it, blocking, while the worker starts (its
/// initializer's reply): its death ends the stream even when another process holds a copy of the
/// worker's end (a task that forked without exec), which would otherwise keep the socket open and hide
/// the death for as long as that process lives (the future would hang, and the forked process outlive
/// the pool).
pub(crate) struct Channel<'a>(&'a Proc);

impl Source for Channel<'_> {}

impl Read for Channel<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let proc = self.0;
        loop {
            if let Some(n) = os::recv_nowait(proc.stream.as_fd(), buf)? {
                return Ok(n);
            }
            match proc.wait()? {
                os::Ready::Readable => {}
                // Exited: whatever it wrote before is read first; then end-of-file.
                os::Ready::Exited => {
                    return Ok(os::recv_nowait(proc.stream.as_fd(), buf)?.unwrap_or(0))
                }
                // Nothing is posted before the worker is up: this read is only the handshake's.
                os::Ready::Woken => {}
            }
        }
    }
}

/// The socket read without blocking: `WouldBlock` when nothing has arrived (the frame reader keeps
/// what it has and carries on at the next read).
struct NoWait<'a>(&'a UnixStream);

impl Read for NoWait<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        os::recv_nowait(self.0.as_fd(), buf)?.ok_or_else(|| io::ErrorKind::WouldBlock.into())
    }
}

impl Source for NoWait<'_> {
    fn read_spare(&mut self, buf: &mut Vec<u8>, max: usize, _: Want) -> io::Result<usize> {
        os::recv_spare(self.0.as_fd(), buf, max, libc::MSG_DONTWAIT)?
            .ok_or_else(|| io::ErrorKind::WouldBlock.into())
    }
}

/// The next reply if it has arrived whole, without blocking (`None`: not yet). End-of-file, even in
/// the middle of a frame, is `UnexpectedEof`; a corrupt header is `InvalidData`.
pub(crate) fn read_nowait<'r>(
    reader: &'r mut FrameReader,
    stream: &UnixStream,
) -> io::Result<Option<Body<'r>>> {
    match reader.read_frame(NoWait(stream)) {
        Ok(body) => Ok(Some(body)),
        Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(None),
        Err(e) => Err(e),
    }
}

/// What became of a frame [`Proc::send_or_post`] was asked to write.
pub(crate) enum Sent {
    /// Written whole: the buffer, for reuse.
    Whole(Vec<u8>),
    /// Partly written; the worker's driver writes the rest.
    Posted,
    /// Not a byte written: the worker's end of the socket is closed, so the worker died before it
    /// could read any of the task. The frame, to run the task elsewhere.
    Refused(Vec<u8>),
    /// The write failed otherwise; the worker is being killed and its driver fails the task. The
    /// buffer, for reuse.
    Lost(Vec<u8>),
}

/// What the driver's [`Proc::wait`] (and so its next step) was woken by.
pub(crate) use os::Ready;

/// An environment change for the workers.
#[derive(Clone, Debug)]
pub(crate) enum EnvOp {
    Set(OsString, OsString),
    Remove(OsString),
    Clear,
}

impl Proc {
    /// Starts `/proc/self/exe` as a worker: its own process group, the channel as its stdin, stdout and
    /// stderr inherited. No `pre_exec`, so std can use `posix_spawn` (no fork of a threaded parent).
    /// Must run on the thread that will outlive the worker (the driver): `PR_SET_PDEATHSIG` is tied to it.
    pub(crate) fn spawn(
        env: &[EnvOp],
        frame_cap: usize,
        shared: Weak<Shared>,
        slot: usize,
    ) -> Result<Arc<Proc>, SpawnError> {
        // One spawn at a time, from the socketpair until the parent's copy of the child's
        // end is closed (when `cmd` drops, after `spawn` returned, i.e. after the child's exec). A
        // child being spawned meanwhile by another driver inherits every descriptor until its own
        // exec, so it could hold this worker's end: the worker's death then stays unseen (no
        // end-of-file) until that other child has exec'd. This only orders the pool's own spawns.
        static SPAWNING: std::sync::Mutex<()> = std::sync::Mutex::new(());
        let _one_at_a_time = SPAWNING.lock().unwrap_or_else(|e| e.into_inner());
        let (parent_end, child_end) = UnixStream::pair()?;
        os::bound_write_waits(&parent_end)?;
        let mut cmd = Command::new("/proc/self/exe");
        for op in env {
            match op {
                EnvOp::Set(k, v) => cmd.env(k, v),
                EnvOp::Remove(k) => cmd.env_remove(k),
                EnvOp::Clear => cmd.env_clear(),
            };
        }
        cmd.env(handshake::marker_name(), handshake::marker(frame_cap))
            .stdin(Stdio::from(OwnedFd::from(child_end)))
            .process_group(0);
        let wake = os::eventfd()?;
        let child = cmd.spawn()?;
        let pid = child.id();
        drop(cmd); // closes our copy of the child's end, before the lock is released
        let exit = match ExitWatch::start(pid) {
            Ok(exit) => exit,
            Err(e) => {
                abandon(None, child);
                return Err(e);
            }
        };
        let waits = match os::WaitSet::new(parent_end.as_fd(), exit.fd(), wake.as_fd()) {
            Ok(waits) => waits,
            Err(e) => {
                abandon(Some(&exit), child);
                return Err(e.into());
            }
        };
        Ok(Arc::new(Proc {
            pid,
            stream: parent_end,
            exit,
            ctl: Mutex::new(Ctl {
                child: Some(child),
                running: None,
                kill: None,
            }),
            turn: Mutex::new(Turn {
                reader: FrameReader::new(frame_cap),
                served: 0,
            }),
            link: Link { shared, slot },
            waits,
            // `WaitSet::new` put the socket in the set.
            watch: Mutex::new(Watch {
                listener: Listener::Driver,
                // A first task is guessed to be blocked on; an awaited one puts it right at its
                // first poll.
                last_need: Listener::Caller,
                helper: Helper::Absent,
            }),
            reader: ReadRight(AtomicU8::new(Reader::Nobody as u8)),
            ended: AtomicBool::new(false),
            outbox: Mutex::new(None),
            posted: AtomicBool::new(false),
            sleeping: AtomicBool::new(false),
            wake,
        }))
    }

    /// Writes a frame to this (claimed, `Busy`) worker without blocking the calling thread: what the
    /// socket takes at once is written here (a small task's frame, whole: no hand-off on the round
    /// trip), the rest is handed to the worker's driver, which writes it from its own thread (a
    /// submit must not block its caller, an async runtime's thread perhaps, for as long as a large
    /// write takes).
    pub(crate) fn send_or_post(&self, frame: Vec<u8>) -> Sent {
        match os::send_nowait(self.stream.as_fd(), &frame) {
            Ok(n) if n == frame.len() => Sent::Whole(frame),
            Ok(n) => {
                self.post(frame, n);
                Sent::Posted
            }
            // The worker's end is closed: it died (or is dying) before reading a byte of the task.
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::BrokenPipe | io::ErrorKind::ConnectionReset
                ) =>
            {
                Sent::Refused(frame)
            }
            Err(e) => {
                let why = KillReason::Protocol(format!("writing a task failed: {e}"));
                self.kill(why, libc::SIGKILL);
                Sent::Lost(frame)
            }
        }
    }

    /// Hands the rest of a frame (from `offset`) to this worker's driver; its next read of
    /// [`channel`](Self::channel) returns [`is_posted`]. The worker must be claimed for it (`Busy`),
    /// so its driver is waiting on the channel with nothing else to write.
    fn post(&self, frame: Vec<u8>, offset: usize) {
        *lock(&self.outbox) = Some((frame, offset));
        self.posted.store(true, Ordering::SeqCst);
        if self.sleeping.load(Ordering::SeqCst) {
            os::eventfd_signal(self.wake.as_fd());
        }
    }

    /// The frame [`post`](Self::post)ed for the driver, with the offset to write it from, once.
    pub(crate) fn take_post(&self) -> Option<(Vec<u8>, usize)> {
        if !self.posted.swap(false, Ordering::SeqCst) {
            return None;
        }
        lock(&self.outbox).take()
    }

    /// The stream of the worker's replies, ending when the worker exits (see [`Channel`]).
    pub(crate) fn channel(&self) -> Channel<'_> {
        Channel(self)
    }

    /// The driver's sleep: until the socket has something to read (unless a helping caller took it
    /// out of the wait set), a frame was posted for the driver to write (`Woken`), or the worker
    /// exited. Before sleeping, it asks the socket again for a moment, as the crate-wide spin policy
    /// allows (`crate::spin`: a few microseconds, only while it has been paying off on this driver,
    /// only with a spinner slot free and a CPU to spare), unless a caller is reading the reply itself.
    pub(crate) fn wait(&self) -> io::Result<Ready> {
        if self.reader.holder() == Reader::Nobody && lock(&self.watch).in_set() {
            let mut seen = None;
            crate::spin::spin_here(crate::spin::Probe::Syscall, || {
                if self.posted.load(Ordering::Acquire) {
                    seen = Some(Ready::Woken);
                } else if !lock(&self.watch).in_set() {
                    // A dispatch left the next reply to a blocking caller: stop looking, or this
                    // spin would take the reply from under it (and keep winning, spin after spin).
                    return true;
                } else if os::has_input(self.stream.as_fd()) {
                    seen = Some(Ready::Readable);
                }
                seen.is_some()
            });
            if let Some(seen) = seen {
                return Ok(seen);
            }
        }
        // Announce the sleep, then look once more: either this sees the post, or the poster sees
        // `sleeping` and signals `wake` (both orderings are SeqCst).
        self.sleeping.store(true, Ordering::SeqCst);
        if self.posted.load(Ordering::SeqCst) {
            self.sleeping.store(false, Ordering::SeqCst);
            return Ok(Ready::Woken);
        }
        let ready = self.waits.wait(self.wake.as_fd());
        self.sleeping.store(false, Ordering::SeqCst);
        ready
    }

    /// Called by a thread about to block until task `id` ends: if that task is the one this worker
    /// runs, and no one else is reading its replies, this thread reads the reply itself and handles it
    /// as the driver would ([`super::driver::reply_step`]: the future completes, its done callbacks
    /// run here, the worker gets its next task). The reply then wakes one thread, this one, instead
    /// of the driver and then this one. Returns at the reply, at `deadline`, or at once if the task
    /// is not running here (any more) or the driver is handling what the socket brought; anything
    /// else (the worker's death, a protocol error) is left to the driver, which sees it as it would
    /// have. Without a deadline the read blocks in `recv`, which the worker's exit ends (the driver
    /// watches its exit: [`Proc::end_reads`]); with one, it waits in `poll` on the socket and the
    /// exit descriptor. `started` tells whether the task's future is RUNNING (see below).
    pub(crate) fn help(&self, id: FutureId, deadline: Option<Instant>, started: &dyn Fn() -> bool) {
        if deadline.is_some_and(|d| d <= Instant::now()) {
            return; // a zero timeout: only a look at the future, which the caller takes next
        }
        // The driver holds the turn only while data or the worker's end is there (it is then
        // handling this very task's reply, running its done callbacks, or a death) or while it
        // hands this worker the task just submitted; none of it waits for this thread. Without a
        // deadline, wait for it: the future ends no sooner anyway. With one, do not: the callbacks
        // could outlast it.
        let mut turn = match (deadline, self.turn.try_lock()) {
            (_, Ok(turn)) => turn,
            (_, Err(std::sync::TryLockError::Poisoned(e))) => e.into_inner(),
            (None, Err(std::sync::TryLockError::WouldBlock)) => lock(&self.turn),
            (Some(_), Err(std::sync::TryLockError::WouldBlock)) => return,
        };
        {
            let ctl = lock(&self.ctl);
            if ctl.running != Some(id) || ctl.kill.is_some() || ctl.child.is_none() {
                return;
            }
        }
        // The pool names the worker's task (`running`) just before the task's future starts, and
        // forgets it again if a cancel wins that race: no reply comes for such a task, and a caller
        // that waited for one would wait until this worker's next task replies, or forever. Once
        // the future is RUNNING, its reply (handled only with the turn, which this thread holds)
        // or the worker's death is still to come.
        if !started() {
            return;
        }
        let Some(shared) = self.link.shared.upgrade() else {
            return;
        };
        // The reply must not wake the driver too: out of its wait set while this thread reads.
        let Some(_reading) = Reading::start(self) else {
            return;
        };
        // The rest of this task's frame, if the submit left it for the driver to write and the
        // driver has not taken it yet: this thread has nothing else to do until the reply, and
        // writing it here spares the driver's wake-up on the way. Not with a deadline, which a large
        // write could outlast.
        if deadline.is_none() {
            if let Some((frame, from)) = self.take_post() {
                shared.recycle_frame(super::shared::send_frame(self, frame, from));
            }
        }
        let Turn { reader, served } = &mut *turn;
        if deadline.is_none() {
            // One blocking read: it ends at the reply, or at end-of-file, which the driver makes
            // when it sees the worker exit, however many processes hold the worker's end.
            let read = reader.read_frame(Blocking(&self.stream)).map(Some);
            self.handle_reply(&shared, read, served);
            return;
        }
        // Wait first: the task was just handed over, so its reply is rarely there yet (and a `poll`
        // that finds it there costs what a read that finds nothing would).
        let exit = self.exit.fd();
        while let Ok(os::Reply::Readable) = os::wait_reply(self.stream.as_fd(), exit, deadline) {
            if self.handle_reply(&shared, read_nowait(reader, &self.stream), served) {
                break;
            }
        }
    }

    /// Sets who is woken by the reply of the task being dispatched, before the task is written:
    /// the driver if `driver_needed()` (see [`super::shared::Shared::assign`]), else what the last
    /// task needed. `driver_needed` is asked with this worker's watch locked, which
    /// [`attend`](Self::attend) also takes: an attend either comes first and is seen, or comes
    /// after and has the driver listen.
    ///
    /// A task is dispatched before its future is polled or blocked on, so the last task is the
    /// guess: a loop of `submit().result()` leaves each reply to its caller, a loop of awaited
    /// futures keeps the driver listening (no two `epoll_ctl` per task to take the socket out at
    /// the dispatch and put it back at the first poll). A wrong guess for the caller is put right
    /// by [`attend`](Self::attend); a wrong guess for the driver costs the race this avoids (the
    /// driver may read the reply the caller was about to), once.
    pub(crate) fn listen_for(&self, driver_needed: impl FnOnce() -> bool) {
        let mut watch = lock(&self.watch);
        let listener = if driver_needed() {
            Listener::Driver
        } else {
            watch.last_need
        };
        self.rewatch(&mut watch, |w| w.listener = listener);
    }

    /// Something other than a caller blocked on the running task's result waits for its end (or for
    /// the worker): the driver reads the next reply. Putting the socket back in the set while the
    /// reply is there already wakes the driver at once.
    pub(crate) fn attend(&self) {
        let mut watch = lock(&self.watch);
        self.rewatch(&mut watch, |w| w.listener = Listener::Driver);
    }

    /// Records what the task whose reply was just handled needed, for
    /// [`listen_for`](Self::listen_for).
    pub(crate) fn replied_to(&self, needed: Listener) {
        lock(&self.watch).last_need = needed;
    }

    /// A caller starts ([`Helper::Reading`]) or stops reading the reply itself: the socket leaves
    /// the driver's wait set meanwhile, and comes back after if the driver listens.
    fn set_helper(&self, helper: Helper) {
        let mut watch = lock(&self.watch);
        self.rewatch(&mut watch, |w| w.helper = helper);
    }

    /// Applies `change` to the (locked) watch and moves the socket in or out of the driver's wait
    /// set if that changed where it belongs.
    fn rewatch(&self, watch: &mut Watch, change: impl FnOnce(&mut Watch)) {
        let was = watch.socket_watch();
        change(watch);
        if watch.socket_watch() != was {
            self.waits.watch_socket(watch.socket_watch());
        }
    }

    /// The driver's claim of the [`Reader`] right, to handle what its wait set reported; `false` if a
    /// caller holds it (then the caller handles it). Given back with [`release_read`](Self::release_read).
    pub(crate) fn claim_read(&self) -> bool {
        self.reader.claim(Reader::Driver)
    }

    /// Gives back the right [`claim_read`](Self::claim_read) took.
    pub(crate) fn release_read(&self) {
        self.reader.release();
    }

    /// The worker exited: ends every read of its socket, now and later, once what it wrote has been
    /// read (`shutdown(SHUT_RD)`: a `recv` blocked in another thread returns end-of-file). Without
    /// it, a caller blocked reading the reply would wait for as long as a process the task forked
    /// (no exec) keeps the worker's end of the socket open.
    pub(crate) fn end_reads(&self) {
        let _ = self.stream.shutdown(std::net::Shutdown::Read);
    }

    /// Handles what a helping caller read ([`Proc::help`]); `false` if no whole reply has arrived
    /// yet, so the caller waits on.
    fn handle_reply(
        &self,
        shared: &Shared,
        read: io::Result<Option<Body<'_>>>,
        served: &mut usize,
    ) -> bool {
        match read {
            Ok(None) => return false,
            Ok(Some(body)) => {
                let by = super::driver::By::Caller;
                super::driver::reply_step(shared, self.link.slot, self, body, served, by);
            }
            // A corrupt stream: its bytes are consumed, so nothing would wake the driver; the
            // worker is killed, as the driver would, and the driver sees the death (and the
            // same error, still at the head of the reader).
            Err(e) if e.kind() == io::ErrorKind::InvalidData => {
                self.kill(KillReason::Protocol(e.to_string()), libc::SIGKILL);
            }
            // End-of-file (which stays readable) or a socket error: the driver's to handle.
            Err(_) => {}
        }
        true
    }

    /// Writes one frame (whole), blocking until the socket has taken it or the worker has exited
    /// (`BrokenPipe`, also when a process the task forked holds the worker's end open). Errors mean
    /// the worker is gone or the stream is unusable.
    pub(crate) fn send(&self, frame: &[u8]) -> io::Result<()> {
        os::send_all_until_exit(self.stream.as_fd(), self.exit.fd(), frame)
    }

    /// Tells the worker to exit once it has read everything sent so far (it sees end-of-file).
    pub(crate) fn close_write(&self) {
        let _ = self.stream.shutdown(std::net::Shutdown::Write);
    }

    /// Kills the worker's group with `signal`, recording why, unless it is already reaped. The first
    /// reason is the one its driver reports; a later SIGKILL is still sent, so `kill_workers()` after a
    /// `terminate_workers()` whose SIGTERM the task ignored (or a pool breaking meanwhile) does stop
    /// the worker (dropping every kill after the first would leave such a worker, its future and
    /// `shutdown()` hanging). Returns whether this call recorded the reason.
    pub(crate) fn kill(&self, reason: KillReason, signal: i32) -> bool {
        let mut ctl = lock(&self.ctl);
        if ctl.child.is_none() {
            return false;
        }
        let first = ctl.kill.is_none();
        if first {
            ctl.kill = Some(reason);
        }
        if first || signal == libc::SIGKILL {
            self.signal(signal);
        }
        first
    }

    /// Whether the driver has seen the worker exit (its exit descriptor) or its channel end, or
    /// reaped it, without a system call. It lags the exit by the driver's wake-up: a submit that
    /// finds the worker not known gone and then cannot write a byte to it learns the rest from the
    /// write ([`Sent::Refused`]).
    pub(crate) fn known_gone(&self) -> bool {
        self.ended.load(Ordering::Acquire) || lock(&self.ctl).child.is_none()
    }

    /// The driver saw the worker's exit descriptor turn readable, or read the end of its channel:
    /// the driver settles the worker's death next. Marked while the driver holds the turn, or
    /// before it waits for it, so a submit holding the turn either sees the mark or writes before
    /// the death is read.
    pub(crate) fn mark_ended(&self) {
        self.ended.store(true, Ordering::Release);
    }

    /// Whether the worker is known to be dead (or to have closed its channel), without blocking or
    /// reaping it. The exit is asked of the kernel (not only inferred from the socket): a copy of the
    /// worker's end held by another process (a program's own fork) would hide the hang-up.
    pub(crate) fn is_gone(&self) -> bool {
        let ctl = lock(&self.ctl);
        if ctl.child.is_none() {
            return true;
        }
        match &self.exit {
            // One system call.
            ExitWatch::Pidfd(pidfd) => os::closed_or_exited(self.stream.as_fd(), pidfd.as_fd()),
            // The watcher lags the exit by its wake-up: the kernel is asked as well.
            ExitWatch::Waiter(exited) => {
                os::closed_or_exited(self.stream.as_fd(), exited.as_fd())
                    || os::has_exited(self.pid)
            }
        }
    }

    /// Sends `signal` to the worker's process group. The caller holds the lock (or `&mut self`) and
    /// has checked that `child` is set: we have not reaped the worker ourselves.
    fn signal(&self, signal: i32) {
        if signal_group(self.exit.pidfd(), self.pid, signal) && signal != libc::SIGKILL {
            // A stopped process (SIGSTOP, a debugger, a frozen job) holds any other signal pending
            // until it is continued: without this, a `terminate_workers()` would leave a stopped
            // worker, its future and the `shutdown()` that follows waiting until someone sends it
            // SIGCONT. As systemd does after its SIGTERM.
            signal_group(self.exit.pidfd(), self.pid, libc::SIGCONT);
        }
    }

    /// Why the parent killed the worker, if it did (also after the reap).
    pub(crate) fn kill_reason(&self) -> Option<KillReason> {
        lock(&self.ctl).kill.clone()
    }

    /// Kills the worker only if it is running task `id` now (interrupt, time limit): not once its
    /// reply has begun to arrive, read or not. A worker writes nothing but the reply of the task it
    /// runs, and it writes it once the task has returned; and a reply may wait unread in the socket
    /// for as long as its caller has not asked for it (no one listens for it: [`Listener::Caller`]).
    /// Killed then, a worker that finished in time would be lost to its time limit, and an interrupt
    /// would claim to stop a task that had ended.
    pub(crate) fn kill_running(&self, id: FutureId, reason: KillReason) -> bool {
        let mut ctl = lock(&self.ctl);
        if ctl.child.is_none() || ctl.kill.is_some() || ctl.running != Some(id) {
            return false;
        }
        if os::has_data(self.stream.as_fd()) {
            return false;
        }
        ctl.kill = Some(reason);
        self.signal(libc::SIGKILL);
        true
    }

    /// Records which task the worker runs. Returns `true` if a kill is already on its way (then the
    /// worker must get no more work).
    pub(crate) fn set_running(&self, id: Option<FutureId>) -> bool {
        let mut ctl = lock(&self.ctl);
        ctl.running = id;
        ctl.kill.is_some()
    }

    /// After end-of-file: kills what is left of the group (the worker's own children) and waits for the
    /// worker. Returns its status and the reason it was killed, if the parent killed it.
    pub(crate) fn reap(&self) -> (ExitStatus, Option<KillReason>) {
        let mut ctl = lock(&self.ctl);
        // Kept: a write that found the worker's end closed may read it after the reap
        // (`Shared::redeliver`); no kill is sent after the reap anyway.
        let kill = ctl.kill.clone();
        let status = match ctl.child.take() {
            Some(mut child) => {
                // Before waitpid the group id is still ours (the leader is at worst a zombie).
                self.signal(libc::SIGKILL);
                self.exit.reap(&mut child)
            }
            None => std::os::unix::process::ExitStatusExt::from_raw(0),
        };
        (status, kill)
    }
}

fn wait(child: &mut Child) -> ExitStatus {
    loop {
        match child.wait() {
            Ok(status) => return status,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            // ECHILD: someone else reaped it (a SIGCHLD=SIG_IGN host). Report a kill.
            Err(_) => return std::os::unix::process::ExitStatusExt::from_raw(libc::SIGKILL),
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        // Only reached unreaped if a driver thread died abnormally: leave no worker behind.
        let child = self
            .ctl
            .get_mut()
            .unwrap_or_else(|e| e.into_inner())
            .child
            .take();
        if let Some(mut child) = child {
            self.signal(libc::SIGKILL);
            self.exit.reap(&mut child);
        }
    }
}

/// Why [`Proc::spawn`] could not start a worker. Its text is the reason a
/// [`BrokenCause::StartFailed`](crate::BrokenCause::StartFailed) gives.
#[derive(Debug)]
pub(crate) enum SpawnError {
    /// Starting the executable, or setting up the descriptors it is given or watched by.
    Exec(io::Error),
    /// Starting the thread that watches the worker's exit where pidfds are refused
    /// ([`ExitWatch::Waiter`]); the worker `pid` was started and is killed again.
    ExitWatcher { pid: u32, error: io::Error },
}

impl From<io::Error> for SpawnError {
    fn from(e: io::Error) -> Self {
        SpawnError::Exec(e)
    }
}

impl fmt::Display for SpawnError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SpawnError::Exec(e) => write!(f, "could not start /proc/self/exe: {e}"),
            SpawnError::ExitWatcher { pid, error } => write!(
                f,
                "could not start the thread that watches worker {pid}'s exit: {error}"
            ),
        }
    }
}

/// How the driver learns that its worker exited, whoever else holds the worker's end of the channel
/// (a process the task forked without exec keeps it open, so no end-of-file comes).
enum ExitWatch {
    /// The worker's pidfd (Linux 5.3+): readable once the worker exited. Signals go through it too
    /// (see the module docs).
    Pidfd(OwnedFd),
    /// Where pidfds are refused (an older kernel; a sandbox whose seccomp profile refuses
    /// `pidfd_open`, as older Docker profiles, gVisor and valgrind do): an eventfd that a small
    /// thread signals when the worker exits. The thread waits in `waitid` with `WNOWAIT`, which
    /// leaves the worker for its driver to reap; the reap waits for the thread first
    /// ([`ExitWatch::reap`]), so the thread never waits on a pid that could name another process.
    Waiter(Arc<OwnedFd>),
}

impl ExitWatch {
    fn start(pid: u32) -> Result<ExitWatch, SpawnError> {
        if let Some(pidfd) = verified_pidfd(pid) {
            return Ok(ExitWatch::Pidfd(pidfd));
        }
        let exited = Arc::new(os::eventfd()?);
        let signal = exited.clone();
        std::thread::Builder::new()
            .name("process-pool-exit".into())
            // It makes one system call.
            .stack_size(64 * 1024)
            .spawn(move || {
                os::wait_exit(pid);
                os::eventfd_signal(signal.as_fd());
            })
            .map_err(|error| SpawnError::ExitWatcher { pid, error })?;
        Ok(ExitWatch::Waiter(exited))
    }

    /// What turns readable once the worker exited (it stays readable).
    fn fd(&self) -> BorrowedFd<'_> {
        match self {
            ExitWatch::Pidfd(fd) => fd.as_fd(),
            ExitWatch::Waiter(fd) => fd.as_fd(),
        }
    }

    fn pidfd(&self) -> Option<BorrowedFd<'_>> {
        match self {
            ExitWatch::Pidfd(fd) => Some(fd.as_fd()),
            ExitWatch::Waiter(_) => None,
        }
    }

    /// Waits for `child` (the worker, killed or exiting) and reaps it, after its watcher
    /// thread, if any, saw it exit: reaped earlier, its pid could be reused by another child of ours
    /// before the watcher asks for it, which the watcher would then wait on instead.
    fn reap(&self, child: &mut Child) -> ExitStatus {
        if let ExitWatch::Waiter(exited) = self {
            let _ = os::wait_readable(exited.as_fd());
        }
        wait(child)
    }
}

/// Kills and reaps a worker the pool never got to know (its start failed), after `exit`'s watcher
/// thread, if one was started.
fn abandon(exit: Option<&ExitWatch>, mut child: Child) {
    signal_group(exit.and_then(ExitWatch::pidfd), child.id(), libc::SIGKILL);
    match exit {
        Some(exit) => exit.reap(&mut child),
        None => wait(&mut child),
    };
}

/// A pidfd for the child just spawned as `pid`, if the kernel makes one and it names that child.
/// A host that ignores SIGCHLD may have reaped a child that exited at once, and a new process may
/// have taken its pid before `pidfd_open`: such a pidfd is not kept (the worker is dead anyway).
fn verified_pidfd(pid: u32) -> Option<OwnedFd> {
    let pidfd = os::pidfd_open(pid)?;
    match os::is_unreaped_child(pidfd.as_fd()) {
        Ok(false) => None,
        // `Err`: a kernel too old to wait on a pidfd (before 5.4) cannot tell; trust it as before.
        Ok(true) | Err(_) => Some(pidfd),
    }
}

/// Sends `signal` to the process group led by `pid`, whose pidfd is `pidfd`; returns whether it was
/// sent. With a pidfd, only while the leader is unreaped (see the module docs); without one (an old
/// kernel), the caller's lock is the only guard, which a host ignoring SIGCHLD defeats.
fn signal_group(pidfd: Option<BorrowedFd<'_>>, pid: u32, signal: i32) -> bool {
    if let Some(pidfd) = pidfd {
        // Signal 0: nothing is delivered, only whether the very process is still there.
        let there = match os::pidfd_send_signal(pidfd, 0) {
            Ok(()) => true,
            Err(e) if e.raw_os_error() == Some(libc::ESRCH) => false,
            // Refused (a seccomp profile that allows `pidfd_open` but not this): `waitid` on the
            // pidfd tells the same; where it cannot either, the caller's lock is the only guard.
            Err(_) => os::is_unreaped_child(pidfd).unwrap_or(true),
        };
        if !there {
            return false;
        }
    }
    os::kill_group(pid, signal);
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reaped_worker_s_group_is_never_signalled() {
        let mut child = Command::new("sleep")
            .arg("60")
            .process_group(0)
            .spawn()
            .unwrap();
        let pidfd = verified_pidfd(child.id()).expect("a pidfd for our own child");
        assert!(signal_group(Some(pidfd.as_fd()), child.id(), 0));
        assert!(signal_group(Some(pidfd.as_fd()), child.id(), libc::SIGKILL));
        child.wait().unwrap();
        // Reaped: its pid may now belong to anyone.
        assert!(!signal_group(
            Some(pidfd.as_fd()),
            child.id(),
            libc::SIGKILL
        ));
        assert_eq!(os::is_unreaped_child(pidfd.as_fd()).ok(), Some(false));
    }

    fn echo(x: u8) -> u8 {
        x
    }

    /// A task's reply waits unread in its worker's socket: its caller has not asked for it yet, and
    /// the driver does not listen for it (the last task's caller blocked on its result, so the
    /// dispatch left this reply to its caller). `kill` then tries to kill the worker for the task,
    /// as an interrupt or the task's time limit does; returns whether it did.
    fn kill_after_an_unread_reply(
        submit: impl FnOnce(&crate::ProcessPoolExecutor) -> crate::PoolFuture<u8>,
        kill: impl FnOnce(&crate::PoolFuture<u8>, &Proc) -> bool,
    ) {
        let pool = crate::ProcessPoolExecutor::new(1).unwrap();
        assert_eq!(pool.submit(echo, 7).unwrap().result(None).unwrap(), 7);
        let bounded = Instant::now() + Duration::from_secs(60);
        while pool.metrics().idle != 1 {
            assert!(Instant::now() < bounded, "the worker never went idle");
            std::thread::yield_now();
        }
        let proc = pool.shared().lock().slots[0].proc.clone().unwrap();
        // Past its spin, which could catch the reply before the dispatch takes the socket out of
        // the driver's wait set.
        while !proc.sleeping.load(Ordering::SeqCst) {
            assert!(Instant::now() < bounded, "the driver never slept");
            std::thread::yield_now();
        }
        // What a blocking caller's round trip leaves for the next dispatch to guess from.
        proc.replied_to(Listener::Caller);
        let mut fut = submit(&pool);
        assert_eq!(lock(&proc.watch).listener, Listener::Caller);
        while !os::has_data(proc.stream.as_fd()) {
            assert!(Instant::now() < bounded, "the worker never replied");
            std::thread::yield_now();
        }
        let killed = kill(&fut, &proc);
        assert!(!killed, "a worker that had replied was killed for its task");
        assert_eq!(fut.result(Duration::from_secs(60)).unwrap(), 8);
        assert!(proc.kill_reason().is_none());
        assert_eq!(pool.worker_pids(), vec![proc.pid]);
    }

    #[test]
    fn an_interrupt_after_the_reply_arrived_unread_is_refused() {
        kill_after_an_unread_reply(
            |pool| pool.submit(echo, 8).unwrap(),
            |fut, _| fut.interrupt(),
        );
    }

    #[test]
    fn a_time_limit_expiring_after_the_reply_arrived_unread_kills_nothing() {
        let limit = Duration::from_secs(3600);
        kill_after_an_unread_reply(
            |pool| pool.submit_with_time_limit(limit, echo, 8).unwrap(),
            // What the timer does when the limit expires.
            |fut, proc| proc.kill_running(fut.id(), KillReason::TimeLimit(limit)),
        );
    }

    /// A dispatch names the worker's task (`running`, the task's binding) just before it starts the
    /// task's future, and forgets both if a cancel won the future first. A caller blocked on that
    /// future in the meantime must not wait for a reply that will never come. The window is
    /// recreated here by hand, on an idle worker: the binding of a task whose future is cancelled.
    #[test]
    fn a_caller_never_reads_for_a_task_a_cancel_kept_from_starting() {
        use crate::error::Error;
        use std::sync::mpsc;

        let pool = crate::ProcessPoolExecutor::new(1).unwrap();
        assert_eq!(pool.submit(echo, 7).unwrap().result(None).unwrap(), 7);
        let bounded = Instant::now() + Duration::from_secs(60);
        while pool.metrics().idle != 1 {
            assert!(Instant::now() < bounded, "the worker never went idle");
            std::thread::yield_now();
        }
        let proc = pool.shared().lock().slots[0].proc.clone().unwrap();
        let (task, mut fut) = super::super::task::new_task::<u8>(Vec::new(), 1, |_, _| Ok(0), None);
        assert!(fut.cancel());
        // What a dispatch that lost the race to the cancel does before it sees the loss.
        proc.set_running(Some(task.id()));
        task.bind(Some(&proc));
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || tx.send(fut.result(None)).unwrap());
        let outcome = rx.recv_timeout(Duration::from_secs(60));
        task.bind(None);
        proc.set_running(None);
        assert!(
            matches!(outcome, Ok(Err(Error::Cancelled))),
            "result() of a cancelled task: {outcome:?}"
        );
    }
}
