//! Bad frames from a worker, end to end: a task writes garbage straight into its own worker's
//! channel, where the parent's driver expects its reply. Whatever arrives, the task's future ends
//! (bounded wait) with a value or a clear error, and the pool goes on (resilient policy) or breaks
//! with a protocol cause (default policy). The decoders themselves are fuzzed case by case in
//! `src/process_pool/wire/fuzz.rs`; this is the same kind of input through a real pool.
//!
//! The frame layout written here (`u32` little-endian body length, `u32` tail length, then a kind
//! byte: 0 a value, 1 a panic, 2 a failure, 3/4 encoding errors) is the one
//! `src/process_pool/wire.rs` documents.

mod common;

use std::io::Write;
use std::mem::ManuallyDrop;
use std::os::fd::FromRawFd;
use std::os::unix::net::UnixStream;
use std::time::Duration;

use common::holds_within;
use concurrent_futures::{BrokenCause, Error, ProcessPoolExecutor, Queued, WorkerDeath};

/// Far above any step here; a future still pending after it is a hang.
const LIMIT: Duration = Duration::from_secs(30);
/// The pools' frame cap: small, so that "over the cap" is cheap to send.
const CAP: usize = 4096;

/// This worker's channel to its parent: its only socket.
fn channel() -> ManuallyDrop<UnixStream> {
    for entry in std::fs::read_dir("/proc/self/fd").unwrap() {
        let entry = entry.unwrap();
        let target = std::fs::read_link(entry.path()).unwrap_or_default();
        if target.to_string_lossy().starts_with("socket:") {
            let fd: i32 = entry.file_name().to_str().unwrap().parse().unwrap();
            // SAFETY: `fd` is open (listed just now) and stays open: `ManuallyDrop` never closes
            // it, since the worker still owns it.
            return ManuallyDrop::new(unsafe { UnixStream::from_raw_fd(fd) });
        }
    }
    panic!("no channel socket in the worker")
}

/// The task: writes `bytes` where its reply should go, then exits (`exit`) so that nothing else
/// follows, or waits to be killed.
fn scribble((bytes, exit): (Vec<u8>, bool)) -> u64 {
    let _ = channel().write_all(&bytes);
    if exit {
        std::process::exit(0);
    }
    std::thread::sleep(LIMIT * 2);
    0
}

fn square(n: u64) -> u64 {
    n * n
}

/// A header: body length and tail length.
fn header(len: usize, tail: usize) -> Vec<u8> {
    let mut h = (len as u32).to_le_bytes().to_vec();
    h.extend((tail as u32).to_le_bytes());
    h
}

fn frame(body: &[u8], tail: usize) -> Vec<u8> {
    let mut f = header(body.len(), tail);
    f.extend_from_slice(body);
    f
}

/// SplitMix64, seeded from `CF_FUZZ_SEED` like the unit fuzz tests, so a failure replays.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.next() as u8).collect()
    }
}

fn env(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(default)
}

/// A bad reply, and whether the task exits after writing it: random bytes, a frame of random kind
/// and body (and tail length: within the body, or as long as it or longer), a header with a short
/// body, an empty frame (all followed by the worker's exit, so no genuine reply follows), or a
/// header over the cap (the parent kills the worker at once).
///
/// Never two frames where one is due: replies are matched to tasks by order, so an unsolicited
/// frame would be taken as the reply of the worker's next task (see the report of issue 8).
fn bad_reply(rng: &mut Rng) -> (Vec<u8>, bool) {
    let n = rng.below(40);
    let body = rng.bytes(n);
    match rng.below(5) {
        0 => (rng.bytes(1 + n), true),
        1 => {
            let mut b = vec![rng.below(6) as u8];
            b.extend(&body);
            let tail = match rng.below(3) {
                0 => 0,
                1 => rng.below(b.len() + 2),
                _ => rng.next() as u32 as usize,
            };
            (frame(&b, tail), true)
        }
        2 => {
            let mut f = header(CAP + 1 + rng.below(1 << 20), rng.below(2));
            f.extend(&body);
            (f, rng.below(2) == 0)
        }
        3 => {
            let len = n + 1 + rng.below(CAP - n);
            let mut f = header(len, rng.below(2) * rng.below(len));
            f.extend(&body);
            (f, true)
        }
        _ => (header(0, 0), true),
    }
}

#[test]
fn garbage_from_a_worker_ends_its_future_with_a_clear_error() -> Result<(), Error> {
    let pool = ProcessPoolExecutor::builder()
        .max_workers(1)
        .max_frame_bytes(CAP)
        .on_worker_death(WorkerDeath::Respawn)
        .build()?;
    let seed = env("CF_FUZZ_SEED", 0x5eed_cf0f_2026);
    let cases = (env("CF_FUZZ_CASES", 2000) / 20).clamp(10, 200);
    let mut rng = Rng(seed);
    for case in 0..cases {
        let (bytes, exit) = bad_reply(&mut rng);
        let what = format!("case {case} of seed {seed}: {bytes:02x?}, exit {exit}");
        let mut f = pool.submit(scribble, (bytes, exit))?;
        assert!(
            holds_within(LIMIT, || f.running() || f.done()),
            "{what}: never dispatched"
        );
        let worker = pool.worker_pids();
        let outcome = f.result(LIMIT);
        match &outcome {
            Err(Error::Timeout) => panic!("{what}: the future did not end"),
            // The bytes happened to be a well-formed reply of a value.
            Ok(_) => {}
            // The decoder's own message says what was wrong.
            Err(Error::Serialization(m)) => assert!(!m.is_empty(), "{what}"),
            // A panic or failure reply carries the worker's text as it came (here: garbage).
            Err(Error::Panicked(_) | Error::Failed(_)) => {}
            // The stream broke (a header over the cap, a cut frame): the worker is killed or
            // reaped, and only this task fails.
            Err(Error::WorkerDied(exit)) => assert!(exit.pid > 0, "{what}"),
            Err(other) => panic!("{what}: {other:?}"),
        }
        // The worker that wrote the garbage is reaped, and the pool carries on with a new one.
        assert!(
            holds_within(LIMIT, || pool
                .worker_pids()
                .iter()
                .all(|p| !worker.contains(p))),
            "{what}: worker {worker:?} still there"
        );
        assert_eq!(pool.submit(square, 12)?.result(LIMIT)?, 144, "{what}");
    }
    pool.shutdown(Queued::Run);
    Ok(())
}

#[test]
fn a_frame_over_the_cap_from_a_worker_breaks_a_default_pool_with_a_protocol_error(
) -> Result<(), Error> {
    let pool = ProcessPoolExecutor::builder()
        .max_workers(1)
        .max_frame_bytes(CAP)
        .build()?;
    let err = pool
        .submit(scribble, (header(u32::MAX as usize, 0), false))?
        .result(LIMIT)
        .unwrap_err();
    let Error::BrokenProcessPool(b) = &err else {
        panic!("{err:?}")
    };
    let BrokenCause::Protocol(msg) = b.cause() else {
        panic!("{err:?}")
    };
    assert!(
        msg.contains(&format!("a frame of {} bytes (the cap is {CAP})", u32::MAX)),
        "{msg}"
    );
    assert!(
        pool.submit(square, 2).is_err(),
        "a broken pool takes no work"
    );
    pool.shutdown(Queued::Run);
    Ok(())
}
