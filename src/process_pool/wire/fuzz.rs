//! Bad input on the wire: random, truncated, oversized and mutated frames thrown at the decoders of
//! both ends, and at a real worker process.
//!
//! Parent side: the frame reader, the handshake check (`check_hello`), the reply decoders
//! (`decode_one`, `decode_chunk`). Worker side: the frame reader, the code-offset check
//! (`code::address_of`), the argument decoders inside the trampolines, the marker parser, and a real
//! worker (this test binary re-executed) fed bad frames over its channel. Every input must end in a
//! value, a clear error or a clean worker exit: no panic, no hang, no allocation the bytes on the
//! wire do not pay for, no code address outside the executable's code.
//!
//! The inputs are generated from a seed (`CF_FUZZ_SEED`, default fixed, so a run is reproducible), a
//! number of cases per target (`CF_FUZZ_CASES`, default 2000), and the inputs kept in
//! `tests/corpus/wire/` (replayed first; a file's name starts with the target it is for). A failing
//! case names its seed, its index and its input.

use std::collections::BTreeMap;
use std::io::{self, Read, Write};
use std::ops::Range;
use std::os::unix::net::UnixStream;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use super::*;
use crate::error::Error;
use crate::map::ChunkOut;
use crate::process_pool::child::EXIT_PROTOCOL;
use crate::process_pool::code::{self, Trampoline};
use crate::process_pool::handshake::{self, Hello};
use serde::de::DeserializeOwned;
use serde::Serialize;

// ---- the generator ----

/// SplitMix64: small, fast, and the same sequence on every platform, so a seed replays a failure.
struct Rng(u64);

impl Rng {
    fn for_case(seed: u64, case: usize) -> Rng {
        let mut r = Rng(seed ^ (case as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15));
        r.next();
        r
    }

    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// A number in `0..n` (`n > 0`).
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.next() as u8).collect()
    }

    /// Up to `max` random bytes.
    fn junk(&mut self, max: usize) -> Vec<u8> {
        let n = self.below(max + 1);
        self.bytes(n)
    }

    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }
}

