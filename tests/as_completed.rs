//! CPython conformance, group 6: `as_completed()` (items 52–59 of `cpython-conformance.md`), as a
//! `Stream` and as a blocking iterator.
//!
//! CPython's fixtures are built with [`Promise`] (in `common::fixtures`). Pool tasks block on channels
//! whose senders are dropped when a test ends (also when it fails). "Yielded without blocking" is
//! checked with `now_or_never` (a single poll); timeouts run on tokio's paused clock, or are short real
//! ones where only "it timed out" is asserted.

mod common;

use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use common::fixtures::{cancelled, cancelled_and_notified, exception, successful, Probe};
use concurrent_futures::{
    as_completed, Error, FutureId, PoolFuture, Promise, Queued, ThreadPoolExecutor,
};
use futures::{FutureExt, Stream, StreamExt};

// ---------------------------------------------------------------------------------------------------
// Fixtures and helpers
// ---------------------------------------------------------------------------------------------------

/// A pool task returning `value` once `release` sends (or 0 once it is dropped).
fn gated(pool: &ThreadPoolExecutor, value: i32) -> (PoolFuture<i32>, mpsc::Sender<()>) {
    let (release, rx) = mpsc::channel::<()>();
    let f = pool
        .spawn(move || match rx.recv() {
            Ok(()) => value,
            Err(_) => 0,
        })
        .unwrap();
    (f, release)
}

/// The next item, which must be available without blocking.
#[track_caller]
fn next_now<S: Stream + Unpin>(s: &mut S) -> Option<S::Item> {
    s.next().now_or_never().expect("an item without blocking")
}

// ---------------------------------------------------------------------------------------------------
// Tests
// ---------------------------------------------------------------------------------------------------

// CPython #52: every input is yielded exactly once, including inputs already finished, failed or
// cancelled (both cancelled states), and pool futures finishing later.
#[test]
fn every_input_yielded_exactly_once() {
    let pool = ThreadPoolExecutor::new(2).unwrap();
    let (late, release) = gated(&pool, 7);
    let quick = pool.spawn(|| 1).unwrap();
    let inputs = vec![
        successful(),
        exception(),
        cancelled(),
        cancelled_and_notified(),
        late,
        quick,
    ];
    let mut expected: Vec<FutureId> = inputs.iter().map(PoolFuture::id).collect();
    release.send(()).unwrap();
    let mut yielded: Vec<FutureId> = as_completed(inputs)
        .into_iter()
        .map(|f| f.expect("no timeout").id())
        .collect();
    expected.sort();
    yielded.sort();
    assert_eq!(yielded, expected);
}

// CPython #52: the yielded owned futures are usable: values, errors, cancellations.
#[tokio::test]
async fn yielded_futures_give_their_outcomes() {
    let pool = ThreadPoolExecutor::new(2).unwrap();
    let inputs = vec![
        successful(),
        exception(),
        cancelled(),
        pool.spawn(|| 5).unwrap(),
    ];
    let mut stream = as_completed(inputs);
    let (mut ok, mut failed, mut cancels) = (Vec::new(), 0, 0);
    while let Some(f) = stream.next().await {
        match f.unwrap().await {
            Ok(v) => ok.push(v),
            Err(Error::Failed(_)) => failed += 1,
            Err(Error::Cancelled) => cancels += 1,
            Err(e) => panic!("unexpected {e:?}"),
        }
    }
    ok.sort();
    assert_eq!((ok, failed, cancels), (vec![5, 42], 1, 1));
}

// CPython #53: inputs already finished at the first next() come first, without blocking, in input
// order; later ones come in completion order.
#[tokio::test]
async fn finished_first_then_completion_order() {
    let pool = ThreadPoolExecutor::new(3).unwrap();
    let (a, release_a) = gated(&pool, 1);
    let (b, release_b) = gated(&pool, 2);
    let (c, release_c) = gated(&pool, 3);
    let (s, e, x) = (successful(), exception(), cancelled());
    let ids = [a.id(), s.id(), b.id(), e.id(), c.id(), x.id()];
    let mut stream = as_completed([&a, &s, &b, &e, &c, &x]);
    // Already done: yielded at once, in input order.
    for id in [ids[1], ids[3], ids[5]] {
        assert_eq!(next_now(&mut stream).unwrap().unwrap().id(), id);
    }
    assert!(
        stream.next().now_or_never().is_none(),
        "nothing else is done"
    );
    // Then in completion order: c, a, b.
    for (release, id) in [
        (release_c, ids[4]),
        (release_a, ids[0]),
        (release_b, ids[2]),
    ] {
        release.send(()).unwrap();
        assert_eq!(stream.next().await.unwrap().unwrap().id(), id);
    }
    assert!(stream.next().await.is_none());
}

