//! CPython conformance, group 5: `wait()` (items 39–51 of `cpython-conformance.md`), plus the `wait`
//! half of item 59 (a finished or dropped `wait` leaves no waker behind).
//!
//! CPython's fixtures are built with [`Promise`] (in `common::fixtures`). Pool tasks block on channels
//! whose senders are dropped when a test ends (also when it fails), so no test can hang the suite.
//! "Returns at once" is checked with `now_or_never` (a single poll), never with a clock.

mod common;

use std::borrow::Borrow;
use std::future::IntoFuture;
use std::io;
use std::sync::mpsc;
use std::sync::{Arc, Barrier};
use std::task::{Context, Waker};
use std::time::{Duration, Instant};

use common::fixtures::{cancelled, cancelled_and_notified, exception, successful, Probe};
use concurrent_futures::{
    wait, Done, Error, FutureId, PoolFuture, Promise, ReturnWhen, ThreadPoolExecutor,
};
use futures::FutureExt;

// ---------------------------------------------------------------------------------------------------
// Fixtures and helpers
// ---------------------------------------------------------------------------------------------------

/// A pool task that runs until released: it returns its value after `finish(true)`, fails with
/// `Error::Failed` after `finish(false)`, and also fails when `release` is dropped (the test ended).
struct Gated {
    future: PoolFuture<i32>,
    release: mpsc::Sender<bool>,
}

impl Gated {
    /// Lets the task finish with its value (`true`) or fail (`false`).
    fn finish(&self, succeed: bool) {
        self.release.send(succeed).unwrap();
    }
}

fn gated(pool: &ThreadPoolExecutor, value: i32) -> Gated {
    let (release, rx) = mpsc::channel::<bool>();
    let future = pool
        .spawn_fallible(move || match rx.recv() {
            Ok(true) => Ok(value),
            Ok(false) => Err(io::Error::other("released to fail")),
            Err(_) => Err(io::Error::other("test ended")),
        })
        .unwrap();
    Gated { future, release }
}

fn ids<T, F: Borrow<PoolFuture<T>>>(futures: &[F]) -> Vec<FutureId> {
    futures.iter().map(|f| f.borrow().id()).collect()
}

fn id_list<T>(futures: &[&PoolFuture<T>]) -> Vec<FutureId> {
    futures.iter().map(|f| f.id()).collect()
}

/// Asserts `done`/`not_done` hold exactly these futures, in input order.
#[track_caller]
fn assert_split<T, F: Borrow<PoolFuture<T>>>(
    d: &Done<F>,
    done: &[&PoolFuture<T>],
    not_done: &[&PoolFuture<T>],
) {
    assert_eq!(ids(&d.done), id_list(done), "done");
    assert_eq!(ids(&d.not_done), id_list(not_done), "not_done");
}

// ---------------------------------------------------------------------------------------------------
// Tests
// ---------------------------------------------------------------------------------------------------

// CPython #39: duplicate inputs are collapsed: wait([f, f]) gives done == [f], not_done empty.
#[test]
fn duplicates_are_collapsed() {
    let f = successful();
    let d = wait([&f, &f]).blocking();
    assert_split(&d, &[&f], &[]);

    let pool = ThreadPoolExecutor::new(1).unwrap();
    let g = gated(&pool, 1);
    let d = wait([&f, &g.future, &f, &g.future])
        .return_when(ReturnWhen::FirstCompleted)
        .blocking();
    assert_split(&d, &[&f], &[&g.future]);
}

// CPython #40: FIRST_COMPLETED returns once one future completes; it is in done, the still-running
// ones in not_done.
#[tokio::test]
async fn first_completed_returns_when_one_completes() {
    let pool = ThreadPoolExecutor::new(2).unwrap();
    let a = gated(&pool, 1);
    let b = gated(&pool, 2);
    let w = wait([&a.future, &b.future]).return_when(ReturnWhen::FirstCompleted);
    let mut w = std::pin::pin!(w.into_future());
    assert!(futures::poll!(w.as_mut()).is_pending(), "nothing done yet");
    b.finish(true);
    let d = w.await;
    assert_split(&d, &[&b.future], &[&a.future]);
    assert!(!a.future.done(), "wait cancels nothing");
}