fn seed() -> u64 {
    std::env::var("CF_FUZZ_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0x5eed_cf0f_2026)
}

fn cases() -> usize {
    std::env::var("CF_FUZZ_CASES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(2000)
}

/// Lengths a header or a postcard length is likely to get wrong.
fn interesting_u32(rng: &mut Rng, len: usize, cap: usize) -> u32 {
    let cap = cap.min(u32::MAX as usize) as u32;
    let len = len.min(u32::MAX as usize) as u32;
    let random = rng.next() as u32;
    *rng.pick(&[
        0,
        1,
        len.wrapping_sub(1),
        len.wrapping_add(1),
        cap,
        cap.wrapping_add(1),
        u32::MAX,
        1 << 31,
        random,
    ])
}

/// One to four random edits of `input`: bit flips, interesting bytes, cuts, insertions, splices and
/// rewritten length fields.
fn mutate(rng: &mut Rng, input: &[u8], cap: usize) -> Vec<u8> {
    let mut v = input.to_vec();
    for _ in 0..1 + rng.below(4) {
        let at = if v.is_empty() { 0 } else { rng.below(v.len()) };
        match rng.below(8) {
            0 if !v.is_empty() => v[at] ^= 1 << rng.below(8),
            1 if !v.is_empty() => v[at] = *rng.pick(&[0, 1, 0x7f, 0x80, 0xff]),
            2 => v.truncate(at),
            3 => {
                let n = rng.below(16);
                let extra = rng.bytes(n);
                v.splice(at..at, extra);
            }
            4 => {
                let n = rng.below(64);
                v.extend(rng.bytes(n));
            }
            5 if v.len() >= 2 => {
                // Repeat a slice (a duplicated frame or item).
                let from = rng.below(v.len());
                let to = from + rng.below(v.len() - from) + 1;
                let copy = v[from..to].to_vec();
                v.splice(at..at, copy);
            }
            6 if v.len() >= 4 => {
                let at = rng.below(v.len() - 3);
                let n = interesting_u32(rng, v.len(), cap);
                v[at..at + 4].copy_from_slice(&n.to_le_bytes());
            }
            _ if !v.is_empty() => {
                // A postcard varint that never ends, or a huge one.
                let n = rng.below(10) + 1;
                v.splice(at..at, std::iter::repeat(0xff).take(n));
            }
            _ => v.extend(rng.junk(8)),
        }
    }
    v
}

/// Runs `check` on `cases()` generated inputs after the corpus inputs of `target`; a panic names the
/// case and its input.
fn run_cases(target: &str, mut gen: impl FnMut(&mut Rng) -> Vec<u8>, check: impl Fn(&[u8])) {
    let seed = seed();
    let corpus = corpus(target);
    let n = corpus.len();
    let inputs = corpus.into_iter().chain((0..cases()).map(|i| {
        let mut rng = Rng::for_case(seed, i);
        (format!("case {i} of seed {seed}"), gen(&mut rng))
    }));
    let mut ran = 0;
    for (name, input) in inputs {
        if let Err(p) = catch_unwind(AssertUnwindSafe(|| check(&input))) {
            panic!(
                "{target}: {name} failed: {}\ninput ({} bytes): {:02x?}",
                crate::error::panic_message(&*p),
                input.len(),
                input
            );
        }
        ran += 1;
    }
    assert!(ran >= n, "{target}: the corpus was not replayed");
}

// ---- the corpus ----

fn corpus_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/corpus/wire")
}

/// The corpus files for `target` (`<target>-<what>.bin`), sorted by name.
fn corpus(target: &str) -> Vec<(String, Vec<u8>)> {
    let mut files: BTreeMap<String, Vec<u8>> = BTreeMap::new();
    let prefix = format!("{target}-");
    for entry in std::fs::read_dir(corpus_dir()).expect("tests/corpus/wire exists") {
        let path = entry.expect("a corpus entry").path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        if name.starts_with(&prefix) && name.ends_with(".bin") {
            files.insert(name, std::fs::read(&path).expect("a corpus file"));
        }
    }
    assert!(!files.is_empty(), "no corpus for {target}");
    files.into_iter().collect()
}

#[test]
fn every_corpus_file_belongs_to_a_target() {
    let targets = [
        "stream-", "reply-", "chunk-", "hello-", "arg-", "marker-", "worker-",
    ];
    for entry in std::fs::read_dir(corpus_dir()).unwrap() {
        let name = entry.unwrap().file_name().to_string_lossy().into_owned();
        assert!(
            name == "README.md" || targets.iter().any(|t| name.starts_with(t)),
            "{name} is replayed by no test"
        );
    }
}

// ---- a reader that hands out bytes in random pieces ----

/// A stream that returns at most `step` bytes per read, then end-of-file: the shapes a socket read
/// takes.
struct Pieces<'a> {
    data: &'a [u8],
    rng: Rng,
    max_step: usize,
}

impl Source for Pieces<'_> {}

impl Read for Pieces<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = (1 + self.rng.below(self.max_step))
            .min(buf.len())
            .min(self.data.len());
        buf[..n].copy_from_slice(&self.data[..n]);
        self.data = &self.data[n..];
        Ok(n)
    }
}

/// A few well-formed frames of random kinds and sizes, back to back.
fn valid_stream(rng: &mut Rng) -> Vec<u8> {
    let mut out = Vec::new();
    for _ in 0..1 + rng.below(4) {
        let other = rng.next() as u8;
        let kind = *rng.pick(&[RUN, HELLO, reply::VALUE, reply::PANICKED, other]);
        let n = *rng.pick(&[0, 1, 7, 100, 3000, 70_000]);
        let mut f = begin(kind, n);
        f.extend(rng.bytes(n));
        seal(&mut f, DEFAULT_MAX_FRAME).unwrap();
        out.extend(f);
    }
    out
}

/// Reads frames from `input` until it ends, checking each outcome and the reader's memory.
fn read_all(input: &[u8], cap: usize, rng: Rng, max_step: usize) {
    let mut r = FrameReader::new(cap);
    let mut src = Pieces {
        data: input,
        rng,
        max_step,
    };
    // Memory follows the bytes that arrived, never a header's claim.
    let bounded = |r: &FrameReader| {
        assert!(
            r.buf.len() <= INITIAL.max(2 * input.len()),
            "a {}-byte buffer for {} bytes of input",
            r.buf.len(),
            input.len()
        )
    };
    let mut consumed = 0;
    loop {
        let outcome = r.read_frame(&mut src).map(|body| body.len());
        bounded(&r);
        match outcome {
            Ok(len) => {
                assert!(len > 0 && len <= cap, "a body of {len}");
                consumed += HEADER + len;
                assert!(consumed <= input.len(), "more frames than bytes");
            }
            Err(e) => {
                let kind = e.kind();
                assert!(
                    matches!(
                        kind,
                        io::ErrorKind::UnexpectedEof | io::ErrorKind::InvalidData
                    ),
                    "{e:?}"
                );
                return;
            }
        }
    }
}

