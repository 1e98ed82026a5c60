//! User code that panics while being dropped: a task's captured values dropped unrun (cancelled,
//! failed by a broken pool), a detached task's value dropped by the worker that made it. A panicking
//! `Drop` is the user's bug, but it must not take a pool thread down, strand queued tasks, nor stop a
//! shutdown, a broken pool or a dropped `map` from ending the other futures it is ending.

mod common;

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::{mpsc, Mutex};

use common::threads::{occupy, Gate};
use common::LONG;
use concurrent_futures::{CompletionSet, Error, MapOptions, Queued, ThreadPoolExecutor};
use serde::{Deserialize, Serialize};

/// Panics when dropped (but not while the thread is already unwinding, which would abort).
#[derive(Serialize, Deserialize, Debug)]
struct Bomb;

impl Drop for Bomb {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            panic!("a Bomb was dropped");
        }
    }
}

#[test]
fn a_detached_value_whose_drop_panics_does_not_strand_the_queue() {
    let pool = ThreadPoolExecutor::new(1).unwrap();
    let gate = Gate::default();
    let _open = gate.guard();
    let (started_tx, started) = mpsc::channel();
    let g = gate.clone();
    let bomb = pool
        .spawn(move || {
            started_tx.send(()).unwrap();
            g.wait();
            Bomb
        })
        .unwrap();
    started.recv().unwrap();
    // Detached: the worker that makes the value is the one that drops it.
    drop(bomb);
    let mut behind = pool.spawn(|| 7).unwrap();
    gate.open();
    assert_eq!(
        behind.result(LONG).unwrap(),
        7,
        "the task queued behind was stranded"
    );
    assert_eq!(pool.metrics().workers, 1, "the worker thread died");
}

#[test]
fn shutdown_cancel_ends_every_queued_task_when_a_closure_drop_panics() {
    let pool = ThreadPoolExecutor::new(1).unwrap();
    let (_busy, release) = occupy(&pool);
    let bomb = Bomb;
    let first = pool
        .spawn(move || {
            let _keep = &bomb;
        })
        .unwrap();
    let mut second = pool.spawn(|| 2).unwrap();
    let closed = catch_unwind(AssertUnwindSafe(|| pool.shutdown_nowait(Queued::Cancel)));
    assert!(closed.is_ok(), "the closure's panic escaped the shutdown");
    assert!(first.cancelled());
    assert!(
        matches!(second.result(LONG), Err(Error::Cancelled)),
        "the task queued behind the panicking closure was not cancelled"
    );
    drop(release);
    pool.shutdown(Queued::Run);
    assert_eq!(pool.metrics().cancelled, 2);
}

/// A pool whose initializer waits for `gate` and then fails, with three tasks queued meanwhile; the
/// middle one captures a [`Bomb`].
fn broken_pool_with_a_bomb_queued() -> Vec<concurrent_futures::PoolFuture<u8>> {
    let init_gate = Gate::default();
    let (init_started_tx, init_started) = mpsc::channel();
    let init_started_tx = Mutex::new(init_started_tx);
    let g = init_gate.clone();
    let pool = ThreadPoolExecutor::builder()
        .max_workers(1)
        .initializer(move || {
            init_started_tx.lock().unwrap().send(()).unwrap();
            g.wait();
            Err::<(), _>("no database")
        })
        .build()
        .unwrap();
    let mut queued = vec![pool.spawn(|| 0).unwrap()];
    init_started.recv().unwrap();
    let bomb = Bomb;
    queued.push(
        pool.spawn(move || {
            let _keep = &bomb;
            1
        })
        .unwrap(),
    );
    queued.push(pool.spawn(|| 2).unwrap());
    init_gate.open();
    queued
}

