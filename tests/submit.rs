//! `submit` and its variants: CPython's conformance group 8 (items 82–88), and this crate's bounded
//! queue (`queue_capacity`, `try_submit`/`try_spawn` → `Error::Full`, `submit_async` waiting for room,
//! a blocking `submit` blocking until there is room).

mod common;

use std::sync::mpsc;

use common::threads::{current_tid, occupy, wait_until_asleep, Gate};
use common::LONG;
use concurrent_futures::{Error, Executor, Queued, ThreadPoolExecutor};

/// Sends a message when dropped: shows when the pool lets go of a closure or an argument.
struct DropProbe(mpsc::Sender<&'static str>, &'static str);

impl Drop for DropProbe {
    fn drop(&mut self) {
        let _ = self.0.send(self.1);
    }
}

fn pow((base, exp): (u64, u32)) -> u64 {
    base.pow(exp)
}

// CPython #82
#[test]
fn submit_returns_a_future_of_the_functions_result() {
    let pool = ThreadPoolExecutor::new(2).unwrap();
    let mut f = pool.submit(pow, (2, 8)).unwrap();
    assert_eq!(f.result(LONG).unwrap(), 256);
    // A closure, through spawn, and the generic Executor trait give the same.
    assert_eq!(
        pool.spawn(|| pow((2, 8))).unwrap().result(LONG).unwrap(),
        256
    );
    let mut g = Executor::submit(&pool, pow, (2, 8)).unwrap();
    assert_eq!(g.result(LONG).unwrap(), 256);
}

// CPython #82: the future is also a Rust Future.
#[tokio::test]
async fn a_submitted_future_can_be_awaited() {
    let pool = ThreadPoolExecutor::new(2).unwrap();
    assert_eq!(pool.submit(pow, (3, 4)).unwrap().await.unwrap(), 81);
    assert_eq!(pool.spawn(|| "done").unwrap().await.unwrap(), "done");
}

// CPython #83: keyword arguments are Python-only; in Rust a tuple argument or a closure's captures carry
// any number of named values, checked at compile time.

// CPython #84
#[test]
fn submit_after_shutdown_fails_with_shutdown() {
    let pool = ThreadPoolExecutor::new(1).unwrap();
    pool.shutdown(Queued::Run);
    let err = pool.submit(pow, (2, 8)).unwrap_err();
    assert!(matches!(err, Error::Shutdown));
    assert_eq!(
        err.to_string(),
        "cannot schedule new futures after shutdown"
    );
    assert!(matches!(pool.spawn(|| 1), Err(Error::Shutdown)));
    let rejected = pool.try_submit(pow, (2, 8)).unwrap_err();
    assert!(matches!(rejected.error(), Error::Shutdown));
    assert_eq!(rejected.into_inner().1, (2, 8), "the work comes back");
    assert!(matches!(
        pool.try_spawn(|| 1).map_err(Error::from),
        Err(Error::Shutdown)
    ));
    assert!(matches!(
        pool.spawn_fallible(|| Ok::<_, std::io::Error>(1)),
        Err(Error::Shutdown)
    ));
    assert!(matches!(
        pool.spawn_cancellable(|_| Ok(1)),
        Err(Error::Shutdown)
    ));
    assert!(matches!(
        Executor::submit(&pool, pow, (2, 8)),
        Err(Error::Shutdown)
    ));
}

// CPython #84
#[tokio::test]
async fn submit_async_after_shutdown_fails_with_shutdown() {
    let pool = ThreadPoolExecutor::new(1).unwrap();
    pool.shutdown_async(Queued::Run).await;
    assert!(matches!(
        pool.submit_async(pow, (2, 8)).await,
        Err(Error::Shutdown)
    ));
    assert!(matches!(pool.spawn_async(|| 1).await, Err(Error::Shutdown)));
}

