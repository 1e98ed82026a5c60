//! The few OS calls std does not offer, each wrapped in a small safe function. This is the only file of
//! the process pool, besides the code-address trampolines in `code.rs` and the constructor entry in
//! `entry.rs`, that uses `unsafe`.

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};

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

/// A pidfd for the child `pid` (Linux 5.3+): it turns readable when the process exits, whoever else
/// holds its descriptors. `None` if the kernel cannot make one (the caller then relies on end-of-file).
#[allow(unsafe_code)]
pub(crate) fn pidfd_open(pid: u32) -> Option<OwnedFd> {
    // SAFETY: pidfd_open(2) takes a pid and flags, no pointers. The caller has not reaped `pid` (it
    // was just spawned), so it names that child.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid as libc::pid_t, 0) };
    if fd < 0 {
        return None;
    }
    // SAFETY: the call returned a new descriptor (close-on-exec) that nothing else owns.
    Some(unsafe { OwnedFd::from_raw_fd(fd as libc::c_int) })
}

/// Blocks until the socket `sock` has something to read (data, end-of-file or an error: `true`), or
/// the process behind `pidfd` has exited with nothing left to read (`false`). Pending data always
/// comes first: a worker's last writes are in the socket before its exit is signalled.
#[allow(unsafe_code)]
pub(crate) fn wait_readable_or_exit(
    sock: BorrowedFd<'_>,
    pidfd: BorrowedFd<'_>,
) -> io::Result<bool> {
    loop {
        let mut fds = [
            libc::pollfd {
                fd: sock.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            },
            libc::pollfd {
                fd: pidfd.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            },
        ];
        // SAFETY: `fds` is an array of 2 valid, initialised `pollfd`s for the duration of the call,
        // and both descriptors are open while borrowed.
        let n = unsafe { libc::poll(fds.as_mut_ptr(), 2, -1) };
        if n < 0 {
            let e = io::Error::last_os_error();
            if e.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(e);
        }
        if fds[0].revents != 0 {
            return Ok(true);
        }
        if fds[1].revents != 0 {
            return Ok(false);
        }
    }
}

/// Reads what `sock` has without blocking: `Ok(None)` if nothing has arrived yet.
#[allow(unsafe_code)]
pub(crate) fn recv_nowait(sock: BorrowedFd<'_>, buf: &mut [u8]) -> io::Result<Option<usize>> {
    // SAFETY: `buf` is a live, writable slice of `buf.len()` bytes and `sock` is an open descriptor
    // borrowed for the duration of the call; `recv` writes at most that many bytes.
    let n = unsafe {
        libc::recv(
            sock.as_raw_fd(),
            buf.as_mut_ptr().cast(),
            buf.len(),
            libc::MSG_DONTWAIT,
        )
    };
    if n < 0 {
        let e = io::Error::last_os_error();
        return match e.kind() {
            io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted => Ok(None),
            _ => Err(e),
        };
    }
    Ok(Some(n as usize))
}

/// Blocks until `sock` has something to read (data, end-of-file or an error).
#[allow(unsafe_code)]
pub(crate) fn wait_readable(sock: BorrowedFd<'_>) -> io::Result<()> {
    loop {
        let mut p = libc::pollfd {
            fd: sock.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: `p` is one valid, initialised `pollfd` for the duration of the call (count 1), and
        // `sock` is open while borrowed.
        let n = unsafe { libc::poll(&mut p, 1, -1) };
        if n < 0 {
            let e = io::Error::last_os_error();
            if e.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(e);
        }
        if p.revents != 0 {
            return Ok(());
        }
    }
}

/// Whether the peer of `sock` has closed its end, or the process behind `pidfd` has exited, in one
/// non-blocking `poll` (what [`has_exited`] and [`peer_closed`] check in two calls).
#[allow(unsafe_code)]
pub(crate) fn closed_or_exited(sock: BorrowedFd<'_>, pidfd: BorrowedFd<'_>) -> bool {
    let mut fds = [
        libc::pollfd {
            fd: sock.as_raw_fd(),
            events: libc::POLLRDHUP,
            revents: 0,
        },
        libc::pollfd {
            fd: pidfd.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        },
    ];
    // SAFETY: `fds` is an array of 2 valid, initialised `pollfd`s for the duration of the call, both
    // descriptors are open while borrowed, and a timeout of 0 never blocks.
    let n = unsafe { libc::poll(fds.as_mut_ptr(), 2, 0) };
    n > 0
        && (fds[0].revents & (libc::POLLRDHUP | libc::POLLHUP | libc::POLLERR) != 0
            || fds[1].revents != 0)
}

/// Whether the child `pid` (not yet reaped) has exited, without blocking or reaping it: `waitid` with
/// `WNOWAIT` leaves it waitable, so its driver still reaps it and reads its status.
#[allow(unsafe_code)]
pub(crate) fn has_exited(pid: u32) -> bool {
    // SAFETY: `siginfo_t` is plain data, for which all-zero bytes are a valid value.
    let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
    // SAFETY: `info` is a valid, writable `siginfo_t` for the duration of the call; `WNOHANG` never
    // blocks and `WNOWAIT` changes no state. The caller holds the lock that the reap takes, so `pid`
    // is still our unreaped child and cannot name another process.
    let r = unsafe {
        libc::waitid(
            libc::P_PID,
            pid as libc::id_t,
            &mut info,
            libc::WEXITED | libc::WNOHANG | libc::WNOWAIT,
        )
    };
    // SAFETY: `si_pid` reads the field `waitid` filled in (0 when no child has changed state).
    r == 0 && unsafe { info.si_pid() } != 0
}

/// Whether the peer of a connected socket has closed its end (`POLLRDHUP`/`POLLHUP`), without blocking.
#[allow(unsafe_code)]
pub(crate) fn peer_closed(fd: BorrowedFd<'_>) -> bool {
    let mut p = libc::pollfd {
        fd: fd.as_raw_fd(),
        events: libc::POLLRDHUP,
        revents: 0,
    };
    // SAFETY: `p` is one valid, initialised `pollfd` for the duration of the call (count 1), `fd` is
    // open while borrowed, and a timeout of 0 never blocks.
    let n = unsafe { libc::poll(&mut p, 1, 0) };
    n > 0 && p.revents & (libc::POLLRDHUP | libc::POLLHUP | libc::POLLERR) != 0
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
