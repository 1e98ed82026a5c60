//! One worker process as the parent sees it: its pid, the parent's end of its channel, and the lock
//! that makes killing and reaping it race-free.
//!
//! A pid may only be signalled while its process has not been reaped (after `waitpid` the number can be
//! reused by an unrelated process: procspawn#7). Every kill and the reap take [`Ctl`]'s lock, and the
//! reap clears `child`, so a kill after the reap is a no-op. Kills go to the worker's *process group*
//! (each worker leads its own), so whatever the task started dies with it.

use std::ffi::OsString;
use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::Arc;
use std::time::Duration;

use super::handshake::{self, MARKER};
use super::os;
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

/// A live (or dying, not yet reaped) worker process.
pub(crate) struct Proc {
    pub(crate) pid: u32,
    pub(crate) stream: UnixStream,
    ctl: Mutex<Ctl>,
}

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
    pub(crate) fn spawn(env: &[EnvOp], frame_cap: usize) -> io::Result<Arc<Proc>> {
        let (parent_end, child_end) = UnixStream::pair()?;
        let mut cmd = Command::new("/proc/self/exe");
        for op in env {
            match op {
                EnvOp::Set(k, v) => cmd.env(k, v),
                EnvOp::Remove(k) => cmd.env_remove(k),
                EnvOp::Clear => cmd.env_clear(),
            };
        }
        cmd.env(MARKER, handshake::marker(frame_cap))
            .stdin(Stdio::from(OwnedFd::from(child_end)))
            .process_group(0);
        let child = cmd.spawn()?;
        Ok(Arc::new(Proc {
            pid: child.id(),
            stream: parent_end,
            ctl: Mutex::new(Ctl {
                child: Some(child),
                running: None,
                kill: None,
            }),
        }))
    }

    /// Writes one frame (whole). Errors mean the worker is gone or the stream is unusable.
    pub(crate) fn send(&self, frame: &[u8]) -> io::Result<()> {
        os::send_all(self.stream.as_fd(), frame)
    }

    /// Tells the worker to exit once it has read everything sent so far (it sees end-of-file).
    pub(crate) fn close_write(&self) {
        let _ = self.stream.shutdown(std::net::Shutdown::Write);
    }

    /// Kills the worker's group with `signal`, recording why, unless it is already reaped or being
    /// killed. Returns whether this call sent the signal.
    pub(crate) fn kill(&self, reason: KillReason, signal: i32) -> bool {
        let mut ctl = lock(&self.ctl);
        if ctl.child.is_none() || ctl.kill.is_some() {
            return false;
        }
        ctl.kill = Some(reason);
        os::kill_group(self.pid, signal);
        true
    }

    /// Kills the worker only if it is running task `id` now (interrupt, time limit).
    pub(crate) fn kill_running(&self, id: FutureId, reason: KillReason) -> bool {
        let mut ctl = lock(&self.ctl);
        if ctl.child.is_none() || ctl.kill.is_some() || ctl.running != Some(id) {
            return false;
        }
        ctl.kill = Some(reason);
        os::kill_group(self.pid, libc::SIGKILL);
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
        let kill = ctl.kill.take();
        let status = match ctl.child.take() {
            Some(mut child) => {
                // Before waitpid the group id is still ours (the leader is at worst a zombie).
                os::kill_group(self.pid, libc::SIGKILL);
                wait(&mut child)
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
        let ctl = self.ctl.get_mut().unwrap_or_else(|e| e.into_inner());
        if let Some(mut child) = ctl.child.take() {
            os::kill_group(self.pid, libc::SIGKILL);
            wait(&mut child);
        }
    }
}