// CPython #84: a running task that submits to its own pool after shutdown gets the same error.
#[test]
fn submit_from_a_running_task_after_shutdown_fails() {
    let pool = ThreadPoolExecutor::new(1).unwrap();
    let gate = Gate::default();
    let open = gate.guard();
    let (started_tx, started) = mpsc::channel();
    let own = pool.clone();
    let mut f = pool
        .spawn(move || {
            started_tx.send(()).unwrap();
            gate.wait();
            own.spawn(|| 1).map(drop)
        })
        .unwrap();
    started.recv_timeout(LONG).unwrap();
    pool.shutdown_nowait(Queued::Run);
    drop(open);
    assert!(matches!(f.result(LONG).unwrap(), Err(Error::Shutdown)));
    pool.shutdown(Queued::Run);
}

// CPython #85 is in tests/thread_pool.rs; #86 (submit on a broken pool) in tests/initializer.rs.

// CPython #87
#[test]
fn zero_max_workers_is_an_invalid_argument() {
    for built in [
        ThreadPoolExecutor::new(0),
        ThreadPoolExecutor::builder().max_workers(0).build(),
    ] {
        match built {
            Err(Error::InvalidArgument(msg)) => {
                assert_eq!(msg, "max_workers must be greater than 0")
            }
            other => panic!("expected InvalidArgument, got {other:?}"),
        }
    }
    match ThreadPoolExecutor::builder().queue_capacity(0).build() {
        Err(Error::InvalidArgument(msg)) => {
            assert_eq!(msg, "queue_capacity must be greater than 0")
        }
        other => panic!("expected InvalidArgument, got {other:?}"),
    }
}

// CPython #88: once a task has run, the pool holds neither the closure nor its argument, even when the
// caller discarded the future. The probe is dropped before the outcome is published.
#[test]
fn the_closure_and_argument_are_dropped_right_after_the_run() {
    let pool = ThreadPoolExecutor::new(1).unwrap();
    let (dropped_tx, dropped) = mpsc::channel();

    let probe = DropProbe(dropped_tx.clone(), "closure");
    let mut f = pool
        .spawn(move || {
            let _keep = &probe;
            7
        })
        .unwrap();
    assert_eq!(f.result(LONG).unwrap(), 7);
    assert_eq!(
        dropped.try_recv(),
        Ok("closure"),
        "dropped before the result"
    );

    let arg = DropProbe(dropped_tx.clone(), "argument");
    let mut f = pool.submit(|p: DropProbe| p.1.len(), arg).unwrap();
    assert_eq!(f.result(LONG).unwrap(), "argument".len());
    assert_eq!(dropped.try_recv(), Ok("argument"));

    // The future is discarded at once; the captures still go as soon as the task has run.
    let probe = DropProbe(dropped_tx, "detached");
    drop(
        pool.spawn(move || {
            let _keep = &probe;
        })
        .unwrap(),
    );
    assert_eq!(dropped.recv_timeout(LONG), Ok("detached"));
}

// CPython #88: a successful cancel() drops the closure at once.
#[test]
fn a_successful_cancel_drops_the_closure_at_once() {
    let pool = ThreadPoolExecutor::new(1).unwrap();
    let (busy, open) = occupy(&pool);
    let (dropped_tx, dropped) = mpsc::channel();
    let probe = DropProbe(dropped_tx, "queued");
    let queued = pool
        .spawn(move || {
            let _keep = &probe;
        })
        .unwrap();
    assert!(dropped.try_recv().is_err(), "still queued: kept");
    assert!(queued.cancel());
    assert_eq!(dropped.try_recv(), Ok("queued"));
    drop(open);
    drop(busy);
    pool.shutdown(Queued::Run);
}

