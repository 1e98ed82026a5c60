//! Naming a task across the exec boundary: function addresses as offsets from one base symbol, and one
//! monomorphized trampoline per task shape so the worker needs no type knowledge.
//!
//! The parent sends two offsets per task: the *trampoline* (`run_one::<A, R>` and friends, instantiated
//! by the parent's generic `submit`) and the user's `fn(A) -> R`. Both are addresses in the executable
//! minus the address of [`anchor`]. ASLR moves the whole image by one amount, so in a worker running the
//! *same build* the offsets name the same code. The handshake (`handshake.rs`) proves it is the same
//! build before any offset is trusted; both sides also check that every address lies inside the
//! executable's own mapping (a function from a shared library is refused at submit with
//! [`Error::ProcessSetup`]).
//!
//! The trampoline decodes the argument, calls the function under `catch_unwind`, and writes a reply
//! (see `wire.rs`) into the worker's reusable buffer. The parent decodes the reply with the matching
//! `decode_*` function, which knows `R`.

use std::any::type_name;
use std::ops::Range;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::OnceLock;

use serde::de::DeserializeOwned;
use serde::Serialize;

use super::wire::{self, reply};
use crate::error::{panic_message, Error, TaskError};
use crate::map::ChunkOut;
use crate::thread_pool::InitResult;

/// What a worker calls: `(function address, argument bytes, reply buffer)`.
pub(crate) type Trampoline = fn(usize, &[u8], &mut Vec<u8>);

/// The base every offset is taken from. Not generic and never inlined, so it has exactly one address.
#[inline(never)]
pub(crate) fn anchor() -> u64 {
    u64::from_le_bytes(*b"cf-base!")
}

fn base() -> usize {
    anchor as fn() -> u64 as usize
}

/// The address range of the mapped executable file that holds [`anchor`], from `/proc/self/maps`.
fn image() -> &'static Option<Range<usize>> {
    static IMAGE: OnceLock<Option<Range<usize>>> = OnceLock::new();
    IMAGE.get_or_init(|| {
        let maps = std::fs::read_to_string("/proc/self/maps").ok()?;
        let at = base();
        let parse = |line: &str| -> Option<(Range<usize>, String)> {
            let mut cols = line.split_whitespace();
            let (lo, hi) = cols.next()?.split_once('-')?;
            let range = usize::from_str_radix(lo, 16).ok()?..usize::from_str_radix(hi, 16).ok()?;
            let _perms = cols.next()?;
            let _offset = cols.next()?;
            let dev = cols.next()?;
            let inode = cols.next()?;
            Some((range, format!("{dev} {inode}")))
        };
        let (_, file) = maps
            .lines()
            .filter_map(parse)
            .find(|(r, _)| r.contains(&at))?;
        let mut whole: Option<Range<usize>> = None;
        for (r, f) in maps.lines().filter_map(parse) {
            if f == file {
                whole = Some(match whole {
                    None => r,
                    Some(w) => w.start.min(r.start)..w.end.max(r.end),
                });
            }
        }
        whole
    })
}

/// An address as an offset from the base, if it lies in the executable.
pub(crate) fn offset_of(addr: usize) -> Result<u64, Error> {
    match image() {
        Some(r) if r.contains(&addr) => Ok(addr.wrapping_sub(base()) as u64),
        Some(_) => Err(Error::ProcessSetup(
            "the task function is not part of the executable (a shared library?); process-pool \
             tasks must be functions compiled into the program itself"
                .into(),
        )),
        None => Err(Error::ProcessSetup(
            "could not find the executable's mapping in /proc/self/maps".into(),
        )),
    }
}

/// The address an offset names in this process, if it lies in the executable.
pub(crate) fn address_of(offset: u64) -> Option<usize> {
    let addr = base().wrapping_add(offset as usize);
    match image() {
        Some(r) if r.contains(&addr) => Some(addr),
        _ => None,
    }
}

/// Offsets of a few items, compared in the handshake: a different build lays them out differently.
pub(crate) fn layout() -> [u64; 4] {
    let off = |a: usize| a.wrapping_sub(base()) as u64;
    [
        off(run_one::<u64, u64> as Trampoline as usize),
        off(run_chunk::<String, (u8, i64)> as Trampoline as usize),
        off(decode_one::<Vec<u32>> as fn(&[u8], usize) -> Result<Vec<u32>, Error> as usize),
        off(super::child::serve as fn() -> i32 as usize),
    ]
}

