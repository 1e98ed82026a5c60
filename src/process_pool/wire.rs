//! The frames that cross a worker's socket.
//!
//! Every message is `u32 body length | u32 tail length | body` (little-endian), and `body[0]` says
//! what it is. Payloads are [postcard], a compact serde format. A size cap (default 1 GiB, see
//! [`max_frame_bytes`](crate::process_pool::ProcessPoolBuilder::max_frame_bytes)) bounds both
//! directions: a value that would exceed it fails its own task with [`Error::Serialization`], and a frame
//! header announcing more means the stream is corrupt (the worker is killed).
//!
//! The *tail* is where a large byte block can skip the receiver's copies: when a payload's encoding
//! ends with a byte string of at least [`TAIL_MIN`] bytes (a `ByteBlock` argument or result, or one
//! as the last field), the sender says how long it is, and the receiver reads those last bytes of
//! the body straight into an allocation of their own, which becomes the decoded `ByteBlock` or
//! `Vec<u8>` (see [`Body`] and `serde_msg::from_body`). The bytes on the wire are the same either
//! way; the tail length is only where they go on arrival, and 0 means "nowhere special".
//!
//! Parent → worker: `RUN | trampoline offset u64 | function offset u64 | argument bytes`.
//! Worker → parent: `HELLO | postcard(Hello)` once, then one reply per `RUN`: a reply tag
//! (`VALUE`, `PANICKED`, …) followed by its payload. A chunk's `VALUE` payload is a sequence of
//! `u32 length | reply` items, one per element. The parent ends a worker by closing its write side: the
//! worker sees end-of-file and exits.
//!
//! [`Error::Serialization`]: crate::Error::Serialization

use std::borrow::Cow;
use std::io::{self, Read};

/// Bytes before the body: its length, then its tail's.
pub(crate) const HEADER: usize = 8;

/// Worker → parent, first frame: who I am (see `handshake.rs`).
pub(crate) const HELLO: u8 = 0x48;
/// Parent → worker: run a trampoline.
pub(crate) const RUN: u8 = 0x52;

/// Reply tags.
pub(crate) mod reply {
    /// The value (or a chunk's items) follows.
    pub(crate) const VALUE: u8 = 0;
    /// The task panicked; its message, location and backtrace follow (see `code::panicked`).
    pub(crate) const PANICKED: u8 = 1;
    /// A fallible task (or an initializer) returned `Err`; its `Display` text follows.
    pub(crate) const FAILED: u8 = 2;
    /// The worker could not decode the argument; the decoder's message follows.
    pub(crate) const ARG_DECODE: u8 = 3;
    /// The worker could not encode the result; the encoder's message follows.
    pub(crate) const RESULT_ENCODE: u8 = 4;
}

/// The default cap on one frame's body.
pub(crate) const DEFAULT_MAX_FRAME: usize = 1 << 30;
/// The smallest cap: the handshake and the pool's own error replies must fit (below about 80 bytes
/// the worker's `Hello` would be refused and the pool break at its first worker).
pub(crate) const MIN_MAX_FRAME: usize = 4096;

/// Buffers (the frame reader's, the worker's reply buffer) are kept between frames up to this size, so
/// a stream of large frames (a 1 MiB payload needs a 2 MiB read buffer) reuses one allocation instead
/// of allocating, zero-filling and page-faulting a fresh one per frame; a bigger one is dropped once its
/// frame is consumed, so a single huge frame does not pin its memory for the worker's life.
pub(crate) const KEEP_BUFFER: usize = 16 << 20;

/// A trailing byte string at least this large travels as a frame's tail: below it, the receiver's
/// copy out of its buffer costs less than an allocation and a read of its own.
pub(crate) const TAIL_MIN: usize = 64 * 1024;

/// A postcard output that appends to a `Vec<u8>`: bytes in bulk (`serialize_bytes`, e.g.
/// [`ByteBlock`](crate::ByteBlock)) are one `extend_from_slice` (a `memcpy`). postcard's own `to_extend` copies
/// them through a byte iterator and `to_io` wraps every single byte in an `io::Write` call. Its
/// output is the length of the byte string the encoding ends with, if that is a tail (see
/// [`TAIL_MIN`]), else 0.
pub(crate) struct Append<'a> {
    out: &'a mut Vec<u8>,
    tail: usize,
}

impl<'a> Append<'a> {
    pub(crate) fn new(out: &'a mut Vec<u8>) -> Self {
        Append { out, tail: 0 }
    }
}

