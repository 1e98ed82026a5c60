//! A worker rank: its MPI owner thread answers the client, and the thread that started the rank runs
//! the tasks, one at a time, so a long task never keeps the rank from answering heartbeats.

use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender};
use std::time::{Duration, Instant};

use mpi::ffi;
use mpi::raw::AsRaw;
use mpi::topology::Communicator;

use super::identity;
use super::link::{tag, Backoff, Link};
use crate::process_pool::code::Trampoline;
use crate::process_pool::{child, wire};

/// How a rank's service ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Ending {
    /// The client said `STOP`.
    Stopped,
    /// The client said `STOP` after it lost a rank: MPI cannot be finalized (that waits for the lost
    /// rank).
    StoppedAfterLoss,
    /// The rank refused the client (a different build), or the client sent something malformed.
    Refused,
    /// Nothing came from the client for the heartbeat timeout: it is presumed dead.
    ClientLost,
}

impl Ending {
    /// The rank's exit code.
    pub(crate) fn exit_code(self) -> i32 {
        match self {
            Ending::Stopped | Ending::StoppedAfterLoss => 0,
            Ending::Refused => 3,
            Ending::ClientLost => 4,
        }
    }
}

/// What the rank knows of its client's build.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Build {
    /// Its identity has not arrived: no task may run.
    Unproven,
    /// Its identity matched this rank's: its code offsets name this rank's functions.
    Same,
}

/// The MPI side of a rank: serves `client` until told to stop. `run` carries each `RUN` frame to the
/// task thread, `done` brings its reply frame back.
pub(crate) fn serve<C>(
    link: &mut Link<C>,
    client: i32,
    run: Sender<Vec<u8>>,
    done: Receiver<Vec<u8>>,
    backoff_cap: Duration,
    client_timeout: Duration,
    watchdog: &Watchdog,
) -> Ending
where
    C: Communicator + AsRaw<Raw = ffi::MPI_Comm>,
{
    link.send(client, tag::HELLO, identity::encoded());
    let mut client_build = Build::Unproven;
    // Tasks received and not yet answered: the task thread runs them in order.
    let mut running = 0usize;
    let mut ending = None;
    let mut backoff = Backoff::new(backoff_cap);
    let mut heard = Instant::now();
    while ending.is_none() {
        watchdog.turn();
        let mut progressed = false;
        while let Some(msg) = link.receive() {
            progressed = true;
            if msg.from != client {
                log::warn!(
                    "concurrent_futures: MPI rank ignores a message from rank {}, not its client",
                    msg.from
                );
                continue;
            }
            heard = Instant::now();
            match msg.tag {
                tag::WELCOME => match identity::refusal(&msg.body) {
                    None => client_build = Build::Same,
                    Some(why) => {
                        let why = format!("the client is not the same build as this rank: {why}");
                        eprintln!("concurrent_futures: {why}");
                        link.send(client, tag::REFUSED, why.into_bytes());
                        ending = Some(Ending::Refused);
                    }
                },
                tag::RUN if client_build == Build::Same => {
                    running += 1;
                    if run.send(msg.body).is_err() {
                        ending = Some(Ending::Refused);
                    }
                }
                tag::RUN => {
                    let why = "a task arrived before the client's build identity";
                    link.send(client, tag::REFUSED, why.as_bytes().to_vec());
                    ending = Some(Ending::Refused);
                }
                tag::PING => link.send(client, tag::PONG, Vec::new()),
                tag::STOP if msg.body == [tag::STOP_LOST] => {
                    ending = Some(Ending::StoppedAfterLoss)
                }
                tag::STOP => ending = Some(Ending::Stopped),
                other => {
                    log::warn!("concurrent_futures: MPI rank ignores a message of tag {other}")
                }
            }
        }
        progressed |= link.progress();
        if progressed {
            backoff.reset();
        }
        if ending.is_none() && heard.elapsed() >= client_timeout {
            eprintln!(
                "concurrent_futures: MPI rank stops serving: nothing from its client (rank {client}) \
                 for {client_timeout:?}"
            );
            ending = Some(Ending::ClientLost);
        }
        let pause = backoff.pause();
        if running > 0 {
            // Waiting on the task thread wakes at once when the task ends, and polls MPI meanwhile.
            match done.recv_timeout(pause) {
                Ok(reply) => {
                    backoff.reset();
                    // Every reply ready now leaves in this turn.
                    for reply in std::iter::once(reply).chain(done.try_iter()) {
                        running -= 1;
                        link.send(client, tag::REPLY, reply);
                    }
                }
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => ending = Some(Ending::Refused),
            }
        } else if ending.is_none() {
            std::thread::sleep(pause);
        }
    }
    // Let the last messages (a reply, a refusal) leave; the client may be gone, so not forever.
    let until = Instant::now() + Duration::from_secs(5).min(client_timeout);
    while link.sending(None) && Instant::now() < until {
        watchdog.turn();
        if !link.progress() {
            std::thread::sleep(backoff.pause());
        }
    }
    ending.unwrap_or(Ending::Stopped)
}