// CPython #40 + #28 (DIVERGE): test_first_completed ported with CANCELLED_FUTURE counted as done: it
// makes FIRST_COMPLETED return at once.
#[test]
fn first_completed_with_cancelled_fixture() {
    let pool = ThreadPoolExecutor::new(1).unwrap();
    let c = cancelled();
    let slow = gated(&pool, 2);
    let d = wait([&c, &slow.future])
        .return_when(ReturnWhen::FirstCompleted)
        .into_future()
        .now_or_never()
        .expect("a cancelled input is done: returns at once");
    assert_split(&d, &[&c], &[&slow.future]);
}

// CPython #41: FIRST_COMPLETED returns without waiting if any input is already done, with every
// already-done input in done.
#[test]
fn first_completed_with_some_already_completed() {
    let pool = ThreadPoolExecutor::new(1).unwrap();
    let (s, c, cn, e) = (
        successful(),
        cancelled(),
        cancelled_and_notified(),
        exception(),
    );
    let slow = gated(&pool, 1);
    let d = wait([&s, &slow.future, &c, &cn, &e])
        .return_when(ReturnWhen::FirstCompleted)
        .into_future()
        .now_or_never()
        .expect("returns at once");
    assert_split(&d, &[&s, &c, &cn, &e], &[&slow.future]);

    // The blocking form too.
    let d = wait([&s, &slow.future])
        .return_when(ReturnWhen::FirstCompleted)
        .blocking();
    assert_split(&d, &[&s], &[&slow.future]);
}

// CPython #42: FIRST_EXCEPTION returns when a future fails; those that succeeded before are in done,
// slower ones in not_done.
#[tokio::test]
async fn first_exception_returns_on_failure() {
    let pool = ThreadPoolExecutor::new(3).unwrap();
    let fast = gated(&pool, 42);
    let failing = gated(&pool, 0);
    let slow = gated(&pool, 3);
    let w =
        wait([&fast.future, &failing.future, &slow.future]).return_when(ReturnWhen::FirstException);
    let mut w = std::pin::pin!(w.into_future());
    fast.finish(true);
    // Wait for the success to be seen, then check that it did not end the wait.
    wait([&fast.future]).await;
    assert!(
        futures::poll!(w.as_mut()).is_pending(),
        "a success does not trigger"
    );
    failing.finish(false);
    let d = w.await;
    assert_split(&d, &[&fast.future, &failing.future], &[&slow.future]);
}

// CPython #43: FIRST_EXCEPTION returns at once if an input has already failed.
#[test]
fn first_exception_with_one_already_failed() {
    let pool = ThreadPoolExecutor::new(1).unwrap();
    let (s, e) = (successful(), exception());
    let slow = gated(&pool, 1);
    let d = wait([&s, &slow.future, &e])
        .return_when(ReturnWhen::FirstException)
        .into_future()
        .now_or_never()
        .expect("returns at once");
    assert_split(&d, &[&s, &e], &[&slow.future]);
}

// CPython #44 + #28 (DIVERGE): test_first_exception_some_already_complete ported: successes and
// cancellations do not trigger FIRST_EXCEPTION; done holds them, both cancelled fixtures, and the
// failure.
#[tokio::test]
async fn first_exception_some_already_complete() {
    let pool = ThreadPoolExecutor::new(2).unwrap();
    let (s, c, cn) = (successful(), cancelled(), cancelled_and_notified());
    let failing = gated(&pool, 0);
    let slow = gated(&pool, 2);
    let w =
        wait([&s, &c, &cn, &failing.future, &slow.future]).return_when(ReturnWhen::FirstException);
    let mut w = std::pin::pin!(w.into_future());
    assert!(
        futures::poll!(w.as_mut()).is_pending(),
        "success and cancellation do not trigger"
    );
    failing.finish(false);
    let d = w.await;
    assert_split(&d, &[&s, &c, &cn, &failing.future], &[&slow.future]);
}

