//! The few OS calls std does not offer, each wrapped in a small safe function. This is the only file of
//! the process pool, besides the code-address trampolines in `code.rs` and the constructor entry in
//! `entry.rs`, that uses `unsafe`.

use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};

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

/// Writes as much of `buf` to a socket as it takes without blocking; returns how much that was
/// (`Ok(0)` if its buffer is full). An error is returned only if nothing was written.
/// `MSG_NOSIGNAL` as in [`send_all`].
#[allow(unsafe_code)]
pub(crate) fn send_nowait(fd: BorrowedFd<'_>, buf: &[u8]) -> io::Result<usize> {
    let mut sent = 0;
    while sent < buf.len() {
        let rest = &buf[sent..];
        // SAFETY: `rest` is a live, initialised slice of `rest.len()` bytes and `fd` is an open
        // descriptor borrowed for the duration of the call; `send` reads at most that many bytes.
        let n = unsafe {
            libc::send(
                fd.as_raw_fd(),
                rest.as_ptr().cast(),
                rest.len(),
                libc::MSG_NOSIGNAL | libc::MSG_DONTWAIT,
            )
        };
        if n < 0 {
            let e = io::Error::last_os_error();
            match e.kind() {
                io::ErrorKind::Interrupted => continue,
                io::ErrorKind::WouldBlock => break,
                // What was written stands: the rest fails the same way when it is written.
                _ if sent > 0 => break,
                _ => return Err(e),
            }
        }
        sent += n as usize;
    }
    Ok(sent)
}

/// How long a blocking write to a worker's socket may wait for room before
/// [`send_all_until_exit`] watches for the worker's exit as well: the socket's send timeout, set
/// by [`bound_write_waits`]. A worker reading its task drains the socket far faster than this, so a
/// large frame is written by one blocking `send` (the kernel refills the buffer as the worker reads,
/// with no wake-up of the writing thread per refill); only a stalled write pays for the watch.
pub(crate) const WRITE_STALL: std::time::Duration = std::time::Duration::from_millis(10);

/// Gives a worker's socket the send timeout [`send_all_until_exit`] relies on ([`WRITE_STALL`]).
pub(crate) fn bound_write_waits(sock: &std::os::unix::net::UnixStream) -> io::Result<()> {
    sock.set_write_timeout(Some(WRITE_STALL))
}

/// Writes all of `buf` to a worker's socket, as [`send_all`] does, unless the worker exits while the
/// write waits for room (`exit`, its pidfd or its exit watcher's eventfd, turns readable): then
/// `BrokenPipe`. A process that inherited the worker's end (a task's fork without exec) keeps
/// the socket open after the worker died, so a write waiting for room in its full buffer would
/// otherwise wait for as long as that process lives.
///
/// `sock` must have a send timeout ([`bound_write_waits`]): each `send` blocks, and ends when the
/// socket has had no room for that long; only then does the write also wait on `exit`, so a
/// worker's exit ends the write at most [`WRITE_STALL`] after its last read.
#[allow(unsafe_code)]
pub(crate) fn send_all_until_exit(
    sock: BorrowedFd<'_>,
    exit: BorrowedFd<'_>,
    mut buf: &[u8],
) -> io::Result<()> {
    loop {
        // SAFETY: `buf` is a live, initialised slice of `buf.len()` bytes and `sock` is an open
        // descriptor borrowed for the duration of the call; `send` reads at most that many bytes.
        let n = unsafe {
            libc::send(
                sock.as_raw_fd(),
                buf.as_ptr().cast(),
                buf.len(),
                libc::MSG_NOSIGNAL,
            )
        };
        if n >= 0 {
            buf = &buf[n as usize..];
            if buf.is_empty() {
                return Ok(());
            }
        } else {
            let e = io::Error::last_os_error();
            match e.kind() {
                io::ErrorKind::Interrupted => continue,
                // The send timeout: no room for `WRITE_STALL`.
                io::ErrorKind::WouldBlock => {}
                _ => return Err(e),
            }
        }
        let mut fds = [
            libc::pollfd {
                fd: sock.as_raw_fd(),
                events: libc::POLLOUT,
                revents: 0,
            },
            libc::pollfd {
                fd: exit.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            },
        ];
        // SAFETY: `fds` holds 2 valid, initialised `pollfd`s for the duration of the call; each
        // descriptor is open while borrowed.
        let n = unsafe { libc::poll(fds.as_mut_ptr(), 2, -1) };
        if n < 0 {
            let e = io::Error::last_os_error();
            if e.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(e);
        }
        // An exited worker reads no more, whatever room its socket has.
        if fds[1].revents != 0 {
            return Err(io::ErrorKind::BrokenPipe.into());
        }
    }
}

