//! A large byte block at the end of an argument or a result travels as its frame's tail (`wire.rs`):
//! the receiving side reads it straight into the value's own allocation. Every shape of value that
//! ends with one must arrive exactly, whatever reads it (a `ByteBlock`, a `Vec<u8>`, a string, a type
//! whose `Deserialize` reads it another way), and a worker that stops in the middle of a tail must
//! fail its future, never leave it pending.
//!
//! Whoever reads a reply reads it in its own way: a caller blocked in `result(None)` with blocking
//! reads that wait for a frame's whole rest once its header has come, a caller with a deadline and
//! the driver (an awaited future) without blocking. Each must get every size exactly, around where
//! the first read of a frame ends (64 KiB with the header) and where a tail starts.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};

use common::process::{assert_all_gone, shutdown_bounded, Gate};
use common::threads::{current_tid, spawn_bounded};
use common::LONG;
use concurrent_futures::{ByteBlock, Error, PoolFuture, ProcessPoolExecutor, Queued, WorkerDeath};
use serde::{Deserialize, Serialize, Serializer};

fn pattern(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31) ^ seed)
        .collect()
}

/// Runs in the worker: echoes, so both directions carry the tail.
fn echo_block(b: ByteBlock) -> ByteBlock {
    b
}

fn echo_vec(v: Vec<u8>) -> Vec<u8> {
    v
}

fn echo_pair(p: (u32, ByteBlock)) -> (u32, ByteBlock) {
    (p.0 + 1, p.1)
}

fn echo_string(s: String) -> String {
    s
}

/// Ends with a block, but its first block (not the last) is also large: only the last is a tail.
#[derive(Serialize, Deserialize, Debug, PartialEq, Clone)]
struct TwoBlocks {
    first: ByteBlock,
    label: String,
    last: Vec<u8>,
}

fn echo_two(t: TwoBlocks) -> TwoBlocks {
    t
}

/// Written as one byte string, read back as a sequence of `u8` one by one (a `Vec<u8>` inside an
/// `Option`, which the pool's block shortcut cannot name): the tail is read as plain bytes.
#[derive(Serialize, Deserialize, Debug, PartialEq)]
struct Wrapped(Option<Vec<u8>>);

fn echo_wrapped(w: Wrapped) -> Wrapped {
    w
}

#[test]
fn values_ending_with_a_large_block_arrive_exactly() -> Result<(), Error> {
    let pool = ProcessPoolExecutor::new(1)?;
    // Around the threshold (64 KiB) and well above it, both directions.
    for len in [
        (64 << 10) - 1,
        64 << 10,
        (64 << 10) + 1,
        1 << 20,
        (3 << 20) + 7,
    ] {
        let b = ByteBlock::from(pattern(len, 1));
        assert_eq!(
            pool.submit(echo_block, b.clone())?.result(LONG)?,
            b,
            "{len}"
        );
        let v = pattern(len, 2);
        assert_eq!(pool.submit(echo_vec, v.clone())?.result(LONG)?, v, "{len}");
        let p = (7, ByteBlock::from(pattern(len, 3)));
        let back = pool.submit(echo_pair, p.clone())?.result(LONG)?;
        assert_eq!(back, (8, p.1), "{len}");
        let s: String = "ß-tail ".repeat(len / 8);
        assert_eq!(pool.submit(echo_string, s.clone())?.result(LONG)?, s);
    }
    let t = TwoBlocks {
        first: ByteBlock::from(pattern(1 << 20, 4)),
        label: "between".into(),
        last: pattern(200_000, 5),
    };
    assert_eq!(pool.submit(echo_two, t.clone())?.result(LONG)?, t);
    let w = Wrapped(Some(pattern(100_000, 6)));
    assert_eq!(
        pool.submit(echo_wrapped, Wrapped(Some(pattern(100_000, 6))))?
            .result(LONG)?,
        w
    );
    // Small values still work on the same worker afterwards.
    assert_eq!(
        pool.submit(echo_vec, vec![1, 2, 3])?.result(LONG)?,
        [1, 2, 3]
    );
    pool.shutdown(Queued::Run);
    Ok(())
}

/// Each time it is serialized (in the worker), its block is one byte shorter: the worker announces
/// a tail of the size it counted, then sends fewer bytes and stops, out of step.
struct Shrinking;

static RUNS: AtomicUsize = AtomicUsize::new(0);

impl Serialize for Shrinking {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let n = RUNS.fetch_add(1, Ordering::Relaxed);
        s.serialize_bytes(&vec![1; (1 << 20) - n])
    }
}

impl<'de> Deserialize<'de> for Shrinking {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        ByteBlock::deserialize(d).map(|_| Shrinking)
    }
}

fn shrinking(_: ()) -> Shrinking {
    Shrinking
}

#[test]
fn a_worker_that_stops_inside_a_tail_fails_its_future() -> Result<(), Error> {
    for policy in [WorkerDeath::BreakPool, WorkerDeath::Respawn] {
        let pool = ProcessPoolExecutor::builder()
            .max_workers(1)
            .on_worker_death(policy)
            .build()?;
        let e = pool
            .submit(shrinking, ())?
            .result(LONG)
            .map(|_| ())
            .unwrap_err();
        // The parent is left reading a tail that never completes, then sees the worker's end.
        assert!(
            matches!(e, Error::BrokenProcessPool(_) | Error::WorkerDied(_)),
            "{policy:?}: {e:?}"
        );
        let next = pool
            .submit(echo_vec, vec![9; 10])
            .and_then(|mut f| f.result(LONG));
        match policy {
            WorkerDeath::Respawn => assert_eq!(next?, [9; 10]),
            _ => assert!(matches!(next, Err(Error::BrokenProcessPool(_))), "{next:?}"),
        }
        pool.shutdown(Queued::Run);
    }
    Ok(())
}

