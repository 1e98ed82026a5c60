//! Regressions of the future's core and the pools' worker loops (issue 7, points 1, 2 and 4):
//!
//! 1. `done()` implies the outcome is readable, on every thread, at every moment: a future is published
//!    only after its callbacks ran, and a callback added later does not hide the outcome.
//! 2. A worker takes its next task only to run it, after the previous task's callbacks returned.
//! 4. A dropped `PoolFuture` releases the waker its last poll registered.
//!
//! Every wait that a regression would turn into a hang is bounded, so the test fails instead.

mod common;

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::task::{Context, Poll, Wake, Waker};
use std::thread;
use std::time::Duration;

use common::threads::Gate;
use common::LONG;
use concurrent_futures::{
    wait, Error, PoolFuture, ProcessPoolExecutor, Promise, Queued, ReturnWhen, ThreadPoolExecutor,
};

/// How long a callback waits for another future before giving up (only when the test is failing).
const BOUNDED: Duration = Duration::from_secs(10);

/// A callback that tells the test it is running, then holds its thread until the test lets it go.
fn held_callback<T>(
    entered: mpsc::Sender<()>,
    release: Gate,
) -> impl FnOnce(&Result<T, Error>) + Send + 'static {
    move |_| {
        entered.send(()).unwrap();
        release.wait();
    }
}

/// Asserts what `done()` promises: the outcome can be read at once.
fn assert_done_means_readable(f: &mut PoolFuture<u32>, expected: u32) {
    if f.done() {
        assert!(matches!(f.exception(Duration::ZERO), Ok(None)));
        assert_eq!(f.result(Duration::ZERO).unwrap(), expected);
    }
}

// ---------------------------------------------------------------------------------------------------
// 1. done() ⇒ readable

#[test]
fn done_implies_readable_while_callbacks_run() {
    let pool = ThreadPoolExecutor::new(1).unwrap();
    let task_gate = Gate::default();
    let _open_task = task_gate.guard();
    let g = task_gate.clone();
    let mut f = pool
        .spawn(move || {
            g.wait();
            7u32
        })
        .unwrap();
    let (entered_tx, entered) = mpsc::channel();
    let release = Gate::default();
    let _open_callback = release.guard();
    f.add_done_callback(held_callback(entered_tx, release.clone()));
    task_gate.open();
    entered.recv_timeout(LONG).unwrap();

    // The callback holds the worker: the outcome is decided, not yet published.
    let first = wait([&f])
        .return_when(ReturnWhen::FirstCompleted)
        .timeout(Duration::ZERO)
        .blocking();
    let seen_done = first.done.len();
    drop(first);
    if seen_done == 1 {
        assert_done_means_readable(&mut f, 7);
    }
    assert_done_means_readable(&mut f, 7);
    assert!(!f.done() && f.running() && !f.cancel());

    release.open();
    assert_eq!(f.result(LONG).unwrap(), 7);
}

#[test]
fn done_implies_readable_racing_completion_on_other_threads() {
    for i in 0..200u32 {
        let (promise, mut f) = Promise::new();
        // A callback that takes a little while widens the window between deciding and publishing.
        f.add_done_callback(|_| {
            for _ in 0..50 {
                thread::yield_now();
            }
        });
        let producer = thread::spawn(move || promise.set_result(i).unwrap());
        let mut spins = 0u64;
        while !f.done() {
            spins += 1;
            assert!(spins < 1 << 34, "the future never ended");
            // Yield rather than spin: on a loaded machine the producer may need this very CPU.
            thread::yield_now();
        }
        assert_eq!(
            f.result(Duration::ZERO).unwrap(),
            i,
            "done() but not readable"
        );
        producer.join().unwrap();
    }
}