#[test]
fn the_frame_reader_survives_any_stream() {
    run_cases(
        "stream",
        |rng| {
            let valid = valid_stream(rng);
            match rng.below(4) {
                0 => rng.junk(200),
                _ => mutate(rng, &valid, DEFAULT_MAX_FRAME),
            }
        },
        |input| {
            // Both a worker's small cap and the default; both a trickle and large reads.
            let mut rng = Rng::for_case(input.len() as u64, 0);
            for cap in [MIN_MAX_FRAME, DEFAULT_MAX_FRAME] {
                let step = *rng.pick(&[1, 7, 1 << 20]);
                read_all(input, cap, Rng(rng.next()), step);
            }
        },
    );
}

#[test]
fn a_header_over_the_cap_is_refused_before_any_allocation() {
    for (cap, len) in [
        (MIN_MAX_FRAME, MIN_MAX_FRAME as u32 + 1),
        (MIN_MAX_FRAME, u32::MAX),
        (DEFAULT_MAX_FRAME, DEFAULT_MAX_FRAME as u32 + 1),
        (DEFAULT_MAX_FRAME, u32::MAX),
    ] {
        // The body is "there" as far as the reader could know: it must not even look.
        let mut input = len.to_le_bytes().to_vec();
        input.extend([RUN; 64]);
        let mut r = FrameReader::new(cap);
        let e = r.read_frame(&input[..]).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::InvalidData, "{len} over {cap}");
        assert!(e.to_string().contains(&format!("{len} bytes")), "{e}");
        assert_eq!(r.buf.len(), INITIAL);
    }
    // A zero-length frame has no kind byte: corrupt, not empty.
    let e = FrameReader::new(MIN_MAX_FRAME)
        .read_frame(&[0u8; 8][..])
        .unwrap_err();
    assert_eq!(e.kind(), io::ErrorKind::InvalidData);
}

#[test]
fn a_frame_announced_at_the_cap_but_not_sent_costs_only_what_arrived() {
    // Within the cap, so legal, but the peer sends 10 bytes and closes (or dies): the reader must
    // not allocate (and zero-fill) the announced 1 GiB up front.
    let mut input = (DEFAULT_MAX_FRAME as u32).to_le_bytes().to_vec();
    input.extend([7; 10]);
    let mut r = FrameReader::new(DEFAULT_MAX_FRAME);
    let e = r.read_frame(&input[..]).unwrap_err();
    assert_eq!(e.kind(), io::ErrorKind::UnexpectedEof);
    assert_eq!(r.buf.len(), INITIAL);
    // A real large frame still arrives whole, and its buffer is kept for the next one.
    let mut f = begin(RUN, 0);
    f.extend(std::iter::repeat(3).take(300_000));
    seal(&mut f, DEFAULT_MAX_FRAME).unwrap();
    let mut r = FrameReader::new(DEFAULT_MAX_FRAME);
    assert_eq!(r.read_frame(&f[..]).unwrap().len(), 300_001);
    assert_eq!(r.buf.len(), (HEADER + 300_001).next_power_of_two());
}

#[test]
fn every_truncation_of_a_frame_is_a_clean_end_of_file() {
    let mut rng = Rng::for_case(seed(), 0);
    for _ in 0..20 {
        let stream = valid_stream(&mut rng);
        let mut r = FrameReader::new(DEFAULT_MAX_FRAME);
        let first = HEADER + r.read_frame(&stream[..]).unwrap().len();
        // Every cut inside the first frame (sampled for the big ones).
        let step = (first / 500).max(1);
        for cut in (0..first).step_by(step).chain([first - 1]) {
            let e = FrameReader::new(DEFAULT_MAX_FRAME)
                .read_frame(&stream[..cut])
                .unwrap_err();
            assert_eq!(e.kind(), io::ErrorKind::UnexpectedEof, "cut at {cut}");
        }
    }
}

