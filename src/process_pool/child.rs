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
use super::handshake;
use super::os;
use super::wire::direct::Sent;
use super::wire::{self, reply, Body, FrameReader, Source, Want};

/// Exit code of a worker that could not set itself up (bad marker, no channel).
pub(crate) const EXIT_SETUP: i32 = 70;
/// Exit code of a worker that received a frame it cannot trust.
pub(crate) const EXIT_PROTOCOL: i32 = 71;
/// Exit code of a worker that refused its parent (see `handshake::verify_parent`).
pub(crate) const EXIT_REFUSED: i32 = 73;

/// Runs the worker if this process was started as one of this copy's workers; otherwise returns at
/// once (also when another copy of the crate in this program was asked: its constructor serves).
pub(crate) fn run_if_worker() {
    let Some(value) = handshake::own_marker() else {
        return;
    };
    let code = std::panic::catch_unwind(|| serve(value)).unwrap_or(EXIT_PROTOCOL);
    let _ = io::stdout().flush();
    std::process::exit(code)
}

/// The worker loop; returns the exit code.
#[allow(unsafe_code)] // The call of a received code address: see the SAFETY comment there.
pub(crate) fn serve(value: std::ffi::OsString) -> i32 {
    // std's runtime does this before `main`, which a worker never reaches.
    os::fill_closed_std_fds();
    let marker = handshake::marker_name();
    // Tasks that start pools of their own must start real workers, not confuse them with us.
    std::env::remove_var(marker);
    let Some((parent, cap)) = value.to_str().and_then(handshake::parse_marker) else {
        eprintln!(
            "concurrent_futures: malformed {marker} value {value:?}; not a worker of this build"
        );
        return EXIT_SETUP;
    };
    // Armed before the parent checks, so a parent that dies after them still takes us along.
    os::die_with_parent();
    os::ignore_sigpipe();
    let stream = match take_channel() {
        Ok(s) => s,
        Err(e) => {
            eprintln!("concurrent_futures: worker could not take its channel: {e}");
            return EXIT_SETUP;
        }
    };
    // Nothing the channel says is trusted, and no code offset is revealed, before this passes.
    if let Err(reason) = handshake::verify_parent(parent, stream.as_fd()) {
        // A parent that exited while this worker started (a program ending right after
        // `shutdown_nowait`) is an ordinary end, not a refusal worth a message: no one is left to
        // serve, and no one to read the reason. Only when the kernel says that very parent made the
        // channel: a marker naming some pid that is gone, on a channel someone else made, is a
        // refusal like any other and says so.
        let made_by_parent =
            os::peer_credentials(stream.as_fd()).is_ok_and(|(pid, _, _)| pid == parent);
        if made_by_parent && parent_gone(parent) {
            return EXIT_REFUSED;
        }
        eprintln!(
            "concurrent_futures: refusing to run as a process-pool worker (pid {}): {reason}",
            std::process::id()
        );
        let _ = os::send_all(stream.as_fd(), &handshake::refused_frame(&reason));
        return EXIT_REFUSED;
    }
    if os::send_all(stream.as_fd(), &handshake::hello_frame()).is_err() {
        return EXIT_SETUP;
    }

    match stream.try_clone() {
        Ok(sink) => wire::direct::install(sink, cap),
        // Replies are then built in the buffer, all of them.
        Err(e) => eprintln!("concurrent_futures: worker replies will be copied: {e}"),
    }
    let mut reader = FrameReader::new(cap);
    let mut out = Vec::with_capacity(64 * 1024);
    loop {
        let body = match reader.read_frame(Polled(&stream)) {
            Ok(body) => body,
            // The parent closed the channel: shutdown, recycling, or the parent is gone.
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return 0,
            // The parent exited with a reply of ours still unread: the kernel resets the channel
            // instead of ending it. The same ordinary end (a program exits right after
            // `shutdown_nowait`), so no message.
            Err(e) if e.kind() == io::ErrorKind::ConnectionReset => return 0,
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
        // SAFETY: the one place a received code address is called. `verify_parent` proved, through
        // the kernel (not the channel), that the peer is our parent, that it runs this very
        // executable file, and that it made the channel; no one else can write to our end (it
        // reached us as stdin, and `take_channel` moved it to a close-on-exec descriptor), and a
        // pool keeps its end close-on-exec and to itself. (A process that made the pair, passed
        // its end to another and then exec'd this file would pass these checks, and the other
        // could ask for any function; but both run with the privileges of whoever started them,
        // which the secure-exec check keeps this process from raising: see `handshake`.) That
        // parent's driver sends only frames built by `code::run_frame`, whose trampoline offset it
        // took from a `Trampoline` (`run_one::<A, R>` and its siblings) and whose function offset
        // from a `fn` of the type that trampoline names, in the same generic call; it sent them only
        // after our `Hello` showed the same build with the same layout. So, here, `tramp` is that
        // same trampoline and `func` that same function, which is the trampoline's contract.
        // `parse_run` also checked both lie in this executable's code.
        unsafe {
            let tramp = std::mem::transmute::<usize, Trampoline>(tramp);
            tramp(func, arg, &mut out);
        }
        match wire::direct::take_sent() {
            Sent::Nothing => {
                if let Err(code) = seal_and_send(&stream, &mut out, cap) {
                    return code;
                }
            }
            Sent::Whole => {}
            Sent::Closed => return 0, // the parent is gone
            Sent::Broken => {
                eprintln!(
                    "concurrent_futures: the result's encoding failed or changed size after part \
                     of its reply was sent; the worker stops"
                );
                return EXIT_PROTOCOL;
            }
        }
        if out.capacity() > wire::KEEP_BUFFER {
            out = Vec::with_capacity(64 * 1024);
        }
    }
}

/// Seals the reply in `out` and sends it; `Err` holds the worker's exit code if it cannot.
fn seal_and_send(stream: &UnixStream, out: &mut Vec<u8>, cap: usize) -> Result<(), i32> {
    if let Err(len) = wire::seal(out, cap) {
        // A value over the cap becomes an encoding error; a message (a panic's or an error's
        // text) keeps its kind and is cut to fit, rather than being reported as an oversized
        // result. The cap is at least `MIN_MAX_FRAME`, so the cut leaves the tag and some text.
        if out[wire::HEADER] == reply::VALUE {
            out.truncate(wire::HEADER);
            out.push(reply::RESULT_ENCODE);
            let msg = format!("the result is {len} bytes, over the frame size cap of {cap} bytes");
            out.extend_from_slice(msg.as_bytes());
        }
        out.truncate(wire::HEADER + cap);
        wire::seal(out, cap).expect("cut to the cap");
    }
    // The task's prints reach the parent's stdout before its result does.
    let _ = io::stdout().flush();
    if os::send_all(stream.as_fd(), out).is_err() {
        return Err(0); // the parent is gone
    }
    Ok(())
}

/// Whether the process named as the parent in the marker has exited or is exiting: its pid is gone,
/// or a zombie, or has already lost its executable (the kernel drops `/proc/<pid>/exe` early in an
/// exit, before the zombie state and before this worker is re-parented). A marker that names some
/// other live process is not this case: that refusal is reported.
fn parent_gone(parent: u32) -> bool {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{parent}/stat")) else {
        return true;
    };
    // `pid (comm) state …`; `comm` may hold spaces and parentheses, so look after the last `)`.
    let state = stat
        .rsplit_once(')')
        .and_then(|(_, rest)| rest.trim_start().chars().next());
    if matches!(state, Some('Z' | 'X')) {
        return true;
    }
    matches!(
        std::fs::read_link(format!("/proc/{parent}/exe")),
        Err(e) if e.kind() == io::ErrorKind::NotFound
    )
}