#[test]
fn done_implies_readable_for_watchers_racing_completion() {
    for i in 0..200u32 {
        let (promise, f) = Promise::new();
        f.add_done_callback(|_| thread::yield_now());
        let f = Arc::new(f);
        let watchers: Vec<_> = (0..2)
            .map(|_| {
                let f = f.clone();
                thread::spawn(move || {
                    while !f.done() {
                        thread::yield_now();
                    }
                    assert!(
                        matches!(f.exception(Duration::ZERO), Ok(None)),
                        "done() but exception(ZERO) is not readable"
                    );
                })
            })
            .collect();
        promise.set_result(i).unwrap();
        for w in watchers {
            w.join().unwrap();
        }
        let mut f = Arc::try_unwrap(f).unwrap();
        assert_eq!(f.result(Duration::ZERO).unwrap(), i);
    }
}

#[test]
fn a_late_callback_leaves_the_outcome_readable_on_other_threads() {
    // A value (not Clone): lent to the late callback, still answered for on other threads.
    let (promise, f) = Promise::new();
    promise.set_result(String::from("value")).unwrap();
    let f = Arc::new(f);
    let (entered_tx, entered) = mpsc::channel();
    let release = Gate::default();
    let _open = release.guard();
    let adder = {
        let (f, release) = (f.clone(), release.clone());
        thread::spawn(move || {
            f.add_done_callback(move |outcome: &Result<String, Error>| {
                assert_eq!(outcome.as_deref().unwrap(), "value");
                entered_tx.send(()).unwrap();
                release.wait();
            })
        })
    };
    entered.recv_timeout(LONG).unwrap();
    assert!(f.done() && !f.cancelled() && !f.running());
    assert!(matches!(f.exception(Duration::ZERO), Ok(None)));
    release.open();
    adder.join().unwrap();
    let mut f = Arc::try_unwrap(f).unwrap();
    assert_eq!(f.result(Duration::ZERO).unwrap(), "value");

    // An error: the late callback gets a copy, the state keeps its own.
    let (promise, f) = Promise::<u32>::new();
    promise.set_error(Error::Interrupted).unwrap();
    let f = Arc::new(f);
    let (entered_tx, entered) = mpsc::channel();
    let release = Gate::default();
    let _open = release.guard();
    let adder = {
        let (f, release) = (f.clone(), release.clone());
        thread::spawn(move || {
            f.add_done_callback(move |outcome| {
                assert!(matches!(outcome, Err(Error::Interrupted)));
                entered_tx.send(()).unwrap();
                release.wait();
            })
        })
    };
    entered.recv_timeout(LONG).unwrap();
    assert!(f.done());
    assert!(matches!(
        f.exception(Duration::ZERO),
        Ok(Some(Error::Interrupted))
    ));
    release.open();
    adder.join().unwrap();
}

// ---------------------------------------------------------------------------------------------------
// 2. A worker takes a task only to run it, after the previous task's callbacks.

#[test]
fn a_callback_waiting_on_the_task_queued_behind_it_completes() {
    let pool = ThreadPoolExecutor::new(2).unwrap();
    let (started_tx, started) = mpsc::channel();
    let gate_a = Gate::default();
    let gate_z = Gate::default();
    let (_open_a, _open_z) = (gate_a.guard(), gate_z.guard());
    let spawn_gated = |gate: &Gate, value: u32| {
        let (gate, started_tx) = (gate.clone(), started_tx.clone());
        pool.spawn(move || {
            started_tx.send(()).unwrap();
            gate.wait();
            value
        })
        .unwrap()
    };
    // Both workers busy: A on one, Z on the other; B waits in the queue, right behind.
    let mut a = spawn_gated(&gate_a, 1);
    let mut z = spawn_gated(&gate_z, 3);
    started.recv_timeout(LONG).unwrap();
    started.recv_timeout(LONG).unwrap();
    let b = pool.spawn(|| 2u32).unwrap();
    assert_eq!(pool.metrics().queued, 1);

    // A's callback frees Z's worker, then waits for B: that worker must be able to take B.
    let b = Arc::new(Mutex::new(Some(b)));
    let (seen_tx, seen) = mpsc::channel();
    let (slot, gate_z2) = (b.clone(), gate_z.clone());
    a.add_done_callback(move |_| {
        gate_z2.open();
        let mut b = slot.lock().unwrap().take().unwrap();
        seen_tx.send(b.result(BOUNDED)).unwrap();
    });
    gate_a.open();
    let from_callback = seen.recv_timeout(LONG).unwrap();
    assert_eq!(
        from_callback.unwrap(),
        2,
        "B never ran while a worker was idle"
    );
    assert_eq!(a.result(LONG).unwrap(), 1);
    assert_eq!(z.result(LONG).unwrap(), 3);
    pool.shutdown(Queued::Run);
}

