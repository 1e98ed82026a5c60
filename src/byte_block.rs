//! [`ByteBlock`]: a byte buffer that crosses a process boundary as one block.

use std::fmt;
use std::ops::{Deref, DerefMut};

use serde::de::{self, Deserialize, Deserializer, SeqAccess, Visitor};
use serde::ser::{Serialize, Serializer};

/// A `Vec<u8>` that serializes as one block of bytes: the fast way to pass binary data to and from a
/// [`ProcessPoolExecutor`](crate::ProcessPoolExecutor) task.
///
/// serde has no special case for `Vec<u8>`: it serializes one as a sequence of a million separate
/// `u8` elements per MiB, each encoded and decoded on its own (about 30× slower than a copy).
/// `ByteBlock` uses serde's `serialize_bytes` instead, so the process pool's wire format (postcard)
/// writes a length and then the bytes in one copy. The process pool also recognises a plain
/// `Vec<u8>` where it can (an argument, a result, a field, an element, a map value) and moves it as
/// one block too; inside an `Option` or a newtype struct it cannot, and `ByteBlock` is one block
/// everywhere. It is a thin
/// newtype: it dereferences to `[u8]` and converts to and from `Vec<u8>` without copying. In the
/// thread pool nothing is serialized and it behaves exactly like the `Vec<u8>` it wraps.
///
/// ```
/// use concurrent_futures::{ByteBlock, ProcessPoolExecutor};
///
/// /// Runs in a worker process: XORs every byte of the buffer, in place.
/// fn scramble(mut data: ByteBlock) -> ByteBlock {
///     data.iter_mut().for_each(|b| *b ^= 0x5a);
///     data
/// }
///
/// let pool = ProcessPoolExecutor::new(1)?;
/// let data: Vec<u8> = (0..=255).cycle().take(1 << 20).collect(); // 1 MiB
/// let back: Vec<u8> = pool.submit(scramble, ByteBlock::from(data.clone()))?.result(None)?.into();
/// assert_eq!(back.len(), data.len());
/// assert!(back.iter().zip(&data).all(|(b, d)| *b == d ^ 0x5a));
/// # Ok::<(), concurrent_futures::Error>(())
/// ```
///
/// Deserializing also accepts a sequence of `u8`, so data written as a plain `Vec<u8>` by another
/// serde format reads back as `ByteBlock`.
///
/// # Other byte types
///
/// Any type that serializes with `serialize_bytes` crosses just as fast; `ByteBlock` is only the one
/// that needs no other crate:
///
/// - `serde_bytes::ByteBuf` (and a `Vec<u8>` field marked `#[serde(with = "serde_bytes")]`);
/// - `bytes::Bytes` with that crate's `serde` feature, which this crate's optional `bytes` feature
///   turns on, adding conversions between it and `ByteBlock` that do not copy (from `ByteBlock`)
///   or copy only when the buffer is shared (to `ByteBlock`).
///
/// A borrowed `&[u8]` cannot be a task's argument (arguments are `DeserializeOwned`); pass one of
/// these owned types.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct ByteBlock(Vec<u8>);

/// The old name of [`ByteBlock`], which collided with `bytes::Bytes`, the ecosystem's byte type.
#[deprecated(note = "renamed `ByteBlock`; this alias goes away in the next release")]
pub type Bytes = ByteBlock;

#[cfg(feature = "bytes")]
impl From<::bytes::Bytes> for ByteBlock {
    /// Takes the buffer without a copy when this is its only handle, else copies it.
    fn from(b: ::bytes::Bytes) -> Self {
        ByteBlock(Vec::from(b))
    }
}

#[cfg(feature = "bytes")]
impl From<ByteBlock> for ::bytes::Bytes {
    /// Takes the `Vec`'s buffer, without a copy.
    fn from(b: ByteBlock) -> Self {
        ::bytes::Bytes::from(b.0)
    }
}

impl ByteBlock {
    /// An empty buffer.
    pub fn new() -> Self {
        ByteBlock(Vec::new())
    }

    /// An empty buffer with room for `capacity` bytes.
    pub fn with_capacity(capacity: usize) -> Self {
        ByteBlock(Vec::with_capacity(capacity))
    }

    /// The `Vec<u8>` inside (no copy).
    pub fn into_vec(self) -> Vec<u8> {
        self.0
    }

    /// The `Vec<u8>` inside, to grow or shrink the buffer in place.
    pub fn as_mut_vec(&mut self) -> &mut Vec<u8> {
        &mut self.0
    }
}

impl From<Vec<u8>> for ByteBlock {
    fn from(v: Vec<u8>) -> Self {
        ByteBlock(v)
    }
}

impl From<&[u8]> for ByteBlock {
    fn from(s: &[u8]) -> Self {
        ByteBlock(s.to_vec())
    }
}

impl From<ByteBlock> for Vec<u8> {
    fn from(b: ByteBlock) -> Self {
        b.0
    }
}

impl Deref for ByteBlock {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        &self.0
    }
}

impl DerefMut for ByteBlock {
    fn deref_mut(&mut self) -> &mut [u8] {
        &mut self.0
    }
}