/// Splits a `RUN` frame into the trampoline, the function address and the argument bytes, checking that
/// both addresses lie in the executable.
pub(crate) fn parse_run(body: Body<'_>) -> Option<(usize, usize, Body<'_>)> {
    let (wire::RUN, rest) = body.split_first()? else {
        return None;
    };
    let tramp = u64::from_le_bytes(rest.head.get(..8)?.try_into().ok()?);
    let func = u64::from_le_bytes(rest.head.get(8..16)?.try_into().ok()?);
    let tramp = code::address_of(tramp)?;
    let func = code::address_of(func)?;
    let arg = Body {
        head: &rest.head[16..],
        tail: rest.tail,
    };
    Some((tramp, func, arg))
}

/// The worker's reads: wait in `poll` for the next frame, then read it; once its header has come, read
/// the rest in one blocking `recv` that waits for all of it.
///
/// Why `poll` first: a worker blocked in a plain `read` is woken every time its driver reads a reply
/// (the kernel wakes a unix socket's waiters when the peer frees buffer space, and a blocked `read`
/// does not filter that event out, where `poll(POLLIN)` does). That spurious wake-up, often of an
/// idle CPU, sat on the round trip's critical path; one `poll` per frame is cheaper.
///
/// Why not before the rest of a frame ([`Want::All`]): by then the worker's last reply has been read
/// (the parent sends a task only to a worker that has answered the one before), so no such wake-up is
/// due (one would cost a switch, not a wrong read: the `recv` goes back to sleep in the kernel), and
/// the parent is writing the frame now. `MSG_WAITALL` copies each piece as it arrives and
/// returns once the frame's bytes are all there: one system call for a 1 MiB tail instead of a `poll`
/// and a `recv` per socket buffer's worth. A parent that dies meanwhile ends it as it ends a `poll`:
/// its end of the channel closes (the `recv` returns what came, then end-of-file), or, if a process it
/// forked holds that end open, `PR_SET_PDEATHSIG` kills this worker.
struct Polled<'a>(&'a UnixStream);