// ---- parent side: replies and the handshake ----

fn square(n: u64) -> u64 {
    n.wrapping_mul(n)
}

fn halve(n: u64) -> u64 {
    if n % 2 == 1 {
        // A panic without the hook's report: thousands of cases would flood the output.
        std::panic::resume_unwind(Box::new(format!("odd {n}")));
    }
    n / 2
}

fn shout(s: String) -> String {
    s.to_uppercase()
}

/// A value with most of postcard's shapes: varints, strings, options, sequences, maps, enums.
type Rich = (
    u8,
    i64,
    String,
    Option<Vec<u16>>,
    BTreeMap<u32, String>,
    Result<bool, char>,
);

fn rich(n: u64) -> Rich {
    (
        n as u8,
        -(n as i64),
        "ß".repeat(n as usize % 5),
        (n % 3 != 0).then(|| vec![n as u16; (n % 4) as usize]),
        (0..n % 3).map(|k| (k as u32, k.to_string())).collect(),
        if n % 2 == 0 { Ok(true) } else { Err('x') },
    )
}

/// What the worker's `run_one` trampoline writes for `f(arg)`: a genuine reply body.
#[allow(unsafe_code)]
fn reply_one<A: DeserializeOwned, R: Serialize>(f: fn(A) -> R, arg: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    // SAFETY: `f` is a `fn(A) -> R`, the exact type `run_one::<A, R>` reads its first argument as.
    unsafe { code::run_one::<A, R>(f as usize, arg.into(), &mut out) };
    out
}

/// What the worker's `run_chunk` trampoline writes for `f` over the inputs in `arg`.
#[allow(unsafe_code)]
fn reply_chunk<A: DeserializeOwned, R: Serialize>(f: fn(A) -> R, arg: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    // SAFETY: `f` is a `fn(A) -> R`, the exact type `run_chunk::<A, R>` reads its first argument as.
    unsafe { code::run_chunk::<A, R>(f as usize, arg.into(), &mut out) };
    out
}

/// Genuine reply bodies of every kind.
fn reply_seeds(rng: &mut Rng) -> Vec<u8> {
    let n = rng.next() % 1000;
    let arg = postcard::to_stdvec(&n).unwrap();
    match rng.below(6) {
        0 => reply_one::<u64, u64>(square, &arg),
        1 => reply_one::<u64, u64>(halve, &arg),
        2 => reply_one::<u64, Rich>(rich, &arg),
        3 => {
            let s = postcard::to_stdvec(&"chunk ß".repeat(n as usize % 4)).unwrap();
            reply_one::<String, String>(shout, &s)
        }
        4 => reply_one::<u64, u64>(square, &[0xff; 11]),
        _ => {
            let mut v = vec![*rng.pick(&[reply::FAILED, reply::RESULT_ENCODE])];
            v.extend(b"an error message");
            v
        }
    }
}

/// Decoding any body gives a value or a clear error: never a panic.
fn decodes_cleanly<R: serde::de::DeserializeOwned>(body: &[u8]) {
    match code::decode_one::<R>(body.into(), 1) {
        Ok(_) | Err(Error::Serialization(_) | Error::Panicked(_) | Error::Failed(_)) => {}
        Err(other) => panic!("decode_one gave {other:?}"),
    }
}

#[test]
fn any_reply_decodes_to_a_value_or_a_clear_error() {
    run_cases(
        "reply",
        |rng| {
            let seed = reply_seeds(rng);
            match rng.below(5) {
                0 => rng.junk(40),
                _ => mutate(rng, &seed, MIN_MAX_FRAME),
            }
        },
        |body| {
            if body.is_empty() {
                // The frame reader never yields an empty body; the decoder still must not panic.
                assert!(code::decode_one::<u64>(body.into(), 1).is_err());
                return;
            }
            decodes_cleanly::<u64>(body);
            decodes_cleanly::<String>(body);
            decodes_cleanly::<Rich>(body);
            decodes_cleanly::<Vec<String>>(body);
            decodes_cleanly::<crate::ByteBlock>(body);
            decodes_cleanly::<()>(body);
        },
    );
}