// CPython #53: the same through the blocking iterator.
#[test]
fn blocking_iterator_yields_in_completion_order() {
    let pool = ThreadPoolExecutor::new(2).unwrap();
    let (a, release_a) = gated(&pool, 1);
    let (b, release_b) = gated(&pool, 2);
    let s = successful();
    let (a_id, b_id, s_id) = (a.id(), b.id(), s.id());
    let mut it = as_completed(vec![a, b, s]).into_iter();
    assert_eq!(it.next().unwrap().unwrap().id(), s_id);
    release_b.send(()).unwrap();
    let mut fb = it.next().unwrap().unwrap();
    assert_eq!(fb.id(), b_id);
    assert_eq!(fb.result(Duration::ZERO).unwrap(), 2);
    release_a.send(()).unwrap();
    assert_eq!(it.next().unwrap().unwrap().id(), a_id);
    assert!(it.next().is_none());
    assert!(it.next().is_none(), "stays ended");
}

// CPython #54: with a timeout and one slow future, every finished input is yielded, then one timeout
// error (the slow future is not yielded), then the stream ends. Tokio's paused clock: no real delay.
#[tokio::test(start_paused = true)]
async fn stream_times_out_after_yielding_finished() {
    let pool = ThreadPoolExecutor::new(1).unwrap();
    let (slow, _release) = gated(&pool, 1);
    let (s, e) = (successful(), exception());
    let mut stream = as_completed([&s, &e, &slow]).timeout(Duration::from_millis(100));
    assert_eq!(stream.next().await.unwrap().unwrap().id(), s.id());
    assert_eq!(stream.next().await.unwrap().unwrap().id(), e.id());
    match stream.next().await {
        Some(Err(Error::Unfinished { pending, total })) => assert_eq!((pending, total), (1, 3)),
        other => panic!("expected Unfinished, got {other:?}"),
    }
    assert!(stream.next().await.is_none());
    assert!(stream.next().await.is_none());
    assert!(
        !slow.done() && !slow.cancelled(),
        "the timeout cancels nothing"
    );
}

// CPython #54: a zero timeout, blocking iterator: the finished inputs, then the timeout error, then
// the end.
#[test]
fn zero_timeout_blocking_yields_finished_then_error() {
    let pool = ThreadPoolExecutor::new(1).unwrap();
    let (slow, _release) = gated(&pool, 1);
    let (s, x) = (successful(), cancelled());
    let items: Vec<Result<FutureId, String>> = as_completed([&s, &slow, &x])
        .timeout(Duration::ZERO)
        .into_iter()
        .map(|r| r.map(|f| f.id()).map_err(|e| e.to_string()))
        .collect();
    assert_eq!(
        items,
        [
            Ok(s.id()),
            Ok(x.id()),
            Err("1 (of 3) futures unfinished".to_string())
        ]
    );
}

// CPython #54: a short real timeout on the blocking iterator (only "it timed out" is asserted); the
// slow future is detached, not cancelled, and still completes.
#[test]
fn short_real_timeout_blocking() {
    let pool = ThreadPoolExecutor::new(1).unwrap();
    let (slow, release) = gated(&pool, 9);
    let ran = Arc::new(AtomicBool::new(false));
    let r = ran.clone();
    let mut marker = pool.spawn(move || r.store(true, Ordering::SeqCst)).unwrap();
    let mut it = as_completed(vec![successful(), slow])
        .timeout(Duration::from_millis(30))
        .into_iter();
    assert!(it.next().unwrap().is_ok());
    match it.next() {
        Some(Err(e)) => {
            assert!(e.is_timeout());
            assert!(matches!(
                e,
                Error::Unfinished {
                    pending: 1,
                    total: 2
                }
            ));
        }
        other => panic!(
            "expected a timeout, got {:?}",
            other.map(|r| r.map(|f| f.id()))
        ),
    }
    assert!(it.next().is_none());
    drop(it); // drops the slow future: it is detached
    release.send(()).unwrap();
    marker.result(None).unwrap();
    assert!(
        ran.load(Ordering::SeqCst),
        "the pool went on after the detached slow task"
    );
}

