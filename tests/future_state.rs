//! CPython conformance, groups 1–3: the future state machine, `result()`/`exception()` with timeouts,
//! and `cancel()`. Item numbers refer to `cpython-conformance.md`.
//!
//! CPython's fixtures (`PENDING_FUTURE`, `RUNNING_FUTURE`, `CANCELLED_FUTURE`,
//! `CANCELLED_AND_NOTIFIED_FUTURE`, `EXCEPTION_FUTURE`, `SUCCESSFUL_FUTURE`) are built with [`Promise`]
//! (the first two here, the others in `common::fixtures`). Tests that need a real pool block its
//! workers on gates or channels that open when their guard or sender is dropped at the end of the test
//! (also when it fails), so no test can hang the suite.

mod common;

use std::future::IntoFuture;
use std::io;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Barrier};
use std::task::{Context, Poll, Wake, Waker};
use std::thread;
use std::time::{Duration, Instant};

use common::fixtures::{cancelled, cancelled_and_notified, exception, os_error, successful};
use common::threads::{current_tid, occupy, wait_until_asleep};
use common::LONG;
use concurrent_futures::{
    as_completed, wait, Error, PoolFuture, Promise, Queued, ReturnWhen, TaskError,
    ThreadPoolExecutor,
};
use futures::{FutureExt, StreamExt};

// ---------------------------------------------------------------------------------------------------
// Fixtures (and see `common::fixtures`)
// ---------------------------------------------------------------------------------------------------

/// `PENDING_FUTURE`: keep the promise alive, or dropping it ends the future with `Abandoned`.
fn pending() -> (Promise<i32>, PoolFuture<i32>) {
    Promise::new()
}

/// `RUNNING_FUTURE`.
fn running() -> (Promise<i32>, PoolFuture<i32>) {
    let (p, f) = Promise::new();
    assert!(p.set_running());
    (p, f)
}

/// `(running, done, cancelled)`.
fn predicates<T>(f: &PoolFuture<T>) -> (bool, bool, bool) {
    (f.running(), f.done(), f.cancelled())
}

/// The `io::Error` inside a `Failed` error, to check identity across calls.
fn io_inside(e: &Error) -> &io::Error {
    match e {
        Error::Failed(t) => t.downcast_ref::<io::Error>().expect("an io::Error"),
        other => panic!("expected Error::Failed, got {other:?}"),
    }
}

/// A waker that counts its wake-ups.
#[derive(Default)]
struct CountingWaker(AtomicUsize);