// A task the queue refuses never ran and never left PENDING: its closure is dropped exactly once,
// by the refused task (a closed pool) or by the caller it came back to (a full queue), which the
// task must then leave alone (it keeps no tag of its own saying whether the closure is still there).
#[test]
fn a_refused_tasks_closure_is_dropped_exactly_once() {
    let (dropped_tx, dropped) = mpsc::channel();
    let pool = ThreadPoolExecutor::builder()
        .max_workers(1)
        .queue_capacity(1)
        .build()
        .unwrap();
    let (busy, open) = occupy(&pool);
    let queued = pool.spawn(|| ()).unwrap();

    let probe = DropProbe(dropped_tx.clone(), "came back");
    let rejected = pool
        .try_spawn(move || {
            let _keep = &probe;
        })
        .unwrap_err();
    assert!(rejected.is_full());
    assert!(dropped.try_recv().is_err(), "handed back, not dropped");
    drop(rejected.into_inner());
    assert_eq!(dropped.try_recv(), Ok("came back"));

    drop(open);
    drop((busy, queued));
    pool.shutdown(Queued::Run);
    let probe = DropProbe(dropped_tx, "closed");
    let closed = pool.spawn(move || {
        let _keep = &probe;
    });
    assert!(matches!(closed, Err(Error::Shutdown)));
    assert_eq!(dropped.try_recv(), Ok("closed"));
    assert!(dropped.try_recv().is_err(), "each closure dropped once");
}

// Bounded queue: try_submit and try_spawn fail with Full once `queue_capacity` tasks wait.
#[test]
fn try_submit_on_a_full_queue_fails_with_full() {
    let pool = ThreadPoolExecutor::builder()
        .max_workers(1)
        .queue_capacity(2)
        .build()
        .unwrap();
    let (mut busy, open) = occupy(&pool);
    let mut a = pool.try_submit(pow, (2, 1)).unwrap();
    let mut b = pool.try_spawn(|| 4).unwrap();
    assert_eq!(pool.metrics().queued, 2);
    let rejected = pool.try_submit(pow, (2, 3)).unwrap_err();
    assert!(rejected.is_full());
    let (f, arg) = rejected.into_inner();
    assert_eq!(f(arg), 8, "the work comes back, runnable");
    let err = Error::from(pool.try_submit(pow, (2, 3)).unwrap_err());
    assert!(matches!(err, Error::Full));
    assert_eq!(err.to_string(), "the work queue is full");
    assert!(!err.is_rejected(), "Full is transient, not a closed pool");
    let rejected = pool.try_spawn(|| 8).unwrap_err();
    assert!(matches!(rejected.error(), Error::Full));
    assert_eq!(rejected.into_inner()(), 8);
    assert_eq!(pool.metrics().queued, 2);

    drop(open);
    busy.result(LONG).unwrap();
    assert_eq!(a.result(LONG).unwrap(), 2);
    assert_eq!(b.result(LONG).unwrap(), 4);
    // With the queue drained there is room again.
    assert_eq!(
        pool.try_submit(pow, (2, 3)).unwrap().result(LONG).unwrap(),
        8
    );
}

// Bounded queue: a blocking submit waits until a worker takes a task off the queue. The submitter is
// seen blocked (asleep, its submit not returned, the queue still holding only the queued task) before
// the worker is let go.
#[test]
fn submit_on_a_full_queue_blocks_until_there_is_room() {
    let pool = ThreadPoolExecutor::builder()
        .max_workers(1)
        .queue_capacity(1)
        .build()
        .unwrap();
    let (busy, open) = occupy(&pool);
    let queued = pool.try_spawn(|| 1).unwrap();

    let (tid_tx, tid) = mpsc::channel();
    let (submitted_tx, submitted) = mpsc::channel();
    let submitter = {
        let pool = pool.clone();
        std::thread::spawn(move || {
            tid_tx.send(current_tid()).unwrap();
            let f = pool.spawn(|| 2);
            submitted_tx.send(()).unwrap();
            f
        })
    };
    assert!(wait_until_asleep(tid.recv_timeout(LONG).unwrap()));
    assert_eq!(submitted.try_recv(), Err(mpsc::TryRecvError::Empty));
    assert_eq!(pool.metrics().queued, 1, "the submit did not get in");
    drop(open);
    submitted.recv_timeout(LONG).unwrap();
    let mut f = submitter.join().unwrap().unwrap();
    assert_eq!(f.result(LONG).unwrap(), 2);
    drop((busy, queued));
}

