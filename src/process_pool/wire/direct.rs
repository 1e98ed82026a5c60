//! A worker's reply that holds a large block of bytes goes to the socket straight from the value.
//!
//! Building the frame first (encode into a buffer, then write it) copies every byte of a result's
//! [`ByteBlock`](crate::ByteBlock) once more than the kernel does; for a 1 MiB echo that copy costs
//! about as much as the kernel's own. Here the reply is written while the trampoline still holds the
//! result: the encoding's small parts gather in the worker's reply buffer, and a block of at least
//! [`DIRECT_MIN`] bytes is sent from the value's own memory in one vectored write behind them.
//!
//! The frame's length comes first on the wire, so the value is encoded up to three times: once into
//! the buffer as before, which stops at the first large block (a reply without one is built exactly
//! as before, and this is the whole cost for it); once to count its size (no bytes are copied); and
//! once to send it. serde has no way to hand out a borrowed slice that outlives one
//! `serialize_bytes` call, so the block must be written during that call, which needs the length
//! known by then. The bytes on the wire are the same as the buffered path's.
//!
//! A `Serialize` impl that fails, panics or changes its size between the counting and the sending
//! after part of the frame has left cannot be answered any more (the parent reads a frame of the
//! announced length): the worker then ends with a protocol error, and the parent fails the task with
//! the worker's exit as for any dead worker. Before anything has left, a failure is an ordinary
//! encoding error reply.
//!
//! Only the process-pool worker installs a socket ([`install`]); elsewhere (another backend calling
//! the same trampolines) replies are built in the buffer as before.

use std::cell::{Cell, RefCell};
use std::io::{self, IoSlice, Write};
use std::os::unix::net::UnixStream;

use serde::Serialize;

use super::{HEADER, TAIL_MIN};
use crate::process_pool::serde_msg::{self, Msg};

/// A block at least this large is sent from where it lies instead of being copied into the frame:
/// below it, one more system call per block costs more than the copy it saves.
pub(crate) const DIRECT_MIN: usize = 64 * 1024;

/// Where the reply goes, once the worker has said so.
struct Sink {
    stream: UnixStream,
    cap: usize,
}

/// What became of the reply being built, for the worker loop to act on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Sent {
    /// Nothing was sent: the reply is in the buffer, to be sealed and sent as usual.
    Nothing,
    /// The whole frame was sent.
    Whole,
    /// Part of the frame was sent and the rest cannot follow (a `Serialize` impl that failed,
    /// panicked, or gave a different size on its second run): the stream is out of step.
    Broken,
    /// The socket refused the write: the parent is gone.
    Closed,
}

thread_local! {
    static SINK: RefCell<Option<Sink>> = const { RefCell::new(None) };
    static SENT: Cell<Sent> = const { Cell::new(Sent::Nothing) };
}

/// Makes this thread's `VALUE` replies with a large block go to `stream` directly (the worker's
/// channel, a duplicate of its descriptor), for frames of at most `cap` bytes.
pub(crate) fn install(stream: UnixStream, cap: usize) {
    SINK.with(|s| *s.borrow_mut() = Some(Sink { stream, cap }));
}

/// What became of the last reply, and forgets it.
pub(crate) fn take_sent() -> Sent {
    SENT.with(|s| s.replace(Sent::Nothing))
}

