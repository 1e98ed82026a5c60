//! The worker: what a re-executed copy of the program runs instead of `main`.
//!
//! It starts from the constructor in `entry.rs`, before `main` and before std's runtime setup, and
//! never returns: it exits when the parent closes the channel (shutdown, recycling), and dies with the
//! parent (`PR_SET_PDEATHSIG`). Its loop is one task at a time: read a `RUN` frame, call the trampoline,
//! write the reply. Its stdout and stderr are the parent's; its stdin is `/dev/null` (the channel
//! arrives as stdin and is moved off it first).

use std::fs::File;
use std::io::{self, Write};
use std::os::fd::AsFd;
use std::os::unix::net::UnixStream;

use super::code::{self, Trampoline};
use super::handshake::{self, MARKER};
use super::os;
use super::wire::{self, reply, FrameReader};

/// Exit code of a worker that could not set itself up (bad marker, no channel).
pub(crate) const EXIT_SETUP: i32 = 70;
/// Exit code of a worker that received a frame it cannot trust.
pub(crate) const EXIT_PROTOCOL: i32 = 71;
/// Exit code of a worker whose parent died before it started.
pub(crate) const EXIT_ORPHAN: i32 = 72;

/// Runs the worker if this process was started as one; otherwise returns at once.
pub(crate) fn run_if_worker() {
    if std::env::var_os(MARKER).is_none() {
        return;
    }
    let code = std::panic::catch_unwind(serve).unwrap_or(EXIT_PROTOCOL);
    let _ = io::stdout().flush();
    std::process::exit(code)
}

/// The worker loop; returns the exit code.
pub(crate) fn serve() -> i32 {
    let Some(value) = std::env::var_os(MARKER) else {
        return EXIT_SETUP;
    };
    // Tasks that start pools of their own must start real workers, not confuse them with us.
    std::env::remove_var(MARKER);
    let Some((parent, cap)) = value.to_str().and_then(handshake::parse_marker) else {
        eprintln!(
            "concurrent_futures: malformed {MARKER} value {value:?}; not a worker of this build"
        );
        return EXIT_SETUP;
    };
    if os::die_with_parent() != parent {
        // Also what a program started with a stray marker in its environment sees: say why it exits
        // before `main` (review fix: it exited silently).
        eprintln!(
            "concurrent_futures: started as a process-pool worker of pid {parent}, which is not \
             this process's parent (it died, or {MARKER} was set by hand); exiting"
        );
        return EXIT_ORPHAN;
    }
    os::ignore_sigpipe();
    let stream = match take_channel() {
        Ok(s) => s,
        Err(e) => {
            eprintln!("concurrent_futures: worker could not take its channel: {e}");
            return EXIT_SETUP;
        }
    };
    if os::send_all(stream.as_fd(), &handshake::hello_frame()).is_err() {
        return EXIT_SETUP;
    }

    let mut reader = FrameReader::new(cap);
    let mut out = Vec::with_capacity(64 * 1024);
    loop {
        let body = match reader.read_frame(Polled(&stream)) {
            Ok(body) => body,
            // The parent closed the channel: shutdown, recycling, or the parent is gone.
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return 0,
            Err(e) => {
                eprintln!("concurrent_futures: worker channel failed: {e}");
                return EXIT_PROTOCOL;
            }
        };
        let Some((tramp, func, arg)) = parse_run(body) else {
            eprintln!("concurrent_futures: worker received a malformed frame");
            return EXIT_PROTOCOL;
        };
        out.clear();
        out.extend_from_slice(&[0; wire::HEADER]);
        tramp(func, arg, &mut out);
        if let Err(len) = wire::seal(&mut out, cap) {
            // A value over the cap becomes an encoding error; a message (a panic's or an error's
            // text) keeps its kind and is cut to fit (review fix: it was reported as an oversized
            // result). The cap is at least `MIN_MAX_FRAME`, so the cut leaves the tag and some text.
            if out[wire::HEADER] == reply::VALUE {
                out.truncate(wire::HEADER);
                out.push(reply::RESULT_ENCODE);
                let msg =
                    format!("the result is {len} bytes, over the frame size cap of {cap} bytes");
                out.extend_from_slice(msg.as_bytes());
            }
            out.truncate(wire::HEADER + cap);
            wire::seal(&mut out, cap).expect("cut to the cap");
        }
        // The task's prints reach the parent's stdout before its result does.
        let _ = io::stdout().flush();
        if os::send_all(stream.as_fd(), &out).is_err() {
            return 0; // the parent is gone
        }
        if out.capacity() > wire::KEEP_BUFFER {
            out = Vec::with_capacity(64 * 1024);
        }
    }
}

/// Splits a `RUN` frame into the trampoline, the function address and the argument bytes, checking that
/// both addresses lie in the executable.
#[allow(unsafe_code)]
fn parse_run(body: &[u8]) -> Option<(Trampoline, usize, &[u8])> {
    let (&wire::RUN, rest) = body.split_first()? else {
        return None;
    };
    let tramp = u64::from_le_bytes(rest.get(..8)?.try_into().ok()?);
    let func = u64::from_le_bytes(rest.get(8..16)?.try_into().ok()?);
    let tramp = code::address_of(tramp)?;
    let func = code::address_of(func)?;
    // SAFETY: the parent only sends offsets it took from a `Trampoline` (`code::run_frame`), and it sends
    // frames only after the handshake proved this process runs the same executable file with the same
    // layout, so `tramp` is the address of that same trampoline function here.
    let tramp = unsafe { std::mem::transmute::<usize, Trampoline>(tramp) };
    Some((tramp, func, &rest[16..]))
}

/// The worker's reads: wait in `poll` for the next frame, then read it.
///
/// Benchmark fix: a worker blocked in a plain `read` is woken every time its driver reads a reply
/// (the kernel wakes a unix socket's waiters when the peer frees buffer space, and a blocked `read`
/// does not filter that event out, where `poll(POLLIN)` does). That spurious wake-up, often of an
/// idle CPU, sat on the round trip's critical path; one `poll` per frame is cheaper.
struct Polled<'a>(&'a UnixStream);

impl io::Read for Polled<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        os::wait_readable(self.0.as_fd())?;
        io::Read::read(&mut &*self.0, buf)
    }
}

/// The channel arrives as stdin (so no other child can inherit it): move it to a close-on-exec
/// descriptor and give the task code `/dev/null` as stdin.
fn take_channel() -> io::Result<UnixStream> {
    let fd = io::stdin().as_fd().try_clone_to_owned()?;
    let devnull = File::open("/dev/null")?;
    os::dup_onto(devnull.as_fd(), 0)?;
    Ok(UnixStream::from(fd))
}
