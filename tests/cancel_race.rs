//! Stress: `cancel()` racing the workers (CPython items 3, 22–27, 38; DESIGN: "one atomic transition
//! decides the race between cancel() and a worker starting the task").
//!
//! 10,000 short tasks go to a pool of 4 workers in batches; after each batch, three threads cancel
//! random futures (mostly from the batch the workers are draining right now, some from anywhere,
//! some twice) while the workers run. A constant-seeded xorshift PRNG picks the victims, so every run
//! makes the same choices (the interleaving with the workers still varies, which is the point).
//!
//! Afterwards every future must have ended exactly once, in the right state:
//! `cancel()` returned true ⇔ the task never ran ⇔ the result is `Err(Cancelled)`; no `cancel()` call
//! on one future returned true while another returned false; every done callback ran exactly once
//! with the matching outcome; nothing is left pending; and the pool's metrics agree.

use std::hint::black_box;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::Duration;

use concurrent_futures::{wait, Error, PoolFuture, Queued, ThreadPoolExecutor};

const TASKS: usize = 10_000;
const WORKERS: usize = 4;
const BATCH: usize = 500;
/// Cancel attempts per canceller thread per batch.
const CANCELS: usize = 60;
const CANCELLERS: usize = 3;

/// Marsaglia's xorshift64: tiny, deterministic, good enough to pick victims.
struct XorShift(u64);