// CPython #44 (DESIGN): FIRST_EXCEPTION also fires for a panicking task.
#[test]
fn first_exception_fires_on_panic() {
    let pool = ThreadPoolExecutor::new(2).unwrap();
    let slow = gated(&pool, 1);
    let panicking = pool.spawn(|| -> i32 { panic!("task panic") }).unwrap();
    let d = wait([&slow.future, &panicking])
        .return_when(ReturnWhen::FirstException)
        .blocking();
    assert_split(&d, &[&panicking], &[&slow.future]);
    assert!(matches!(
        panicking.exception(Duration::ZERO),
        Ok(Some(Error::Panicked(_)))
    ));
}

// CPython #45: FIRST_EXCEPTION with no failures behaves like ALL_COMPLETED.
#[tokio::test]
async fn first_exception_without_failures_waits_for_all() {
    let pool = ThreadPoolExecutor::new(2).unwrap();
    let a = gated(&pool, 1);
    let b = gated(&pool, 2);
    let c = cancelled();
    let w = wait([&a.future, &c, &b.future]).return_when(ReturnWhen::FirstException);
    let mut w = std::pin::pin!(w.into_future());
    assert!(futures::poll!(w.as_mut()).is_pending());
    a.finish(true);
    wait([&a.future]).await;
    assert!(
        futures::poll!(w.as_mut()).is_pending(),
        "one success is not enough"
    );
    b.finish(true);
    let d = w.await;
    assert_split(&d, &[&a.future, &c, &b.future], &[]);
}

// CPython #46: ALL_COMPLETED returns when every future has finished or been cancelled, failures
// included; not_done is empty.
#[test]
fn all_completed_includes_failures_and_cancellations() {
    let pool = ThreadPoolExecutor::new(2).unwrap();
    let (s, cn, e) = (successful(), cancelled_and_notified(), exception());
    let fails = pool
        .spawn_fallible(|| Err::<i32, _>(io::Error::other("divmod by zero")))
        .unwrap();
    let works = pool.spawn(|| 21 * 2).unwrap();
    let d = wait([&s, &cn, &e, &fails, &works])
        .return_when(ReturnWhen::AllCompleted)
        .blocking();
    assert_split(&d, &[&s, &cn, &e, &fails, &works], &[]);
}

// CPython #46: ALL_COMPLETED (the default) keeps waiting while anything is unfinished.
#[tokio::test]
async fn all_completed_waits_for_the_last_one() {
    let pool = ThreadPoolExecutor::new(2).unwrap();
    let a = gated(&pool, 1);
    let b = gated(&pool, 2);
    let w = wait([&a.future, &b.future]);
    let mut w = std::pin::pin!(w.into_future());
    a.finish(false);
    wait([&a.future]).await;
    assert!(
        futures::poll!(w.as_mut()).is_pending(),
        "a failure does not end ALL_COMPLETED"
    );
    b.finish(true);
    let d = w.await;
    assert_split(&d, &[&a.future, &b.future], &[]);
}

// CPython #47: when the timeout expires, wait returns normally with the finished futures in done and
// the rest in not_done; nothing is cancelled. (Tokio's paused clock: no real delay.)
#[tokio::test(start_paused = true)]
async fn timeout_returns_partial_result_async() {
    let pool = ThreadPoolExecutor::new(1).unwrap();
    let (e, s, cn) = (exception(), successful(), cancelled_and_notified());
    let slow = gated(&pool, 5);
    let d = wait([&e, &s, &cn, &slow.future])
        .timeout(Duration::from_secs(5))
        .await;
    assert_split(&d, &[&e, &s, &cn], &[&slow.future]);
    assert!(!slow.future.done() && !slow.future.cancelled());
    slow.finish(true);
    let d = wait([&slow.future]).await;
    assert_eq!(d.done.len(), 1);
}