#[test]
fn a_broken_pool_fails_the_tasks_queued_behind_a_closure_whose_drop_panics() {
    let mut queued = broken_pool_with_a_bomb_queued();
    for i in [0, 2] {
        assert!(
            matches!(queued[i].result(LONG), Err(Error::BrokenThreadPool(_))),
            "task {i} did not fail with the broken pool"
        );
    }
}

#[test]
fn a_broken_pool_fails_the_task_whose_closure_drop_panics() {
    let mut queued = broken_pool_with_a_bomb_queued();
    assert!(matches!(
        queued[1].result(LONG),
        Err(Error::BrokenThreadPool(_))
    ));
}

#[test]
fn a_cancel_whose_closure_drop_panics_still_cancels_the_future() {
    let pool = ThreadPoolExecutor::new(1).unwrap();
    let (_busy, release) = occupy(&pool);
    let bomb = Bomb;
    let mut f = pool.spawn(move || drop(bomb)).unwrap();
    let cancelled = catch_unwind(AssertUnwindSafe(|| f.cancel()));
    assert!(
        matches!(cancelled, Ok(true)),
        "the closure's panic escaped cancel(), or the cancel failed"
    );
    assert!(f.cancelled() && f.done(), "the future was left unsettled");
    assert!(matches!(f.result(LONG), Err(Error::Cancelled)));
    drop(release);
}

/// A map task that defuses its input.
fn keep(b: Bomb) -> u8 {
    std::mem::forget(b);
    0
}

#[test]
fn a_dropped_map_cancels_every_task_when_an_input_drop_panics() {
    let pool = ThreadPoolExecutor::new(1).unwrap();
    let (_busy, release) = occupy(&pool);
    let map = pool
        .map_with(keep, [Bomb, Bomb, Bomb], MapOptions::new())
        .unwrap();
    let dropped = catch_unwind(AssertUnwindSafe(|| drop(map)));
    assert!(dropped.is_ok(), "an input's panic escaped the map's drop");
    drop(release);
    pool.shutdown(Queued::Run);
    assert_eq!(
        pool.metrics().completed,
        1,
        "a map task ran after the map was dropped"
    );
    assert_eq!(pool.metrics().cancelled, 3);
}

#[test]
fn a_cancelling_completion_set_cancels_every_task_when_a_closure_drop_panics() {
    let pool = ThreadPoolExecutor::new(1).unwrap();
    let (_busy, release) = occupy(&pool);
    let mut set = CompletionSet::new().cancel_on_drop();
    let mut handles = Vec::new();
    for _ in 0..3 {
        let bomb = Bomb;
        let f = pool
            .spawn(move || {
                std::mem::forget(bomb);
            })
            .unwrap();
        handles.push(f.handle());
        set.push(f);
    }
    let dropped = catch_unwind(AssertUnwindSafe(|| drop(set)));
    assert!(dropped.is_ok(), "a closure's panic escaped the set's drop");
    assert!(handles.iter().all(|h| h.cancelled()));
    drop(release);
}

/// A value that, when dropped, runs a task on its pool and waits for it.
struct SubmitOnDrop(ThreadPoolExecutor, mpsc::Sender<Result<u8, String>>);

impl Drop for SubmitOnDrop {
    fn drop(&mut self) {
        let got = self.0.spawn(|| 2).and_then(|mut f| f.result(LONG));
        let _ = self.1.send(got.map_err(|e| e.to_string()));
    }
}

#[test]
fn a_detached_value_whose_drop_waits_on_the_same_pool_gets_another_worker() {
    let pool = ThreadPoolExecutor::new(2).unwrap();
    let (release, gate) = mpsc::channel::<()>();
    let (got_tx, got) = mpsc::channel();
    let own = pool.clone();
    let f = pool
        .spawn(move || {
            gate.recv().unwrap();
            SubmitOnDrop(own, got_tx)
        })
        .unwrap();
    // Detached: the worker that made the value drops it, counted idle meanwhile.
    drop(f);
    release.send(()).unwrap();
    assert_eq!(got.recv().unwrap(), Ok(2));
}