/// A genuine chunk reply, from the worker's `run_chunk`, for `items` inputs.
fn chunk_seed(rng: &mut Rng) -> (Vec<u8>, usize) {
    let items: Vec<u64> = (0..rng.below(6)).map(|_| rng.next() % 50).collect();
    let arg = postcard::to_stdvec(&items).unwrap();
    let body = match rng.below(3) {
        0 => reply_chunk::<u64, u64>(halve, &arg),
        1 => reply_chunk::<u64, Rich>(rich, &arg),
        _ => reply_chunk::<u64, u64>(square, &arg[..arg.len() / 2]),
    };
    (body, items.len())
}

#[test]
fn any_chunk_reply_gives_one_outcome_per_input() {
    // The corpus holds bodies; the number of inputs rides in the first byte of a corpus file.
    run_cases(
        "chunk",
        |rng| {
            let (body, items) = chunk_seed(rng);
            let body = match rng.below(4) {
                0 => body,
                _ => mutate(rng, &body, MIN_MAX_FRAME),
            };
            let mut input = vec![items as u8];
            input.extend(body);
            input
        },
        |input| {
            let Some((&items, body)) = input.split_first() else {
                return;
            };
            if body.is_empty() {
                return;
            }
            let items = usize::from(items);
            for outcome in [
                code::decode_chunk::<u64>(body.into(), items).map(outcomes),
                code::decode_chunk::<Rich>(body.into(), items).map(outcomes),
            ] {
                // `map` yields exactly one result per input: a reply with more or fewer items
                // than the chunk had inputs must not shift results onto other inputs.
                match outcome {
                    Ok(n) => assert_eq!(n, items, "outcomes for {items} inputs"),
                    Err(e) => panic!("a chunk reply must fail per element, not as a whole: {e:?}"),
                }
            }
        },
    );
}

fn outcomes<R>(out: ChunkOut<R>) -> usize {
    match out {
        ChunkOut::One(_) => 1,
        ChunkOut::Many(v) => v.len(),
    }
}

#[test]
fn only_the_genuine_handshake_is_accepted() {
    let me = std::process::id();
    let genuine = handshake::hello_frame()[HEADER..].to_vec();
    let payload = &genuine[1..];
    run_cases(
        "hello",
        |rng| match rng.below(5) {
            0 => rng.junk(120),
            _ => mutate(rng, &genuine, MIN_MAX_FRAME),
        },
        |body| {
            if handshake::check_hello(body, me).is_ok() {
                // Accepted: then it says exactly what the genuine one says (postcard ignores
                // bytes after the value, so a longer body may pass).
                let hello: Hello = postcard::from_bytes(&body[1..]).expect("accepted, so readable");
                assert_eq!(postcard::to_stdvec(&hello).unwrap(), payload);
                assert_eq!(body[0], HELLO);
            }
        },
    );
    // The genuine handshake of another process than the one spawned never passes.
    assert!(handshake::check_hello(&genuine, me.wrapping_add(1)).is_err());
}

#[test]
fn markers_parse_or_are_refused() {
    let genuine = handshake::marker(MIN_MAX_FRAME);
    run_cases(
        "marker",
        |rng| mutate(rng, genuine.as_bytes(), MIN_MAX_FRAME),
        |bytes| {
            let Ok(s) = std::str::from_utf8(bytes) else {
                return;
            };
            if let Some((pid, cap)) = handshake::parse_marker(s) {
                assert_eq!(s.split(':').nth(1).unwrap().parse::<u32>(), Ok(pid));
                assert_eq!(s.split(':').nth(2).unwrap().parse::<usize>(), Ok(cap));
            }
        },
    );
}

// ---- worker side: code offsets and arguments ----

/// The executable mappings of the file that holds the anchor, read from `/proc/self/maps` here,
/// independently of `code.rs`.
fn code_ranges() -> Vec<Range<usize>> {
    let maps = std::fs::read_to_string("/proc/self/maps").unwrap();
    let anchor = code::anchor as fn() -> u64 as usize;
    let rows: Vec<(Range<usize>, bool, String)> = maps
        .lines()
        .filter_map(|l| {
            let cols: Vec<&str> = l.split_whitespace().collect();
            let (lo, hi) = cols.first()?.split_once('-')?;
            let range = usize::from_str_radix(lo, 16).ok()?..usize::from_str_radix(hi, 16).ok()?;
            let exec = cols.get(1)?.as_bytes().get(2) == Some(&b'x');
            Some((range, exec, format!("{} {}", cols.get(3)?, cols.get(4)?)))
        })
        .collect();
    let home = rows
        .iter()
        .find(|(r, ..)| r.contains(&anchor))
        .expect("the anchor is mapped")
        .2
        .clone();
    rows.into_iter()
        .filter(|(_, exec, file)| *exec && *file == home)
        .map(|(r, ..)| r)
        .collect()
}