// CPython #47: the blocking form with a short real timeout (only "it timed out" is asserted).
#[test]
fn timeout_returns_partial_result_blocking() {
    let pool = ThreadPoolExecutor::new(1).unwrap();
    let s = successful();
    let slow = gated(&pool, 5);
    let d = wait([&s, &slow.future])
        .timeout(Duration::from_millis(50))
        .blocking();
    assert_split(&d, &[&s], &[&slow.future]);
    assert!(!slow.future.cancelled());
}

// CPython #47: a zero timeout is a poll, and owned futures come back in done/not_done, usable.
#[test]
fn zero_timeout_is_a_poll_and_returns_owned_futures() {
    let pool = ThreadPoolExecutor::new(1).unwrap();
    let slow = gated(&pool, 5);
    let (tx, rx) = mpsc::channel::<i32>();
    let slow2 = pool.spawn(move || rx.recv().unwrap()).unwrap();
    let ok = successful();
    let (slow_id, ok_id, slow2_id) = (slow.future.id(), ok.id(), slow2.id());
    let Gated { future, release } = slow;
    let mut d = wait(vec![future, ok, slow2])
        .timeout(Duration::ZERO)
        .blocking();
    assert_eq!(ids(&d.done), [ok_id]);
    assert_eq!(ids(&d.not_done), [slow_id, slow2_id]);
    assert_eq!(d.done[0].result(Duration::ZERO).unwrap(), 42);
    release.send(true).unwrap();
    tx.send(8).unwrap();
    assert_eq!(d.not_done[0].result(None).unwrap(), 5);
    assert_eq!(d.not_done[1].result(None).unwrap(), 8);
}

// CPython #48: ALL_COMPLETED over 100 futures released at the same moment returns (no lost wake-up).
// Stress: 50 rounds, alternating the blocking and the awaited form, with the wait starting while the
// tasks are being released.
#[test]
fn pending_calls_race_stress() {
    const N: usize = 100;
    let pool = ThreadPoolExecutor::new(N).unwrap();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    for round in 0..50 {
        // N tasks plus the releasing thread.
        let barrier = Arc::new(Barrier::new(N + 1));
        let futures: Vec<PoolFuture<usize>> = (0..N)
            .map(|i| {
                let b = barrier.clone();
                pool.spawn(move || {
                    b.wait();
                    i
                })
                .unwrap()
            })
            .collect();
        let releaser = {
            let b = barrier.clone();
            std::thread::spawn(move || {
                b.wait();
            })
        };
        // A generous timeout only turns a lost wake-up into a failure instead of a hang.
        let w = wait(&futures)
            .return_when(ReturnWhen::AllCompleted)
            .timeout(Duration::from_secs(60));
        let d = if round % 2 == 0 {
            w.blocking()
        } else {
            rt.block_on(w.into_future())
        };
        releaser.join().unwrap();
        assert!(d.not_done.is_empty(), "round {round}: lost a wake-up");
        assert_eq!(d.done.len(), N);
    }
    pool.shutdown(concurrent_futures::Queued::Run);
}

// CPython #49: one call mixes futures from different executors with standalone futures.
#[test]
fn mixes_executors_and_standalone_futures() {
    let pool_a = ThreadPoolExecutor::new(1).unwrap();
    let pool_b = ThreadPoolExecutor::new(1).unwrap();
    let (p, standalone) = Promise::new();
    let a = pool_a.spawn(|| 1).unwrap();
    let b = pool_b.spawn(|| 2).unwrap();
    let (c, e) = (cancelled(), exception());
    let setter = std::thread::spawn(move || p.set_result(3).unwrap());
    let mut d = wait(vec![a, c, b, standalone, e]).blocking();
    setter.join().unwrap();
    assert!(d.not_done.is_empty());
    assert_eq!(d.done.len(), 5);
    let values: Vec<Result<i32, Error>> = d.done.iter_mut().map(|f| f.result(None)).collect();
    assert_eq!(values[0].as_ref().unwrap(), &1);
    assert!(matches!(values[1], Err(Error::Cancelled)));
    assert_eq!(values[2].as_ref().unwrap(), &2);
    assert_eq!(values[3].as_ref().unwrap(), &3);
    assert!(matches!(values[4], Err(Error::Failed(_))));
}

