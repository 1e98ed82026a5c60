//! The frames that cross a worker's socket.
//!
//! Every message is `u32 little-endian body length | body`, and `body[0]` says what it is. Payloads are
//! [postcard], a compact serde format. A size cap (default 1 GiB, see
//! [`max_frame_bytes`](crate::process_pool::ProcessPoolBuilder::max_frame_bytes)) bounds both
//! directions: a value that would exceed it fails its own task with [`Error::Serialization`], and a frame
//! header announcing more means the stream is corrupt (the worker is killed).
//!
//! Parent → worker: `RUN | trampoline offset u64 | function offset u64 | argument bytes`.
//! Worker → parent: `HELLO | postcard(Hello)` once, then one reply per `RUN`: a reply tag
//! (`VALUE`, `PANICKED`, …) followed by its payload. A chunk's `VALUE` payload is a sequence of
//! `u32 length | reply` items, one per element. The parent ends a worker by closing its write side: the
//! worker sees end-of-file and exits.
//!
//! [`Error::Serialization`]: crate::Error::Serialization

use std::io::{self, Read};

/// Bytes before the body: its length.
pub(crate) const HEADER: usize = 4;

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

/// A postcard output that appends to a `Vec<u8>`: bytes in bulk (`serialize_bytes`, e.g.
/// [`ByteBlock`](crate::ByteBlock)) are one `extend_from_slice` (a `memcpy`). postcard's own `to_extend` copies
/// them through a byte iterator and `to_io` wraps every single byte in an `io::Write` call.
pub(crate) struct Append<'a>(pub(crate) &'a mut Vec<u8>);

impl postcard::ser_flavors::Flavor for Append<'_> {
    type Output = ();

    #[inline]
    fn try_push(&mut self, byte: u8) -> postcard::Result<()> {
        self.0.push(byte);
        Ok(())
    }

    #[inline]
    fn try_extend(&mut self, bytes: &[u8]) -> postcard::Result<()> {
        self.0.extend_from_slice(bytes);
        Ok(())
    }

    fn finalize(self) -> postcard::Result<()> {
        Ok(())
    }
}

/// Appends the postcard encoding of `value` to `out`. An error keeps the text of a custom serde error
/// (see `serde_msg.rs`).
pub(crate) fn encode_into<T: serde::Serialize + ?Sized>(
    value: &T,
    out: &mut Vec<u8>,
) -> Result<(), super::serde_msg::Msg> {
    super::serde_msg::serialize(value, Append(out))
}

/// Decodes a postcard payload. An error keeps the text of a custom serde error.
pub(crate) fn decode<T: serde::de::DeserializeOwned>(
    bytes: &[u8],
) -> Result<T, super::serde_msg::Msg> {
    super::serde_msg::from_bytes(bytes)
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

/// Writes the body length into the header. Fails with the body's size if it is over `cap`.
pub(crate) fn seal(buf: &mut [u8], cap: usize) -> Result<(), usize> {
    let len = buf.len() - HEADER;
    if len > cap || len > u32::MAX as usize {
        return Err(len);
    }
    buf[..HEADER].copy_from_slice(&(len as u32).to_le_bytes());
    Ok(())
}

/// Reads frames from a stream into one reusable buffer: a small reply usually arrives in a single
/// `read`, and nothing is allocated per frame once the buffer has grown to the largest frame seen.
pub(crate) struct FrameReader {
    buf: Vec<u8>,
    start: usize,
    end: usize,
    cap: usize,
}

const INITIAL: usize = 64 * 1024;

impl FrameReader {
    pub(crate) fn new(cap: usize) -> Self {
        FrameReader {
            buf: vec![0; INITIAL],
            start: 0,
            end: 0,
            cap,
        }
    }

    /// Forgets buffered bytes (a new worker process on the same driver).
    pub(crate) fn reset(&mut self) {
        self.start = 0;
        self.end = 0;
        if self.buf.len() > KEEP_BUFFER {
            self.buf = vec![0; INITIAL];
        }
    }

    /// The next frame's body. End-of-file (even between frames) is `UnexpectedEof`; a length over the
    /// cap is `InvalidData`.
    pub(crate) fn read_frame(&mut self, mut r: impl Read) -> io::Result<&[u8]> {
        // Do not keep a buffer grown for one huge frame (up to the cap) for the rest of the worker's
        // life; drop it once it has been consumed, but only above `KEEP_BUFFER`, which a 1 MiB
        // payload's 2 MiB frame stays within (a fresh buffer per frame would cost calloc, realloc,
        // zero-fill and page faults of 2 MiB on both sides of every round trip).
        if self.start == self.end && self.buf.len() > KEEP_BUFFER {
            self.reset();
        }
        self.fill_to(&mut r, HEADER)?;
        let mut len = [0; HEADER];
        len.copy_from_slice(&self.buf[self.start..self.start + HEADER]);
        let len = u32::from_le_bytes(len) as usize;
        if len > self.cap || len == 0 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("a frame of {len} bytes (the cap is {})", self.cap),
            ));
        }
        self.fill_to(&mut r, HEADER + len)?;
        let body = self.start + HEADER..self.start + HEADER + len;
        self.start = body.end;
        if self.start == self.end {
            self.start = 0;
            self.end = 0;
        }
        Ok(&self.buf[body])
    }

    /// Makes at least `need` unread bytes available.
    fn fill_to(&mut self, r: &mut impl Read, need: usize) -> io::Result<()> {
        if self.end - self.start >= need {
            return Ok(());
        }
        if self.start + need > self.buf.len() {
            // Move the unread bytes to the front.
            self.buf.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
        }
        while self.end - self.start < need {
            if self.end == self.buf.len() {
                // Grow with the bytes that arrive, not with the length the header announces: a
                // header is only a claim, and a peer that announces a frame up to the cap and then
                // sends nothing (or dies) must not make this side allocate and zero-fill the cap.
                // Doubling reaches the same final size, so a stream of large frames still settles
                // on one buffer.
                let grown = (self.buf.len() * 2).max(INITIAL);
                self.buf.resize(grown.min(need.next_power_of_two()), 0);
            }
            match r.read(&mut self.buf[self.end..]) {
                Ok(0) => return Err(io::ErrorKind::UnexpectedEof.into()),
                Ok(n) => self.end += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
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
            let body = r.read_frame(&mut src).unwrap();
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
        assert_eq!(r.read_frame(&mut src).unwrap().len(), 2 + KEEP_BUFFER);
        assert_eq!(r.read_frame(&mut src).unwrap().len(), 11);
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
            let body = r.read_frame(&mut src).unwrap();
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
