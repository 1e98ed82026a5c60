//! Naming a task across the exec boundary: function addresses as offsets from one base symbol, and one
//! monomorphized trampoline per task shape so the worker needs no type knowledge.
//!
//! The parent sends two offsets per task: the *trampoline* (`run_one::<A, R>` and friends, instantiated
//! by the parent's generic `submit`) and the user's `fn(A) -> R`. Both are addresses in the executable
//! minus the address of [`anchor`]. ASLR moves the whole image by one amount, so in a worker running the
//! *same build* the offsets name the same code. The handshake (`handshake.rs`) proves it is the same
//! build before any offset is trusted; both sides also check that every address lies inside the
//! executable's own code mappings (a function from a shared library is refused at submit with
//! [`Error::ProcessSetup`]).
//!
//! The trampoline decodes the argument, calls the function under `catch_unwind`, and writes a reply
//! (see `wire.rs`) into the worker's reusable buffer; a value holding a large byte block is sent from
//! the value itself instead (see `wire/direct.rs`), so the block is not copied into the buffer. The parent decodes the reply with the matching
//! `decode_*` function, which knows `R`.

use std::any::type_name;
use std::ops::Range;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::OnceLock;

use serde::de::DeserializeOwned;
use serde::Serialize;

use super::wire::{self, reply, Body};
use crate::error::{panic_message, Error, Panic, TaskError};
use crate::map::ChunkOut;
use crate::pool::InitResult;

/// What a worker calls: `(function address, argument bytes, reply buffer)`.
///
/// An `unsafe fn`: a trampoline reads its first argument as a function of one exact type, which only
/// the caller can vouch for. The worker's one call of a received address (`child.rs`) states why it
/// may.
pub(crate) type Trampoline = unsafe fn(usize, Body<'_>, &mut Vec<u8>);

/// The base every offset is taken from. Not generic and never inlined, so it has exactly one address.
#[inline(never)]
pub(crate) fn anchor() -> u64 {
    u64::from_le_bytes(*b"cf-base!")
}

fn base() -> usize {
    anchor as fn() -> u64 as usize
}

/// The code of the object file that holds [`anchor`] (the program itself, unless this crate is
/// linked into a shared library).
pub(crate) struct Image {
    /// `dev inode` of that file as `/proc/self/maps` shows them; part of the handshake's identity.
    pub(crate) file: String,
    /// Its mappings with execute permission: where its functions are.
    text: Vec<Range<usize>>,
    /// Where [`anchor`] lies in that file (its address minus the file's load address): different
    /// for each copy of this crate linked into one program, and the same in every process running
    /// that file.
    pub(crate) anchor_in_file: u64,
}

impl Image {
    /// Its executable mappings (the MPI pool hashes their bytes into its build identity).
    #[cfg_attr(not(feature = "mpi"), allow(dead_code))]
    pub(crate) fn text(&self) -> &[Range<usize>] {
        &self.text
    }

    fn contains(&self, addr: usize) -> bool {
        self.text.iter().any(|r| r.contains(&addr))
    }
}

/// This process's [`Image`], from `/proc/self/maps` (read once).
pub(crate) fn image() -> Option<&'static Image> {
    static IMAGE: OnceLock<Option<Image>> = OnceLock::new();
    IMAGE
        .get_or_init(|| image_in(&std::fs::read_to_string("/proc/self/maps").ok()?, base()))
        .as_ref()
}