/// Appends the encoding of `value` to `out`, which holds the frame so far (the header's room and the
/// `VALUE` tag, nothing else), or sends the whole frame if `value` holds a large block and a sink is
/// installed (see the module docs; [`take_sent`] then says [`Sent::Whole`]).
pub(crate) fn encode_value<T: Serialize + ?Sized>(value: &T, out: &mut Vec<u8>) -> Result<(), Msg> {
    let start = out.len();
    let mut probe = Probe {
        out: &mut *out,
        stop_at: SINK.with(|s| s.borrow().is_some()).then_some(DIRECT_MIN),
        stopped: false,
    };
    match serde_msg::serialize(value, &mut probe) {
        Ok(()) => return Ok(()),
        Err(e) if !probe.stopped => return Err(e),
        Err(_) => out.truncate(start),
    }
    let mut count = Count { size: 0, tail: 0 };
    serde_msg::serialize(value, &mut count)?;
    let size = count.size;
    let body = start - HEADER + size;
    let cap = SINK.with(|s| s.borrow().as_ref().map_or(0, |s| s.cap));
    if body > cap || body > u32::MAX as usize {
        // Over the cap: the buffered path turns this into its usual error reply.
        return super::encode_into(value, out).map(drop);
    }
    super::write_header(out, body, count.tail);
    // The task's prints reach the parent's stdout before its result does.
    let _ = io::stdout().flush();
    SINK.with(|s| {
        let sink = s.borrow();
        let sink = sink.as_ref().expect("checked above");
        let mut direct = Direct {
            stream: &sink.stream,
            pending: &mut *out,
            sent: 0,
            closed: false,
        };
        let outcome = serde_msg::serialize(value, &mut direct);
        let (sent, closed) = (direct.sent, direct.closed);
        let total = sent + out.len();
        match outcome {
            _ if closed => SENT.with(|s| s.set(Sent::Closed)),
            Ok(()) if total == start + size => {
                let rest = write_all(&sink.stream, out, &[]);
                SENT.with(|s| {
                    s.set(if rest.is_ok() {
                        Sent::Whole
                    } else {
                        Sent::Closed
                    })
                });
            }
            // `Direct` marked the stream `Broken` when it first wrote.
            _ if sent > 0 => {}
            Ok(()) => {
                out.truncate(start);
                return Err(Msg(format!(
                    "the result encoded to {size} bytes, then to {} bytes: its `Serialize` impl \
                     is not deterministic",
                    total - start
                )));
            }
            Err(e) => {
                out.truncate(start);
                return Err(e);
            }
        }
        Ok(())
    })
}

/// The first encoding: into the buffer, stopping at the first large block if it can be sent directly.
struct Probe<'a> {
    out: &'a mut Vec<u8>,
    /// The size of block to stop at; `None` without a sink.
    stop_at: Option<usize>,
    /// Whether it stopped there (and the buffer holds only a beginning).
    stopped: bool,
}

impl postcard::ser_flavors::Flavor for &mut Probe<'_> {
    type Output = ();

    #[inline]
    fn try_push(&mut self, byte: u8) -> postcard::Result<()> {
        self.out.push(byte);
        Ok(())
    }

    #[inline]
    fn try_extend(&mut self, bytes: &[u8]) -> postcard::Result<()> {
        if self.stop_at.is_some_and(|min| bytes.len() >= min) {
            self.stopped = true;
            return Err(postcard::Error::SerializeBufferFull);
        }
        self.out.extend_from_slice(bytes);
        Ok(())
    }

    fn finalize(self) -> postcard::Result<()> {
        Ok(())
    }
}

/// The second encoding: its size only, and the length of the tail it ends with (see `wire.rs`).
struct Count {
    size: usize,
    tail: usize,
}

impl postcard::ser_flavors::Flavor for &mut Count {
    type Output = ();

    #[inline]
    fn try_push(&mut self, _: u8) -> postcard::Result<()> {
        self.size += 1;
        self.tail = 0;
        Ok(())
    }

    #[inline]
    fn try_extend(&mut self, bytes: &[u8]) -> postcard::Result<()> {
        self.size += bytes.len();
        self.tail = if bytes.len() >= TAIL_MIN {
            bytes.len()
        } else {
            0
        };
        Ok(())
    }

    fn finalize(self) -> postcard::Result<()> {
        Ok(())
    }
}

/// The third encoding: small parts gather in `pending`; a large block is written behind them, from
/// where it lies, in one vectored write.
struct Direct<'a> {
    stream: &'a UnixStream,
    pending: &'a mut Vec<u8>,
    /// Bytes already written, the pending ones they included.
    sent: usize,
    closed: bool,
}