/// How a test waits for a result, which decides who reads its reply.
#[derive(Clone, Copy, Debug)]
enum Wait {
    /// `result(None)`: the caller reads the reply itself, blocking.
    Blocking,
    /// `result(Some(_))`: the caller reads it without blocking, between polls.
    Bounded,
    /// `.await` on a tokio runtime: the worker's driver reads it.
    Awaited,
}

fn outcome<T: Send + 'static>(mut f: PoolFuture<T>, wait: Wait) -> Result<T, Error> {
    match wait {
        // On a thread of its own: a read that waited for bytes never sent would hang the test.
        Wait::Blocking => spawn_bounded(move || f.result(None)).join(),
        Wait::Bounded => f.result(LONG),
        Wait::Awaited => spawn_bounded(move || {
            tokio::runtime::Builder::new_current_thread()
                .enable_time()
                .build()
                .unwrap()
                .block_on(f)
        })
        .join(),
    }
}

#[test]
fn every_size_around_the_read_edges_arrives_whoever_reads_it() -> Result<(), Error> {
    // A `RUN` frame is 28 bytes more than a block argument of 16 KiB to 2 MiB (header, kind, two
    // code offsets, a 3-byte length), a `VALUE` reply 12 more: these sizes end the frame one byte
    // before, at and after the first read's 64 KiB, then cross the tail threshold (64 KiB).
    let edge = 64 << 10;
    let mut sizes = vec![0, 1, 127, 128];
    for framing in [28, 12, 0] {
        sizes.extend([edge - framing - 1, edge - framing, edge - framing + 1]);
    }
    sizes.extend([1 << 20, (1 << 20) + 1]);
    let pool = ProcessPoolExecutor::new(1)?;
    for wait in [Wait::Blocking, Wait::Bounded, Wait::Awaited] {
        for &len in &sizes {
            let b = ByteBlock::from(pattern(len, len as u8));
            let back = outcome(pool.submit(echo_block, b.clone())?, wait)?;
            assert!(
                back == b,
                "{wait:?}: a block of {len} bytes came back as {}",
                back.len()
            );
            let v = pattern(len, 9);
            let back = outcome(pool.submit(echo_vec, v.clone())?, wait)?;
            assert!(
                back == v,
                "{wait:?}: a Vec of {len} bytes came back as {}",
                back.len()
            );
        }
    }
    pool.shutdown(Queued::Run);
    Ok(())
}

/// Forks a process that keeps the worker's end of the channel open (and reports its pid through
/// `pids`), waits at `go`, then returns a value whose reply stops inside its tail.
fn fork_then_shrink((pids, go): (String, String)) -> Shrinking {
    common::process::fork_keeping_descriptors(&pids);
    common::process::task_wait(&go);
    Shrinking
}

/// Whether thread `tid` of this process is asleep in `recvfrom` (the blocking reply read), up to
/// [`LONG`].
fn asleep_in_recv(tid: i32) -> bool {
    let end = std::time::Instant::now() + LONG;
    while std::time::Instant::now() < end {
        let syscall = std::fs::read_to_string(format!("/proc/self/task/{tid}/syscall"));
        let nr = syscall.as_deref().unwrap_or("").split_whitespace().next();
        if nr == Some(&libc::SYS_recvfrom.to_string()) && common::threads::wait_until_asleep(tid) {
            return true;
        }
        std::thread::sleep(std::time::Duration::from_micros(200));
    }
    false
}

/// A process killed when this drops, also when the test fails before it is done with it.
struct Killed(u32);

impl Drop for Killed {
    fn drop(&mut self) {
        common::process::kill(self.0, libc::SIGKILL);
    }
}

/// The worker announces a 1 MiB tail, sends all but its last byte and exits, while a process its
/// task forked keeps its end of the channel open: the socket never ends, so a caller blocked reading
/// the rest of the frame is freed only by the driver, which sees the worker exit. Its future fails
/// with the death; it must not wait for the missing byte.
#[test]
fn a_worker_that_stops_inside_a_tail_fails_a_caller_blocked_on_it() -> Result<(), Error> {
    for policy in [WorkerDeath::BreakPool, WorkerDeath::Respawn] {
        let pool = ProcessPoolExecutor::builder()
            .max_workers(1)
            .on_worker_death(policy)
            .build()?;
        let worker = pool.submit(common::process::pid, ())?.result(LONG)?;
        let (pids, mut go) = (Gate::new(), Gate::new());
        let mut f = pool.submit(fork_then_shrink, (pids.path(), go.path()))?;
        let kept = Killed(pids.receive().trim().parse().unwrap());
        // The task runs (its future is RUNNING): a caller now reads the reply itself.
        let (tid_tx, tid_rx) = std::sync::mpsc::channel();
        let caller = spawn_bounded(move || {
            tid_tx.send(current_tid()).unwrap();
            f.result(None).map(|_| ())
        });
        let tid = tid_rx.recv().unwrap();
        assert!(
            asleep_in_recv(tid),
            "{policy:?}: the caller never read the reply itself"
        );
        go.wait_started();
        go.release();
        let e = caller.join().unwrap_err();
        let kept_pid = kept.0;
        drop(kept);
        assert!(
            matches!(e, Error::BrokenProcessPool(_) | Error::WorkerDied(_)),
            "{policy:?}: {e:?}"
        );
        shutdown_bounded(&pool);
        assert_all_gone(&[worker, kept_pid]);
    }
    Ok(())
}
