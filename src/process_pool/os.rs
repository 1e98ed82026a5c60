//! The few OS calls std does not offer, each wrapped in a small safe function. This is the only file of
//! the process pool, besides the code-address trampolines in `code.rs` and the constructor entry in
//! `entry.rs`, that uses `unsafe`.

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd};

/// Writes all of `buf` to a socket. `MSG_NOSIGNAL` makes a write to a dead peer fail with `EPIPE`
/// instead of raising `SIGPIPE`, which would kill a host program that has not ignored it (std only
/// ignores it in Rust `main` programs).
#[allow(unsafe_code)]
pub(crate) fn send_all(fd: BorrowedFd<'_>, mut buf: &[u8]) -> io::Result<()> {
    while !buf.is_empty() {
        // SAFETY: `buf` is a live, initialised slice of `buf.len()` bytes and `fd` is an open descriptor
        // borrowed for the duration of the call; `send` reads at most that many bytes.
        let n = unsafe {
            libc::send(
                fd.as_raw_fd(),
                buf.as_ptr().cast(),
                buf.len(),
                libc::MSG_NOSIGNAL,
            )
        };
        if n < 0 {
            let e = io::Error::last_os_error();
            if e.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(e);
        }
        buf = &buf[n as usize..];
    }
    Ok(())
}

/// Sends `signal` to every process in the process group `pgid` (a worker and whatever it started).
/// `ESRCH` (nobody left) is not an error.
#[allow(unsafe_code)]
pub(crate) fn kill_group(pgid: u32, signal: i32) {
    let Ok(pgid) = libc::pid_t::try_from(pgid) else {
        return;
    };
    if pgid <= 1 {
        return; // never signal "every process" (-1) or our own group (0)
    }
    // SAFETY: kill(2) has no memory-safety preconditions. The caller only passes the pid of a child it
    // has not reaped yet (see `Proc`), so the group id cannot have been recycled by another process.
    unsafe {
        libc::kill(-pgid, signal);
    }
}

/// In a worker: ask the kernel to SIGKILL us when the thread that spawned us (the parent's driver
/// thread) exits, so a dead parent leaves no workers behind. Returns the parent pid as seen now, to
/// detect a parent that died before the request took effect.
#[allow(unsafe_code)]
pub(crate) fn die_with_parent() -> u32 {
    // SAFETY: prctl(PR_SET_PDEATHSIG) takes integer arguments only; getppid has no preconditions.
    unsafe {
        libc::prctl(
            libc::PR_SET_PDEATHSIG,
            libc::SIGKILL as libc::c_ulong,
            0,
            0,
            0,
        );
        libc::getppid() as u32
    }
}

/// In a worker: ignore SIGPIPE as std's runtime does for a Rust `main` (the worker runs before it).
#[allow(unsafe_code)]
pub(crate) fn ignore_sigpipe() {
    // SAFETY: setting a signal's disposition to SIG_IGN installs no handler code.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_IGN);
    }
}

/// Makes `target` (a standard descriptor) a copy of `fd`.
#[allow(unsafe_code)]
pub(crate) fn dup_onto(fd: BorrowedFd<'_>, target: i32) -> io::Result<()> {
    // SAFETY: dup2 has no memory-safety preconditions; `fd` is open for the duration of the call.
    // Replacing a standard descriptor is sound: std's handles to it hold no state about the file.
    if unsafe { libc::dup2(fd.as_raw_fd(), target) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}
