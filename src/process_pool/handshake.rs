//! The two-way handshake: before a worker trusts a single code offset, it proves that its parent is
//! this same program and started it on purpose; before the parent sends one, it proves that the worker
//! is the same build.
//!
//! # Worker → parent: "I am your worker, of your build"
//!
//! The parent starts a worker with its [`marker_name`] variable set to `2:<parent pid>:<frame cap>`.
//! The worker's first frame is a [`Hello`] with its pid and its [`Identity`]: the protocol and crate
//! versions, the identity of the executable file it runs (device, inode, size, modification time of
//! `/proc/self/exe`) and the offsets of a few functions from the base symbol. The parent compares it
//! with its own and refuses the worker (kills it and breaks the pool with a clear
//! [`BrokenCause::StartFailed`]) on any difference, or if no `Hello` arrives within the handshake
//! timeout.
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
//! therefore also carries that object's `dev inode`.
//!
//! # Parent → worker: "I am the program that started you, on purpose" ([`verify_parent`])
//!
//! Whoever starts a program chooses its environment and stdin, so the marker proves nothing by
//! itself: without this direction, any program linking the pool would call any of its own functions
//! for whoever can start it with the marker and a socket, before `main`, with the program's
//! privileges (a setuid binary, or one a service starts with a passed-through environment). So the
//! worker, before it sends its `Hello` (which reveals code offsets) and before it reads a frame, asks
//! the kernel, not the channel:
//!
//! 1. the process is not *secure-exec* (`AT_SECURE`: setuid, setgid, file capabilities). Such a
//!    program was started by someone with less privilege than it runs with, whom it must not serve;
//!    the parent side refuses to build a pool in such a process at all;
//! 2. its parent is still the pid the marker names (`getppid`, after `PR_SET_PDEATHSIG` is armed);
//! 3. the channel's peer credentials (`SO_PEERCRED`, set by the kernel when the socketpair was made)
//!    name that same pid, and the worker's own user id, which is also its effective one;
//! 4. that parent runs the same executable file (device and inode of `/proc/<parent>/exe` equal those
//!    of `/proc/self/exe`), checked while it is still the parent (the pid cannot be reused under us).
//!
//! Any failure ends the worker before it trusts anything, with the reason on stderr and in a
//! [`REFUSED`] frame, which the parent turns into its start error.
//!
//! A program the attacker starts can still be this same executable; but then the attacker already runs
//! that code with its own privileges, which the pool does not raise (check 1).
//!
//! # One marker per copy of the crate
//!
//! Two major versions of this crate can be linked into one program, each with its own constructor and
//! its own pools. The marker's name carries the crate version and where this copy's base symbol lies
//! in the executable file, so each constructor recognises only its own copy's workers and leaves the
//! others alone.
//!
//! [`BrokenCause::StartFailed`]: crate::BrokenCause::StartFailed

use std::ffi::OsString;
use std::os::fd::BorrowedFd;
use std::os::unix::ffi::OsStrExt;
use std::sync::OnceLock;

use serde::{Deserialize, Serialize};

use super::{os, wire};

/// What every copy's marker name starts with; a constructor only looks further when a variable does.
const MARKER_PREFIX: &str = "CONCURRENT_FUTURES_PROCESS_WORKER_";

/// The frame kind of a worker's refusal: the rest of the frame is the reason, as text.
pub(crate) const REFUSED: u8 = b'!';

pub(crate) const PROTOCOL: u32 = 3;
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

/// The name of the environment variable that makes a re-executed program a worker of *this copy* of
/// the crate: [`MARKER_PREFIX`], then a hash of the crate's version and of where this copy's base
/// symbol lies in the executable file (see the module docs). The latter tells apart even two copies
/// of one version (a package renamed, or vendored twice).
pub(crate) fn marker_name() -> &'static str {
    static NAME: OnceLock<String> = OnceLock::new();
    NAME.get_or_init(|| format!("{MARKER_PREFIX}{:016x}", copy_tag()))
}

/// What tells this copy of the crate from any other linked into the same program: a hash of the
/// crate's version, its module path and where this copy's base symbol lies in the executable file.
/// The process pool's marker and the MPI pool's worker argument both carry it.
pub(crate) fn copy_tag() -> u64 {
    static TAG: OnceLock<u64> = OnceLock::new();
    *TAG.get_or_init(|| {
        // FNV-1a: stable across processes and builds of the same file, unlike std's `RandomState`.
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        let in_file = super::code::image().map_or(0, |i| i.anchor_in_file);
        for part in [
            env!("CARGO_PKG_VERSION").as_bytes(),
            module_path!().as_bytes(),
            &in_file.to_le_bytes(),
        ] {
            for &b in part.iter().chain(&[0xff]) {
                h = (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3);
            }
        }
        h
    })
}