/// A pidfd for the child `pid` (Linux 5.3+): it turns readable when the process exits, whoever else
/// holds its descriptors. `None` if the kernel cannot make one, or a seccomp profile refuses it (the
/// caller then watches the exit with a thread: `proc::ExitWatch`).
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

/// What [`WaitSet::wait`] saw first.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Ready {
    /// The socket has something to read (data, end-of-file or an error).
    Readable,
    /// The worker exited (its exit descriptor turned readable) and the socket has nothing left to
    /// read.
    Exited,
    /// The wake-up eventfd was signalled (and has been reset).
    Woken,
}

/// What of the worker's socket wakes a thread asleep in [`WaitSet::wait`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum SocketWatch {
    /// Its readability, level-triggered: the driver handles the worker's replies.
    Readable,
    /// Only a hang-up or an error (epoll always reports those), and once (`EPOLLONESHOT`): someone
    /// else reads the replies, and a driver woken by the end while a caller reads goes back to sleep
    /// without being woken again and again.
    EndOnce,
}

/// A worker's driver's wait set (an epoll instance): the worker's socket, the wake-up eventfd and the
/// worker's exit descriptor (its pidfd, or the eventfd its exit watcher signals:
/// `proc::ExitWatch`), all level-triggered. An epoll set rather than a `poll` list because the socket can
/// be taken out of it by another thread ([`WaitSet::watch_socket`]) without waking the thread asleep
/// in it: a caller blocked on a task's result reads the reply itself, and the reply then wakes only
/// that caller. The exit descriptor is never taken out: the driver sees the worker's exit whoever
/// reads.
pub(crate) struct WaitSet {
    epoll: OwnedFd,
    sock: i32,
}

const SOCK: u64 = 0;
const WAKE: u64 = 1;
const EXIT: u64 = 2;

impl WaitSet {
    #[allow(unsafe_code)]
    pub(crate) fn new(
        sock: BorrowedFd<'_>,
        exit: BorrowedFd<'_>,
        wake: BorrowedFd<'_>,
    ) -> io::Result<WaitSet> {
        // SAFETY: epoll_create1 takes flags only; a non-negative result is a new descriptor we own.
        let fd = unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `fd` was just returned by epoll_create1 and is owned by nothing else.
        let epoll = unsafe { OwnedFd::from_raw_fd(fd) };
        let set = WaitSet {
            epoll,
            sock: sock.as_raw_fd(),
        };
        set.ctl(
            libc::EPOLL_CTL_ADD,
            sock.as_raw_fd(),
            libc::EPOLLIN as u32,
            SOCK,
        )?;
        set.ctl(
            libc::EPOLL_CTL_ADD,
            wake.as_raw_fd(),
            libc::EPOLLIN as u32,
            WAKE,
        )?;
        set.ctl(
            libc::EPOLL_CTL_ADD,
            exit.as_raw_fd(),
            libc::EPOLLIN as u32,
            EXIT,
        )?;
        Ok(set)
    }