/// One worker busy with a task whose callback is registered; `n` tasks queued behind it, each noting
/// whether it ran.
struct QueuedBehind {
    pool: ThreadPoolExecutor,
    first: PoolFuture<u32>,
    gate: Gate,
    queued: Vec<(PoolFuture<()>, Arc<AtomicBool>)>,
}

fn queued_behind(n: usize) -> QueuedBehind {
    let pool = ThreadPoolExecutor::new(1).unwrap();
    let gate = Gate::default();
    let (started_tx, started) = mpsc::channel();
    let g = gate.clone();
    let first = pool
        .spawn(move || {
            started_tx.send(()).unwrap();
            g.wait();
            1u32
        })
        .unwrap();
    started.recv_timeout(LONG).unwrap();
    let queued = (0..n)
        .map(|_| {
            let ran = Arc::new(AtomicBool::new(false));
            let r = ran.clone();
            let f = pool.spawn(move || r.store(true, Ordering::SeqCst)).unwrap();
            (f, ran)
        })
        .collect();
    QueuedBehind {
        pool,
        first,
        gate,
        queued,
    }
}

fn assert_all_cancelled(queued: Vec<(PoolFuture<()>, Arc<AtomicBool>)>) {
    for (mut f, ran) in queued {
        assert!(matches!(f.result(LONG), Err(Error::Cancelled)));
        assert!(f.cancelled());
        assert!(
            !ran.load(Ordering::SeqCst),
            "a task that was to be cancelled ran"
        );
    }
}

#[test]
fn cancel_from_a_callback_cancels_every_task_not_started() {
    let QueuedBehind {
        pool,
        mut first,
        gate,
        queued,
    } = queued_behind(3);
    let _open = gate.guard();
    let handle = pool.clone();
    first.add_done_callback(move |_| handle.shutdown_nowait(Queued::Cancel));
    gate.open();
    assert_eq!(first.result(LONG).unwrap(), 1);
    assert_all_cancelled(queued);
    pool.shutdown(Queued::Run);
    assert_eq!(pool.metrics().cancelled, 3);
}

#[test]
fn cancel_while_a_callback_runs_cancels_every_task_not_started() {
    let QueuedBehind {
        pool,
        mut first,
        gate,
        queued,
    } = queued_behind(2);
    let _open = gate.guard();
    let (entered_tx, entered) = mpsc::channel();
    let release = Gate::default();
    let _open_callback = release.guard();
    first.add_done_callback(held_callback(entered_tx, release.clone()));
    gate.open();
    entered.recv_timeout(LONG).unwrap();
    pool.shutdown_nowait(Queued::Cancel);
    release.open();
    assert_eq!(first.result(LONG).unwrap(), 1);
    assert_all_cancelled(queued);
    pool.shutdown(Queued::Run);
}

#[test]
fn metrics_running_never_counts_a_task_not_started() {
    let QueuedBehind {
        pool,
        mut first,
        gate,
        mut queued,
    } = queued_behind(1);
    let _open = gate.guard();
    let (entered_tx, entered) = mpsc::channel();
    let release = Gate::default();
    let _open_callback = release.guard();
    first.add_done_callback(held_callback(entered_tx, release.clone()));
    gate.open();
    entered.recv_timeout(LONG).unwrap();

    // The first task's callback holds the only worker: the task behind it has not started.
    let (behind, ran) = &queued[0];
    let m = pool.metrics();
    let started = [first.running(), behind.running()]
        .iter()
        .filter(|r| **r)
        .count();
    assert!(!behind.running() && !ran.load(Ordering::SeqCst));
    assert_eq!(
        m.queued, 1,
        "the task behind left the queue before it could start"
    );
    assert_eq!(
        m.running, started,
        "running counts a task that has not started"
    );

    release.open();
    assert_eq!(first.result(LONG).unwrap(), 1);
    queued.pop().unwrap().0.result(LONG).unwrap();
    let m = pool.metrics();
    assert_eq!((m.running, m.queued, m.completed), (0, 0, 2));
    pool.shutdown(Queued::Run);
}