/// The task side of a rank: runs each frame `run` brings and sends its reply frame on `done`, until
/// the MPI side hangs up.
pub(crate) fn run_tasks(run: Receiver<Vec<u8>>, done: Sender<Vec<u8>>) {
    for frame in run {
        let mut out = Vec::with_capacity(64);
        out.extend_from_slice(&[0; wire::HEADER]);
        let body = frame.get(wire::HEADER..).unwrap_or(&[]);
        match child::parse_run(body.into()) {
            // SAFETY: the one place a rank calls a received code address. The frame came from the
            // rank's client (the MPI side drops messages from anyone else) only after the client's
            // identity matched this rank's (`identity.rs`: same code bytes, same layout), and the
            // client builds `RUN` frames only with `code::run_frame`, whose trampoline offset it took
            // from a `Trampoline` (`run_one::<A, R>` and its siblings) and whose function offset from
            // a `fn` of the type that trampoline names, in the same generic call. So `tramp` is that
            // trampoline and `func` that function, which is the trampoline's contract; `parse_run`
            // also checked that both lie in this executable's code. Trusting the client at all is the
            // MPI job's trust model (see the module docs of `mpi_pool`).
            #[allow(unsafe_code)]
            Some((tramp, func, arg)) => unsafe {
                let tramp = std::mem::transmute::<usize, Trampoline>(tramp);
                tramp(func, arg, &mut out);
            },
            None => {
                out.push(wire::reply::ARG_DECODE);
                out.extend_from_slice(b"the rank received a malformed task frame");
            }
        }
        let cap = wire::DEFAULT_MAX_FRAME;
        if let Err(len) = wire::seal(&mut out, cap) {
            // As the process pool's worker does: a value over the cap becomes an encoding error; a
            // message (a panic's, an error's) keeps its kind and is cut to fit.
            if out[wire::HEADER] == wire::reply::VALUE {
                out.truncate(wire::HEADER);
                out.push(wire::reply::RESULT_ENCODE);
                let msg =
                    format!("the result is {len} bytes, over the frame size cap of {cap} bytes");
                out.extend_from_slice(msg.as_bytes());
            }
            out.truncate(wire::HEADER + cap);
            wire::seal(&mut out, cap).expect("cut to the cap");
        }
        // The task's prints reach the terminal before its result reaches the client.
        let _ = std::io::Write::flush(&mut std::io::stdout());
        if done.send(out).is_err() {
            return;
        }
    }
}

/// Ends the rank's process when its MPI owner has been stuck in one MPI call for too long.
///
/// Open MPI's TCP transport can spin for ever inside a non-blocking call (`MPI_Test`) once a peer's
/// connection broke (seen when the client exits right after a rank died), and `MPI_Finalize` waits
/// for every peer. A rank must not outlive its job that way, so a thread that makes no MPI call
/// watches the owner's turns and, after `limit` without one, ends the process without running
/// exit handlers (Open MPI's could wait on the same broken state).
pub(crate) struct Watchdog {
    start: Instant,
    /// Milliseconds from `start` to the owner's last turn.
    last_turn: std::sync::atomic::AtomicU64,
}

impl Watchdog {
    /// Starts the watching thread.
    pub(crate) fn start(limit: Duration) -> std::sync::Arc<Watchdog> {
        let dog = std::sync::Arc::new(Watchdog {
            start: Instant::now(),
            last_turn: std::sync::atomic::AtomicU64::new(0),
        });
        let watched = dog.clone();
        let spawned = std::thread::Builder::new()
            .name("mpi-watchdog".into())
            .spawn(move || loop {
                std::thread::sleep(limit / 4);
                let last = watched.last_turn.load(std::sync::atomic::Ordering::Relaxed);
                let now = watched.start.elapsed().as_millis() as u64;
                if now.saturating_sub(last) > limit.as_millis() as u64 {
                    eprintln!(
                        "concurrent_futures: MPI rank ends: its MPI calls have not returned for \
                         {limit:?} (a peer is gone)"
                    );
                    let _ = std::io::Write::flush(&mut std::io::stdout());
                    // SAFETY: `_exit` ends the process at once; nothing runs after it.
                    #[allow(unsafe_code)]
                    unsafe {
                        libc::_exit(5)
                    }
                }
            });
        if let Err(e) = spawned {
            eprintln!("concurrent_futures: no watchdog for this MPI rank: {e}");
        }
        dog
    }

    /// The owner made a turn of its loop (it is not stuck in an MPI call).
    pub(crate) fn turn(&self) {
        let now = self.start.elapsed().as_millis() as u64;
        self.last_turn
            .store(now, std::sync::atomic::Ordering::Relaxed);
    }
}