// CPython #55: the timeout message is "<pending> (of <total unique>) futures unfinished".
#[tokio::test(start_paused = true)]
async fn timeout_message_counts_unique_futures() {
    let pool = ThreadPoolExecutor::new(2).unwrap();
    let (a, _ra) = gated(&pool, 1);
    let (b, _rb) = gated(&pool, 2);
    let (s, e) = (successful(), exception());
    let mut stream = as_completed([&s, &a, &e, &b, &a, &s]).timeout(Duration::from_secs(1));
    let mut last = None;
    while let Some(item) = stream.next().await {
        if let Err(err) = item {
            last = Some(err);
        }
    }
    let err = last.expect("a timeout error");
    assert_eq!(err.to_string(), "2 (of 4) futures unfinished");
}

// CPython #56: duplicate inputs are yielded once; any iterator is accepted (repeat(f).take(3) gives
// one item).
#[test]
fn duplicates_yielded_once() {
    let (s, e) = (successful(), exception());
    let ids: Vec<FutureId> = as_completed([&s, &s, &e, &s, &e])
        .into_iter()
        .map(|f| f.unwrap().id())
        .collect();
    assert_eq!(ids, [s.id(), e.id()]);

    let ids: Vec<FutureId> = as_completed(std::iter::repeat(&s).take(3))
        .into_iter()
        .map(|f| f.unwrap().id())
        .collect();
    assert_eq!(ids, [s.id()]);
}

/// Counts its drops.
struct DropProbe(Arc<AtomicUsize>);