impl io::Read for Polled<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.read_for(buf, Want::Some)
    }
}

impl Source for Polled<'_> {
    fn read_for(&mut self, buf: &mut [u8], want: Want) -> io::Result<usize> {
        if want == Want::Some {
            os::wait_readable(self.0.as_fd())?;
        }
        os::recv(self.0.as_fd(), buf, want.recv_flags())?
            .ok_or_else(|| io::ErrorKind::Interrupted.into())
    }

    fn read_spare(&mut self, buf: &mut Vec<u8>, max: usize, want: Want) -> io::Result<usize> {
        if want == Want::Some {
            os::wait_readable(self.0.as_fd())?;
        }
        os::recv_spare(self.0.as_fd(), buf, max, want.recv_flags())?
            .ok_or_else(|| io::ErrorKind::Interrupted.into())
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::mpsc;
    use std::time::Duration;

    /// A `RUN` frame whose body is `head` then `tail`, the last `tail.len()` bytes its tail.
    fn frame(head: &[u8], tail: &[u8]) -> Vec<u8> {
        let mut f = wire::begin(wire::RUN, head.len() + tail.len());
        f.extend_from_slice(head);
        f.extend_from_slice(tail);
        wire::seal_with_tail(&mut f, wire::DEFAULT_MAX_FRAME, tail.len()).unwrap();
        f
    }

    /// The worker's reads on a real socket, one frame at a time: the parent sends a frame and
    /// nothing after it until that frame's reply, so a read that waited for more than the frame
    /// holds would wait forever. Sizes around the first read (64 KiB with the header) and a socket
    /// buffer of a few KiB, so each frame arrives in many pieces.
    #[test]
    fn the_worker_reads_each_frame_whole_without_waiting_for_the_next() {
        let (parent, worker) = UnixStream::pair().unwrap();
        wire::shrink_socket_buffers(&parent);
        wire::shrink_socket_buffers(&worker);
        let bytes = |n: usize, seed: u8| -> Vec<u8> {
            (0..n).map(|i| (i as u8).wrapping_mul(7) ^ seed).collect()
        };
        // The kind byte and this much of the head arrive in the first read, with the header.
        let first_read = 64 * 1024 - wire::HEADER - 1;
        let mut frames = Vec::new();
        for head in [0, 1, first_read - 1, first_read, first_read + 1, 1 << 20] {
            frames.push(frame(&bytes(head, 1), &[]));
        }
        for tail in [
            1,
            wire::TAIL_MIN - 1,
            wire::TAIL_MIN,
            wire::TAIL_MIN + 1,
            (1 << 20) + 1,
        ] {
            frames.push(frame(b"head", &bytes(tail, 2)));
        }
        let (got_tx, got_rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut reader = FrameReader::new(wire::DEFAULT_MAX_FRAME);
            loop {
                let body = reader
                    .read_frame(Polled(&worker))
                    .map(|b| [b.head, &b.tail[..]].concat());
                let end = body.is_err();
                got_tx.send(body).unwrap();
                if end {
                    return;
                }
            }
        });
        let next = || {
            got_rx
                .recv_timeout(Duration::from_secs(60))
                .expect("a frame sent whole was not read back")
        };
        for (i, f) in frames.iter().enumerate() {
            io::Write::write_all(&mut &parent, f).unwrap();
            // Nothing more is sent until this frame is back, as the parent waits for its reply.
            let body = next().unwrap();
            assert!(body[..] == f[wire::HEADER..], "frame {i}");
        }
        // The parent's end closes: the worker's ordinary end-of-file.
        drop(parent);
        assert_eq!(next().unwrap_err().kind(), io::ErrorKind::UnexpectedEof);
    }
}
