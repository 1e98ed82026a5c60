//! The thread pool's initializer: CPython's conformance group 13 (items 137–143) and the broken pool it
//! leaves behind when it fails (#86, #147).

mod common;

use std::cell::Cell;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Barrier, Mutex};

use common::threads::Gate;
use common::{logs, LONG};
use concurrent_futures::{Error, MapOptions, Queued, ThreadPoolExecutor};

const BROKEN: &str = "a thread initializer failed, the thread pool is not usable anymore";

thread_local! {
    static INITIALIZED: Cell<Option<&'static str>> = const { Cell::new(None) };
}

fn initialized() -> Option<&'static str> {
    INITIALIZED.with(Cell::get)
}

/// Asserts `e` is the broken-pool error carrying the initializer's message.
fn assert_broken(e: &Error, why: &str) {
    match e {
        Error::BrokenThreadPool(msg) => assert_eq!(msg, why),
        other => panic!("expected BrokenThreadPool({why:?}), got {other:?}"),
    }
    assert!(e.is_broken() && e.is_rejected());
    assert!(
        e.to_string().starts_with(BROKEN),
        "unexpected message {:?}",
        e.to_string()
    );
    assert!(e.to_string().contains(why));
}

// CPython #137: the initializer runs once in each worker before its first task, and tasks see its
// effect. Python's initargs are the closure's captures.
#[test]
fn initializer_runs_once_per_worker_before_its_tasks() {
    let calls = Arc::new(AtomicUsize::new(0));
    let counter = calls.clone();
    let greeting = "initialized";
    let pool = ThreadPoolExecutor::builder()
        .max_workers(2)
        .initializer(move || {
            counter.fetch_add(1, Ordering::SeqCst);
            INITIALIZED.with(|c| c.set(Some(greeting)));
        })
        .build()
        .unwrap();
    assert_eq!(
        calls.load(Ordering::SeqCst),
        0,
        "no thread before the first submit"
    );
    // A barrier of two tasks puts one on each worker.
    let barrier = Arc::new(Barrier::new(2));
    let futures: Vec<_> = (0..2)
        .map(|_| {
            let barrier = barrier.clone();
            pool.spawn(move || {
                barrier.wait();
                initialized()
            })
            .unwrap()
        })
        .collect();
    for mut f in futures {
        assert_eq!(f.result(LONG).unwrap(), Some("initialized"));
    }
    for _ in 0..10 {
        assert_eq!(
            pool.spawn(initialized).unwrap().result(LONG).unwrap(),
            Some("initialized")
        );
    }
    pool.shutdown(Queued::Run);
    assert_eq!(calls.load(Ordering::SeqCst), 2, "once per worker");
}

// CPython #137: an initializer may return Result; Ok(()) is a success.
#[test]
fn an_initializer_returning_ok_is_a_success() {
    let pool = ThreadPoolExecutor::builder()
        .max_workers(1)
        .initializer(|| -> Result<(), String> {
            INITIALIZED.with(|c| c.set(Some("ok")));
            Ok(())
        })
        .build()
        .unwrap();
    assert_eq!(
        pool.spawn(initialized).unwrap().result(LONG).unwrap(),
        Some("ok")
    );
}

// CPython #138, #86: a failing initializer breaks the pool. The task submitted right away fails with
// BrokenThreadPool, and every later submit fails with it at once, whatever the submit method.
#[tokio::test]
async fn a_failing_initializer_breaks_the_pool() {
    let why = "error in initializer";
    let pool = ThreadPoolExecutor::builder()
        .max_workers(2)
        .initializer(move || Err::<(), _>(why))
        .build()
        .unwrap();
    let first = match pool.spawn(|| 1) {
        Ok(mut f) => f.result(LONG).unwrap_err(),
        Err(e) => e,
    };
    assert_broken(&first, why);

    assert_broken(&pool.spawn(|| 1).unwrap_err(), why);
    assert_broken(&pool.submit(|n: u32| n, 1).unwrap_err(), why);
    assert_broken(pool.try_spawn(|| 1).unwrap_err().error(), why);
    assert_broken(&pool.spawn_cancellable(|_| Ok(1)).unwrap_err(), why);
    assert_broken(&pool.submit_async(|n: u32| n, 1).await.unwrap_err(), why);
    assert_broken(&pool.map(|n: u32| n, 0..3).unwrap_err(), why);
    assert_broken(
        &pool
            .map_with(|n: u32| n, 0.., MapOptions::new().buffer(2))
            .unwrap_err(),
        why,
    );

    // The broken pool still shuts down, and no worker thread is left behind (the analogue of #142).
    pool.shutdown(Queued::Run);
    assert_eq!(pool.metrics().workers, 0);
    assert_broken(&pool.spawn(|| 1).unwrap_err(), why);
}

