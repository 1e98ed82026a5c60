//! One endpoint's MPI traffic: messages by tag, sends that never block, receives that never block,
//! and the backoff between polls.
//!
//! Every send is an `MPI_Isend` whose buffer the link keeps until `MPI_Test` says it is done. A
//! blocking send could wait forever: MPI (without ULFM) does not report a dead peer, and a large
//! message to one is never taken. A send to a rank the pool gave up on is abandoned, its buffer
//! leaked, since MPI may still read it.

use std::os::raw::{c_int, c_void};
use std::time::Duration;

use mpi::ffi;
use mpi::point_to_point::{MatchedReceiveVec, Source};
use mpi::raw::AsRaw;
use mpi::topology::Communicator;

/// Message tags: what a message is.
pub(crate) mod tag {
    /// Rank → client, first: the rank's build identity (see `identity.rs`).
    pub(crate) const HELLO: i32 = 1;
    /// Client → rank, after a matching `HELLO`: the client's identity, for the rank to check.
    pub(crate) const WELCOME: i32 = 2;
    /// Client → rank: a `RUN` frame of the process pool's wire format (`code::run_frame`).
    pub(crate) const RUN: i32 = 3;
    /// Rank → client: the reply frame to the rank's one `RUN`.
    pub(crate) const REPLY: i32 = 4;
    /// Client → rank: are you there? (empty)
    pub(crate) const PING: i32 = 5;
    /// Rank → client: the answer to a `PING` (empty).
    pub(crate) const PONG: i32 = 6;
    /// Client → rank: exit. Empty after an orderly shutdown; [`STOP_LOST`] when a rank was lost.
    pub(crate) const STOP: i32 = 7;
    /// The body of a `STOP` after a rank was lost: exit without finalizing MPI.
    pub(crate) const STOP_LOST: u8 = 1;
    /// Rank → client: the rank will not serve this client; the reason follows as text.
    pub(crate) const REFUSED: i32 = 8;
}

/// A message as received: who sent it, its tag, its bytes.
pub(crate) struct Received {
    pub(crate) from: i32,
    pub(crate) tag: i32,
    pub(crate) body: Vec<u8>,
}

struct Sending {
    request: ffi::MPI_Request,
    /// Read by MPI until the request completes. A `Vec`'s heap buffer stays put when the `Vec` moves.
    buf: Vec<u8>,
    to: i32,
}

/// The sends in flight on one communicator.
pub(crate) struct Link<C: Communicator + AsRaw<Raw = ffi::MPI_Comm>> {
    /// Always there but in `leak`.
    comm: Option<C>,
    sending: Vec<Sending>,
}

impl<C: Communicator + AsRaw<Raw = ffi::MPI_Comm>> Link<C> {
    /// Takes over `comm`, switching its error handler to "return": a failed call must not abort the
    /// process (MPI's default), since the pool notices lost ranks itself.
    pub(crate) fn new(comm: C) -> Self {
        // SAFETY: `comm` is a live communicator (rsmpi owns it); `RSMPI_ERRORS_RETURN` is a
        // predefined handler that MPI keeps alive for the whole run.
        #[allow(unsafe_code)]
        unsafe {
            ffi::MPI_Comm_set_errhandler(comm.as_raw(), ffi::RSMPI_ERRORS_RETURN);
        }
        Link {
            comm: Some(comm),
            sending: Vec::new(),
        }
    }

    /// Starts sending `buf` to `to` with `tag`. `buf` must be shorter than `i32::MAX` bytes (the
    /// pool's frame cap sees to it).
    pub(crate) fn send(&mut self, to: i32, tag: i32, buf: Vec<u8>) {
        let len = c_int::try_from(buf.len()).expect("frames are capped below i32::MAX bytes");
        let mut request = std::mem::MaybeUninit::<ffi::MPI_Request>::uninit();
        // SAFETY: `buf` lives in `self.sending` until `MPI_Test` reports the request complete (or
        // forever, if abandoned), so MPI never reads freed memory; `len` bytes of `UINT8_T` are
        // exactly its contents; `request` is written by `MPI_Isend` before it is read, and on an
        // error return it holds a null request, which `MPI_Test` completes at once.
        #[allow(unsafe_code)]
        let request = unsafe {
            request.as_mut_ptr().write(ffi::RSMPI_REQUEST_NULL);
            ffi::MPI_Isend(
                buf.as_ptr() as *const c_void,
                len,
                ffi::RSMPI_UINT8_T,
                to,
                tag,
                self.comm().as_raw(),
                request.as_mut_ptr(),
            );
            request.assume_init()
        };
        self.sending.push(Sending { request, buf, to });
    }