#[test]
fn no_offset_outside_the_executables_code_is_ever_accepted() {
    let ranges = code_ranges();
    let base = code::anchor as fn() -> u64 as usize;
    let inside = |a: usize| ranges.iter().any(|r| r.contains(&a));
    let heap = Box::new(0u64);
    let stack = 0u64;
    let mut offsets: Vec<u64> = vec![
        0,
        u64::MAX,
        1 << 63,
        (&*heap as *const u64 as usize).wrapping_sub(base) as u64,
        (&stack as *const u64 as usize).wrapping_sub(base) as u64,
        (libc::labs as *const () as usize).wrapping_sub(base) as u64,
    ];
    // The edges of every code range, from both sides.
    for r in &ranges {
        for a in [r.start.wrapping_sub(1), r.start, r.end - 1, r.end] {
            offsets.push(a.wrapping_sub(base) as u64);
        }
    }
    let mut rng = Rng::for_case(seed(), 1);
    offsets.extend((0..cases()).map(|_| rng.next()));
    offsets.extend((0..cases()).map(|_| (rng.next() % (64 << 20)).wrapping_sub(32 << 20)));
    for off in offsets {
        let addr = base.wrapping_add(off as usize);
        match code::address_of(off) {
            Some(a) => {
                assert_eq!(a, addr);
                assert!(
                    inside(a),
                    "offset {off:#x} accepted, address {a:#x} outside the code"
                );
            }
            None => assert!(!inside(addr), "offset {off:#x} (in the code) refused"),
        }
    }
}

#[test]
fn any_argument_bytes_give_a_reply_not_a_crash() {
    // What a worker does with a RUN frame's argument: decode, call, encode. Bad bytes are a reply
    // (`ARG_DECODE`), which the parent turns into that one future's error.
    run_cases(
        "arg",
        |rng| {
            let good = postcard::to_stdvec(&rich(rng.next() % 20)).unwrap();
            match rng.below(3) {
                0 => rng.junk(40),
                _ => mutate(rng, &good, MIN_MAX_FRAME),
            }
        },
        |arg| {
            let id: fn(Rich) -> Rich = |r| r;
            for body in [
                reply_one(id, arg),
                reply_one(square, arg),
                reply_one(shout, arg),
            ] {
                assert!(
                    matches!(body[0], reply::VALUE | reply::ARG_DECODE),
                    "reply kind {}",
                    body[0]
                );
                decodes_cleanly::<Rich>(&body);
            }
            let body = reply_chunk::<u64, u64>(halve, arg);
            let items = match postcard::from_bytes::<Vec<u64>>(arg) {
                Ok(v) => v.len(),
                Err(_) => 3,
            };
            match code::decode_chunk::<u64>(body[..].into(), items) {
                Ok(ChunkOut::Many(v)) => assert_eq!(v.len(), items),
                other => panic!("{:?}", other.map(|_| ())),
            }
        },
    );
}

// ---- a real worker fed bad frames ----

/// A worker of this test binary (re-executed), with its channel, as the pool starts one.
struct Worker {
    child: std::process::Child,
    chan: UnixStream,
}

impl Worker {
    fn start() -> Worker {
        let (ours, theirs) = UnixStream::pair().unwrap();
        let child = Command::new("/proc/self/exe")
            .env(handshake::marker_name(), handshake::marker(MIN_MAX_FRAME))
            .stdin(Stdio::from(std::os::fd::OwnedFd::from(theirs)))
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let w = Worker { child, chan: ours };
        // Its first frame is a handshake that passes the parent's check.
        let mut r = FrameReader::new(MIN_MAX_FRAME);
        w.chan.set_read_timeout(Some(LIMIT)).unwrap();
        let body = r.read_frame(&w.chan).expect("a handshake");
        handshake::check_hello(body.head, w.child.id()).expect("a genuine handshake");
        w
    }