// Bounded queue: shutting down wakes a blocked submitter with Shutdown.
#[test]
fn shutdown_wakes_a_blocked_submitter() {
    let pool = ThreadPoolExecutor::builder()
        .max_workers(1)
        .queue_capacity(1)
        .build()
        .unwrap();
    let (busy, open) = occupy(&pool);
    let mut queued = pool.try_spawn(|| 1).unwrap();
    let (tid_tx, tid) = mpsc::channel();
    let (returned_tx, returned) = mpsc::channel();
    let submitter = {
        let pool = pool.clone();
        std::thread::spawn(move || {
            tid_tx.send(current_tid()).unwrap();
            let outcome = pool.spawn(|| 2).map(drop);
            returned_tx.send(()).unwrap();
            outcome
        })
    };
    assert!(wait_until_asleep(tid.recv_timeout(LONG).unwrap()));
    assert_eq!(returned.try_recv(), Err(mpsc::TryRecvError::Empty));
    // Cancel the queued task and close: the queue is empty but closed, so the submitter must fail.
    pool.shutdown_nowait(Queued::Cancel);
    returned
        .recv_timeout(LONG)
        .expect("the submitter was woken");
    assert!(matches!(submitter.join().unwrap(), Err(Error::Shutdown)));
    assert!(matches!(queued.result(LONG), Err(Error::Cancelled)));
    drop(open);
    drop(busy);
    pool.shutdown(Queued::Run);
}

// Bounded queue: submit_async waits for room without blocking the runtime.
#[tokio::test]
async fn submit_async_waits_for_room() {
    let pool = ThreadPoolExecutor::builder()
        .max_workers(1)
        .queue_capacity(1)
        .build()
        .unwrap();
    let (busy, open) = occupy(&pool);
    let queued = pool.try_spawn(|| 1).unwrap();

    let submit = pool.submit_async(pow, (5, 2));
    tokio::pin!(submit);
    assert!(futures::poll!(submit.as_mut()).is_pending());
    assert!(futures::poll!(submit.as_mut()).is_pending());
    drop(open);
    let f = tokio::time::timeout(LONG, submit)
        .await
        .expect("room was made")
        .unwrap();
    assert_eq!(f.await.unwrap(), 25);
    busy.await.unwrap();
    assert_eq!(queued.await.unwrap(), 1);
}

// Bounded queue: several async submitters all get in, one per free slot, and none is lost.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_async_submitters_all_get_in() {
    let pool = ThreadPoolExecutor::builder()
        .max_workers(2)
        .queue_capacity(1)
        .build()
        .unwrap();
    let submitters: Vec<_> = (0..20u64)
        .map(|i| {
            let pool = pool.clone();
            tokio::spawn(async move { pool.submit_async(|i: u64| i * 2, i).await?.await })
        })
        .collect();
    let mut total = 0;
    for s in submitters {
        total += tokio::time::timeout(LONG, s)
            .await
            .unwrap()
            .unwrap()
            .unwrap();
    }
    assert_eq!(total, (0..20).map(|i| i * 2).sum::<u64>());
}

// Bounded queue: a pending submit_async is woken by shutdown and fails with Shutdown.
#[tokio::test]
async fn shutdown_wakes_a_waiting_submit_async() {
    let pool = ThreadPoolExecutor::builder()
        .max_workers(1)
        .queue_capacity(1)
        .build()
        .unwrap();
    let (busy, open) = occupy(&pool);
    let queued = pool.try_spawn(|| 1).unwrap();
    let submit = pool.submit_async(pow, (5, 2));
    tokio::pin!(submit);
    assert!(futures::poll!(submit.as_mut()).is_pending());
    pool.shutdown_nowait(Queued::Cancel);
    let outcome = tokio::time::timeout(LONG, submit).await.expect("woken");
    assert!(matches!(outcome, Err(Error::Shutdown)));
    assert!(matches!(queued.await, Err(Error::Cancelled)));
    drop(open);
    busy.await.unwrap();
}