impl Drop for DropProbe {
    fn drop(&mut self) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

// CPython #57: the stream keeps no handle to a future it has yielded: dropping the yielded future
// frees its result while the stream lives on.
#[test]
fn yielded_future_is_not_kept() {
    let drops = Arc::new(AtomicUsize::new(0));
    let (p, f) = Promise::new();
    p.set_result(DropProbe(drops.clone())).unwrap();
    drop(p);
    let (_other_p, other) = Promise::<DropProbe>::new();
    let mut stream = as_completed(vec![f, other]);
    let yielded = next_now(&mut stream).unwrap().unwrap();
    assert_eq!(drops.load(Ordering::SeqCst), 0);
    drop(yielded);
    assert_eq!(
        drops.load(Ordering::SeqCst),
        1,
        "the stream still holds the yielded future"
    );
    assert_eq!(stream.remaining(), 1);
}

// CPython #58: the timeout counts from the as_completed call (as Python documents), not from the first
// next(): after the deadline passed unpolled, the finished input still comes first and the timeout
// error follows without any further wait.
#[tokio::test(start_paused = true)]
async fn timeout_counts_from_the_call() {
    let pool = ThreadPoolExecutor::new(1).unwrap();
    let (slow, _release) = gated(&pool, 1);
    let s = successful();
    let mut stream = as_completed([&slow, &s]).timeout(Duration::from_millis(300));
    tokio::time::advance(Duration::from_millis(500)).await;
    let before = tokio::time::Instant::now();
    assert_eq!(stream.next().await.unwrap().unwrap().id(), s.id());
    assert!(matches!(
        stream.next().await,
        Some(Err(Error::Unfinished {
            pending: 1,
            total: 2
        }))
    ));
    assert_eq!(
        tokio::time::Instant::now(),
        before,
        "no time passed: the deadline had already expired"
    );
}

// CPython #58: the same in the blocking iterator, on the real clock: the deadline passed before the
// first next(), so the slow future's turn gives the timeout error at once.
#[test]
fn blocking_timeout_counts_from_the_call() {
    let pool = ThreadPoolExecutor::new(1).unwrap();
    let (slow, _release) = gated(&pool, 1);
    let s = successful();
    let stream = as_completed([&slow, &s]).timeout(Duration::from_millis(20));
    // Real time must pass here: the point is that the deadline expires before any next().
    std::thread::sleep(Duration::from_millis(40));
    let mut it = stream.into_iter();
    assert_eq!(it.next().unwrap().unwrap().id(), s.id());
    assert!(matches!(it.next(), Some(Err(Error::Unfinished { .. }))));
}

// CPython #59: dropping the stream mid-way removes its wakers from every future still watched.
#[test]
fn dropped_stream_leaves_no_waker_behind() {
    let pool = ThreadPoolExecutor::new(2).unwrap();
    let (a, release_a) = gated(&pool, 1);
    let (b, release_b) = gated(&pool, 2);
    let s = successful();
    let probe = Arc::new(Probe);
    {
        let waker = Waker::from(probe.clone());
        let mut cx = Context::from_waker(&waker);
        let mut stream = as_completed([&s, &a, &b]);
        assert!(matches!(
            Pin::new(&mut stream).poll_next(&mut cx),
            Poll::Ready(Some(Ok(_)))
        ));
        assert!(Pin::new(&mut stream).poll_next(&mut cx).is_pending());
        assert!(
            Arc::strong_count(&probe) > 2,
            "the stream registered our waker"
        );
        drop(stream);
    }
    assert_eq!(
        Arc::strong_count(&probe),
        1,
        "a future still holds the dropped stream's waker"
    );
    release_a.send(()).unwrap();
    release_b.send(()).unwrap();
    pool.shutdown(Queued::Run);
}

// CPython #59: when the stream times out it stops watching the futures it gives up on (owned futures
// are dropped, detached, and keep none of its wakers).
#[tokio::test(start_paused = true)]
async fn timed_out_stream_leaves_no_waker_behind() {
    let pool = ThreadPoolExecutor::new(1).unwrap();
    let (slow, release) = gated(&pool, 1);
    let (probe_tx, probe_rx) = mpsc::channel();
    // Keep a second handle on the slow task's outcome: a callback reports it.
    slow.add_done_callback(move |outcome| probe_tx.send(*outcome.as_ref().unwrap()).unwrap());
    let probe = Arc::new(Probe);
    {
        let waker = Waker::from(probe.clone());
        let mut cx = Context::from_waker(&waker);
        let mut stream = as_completed(vec![slow]).timeout(Duration::from_secs(1));
        assert!(Pin::new(&mut stream).poll_next(&mut cx).is_pending());
        tokio::time::advance(Duration::from_secs(2)).await;
        assert!(matches!(
            Pin::new(&mut stream).poll_next(&mut cx),
            Poll::Ready(Some(Err(Error::Unfinished {
                pending: 1,
                total: 1
            })))
        ));
        assert!(matches!(
            Pin::new(&mut stream).poll_next(&mut cx),
            Poll::Ready(None)
        ));
        drop(stream);
    }
    assert_eq!(
        Arc::strong_count(&probe),
        1,
        "the given-up future still holds the stream's waker"
    );
    // The detached task still runs to its end.
    release.send(()).unwrap();
    assert_eq!(probe_rx.recv().unwrap(), 1);
}

// CPython #50: as_completed([]) ends at once, as a stream and as an iterator.
#[test]
fn empty_input_ends_at_once() {
    let mut stream = as_completed(Vec::<PoolFuture<i32>>::new());
    assert!(next_now(&mut stream).is_none());
    assert!(as_completed(Vec::<&PoolFuture<i32>>::new())
        .timeout(Duration::from_secs(60))
        .into_iter()
        .next()
        .is_none());
}

// CPython #52 (Rust side): a large set, all released at once, is yielded completely through the
// awaited stream on a multi-threaded runtime.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_futures_all_yielded() {
    let pool = ThreadPoolExecutor::new(4).unwrap();
    let futures: Vec<PoolFuture<usize>> =
        (0..2000).map(|i| pool.spawn(move || i).unwrap()).collect();
    let mut seen = vec![false; 2000];
    let mut stream = as_completed(futures);
    while let Some(f) = stream.next().await {
        let v = f.unwrap().await.unwrap();
        assert!(!seen[v], "yielded twice");
        seen[v] = true;
    }
    assert!(seen.iter().all(|&s| s));
}