impl postcard::ser_flavors::Flavor for Append<'_> {
    type Output = usize;

    #[inline]
    fn try_push(&mut self, byte: u8) -> postcard::Result<()> {
        self.out.push(byte);
        self.tail = 0;
        Ok(())
    }

    #[inline]
    fn try_extend(&mut self, bytes: &[u8]) -> postcard::Result<()> {
        self.out.extend_from_slice(bytes);
        self.tail = if bytes.len() >= TAIL_MIN {
            bytes.len()
        } else {
            0
        };
        Ok(())
    }

    fn finalize(self) -> postcard::Result<usize> {
        Ok(self.tail)
    }
}

/// Appends the postcard encoding of `value` to `out`; returns the length of the tail it ends with
/// (0 if none; see [`TAIL_MIN`]). An error keeps the text of a custom serde error (see
/// `serde_msg.rs`).
pub(crate) fn encode_into<T: serde::Serialize + ?Sized>(
    value: &T,
    out: &mut Vec<u8>,
) -> Result<usize, super::serde_msg::Msg> {
    super::serde_msg::serialize(value, Append::new(out))
}

/// Decodes a postcard payload. An error keeps the text of a custom serde error.
pub(crate) fn decode<T: serde::de::DeserializeOwned>(
    body: Body<'_>,
) -> Result<T, super::serde_msg::Msg> {
    super::serde_msg::from_body(body.head, body.tail)
}

/// Starts a frame of kind `kind` in a fresh buffer (the length is patched by [`seal`]).
pub(crate) fn begin(kind: u8, capacity: usize) -> Vec<u8> {
    begin_in(Vec::with_capacity(HEADER + 1 + capacity), kind)
}

/// Starts a frame of kind `kind` in `buf` (emptied first, its allocation reused).
pub(crate) fn begin_in(mut buf: Vec<u8>, kind: u8) -> Vec<u8> {
    buf.clear();
    buf.extend_from_slice(&[0; HEADER]);
    buf.push(kind);
    buf
}

/// Writes the body length into the header, with no tail. Fails with the body's size if it is over
/// `cap`.
pub(crate) fn seal(buf: &mut [u8], cap: usize) -> Result<(), usize> {
    seal_with_tail(buf, cap, 0)
}

/// Writes the body length and the tail length into the header. Fails with the body's size if it is
/// over `cap`. A tail that would leave no kind byte in front of it is sent as none.
pub(crate) fn seal_with_tail(buf: &mut [u8], cap: usize, tail: usize) -> Result<(), usize> {
    let len = buf.len() - HEADER;
    if len > cap || len > u32::MAX as usize {
        return Err(len);
    }
    write_header(buf, len, tail);
    Ok(())
}

/// The header of a body of `len` bytes (`len <= u32::MAX`, checked by the caller) whose last `tail`
/// bytes are its tail. A tail that would leave no kind byte in front of it is sent as none.
pub(crate) fn write_header(buf: &mut [u8], len: usize, tail: usize) {
    let tail = if tail < len { tail } else { 0 };
    buf[..4].copy_from_slice(&(len as u32).to_le_bytes());
    buf[4..HEADER].copy_from_slice(&(tail as u32).to_le_bytes());
}

/// A frame's body as the reader hands it out: the `head` in the reader's buffer, and the `tail` (see
/// the module docs) in an allocation of its own, empty if the frame has none. The body's bytes are
/// `head` then `tail`; `head` holds at least the kind byte.
#[derive(Debug)]
pub(crate) struct Body<'a> {
    pub(crate) head: &'a [u8],
    pub(crate) tail: Vec<u8>,
}

impl<'a> Body<'a> {
    /// The kind byte and the rest of the body.
    pub(crate) fn split_first(self) -> Option<(u8, Body<'a>)> {
        let (&kind, head) = self.head.split_first()?;
        Some((
            kind,
            Body {
                head,
                tail: self.tail,
            },
        ))
    }

    /// The body's bytes in one slice: the head itself if there is no tail (the usual case), else a
    /// copy of both (for readers of small replies that a peer marked oddly: correct, not fast).
    pub(crate) fn contiguous(&self) -> Cow<'a, [u8]> {
        if self.tail.is_empty() {
            Cow::Borrowed(self.head)
        } else {
            Cow::Owned([self.head, &self.tail].concat())
        }
    }

    /// The body's length.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.head.len() + self.tail.len()
    }
}

impl<'a> From<&'a [u8]> for Body<'a> {
    /// A body held in one slice (no tail).
    fn from(head: &'a [u8]) -> Self {
        Body {
            head,
            tail: Vec::new(),
        }
    }
}