impl XorShift {
    fn new(seed: u64) -> Self {
        XorShift(seed.max(1))
    }
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

const NO_OUTCOME: u8 = 0;
const VALUE: u8 = 1;
const CANCELLED: u8 = 2;
const OTHER: u8 = 3;

/// What happened to one task, recorded from every thread involved.
#[derive(Default)]
struct Record {
    /// Times the task's closure ran.
    runs: AtomicUsize,
    /// Some `cancel()` on it returned true / false.
    cancel_true: AtomicBool,
    cancel_false: AtomicBool,
    /// The callback added right after submit: calls, and the outcome it saw.
    early_calls: AtomicUsize,
    early_outcome: AtomicU8,
    /// The callback added after everything ended (runs at once, on the test thread).
    late_calls: AtomicUsize,
    late_outcome: AtomicU8,
}

fn classify(outcome: &Result<usize, Error>, i: usize) -> u8 {
    match outcome {
        Ok(v) if *v == i => VALUE,
        Err(Error::Cancelled) => CANCELLED,
        _ => OTHER,
    }
}

fn cancel_and_record(futures: &[PoolFuture<usize>], records: &[Record], i: usize) {
    if futures[i].cancel() {
        records[i].cancel_true.store(true, Ordering::SeqCst);
    } else {
        records[i].cancel_false.store(true, Ordering::SeqCst);
    }
}

/// Random cancels: 3 in 4 from the batch `[batch_start, len)`, the rest from anywhere; sometimes the
/// same future twice in a row.
fn cancel_some(futures: &[PoolFuture<usize>], records: &[Record], batch_start: usize, seed: u64) {
    let mut rng = XorShift::new(seed);
    let len = futures.len();
    for _ in 0..CANCELS {
        let i = if rng.below(4) == 0 {
            rng.below(len)
        } else {
            batch_start + rng.below(len - batch_start)
        };
        cancel_and_record(futures, records, i);
        if rng.below(8) == 0 {
            cancel_and_record(futures, records, i);
        }
    }
}

#[test]
fn random_cancels_race_the_workers() {
    let pool = ThreadPoolExecutor::new(WORKERS).unwrap();
    let records: Arc<Vec<Record>> = Arc::new((0..TASKS).map(|_| Record::default()).collect());
    let mut futures: Vec<PoolFuture<usize>> = Vec::with_capacity(TASKS);

    for batch in 0..TASKS / BATCH {
        let batch_start = futures.len();
        for i in batch_start..batch_start + BATCH {
            let recs = records.clone();
            let f = pool
                .spawn(move || {
                    recs[i].runs.fetch_add(1, Ordering::SeqCst);
                    // A little work of varying length, so that cancels land while tasks are queued,
                    // starting and running.
                    let mut x = i as u64;
                    for _ in 0..(i % 16) * 50 {
                        x = black_box(x.wrapping_mul(6364136223846793005).wrapping_add(1));
                    }
                    black_box(x);
                    i
                })
                .unwrap();
            let recs = records.clone();
            // Added at once: depending on the race it runs on a worker, on a canceller, or here.
            f.add_done_callback(move |outcome| {
                recs[i]
                    .early_outcome
                    .store(classify(outcome, i), Ordering::SeqCst);
                recs[i].early_calls.fetch_add(1, Ordering::SeqCst);
            });
            futures.push(f);
        }
        let (futures, records) = (&futures[..], &records[..]);
        thread::scope(|s| {
            for t in 1..CANCELLERS {
                let seed =
                    0x9E37_79B9_7F4A_7C15 ^ ((batch * 16 + t) as u64).wrapping_mul(0x2545_F491);
                s.spawn(move || cancel_some(futures, records, batch_start, seed));
            }
            cancel_some(
                futures,
                records,
                batch_start,
                0xD1B5_4A32_D192_ED03 ^ batch as u64,
            );
        });
    }

    // Every task is dequeued (run or skipped) before shutdown returns.
    pool.shutdown(Queued::Run);

    let d = wait(&futures).timeout(Duration::ZERO).blocking();
    assert!(
        d.not_done.is_empty(),
        "{} futures left pending",
        d.not_done.len()
    );

    let mut cancelled = 0;
    for (i, (f, r)) in futures.iter_mut().zip(records.iter()).enumerate() {
        let runs = r.runs.load(Ordering::SeqCst);
        let ct = r.cancel_true.load(Ordering::SeqCst);
        let cf = r.cancel_false.load(Ordering::SeqCst);
        assert!(
            !(ct && cf),
            "task {i}: cancel() returned both true and false"
        );
        assert!(runs <= 1, "task {i} ran {runs} times");
        assert_eq!(
            runs == 0,
            ct,
            "task {i}: cancel() true ⇔ never ran (runs {runs})"
        );
        assert!(f.done() && !f.running(), "task {i} not ended: {f:?}");
        assert_eq!(f.cancelled(), ct, "task {i}: {f:?}");
        assert_eq!(f.cancel(), ct, "task {i}: a later cancel() agrees");

        let expected = if ct { CANCELLED } else { VALUE };
        assert_eq!(
            r.early_calls.load(Ordering::SeqCst),
            1,
            "task {i}: early callback calls"
        );
        assert_eq!(
            r.early_outcome.load(Ordering::SeqCst),
            expected,
            "task {i}: early outcome"
        );

        let recs = records.clone();
        f.add_done_callback(move |outcome| {
            recs[i]
                .late_outcome
                .store(classify(outcome, i), Ordering::SeqCst);
            recs[i].late_calls.fetch_add(1, Ordering::SeqCst);
        });
        assert_eq!(
            r.late_calls.load(Ordering::SeqCst),
            1,
            "task {i}: late callback ran at once"
        );
        assert_eq!(
            r.late_outcome.load(Ordering::SeqCst),
            expected,
            "task {i}: late outcome"
        );
        assert_ne!(r.late_outcome.load(Ordering::SeqCst), NO_OUTCOME);

        match f.result(Duration::ZERO) {
            Ok(v) => {
                assert!(!ct, "task {i}: cancelled but gave a value");
                assert_eq!(v, i);
            }
            Err(Error::Cancelled) => {
                assert!(ct, "task {i}: Cancelled without a successful cancel()")
            }
            Err(e) => panic!("task {i}: unexpected {e:?}"),
        }
        if ct {
            cancelled += 1;
        }
    }

    // The race was real: some cancels won, some lost, and most tasks ran.
    let lost = records
        .iter()
        .filter(|r| r.cancel_false.load(Ordering::SeqCst))
        .count();
    eprintln!("{cancelled} tasks cancelled, {lost} with a failed cancel(), of {TASKS}");
    assert!(cancelled > 0, "no cancel() succeeded");
    assert!(lost > 0, "no cancel() failed");
    assert!(cancelled < TASKS);

    let m = pool.metrics();
    assert_eq!(m.cancelled as usize, cancelled, "skipped by workers");
    assert_eq!(m.completed as usize, TASKS - cancelled, "ran");
    assert_eq!(m.panicked, 0);
    assert_eq!(m.queued, 0);
    assert_eq!(m.running, 0);
}