    #[allow(unsafe_code)]
    fn ctl(&self, op: i32, fd: i32, events: u32, token: u64) -> io::Result<()> {
        let mut ev = libc::epoll_event { events, u64: token };
        // SAFETY: `ev` is a valid `epoll_event` for the duration of the call; both descriptors are
        // open (the socket and the others live as long as the `Proc` that owns this set).
        if unsafe { libc::epoll_ctl(self.epoll.as_raw_fd(), op, fd, &mut ev) } < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }

    /// Sets what of the socket the set reports (see [`SocketWatch`]). A thread asleep in
    /// [`wait`](Self::wait) is not woken by taking the socket's readability out; putting it back
    /// while data is waiting wakes it.
    pub(crate) fn watch_socket(&self, watch: SocketWatch) {
        let events = match watch {
            SocketWatch::Readable => libc::EPOLLIN as u32,
            SocketWatch::EndOnce => libc::EPOLLONESHOT as u32,
        };
        // Fails only if the descriptors were closed, which the owner prevents.
        let _ = self.ctl(libc::EPOLL_CTL_MOD, self.sock, events, SOCK);
    }

    /// Blocks until something in the set is ready. Pending data always comes first: a worker's last
    /// writes are in the socket before its exit is signalled. `Woken` resets the eventfd `wake`.
    #[allow(unsafe_code)]
    pub(crate) fn wait(&self, wake: BorrowedFd<'_>) -> io::Result<Ready> {
        loop {
            // SAFETY: `epoll_event` is plain data, for which all-zero bytes are a valid value.
            let mut evs: [libc::epoll_event; 3] = unsafe { std::mem::zeroed() };
            // SAFETY: `evs` has room for the 3 events asked for, for the duration of the call, and
            // the epoll descriptor is open.
            let n = unsafe { libc::epoll_wait(self.epoll.as_raw_fd(), evs.as_mut_ptr(), 3, -1) };
            if n < 0 {
                let e = io::Error::last_os_error();
                if e.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                return Err(e);
            }
            let ready = |token| evs[..n as usize].iter().any(|e| e.u64 == token);
            if ready(SOCK) {
                return Ok(Ready::Readable);
            }
            if ready(WAKE) {
                eventfd_reset(wake);
                return Ok(Ready::Woken);
            }
            if ready(EXIT) {
                return Ok(Ready::Exited);
            }
        }
    }
}

/// What a thread waiting for one reply saw ([`wait_reply`]).
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Reply {
    /// The socket has something to read (data, end-of-file or an error).
    Readable,
    /// The worker exited (and the socket has nothing to read).
    Exited,
    /// The deadline passed.
    TimedOut,
}

/// Blocks until `sock` has something to read, the worker has exited (`exit`, its pidfd or its exit
/// watcher's eventfd, turned readable), or `deadline` passes.
#[allow(unsafe_code)]
pub(crate) fn wait_reply(
    sock: BorrowedFd<'_>,
    exit: BorrowedFd<'_>,
    deadline: Option<std::time::Instant>,
) -> io::Result<Reply> {
    let pollfd = |fd: i32| libc::pollfd {
        fd,
        events: libc::POLLIN,
        revents: 0,
    };
    loop {
        let timeout_ms = match deadline {
            None => -1,
            Some(d) => {
                let left = d.saturating_duration_since(std::time::Instant::now());
                if left.is_zero() {
                    return Ok(Reply::TimedOut);
                }
                // Rounded up: waking before the deadline would only poll again.
                i32::try_from(left.as_micros().div_ceil(1000)).unwrap_or(i32::MAX)
            }
        };
        let mut fds = [pollfd(sock.as_raw_fd()), pollfd(exit.as_raw_fd())];
        // SAFETY: `fds` holds 2 valid, initialised `pollfd`s for the duration of the call; each
        // descriptor is open while borrowed.
        let n = unsafe { libc::poll(fds.as_mut_ptr(), 2, timeout_ms) };
        if n < 0 {
            let e = io::Error::last_os_error();
            if e.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(e);
        }
        if fds[0].revents != 0 {
            return Ok(Reply::Readable);
        }
        if fds[1].revents != 0 {
            return Ok(Reply::Exited);
        }
    }
}