    /// Waits (bounded) for the worker to exit; returns its exit code, or panics naming the signal
    /// that killed it or the hang.
    fn exit_code(mut self) -> (i32, String) {
        let end = Instant::now() + LIMIT;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                use std::os::unix::process::ExitStatusExt;
                let mut err = String::new();
                let _ = self.child.stderr.take().unwrap().read_to_string(&mut err);
                match status.code() {
                    Some(c) => return (c, err),
                    None => panic!("the worker died of signal {:?}: {err}", status.signal()),
                }
            }
            if Instant::now() > end {
                let _ = self.child.kill();
                let _ = self.child.wait();
                panic!("the worker did not exit within {LIMIT:?}");
            }
            std::thread::sleep(Duration::from_millis(2));
        }
    }
}

const LIMIT: Duration = Duration::from_secs(20);

/// A RUN frame with these offsets and argument bytes.
fn run_frame(tramp: u64, func: u64, arg: &[u8]) -> Vec<u8> {
    let mut f = begin(RUN, 16 + arg.len());
    f.extend(tramp.to_le_bytes());
    f.extend(func.to_le_bytes());
    f.extend(arg);
    seal(&mut f, usize::MAX).unwrap();
    f
}

fn square_offsets() -> (u64, u64) {
    (
        code::offset_of(code::run_one::<u64, u64> as Trampoline as usize).unwrap(),
        code::offset_of(square as fn(u64) -> u64 as usize).unwrap(),
    )
}

/// Whether a byte stream holds a RUN frame whose offsets both land in the code but are not the
/// genuine pair `square_offsets()`. The worker checks only that offsets lie in the executable's code:
/// which function they name is trusted, by design, once the handshake has passed (only the
/// authenticated parent can write to the channel). A mutation that moves an offset to other code
/// would make the worker call it, so such streams are not sent.
fn calls_other_code(stream: &[u8]) -> bool {
    let genuine = square_offsets();
    let mut r = FrameReader::new(MIN_MAX_FRAME);
    let mut src = stream;
    while let Ok(body) = r.read_frame(&mut src) {
        let body = body.contiguous();
        if body.len() >= 17 && body[0] == RUN {
            let t = u64::from_le_bytes(body[1..9].try_into().unwrap());
            let f = u64::from_le_bytes(body[9..17].try_into().unwrap());
            let both = code::address_of(t).is_some() && code::address_of(f).is_some();
            if both && (t, f) != genuine {
                return true;
            }
        }
    }
    false
}

#[test]
fn a_worker_fed_bad_frames_exits_cleanly() {
    let (t, f) = square_offsets();
    let good = run_frame(t, f, &postcard::to_stdvec(&12u64).unwrap());
    let mut inputs: Vec<(String, Vec<u8>)> = corpus("worker");
    let mut rng = Rng::for_case(seed(), 2);
    // Each case costs a process start: a bounded number, drawn like the other targets.
    for i in 0..(cases() / 50).clamp(8, 200) {
        let stream = match rng.below(3) {
            0 => rng.junk(64),
            1 => {
                let frame = run_frame(rng.next(), rng.next(), &[1, 2, 3]);
                mutate(&mut rng, &frame, MIN_MAX_FRAME)
            }
            _ => mutate(&mut rng, &good, MIN_MAX_FRAME),
        };
        inputs.push((format!("case {i} of seed {}", seed()), stream));
    }
    let mut sent = 0;
    for (name, stream) in inputs {
        if calls_other_code(&stream) {
            continue;
        }
        sent += 1;
        let mut w = Worker::start();
        // The worker may exit before it has read everything: a failed write is fine.
        let _ = w.chan.write_all(&stream);
        // Everything it replies before it exits must be well-formed replies.
        let _ = w.chan.shutdown(std::net::Shutdown::Write);
        let mut replies = Vec::new();
        let _ = w.chan.read_to_end(&mut replies);
        let (code, err) = w.exit_code();
        assert!(
            code == 0 || code == EXIT_PROTOCOL,
            "{name}: exit code {code}: {err}\ninput: {stream:02x?}"
        );
        if code == EXIT_PROTOCOL {
            assert!(
                err.contains("concurrent_futures: worker"),
                "{name}: unclear: {err}"
            );
        }
        // `run_if_worker` turns a panic into the same exit code: tell them apart.
        assert!(
            !err.contains("panicked"),
            "{name}: the worker panicked: {err}"
        );
        let mut r = FrameReader::new(MIN_MAX_FRAME);
        let mut src = &replies[..];
        while let Ok(body) = r.read_frame(&mut src) {
            assert!(
                matches!(body.head[0], reply::VALUE | reply::ARG_DECODE),
                "{name}: reply kind {}",
                body.head[0]
            );
        }
    }
    assert!(sent >= 8, "only {sent} streams could be sent");
}