impl Wake for CountingWaker {
    fn wake(self: Arc<Self>) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
    fn wake_by_ref(self: &Arc<Self>) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

// ---------------------------------------------------------------------------------------------------
// 1. The state machine
// ---------------------------------------------------------------------------------------------------

// CPython #1: predicates (running, done, cancelled) for every fixture state.
#[test]
fn predicates_by_state_for_fixtures() {
    let (_p, f) = pending();
    assert_eq!(predicates(&f), (false, false, false), "PENDING");
    let (_p, f) = running();
    assert_eq!(predicates(&f), (true, false, false), "RUNNING");
    assert_eq!(predicates(&cancelled()), (false, true, true), "CANCELLED");
    assert_eq!(
        predicates(&cancelled_and_notified()),
        (false, true, true),
        "CANCELLED_AND_NOTIFIED"
    );
    assert_eq!(predicates(&exception()), (false, true, false), "EXCEPTION");
    assert_eq!(
        predicates(&successful()),
        (false, true, false),
        "SUCCESSFUL"
    );
}

// CPython #1: the same predicates on real pool futures: queued, running, finished.
#[test]
fn predicates_by_state_for_pool_futures() {
    let pool = ThreadPoolExecutor::new(1).unwrap();
    let (mut busy, release) = occupy(&pool);
    let mut queued = pool.spawn(|| 5).unwrap();
    assert_eq!(predicates(&busy), (true, false, false), "running task");
    assert_eq!(predicates(&queued), (false, false, false), "queued task");
    drop(release);
    busy.result(None).unwrap();
    assert_eq!(queued.result(None).unwrap(), 5);
    assert_eq!(predicates(&busy), (false, true, false), "finished task");
    assert_eq!(predicates(&queued), (false, true, false), "finished task");
}

// CPython #2: a PENDING future can be completed directly, without passing through RUNNING.
#[test]
fn pending_future_completes_without_running() {
    let (p, mut f) = pending();
    p.set_result(42).unwrap();
    assert_eq!(predicates(&f), (false, true, false));
    assert_eq!(f.result(Duration::ZERO).unwrap(), 42);

    let (p, f) = pending();
    p.set_error(os_error()).unwrap();
    assert_eq!(predicates(&f), (false, true, false));
    assert_eq!(
        io_inside(&f.exception(Duration::ZERO).unwrap().unwrap()).to_string(),
        "OSError"
    );
}

// CPython #3: set_running (set_running_or_notify_cancel) on PENDING → RUNNING, returns true.
#[test]
fn set_running_on_pending_moves_to_running() {
    let (p, f) = pending();
    assert!(p.set_running());
    assert_eq!(predicates(&f), (true, false, false));
    // A running future can still be completed.
    p.set_result(1).unwrap();
    assert_eq!(predicates(&f), (false, true, false));
}

// CPython #4: set_running on CANCELLED returns false, the state stays cancelled, and the done
// callbacks do not run again.
#[test]
fn set_running_on_cancelled_returns_false_without_rerunning_callbacks() {
    let (p, mut f) = pending();
    let calls = Arc::new(AtomicUsize::new(0));
    let c = calls.clone();
    f.add_done_callback(move |_| {
        c.fetch_add(1, Ordering::SeqCst);
    });
    assert!(f.cancel());
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    assert!(!p.set_running());
    assert!(!p.set_running(), "CANCELLED_AND_NOTIFIED stays refused");
    assert_eq!(predicates(&f), (false, true, true));
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    assert!(matches!(f.result(Duration::ZERO), Err(Error::Cancelled)));
}

// CPython #4: the executor side: a task whose future was cancelled in the queue is skipped (never run)
// and the worker moves on to the next task.
#[test]
fn worker_skips_cancelled_task_and_runs_the_next() {
    let pool = ThreadPoolExecutor::new(1).unwrap();
    let (_busy, release) = occupy(&pool);
    let ran = Arc::new(AtomicBool::new(false));
    let r = ran.clone();
    let skipped = pool.spawn(move || r.store(true, Ordering::SeqCst)).unwrap();
    let mut next = pool.spawn(|| "next").unwrap();
    assert!(skipped.cancel());
    drop(release);
    assert_eq!(next.result(None).unwrap(), "next");
    pool.shutdown(Queued::Run);
    assert!(!ran.load(Ordering::SeqCst));
    assert_eq!(pool.metrics().cancelled, 1);
}

// CPython #5: set_running on RUNNING or FINISHED raises RuntimeError in Python; here the public
// `Promise::set_running` refuses it with `false` (bad input never panics) and the state is unchanged.
#[test]
fn set_running_on_running_or_finished_is_refused() {
    let refused = |p: &Promise<i32>| {
        let outcome = catch_unwind(AssertUnwindSafe(|| p.set_running()));
        assert!(!outcome.expect("set_running never panics"));
    };

    let (p, f) = running();
    refused(&p);
    assert_eq!(predicates(&f), (true, false, false));

    let (p, mut f) = pending();
    p.set_result(7).unwrap();
    refused(&p);
    assert_eq!(predicates(&f), (false, true, false));
    assert_eq!(f.result(Duration::ZERO).unwrap(), 7);
}

// CPython #6: a second set_result on a FINISHED future fails with InvalidState ("FINISHED: …") and the
// first outcome is kept.
#[test]
fn second_set_result_is_invalid_state_and_first_is_kept() {
    let (p, mut f) = pending();
    p.set_result(1).unwrap();
    match p.set_result(2) {
        Err(Error::InvalidState(msg)) => assert!(msg.starts_with("FINISHED: "), "{msg}"),
        other => panic!("expected InvalidState, got {other:?}"),
    }
    assert!(matches!(
        p.set_error(os_error()),
        Err(Error::InvalidState(_))
    ));
    assert_eq!(f.result(Duration::ZERO).unwrap(), 1);
}

// CPython #6: a second set_exception keeps the first exception (the same object).
#[test]
fn second_set_error_is_invalid_state_and_first_error_is_kept() {
    let (p, f) = pending();
    let first = os_error();
    let first_ptr: *const io::Error = io_inside(&first);
    p.set_error(first).unwrap();
    let second = Error::Failed(TaskError::new(io::Error::other("second")));
    match p.set_error(second) {
        Err(Error::InvalidState(msg)) => assert!(msg.starts_with("FINISHED: "), "{msg}"),
        other => panic!("expected InvalidState, got {other:?}"),
    }
    assert!(matches!(p.set_result(3), Err(Error::InvalidState(_))));
    let kept = f.exception(Duration::ZERO).unwrap().unwrap();
    assert!(
        std::ptr::eq(io_inside(&kept), first_ptr),
        "the first error object is kept"
    );
}

// CPython #7: completing a cancelled future fails with InvalidState ("CANCELLED: …"); it stays
// cancelled.
#[test]
fn completing_a_cancelled_future_is_invalid_state() {
    for (name, (p, mut f)) in [
        ("CANCELLED", {
            let (p, f) = pending();
            assert!(f.cancel());
            (p, f)
        }),
        ("CANCELLED_AND_NOTIFIED", {
            let (p, f) = pending();
            assert!(f.cancel());
            assert!(!p.set_running());
            (p, f)
        }),
    ] {
        match p.set_result(1) {
            Err(Error::InvalidState(msg)) => {
                assert!(msg.starts_with("CANCELLED: "), "{name}: {msg}")
            }
            other => panic!("{name}: expected InvalidState, got {other:?}"),
        }
        match p.set_error(os_error()) {
            Err(Error::InvalidState(msg)) => {
                assert!(msg.starts_with("CANCELLED: "), "{name}: {msg}")
            }
            other => panic!("{name}: expected InvalidState, got {other:?}"),
        }
        assert!(f.cancelled(), "{name}");
        assert!(
            matches!(f.result(Duration::ZERO), Err(Error::Cancelled)),
            "{name}"
        );
    }
}

// CPython #7 (the Rust side): dropping a promise without a result ends its future with Abandoned, so
// no future stays pending; dropping it after cancellation changes nothing.
#[test]
fn dropped_promise_abandons_its_future() {
    let (p, mut f) = pending();
    drop(p);
    assert!(f.done() && !f.cancelled());
    assert!(matches!(f.result(Duration::ZERO), Err(Error::Abandoned)));

    let (p, mut f) = pending();
    assert!(f.cancel());
    drop(p);
    assert!(f.cancelled());
    assert!(matches!(f.result(Duration::ZERO), Err(Error::Cancelled)));
}

// CPython #8: Debug (Python's repr) shows pending, running, cancelled, finished raised <variant>,
// finished returned <type>.
#[test]
fn debug_shows_state_and_outcome_type() {
    let expect = |f: &PoolFuture<i32>, state: &str| {
        assert_eq!(
            format!("{f:?}"),
            format!("PoolFuture {{ id: {}, state: {state} }}", f.id())
        );
    };
    let (_p, f) = pending();
    expect(&f, "pending");
    let (_p, f) = running();
    expect(&f, "running");
    expect(&cancelled(), "cancelled");
    expect(&cancelled_and_notified(), "cancelled");
    expect(&exception(), "finished raised Failed");
    expect(&successful(), "finished returned i32");

    let (p, f) = Promise::<f64>::new();
    p.set_result(1.5).unwrap();
    assert_eq!(
        format!("{f:?}"),
        format!(
            "PoolFuture {{ id: {}, state: finished returned f64 }}",
            f.id()
        )
    );

    let pool = ThreadPoolExecutor::new(1).unwrap();
    let f = pool.spawn(|| -> String { panic!("boom") }).unwrap();
    assert!(f.exception(None).unwrap().is_some());
    assert_eq!(
        format!("{f:?}"),
        format!(
            "PoolFuture {{ id: {}, state: finished raised Panicked }}",
            f.id()
        )
    );
}

// CPython #8: ids are distinct per future and stable.
#[test]
fn ids_are_unique_and_stable() {
    let (p, f) = pending();
    let g = successful();
    assert_ne!(f.id(), g.id());
    assert_eq!(p.id(), f.id());
    let before = f.id();
    p.set_result(1).unwrap();
    assert_eq!(f.id(), before);
}

// CPython #9: a finished future's snapshot (done, cancelled, running, outcome) is the same from 4
// threads × 1000 reads.
#[test]
fn snapshot_of_finished_future_is_stable_across_threads() {
    for f in [exception(), successful(), cancelled()] {
        let reference = snapshot(&f);
        thread::scope(|s| {
            for _ in 0..4 {
                s.spawn(|| {
                    for _ in 0..1000 {
                        assert_eq!(snapshot(&f), reference);
                    }
                });
            }
        });
    }
}

fn snapshot(f: &PoolFuture<i32>) -> (bool, bool, bool, String) {
    let outcome = match f.exception(Duration::ZERO) {
        Ok(None) => "value".to_string(),
        Ok(Some(e)) => format!("raised {e}"),
        Err(e) => format!("err {e:?}"),
    };
    (f.done(), f.cancelled(), f.running(), outcome)
}

// CPython #9: while a future is being completed, readers never see the outcome before `done()`, nor an
// ended future go back to unfinished.
#[test]
fn snapshot_reads_are_consistent_while_completing() {
    let (p, f) = running();
    let start = Barrier::new(5);
    thread::scope(|s| {
        for _ in 0..4 {
            s.spawn(|| {
                start.wait();
                let mut seen_end = false;
                for _ in 0..1000 {
                    let outcome = f.exception(Duration::ZERO);
                    let done = f.done();
                    match outcome {
                        Err(Error::Timeout) => {
                            assert!(!seen_end, "went back to unfinished");
                        }
                        Ok(Some(e)) => {
                            assert!(done, "outcome visible but done() false");
                            assert_eq!(io_inside(&e).to_string(), "OSError");
                            seen_end = true;
                        }
                        other => panic!("unexpected {other:?}"),
                    }
                }
            });
        }
        start.wait();
        p.set_error(os_error()).unwrap();
    });
    assert!(f.done());
}

// ---------------------------------------------------------------------------------------------------
// 2. result() / exception() / timeouts
// ---------------------------------------------------------------------------------------------------

// CPython #10: result(timeout=0) on PENDING or RUNNING gives Timeout at once.
#[test]
fn result_zero_timeout_on_unfinished_is_timeout() {
    let (_p, mut f) = pending();
    assert!(matches!(f.result(Duration::ZERO), Err(Error::Timeout)));
    let (_p, mut f) = running();
    assert!(matches!(f.result(Duration::ZERO), Err(Error::Timeout)));

    let pool = ThreadPoolExecutor::new(1).unwrap();
    let (mut busy, release) = occupy(&pool);
    let mut queued = pool.spawn(|| 1).unwrap();
    assert!(matches!(busy.result(Duration::ZERO), Err(Error::Timeout)));
    assert!(matches!(queued.result(Duration::ZERO), Err(Error::Timeout)));
    drop(release);
    assert_eq!(queued.result(None).unwrap(), 1);
}

// CPython #11: result() on a cancelled future is Cancelled, with and without a timeout.
#[test]
fn result_on_cancelled_is_cancelled() {
    for mut f in [cancelled(), cancelled_and_notified()] {
        assert!(matches!(f.result(Duration::ZERO), Err(Error::Cancelled)));
        assert!(matches!(f.result(None), Err(Error::Cancelled)));
        assert!(matches!(
            f.result(Duration::from_secs(5)),
            Err(Error::Cancelled)
        ));
    }
}

// CPython #12: result() on a failed future gives the stored error, the same object every call; on
// success it gives the value (which Rust moves out: a second call is InvalidState).
#[test]
fn result_gives_stored_error_every_time_and_value_once() {
    let mut f = exception();
    let a = f.result(Duration::ZERO).unwrap_err();
    let b = f.result(None).unwrap_err();
    assert!(
        std::ptr::eq(io_inside(&a), io_inside(&b)),
        "same error object"
    );
    assert_eq!(io_inside(&a).to_string(), "OSError");

    let mut f = successful();
    assert_eq!(f.result(Duration::ZERO).unwrap(), 42);
    assert!(matches!(
        f.result(Duration::ZERO),
        Err(Error::InvalidState(_))
    ));
    assert!(f.done() && !f.cancelled());
}

// CPython #12: the same for a thread-pool task that failed.
#[test]
fn pool_task_error_is_the_same_object_every_call() {
    let pool = ThreadPoolExecutor::new(1).unwrap();
    let mut f = pool
        .spawn_fallible(|| Err::<i32, _>(io::Error::other("bad input")))
        .unwrap();
    let a = f.result(None).unwrap_err();
    let b = f.result(None).unwrap_err();
    let c = f.exception(None).unwrap().unwrap();
    assert!(std::ptr::eq(io_inside(&a), io_inside(&b)));
    assert!(std::ptr::eq(io_inside(&a), io_inside(&c)));
    assert_eq!(a.to_string(), "the task failed: bad input");
}

// CPython #13: exception(timeout=0) per state: Timeout, Cancelled, Some(error), None.
#[test]
fn exception_zero_timeout_per_state() {
    let (_p, f) = pending();
    assert!(matches!(f.exception(Duration::ZERO), Err(Error::Timeout)));
    let (_p, f) = running();
    assert!(matches!(f.exception(Duration::ZERO), Err(Error::Timeout)));
    assert!(matches!(
        cancelled().exception(Duration::ZERO),
        Err(Error::Cancelled)
    ));
    assert!(matches!(
        cancelled_and_notified().exception(Duration::ZERO),
        Err(Error::Cancelled)
    ));
    let e = exception().exception(Duration::ZERO).unwrap().unwrap();
    assert_eq!(io_inside(&e).to_string(), "OSError");
    assert!(successful().exception(Duration::ZERO).unwrap().is_none());
}

// CPython #14: a thread blocked in result(timeout) wakes when another thread sets the result.
#[test]
fn blocked_result_wakes_on_set_result() {
    let (p, mut f) = pending();
    let (about_to_wait, waiting) = mpsc::channel();
    let waiter = thread::spawn(move || {
        about_to_wait.send(()).unwrap();
        f.result(Duration::from_secs(30))
    });
    waiting.recv().unwrap();
    p.set_result(42).unwrap();
    assert_eq!(waiter.join().unwrap().unwrap(), 42);
}

// CPython #14: the same with a pool task and no timeout (`None` waits without limit, #18).
#[test]
fn blocked_result_wakes_when_pool_task_finishes() {
    let pool = ThreadPoolExecutor::new(1).unwrap();
    let (tx, rx) = mpsc::channel::<u32>();
    let mut f = pool.spawn(move || rx.recv().unwrap() * 2).unwrap();
    let waiter = thread::spawn(move || f.result(None));
    tx.send(21).unwrap();
    assert_eq!(waiter.join().unwrap().unwrap(), 42);
}

// CPython #15: a thread blocked in result() wakes with Cancelled when the task is cancelled from
// another thread. `result` takes `&mut self`, so the other thread cancels through the pool:
// `shutdown(Queued::Cancel)`.
#[test]
fn blocked_result_wakes_on_cancel_through_shutdown() {
    let pool = ThreadPoolExecutor::new(1).unwrap();
    let (_busy, release) = occupy(&pool);
    let mut queued = pool.spawn(|| 1).unwrap();
    let (about_to_wait, waiting) = mpsc::channel();
    let waiter = thread::spawn(move || {
        about_to_wait.send(()).unwrap();
        let r = queued.result(Duration::from_secs(30));
        (r, queued.cancelled())
    });
    waiting.recv().unwrap();
    pool.shutdown_nowait(Queued::Cancel);
    let (r, was_cancelled) = waiter.join().unwrap();
    assert!(matches!(r, Err(Error::Cancelled)), "{r:?}");
    assert!(was_cancelled);
    drop(release);
    pool.shutdown(Queued::Run);
}

// CPython #15: a thread blocked in exception() (which takes `&self`) wakes on cancel() from another.
#[test]
fn blocked_exception_wakes_on_cancel() {
    let (_p, f) = pending();
    let (about_to_wait, waiting) = mpsc::channel();
    thread::scope(|s| {
        let waiter = s.spawn(|| {
            about_to_wait.send(()).unwrap();
            f.exception(Duration::from_secs(30))
        });
        waiting.recv().unwrap();
        assert!(f.cancel());
        assert!(matches!(waiter.join().unwrap(), Err(Error::Cancelled)));
    });
}

// CPython #15, #25: an `.await` registered on a pending future is woken by cancel(), and then
// resolves to Cancelled.
#[test]
fn awaiting_future_is_woken_by_cancel() {
    let (_p, mut f) = pending();
    let counter = Arc::new(CountingWaker::default());
    let waker = Waker::from(counter.clone());
    let mut cx = Context::from_waker(&waker);
    assert!(f.poll_unpin(&mut cx).is_pending());
    assert_eq!(counter.0.load(Ordering::SeqCst), 0);
    assert!(f.cancel());
    assert_eq!(
        counter.0.load(Ordering::SeqCst),
        1,
        "cancel woke the awaiting task"
    );
    assert!(matches!(
        f.poll_unpin(&mut cx),
        Poll::Ready(Err(Error::Cancelled))
    ));
}

// CPython #16: a thread blocked in exception(timeout) wakes when the future fails, and gets the error.
#[test]
fn blocked_exception_wakes_on_failure() {
    let (p, f) = running();
    let (about_to_wait, waiting) = mpsc::channel();
    thread::scope(|s| {
        let waiter = s.spawn(|| {
            about_to_wait.send(()).unwrap();
            f.exception(Duration::from_secs(30))
        });
        waiting.recv().unwrap();
        p.set_error(os_error()).unwrap();
        let e = waiter.join().unwrap().unwrap().unwrap();
        assert_eq!(io_inside(&e).to_string(), "OSError");
    });
}

// CPython #16 (+ Python's Condition.notify_all): several threads blocked in exception() on the same
// future all wake when it ends, none of them only at its timeout. The future ends only once every
// waiter is asleep (parked, the case that loses wake-ups); the timeout bounds the test if one is lost.
#[test]
fn several_threads_blocked_in_exception_all_wake() {
    let (p, f) = running();
    let (tid_tx, tids) = mpsc::channel();
    thread::scope(|s| {
        let waiters: Vec<_> = (0..3)
            .map(|_| {
                let tid_tx = tid_tx.clone();
                let f = &f;
                s.spawn(move || {
                    tid_tx.send(current_tid()).unwrap();
                    f.exception(Duration::from_secs(60))
                })
            })
            .collect();
        for _ in 0..3 {
            let tid = tids.recv_timeout(LONG).unwrap();
            assert!(wait_until_asleep(tid), "a waiter did not block");
        }
        assert!(!f.done());
        p.set_error(os_error()).unwrap();
        let ended = Instant::now();
        for w in waiters {
            let outcome = w.join().unwrap();
            assert!(matches!(outcome, Ok(Some(_))), "{outcome:?}");
        }
        assert!(
            ended.elapsed() < Duration::from_secs(20),
            "a waiter woke only at its timeout: lost wake-up"
        );
    });
}

// CPython #17: a Timeout from result()/exception() has no side effect: the task keeps running, the
// state is unchanged, and a later call succeeds.
#[test]
fn result_timeout_has_no_side_effect() {
    let pool = ThreadPoolExecutor::new(1).unwrap();
    let (started_tx, started) = mpsc::channel();
    let (release, release_rx) = mpsc::channel::<()>();
    let mut f = pool
        .spawn(move || {
            started_tx.send(()).unwrap();
            release_rx.recv().unwrap();
            "finished"
        })
        .unwrap();
    started.recv().unwrap();
    assert!(matches!(f.result(Duration::ZERO), Err(Error::Timeout)));
    assert!(matches!(
        f.result(Duration::from_millis(10)),
        Err(Error::Timeout)
    ));
    assert!(matches!(
        f.exception(Duration::from_millis(10)),
        Err(Error::Timeout)
    ));
    assert_eq!(predicates(&f), (true, false, false));
    release.send(()).unwrap();
    assert_eq!(f.result(None).unwrap(), "finished");
}

// CPython #17: in async code, a `tokio::time::timeout` around `.await` drops the await but neither
// cancels nor detaches the task: awaiting again gets the value. Also for a still-queued task.
#[tokio::test(start_paused = true)]
async fn async_timeout_does_not_cancel_the_task() {
    let pool = ThreadPoolExecutor::new(1).unwrap();
    let (release, release_rx) = mpsc::channel::<()>();
    let (started_tx, started) = mpsc::channel();
    let mut running = pool
        .spawn(move || {
            started_tx.send(()).unwrap();
            release_rx.recv().unwrap();
            1
        })
        .unwrap();
    let mut queued = pool.spawn(|| 2).unwrap();
    started.recv().unwrap();

    let timed_out = tokio::time::timeout(Duration::from_secs(1), &mut running).await;
    assert!(timed_out.is_err(), "the running task cannot finish yet");
    let timed_out = tokio::time::timeout(Duration::from_secs(1), &mut queued).await;
    assert!(timed_out.is_err(), "the queued task cannot start yet");
    assert!(running.running());
    assert!(!queued.done() && !queued.cancelled());

    release.send(()).unwrap();
    assert_eq!(running.await.unwrap(), 1);
    assert_eq!(queued.await.unwrap(), 2);
}

// CPython #18: Duration::ZERO on a finished future returns its outcome (a poll); a huge timeout is
// not an error (no overflow) and waits like None.
#[test]
fn zero_timeout_polls_and_huge_timeout_waits() {
    let mut f = successful();
    assert_eq!(f.result(Duration::ZERO).unwrap(), 42);
    assert!(exception().exception(Duration::ZERO).unwrap().is_some());

    let (p, mut f) = pending();
    let (tx, rx) = mpsc::channel();
    let waiter = thread::spawn(move || {
        tx.send(()).unwrap();
        f.result(Duration::MAX)
    });
    rx.recv().unwrap();
    p.set_result(9).unwrap();
    assert_eq!(waiter.join().unwrap().unwrap(), 9);

    let f = successful();
    assert!(f.exception(Duration::MAX).unwrap().is_none());
}

/// An error that displays as nothing (Python's "falsey" exception).
#[derive(Debug)]
struct Falsey;
impl std::fmt::Display for Falsey {
    fn fmt(&self, _: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        Ok(())
    }
}
impl std::error::Error for Falsey {}

// CPython #19: an error that "looks empty" is still a failure: the outcome is an explicit enum.
#[test]
fn empty_looking_error_is_still_raised() {
    let pool = ThreadPoolExecutor::new(1).unwrap();
    let mut f = pool.spawn_fallible(|| Err::<(), _>(Falsey)).unwrap();
    match f.result(None) {
        Err(Error::Failed(e)) => {
            assert!(e.downcast_ref::<Falsey>().is_some());
            assert_eq!(e.to_string(), "");
        }
        other => panic!("expected Failed, got {other:?}"),
    }
    assert!(f.exception(None).unwrap().is_some());
}

// CPython #20: a task that panics completes its future with Error::Panicked (with the message); the
// worker survives and runs the next task.
#[test]
fn panicking_task_fails_its_future_and_worker_survives() {
    let pool = ThreadPoolExecutor::new(1).unwrap();
    let mut bad = pool
        .spawn(|| -> thread::ThreadId { panic!("the value {} is no good", 5) })
        .unwrap();
    match bad.result(None) {
        Err(Error::Panicked(msg)) => assert_eq!(msg, "the value 5 is no good"),
        other => panic!("expected Panicked, got {other:?}"),
    }
    let mut odd = pool
        .spawn(|| -> thread::ThreadId { std::panic::panic_any(17_u8) })
        .unwrap();
    assert!(matches!(odd.result(None), Err(Error::Panicked(_))));
    let mut good = pool.spawn(|| thread::current().id()).unwrap();
    let mut good2 = pool.spawn(|| thread::current().id()).unwrap();
    let (a, b) = (good.result(None).unwrap(), good2.result(None).unwrap());
    assert_eq!(a, b, "one worker ran both");
    let m = pool.metrics();
    assert_eq!(m.workers, 1);
    assert_eq!(m.panicked, 2);
}

// CPython #21: process-pool tracebacks are checked in process_pool.rs
// (a_workers_panic_keeps_its_message_and_reports_where_it_happened); on the thread pool a panic's
// message is kept in Error::Panicked (checked in #20).

// ---------------------------------------------------------------------------------------------------
// 3. cancel()
// ---------------------------------------------------------------------------------------------------

// CPython #22: cancel() on PENDING returns true and the future becomes cancelled.
#[test]
fn cancel_pending_returns_true() {
    let (_p, mut f) = pending();
    assert!(f.cancel());
    assert_eq!(predicates(&f), (false, true, true));
    assert!(matches!(f.result(Duration::ZERO), Err(Error::Cancelled)));

    let pool = ThreadPoolExecutor::new(1).unwrap();
    let (_busy, _release) = occupy(&pool);
    let mut queued = pool.spawn(|| 1).unwrap();
    assert!(queued.cancel());
    assert_eq!(predicates(&queued), (false, true, true));
    assert!(matches!(
        queued.result(Duration::ZERO),
        Err(Error::Cancelled)
    ));
}

// CPython #23: cancel() on RUNNING or FINISHED returns false and changes nothing.
#[test]
fn cancel_running_or_finished_returns_false() {
    let (p, mut f) = running();
    assert!(!f.cancel());
    assert_eq!(predicates(&f), (true, false, false));
    p.set_result(3).unwrap();
    assert!(!f.cancel());
    assert_eq!(f.result(Duration::ZERO).unwrap(), 3);
    assert!(!f.cancel(), "also after the value was taken");

    let mut f = successful();
    assert!(!f.cancel());
    assert_eq!(predicates(&f), (false, true, false));
    assert_eq!(f.result(Duration::ZERO).unwrap(), 42);

    let f = exception();
    assert!(!f.cancel());
    assert_eq!(predicates(&f), (false, true, false));
    assert!(f.exception(Duration::ZERO).unwrap().is_some());
}

// CPython #24: cancel() on an already cancelled future returns true again, and the callbacks do not
// run again.
#[test]
fn cancel_is_idempotent_and_callbacks_run_once() {
    let (p, f) = pending();
    let calls = Arc::new(AtomicUsize::new(0));
    let c = calls.clone();
    f.add_done_callback(move |outcome| {
        assert!(matches!(outcome, Err(Error::Cancelled)));
        c.fetch_add(1, Ordering::SeqCst);
    });
    assert!(f.cancel());
    assert!(f.cancel());
    assert!(!p.set_running()); // now CANCELLED_AND_NOTIFIED
    assert!(f.cancel());
    assert_eq!(predicates(&f), (false, true, true));
    assert_eq!(calls.load(Ordering::SeqCst), 1);
}

// CPython #25: a successful cancel() runs the done callbacks at once, on the cancelling thread, and
// wakes waiters.
#[test]
fn cancel_runs_callbacks_on_cancelling_thread() {
    let (_p, f) = pending();
    let seen = Arc::new(std::sync::Mutex::new(None));
    let s = seen.clone();
    f.add_done_callback(move |outcome| {
        *s.lock().unwrap() = Some((
            thread::current().id(),
            matches!(outcome, Err(Error::Cancelled)),
        ));
    });
    assert!(seen.lock().unwrap().is_none());
    let canceller = thread::scope(|s| {
        s.spawn(|| {
            assert!(f.cancel());
            // Already ran by the time cancel() returns.
            assert!(seen.lock().unwrap().is_some());
            thread::current().id()
        })
        .join()
        .unwrap()
    });
    assert_eq!(*seen.lock().unwrap(), Some((canceller, true)));
}

// CPython #26: a task cancelled while queued never runs; cancel() never interrupts a running task.
#[test]
fn cancelled_queued_task_never_runs_and_running_task_is_not_interrupted() {
    let pool = ThreadPoolExecutor::new(1).unwrap();
    let (started_tx, started) = mpsc::channel();
    let (release, release_rx) = mpsc::channel::<()>();
    let first_ran = Arc::new(AtomicBool::new(false));
    let second_ran = Arc::new(AtomicBool::new(false));
    let fr = first_ran.clone();
    let mut first = pool
        .spawn(move || {
            started_tx.send(()).unwrap();
            let _ = release_rx.recv();
            fr.store(true, Ordering::SeqCst);
            "first"
        })
        .unwrap();
    let sr = second_ran.clone();
    let second = pool
        .spawn(move || sr.store(true, Ordering::SeqCst))
        .unwrap();
    started.recv().unwrap();
    assert!(!first.cancel());
    assert!(second.cancel());
    drop(release);
    assert_eq!(first.result(None).unwrap(), "first");
    pool.shutdown(Queued::Run);
    assert!(first_ran.load(Ordering::SeqCst));
    assert!(!second_ran.load(Ordering::SeqCst));
    assert!(second.cancelled());
}

// CPython #26: a cancelled task's closure (and what it captured) is dropped at once, not when the
// worker gets to it.
#[test]
fn cancel_drops_the_closure_at_once() {
    let pool = ThreadPoolExecutor::new(1).unwrap();
    let (_busy, _release) = occupy(&pool);
    let captured = Arc::new(());
    let c = captured.clone();
    let queued = pool.spawn(move || drop(c)).unwrap();
    assert_eq!(Arc::strong_count(&captured), 2);
    assert!(queued.cancel());
    assert_eq!(Arc::strong_count(&captured), 1);
}

// CPython #27: in this thread pool RUNNING means "executing": with 1 busy worker and 4 queued tasks,
// cancel() gives [false, true, true, true, true] (a process pool's dispatch queue does not apply).
#[test]
fn only_the_executing_task_refuses_cancel() {
    let pool = ThreadPoolExecutor::new(1).unwrap();
    let (busy, release) = occupy(&pool);
    let mut futures = vec![busy];
    for i in 0..4 {
        futures.push(
            pool.spawn(move || {
                let _ = i;
            })
            .unwrap(),
        );
    }
    let cancelled: Vec<bool> = futures.iter().map(|f| f.cancel()).collect();
    assert_eq!(cancelled, [false, true, true, true, true]);
    drop(release);
    pool.shutdown(Queued::Run);
    assert_eq!(pool.metrics().cancelled, 4);
}

// CPython #28 (DIVERGE): a cancelled future that no worker has dequeued yet counts as done in
// `wait` and `as_completed` (CPython leaves it in not_done forever: gh-92001, gh-109934).
#[test]
fn cancelled_but_not_dequeued_counts_as_done() {
    let pool = ThreadPoolExecutor::new(1).unwrap();
    let (_busy, _release) = occupy(&pool);
    let queued = pool.spawn(|| 1).unwrap();
    assert!(queued.cancel());
    assert_eq!(
        pool.metrics().queued,
        1,
        "still in the queue, not seen by a worker"
    );

    let done = wait([&queued])
        .return_when(ReturnWhen::AllCompleted)
        .into_future()
        .now_or_never()
        .expect("wait returns at once");
    assert_eq!(done.done.len(), 1);
    assert!(done.not_done.is_empty());

    let mut stream = as_completed([&queued]);
    let first = stream.next().now_or_never().expect("yielded at once");
    assert_eq!(first.unwrap().unwrap().id(), queued.id());
    assert!(stream.next().now_or_never().expect("ended").is_none());
}