    /// Completes the sends that are done; `true` if any was.
    pub(crate) fn progress(&mut self) -> bool {
        let before = self.sending.len();
        self.sending.retain_mut(|s| {
            let mut done: c_int = 0;
            let mut status = std::mem::MaybeUninit::<ffi::MPI_Status>::uninit();
            // SAFETY: `s.request` came from `MPI_Isend` (or is null) and has not completed yet:
            // completed ones are removed right here, and MPI sets a completed request to null.
            #[allow(unsafe_code)]
            unsafe {
                ffi::MPI_Test(&mut s.request, &mut done, status.as_mut_ptr());
            }
            done == 0
        });
        self.sending.len() != before
    }

    /// Whether a send is still in flight (to `to`, or to anyone).
    pub(crate) fn sending(&self, to: Option<i32>) -> bool {
        self.sending.iter().any(|s| to.map_or(true, |r| r == s.to))
    }

    /// Forgets the sends to `to`, a rank given up on: their buffers are leaked, since MPI may still
    /// read them.
    pub(crate) fn abandon(&mut self, to: i32) {
        self.sending.retain_mut(|s| {
            if s.to == to {
                std::mem::forget(std::mem::take(&mut s.buf));
            }
            s.to != to
        });
    }

    /// The next message that has arrived, from anyone, if one has.
    pub(crate) fn receive(&self) -> Option<Received> {
        let probed = self.comm().any_process().immediate_matched_probe()?;
        let (body, status) = probed.matched_receive_vec::<u8>();
        Some(Received {
            from: status.source_rank(),
            tag: status.tag(),
            body,
        })
    }
}

impl<C: Communicator + AsRaw<Raw = ffi::MPI_Comm>> Link<C> {
    /// Lets go of the communicator without freeing or disconnecting it: for a peer that may be dead,
    /// where rsmpi's `MPI_Comm_disconnect` of an intercommunicator (a collective call) would wait for
    /// ever. MPI reclaims it at finalize or exit.
    pub(crate) fn leak(mut self) {
        std::mem::forget(self.comm.take());
    }

    fn comm(&self) -> &C {
        self.comm
            .as_ref()
            .expect("only `leak` takes the communicator, and it consumes the link")
    }
}

impl<C: Communicator + AsRaw<Raw = ffi::MPI_Comm>> Drop for Link<C> {
    fn drop(&mut self) {
        // Sends still in flight (to a rank that died, or one that exited without reading) keep their
        // buffers: MPI may read them until it is finalized.
        for s in self.sending.drain(..) {
            std::mem::forget(s.buf);
        }
    }
}

/// How long to sleep between polls while something is expected: from zero, doubling from a
/// thousandth of the cap up to the cap (mpi4py.futures' `Backoff`, so the two are compared at equal
/// latency). Reset when something happens.
pub(crate) struct Backoff {
    next: Duration,
    max: Duration,
}

impl Backoff {
    pub(crate) fn new(max: Duration) -> Self {
        Backoff {
            next: Duration::ZERO,
            max,
        }
    }

    pub(crate) fn reset(&mut self) {
        self.next = Duration::ZERO;
    }

    /// The next pause.
    pub(crate) fn pause(&mut self) -> Duration {
        let now = self.next;
        self.next = (self.next * 2).max(self.max / 1024).min(self.max);
        now
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_its_cap_and_restarts_at_zero() {
        let mut b = Backoff::new(Duration::from_micros(1024));
        let seq: Vec<u64> = (0..14).map(|_| b.pause().as_micros() as u64).collect();
        assert_eq!(
            seq,
            [0, 1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 1024, 1024]
        );
        b.reset();
        assert_eq!(b.pause(), Duration::ZERO);
    }
}
