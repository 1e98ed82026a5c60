//! Proving that a worker is the same build as its parent before any code offset is trusted.
//!
//! The parent starts a worker with [`MARKER`] in its environment. The worker's first frame is a
//! [`Hello`] with its pid and its [`Identity`]: the protocol and crate versions, the identity of the
//! executable file it runs (device, inode, size, modification time of `/proc/self/exe`) and the offsets
//! of a few functions from the base symbol. The parent compares it with its own and refuses the worker
//! (kills it and breaks the pool with a clear [`BrokenCause::StartFailed`]) on any difference, or if no
//! `Hello` arrives within the handshake timeout.
//!
//! Why this is enough for the address arithmetic in `code.rs`: the worker is `/proc/self/exe` of the
//! parent, i.e. the very file (inode) the parent runs, even if its path was since replaced by a new
//! build or deleted, and Linux refuses to open a running executable for writing (`ETXTBSY`), so the
//! same inode with the same size and time is the same bytes. Matching layout offsets rule out a
//! different loader placement of the code.
//!
//! Offsets are taken only within the object file holding the base symbol (`code::image`). That is
//! the executable unless this crate is linked into a shared library (a Rust `dylib`), which the
//! worker's loader opens *by path*, so a rebuilt library would be a different file: the identity
//! therefore also carries that object's `dev inode` (review fix; it used to compare the executable
//! only).
//!
//! [`BrokenCause::StartFailed`]: crate::BrokenCause::StartFailed

use std::sync::OnceLock;

use serde::{Deserialize, Serialize};

use super::wire;

/// The environment variable that makes a re-executed program a worker: `1:<parent pid>:<frame cap>`.
pub(crate) const MARKER: &str = "CONCURRENT_FUTURES_PROCESS_WORKER";

const PROTOCOL: u32 = 1;
const MAGIC: u64 = u64::from_le_bytes(*b"cfworker");

/// What a build looks like from inside.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub(crate) struct Identity {
    protocol: u32,
    crate_version: String,
    /// `(dev, inode, size, mtime seconds, mtime nanoseconds)` of `/proc/self/exe`.
    exe: Option<(u64, u64, u64, i64, i64)>,
    /// `dev inode` of the object file holding the base symbol (see `code::image`).
    image: Option<String>,
    layout: [u64; 4],
}

/// A worker's first frame.
#[derive(Serialize, Deserialize, Debug)]
pub(crate) struct Hello {
    magic: u64,
    pub(crate) pid: u32,
    identity: Identity,
}

/// This process's identity, computed once.
pub(crate) fn identity() -> &'static Identity {
    static ID: OnceLock<Identity> = OnceLock::new();
    ID.get_or_init(|| {
        use std::os::unix::fs::MetadataExt;
        let exe = std::fs::metadata("/proc/self/exe")
            .ok()
            .map(|m| (m.dev(), m.ino(), m.size(), m.mtime(), m.mtime_nsec()));
        Identity {
            protocol: PROTOCOL,
            crate_version: env!("CARGO_PKG_VERSION").to_owned(),
            exe,
            image: super::code::image().map(|i| i.file.clone()),
            layout: super::code::layout(),
        }
    })
}

/// The marker value for a worker of this process.
pub(crate) fn marker(frame_cap: usize) -> String {
    format!("{PROTOCOL}:{}:{frame_cap}", std::process::id())
}

/// Parses a marker: the parent's pid and the frame cap.
pub(crate) fn parse_marker(value: &str) -> Option<(u32, usize)> {
    let mut parts = value.split(':');
    if parts.next()? != PROTOCOL.to_string() {
        return None;
    }
    let parent = parts.next()?.parse().ok()?;
    let cap = parts.next()?.parse().ok()?;
    Some((parent, cap))
}

/// The worker's `HELLO` frame.
pub(crate) fn hello_frame() -> Vec<u8> {
    let hello = Hello {
        magic: MAGIC,
        pid: std::process::id(),
        identity: identity().clone(),
    };
    let mut buf = postcard::to_extend(&hello, wire::begin(wire::HELLO, 64))
        .expect("a Hello always serializes");
    wire::seal(&mut buf, usize::MAX).expect("a Hello is small");
    buf
}

/// The parent's check of a worker's first frame body.
pub(crate) fn check_hello(body: &[u8], pid: u32) -> Result<(), String> {
    let Some((&wire::HELLO, payload)) = body.split_first() else {
        return Err(format!(
            "worker pid {pid} did not start with a handshake (is it this program?)"
        ));
    };
    let hello: Hello = postcard::from_bytes(payload)
        .map_err(|e| format!("worker pid {pid} sent an unreadable handshake: {e}"))?;
    if hello.magic != MAGIC || hello.pid != pid {
        return Err(format!("worker pid {pid} sent a foreign handshake"));
    }
    let mine = identity();
    if &hello.identity != mine {
        return Err(format!(
            "worker pid {pid} is not the same build as its parent (parent {mine:?}, worker {:?}); \
             was the executable replaced while running?",
            hello.identity
        ));
    }
    if mine.exe.is_none() || mine.image.is_none() {
        return Err(
            "cannot identify the executable through /proc/self/exe and /proc/self/maps".into(),
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hello_body(pid: u32, identity: Identity) -> Vec<u8> {
        let hello = Hello {
            magic: MAGIC,
            pid,
            identity,
        };
        let mut body = vec![wire::HELLO];
        body.extend(postcard::to_stdvec(&hello).unwrap());
        body
    }

    #[test]
    fn the_same_build_is_accepted() {
        let frame = hello_frame();
        let body = &frame[wire::HEADER..];
        assert_eq!(check_hello(body, std::process::id()), Ok(()));
    }

    #[test]
    fn a_different_build_or_a_stranger_is_refused() {
        let me = std::process::id();
        let mut other = identity().clone();
        other.layout[0] ^= 0x40;
        let e = check_hello(&hello_body(me, other), me).unwrap_err();
        assert!(e.contains("not the same build"), "{e}");

        let mut other = identity().clone();
        other.exe = other.exe.map(|(d, i, s, m, n)| (d, i + 1, s, m, n));
        assert!(check_hello(&hello_body(me, other), me).is_err());

        // The code's object file was replaced (a rebuilt shared library, loaded by path).
        let mut other = identity().clone();
        assert!(other.image.is_some());
        other.image = Some("fe:00 1".into());
        assert!(check_hello(&hello_body(me, other), me).is_err());

        let e = check_hello(&hello_body(me + 1, identity().clone()), me).unwrap_err();
        assert!(e.contains("foreign"), "{e}");
        assert!(check_hello(b"\x48garbage", me).is_err());
        assert!(check_hello(b"", me).is_err());
    }

    #[test]
    fn markers_round_trip() {
        assert_eq!(
            parse_marker(&marker(4096)),
            Some((std::process::id(), 4096))
        );
        assert_eq!(parse_marker("2:1:1"), None);
        assert_eq!(parse_marker("nonsense"), None);
    }
}