/// Whether `sock` has data (or end-of-file) to read, without taking any of it.
pub(crate) fn has_input(sock: BorrowedFd<'_>) -> bool {
    !matches!(peek(sock), Err(e) if e.kind() == io::ErrorKind::WouldBlock)
}

/// Whether `sock` has data to read (not only end-of-file or an error), without taking any of it.
pub(crate) fn has_data(sock: BorrowedFd<'_>) -> bool {
    matches!(peek(sock), Ok(n) if n > 0)
}

/// Looks at the first byte `sock` has to read, without taking it and without blocking: how many
/// bytes there are to see (0 at end-of-file, at most 1).
#[allow(unsafe_code)]
fn peek(sock: BorrowedFd<'_>) -> io::Result<usize> {
    let mut byte = 0u8;
    // SAFETY: reads at most 1 byte into `byte`, a live `u8`, from an open socket, without removing
    // it (MSG_PEEK) and without blocking.
    let n = unsafe {
        libc::recv(
            sock.as_raw_fd(),
            (&mut byte as *mut u8).cast(),
            1,
            libc::MSG_PEEK | libc::MSG_DONTWAIT,
        )
    };
    usize::try_from(n).map_err(|_| io::Error::last_os_error())
}

/// A non-blocking, close-on-exec eventfd, for waking a thread blocked in [`WaitSet::wait`].
#[allow(unsafe_code)]
pub(crate) fn eventfd() -> io::Result<OwnedFd> {
    // SAFETY: eventfd(2) takes an initial count and flags, no pointers.
    let fd = unsafe { libc::eventfd(0, libc::EFD_CLOEXEC | libc::EFD_NONBLOCK) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: the call returned a new descriptor that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Signals an eventfd (adds 1 to its count). Cannot block: the count would have to reach 2^64 - 1.
#[allow(unsafe_code)]
pub(crate) fn eventfd_signal(fd: BorrowedFd<'_>) {
    let one: u64 = 1;
    // SAFETY: writes the 8 bytes of `one`, a live `u64`, to an open eventfd.
    let _ = unsafe { libc::write(fd.as_raw_fd(), (&one as *const u64).cast(), 8) };
}

/// Resets an eventfd's count to 0 (a no-op if it is already 0: the descriptor is non-blocking).
#[allow(unsafe_code)]
fn eventfd_reset(fd: BorrowedFd<'_>) {
    let mut count: u64 = 0;
    // SAFETY: reads at most 8 bytes into `count`, a live, writable `u64`, from an open eventfd.
    let _ = unsafe { libc::read(fd.as_raw_fd(), (&mut count as *mut u64).cast(), 8) };
}

/// Reads what `sock` has without blocking: `Ok(None)` if nothing has arrived yet.
pub(crate) fn recv_nowait(sock: BorrowedFd<'_>, buf: &mut [u8]) -> io::Result<Option<usize>> {
    recv(sock, buf, libc::MSG_DONTWAIT)
}

/// Receives into `buf` with `flags`. `Ok(None)`: nothing yet (with `MSG_DONTWAIT` in `flags`), or
/// interrupted before any byte came.
#[allow(unsafe_code)]
pub(crate) fn recv(
    sock: BorrowedFd<'_>,
    buf: &mut [u8],
    flags: libc::c_int,
) -> io::Result<Option<usize>> {
    // SAFETY: `buf` is a live, writable slice of `buf.len()` bytes and `sock` is an open descriptor
    // borrowed for the duration of the call; `recv` writes at most that many bytes.
    let n = unsafe { libc::recv(sock.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), flags) };
    if n < 0 {
        let e = io::Error::last_os_error();
        return match e.kind() {
            io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted => Ok(None),
            _ => Err(e),
        };
    }
    Ok(Some(n as usize))
}

/// Receives at most `max` bytes into `buf`'s spare capacity, appending them (the room needs no
/// zero-filling first). `Ok(None)`: nothing yet (with `MSG_DONTWAIT` in `flags`), or interrupted
/// before any byte came.
#[allow(unsafe_code)]
pub(crate) fn recv_spare(
    sock: BorrowedFd<'_>,
    buf: &mut Vec<u8>,
    max: usize,
    flags: libc::c_int,
) -> io::Result<Option<usize>> {
    let spare = buf.spare_capacity_mut();
    let room = spare.len().min(max);
    // SAFETY: `spare` is writable memory owned by `buf`, at least `room` bytes long, and `sock` is an
    // open descriptor borrowed for the duration of the call; `recv` writes at most `room` bytes.
    let n = unsafe { libc::recv(sock.as_raw_fd(), spare.as_mut_ptr().cast(), room, flags) };
    if n < 0 {
        let e = io::Error::last_os_error();
        return match e.kind() {
            io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted => Ok(None),
            _ => Err(e),
        };
    }
    // SAFETY: the kernel initialised the first `n` (at most `room`) bytes of the spare capacity.
    unsafe { buf.set_len(buf.len() + n as usize) };
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

/// Whether the peer of `sock` has closed its end, or the worker has exited (`exit`, its pidfd or its
/// exit watcher's eventfd, is readable), in one non-blocking `poll`.
#[allow(unsafe_code)]
pub(crate) fn closed_or_exited(sock: BorrowedFd<'_>, exit: BorrowedFd<'_>) -> bool {
    let mut fds = [
        libc::pollfd {
            fd: sock.as_raw_fd(),
            events: libc::POLLRDHUP,
            revents: 0,
        },
        libc::pollfd {
            fd: exit.as_raw_fd(),
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
    if r != 0 {
        // ECHILD: no longer ours to wait for, so it exited and the kernel reaped it (a host that
        // ignores SIGCHLD). The caller has not reaped it: it would hold no pid then.
        return io::Error::last_os_error().raw_os_error() == Some(libc::ECHILD);
    }
    // SAFETY: `si_pid` reads the field `waitid` filled in (0 when no child has changed state).
    unsafe { info.si_pid() != 0 }
}

/// Blocks until the child `pid` (not yet reaped) exits, without reaping it (`WNOWAIT`: its driver
/// still reaps it and reads its status). Also returns once it is no longer a child of ours (a host
/// that ignores SIGCHLD has the kernel reap it at once).
#[allow(unsafe_code)]
pub(crate) fn wait_exit(pid: u32) {
    loop {
        // SAFETY: `siginfo_t` is plain data, for which all-zero bytes are a valid value.
        let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
        // SAFETY: `info` is a valid, writable `siginfo_t` for the duration of the call, and
        // `WNOWAIT` changes no state. Our caller keeps `pid` unreaped until this returns (see
        // `proc::ExitWatch`), so it names our child.
        let r = unsafe {
            libc::waitid(
                libc::P_PID,
                pid as libc::id_t,
                &mut info,
                libc::WEXITED | libc::WNOWAIT,
            )
        };
        if r == 0 || io::Error::last_os_error().kind() != io::ErrorKind::Interrupted {
            return;
        }
    }
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
    // has not reaped yet, which it checked through its pidfd where it has one (see `proc.rs`), so the
    // group id cannot have been recycled by another process.
    unsafe {
        libc::kill(-pgid, signal);
    }
}

/// In a worker: ask the kernel to SIGKILL us when the thread that spawned us (the parent's driver
/// thread) exits, so a dead parent leaves no workers behind. A parent that died before this took
/// effect is caught by the handshake's parent check, which runs after it.
#[allow(unsafe_code)]
pub(crate) fn die_with_parent() {
    // SAFETY: prctl(PR_SET_PDEATHSIG) takes integer arguments only.
    unsafe {
        libc::prctl(
            libc::PR_SET_PDEATHSIG,
            libc::SIGKILL as libc::c_ulong,
            0,
            0,
            0,
        );
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

/// Whether the kernel started this process as *secure-exec* (`AT_SECURE`): its credentials changed at
/// `exec` (a setuid or setgid file, file capabilities) or a security module asked for it. Such a
/// process must not act on what its environment and inherited descriptors tell it.
#[allow(unsafe_code)]
pub(crate) fn secure_exec() -> bool {
    // SAFETY: getauxval reads the auxiliary vector the kernel passed at exec; no pointers involved.
    unsafe { libc::getauxval(libc::AT_SECURE) != 0 }
}

/// This process's real and effective user ids.
#[allow(unsafe_code)]
pub(crate) fn user_ids() -> (u32, u32) {
    // SAFETY: getuid and geteuid have no preconditions and cannot fail.
    unsafe { (libc::getuid(), libc::geteuid()) }
}

/// The parent's pid as the kernel sees it now (1, or a subreaper, once the parent died).
#[allow(unsafe_code)]
pub(crate) fn parent_pid() -> u32 {
    // SAFETY: getppid has no preconditions and cannot fail.
    unsafe { libc::getppid() as u32 }
}

/// The kernel's record of who made the other end of the unix socket `sock` (`SO_PEERCRED`): for a
/// socketpair, the process that called `socketpair`, as `(pid, uid, gid)`. Nothing the peer writes
/// can change it.
#[allow(unsafe_code)]
pub(crate) fn peer_credentials(sock: BorrowedFd<'_>) -> io::Result<(u32, u32, u32)> {
    let mut cred = libc::ucred {
        pid: 0,
        uid: 0,
        gid: 0,
    };
    let mut len = std::mem::size_of::<libc::ucred>() as libc::socklen_t;
    // SAFETY: `cred` is a valid, writable `ucred` and `len` holds its size, for the duration of the
    // call; the kernel writes at most `len` bytes. `sock` is open while borrowed.
    let r = unsafe {
        libc::getsockopt(
            sock.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_PEERCRED,
            (&mut cred as *mut libc::ucred).cast(),
            &mut len,
        )
    };
    if r < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok((cred.pid as u32, cred.uid, cred.gid))
}

/// Sends `signal` to the process behind `pidfd`. Unlike `kill(pid)`, this can only reach that very
/// process: once it has been reaped the call fails with `ESRCH`, even if its pid was reused.
#[allow(unsafe_code)]
pub(crate) fn pidfd_send_signal(pidfd: BorrowedFd<'_>, signal: i32) -> io::Result<()> {
    // SAFETY: pidfd_send_signal(2) with a null `siginfo` and no flags reads no memory of ours;
    // `pidfd` is open while borrowed.
    let r = unsafe {
        libc::syscall(
            libc::SYS_pidfd_send_signal,
            pidfd.as_raw_fd(),
            signal,
            std::ptr::null::<libc::siginfo_t>(),
            0,
        )
    };
    if r < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Whether the process behind `pidfd` is a child of ours that nobody has reaped yet (alive or a
/// zombie). A pidfd opened by pid just after the child was reaped elsewhere (a host that ignores
/// SIGCHLD reaps automatically) could name a stranger that reused the pid; that stranger is not our
/// child, so this says `false`. `Err` if the kernel cannot wait on a pidfd (before Linux 5.4).
#[allow(unsafe_code)]
pub(crate) fn is_unreaped_child(pidfd: BorrowedFd<'_>) -> io::Result<bool> {
    // SAFETY: `siginfo_t` is plain data, for which all-zero bytes are a valid value.
    let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
    // SAFETY: `info` is a valid, writable `siginfo_t` for the duration of the call; `WNOHANG` never
    // blocks and `WNOWAIT` leaves the child waitable. `pidfd` is open while borrowed.
    let r = unsafe {
        libc::waitid(
            libc::P_PIDFD,
            pidfd.as_raw_fd() as libc::id_t,
            &mut info,
            libc::WEXITED | libc::WNOHANG | libc::WNOWAIT,
        )
    };
    if r == 0 {
        return Ok(true);
    }
    let e = io::Error::last_os_error();
    match e.raw_os_error() {
        Some(libc::ECHILD) => Ok(false),
        _ => Err(e),
    }
}

/// Points each closed standard descriptor (0, 1, 2) at `/dev/null`, as std's runtime does before
/// `main`: a worker starts before that, and a later `open` must not land on fd 1 or 2, where a
/// task's `println!` would write into it.
#[allow(unsafe_code)]
pub(crate) fn fill_closed_std_fds() {
    for fd in 0..=2 {
        // SAFETY: F_GETFD on any integer only inspects the descriptor table.
        if unsafe { libc::fcntl(fd, libc::F_GETFD) } >= 0 {
            continue;
        }
        // Not close-on-exec, like the descriptor it stands in for. `open` returns the lowest free
        // descriptor, which is `fd` itself when the ones below it are open.
        // SAFETY: the path is a valid NUL-terminated string; `open` takes no other pointer.
        let null = unsafe { libc::open(c"/dev/null".as_ptr(), libc::O_RDWR) };
        if null < 0 || null == fd {
            continue;
        }
        // SAFETY: `null` is the descriptor `open` just returned, owned by nobody else; it is
        // closed when this `OwnedFd` drops, after its copy is made.
        let null = unsafe { OwnedFd::from_raw_fd(null) };
        let _ = dup_onto(null.as_fd(), fd);
    }
}

#[cfg(test)]
mod tests {
    use std::io::{Read, Write};
    use std::os::unix::net::UnixStream;
    use std::sync::mpsc;
    use std::time::{Duration, Instant};

    /// The driver ends a caller's blocking read of a dead worker's socket with `shutdown(SHUT_RD)`
    /// (`Proc::end_reads`): it must wake a `recv` already blocked in another thread, while the peer's
    /// end is still open (held by a process the task forked), with what was written first, then
    /// end-of-file.
    #[test]
    fn shutting_the_read_side_ends_a_recv_blocked_in_another_thread() {
        let (ours, mut peer) = UnixStream::pair().unwrap();
        let ours = std::sync::Arc::new(ours);
        peer.write_all(b"ab").unwrap();
        let (tid_tx, tid_rx) = mpsc::channel();
        let (done_tx, done_rx) = mpsc::channel();
        let reader = ours.clone();
        std::thread::spawn(move || {
            tid_tx.send(current_tid()).unwrap();
            let mut reads = Vec::new();
            let mut buf = [0u8; 8];
            loop {
                let n = (&*reader).read(&mut buf).unwrap();
                reads.push(n);
                if n == 0 {
                    break;
                }
            }
            done_tx.send(reads).unwrap();
        });
        let tid = tid_rx.recv().unwrap();
        // Blocked in `recvfrom` (45 on x86_64) after reading "ab", or asleep elsewhere.
        assert!(blocked_in_read(tid), "the reader never blocked");
        ours.shutdown(std::net::Shutdown::Read).unwrap();
        let reads = done_rx.recv_timeout(Duration::from_secs(60)).unwrap();
        assert_eq!(reads, vec![2, 0]);
        drop(peer); // the peer's end was open all along
    }

    /// The same for a `recv` waiting for a frame's whole rest (`MSG_WAITALL`, a caller reading a
    /// reply's tail): the shutdown ends it with what came, then end-of-file.
    #[test]
    fn shutting_the_read_side_ends_a_recv_waiting_for_all() {
        use std::os::fd::AsFd;
        let (ours, mut peer) = UnixStream::pair().unwrap();
        let ours = std::sync::Arc::new(ours);
        peer.write_all(b"ab").unwrap();
        let (tid_tx, tid_rx) = mpsc::channel();
        let (done_tx, done_rx) = mpsc::channel();
        let reader = ours.clone();
        std::thread::spawn(move || {
            tid_tx.send(current_tid()).unwrap();
            let mut buf = [0u8; 100];
            let first = super::recv(reader.as_fd(), &mut buf, libc::MSG_WAITALL).unwrap();
            let then = super::recv(reader.as_fd(), &mut buf, libc::MSG_WAITALL).unwrap();
            done_tx.send((first, then)).unwrap();
        });
        assert!(
            blocked_in_read(tid_rx.recv().unwrap()),
            "the reader never blocked"
        );
        ours.shutdown(std::net::Shutdown::Read).unwrap();
        let reads = done_rx.recv_timeout(Duration::from_secs(60)).unwrap();
        assert_eq!(reads, (Some(2), Some(0)));
        drop(peer);
    }

    /// A write that waits for room in a worker's socket ends with `BrokenPipe` once the worker
    /// exits (its exit descriptor, here an eventfd, turns readable), though the worker's end is
    /// still open (held here by the test, as by a process the task forked) and reads nothing.
    #[test]
    fn a_write_waiting_for_room_ends_when_the_worker_exits() {
        use std::os::fd::AsFd;
        let (ours, peer) = UnixStream::pair().unwrap();
        super::bound_write_waits(&ours).unwrap();
        let exit = std::sync::Arc::new(super::eventfd().unwrap());
        let (tx, rx) = mpsc::channel();
        let exited = exit.clone();
        std::thread::spawn(move || {
            // Far more than a socket buffer takes.
            let frame = vec![7u8; 16 << 20];
            let sent = super::send_all_until_exit(ours.as_fd(), exited.as_fd(), &frame);
            tx.send(sent).unwrap();
        });
        super::eventfd_signal(exit.as_fd());
        let sent = rx.recv_timeout(Duration::from_secs(60));
        drop(peer);
        let e = sent.expect("the write outlived the worker").unwrap_err();
        assert_eq!(e.kind(), std::io::ErrorKind::BrokenPipe);
    }

    /// While the worker lives and reads, the same write delivers every byte, in order.
    #[test]
    fn a_write_to_a_reading_worker_arrives_whole() {
        use std::os::fd::AsFd;
        let (ours, mut peer) = UnixStream::pair().unwrap();
        super::bound_write_waits(&ours).unwrap();
        let exit = super::eventfd().unwrap();
        let reader = std::thread::spawn(move || {
            let mut got = Vec::new();
            peer.read_to_end(&mut got).unwrap();
            got
        });
        let len = 4u32 << 20;
        let frame: Vec<u8> = (0..len).map(|i| i as u8).collect();
        super::send_all_until_exit(ours.as_fd(), exit.as_fd(), &frame).unwrap();
        drop(ours);
        assert!(reader.join().unwrap() == frame);
    }

    fn current_tid() -> i32 {
        std::fs::read_link("/proc/thread-self")
            .ok()
            .and_then(|p| p.file_name()?.to_str()?.parse().ok())
            .unwrap_or(0)
    }

    /// Waits (up to 60 s) until thread `tid` sleeps in a read (`recvfrom` or `read` on x86_64; any
    /// sleep elsewhere).
    fn blocked_in_read(tid: i32) -> bool {
        let end = Instant::now() + Duration::from_secs(60);
        while Instant::now() < end {
            let stat = std::fs::read_to_string(format!("/proc/self/task/{tid}/stat"));
            let syscall = std::fs::read_to_string(format!("/proc/self/task/{tid}/syscall"));
            let (Ok(stat), Ok(syscall)) = (stat, syscall) else {
                return false;
            };
            let sleeping = stat
                .rsplit(')')
                .next()
                .is_some_and(|s| s.trim_start().starts_with('S'));
            let nr = syscall.split_whitespace().next().unwrap_or("");
            let reading = !cfg!(target_arch = "x86_64") || nr == "45" || nr == "0";
            if sleeping && reading {
                return true;
            }
            std::thread::sleep(Duration::from_micros(200));
        }
        false
    }
}