// Bounded queue: map bounds itself (MapOptions::buffer) and is not held back by queue_capacity, and
// a shutdown with more tasks queued than the capacity still completes them all (cf. CPython #97).
#[test]
fn map_is_not_limited_by_queue_capacity() {
    let pool = ThreadPoolExecutor::builder()
        .max_workers(1)
        .queue_capacity(1)
        .build()
        .unwrap();
    let (busy, open) = occupy(&pool);
    let map = pool.map(|n: u32| n + 1, 0..5).unwrap();
    assert_eq!(pool.metrics().queued, 5);
    drop(open);
    drop(busy);
    let results: Vec<u32> = map.into_iter().collect::<Result<_, _>>().unwrap();
    assert_eq!(results, [1, 2, 3, 4, 5]);
}

/// A task submitting to its own pool while the bounded queue is full: waiting for room could wait
/// for itself (with one worker, nothing else takes tasks), so the submit queues past the capacity.
#[test]
fn a_task_submitting_to_its_own_full_pool_does_not_wait_for_room() {
    let outcome = common::threads::spawn_bounded(|| {
        let pool = ThreadPoolExecutor::builder()
            .max_workers(1)
            .queue_capacity(1)
            .build()
            .unwrap();
        let own = pool.clone();
        let inner = pool
            .spawn(move || {
                (0..3u32)
                    .map(|i| own.spawn(move || i).unwrap())
                    .collect::<Vec<_>>()
            })
            .unwrap()
            .result(LONG)
            .unwrap();
        inner
            .into_iter()
            .map(|mut f| f.result(LONG).unwrap())
            .sum::<u32>()
    })
    .join();
    assert_eq!(outcome, 3);
}

/// The async form agrees with the blocking one: a task driving `spawn_async` to completion on its
/// own pool with the bounded queue full queues past the capacity instead of waiting, by waker, for
/// room only this worker could make.
#[test]
fn a_task_awaiting_a_submit_to_its_own_full_pool_does_not_wait_for_room() {
    let outcome = common::threads::spawn_bounded(|| {
        let pool = ThreadPoolExecutor::builder()
            .max_workers(1)
            .queue_capacity(1)
            .build()
            .unwrap();
        let own = pool.clone();
        let inner = pool
            .spawn(move || {
                (0..3u32)
                    .map(|i| futures::executor::block_on(own.spawn_async(move || i)).unwrap())
                    .collect::<Vec<_>>()
            })
            .unwrap()
            .result(LONG)
            .unwrap();
        inner
            .into_iter()
            .map(|mut f| f.result(LONG).unwrap())
            .sum::<u32>()
    })
    .join();
    assert_eq!(outcome, 3);
}

/// A done callback (run by the worker that completes the task) filling the bounded queue and then
/// driving `submit_async` and a blocking `submit`: both queue past the capacity. Only the workers
/// take tasks out of the queue, and the only one is running this callback, so the queue stays full
/// until both return.
#[test]
fn a_done_callback_submitting_to_its_own_full_pool_does_not_wait_for_room() {
    let outcome = common::threads::spawn_bounded(|| {
        let pool = ThreadPoolExecutor::builder()
            .max_workers(1)
            .queue_capacity(1)
            .build()
            .unwrap();
        let (mut first, guard) = occupy(&pool);
        let (tx, rx) = mpsc::channel();
        let own = pool.clone();
        first.add_done_callback(move |_| {
            let mut filler = Vec::new();
            while let Ok(f) = own.try_spawn(|| 1u32) {
                filler.push(f);
            }
            let awaited = futures::executor::block_on(own.submit_async(|n: u32| n, 10)).unwrap();
            let blocking = own.submit(|n: u32| n, 100).unwrap();
            filler.push(awaited);
            filler.push(blocking);
            tx.send(filler).unwrap();
        });
        drop(guard);
        first.result(LONG).unwrap();
        rx.recv_timeout(LONG)
            .expect("the callback's submits returned")
            .into_iter()
            .map(|mut f| f.result(LONG).unwrap())
            .sum::<u32>()
    })
    .join();
    assert_eq!(outcome, 111);
}