// CPython #140: the queue is drained and every queued future fails with BrokenThreadPool.
#[test]
fn queued_futures_fail_when_the_initializer_fails() {
    let gate = Gate::default();
    let open = gate.guard();
    let (entered_tx, entered) = mpsc::channel();
    let entered_tx = Mutex::new(entered_tx);
    let g = gate.clone();
    let pool = ThreadPoolExecutor::builder()
        .max_workers(1)
        .initializer(move || {
            entered_tx.lock().unwrap().send(()).unwrap();
            g.wait();
            Err::<(), _>("error in initializer")
        })
        .build()
        .unwrap();
    // The worker holds in its initializer while three tasks queue up.
    let futures: Vec<_> = (0..3).map(|i| pool.spawn(move || i).unwrap()).collect();
    entered.recv_timeout(LONG).unwrap();
    assert_eq!(pool.metrics().queued, 3);
    drop(open);
    for mut f in futures {
        assert_broken(&f.result(LONG).unwrap_err(), "error in initializer");
        assert!(f.done() && !f.cancelled());
    }
    assert_eq!(pool.metrics().queued, 0);
    pool.shutdown(Queued::Run);
}

// CPython #138: a panicking initializer breaks the pool too.
#[test]
fn a_panicking_initializer_breaks_the_pool() {
    let pool = ThreadPoolExecutor::builder()
        .max_workers(1)
        .initializer(|| -> Result<(), String> { panic!("no config file") })
        .build()
        .unwrap();
    let err = match pool.spawn(|| 1) {
        Ok(mut f) => f.result(LONG).unwrap_err(),
        Err(e) => e,
    };
    assert_broken(&err, "initializer panicked: no config file");
    assert_broken(
        &pool.spawn(|| 1).unwrap_err(),
        "initializer panicked: no config file",
    );
}

// CPython #138 with two workers: when a second worker's initializer fails, the task running on the
// first one finishes normally; the pool is broken for everything else.
#[test]
fn a_running_task_finishes_when_another_workers_initializer_fails() {
    let calls = Arc::new(AtomicUsize::new(0));
    let counter = calls.clone();
    let pool = ThreadPoolExecutor::builder()
        .max_workers(2)
        .initializer(move || {
            if counter.fetch_add(1, Ordering::SeqCst) == 0 {
                Ok(())
            } else {
                Err("second worker failed")
            }
        })
        .build()
        .unwrap();
    let gate = Gate::default();
    let open = gate.guard();
    let (started_tx, started) = mpsc::channel();
    let g = gate.clone();
    let mut running = pool
        .spawn(move || {
            started_tx.send(()).unwrap();
            g.wait();
            "finished"
        })
        .unwrap();
    started.recv_timeout(LONG).unwrap();
    // The first worker is busy, so this starts the second one, whose initializer fails.
    let err = match pool.spawn(|| "never") {
        Ok(mut f) => f.result(LONG).unwrap_err(),
        Err(e) => e,
    };
    assert_broken(&err, "second worker failed");
    assert!(running.running());
    drop(open);
    assert_eq!(running.result(LONG).unwrap(), "finished");
    assert_broken(&pool.spawn(|| "later").unwrap_err(), "second worker failed");
    pool.shutdown(Queued::Run);
    assert_eq!(pool.metrics().workers, 0);
}

// CPython #139: the failure is logged ('Exception in initializer:' at CRITICAL in Python; `log` has no
// critical level, so at error level) with the initializer's message.
#[test]
fn initializer_failure_is_logged() {
    logs::capture();
    let why = "ValueError: error in initializer (logged)";
    let pool = ThreadPoolExecutor::builder()
        .max_workers(1)
        .initializer(move || Err::<(), _>(why))
        .build()
        .unwrap();
    if let Ok(mut f) = pool.spawn(|| ()) {
        assert_broken(&f.result(LONG).unwrap_err(), why);
    }
    pool.shutdown(Queued::Run);
    let records = logs::records();
    let found = records
        .iter()
        .find(|(_, _, msg)| msg.contains(why))
        .unwrap_or_else(|| panic!("no log record about the failure in {records:?}"));
    assert_eq!(found.0, log::Level::Error);
    assert_eq!(found.1, "concurrent_futures");
    assert!(
        found.2.starts_with("Exception in initializer:"),
        "{:?}",
        found.2
    );
}

// CPython #141 (process pool: the worker exits, the pool breaks by the crash path) and #142 (no leaked
// processes or files with spawn/forkserver) concern the process pool; the thread-pool analogue of #142
// (no worker thread left after a broken pool is shut down) is checked in a_failing_initializer_breaks_the_pool.
// CPython #143 (a non-callable initializer is a TypeError) cannot be written in Rust: it does not compile.