/// Why a task did not produce a value to encode.
enum Fail {
    ArgDecode(String),
    Failed(String),
}

/// Runs `task` and appends one reply (tag + payload) to `out`.
fn respond<R: Serialize>(out: &mut Vec<u8>, task: impl FnOnce() -> Result<R, Fail>) {
    let mark = out.len();
    let outcome = catch_unwind(AssertUnwindSafe(task));
    let (tag, msg) = match outcome {
        Ok(Ok(value)) => {
            out.push(reply::VALUE);
            // A `Serialize` impl may itself panic (CPython D9): that is the task's panic, not a crash.
            let encoded = catch_unwind(AssertUnwindSafe(|| {
                postcard::to_io(&value, &mut *out).map(|_| ())
            }));
            match encoded {
                Ok(Ok(_)) => return,
                Ok(Err(e)) => (
                    reply::RESULT_ENCODE,
                    format!("could not serialize the result ({}): {e}", type_name::<R>()),
                ),
                Err(p) => (
                    reply::PANICKED,
                    format!("serializing the result panicked: {}", panic_message(&*p)),
                ),
            }
        }
        Ok(Err(Fail::ArgDecode(msg))) => (reply::ARG_DECODE, msg),
        Ok(Err(Fail::Failed(msg))) => (reply::FAILED, msg),
        Err(p) => (reply::PANICKED, panic_message(&*p)),
    };
    // Drop whatever a failed encoding left behind.
    out.truncate(mark);
    out.push(tag);
    out.extend_from_slice(msg.as_bytes());
}

fn decode_arg<A: DeserializeOwned>(bytes: &[u8]) -> Result<A, Fail> {
    postcard::from_bytes(bytes).map_err(|e| {
        Fail::ArgDecode(format!(
            "could not deserialize the argument ({}): {e}",
            type_name::<A>()
        ))
    })
}

/// Rebuilds the user's function pointer from its address.
///
/// # Safety
/// `addr` must be the address of a `fn(A) -> R` with exactly these `A` and `R` in this process.
#[allow(unsafe_code)]
unsafe fn as_fn<A, R>(addr: usize) -> fn(A) -> R {
    // SAFETY: the caller guarantees `addr` is such a function; fn pointers and usize have the same size.
    unsafe { std::mem::transmute::<usize, fn(A) -> R>(addr) }
}

/// Trampoline of `submit(f: fn(A) -> R, a)`.
#[allow(unsafe_code)]
pub(crate) fn run_one<A: DeserializeOwned, R: Serialize>(
    func: usize,
    arg: &[u8],
    out: &mut Vec<u8>,
) {
    // SAFETY: the parent took this trampoline's offset from `run_one::<A, R>` and `func`'s from a
    // `fn(A) -> R` in the same `submit` call; the handshake proved this worker is the same build, so
    // the offsets name the same items here, and `child.rs` checked both lie in the executable.
    let f = unsafe { as_fn::<A, R>(func) };
    respond(out, || Ok(f(decode_arg(arg)?)));
}

/// Trampoline of `submit_fallible(f: fn(A) -> Result<R, E>, a)`: an `Err` travels as its `Display` text.
#[allow(unsafe_code)]
pub(crate) fn run_fallible<A, R, E>(func: usize, arg: &[u8], out: &mut Vec<u8>)
where
    A: DeserializeOwned,
    R: Serialize,
    E: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    // SAFETY: as in `run_one`, for `fn(A) -> Result<R, E>`.
    let f = unsafe { as_fn::<A, Result<R, E>>(func) };
    respond(out, || {
        f(decode_arg(arg)?).map_err(|e| Fail::Failed(e.into().to_string()))
    });
}

/// Trampoline of a `map` chunk: decodes `Vec<A>`, and replies with one item per element so a panic in
/// one element fails only that element.
#[allow(unsafe_code)]
pub(crate) fn run_chunk<A: DeserializeOwned, R: Serialize>(
    func: usize,
    arg: &[u8],
    out: &mut Vec<u8>,
) {
    // SAFETY: as in `run_one`; `map` took the trampoline from `run_chunk::<A, R>`.
    let f = unsafe { as_fn::<A, R>(func) };
    let items: Vec<A> = match decode_arg(arg) {
        Ok(items) => items,
        Err(fail) => return respond::<()>(out, || Err(fail)),
    };
    out.push(reply::VALUE);
    for a in items {
        let at = out.len();
        out.extend_from_slice(&[0; 4]);
        respond(out, || Ok(f(a)));
        let len = (out.len() - at - 4) as u32;
        out[at..at + 4].copy_from_slice(&len.to_le_bytes());
    }
}