impl postcard::ser_flavors::Flavor for &mut Direct<'_> {
    type Output = ();

    #[inline]
    fn try_push(&mut self, byte: u8) -> postcard::Result<()> {
        self.pending.push(byte);
        Ok(())
    }

    fn try_extend(&mut self, bytes: &[u8]) -> postcard::Result<()> {
        if bytes.len() < DIRECT_MIN {
            self.pending.extend_from_slice(bytes);
            return Ok(());
        }
        let n = self.pending.len() + bytes.len();
        if write_all(self.stream, self.pending, bytes).is_err() {
            self.closed = true;
            return Err(postcard::Error::SerializeBufferFull);
        }
        self.sent += n;
        self.pending.clear();
        // Until the frame's last byte has left, a failure or a panic leaves the stream out of step.
        SENT.with(|s| s.set(Sent::Broken));
        Ok(())
    }

    fn finalize(self) -> postcard::Result<()> {
        Ok(())
    }
}

/// Writes `head` then `block`, whole, in as few vectored writes as the socket takes.
fn write_all(mut stream: &UnixStream, mut head: &[u8], mut block: &[u8]) -> io::Result<()> {
    while !head.is_empty() || !block.is_empty() {
        match stream.write_vectored(&[IoSlice::new(head), IoSlice::new(block)]) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => {
                let from_head = n.min(head.len());
                head = &head[from_head..];
                block = &block[n - from_head..];
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::process_pool::wire::{self, reply, FrameReader, DEFAULT_MAX_FRAME};
    use crate::ByteBlock;
    use serde::ser::Serializer;

    /// A value with small parts around two large blocks: the bytes sent must be the buffered
    /// path's, byte for byte.
    #[derive(Serialize, serde::Deserialize, Debug, PartialEq)]
    struct Mixed {
        id: u32,
        first: ByteBlock,
        label: String,
        second: Vec<u8>,
        small: ByteBlock,
    }

    fn mixed() -> Mixed {
        Mixed {
            id: 300,
            first: (0..=255).cycle().take(DIRECT_MIN).collect(),
            label: "between".into(),
            second: (0..=255).cycle().take(1 << 20).collect(),
            small: ByteBlock::from(vec![9; 10]),
        }
    }

    /// The frame the worker builds without a sink: header, `VALUE`, the encoding.
    fn buffered<T: Serialize>(value: &T) -> Vec<u8> {
        let mut f = wire::begin(reply::VALUE, 0);
        wire::encode_into(value, &mut f).unwrap();
        wire::seal(&mut f, DEFAULT_MAX_FRAME).unwrap();
        f
    }

    fn frame_start() -> Vec<u8> {
        wire::begin_in(Vec::new(), reply::VALUE)
    }

    /// Runs `f` on a thread whose replies go to one end of a socketpair, with `cap`; returns what
    /// `f` returned and every byte that arrived at the other end.
    fn with_sink<R: std::marker::Send + 'static>(
        cap: usize,
        f: impl FnOnce() -> R + std::marker::Send + 'static,
    ) -> (R, Vec<u8>) {
        let (ours, theirs) = UnixStream::pair().unwrap();
        // The reader drains concurrently: a 1 MiB frame does not fit the socket's buffer.
        let reader = std::thread::spawn(move || {
            let mut got = Vec::new();
            io::Read::read_to_end(&mut &theirs, &mut got).unwrap();
            got
        });
        let out = std::thread::spawn(move || {
            install(ours, cap);
            // The thread's end drops its sink, closing the socket: the reader sees the end.
            f()
        })
        .join()
        .unwrap();
        (out, reader.join().unwrap())
    }

    #[test]
    fn a_large_block_is_sent_from_the_value_itself() {
        let ((sent, out_len, out_cap), wire_bytes) = with_sink(DEFAULT_MAX_FRAME, || {
            let mut out = frame_start();
            encode_value(&mixed(), &mut out).unwrap();
            (take_sent(), out.len(), out.capacity())
        });
        assert_eq!(sent, Sent::Whole);
        assert_eq!(wire_bytes, buffered(&mixed()));
        // No block passed through the buffer: it holds the small parts only.
        assert!(out_len < 100 && out_cap < DIRECT_MIN, "{out_len} {out_cap}");
        let mut reader = FrameReader::new(DEFAULT_MAX_FRAME);
        let (kind, payload) = reader
            .read_frame(&wire_bytes[..])
            .unwrap()
            .split_first()
            .unwrap();
        assert_eq!(kind, reply::VALUE);
        assert_eq!(wire::decode::<Mixed>(payload).unwrap(), mixed());
    }

    #[test]
    fn small_values_and_no_sink_stay_in_the_buffer() {
        let small = (7u64, ByteBlock::from(vec![1; DIRECT_MIN - 1]));
        let ((sent, out), wire_bytes) = with_sink(DEFAULT_MAX_FRAME, move || {
            let mut out = frame_start();
            encode_value(&small, &mut out).unwrap();
            (take_sent(), out)
        });
        assert_eq!(sent, Sent::Nothing);
        assert!(wire_bytes.is_empty());
        let small = (7u64, ByteBlock::from(vec![1; DIRECT_MIN - 1]));
        assert_eq!(out[HEADER..], buffered(&small)[HEADER..]);
        // Without a sink (this test's own thread), even a large block is buffered.
        let mut out = frame_start();
        encode_value(&mixed(), &mut out).unwrap();
        assert_eq!(take_sent(), Sent::Nothing);
        assert_eq!(out[HEADER..], buffered(&mixed())[HEADER..]);
    }

    #[test]
    fn over_the_cap_is_left_to_the_buffered_path() {
        let ((sent, out_len), wire_bytes) = with_sink(MIN_CAP, || {
            let mut out = frame_start();
            encode_value(&ByteBlock::from(vec![3; DIRECT_MIN]), &mut out).unwrap();
            (take_sent(), out.len())
        });
        assert_eq!(sent, Sent::Nothing);
        assert!(wire_bytes.is_empty());
        // The worker's `seal` then turns it into its over-the-cap error reply.
        assert!(out_len > MIN_CAP);
    }

    const MIN_CAP: usize = wire::MIN_MAX_FRAME;

    /// Serializes a large block, then grows by a byte each time it is serialized again.
    struct Shifty(std::cell::Cell<usize>);

    impl Serialize for Shifty {
        fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
            let n = self.0.get();
            self.0.set(n + 1);
            s.serialize_bytes(&vec![5; DIRECT_MIN + n])
        }
    }

    /// Fails on its third run (the sending one), before its block.
    struct Fussy(std::cell::Cell<u8>, ByteBlock);

    impl Serialize for Fussy {
        fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
            self.0.set(self.0.get() + 1);
            if self.0.get() == 3 {
                return Err(serde::ser::Error::custom("not a third time"));
            }
            self.1.serialize(s)
        }
    }

    #[test]
    fn a_size_that_changes_after_sending_breaks_the_stream() {
        let ((sent, res), wire_bytes) = with_sink(DEFAULT_MAX_FRAME, || {
            let mut out = frame_start();
            let res = encode_value(&Shifty(0.into()), &mut out).map_err(|e| e.0);
            (take_sent(), res)
        });
        // Part of the frame left: the worker must stop (the parent sees a short frame, then the end).
        assert_eq!(sent, Sent::Broken);
        assert!(res.is_ok());
        // The header announced the counted size; one byte more followed it.
        let announced = u32::from_le_bytes(wire_bytes[..4].try_into().unwrap()) as usize;
        assert_eq!(wire_bytes.len(), HEADER + announced + 1);
    }

    #[test]
    fn a_failure_before_anything_left_is_an_ordinary_error() {
        let ((sent, res, out), wire_bytes) = with_sink(DEFAULT_MAX_FRAME, || {
            let mut out = frame_start();
            let value = Fussy(0.into(), ByteBlock::from(vec![0; DIRECT_MIN]));
            let res = encode_value(&value, &mut out).map_err(|e| e.0);
            (take_sent(), res, out)
        });
        assert_eq!(sent, Sent::Nothing);
        assert_eq!(res.unwrap_err(), "not a third time");
        assert!(wire_bytes.is_empty());
        // The header is sealed again by the worker; the tag alone is left.
        assert_eq!(out[HEADER..], frame_start()[HEADER..]);
    }

    #[test]
    fn a_closed_socket_is_reported_as_such() {
        let (ours, theirs) = UnixStream::pair().unwrap();
        drop(theirs);
        let sent = std::thread::spawn(move || {
            install(ours, DEFAULT_MAX_FRAME);
            let mut out = frame_start();
            encode_value(&mixed(), &mut out).unwrap();
            take_sent()
        })
        .join()
        .unwrap();
        assert_eq!(sent, Sent::Closed);
    }
}
