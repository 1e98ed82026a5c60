//! The same-build proof across ranks: before the client sends a rank a single code offset, the rank's
//! [`Identity`] must equal the client's; before a rank calls one, the client's must equal its own.
//!
//! Ranks may run on other hosts, from another copy of the file, so the process pool's identity (the
//! device and inode of `/proc/self/exe`) does not carry over. What must match for an offset to name
//! the same function is the *code*: the identity is a digest of the bytes of the executable mappings
//! that hold this crate (the program itself, unless the crate is in a shared library), their total
//! length, where the base symbol lies in them, the offsets of a few functions, and the crate and
//! protocol versions. Position-independent code is not relocated in place, so the same build has
//! the same code bytes in every process, whatever its load address.

use std::hash::Hasher;
use std::sync::OnceLock;

use serde::{Deserialize, Serialize};

use crate::process_pool::code;

const PROTOCOL: u32 = 2;

/// What a build looks like from inside.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub(crate) struct Identity {
    protocol: u32,
    crate_version: String,
    /// Total bytes of the executable mappings holding the crate.
    text_len: u64,
    /// A digest of those bytes.
    text_digest: u64,
    /// Where the base symbol lies in its file.
    anchor_in_file: u64,
    layout: [u64; 4],
}

impl Identity {
    /// How `other` differs from `self`, in words, if it does.
    pub(crate) fn mismatch(&self, other: &Identity) -> Option<String> {
        if self == other {
            return None;
        }
        Some(if self.crate_version != other.crate_version {
            format!(
                "concurrent-futures {} against {}",
                other.crate_version, self.crate_version
            )
        } else if self.protocol != other.protocol {
            format!("protocol {} against {}", other.protocol, self.protocol)
        } else {
            format!(
                "another build of the program (code of {} bytes, digest {:016x}, against {} bytes, \
                 digest {:016x})",
                other.text_len, other.text_digest, self.text_len, self.text_digest
            )
        })
    }
}

/// This process's identity, computed once. `None` where the code cannot be found (no
/// `/proc/self/maps`): then no task can be sent or run.
pub(crate) fn identity() -> Option<&'static Identity> {
    static ID: OnceLock<Option<Identity>> = OnceLock::new();
    ID.get_or_init(|| {
        let image = code::image()?;
        // `DefaultHasher::new` is SipHash with fixed keys: the same in every process of one build,
        // which is all that is compared (a different build differs anyway).
        let mut digest = std::collections::hash_map::DefaultHasher::new();
        let mut text_len = 0u64;
        for range in image.text() {
            // SAFETY: `range` is an executable mapping of this process's own program file, listed by
            // `/proc/self/maps`; executable mappings of a program are readable and never unmapped
            // while it runs, and their bytes (code) do not change.
            #[allow(unsafe_code)]
            let bytes =
                unsafe { std::slice::from_raw_parts(range.start as *const u8, range.len()) };
            digest.write(bytes);
            text_len += bytes.len() as u64;
        }
        Some(Identity {
            protocol: PROTOCOL,
            crate_version: env!("CARGO_PKG_VERSION").to_owned(),
            text_len,
            text_digest: digest.finish(),
            anchor_in_file: image.anchor_in_file,
            layout: code::layout(),
        })
    })
    .as_ref()
}

/// The identity, encoded for a `HELLO` or `WELCOME`.
pub(crate) fn encoded() -> Vec<u8> {
    postcard::to_allocvec(&identity()).expect("an identity always serializes")
}

/// Decodes a peer's identity.
pub(crate) fn decode(bytes: &[u8]) -> Option<Identity> {
    postcard::from_bytes::<Option<Identity>>(bytes)
        .ok()
        .flatten()
}

/// Why a peer that sent `theirs` must not be trusted with code offsets, if it must not.
pub(crate) fn refusal(theirs: &[u8]) -> Option<String> {
    let Some(ours) = identity() else {
        return Some("this process cannot find its own code in /proc/self/maps".into());
    };
    match decode(theirs) {
        None => Some("it sent no readable build identity (a different program?)".into()),
        Some(theirs) => ours.mismatch(&theirs),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_peer_of_this_build_passes_and_any_other_is_refused_with_the_reason() {
        assert_eq!(refusal(&encoded()), None);
        let mut other = identity().unwrap().clone();
        other.text_digest ^= 1;
        let why = refusal(&postcard::to_allocvec(&Some(other)).unwrap()).unwrap();
        assert!(why.starts_with("another build of the program"), "{why}");
        let why = refusal(b"\xff\xff garbage").unwrap();
        assert!(why.contains("no readable build identity"), "{why}");
    }
}