/// What a read of the frame reader waits for, which a blocking source may use to read in fewer calls.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Want {
    /// Whatever has arrived, at least one byte: the start of the next frame, which may be a long
    /// time coming, or never (the peer may be done). The reader may ask for more than the frame
    /// holds here: its length is not known yet.
    Some,
    /// Every byte asked for: the rest of a frame whose header has arrived, which its sender is
    /// writing now. The reader never asks for a byte past the frame's end with it, so a source may
    /// wait until all of them are there (`MSG_WAITALL`: one call for a whole tail, instead of one
    /// per socket buffer's worth). A source may still return fewer (a signal, the end of the
    /// stream); the reader then asks again for the rest.
    All,
}

impl Want {
    /// The `recv` flags of a blocking socket read for this want.
    pub(crate) fn recv_flags(self) -> libc::c_int {
        match self {
            Want::Some => 0,
            Want::All => libc::MSG_WAITALL,
        }
    }
}

/// A byte stream the frame reader reads: a [`Read`], which may also read straight into a `Vec`'s spare
/// capacity (a socket: the kernel fills it), so a tail's allocation need not be zero-filled first.
pub(crate) trait Source: Read {
    /// Reads into `buf`; returns how many bytes. The default is [`Read::read`], which returns what
    /// has arrived whatever `want` says.
    fn read_for(&mut self, buf: &mut [u8], want: Want) -> io::Result<usize> {
        let _ = want;
        self.read(buf)
    }

    /// Reads at most `max` bytes into `buf`'s spare capacity, appending them; returns how many. The
    /// default zero-fills the room (a bounded step at a time) and reads into it with
    /// [`read_for`](Self::read_for).
    fn read_spare(&mut self, buf: &mut Vec<u8>, max: usize, want: Want) -> io::Result<usize> {
        let len = buf.len();
        let room = (buf.capacity() - len).min(max).min(INITIAL);
        buf.resize(len + room, 0);
        let read = self.read_for(&mut buf[len..], want);
        buf.truncate(len + *read.as_ref().unwrap_or(&0));
        read
    }
}

impl Source for &[u8] {}

impl Source for &std::os::unix::net::UnixStream {}

impl<S: Source + ?Sized> Source for &mut S {
    fn read_for(&mut self, buf: &mut [u8], want: Want) -> io::Result<usize> {
        (**self).read_for(buf, want)
    }

    fn read_spare(&mut self, buf: &mut Vec<u8>, max: usize, want: Want) -> io::Result<usize> {
        (**self).read_spare(buf, max, want)
    }
}

/// Reads frames from a stream into one reusable buffer: a small reply usually arrives in a single
/// `read`, and nothing is allocated per frame once the buffer has grown to the largest frame seen.
/// A frame's tail is read into an allocation of its own instead, which the caller takes with the
/// [`Body`].
///
/// The reader may be fed by a non-blocking source: a read that would block returns `WouldBlock`, and
/// the next call carries on where it stopped, inside the header, the head or the tail.
pub(crate) struct FrameReader {
    buf: Vec<u8>,
    start: usize,
    end: usize,
    cap: usize,
    /// The header of the frame being read, once it has arrived (and was consumed from `buf`).
    frame: Option<Frame>,
    /// The tail of that frame, as far as it has arrived.
    tail: Vec<u8>,
}

/// A frame header, checked.
#[derive(Clone, Copy)]
struct Frame {
    head: usize,
    tail: usize,
}

const INITIAL: usize = 64 * 1024;

/// How much room a tail's allocation gains at a time past what has arrived (or as much as has
/// arrived, if more): it grows with the bytes that arrive, never with the length a header announces.
const TAIL_STEP: usize = 256 * 1024;

/// A tail's first allocation is reserved (not touched) up to this size at once, so a block of up to
/// 1 MiB lands in one allocation of its exact size; a larger one grows from there as it arrives.
const TAIL_FIRST: usize = 1 << 20;

impl FrameReader {
    pub(crate) fn new(cap: usize) -> Self {
        FrameReader {
            buf: vec![0; INITIAL],
            start: 0,
            end: 0,
            cap,
            frame: None,
            tail: Vec::new(),
        }
    }

    /// Forgets buffered bytes (a new worker process on the same driver).
    pub(crate) fn reset(&mut self) {
        self.start = 0;
        self.end = 0;
        self.frame = None;
        self.tail = Vec::new();
        if self.buf.len() > KEEP_BUFFER {
            self.buf = vec![0; INITIAL];
        }
    }