/// The [`Image`] holding address `at`, given the text of `/proc/self/maps`.
///
/// Only *executable* mappings of that file count, and the file must be a real one (inode ≠ 0). A
/// span from the lowest to the highest mapping of the inode would not do: the same file may also be
/// mapped elsewhere: std's backtrace symbolizer maps the executable again,
/// read-only, next to the shared libraries, after which the span would cover the heap, thread stacks and
/// libraries, and a function from a library (whose offset means nothing in a worker) would pass.
fn image_in(maps: &str, at: usize) -> Option<Image> {
    struct Mapping<'a> {
        range: Range<usize>,
        exec: bool,
        offset: usize,
        file: (&'a str, &'a str),
    }
    fn parse(line: &str) -> Option<Mapping<'_>> {
        let mut cols = line.split_whitespace();
        let (lo, hi) = cols.next()?.split_once('-')?;
        let range = usize::from_str_radix(lo, 16).ok()?..usize::from_str_radix(hi, 16).ok()?;
        let exec = cols.next()?.as_bytes().get(2) == Some(&b'x');
        let offset = usize::from_str_radix(cols.next()?, 16).ok()?;
        let file = (cols.next()?, cols.next()?);
        Some(Mapping {
            range,
            exec,
            offset,
            file,
        })
    }
    let maps: Vec<Mapping<'_>> = maps.lines().filter_map(parse).collect();
    let home = maps.iter().find(|m| m.range.contains(&at))?;
    if !home.exec || home.file.1 == "0" {
        return None;
    }
    Some(Image {
        file: format!("{} {}", home.file.0, home.file.1),
        text: maps
            .iter()
            .filter(|m| m.exec && m.file == home.file)
            .map(|m| m.range.clone())
            .collect(),
        anchor_in_file: (at - home.range.start + home.offset) as u64,
    })
}

/// An address as an offset from the base, if it lies in the executable's code.
pub(crate) fn offset_of(addr: usize) -> Result<u64, Error> {
    match image() {
        Some(i) if i.contains(addr) => Ok(addr.wrapping_sub(base()) as u64),
        Some(_) => Err(Error::ProcessSetup(
            "the task function is not part of the executable (a shared library?); process-pool \
             tasks must be functions compiled into the program itself"
                .into(),
        )),
        None => Err(Error::ProcessSetup(
            "could not find the executable's code mapping in /proc/self/maps".into(),
        )),
    }
}

/// The address an offset names in this process, if it lies in the executable's code.
pub(crate) fn address_of(offset: u64) -> Option<usize> {
    let addr = base().wrapping_add(offset as usize);
    image().filter(|i| i.contains(addr)).map(|_| addr)
}