// CPython #50: wait([]) returns at once with both collections empty (blocking and awaited, whatever
// return_when and timeout).
#[test]
fn empty_wait_returns_at_once() {
    for rw in [
        ReturnWhen::FirstCompleted,
        ReturnWhen::FirstException,
        ReturnWhen::AllCompleted,
    ] {
        let d = wait(Vec::<PoolFuture<i32>>::new())
            .return_when(rw)
            .blocking();
        assert!(d.done.is_empty() && d.not_done.is_empty());
        let d = wait(Vec::<&PoolFuture<i32>>::new())
            .return_when(rw)
            .into_future()
            .now_or_never()
            .expect("ready at once");
        assert!(d.done.is_empty() && d.not_done.is_empty());
    }
    let started = Instant::now();
    let d = wait(Vec::<PoolFuture<i32>>::new())
        .timeout(Duration::from_secs(60))
        .blocking();
    assert!(d.done.is_empty() && d.not_done.is_empty());
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "did not wait for the timeout"
    );
}

// CPython #51: a bad return_when is impossible: ReturnWhen is an enum. Its default is ALL_COMPLETED,
// as Python's.
#[test]
fn return_when_defaults_to_all_completed() {
    assert_eq!(ReturnWhen::default(), ReturnWhen::AllCompleted);
}

// CPython #59 (wait): dropping an unfinished wait removes its wakers from every future.
#[test]
fn dropped_wait_leaves_no_waker_behind() {
    let pool = ThreadPoolExecutor::new(2).unwrap();
    let a = gated(&pool, 1);
    let b = gated(&pool, 2);
    let probe = Arc::new(Probe);
    {
        let waker = Waker::from(probe.clone());
        let mut cx = Context::from_waker(&waker);
        let mut w = wait([&a.future, &b.future]).into_future();
        assert!(w.poll_unpin(&mut cx).is_pending());
        assert!(
            Arc::strong_count(&probe) > 2,
            "the wait registered our waker"
        );
        drop(w);
    }
    assert_eq!(
        Arc::strong_count(&probe),
        1,
        "a future still holds the dropped wait's waker"
    );
    // The futures are unaffected.
    a.finish(true);
    b.finish(true);
    assert_eq!(wait([&a.future, &b.future]).blocking().done.len(), 2);
}

// CPython #59 (wait): a wait that returned leaves no waker on the futures it hands back unfinished.
#[test]
fn finished_wait_leaves_no_waker_on_not_done() {
    let pool = ThreadPoolExecutor::new(2).unwrap();
    let a = gated(&pool, 1);
    let b = gated(&pool, 2);
    let Gated { future, release } = b;
    let probe = Arc::new(Probe);
    let d = {
        let waker = Waker::from(probe.clone());
        let mut cx = Context::from_waker(&waker);
        let mut w = wait(vec![future, a.future])
            .return_when(ReturnWhen::FirstCompleted)
            .into_future();
        assert!(w.poll_unpin(&mut cx).is_pending());
        release.send(true).unwrap();
        loop {
            // Our waker does nothing, so poll until the completion is seen.
            if let std::task::Poll::Ready(d) = w.poll_unpin(&mut cx) {
                break d;
            }
            std::thread::yield_now();
        }
    };
    assert_eq!(d.done.len(), 1);
    assert_eq!(d.not_done.len(), 1);
    assert_eq!(
        Arc::strong_count(&probe),
        1,
        "the still-pending future kept a waker of the finished wait"
    );
    a.release.send(true).unwrap();
}

