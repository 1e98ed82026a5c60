//! The edges of a thread-pool task's one allocation: a closure kept in the future's slot or beside it,
//! outputs that are zero-sized or aligned past the header, and every way a task can end without running
//! (cancelled, failed by a broken pool, refused by a closed pool, detached). Each closure's captures
//! are dropped exactly once, and each future ends. Run under valgrind memcheck too (see the crate's
//! review notes): a slot written at the wrong offset or a closure read twice shows there.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc};

use common::threads::occupy;
use common::LONG;
use concurrent_futures::{Error, Promise, Queued, ThreadPoolExecutor};

/// Counts its drops: a closure capturing one is dropped once exactly when the count goes up by one.
struct Counted(Arc<AtomicUsize>);

impl Drop for Counted {
    fn drop(&mut self) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

/// An output aligned past the task's header (16 bytes): the core, and its slot, move for it.
#[repr(align(64))]
#[derive(Debug, PartialEq)]
struct Wide([u64; 8]);

/// A capture aligned past any output's slot: the closure cannot live in the slot.
#[repr(align(128))]
struct Aligned(u64);

#[test]
fn zero_sized_outputs_and_closures_run_and_publish() {
    let pool = ThreadPoolExecutor::new(1).unwrap();
    // A closure capturing nothing, returning nothing: both zero-sized.
    let mut unit = pool.spawn(|| ()).unwrap();
    assert_eq!(unit.result(LONG).unwrap(), ());
    // A zero-sized output from a closure that captures (and drops) something.
    let drops = Arc::new(AtomicUsize::new(0));
    let counted = Counted(drops.clone());
    let mut f = pool
        .spawn(move || {
            let _keep = &counted;
        })
        .unwrap();
    f.result(LONG).unwrap();
    assert_eq!(drops.load(Ordering::SeqCst), 1);
}

#[test]
fn an_over_aligned_output_is_published_read_lent_and_taken_intact() {
    let pool = ThreadPoolExecutor::new(1).unwrap();
    let x = 7u64;
    let mut f = pool.spawn(move || Wide([x; 8])).unwrap();
    let (seen_tx, seen) = mpsc::channel();
    // Waits for publication, so that the callback below borrows the value from the slot (lent).
    assert!(f.exception(LONG).unwrap().is_none());
    f.add_done_callback(move |outcome| {
        let v = outcome.as_ref().unwrap();
        let aligned = (v as *const Wide as usize) % 64 == 0;
        seen_tx.send((v.0, aligned)).unwrap();
    });
    assert_eq!(seen.recv_timeout(LONG).unwrap(), ([7; 8], true));
    let v = f.result(LONG).unwrap();
    assert_eq!(v, Wide([7; 8]));
    assert_eq!((&v as *const Wide as usize) % 64, 0);
}

#[test]
fn a_closure_larger_or_more_aligned_than_the_slot_runs_from_beside_it() {
    let pool = ThreadPoolExecutor::new(1).unwrap();
    let big = [3u8; 4096];
    let mut f = pool
        .spawn(move || big.iter().map(|&b| u64::from(b)).sum::<u64>())
        .unwrap();
    assert_eq!(f.result(LONG).unwrap(), 3 * 4096);
    let aligned = Aligned(11);
    let mut g = pool
        .spawn(move || {
            let a = &aligned;
            ((a as *const Aligned as usize) % 128, a.0)
        })
        .unwrap();
    assert_eq!(g.result(LONG).unwrap(), (0, 11));
    // An output larger than its closure: the closure sits in the output's slot.
    let mut h = pool.spawn(move || Wide([5; 8])).unwrap();
    assert_eq!(h.result(LONG).unwrap(), Wide([5; 8]));
}

/// Queued tasks of every layout (closure in the slot, beside it, over-aligned output), cancelled one
/// by one, by a cancelling shutdown, and by a dropped handle: each closure is dropped once, at once,
/// and each future ends cancelled.
#[test]
fn queued_tasks_of_every_layout_drop_their_closure_once_when_cancelled() {
    let pool = ThreadPoolExecutor::new(1).unwrap();
    let (_busy, release) = occupy(&pool);
    let drops = Arc::new(AtomicUsize::new(0));
    let spawn_three = || {
        let (a, b, c) = (
            Counted(drops.clone()),
            Counted(drops.clone()),
            Counted(drops.clone()),
        );
        let big = [1u8; 512];
        vec![
            pool.spawn(move || {
                let _keep = &a;
                Wide([1; 8])
            })
            .unwrap(),
            pool.spawn(move || {
                let _keep = (&b, big);
                Wide([2; 8])
            })
            .unwrap(),
            pool.spawn(move || {
                let _keep = &c;
                Wide([3; 8])
            })
            .unwrap(),
        ]
    };
    let by_hand = spawn_three();
    for f in &by_hand {
        assert!(f.cancel());
    }
    assert_eq!(drops.load(Ordering::SeqCst), 3);
    for f in &by_hand {
        assert!(f.cancel() && f.cancelled());
    }
    // Through a handle that outlives its future: the queue still holds the task.
    let by_handle = spawn_three();
    let handles: Vec<_> = by_handle.iter().map(|f| f.handle()).collect();
    drop(by_handle);
    assert_eq!(drops.load(Ordering::SeqCst), 3);
    for h in &handles {
        assert!(h.cancel() && h.cancelled());
    }
    assert_eq!(drops.load(Ordering::SeqCst), 6);
    let by_shutdown = spawn_three();
    pool.shutdown_nowait(Queued::Cancel);
    assert_eq!(drops.load(Ordering::SeqCst), 9);
    for mut f in by_shutdown {
        assert!(matches!(f.result(LONG), Err(Error::Cancelled)));
    }
    drop(release);
    pool.shutdown(Queued::Run);
    // The handles outlive every task: they read as finished, and cancel nothing.
    for h in &handles {
        assert!(h.done() && !h.cancel());
    }
}

/// A broken pool fails its queued tasks, and a closed one refuses new ones: either way each closure
/// (in the slot or beside it) is dropped once, and no future is left pending.
#[test]
fn failed_and_refused_tasks_drop_their_closure_once() {
    // The initializer fails only once both tasks are queued: failing at once, it could break the
    // pool before the second submit, which would then be refused rather than failed.
    let queued = Arc::new(std::sync::Barrier::new(2));
    let gate = queued.clone();
    let pool = ThreadPoolExecutor::builder()
        .max_workers(1)
        .initializer(move || {
            gate.wait();
            Err::<(), _>("no".to_string())
        })
        .build()
        .unwrap();
    let drops = Arc::new(AtomicUsize::new(0));
    let (a, b) = (Counted(drops.clone()), Counted(drops.clone()));
    let big = [0u8; 256];
    let mut small = pool
        .spawn(move || {
            let _keep = &a;
            1u64
        })
        .unwrap();
    let mut large = pool
        .spawn(move || {
            let _keep = (&b, big);
            2u8
        })
        .unwrap();
    queued.wait();
    assert!(matches!(
        small.result(LONG),
        Err(Error::BrokenThreadPool(_))
    ));
    assert!(matches!(
        large.result(LONG),
        Err(Error::BrokenThreadPool(_))
    ));
    assert_eq!(drops.load(Ordering::SeqCst), 2);

    let pool = ThreadPoolExecutor::new(1).unwrap();
    pool.shutdown(Queued::Run);
    let (a, b) = (Counted(drops.clone()), Counted(drops.clone()));
    assert!(pool
        .spawn(move || {
            let _keep = &a;
            Wide([0; 8])
        })
        .is_err());
    assert!(pool
        .spawn(move || {
            let _keep = (&b, big);
            0u8
        })
        .is_err());
    assert_eq!(drops.load(Ordering::SeqCst), 4);
    // `try_spawn` hands a refused closure back, whichever way it was kept, and drops it not.
    let (a, b) = (Counted(drops.clone()), Counted(drops.clone()));
    let in_slot = pool
        .try_spawn(move || {
            let _keep = &a;
            Wide([0; 8])
        })
        .unwrap_err();
    let beside = pool
        .try_spawn(move || {
            let _keep = (&b, big);
            0u8
        })
        .unwrap_err();
    assert_eq!(drops.load(Ordering::SeqCst), 4);
    drop((in_slot, beside));
    assert_eq!(drops.load(Ordering::SeqCst), 6);
}

/// A detached task's over-aligned value is dropped by the worker, once; its handle still answers.
#[test]
fn a_detached_task_drops_its_value_once_and_its_handle_outlives_it() {
    let pool = ThreadPoolExecutor::new(1).unwrap();
    let drops = Arc::new(AtomicUsize::new(0));
    let d = drops.clone();
    let (ran_tx, ran) = mpsc::channel();
    let f = pool
        .spawn(move || {
            ran_tx.send(()).unwrap();
            (Wide([9; 8]), Counted(d))
        })
        .unwrap();
    let handle = f.handle();
    drop(f);
    ran.recv_timeout(LONG).unwrap();
    pool.shutdown(Queued::Run);
    assert_eq!(drops.load(Ordering::SeqCst), 1);
    assert!(handle.done() && !handle.cancelled() && !handle.cancel());
}

/// A promise dropped unresolved ends its future `Abandoned`, whatever its output's layout; and a
/// promise of a borrowed value lives within the borrow (the thin pointer names its output).
#[test]
fn promises_of_every_layout_end_their_futures() {
    let (p, mut f) = Promise::<Wide>::new();
    drop(p);
    assert!(matches!(f.result(LONG), Err(Error::Abandoned)));
    let (p, mut f) = Promise::<()>::new();
    drop(p);
    assert!(matches!(f.result(LONG), Err(Error::Abandoned)));
    let (p, mut f) = Promise::<Wide>::new();
    p.set_result(Wide([4; 8])).unwrap();
    drop(p);
    assert_eq!(f.result(LONG).unwrap(), Wide([4; 8]));

    let text = String::from("borrowed");
    let (p, mut f) = Promise::<&str>::new();
    p.set_result(&text).unwrap();
    assert_eq!(f.result(LONG).unwrap(), "borrowed");
    drop((p, f));
    drop(text);
}