    /// The next frame's body. End-of-file (even between frames) is `UnexpectedEof`; a length over the
    /// cap, or a tail that leaves no kind byte, is `InvalidData`.
    pub(crate) fn read_frame(&mut self, mut r: impl Source) -> io::Result<Body<'_>> {
        let frame = match self.frame {
            Some(frame) => frame,
            None => {
                // Do not keep a buffer grown for one huge frame (up to the cap) for the rest of
                // the worker's life; drop it once it has been consumed, but only above
                // `KEEP_BUFFER`, which a 1 MiB payload's 2 MiB frame stays within (a fresh buffer
                // per frame would cost calloc, realloc, zero-fill and page faults of 2 MiB on both
                // sides of every round trip).
                if self.start == self.end && self.buf.len() > KEEP_BUFFER {
                    self.reset();
                }
                self.fill_to(&mut r, HEADER, Want::Some)?;
                let field = |at: usize| {
                    let mut n = [0; 4];
                    n.copy_from_slice(&self.buf[self.start + at..self.start + at + 4]);
                    u32::from_le_bytes(n) as usize
                };
                let (len, tail) = (field(0), field(4));
                if len > self.cap || len == 0 {
                    return Err(io::Error::new(
                        io::ErrorKind::InvalidData,
                        format!("a frame of {len} bytes (the cap is {})", self.cap),
                    ));
                }
                if tail >= len {
                    return Err(io::Error::new(
                        io::ErrorKind::InvalidData,
                        format!("a frame of {len} bytes with a tail of {tail}"),
                    ));
                }
                self.start += HEADER;
                let frame = Frame {
                    head: len - tail,
                    tail,
                };
                self.frame = Some(frame);
                frame
            }
        };
        self.fill_to(&mut r, frame.head, Want::All)?;
        if frame.tail > 0 {
            self.fill_tail(&mut r, frame)?;
        }
        self.frame = None;
        let head = self.start..self.start + frame.head;
        self.start = head.end;
        if self.start == self.end {
            self.start = 0;
            self.end = 0;
        }
        Ok(Body {
            head: &self.buf[head],
            tail: std::mem::take(&mut self.tail),
        })
    }

    /// Reads the tail of `frame`, whose head is buffered, into `self.tail`.
    fn fill_tail(&mut self, r: &mut impl Source, frame: Frame) -> io::Result<()> {
        if self.tail.capacity() == 0 {
            self.tail.reserve_exact(frame.tail.min(TAIL_FIRST));
        }
        // What the head's reads brought of the tail (at most one read's worth past the head) moves
        // out of the buffer, once.
        let after_head = self.start + frame.head;
        if self.end > after_head {
            let n = (self.end - after_head).min(frame.tail);
            self.tail
                .extend_from_slice(&self.buf[after_head..after_head + n]);
            self.buf.copy_within(after_head + n..self.end, after_head);
            self.end -= n;
        }
        while self.tail.len() < frame.tail {
            let got = self.tail.len();
            if got == self.tail.capacity() {
                self.tail
                    .reserve_exact((frame.tail - got).min(TAIL_STEP.max(got)));
            }
            match r.read_spare(&mut self.tail, frame.tail - got, Want::All) {
                Ok(0) => return Err(io::ErrorKind::UnexpectedEof.into()),
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// Makes at least `need` unread bytes available. While the frame's length is unknown
    /// ([`Want::Some`]: its header), one read takes up to `max(need, INITIAL)` bytes past `start`, so a
    /// small frame, or several, arrive in one call; once it is known ([`Want::All`]: its head), reads
    /// stop at `need`, the head's end, so a source that waits for every byte asked for never waits
    /// for the next frame, and the tail stays in the stream for [`Self::fill_tail`].
    fn fill_to(&mut self, r: &mut impl Source, need: usize, want: Want) -> io::Result<()> {
        if self.end - self.start >= need {
            return Ok(());
        }
        let span = match want {
            Want::Some => need.max(INITIAL),
            Want::All => need,
        };
        if self.start + span > self.buf.len() {
            // Move the unread bytes to the front.
            self.buf.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
        }
        while self.end - self.start < need {
            let limit = (self.start + span).min(self.buf.len());
            if self.end == limit {
                // Grow with the bytes that arrive, not with the length the header announces: a
                // header is only a claim, and a peer that announces a frame up to the cap and then
                // sends nothing (or dies) must not make this side allocate and zero-fill the cap.
                // Doubling reaches the same final size, so a stream of large frames still settles
                // on one buffer.
                let grown = (self.buf.len() * 2).max(INITIAL);
                self.buf.resize(grown.min(need.next_power_of_two()), 0);
                continue;
            }
            match r.read_for(&mut self.buf[self.end..limit], want) {
                Ok(0) => return Err(io::ErrorKind::UnexpectedEof.into()),
                Ok(n) => self.end += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }
}

/// For tests: gives `s` the smallest send and receive buffers the kernel allows, so a frame crosses
/// it in many pieces.
#[cfg(test)]
pub(crate) fn shrink_socket_buffers(s: &std::os::unix::net::UnixStream) {
    let small: libc::c_int = 4096;
    for opt in [libc::SO_SNDBUF, libc::SO_RCVBUF] {
        // SAFETY: `s` is an open socket for the call; the option value is a live `c_int` of the
        // size passed.
        #[allow(unsafe_code)]
        let rc = unsafe {
            libc::setsockopt(
                std::os::fd::AsRawFd::as_raw_fd(s),
                libc::SOL_SOCKET,
                opt,
                (&small as *const libc::c_int).cast(),
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            )
        };
        assert_eq!(rc, 0);
    }
}

pub(crate) mod direct;

#[cfg(test)]
mod fuzz;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_split_and_joined() {
        let mut bytes = Vec::new();
        for i in 0..3u8 {
            let mut f = begin(RUN, 0);
            f.extend(std::iter::repeat(i).take(100_000 * usize::from(i) + 1));
            seal(&mut f, DEFAULT_MAX_FRAME).unwrap();
            bytes.extend(f);
        }
        // A reader that hands out at most 7 bytes at a time.
        struct Trickle<'a>(&'a [u8]);
        impl Source for Trickle<'_> {}
        impl Read for Trickle<'_> {
            fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
                let n = buf.len().min(7).min(self.0.len());
                buf[..n].copy_from_slice(&self.0[..n]);
                self.0 = &self.0[n..];
                Ok(n)
            }
        }
        let mut src = Trickle(&bytes);
        let mut r = FrameReader::new(DEFAULT_MAX_FRAME);
        for i in 0..3u8 {
            let body = r.read_frame(&mut src).unwrap().head;
            assert_eq!(body[0], RUN);
            assert_eq!(body.len(), 1 + 100_000 * usize::from(i) + 1);
            assert!(body[1..].iter().all(|&b| b == i));
        }
        let e = r.read_frame(&mut src).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::UnexpectedEof);
    }

    #[test]
    fn end_of_file_inside_a_frame_is_unexpected_eof() {
        // A worker that dies while writing a reply: the driver must see the end, not a frame.
        let mut f = begin(RUN, 0);
        f.extend([9; 1000]);
        seal(&mut f, DEFAULT_MAX_FRAME).unwrap();
        for cut in [2, HEADER, HEADER + 1, f.len() - 1] {
            let e = FrameReader::new(DEFAULT_MAX_FRAME)
                .read_frame(&f[..cut])
                .unwrap_err();
            assert_eq!(e.kind(), io::ErrorKind::UnexpectedEof, "cut at {cut}");
        }
    }

    #[test]
    fn a_huge_frame_does_not_pin_its_buffer() {
        let mut bytes = Vec::new();
        for n in [KEEP_BUFFER + 1, 10] {
            let mut f = begin(RUN, 0);
            f.extend(std::iter::repeat(1).take(n));
            seal(&mut f, DEFAULT_MAX_FRAME).unwrap();
            bytes.extend(f);
        }
        let mut src = &bytes[..];
        let mut r = FrameReader::new(DEFAULT_MAX_FRAME);
        assert_eq!(r.read_frame(&mut src).unwrap().head.len(), 2 + KEEP_BUFFER);
        assert_eq!(r.read_frame(&mut src).unwrap().head.len(), 11);
        // Everything consumed: the next read starts from a small buffer again.
        let e = r.read_frame(&mut src).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::UnexpectedEof);
        assert!(r.buf.len() <= KEEP_BUFFER, "{}", r.buf.len());
    }

    #[test]
    fn a_large_frame_keeps_its_buffer() {
        // A stream of 1 MiB payloads reuses one buffer instead of dropping and regrowing it per frame.
        let mut bytes = Vec::new();
        for i in 0..3u8 {
            let mut f = begin(RUN, 0);
            f.extend(std::iter::repeat(i).take(1 << 20));
            seal(&mut f, DEFAULT_MAX_FRAME).unwrap();
            bytes.extend(f);
        }
        let mut src = &bytes[..];
        let mut r = FrameReader::new(DEFAULT_MAX_FRAME);
        for i in 0..3u8 {
            let body = r.read_frame(&mut src).unwrap().head;
            assert!(body.len() == 1 + (1 << 20) && body[1..].iter().all(|&b| b == i));
            assert_eq!(r.buf.len(), 2 << 20);
        }
        // Between frames (everything consumed), the buffer is still there for the next one.
        let e = r.read_frame(&mut src).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::UnexpectedEof);
        assert_eq!(r.buf.len(), 2 << 20);
    }

    #[test]
    fn bytes_append_as_one_block() {
        let mut out = vec![RUN];
        encode_into(&crate::ByteBlock::from(vec![7u8; 300]), &mut out).unwrap();
        // A varint length (300 = 0xac 0x02), then the bytes; the same as postcard's own encoders.
        assert_eq!(&out[..3], &[RUN, 0xac, 0x02]);
        assert_eq!(out.len(), 3 + 300);
        let plain = postcard::to_stdvec(&vec![7u8; 300]).unwrap();
        assert_eq!(&out[1..], &plain[..]);
    }

    /// A frame as a sender builds it whose body is `RUN`, `head`, then `tail` as its tail.
    fn tail_frame(head: &[u8], tail: &[u8]) -> Vec<u8> {
        let mut f = begin(RUN, head.len() + tail.len());
        f.extend_from_slice(head);
        f.extend_from_slice(tail);
        seal_with_tail(&mut f, DEFAULT_MAX_FRAME, tail.len()).unwrap();
        f
    }

    /// A non-blocking source: at most `step` bytes per read, and `WouldBlock` every other call.
    struct Stutter<'a> {
        data: &'a [u8],
        step: usize,
        blocked: bool,
    }

    impl Source for Stutter<'_> {}

    impl Read for Stutter<'_> {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            self.blocked = !self.blocked;
            if self.blocked && !self.data.is_empty() {
                return Err(io::ErrorKind::WouldBlock.into());
            }
            let n = buf.len().min(self.step).min(self.data.len());
            buf[..n].copy_from_slice(&self.data[..n]);
            self.data = &self.data[n..];
            Ok(n)
        }
    }

    /// A frame read back: (head, tail).
    type HeadAndTail = (Vec<u8>, Vec<u8>);

    /// Every frame of `src` as (head, tail), retrying after each `WouldBlock`, until the end.
    fn read_all_frames(r: &mut FrameReader, mut src: impl Source) -> (Vec<HeadAndTail>, usize) {
        let (mut frames, mut blocked) = (Vec::new(), 0);
        loop {
            match r.read_frame(&mut src) {
                Ok(body) => frames.push((body.head.to_vec(), body.tail)),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => blocked += 1,
                Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return (frames, blocked),
                Err(e) => panic!("{e}"),
            }
        }
    }

    #[test]
    fn a_tail_split_across_many_non_blocking_reads_arrives_whole_in_its_own_allocation() {
        let block: Vec<u8> = (0..=255).cycle().take(1 << 20).collect();
        let mut bytes = tail_frame(&[1, 2, 3], &block);
        bytes.extend(tail_frame(&[4], &block[..TAIL_MIN]));
        let mut plain = begin(RUN, 3);
        plain.extend([7, 7, 7]);
        seal(&mut plain, DEFAULT_MAX_FRAME).unwrap();
        bytes.extend(plain);
        for step in [1000, 4096, 65_537, 300_000, usize::MAX] {
            let src = Stutter {
                data: &bytes,
                step,
                blocked: false,
            };
            let mut r = FrameReader::new(DEFAULT_MAX_FRAME);
            let (frames, blocked) = read_all_frames(&mut r, src);
            assert_eq!(frames.len(), 3, "step {step}");
            assert!(
                frames[0] == (vec![RUN, 1, 2, 3], block.clone()),
                "step {step}"
            );
            assert!(frames[1] == (vec![RUN, 4], block[..TAIL_MIN].to_vec()));
            assert!(frames[2] == (vec![RUN, 7, 7, 7], Vec::new()));
            assert!(blocked >= 3, "step {step}: {blocked}");
            // The block has an allocation of its size, and never passed through the buffer.
            assert_eq!(frames[0].1.capacity(), 1 << 20, "step {step}");
            assert_eq!(r.buf.len(), INITIAL, "step {step}");
        }
    }

    #[test]
    fn a_tail_through_a_socket_smaller_than_it_arrives_whole() {
        use std::os::fd::AsFd;
        use std::os::unix::net::UnixStream;
        let (tx, rx) = UnixStream::pair().unwrap();
        shrink_socket_buffers(&tx);
        shrink_socket_buffers(&rx);
        let block: Vec<u8> = (0..=250).cycle().take(3 << 20).collect();
        let frames = [
            tail_frame(b"first", &block),
            tail_frame(b"second", &block[1..]),
        ];
        let sent = frames.concat();
        let writer = std::thread::spawn(move || io::Write::write_all(&mut &tx, &sent).unwrap());
        let mut r = FrameReader::new(DEFAULT_MAX_FRAME);
        let mut got = Vec::new();
        let mut blocked = 0;
        while got.len() < 2 {
            match crate::process_pool::proc::read_nowait(&mut r, &rx).unwrap() {
                Some(body) => got.push((body.head.to_vec(), body.tail)),
                None => {
                    blocked += 1;
                    crate::process_pool::os::wait_readable(rx.as_fd()).unwrap();
                }
            }
        }
        writer.join().unwrap();
        assert!(got[0].0 == b"Rfirst" && got[0].1 == block);
        assert!(got[1].0 == b"Rsecond" && got[1].1 == block[1..]);
        // Six MiB through a socket buffer of a few KiB: the reader caught up with the writer, and
        // carried on from the middle of a frame, hundreds of times (how often exactly, the scheduler
        // decides).
        assert!(blocked > 0, "{blocked} reads would block");
    }

    #[test]
    fn a_tail_cut_anywhere_is_a_clean_end_of_file() {
        let block = vec![5u8; TAIL_MIN + 10];
        let f = tail_frame(b"abc", &block);
        for cut in [
            0,
            3,
            HEADER,
            HEADER + 2,
            HEADER + 4,
            HEADER + 5,
            f.len() - 1,
        ]
        .into_iter()
        .chain((HEADER + 4..f.len()).step_by(997))
        {
            let src = Stutter {
                data: &f[..cut],
                step: 5000,
                blocked: false,
            };
            let mut r = FrameReader::new(DEFAULT_MAX_FRAME);
            let (frames, _) = read_all_frames(&mut r, src);
            assert!(frames.is_empty(), "cut at {cut}");
        }
        // Whole, it is one frame; a reader reset after a cut one reads the next stream from scratch.
        let mut r = FrameReader::new(DEFAULT_MAX_FRAME);
        assert!(r.read_frame(&f[..f.len() - 1]).is_err());
        r.reset();
        let body = r.read_frame(&f[..]).unwrap();
        assert!(body.head == b"Rabc" && body.tail == block);
    }

    #[test]
    fn an_absurd_tail_length_is_refused_or_costs_only_what_arrived() {
        // A tail as long as the body (or longer) leaves no kind byte: corrupt.
        for (len, tail) in [(10u32, 10u32), (10, 11), (10, u32::MAX), (1, 1)] {
            let mut input = len.to_le_bytes().to_vec();
            input.extend(tail.to_le_bytes());
            input.extend([RUN; 64]);
            let e = FrameReader::new(DEFAULT_MAX_FRAME)
                .read_frame(&input[..])
                .unwrap_err();
            assert_eq!(e.kind(), io::ErrorKind::InvalidData, "{len} {tail}");
            assert!(e.to_string().contains("tail"), "{e}");
        }
        // Within the cap, so legal, but a lie: 1 GiB announced, a few bytes sent. The tail's
        // allocation follows what arrived (a step past it), not the claim.
        let len = DEFAULT_MAX_FRAME as u32;
        let mut input = len.to_le_bytes().to_vec();
        input.extend((len - 2).to_le_bytes());
        input.extend([RUN, 1]);
        input.extend([9; 5000]);
        let mut r = FrameReader::new(DEFAULT_MAX_FRAME);
        let e = r.read_frame(&input[..]).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::UnexpectedEof);
        assert!(r.tail.capacity() <= TAIL_FIRST, "{}", r.tail.capacity());
        assert_eq!(r.tail.len(), 5000);
        assert_eq!(r.buf.len(), INITIAL);
    }

    /// A source that records every read: where in the stream it started, how much room it was
    /// given and what it waited for. A `Want::All` read gets every byte it asks for that the stream
    /// has (as `MSG_WAITALL` does); a `Want::Some` read at most `step`.
    struct Recorder<'a> {
        data: &'a [u8],
        at: usize,
        step: usize,
        reads: Vec<(usize, usize, Want)>,
    }

    impl Read for Recorder<'_> {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            self.read_for(buf, Want::Some)
        }
    }

    impl Source for Recorder<'_> {
        fn read_for(&mut self, buf: &mut [u8], want: Want) -> io::Result<usize> {
            self.reads.push((self.at, buf.len(), want));
            let limit = match want {
                Want::Some => self.step,
                Want::All => usize::MAX,
            };
            let n = buf.len().min(limit).min(self.data.len() - self.at);
            buf[..n].copy_from_slice(&self.data[self.at..self.at + n]);
            self.at += n;
            Ok(n)
        }

        fn read_spare(&mut self, buf: &mut Vec<u8>, max: usize, want: Want) -> io::Result<usize> {
            // The whole room at once (a socket's `recv_spare`), not the default's bounded steps.
            let len = buf.len();
            buf.resize(buf.capacity().min(len + max), 0);
            let read = self.read_for(&mut buf[len..], want);
            buf.truncate(len + *read.as_ref().unwrap_or(&0));
            read
        }
    }

    #[test]
    fn a_read_that_waits_for_all_never_reaches_past_its_frame() {
        // Bodies around the first read's size (the header's read takes up to `INITIAL` bytes) and
        // well over it, with and without a tail, back to back.
        let mut frames = Vec::new();
        for head in [
            1,
            2,
            INITIAL - HEADER - 1,
            INITIAL - HEADER,
            INITIAL - HEADER + 1,
        ] {
            frames.push(tail_frame(&vec![3; head - 1], &[]));
        }
        frames.push(tail_frame(&vec![4; (1 << 20) + 1], &[]));
        for tail in [
            TAIL_MIN,
            INITIAL - HEADER - 3,
            1 << 20,
            (1 << 20) + 1,
            3 << 20,
        ] {
            frames.push(tail_frame(b"ab", &vec![5; tail]));
        }
        let bytes = frames.concat();
        let ends: Vec<usize> = frames
            .iter()
            .scan(0, |at, f| {
                *at += f.len();
                Some(*at)
            })
            .collect();
        for step in [7, 4096, INITIAL, usize::MAX] {
            let mut src = Recorder {
                data: &bytes,
                at: 0,
                step,
                reads: Vec::new(),
            };
            let mut r = FrameReader::new(DEFAULT_MAX_FRAME);
            for f in &frames {
                let body = r.read_frame(&mut src).unwrap();
                assert_eq!(HEADER + body.head.len() + body.tail.len(), f.len());
            }
            let e = r.read_frame(&mut src).unwrap_err();
            assert_eq!(e.kind(), io::ErrorKind::UnexpectedEof);
            for &(at, room, want) in &src.reads {
                if want == Want::All {
                    // Within the frame being read: waiting for more would wait for the next frame,
                    // which the peer sends only after this one's reply.
                    let end = ends.iter().find(|&&e| e > at).unwrap();
                    assert!(
                        at + room <= *end,
                        "step {step}: {room} bytes at {at}, frame ends {end}"
                    );
                }
            }
            // Once the header is in, the rest of a 1 MiB tail is one read, into its own allocation.
            let tail = ends[ends.len() - 4] + HEADER + b"Rab".len()..ends[ends.len() - 3];
            let tail_reads = src
                .reads
                .iter()
                .filter(|(at, _, want)| *want == Want::All && tail.contains(at));
            assert_eq!(tail_reads.count(), 1, "step {step}");
        }
    }

    #[test]
    fn a_tail_is_decoded_into_the_value_without_a_copy() {
        let block: Vec<u8> = (0..=255).cycle().take(TAIL_MIN * 2).collect();
        let mut f = begin(RUN, 0);
        let tail = encode_into(&(7u32, crate::ByteBlock::from(block.clone())), &mut f).unwrap();
        assert_eq!(tail, block.len());
        seal_with_tail(&mut f, DEFAULT_MAX_FRAME, tail).unwrap();
        let mut r = FrameReader::new(DEFAULT_MAX_FRAME);
        let (_, payload) = r.read_frame(&f[..]).unwrap().split_first().unwrap();
        let at = payload.tail.as_ptr();
        let (n, got): (u32, crate::ByteBlock) = decode(payload).unwrap();
        assert_eq!((n, &got[..]), (7, &block[..]));
        assert_eq!(got.as_ptr(), at, "the block is the tail's own allocation");
    }

    #[test]
    fn oversized_frames_are_refused() {
        let mut f = begin(RUN, 0);
        f.extend([0; 10]);
        assert_eq!(seal(&mut f, 5), Err(11));
        seal(&mut f, 100).unwrap();
        let mut r = FrameReader::new(5);
        let e = r.read_frame(&f[..]).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::InvalidData);
    }
}
