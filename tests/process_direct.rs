//! A worker sends a result holding large byte blocks straight from the value (`wire/direct.rs`):
//! the parent must see exactly the value, whatever sits around the blocks, and a result whose
//! encoding changes while it is being sent must fail its future, never hang it.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};

use common::LONG;
use concurrent_futures::{ByteBlock, Error, ProcessPoolExecutor, Queued};
use serde::{Deserialize, Serialize, Serializer};

#[derive(Serialize, Deserialize, Debug, PartialEq)]
struct Parts {
    name: String,
    big: ByteBlock,
    n: u32,
    plain: Vec<u8>,
    tail: Option<u8>,
}

fn parts(seed: u8) -> Parts {
    Parts {
        name: format!("seed {seed}"),
        big: (0..1 << 20).map(|i: u32| (i as u8) ^ seed).collect(),
        n: u32::from(seed) * 1000,
        plain: vec![seed; 200_000],
        tail: Some(seed),
    }
}

/// Runs in the worker.
fn make(seed: u8) -> Parts {
    parts(seed)
}

/// Runs in the worker: a chunk's items are built in the frame buffer, large or not.
fn block(len: usize) -> ByteBlock {
    ByteBlock::from(vec![7; len])
}

#[test]
fn large_results_arrive_whole_and_in_order() -> Result<(), Error> {
    let pool = ProcessPoolExecutor::new(1)?;
    for seed in [1, 2, 3] {
        assert_eq!(pool.submit(make, seed)?.result(LONG)?, parts(seed));
    }
    // Small and large, one after the other on the same worker.
    let sizes = [0, 10, 1 << 16, (1 << 16) - 1, 1 << 20, 3];
    for len in sizes {
        assert_eq!(pool.submit(block, len)?.result(LONG)?.len(), len);
    }
    let lens: Vec<usize> = pool
        .map(block, sizes)?
        .into_iter()
        .map(|b| b.map(|b| b.len()))
        .collect::<Result<_, _>>()?;
    assert_eq!(lens, sizes);
    pool.shutdown(Queued::Run);
    Ok(())
}

/// Each time it is serialized (in the worker), its block grows by one byte.
struct Growing;

static RUNS: AtomicUsize = AtomicUsize::new(0);

impl Serialize for Growing {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let n = RUNS.fetch_add(1, Ordering::Relaxed);
        s.serialize_bytes(&vec![1; (1 << 20) + n])
    }
}

impl<'de> Deserialize<'de> for Growing {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        ByteBlock::deserialize(d).map(|_| Growing)
    }
}

fn growing(_: ()) -> Growing {
    Growing
}

#[test]
fn a_result_that_changes_size_while_sent_fails_its_future() -> Result<(), Error> {
    let pool = ProcessPoolExecutor::new(1)?;
    let e = pool
        .submit(growing, ())?
        .result(LONG)
        .map(|_| ())
        .unwrap_err();
    // The parent reads a frame of the announced length, which ends inside the block: the future
    // fails to decode it. The worker, out of step, stops; the pool then treats it as a dead worker.
    assert!(
        matches!(
            e,
            Error::Serialization(_) | Error::BrokenProcessPool(_) | Error::WorkerDied(_)
        ),
        "{e:?}"
    );
    let next = pool.submit(make, 1).and_then(|mut f| f.result(LONG));
    assert!(!matches!(next, Err(Error::Timeout)), "{next:?}");
    pool.shutdown(Queued::Run);
    Ok(())
}
