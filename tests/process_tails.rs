//! A large byte block at the end of an argument or a result travels as its frame's tail (`wire.rs`):
//! the receiving side reads it straight into the value's own allocation. Every shape of value that
//! ends with one must arrive exactly, whatever reads it (a `ByteBlock`, a `Vec<u8>`, a string, a type
//! whose `Deserialize` reads it another way), and a worker that stops in the middle of a tail must
//! fail its future, never leave it pending.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};

use common::LONG;
use concurrent_futures::{ByteBlock, Error, ProcessPoolExecutor, Queued, WorkerDeath};
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