#[test]
fn a_worker_reports_a_bad_argument_and_carries_on() {
    let (t, f) = square_offsets();
    let mut w = Worker::start();
    let mut r = FrameReader::new(MIN_MAX_FRAME);
    // An unterminated varint, then a good argument, on the same worker.
    w.chan.write_all(&run_frame(t, f, &[0xff; 12])).unwrap();
    let body = r.read_frame(&w.chan).unwrap();
    assert_eq!(body.head[0], reply::ARG_DECODE);
    let e = code::decode_one::<u64>(body, 1).unwrap_err();
    assert!(
        matches!(&e, Error::Serialization(m) if m.contains("could not deserialize the argument (u64)")),
        "{e:?}"
    );
    w.chan
        .write_all(&run_frame(t, f, &postcard::to_stdvec(&12u64).unwrap()))
        .unwrap();
    let body = r.read_frame(&w.chan).unwrap();
    assert_eq!(code::decode_one::<u64>(body, 1).unwrap(), 144);
    // A frame over the worker's cap: refused unread, with a clear message.
    let mut header = (MIN_MAX_FRAME as u32 + 1).to_le_bytes().to_vec();
    header.extend(0u32.to_le_bytes());
    w.chan.write_all(&header).unwrap();
    let (code, err) = w.exit_code();
    assert_eq!(code, EXIT_PROTOCOL, "{err}");
    assert!(
        err.contains(&format!("a frame of {} bytes", MIN_MAX_FRAME + 1)),
        "{err}"
    );
}

#[test]
fn a_worker_refuses_an_offset_outside_the_code() {
    let (t, f) = square_offsets();
    let arg = postcard::to_stdvec(&1u64).unwrap();
    for (tramp, func) in [(t, u64::MAX), (u64::MAX, f), (t ^ (1 << 40), f), (0, 0)] {
        if code::address_of(tramp).is_some() && code::address_of(func).is_some() {
            continue;
        }
        let mut w = Worker::start();
        w.chan.write_all(&run_frame(tramp, func, &arg)).unwrap();
        let (code, err) = w.exit_code();
        assert_eq!(code, EXIT_PROTOCOL, "{tramp:#x} {func:#x}: {err}");
        assert!(err.contains("malformed frame"), "{err}");
    }
}

#[test]
fn a_marker_naming_another_parent_or_malformed_is_refused_before_any_frame() {
    use crate::process_pool::child::{EXIT_REFUSED, EXIT_SETUP};
    let other_parent = format!(
        "{}:{}:{MIN_MAX_FRAME}",
        handshake::PROTOCOL,
        std::process::id().wrapping_add(1)
    );
    for (marker, expected, says) in [
        (other_parent.as_str(), EXIT_REFUSED, "the marker names pid"),
        ("3:not-a-pid:4096", EXIT_SETUP, "malformed"),
        ("1:1:4096", EXIT_SETUP, "malformed"),
        ("", EXIT_SETUP, "malformed"),
    ] {
        let (ours, theirs) = UnixStream::pair().unwrap();
        let out = Command::new("/proc/self/exe")
            .env(handshake::marker_name(), marker)
            .stdin(Stdio::from(std::os::fd::OwnedFd::from(theirs)))
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let worker = Worker {
            child: out,
            chan: ours,
        };
        // It exits without a handshake (no code offset revealed), and without running the test
        // harness's `main`; a refusal of its parent is at most a REFUSED frame with the reason.
        let mut sent = Vec::new();
        worker.chan.set_read_timeout(Some(LIMIT)).unwrap();
        let _ = (&worker.chan).read_to_end(&mut sent);
        if !sent.is_empty() {
            assert!(sent.len() > HEADER, "{marker}: it sent {sent:02x?}");
            assert_eq!(
                sent[HEADER],
                handshake::REFUSED,
                "{marker}: it sent {sent:02x?}"
            );
        }
        let (code, err) = worker.exit_code();
        assert_eq!(code, expected, "{marker}: {err}");
        assert!(err.contains(says), "{marker}: {err}");
    }
}
