//! Idle worker threads retire after the pool's keep-alive, and the pool starts threads again on
//! demand; no task or wake-up is lost to a retiring thread.

mod common;

use std::time::Duration;

use common::eventually;
use concurrent_futures::ThreadPoolExecutor;

#[test]
fn idle_threads_retire_after_the_keep_alive_and_come_back_on_demand() {
    let pool = ThreadPoolExecutor::builder()
        .max_workers(2)
        .keep_alive(Duration::from_millis(20))
        .build()
        .unwrap();
    let mut a = pool.spawn(|| 1).unwrap();
    let mut b = pool.spawn(|| 2).unwrap();
    assert_eq!(a.result(None).unwrap() + b.result(None).unwrap(), 3);
    eventually("every idle worker retired", || pool.metrics().workers == 0);
    let m = pool.metrics();
    assert_eq!((m.idle, m.running, m.queued), (0, 0, 0));
    // The pool works as before: a submit starts a thread again.
    assert_eq!(pool.spawn(|| 3).unwrap().result(None).unwrap(), 3);
    assert!(pool.metrics().workers >= 1);
    pool.shutdown(Default::default());
    assert_eq!(pool.metrics().workers, 0);
}

#[test]
fn a_zero_keep_alive_loses_no_task_while_threads_come_and_go() {
    let pool = ThreadPoolExecutor::builder()
        .max_workers(3)
        .keep_alive(Duration::ZERO)
        .build()
        .unwrap();
    for round in 0..200u64 {
        let futs: Vec<_> = (0..(round % 5 + 1))
            .map(|i| pool.spawn(move || round * 10 + i).unwrap())
            .collect();
        for (i, mut f) in futs.into_iter().enumerate() {
            assert_eq!(
                f.result(Some(Duration::from_secs(20))).unwrap(),
                round * 10 + i as u64
            );
        }
    }
    let m = pool.metrics();
    assert_eq!(m.completed, (0..200u64).map(|r| r % 5 + 1).sum::<u64>());
    pool.shutdown(Default::default());
}

#[test]
fn a_shutdown_with_retired_threads_returns() {
    let pool = ThreadPoolExecutor::builder()
        .max_workers(2)
        .keep_alive(Duration::from_millis(1))
        .build()
        .unwrap();
    assert_eq!(pool.spawn(|| 1).unwrap().result(None).unwrap(), 1);
    eventually("the worker retired", || pool.metrics().workers == 0);
    pool.shutdown(Default::default());
}