/// This copy's marker value, if this process was started as one of its workers. Cheap when no copy's
/// marker is set (every start of every program linking the crate asks).
pub(crate) fn own_marker() -> Option<OsString> {
    let prefix = MARKER_PREFIX.as_bytes();
    if !std::env::vars_os().any(|(k, _)| k.as_bytes().starts_with(prefix)) {
        return None;
    }
    std::env::var_os(marker_name())
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

/// Why a worker may have ended before its handshake, when the cause is known: under valgrind,
/// `/proc/self/exe` is valgrind's own tool, which refuses to run when started by that name (the
/// program itself, as valgrind shows it, could not prove its parent the same build either: the
/// kernel names valgrind as the parent's executable). Valgrind marks its programs' environment with
/// its preload libraries.
pub(crate) fn valgrind_hint() -> &'static str {
    let preload = std::env::var_os("LD_PRELOAD").unwrap_or_default();
    if preload.to_string_lossy().contains("/vgpreload_") {
        "; this program runs under valgrind, where a process pool cannot start workers (the \
         program re-executed as /proc/self/exe is valgrind itself)"
    } else {
        ""
    }
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

/// Why this process may not serve as a worker of the parent `parent` on channel `channel`, if it may
/// not (see the module docs for the checks and why they are enough).
pub(crate) fn verify_parent(parent: u32, channel: BorrowedFd<'_>) -> Result<(), String> {
    if os::secure_exec() {
        return Err(
            "the kernel marks this process as secure-exec (a setuid, setgid or file-capability \
             program): it must not run code for whoever started it, so it will not be a \
             process-pool worker"
                .into(),
        );
    }
    let ppid = os::parent_pid();
    if ppid != parent {
        return Err(format!(
            "the marker names pid {parent} as the parent, but the parent is pid {ppid} (the \
             parent died, or the marker was set by someone else)"
        ));
    }
    let (peer_pid, peer_uid, _) = os::peer_credentials(channel).map_err(|e| {
        format!("stdin is not the unix socket a process pool passes to its workers ({e})")
    })?;
    let (uid, euid) = os::user_ids();
    if peer_pid != parent || peer_uid != uid || uid != euid {
        return Err(format!(
            "the channel was made by pid {peer_pid} with uid {peer_uid}, not by the parent pid \
             {parent} with this process's uid {uid} (effective uid {euid})"
        ));
    }
    let exe = |pid: &str| {
        use std::os::unix::fs::MetadataExt;
        std::fs::metadata(format!("/proc/{pid}/exe")).map(|m| (m.dev(), m.ino()))
    };
    let (mine, theirs) = (exe("self"), exe(&parent.to_string()));
    // Still our parent after the look: the pid was not reused meanwhile, so `theirs` is its file.
    let still = os::parent_pid() == parent;
    match (mine, theirs) {
        (Ok(mine), Ok(theirs)) if mine == theirs && still => Ok(()),
        (Ok(_), Ok(_)) if still => Err(format!(
            "the parent pid {parent} runs a different executable file than this process"
        )),
        (Err(e), _) | (_, Err(e)) => {
            let hint = if e.kind() == std::io::ErrorKind::PermissionDenied {
                " (a parent that made itself non-dumpable, with prctl(PR_SET_DUMPABLE, 0), cannot be \
                 verified by workers without CAP_SYS_PTRACE, so it cannot use a process pool)"
            } else {
                ""
            };
            Err(format!(
                "cannot compare this process's executable with its parent's (pid {parent}): {e}{hint}"
            ))
        }
        _ => Err(format!(
            "the parent pid {parent} exited during the handshake"
        )),
    }
}

/// A worker's `REFUSED` frame carrying `reason`.
pub(crate) fn refused_frame(reason: &str) -> Vec<u8> {
    let mut buf = wire::begin(REFUSED, reason.len());
    buf.extend_from_slice(reason.as_bytes());
    let _ = wire::seal(&mut buf, usize::MAX);
    buf
}

/// The parent's check of a worker's first frame body.
pub(crate) fn check_hello(body: &[u8], pid: u32) -> Result<(), String> {
    if let Some((&REFUSED, reason)) = body.split_first() {
        return Err(format!(
            "worker pid {pid} refused to serve this process: {}",
            String::from_utf8_lossy(reason)
        ));
    }
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
        assert_eq!(parse_marker("1:1:1"), None);
        assert_eq!(parse_marker("nonsense"), None);
    }

    #[test]
    fn a_refusal_reaches_the_parent_with_its_reason() {
        let frame = refused_frame("secure-exec");
        let e = check_hello(&frame[wire::HEADER..], 7).unwrap_err();
        assert!(e.contains("refused") && e.contains("secure-exec"), "{e}");
    }

    #[test]
    fn the_marker_name_is_stable_and_ours() {
        assert!(marker_name().starts_with(MARKER_PREFIX));
        assert_eq!(marker_name().len(), MARKER_PREFIX.len() + 16);
        assert!(std::env::var_os(marker_name()).is_none());
    }

    #[test]
    fn a_stranger_is_not_our_parent() {
        // No process has this pid.
        let (a, _b) = std::os::unix::net::UnixStream::pair().unwrap();
        use std::os::fd::AsFd;
        let e = verify_parent(u32::MAX - 1, a.as_fd()).unwrap_err();
        assert!(e.contains("parent"), "{e}");
        // With the right parent pid, the socketpair's maker (this process) is not the parent.
        let e = verify_parent(os::parent_pid(), a.as_fd()).unwrap_err();
        assert!(e.contains("channel was made by pid"), "{e}");
    }
}