#[test]
fn submit_after_a_result_reuses_the_idle_worker() {
    // Idle-thread reuse survives the new order: the worker counts itself idle before publishing.
    let pool = ThreadPoolExecutor::new(4).unwrap();
    for i in 0..100u32 {
        let mut f = pool.submit(|n: u32| n + 1, i).unwrap();
        assert_eq!(f.result(LONG).unwrap(), i + 1);
        assert_eq!(pool.metrics().workers, 1);
    }
    pool.shutdown(Queued::Run);
}

fn gated_value(path: String) -> u32 {
    common::process::task_wait(&path);
    1
}

fn one(_: ()) -> u32 {
    1
}

#[test]
fn process_pool_cancel_from_a_callback_cancels_the_task_behind() {
    let pool = ProcessPoolExecutor::new(1).unwrap();
    let mut gate = common::process::Gate::new();
    let mut first = pool.submit(gated_value, gate.path()).unwrap();
    gate.wait_started();
    let mut behind = pool.submit(one, ()).unwrap();
    let handle = pool.clone();
    first.add_done_callback(move |_| handle.shutdown_nowait(Queued::Cancel));
    gate.release();
    assert_eq!(first.result(LONG).unwrap(), 1);
    assert!(
        matches!(behind.result(LONG), Err(Error::Cancelled)),
        "the driver handed out the next task before the callbacks ran"
    );
    pool.shutdown(Queued::Run);
}

#[test]
fn process_pool_submit_after_a_result_reuses_the_worker() {
    let pool = ProcessPoolExecutor::new(2).unwrap();
    for _ in 0..20 {
        assert_eq!(pool.submit(one, ()).unwrap().result(LONG).unwrap(), 1);
    }
    assert_eq!(pool.workers_started(), 1);
    pool.shutdown(Queued::Run);
}

// ---------------------------------------------------------------------------------------------------
// 4. A dropped PoolFuture releases its waker.

/// A waker whose clones can be counted: every clone is a strong reference to the `Arc`.
struct Counted;

impl Wake for Counted {
    fn wake(self: Arc<Self>) {}
}

/// Polls `f` once with a fresh counted waker; returns the waker's `Arc`.
fn poll_once<T>(f: &mut PoolFuture<T>) -> Arc<Counted> {
    let counted = Arc::new(Counted);
    let waker = Waker::from(counted.clone());
    let mut cx = Context::from_waker(&waker);
    assert!(matches!(Pin::new(f).poll(&mut cx), Poll::Pending));
    counted
}

#[test]
fn a_dropped_future_releases_its_waker() {
    // A promise that stays pending.
    let (promise, mut f) = Promise::<u32>::new();
    let counted = poll_once(&mut f);
    assert_eq!(
        Arc::strong_count(&counted),
        2,
        "the poll registered a clone"
    );
    drop(f);
    assert_eq!(
        Arc::strong_count(&counted),
        1,
        "the dropped future kept its waker"
    );
    drop(promise);

    // A pool task still running: the task runs on, without our waker.
    let pool = ThreadPoolExecutor::new(1).unwrap();
    let gate = Gate::default();
    let _open = gate.guard();
    let g = gate.clone();
    let (started_tx, started) = mpsc::channel();
    let mut f = pool
        .spawn(move || {
            started_tx.send(()).unwrap();
            g.wait()
        })
        .unwrap();
    started.recv_timeout(LONG).unwrap();
    let counted = poll_once(&mut f);
    let guarded = f.cancel_on_drop();
    drop(guarded);
    assert_eq!(
        Arc::strong_count(&counted),
        1,
        "the dropped future kept its waker"
    );
    gate.open();
    pool.shutdown(Queued::Run);
    assert_eq!(pool.metrics().completed, 1);
}