// CPython #42/#46 (Rust side): an awaited wait inside `tokio::select!` is cancel-safe: losing the race
// drops it and the futures can be waited on again.
#[tokio::test]
async fn wait_in_select_is_cancel_safe() {
    let pool = ThreadPoolExecutor::new(1).unwrap();
    let a = gated(&pool, 1);
    let lost = tokio::select! {
        _ = wait([&a.future]).into_future() => false,
        _ = std::future::ready(()) => true,
    };
    assert!(lost, "the wait cannot finish first");
    a.finish(true);
    let d = wait([&a.future]).await;
    assert_split(&d, &[&a.future], &[]);
}

// CPython #59 at scale (the "no leak across 100k calls"): 100,000 waits and as_completed
// streams, each registered on the same pending futures and dropped, leave nothing behind.
#[test]
fn a_hundred_thousand_dropped_waits_leave_no_waker_behind() {
    use concurrent_futures::as_completed;
    use futures::StreamExt;

    let (pa, a) = Promise::<i32>::new();
    let (_pb, b) = Promise::<i32>::new();
    let probe = Arc::new(Probe);
    let waker = Waker::from(probe.clone());
    let mut cx = Context::from_waker(&waker);
    for i in 0..100_000 {
        if i % 2 == 0 {
            let mut w = wait([&a, &b]).into_future();
            assert!(w.poll_unpin(&mut cx).is_pending());
        } else {
            let mut s = as_completed([&a, &b]);
            assert!(s.poll_next_unpin(&mut cx).is_pending());
        }
    }
    drop(waker);
    assert_eq!(
        Arc::strong_count(&probe),
        1,
        "a dropped wait or as_completed left a registration on a future"
    );
    // The futures still work, and wake a fresh waiter.
    pa.set_result(1).unwrap();
    assert_eq!(
        wait([&a, &b])
            .return_when(ReturnWhen::FirstCompleted)
            .blocking()
            .done
            .len(),
        1
    );
}

// Waits that return over long-lived futures, many times: each registers on every future, one of them
// ends after that, and the wait returns with the others not done. No waker of any of those waits may
// stay on the long-lived futures, or they would gather one per call (and keep each wait's wakers alive).
#[test]
fn repeated_finished_waits_leave_nothing_on_long_lived_futures() {
    let long_lived: Vec<_> = (0..3).map(|_| Promise::<u32>::new()).collect();
    let probe = Arc::new(Probe);
    let waker = Waker::from(probe.clone());
    let mut cx = Context::from_waker(&waker);
    for round in 0..1000 {
        let (promise, fresh) = Promise::<u32>::new();
        let mut futures: Vec<_> = long_lived.iter().map(|(_, f)| f).collect();
        futures.insert(round % 4, &fresh);
        let mut w = wait(futures)
            .return_when(ReturnWhen::FirstCompleted)
            .into_future();
        assert!(w.poll_unpin(&mut cx).is_pending());
        promise.set_result(round as u32).unwrap();
        let std::task::Poll::Ready(d) = w.poll_unpin(&mut cx) else {
            panic!("the wait was woken and its future is done");
        };
        assert_eq!(d.done.len(), 1);
        assert_eq!(d.done[0].id(), fresh.id());
        assert_eq!(d.not_done.len(), 3);
    }
    drop(waker);
    assert_eq!(
        Arc::strong_count(&probe),
        1,
        "a finished wait left a waker on a long-lived future"
    );
    // The long-lived futures still wake a fresh waiter.
    long_lived[1].0.set_result(1).unwrap();
    let futures: Vec<_> = long_lived.iter().map(|(_, f)| f).collect();
    let d = wait(futures)
        .return_when(ReturnWhen::FirstCompleted)
        .blocking();
    assert_eq!(d.done.len(), 1);
}