/// Trampoline of the initializer `fn(A) -> R` with `R: InitResult`: `Err` or a panic is a failure.
#[allow(unsafe_code)]
pub(crate) fn run_init<A: DeserializeOwned, R: InitResult>(
    func: usize,
    arg: &[u8],
    out: &mut Vec<u8>,
) {
    // SAFETY: as in `run_one`; the builder took the trampoline from `run_init::<A, R>`.
    let f = unsafe { as_fn::<A, R>(func) };
    respond(out, || match f(decode_arg(arg)?).into_failure() {
        None => Ok(()),
        Some(msg) => Err(Fail::Failed(msg)),
    });
}

/// Builds a `RUN` frame: trampoline and function offsets, then the encoded argument.
pub(crate) fn run_frame<A: Serialize>(
    tramp: Trampoline,
    func: usize,
    arg: &A,
    cap: usize,
) -> Result<Vec<u8>, Error> {
    let t = offset_of(tramp as usize)?;
    let f = offset_of(func)?;
    let mut buf = wire::begin(wire::RUN, 16 + 32);
    buf.extend_from_slice(&t.to_le_bytes());
    buf.extend_from_slice(&f.to_le_bytes());
    let mut buf = catch_unwind(AssertUnwindSafe(|| postcard::to_extend(arg, buf)))
        .map_err(|p| {
            Error::Serialization(format!(
                "serializing the argument panicked: {}",
                panic_message(&*p)
            ))
        })?
        .map_err(|e| {
            Error::Serialization(format!(
                "could not serialize the argument ({}): {e}",
                type_name::<A>()
            ))
        })?;
    wire::seal(&mut buf, cap).map_err(|len| {
        Error::Serialization(format!(
            "the argument ({}) is {len} bytes, over the frame size cap of {cap} bytes",
            type_name::<A>()
        ))
    })?;
    Ok(buf)
}

/// Decodes a one-value reply into the task's outcome.
pub(crate) fn decode_one<R: DeserializeOwned>(body: &[u8], _items: usize) -> Result<R, Error> {
    let (&tag, payload) = body
        .split_first()
        .ok_or_else(|| Error::Serialization("an empty reply from the worker".into()))?;
    let text = || String::from_utf8_lossy(payload).into_owned();
    match tag {
        reply::VALUE => postcard::from_bytes(payload).map_err(|e| {
            Error::Serialization(format!(
                "could not deserialize the result ({}): {e}",
                type_name::<R>()
            ))
        }),
        reply::PANICKED => Err(Error::Panicked(text())),
        reply::FAILED => Err(Error::Failed(TaskError::new(text()))),
        reply::ARG_DECODE | reply::RESULT_ENCODE => {
            Err(Error::Serialization(format!("in the worker: {}", text())))
        }
        other => Err(Error::Serialization(format!(
            "a reply of unknown kind {other} from the worker"
        ))),
    }
}

/// Decodes a chunk's reply: one outcome per element. A failure of the whole chunk (its inputs could
/// not be decoded) is repeated for each of its `items` elements, so `map` still yields one per input.
pub(crate) fn decode_chunk<R: DeserializeOwned>(
    body: &[u8],
    items: usize,
) -> Result<ChunkOut<R>, Error> {
    match body.split_first() {
        Some((&reply::VALUE, mut rest)) => {
            let mut out = Vec::with_capacity(items);
            while rest.len() >= 4 {
                let len = u32::from_le_bytes(rest[..4].try_into().expect("4 bytes")) as usize;
                let item = rest.get(4..4 + len).ok_or_else(|| {
                    Error::Serialization("a truncated chunk reply from the worker".into())
                })?;
                out.push(decode_one::<R>(item, 1));
                rest = &rest[4 + len..];
            }
            Ok(ChunkOut::Many(out))
        }
        _ => {
            let e = decode_one::<()>(body, 1)
                .err()
                .unwrap_or_else(|| Error::Serialization("a malformed chunk reply".into()));
            Ok(ChunkOut::Many((0..items).map(|_| Err(e.clone())).collect()))
        }
    }
}

/// `decode_one` for a one-element `map` task.
pub(crate) fn decode_single<R: DeserializeOwned>(
    body: &[u8],
    items: usize,
) -> Result<ChunkOut<R>, Error> {
    decode_one(body, items).map(ChunkOut::One)
}