impl AsRef<[u8]> for ByteBlock {
    fn as_ref(&self) -> &[u8] {
        &self.0
    }
}

impl AsMut<[u8]> for ByteBlock {
    fn as_mut(&mut self) -> &mut [u8] {
        &mut self.0
    }
}

impl FromIterator<u8> for ByteBlock {
    fn from_iter<I: IntoIterator<Item = u8>>(iter: I) -> Self {
        ByteBlock(iter.into_iter().collect())
    }
}

impl fmt::Debug for ByteBlock {
    /// Like a byte string: `ByteBlock(b"ab\x00")`, cut after 64 bytes with the total length.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const SHOWN: usize = 64;
        f.write_str("ByteBlock(b\"")?;
        for &b in self.0.iter().take(SHOWN) {
            write!(f, "{}", std::ascii::escape_default(b))?;
        }
        f.write_str("\"")?;
        if self.0.len() > SHOWN {
            write!(f, "… {} bytes", self.0.len())?;
        }
        f.write_str(")")
    }
}

impl Serialize for ByteBlock {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_bytes(&self.0)
    }
}

impl<'de> Deserialize<'de> for ByteBlock {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_byte_buf(ByteBlockVisitor)
    }
}

struct ByteBlockVisitor;

impl<'de> Visitor<'de> for ByteBlockVisitor {
    type Value = ByteBlock;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a byte buffer")
    }

    /// Borrowed bytes (postcard, reading from the frame): one copy into a new `Vec`.
    fn visit_bytes<E: de::Error>(self, v: &[u8]) -> Result<ByteBlock, E> {
        Ok(ByteBlock(v.to_vec()))
    }

    /// ByteBlock the format already owns: taken as they are.
    fn visit_byte_buf<E: de::Error>(self, v: Vec<u8>) -> Result<ByteBlock, E> {
        Ok(ByteBlock(v))
    }

    /// A format that wrote a plain sequence of `u8` (e.g. a `Vec<u8>` in JSON).
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<ByteBlock, A::Error> {
        // The size hint comes from the data: cap it, so a corrupt length cannot reserve gigabytes.
        let mut v = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(1 << 20));
        while let Some(b) = seq.next_element()? {
            v.push(b);
        }
        Ok(ByteBlock(v))
    }

    /// A format that keeps byte strings as text.
    fn visit_str<E: de::Error>(self, v: &str) -> Result<ByteBlock, E> {
        Ok(ByteBlock(v.as_bytes().to_vec()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn postcard_writes_a_length_then_the_bytes() {
        let b = ByteBlock::from(vec![1u8, 2, 3, 0xff]);
        let enc = postcard::to_stdvec(&b).unwrap();
        assert_eq!(enc, [4, 1, 2, 3, 0xff]);
        // The same bytes as a plain Vec<u8> (postcard writes a u8 as one raw byte): only the work
        // differs, one call per element against one copy. So either type reads the other's encoding.
        let plain = postcard::to_stdvec(&vec![1u8, 2, 3, 0xff]).unwrap();
        assert_eq!(plain, enc);
        let back: ByteBlock = postcard::from_bytes(&enc).unwrap();
        assert_eq!(back, b);
        let back: Vec<u8> = postcard::from_bytes(&enc).unwrap();
        assert_eq!(back, *b);
    }

    #[test]
    fn conversions_and_debug() {
        let mut b: ByteBlock = (0u8..3).collect();
        b.as_mut_vec().push(b'a');
        assert_eq!(&b[..], &[0, 1, 2, b'a']);
        assert_eq!(format!("{b:?}"), r#"ByteBlock(b"\x00\x01\x02a")"#);
        let long = ByteBlock::from(vec![b'x'; 100]);
        assert!(format!("{long:?}").ends_with("\"… 100 bytes)"));
        let v: Vec<u8> = b.clone().into();
        assert_eq!(ByteBlock::from(v), b);
        assert_eq!(ByteBlock::from(&b"ab"[..]).into_vec(), b"ab");
        assert_eq!(ByteBlock::default(), ByteBlock::new());
        assert!(ByteBlock::with_capacity(8).as_mut_vec().capacity() >= 8);
    }

    #[cfg(feature = "bytes")]
    #[test]
    fn bytes_bytes_converts_and_encodes_the_same() {
        let b = ::bytes::Bytes::from(vec![1u8, 2, 3]);
        assert_eq!(
            postcard::to_stdvec(&b).unwrap(),
            postcard::to_stdvec(&ByteBlock::from(vec![1u8, 2, 3])).unwrap()
        );
        let block = ByteBlock::from(b.clone());
        assert_eq!(::bytes::Bytes::from(block), b);
    }

    #[test]
    fn a_sequence_of_u8_reads_as_bytes() {
        use serde::de::value::{Error, SeqDeserializer};
        let seq = SeqDeserializer::<_, Error>::new([7u8, 8, 9].into_iter());
        let b = ByteBlock::deserialize(seq).unwrap();
        assert_eq!(b.into_vec(), [7, 8, 9]);
    }
}