/// Offsets of a few items, compared in the handshake: a different build lays them out differently.
pub(crate) fn layout() -> [u64; 4] {
    let off = |a: usize| a.wrapping_sub(base()) as u64;
    [
        off(run_one::<u64, u64> as Trampoline as usize),
        off(run_chunk::<String, (u8, i64)> as Trampoline as usize),
        off(decode_one::<Vec<u32>> as fn(Body<'_>, usize) -> Result<Vec<u32>, Error> as usize),
        off(super::child::serve as fn(std::ffi::OsString) -> i32 as usize),
    ]
}

/// Why a task did not produce a value to encode.
enum Fail {
    ArgDecode(String),
    Failed(String),
}

/// Where a reply goes in the worker's buffer.
#[derive(Clone, Copy)]
enum Place {
    /// It is the whole frame: a value holding a large block may be sent directly (`wire::direct`).
    Frame,
    /// It is one item of a chunk's reply, inside a frame still being built.
    ChunkItem,
}

/// Runs `task` and appends one reply (tag + payload) to `out`.
fn respond<R: Serialize>(out: &mut Vec<u8>, place: Place, task: impl FnOnce() -> Result<R, Fail>) {
    let mark = out.len();
    let (tag, msg) = match crate::panic::catch(task) {
        Ok(Ok(value)) => {
            out.push(reply::VALUE);
            let encode = |out: &mut Vec<u8>| match place {
                Place::Frame => wire::direct::encode_value(&value, out),
                Place::ChunkItem => wire::encode_into(&value, out).map(drop),
            };
            // A `Serialize` impl may itself panic (CPython D9): that is the task's panic, not a crash.
            let encoded = crate::panic::catch(|| encode(&mut *out));
            // The value's `Drop` is the user's code too, which must not take the worker process
            // down with the reply unsent.
            crate::panic::contain(|| drop(value));
            match encoded {
                Ok(Ok(_)) => return,
                Ok(Err(e)) => (
                    reply::RESULT_ENCODE,
                    format!("could not serialize the result ({}): {e}", type_name::<R>()),
                ),
                Err(p) => {
                    let msg = format!("serializing the result panicked: {}", p.message());
                    out.truncate(mark);
                    return panicked(out, &msg, p.location(), p.backtrace());
                }
            }
        }
        Ok(Err(Fail::ArgDecode(msg))) => (reply::ARG_DECODE, msg),
        Ok(Err(Fail::Failed(msg))) => (reply::FAILED, msg),
        Err(p) => {
            out.truncate(mark);
            return panicked(out, p.message(), p.location(), p.backtrace());
        }
    };
    // Drop whatever a failed encoding left behind.
    out.truncate(mark);
    out.push(tag);
    out.extend_from_slice(msg.as_bytes());
}

/// Appends a `PANICKED` reply: `u32 message length | message | u32 location length | location |
/// backtrace` (lengths little-endian; an empty location or backtrace means none). Most important
/// first: a reply over the frame cap is cut from the end, which shortens the backtrace, then the
/// location, then the message, and [`decode_panic`] reads whatever is left.
fn panicked(out: &mut Vec<u8>, message: &str, location: Option<&str>, backtrace: Option<&str>) {
    out.push(reply::PANICKED);
    for field in [message, location.unwrap_or("")] {
        out.extend_from_slice(&(field.len() as u32).to_le_bytes());
        out.extend_from_slice(field.as_bytes());
    }
    out.extend_from_slice(backtrace.unwrap_or("").as_bytes());
}

/// Reads a `PANICKED` reply's payload (see [`panicked`]), however short the frame cap made it.
fn decode_panic(mut payload: &[u8]) -> Panic {
    let mut field = || {
        let (len, rest) = payload.split_at_checked(4)?;
        let len = u32::from_le_bytes(len.try_into().expect("4 bytes")) as usize;
        let (text, rest) = rest.split_at(len.min(rest.len()));
        payload = rest;
        Some(String::from_utf8_lossy(text).into_owned())
    };
    let message = field().unwrap_or_default();
    let location = field().filter(|l| !l.is_empty());
    let backtrace = (!payload.is_empty()).then(|| String::from_utf8_lossy(payload).into_owned());
    Panic::with_details(message, location, backtrace, None)
}

fn decode_arg<A: DeserializeOwned>(arg: Body<'_>) -> Result<A, Fail> {
    wire::decode(arg).map_err(|e| {
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
///
/// # Safety
/// `func` must be the address of a `fn(A) -> R` with exactly these `A` and `R` in this process (so
/// must the other trampolines' `func`, for the function type each names).
#[allow(unsafe_code)]
pub(crate) unsafe fn run_one<A: DeserializeOwned, R: Serialize>(
    func: usize,
    arg: Body<'_>,
    out: &mut Vec<u8>,
) {
    // SAFETY: this function's contract.
    let f = unsafe { as_fn::<A, R>(func) };
    respond(out, Place::Frame, || Ok(f(decode_arg(arg)?)));
}

/// Trampoline of `submit_fallible(f: fn(A) -> Result<R, E>, a)`: an `Err` travels as its `Display` text.
///
/// # Safety
/// As [`run_one`], for a `fn(A) -> Result<R, E>`.
#[allow(unsafe_code)]
pub(crate) unsafe fn run_fallible<A, R, E>(func: usize, arg: Body<'_>, out: &mut Vec<u8>)
where
    A: DeserializeOwned,
    R: Serialize,
    E: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    // SAFETY: this function's contract.
    let f = unsafe { as_fn::<A, Result<R, E>>(func) };
    respond(out, Place::Frame, || {
        f(decode_arg(arg)?).map_err(|e| Fail::Failed(e.into().to_string()))
    });
}

/// Trampoline of a `map` chunk: decodes `Vec<A>`, and replies with one item per element so a panic in
/// one element fails only that element.
///
/// # Safety
/// As [`run_one`].
#[allow(unsafe_code)]
pub(crate) unsafe fn run_chunk<A: DeserializeOwned, R: Serialize>(
    func: usize,
    arg: Body<'_>,
    out: &mut Vec<u8>,
) {
    // SAFETY: this function's contract.
    let f = unsafe { as_fn::<A, R>(func) };
    let items: Vec<A> = match decode_arg(arg) {
        Ok(items) => items,
        Err(fail) => return respond::<()>(out, Place::Frame, || Err(fail)),
    };
    out.push(reply::VALUE);
    for a in items {
        let at = out.len();
        out.extend_from_slice(&[0; 4]);
        respond(out, Place::ChunkItem, || Ok(f(a)));
        let len = (out.len() - at - 4) as u32;
        out[at..at + 4].copy_from_slice(&len.to_le_bytes());
    }
}

/// Trampoline of the initializer `fn(A) -> R` with `R: InitResult`: `Err` or a panic is a failure.
///
/// # Safety
/// As [`run_one`].
#[allow(unsafe_code)]
pub(crate) unsafe fn run_init<A: DeserializeOwned, R: InitResult>(
    func: usize,
    arg: Body<'_>,
    out: &mut Vec<u8>,
) {
    // SAFETY: this function's contract.
    let f = unsafe { as_fn::<A, R>(func) };
    respond(out, Place::Frame, || {
        match f(decode_arg(arg)?).into_failure() {
            None => Ok(()),
            Some(msg) => Err(Fail::Failed(msg)),
        }
    });
}

/// Builds a `RUN` frame in `buf` (a spare buffer, or an empty `Vec`): trampoline and function offsets,
/// then the encoded argument.
pub(crate) fn run_frame<A: Serialize>(
    tramp: Trampoline,
    func: usize,
    arg: &A,
    cap: usize,
    buf: Vec<u8>,
) -> Result<Vec<u8>, Error> {
    let t = offset_of(tramp as usize)?;
    let f = offset_of(func)?;
    let mut buf = wire::begin_in(buf, wire::RUN);
    buf.extend_from_slice(&t.to_le_bytes());
    buf.extend_from_slice(&f.to_le_bytes());
    let tail = catch_unwind(AssertUnwindSafe(|| wire::encode_into(arg, &mut buf)))
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
    wire::seal_with_tail(&mut buf, cap, tail).map_err(|len| {
        Error::Serialization(format!(
            "the argument ({}) is {len} bytes, over the frame size cap of {cap} bytes",
            type_name::<A>()
        ))
    })?;
    Ok(buf)
}

/// Decodes a one-value reply into the task's outcome.
pub(crate) fn decode_one<R: DeserializeOwned>(body: Body<'_>, _items: usize) -> Result<R, Error> {
    let (tag, payload) = body
        .split_first()
        .ok_or_else(|| Error::Serialization("an empty reply from the worker".into()))?;
    let text = || String::from_utf8_lossy(&payload.contiguous()).into_owned();
    match tag {
        reply::VALUE => wire::decode(payload).map_err(|e| {
            Error::Serialization(format!(
                "could not deserialize the result ({}): {e}",
                type_name::<R>()
            ))
        }),
        reply::PANICKED => Err(Error::Panicked(decode_panic(&payload.contiguous()))),
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
/// So is a malformed reply (a cut item, stray bytes, more or fewer items than inputs): its items
/// cannot be matched to the inputs, and taking them as they come would shift later results onto
/// other inputs (found by the wire fuzz test).
pub(crate) fn decode_chunk<R: DeserializeOwned>(
    body: Body<'_>,
    items: usize,
) -> Result<ChunkOut<R>, Error> {
    let each = |e: Error| Ok(ChunkOut::Many((0..items).map(|_| Err(e.clone())).collect()));
    // The worker sends a chunk's reply without a tail; one that has one is read as a whole.
    let body = body.contiguous();
    match body.split_first() {
        Some((&reply::VALUE, mut rest)) => {
            let mut out = Vec::with_capacity(items);
            while !rest.is_empty() {
                let item = rest.get(..4).and_then(|len| {
                    let len = u32::from_le_bytes(len.try_into().expect("4 bytes")) as usize;
                    rest.get(4..4 + len)
                });
                let Some(item) = item else {
                    return each(Error::Serialization(
                        "a truncated chunk reply from the worker".into(),
                    ));
                };
                out.push(decode_one::<R>(item.into(), 1));
                rest = &rest[4 + item.len()..];
            }
            if out.len() != items {
                return each(Error::Serialization(format!(
                    "a chunk reply of {} items for {items} inputs from the worker",
                    out.len()
                )));
            }
            Ok(ChunkOut::Many(out))
        }
        _ => each(
            decode_one::<()>(Body::from(&body[..]), 1)
                .err()
                .unwrap_or_else(|| Error::Serialization("a malformed chunk reply".into())),
        ),
    }
}

/// `decode_one` for a one-element `map` task.
pub(crate) fn decode_single<R: DeserializeOwned>(
    body: Body<'_>,
    items: usize,
) -> Result<ChunkOut<R>, Error> {
    decode_one(body, items).map(ChunkOut::One)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A PIE program, its heap, a library loaded later, and a second read-only mapping of the
    /// program's own file (what std's backtrace symbolizer adds), above that library.
    const MAPS: &str = "\
55b1db320000-55b1db338000 r--p 00000000 fe:00 10068089                   /x/prog
55b1db338000-55b1db37f000 r-xp 00017000 fe:00 10068089                   /x/prog
55b1db37f000-55b1db383000 r--p 0005d000 fe:00 10068089                   /x/prog
55b1db383000-55b1db385000 rw-p 00060000 fe:00 10068089                   /x/prog
55b1dc000000-55b1dc100000 rw-p 00000000 00:00 0                          [heap]
7f994c000000-7f994c100000 r-xp 00001000 fe:00 555                        /x/libplugin.so
7f994d000000-7f994d472000 r--p 00000000 fe:00 10068089                   /x/prog
7f994d600000-7f994d700000 rwxp 00000000 00:00 0
";

    #[test]
    fn only_the_executable_mappings_of_the_anchors_file_count() {
        let image = image_in(MAPS, 0x55b1db340000).expect("found");
        assert_eq!(image.file, "fe:00 10068089");
        assert!(image.contains(0x55b1db338000) && image.contains(0x55b1db37efff));
        for outside in [
            0x55b1db320010, // the program's read-only data
            0x55b1db384000, // its writable data
            0x55b1dc000010, // the heap
            0x7f994c000100, // a library
            0x7f994d000100, // the symbolizer's copy of the program
        ] {
            assert!(!image.contains(outside), "{outside:#x}");
        }
        // Not executable, or not file-backed: no image at all (tasks are then refused).
        assert!(image_in(MAPS, 0x55b1db320010).is_none());
        assert!(image_in(MAPS, 0x7f994d600100).is_none());
    }

    #[test]
    fn the_live_image_holds_our_code_and_nothing_else() {
        // Map the executable a second time, as a panic's backtrace does, then read the maps afresh.
        let bt = std::backtrace::Backtrace::force_capture();
        let _ = bt.to_string();
        let maps = std::fs::read_to_string("/proc/self/maps").unwrap();
        let image = image_in(&maps, base()).expect("the anchor is in an executable mapping");
        assert!(image.contains(base()));
        assert!(image.contains(run_one::<u64, u64> as Trampoline as usize));
        assert!(
            !image.contains(libc::labs as *const () as usize),
            "a libc function"
        );
        let heap = Box::new(0u8);
        assert!(!image.contains(&*heap as *const u8 as usize), "the heap");
        let stack = 0u8;
        assert!(!image.contains(&stack as *const u8 as usize), "a stack");
    }
}
