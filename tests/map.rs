//! `map` on the thread pool: CPython's conformance group 7 (items 60–81).
//!
//! Decisions of this crate checked here: a failed element yields its error in place and iteration
//! goes on (#65, newest CPython); a timeout is one deadline from the `map` call, yields one
//! `Error::Timeout`, cancels the rest and ends (#66–68); dropping a `Map` cancels the tasks that have
//! not started whether or not it was polled (#70, DIVERGE); `buffer(b)` keeps exactly `b` tasks in
//! flight (#77); `chunksize` is honoured with one result per element (#72, #80, #81).

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::threads::{occupy, Gate, OpenOnDrop};
use common::LONG;
use concurrent_futures::{Error, Executor, Map, MapOptions, Queued, ThreadPoolExecutor};
use futures::StreamExt;

fn square(n: u64) -> u64 {
    n * n
}

fn collect<R>(map: Map<R>) -> Result<Vec<R>, Error> {
    map.into_iter().collect()
}

// CPython #60
#[test]
fn results_come_in_input_order_not_completion_order() {
    let pool = ThreadPoolExecutor::new(2).unwrap();
    let gate = Gate::default();
    let _open = gate.guard();
    // Element 0 finishes only after element 1 has finished, yet comes first.
    let g = gate.clone();
    let results = collect(
        pool.map(
            move |n: u64| {
                match n {
                    0 => g.wait(),
                    1 => g.open(),
                    _ => {}
                }
                n * 10
            },
            0..2,
        )
        .unwrap(),
    )
    .unwrap();
    assert_eq!(results, [0, 10]);
}

// CPython #60
#[test]
fn results_equal_the_sequential_map() {
    let pool = ThreadPoolExecutor::new(4).unwrap();
    let expected: Vec<u64> = (0..100).map(square).collect();
    assert_eq!(
        collect(pool.map(square, 0..100).unwrap()).unwrap(),
        expected
    );
    let chunked = pool
        .map_with(square, 0..100, MapOptions::new().chunksize(3))
        .unwrap();
    assert_eq!(collect(chunked).unwrap(), expected);
}

// CPython #61: Python zips several iterables; in Rust, zip them into tuples.
#[test]
fn zipped_inputs_end_with_the_shortest() {
    let pool = ThreadPoolExecutor::new(2).unwrap();
    let inputs = vec![1, 2, 3].into_iter().zip(vec![10, 20]);
    let sums = collect(pool.map(|(a, b): (i32, i32)| a + b, inputs).unwrap()).unwrap();
    assert_eq!(sums, [11, 22]);
}

// CPython #62
#[test]
fn map_submits_every_input_during_the_call_without_iteration() {
    let pool = ThreadPoolExecutor::new(4).unwrap();
    let (ran_tx, ran) = mpsc::channel();
    let pulled = Arc::new(AtomicUsize::new(0));
    let counter = pulled.clone();
    let inputs = (0..10u32).inspect(move |_| {
        counter.fetch_add(1, Ordering::SeqCst);
    });
    let map = pool
        .map(move |n: u32| ran_tx.send(n).unwrap(), inputs)
        .unwrap();
    // Every input was read by the call itself...
    assert_eq!(pulled.load(Ordering::SeqCst), 10);
    // ...and every task runs although the Map is never read.
    let mut seen: Vec<u32> = (0..10).map(|_| ran.recv_timeout(LONG).unwrap()).collect();
    seen.sort_unstable();
    assert_eq!(seen, (0..10).collect::<Vec<_>>());
    drop(map);
}

// CPython #63, #65 (newest CPython: after a failed element iteration goes on, nothing is cancelled).
// #64 (3.13/3.14 ended the iterator at the first failure) is superseded by #65 in this crate.
#[test]
fn a_failed_element_yields_its_error_in_place_and_iteration_continues() {
    let pool = ThreadPoolExecutor::new(2).unwrap();
    let ran = Arc::new(AtomicUsize::new(0));
    let counter = ran.clone();
    let map = pool
        .map(
            move |n: u32| {
                counter.fetch_add(1, Ordering::SeqCst);
                if n == 5 {
                    panic!("bad input {n}");
                }
                n
            },
            0..10,
        )
        .unwrap();
    let mut it = map.into_iter();
    for n in 0..5 {
        assert_eq!(it.next().unwrap().unwrap(), n);
    }
    match it.next() {
        Some(Err(Error::Panicked(msg))) => assert_eq!(msg, "bad input 5"),
        other => panic!("expected the panic of element 5, got {other:?}"),
    }
    for n in 6..10 {
        assert_eq!(it.next().unwrap().unwrap(), n);
    }
    assert!(it.next().is_none());
    assert!(it.next().is_none());
    drop(it);
    pool.shutdown(Queued::Run);
    assert_eq!(ran.load(Ordering::SeqCst), 10);
    let m = pool.metrics();
    assert_eq!(m.cancelled, 0);
    assert_eq!(m.panicked, 1);
}

// CPython #65 (process pool, chunksize=3: the other elements of the failing chunk keep their results)
// and #81 ([main]: failures are per element, not per chunk).
#[test]
fn a_failed_element_in_a_chunk_fails_only_that_element() {
    let pool = ThreadPoolExecutor::new(2).unwrap();
    let map = pool
        .map_with(
            |n: u32| {
                assert!(n != 4, "bad input {n}");
                n
            },
            0..9,
            MapOptions::new().chunksize(3),
        )
        .unwrap();
    let results: Vec<Result<u32, Error>> = map.into_iter().collect();
    assert_eq!(results.len(), 9);
    for (n, r) in results.iter().enumerate() {
        match r {
            Ok(v) => assert_eq!(*v as usize, n),
            Err(Error::Panicked(msg)) => {
                assert_eq!(n, 4);
                assert_eq!(msg, "bad input 4");
            }
            Err(e) => panic!("unexpected {e:?} at {n}"),
        }
    }
    assert!(results[4].is_err());
}

// CPython #66, #68: one deadline from the map() call; results delivered before it are kept; then one
// Timeout and the stream is exhausted. On tokio's paused clock, so no real waiting.
#[tokio::test(start_paused = true)]
async fn timeout_is_one_deadline_from_the_call_then_the_stream_ends() {
    let pool = ThreadPoolExecutor::new(1).unwrap();
    let gate = Gate::default();
    let _open = gate.guard();
    let (started_tx, started) = mpsc::channel();
    let g = gate.clone();
    let t0 = tokio::time::Instant::now();
    let mut map = pool
        .map_with(
            move |n: u64| {
                if n == 2 {
                    started_tx.send(()).unwrap();
                    g.wait();
                }
                n
            },
            [0, 0, 2],
            MapOptions::new().timeout(Duration::from_secs(5)),
        )
        .unwrap();
    // One worker runs in order: element 2 starting means elements 0 and 1 are published.
    started.recv_timeout(LONG).unwrap();
    // Time spent before iterating counts against the deadline (it is not per item).
    tokio::time::advance(Duration::from_secs(3)).await;
    assert_eq!(map.next().await.unwrap().unwrap(), 0);
    assert_eq!(map.next().await.unwrap().unwrap(), 0);
    assert!(matches!(map.next().await, Some(Err(Error::Timeout))));
    let waited = t0.elapsed();
    assert!(
        waited >= Duration::from_secs(5) && waited < Duration::from_secs(6),
        "timed out after {waited:?}, expected 5 s from the map() call"
    );
    assert!(map.next().await.is_none());
    assert!(map.next().await.is_none());
}

// CPython #66, #68 with the blocking iterator (real clock). Results already done are returned even when
// the deadline has passed, so the check holds on a loaded machine.
#[test]
fn blocking_iteration_times_out_once_then_ends() {
    let pool = ThreadPoolExecutor::new(1).unwrap();
    let gate = Gate::default();
    let _open = gate.guard();
    let (started_tx, started) = mpsc::channel();
    let g = gate.clone();
    let map = pool
        .map_with(
            move |n: u64| {
                if n == 2 {
                    started_tx.send(()).unwrap();
                    g.wait();
                }
                n
            },
            [0, 0, 2],
            MapOptions::new().timeout(Duration::from_millis(30)),
        )
        .unwrap();
    started.recv_timeout(LONG).unwrap();
    let mut it = map.into_iter();
    assert_eq!(it.next().unwrap().unwrap(), 0);
    assert_eq!(it.next().unwrap().unwrap(), 0);
    assert!(matches!(it.next(), Some(Err(Error::Timeout))));
    assert!(it.next().is_none());
    assert!(it.next().is_none());
}

fn counting_map_behind_a_busy_worker(
    timeout: Duration,
) -> (ThreadPoolExecutor, OpenOnDrop, Arc<AtomicUsize>, Map<()>) {
    let pool = ThreadPoolExecutor::new(1).unwrap();
    let (_, busy) = occupy(&pool);
    let ran = Arc::new(AtomicUsize::new(0));
    let counter = ran.clone();
    let map = pool
        .map_with(
            move |_: u32| {
                counter.fetch_add(1, Ordering::SeqCst);
            },
            0..3,
            MapOptions::new().timeout(timeout),
        )
        .unwrap();
    (pool, busy, ran, map)
}

// CPython #67 (gh-95166): on a timeout the awaited future and all later ones are cancelled.
#[tokio::test(start_paused = true)]
async fn timeout_cancels_the_awaited_task_and_all_later_ones() {
    let (pool, busy, ran, mut map) = counting_map_behind_a_busy_worker(Duration::from_secs(5));
    assert!(matches!(map.next().await, Some(Err(Error::Timeout))));
    assert!(map.next().await.is_none());
    drop(busy);
    pool.shutdown(Queued::Run);
    assert_eq!(ran.load(Ordering::SeqCst), 0, "a cancelled map task ran");
    assert_eq!(pool.metrics().cancelled, 3);
    drop(map);
}

// CPython #67 with the blocking iterator.
#[test]
fn blocking_timeout_cancels_the_awaited_task_and_all_later_ones() {
    let (pool, busy, ran, map) = counting_map_behind_a_busy_worker(Duration::from_millis(20));
    let mut it = map.into_iter();
    assert!(matches!(it.next(), Some(Err(Error::Timeout))));
    assert!(it.next().is_none());
    drop(busy);
    pool.shutdown(Queued::Run);
    assert_eq!(ran.load(Ordering::SeqCst), 0, "a cancelled map task ran");
    assert_eq!(pool.metrics().cancelled, 3);
}

// CPython #67: a running task cannot be cancelled by the timeout; it finishes, the later ones do not run.
#[test]
fn timeout_leaves_the_running_task_alone_and_cancels_the_queued_ones() {
    let pool = ThreadPoolExecutor::new(1).unwrap();
    let gate = Gate::default();
    let open = gate.guard();
    let (started_tx, started) = mpsc::channel();
    let (finished_tx, finished) = mpsc::channel();
    let g = gate.clone();
    let map = pool
        .map_with(
            move |n: u32| {
                if n == 0 {
                    started_tx.send(()).unwrap();
                    g.wait();
                }
                finished_tx.send(n).unwrap();
            },
            0..4,
            MapOptions::new().timeout(Duration::from_millis(20)),
        )
        .unwrap();
    started.recv_timeout(LONG).unwrap();
    let mut it = map.into_iter();
    assert!(matches!(it.next(), Some(Err(Error::Timeout))));
    drop(open);
    pool.shutdown(Queued::Run);
    assert_eq!(finished.try_iter().collect::<Vec<_>>(), [0]);
    assert_eq!(pool.metrics().cancelled, 3);
}

// CPython #69 ([main], gh-155852): the task's own timeout is that element's value or error, not the map's
// deadline, and iteration continues whether or not a map timeout is set.
#[test]
fn a_task_that_reports_its_own_timeout_does_not_end_the_map() {
    let pool = ThreadPoolExecutor::new(2).unwrap();
    let f = |n: u32| -> Result<u32, std::io::ErrorKind> {
        if n == 1 {
            Err(std::io::ErrorKind::TimedOut)
        } else {
            Ok(n)
        }
    };
    for opts in [MapOptions::new(), MapOptions::new().timeout(LONG)] {
        let results = collect(pool.map_with(f, 0..3, opts).unwrap()).unwrap();
        assert_eq!(results, [Ok(0), Err(std::io::ErrorKind::TimedOut), Ok(2)]);
    }
    // A panic (Rust's raised exception) under a map timeout is that element's error too.
    let map = pool
        .map_with(
            |n: u32| {
                assert!(n != 1, "timed out talking to the server");
                n
            },
            0..3,
            MapOptions::new().timeout(LONG),
        )
        .unwrap();
    let results: Vec<_> = map.into_iter().collect();
    assert_eq!(results.len(), 3);
    assert!(matches!(&results[1], Err(Error::Panicked(m)) if m.message().contains("timed out")));
    assert_eq!(*results[2].as_ref().unwrap(), 2);
}

// CPython #70, DIVERGE: dropping a Map that was never read cancels every task not yet started (CPython
// runs them all).
#[test]
fn dropping_an_unread_map_cancels_tasks_not_started() {
    let pool = ThreadPoolExecutor::new(1).unwrap();
    let (_, busy) = occupy(&pool);
    let ran = Arc::new(AtomicUsize::new(0));
    let counter = ran.clone();
    let map = pool
        .map(
            move |_: u32| {
                counter.fetch_add(1, Ordering::SeqCst);
            },
            0..5,
        )
        .unwrap();
    assert_eq!(pool.metrics().queued, 5);
    drop(map);
    drop(busy);
    pool.shutdown(Queued::Run);
    assert_eq!(ran.load(Ordering::SeqCst), 0);
    assert_eq!(pool.metrics().cancelled, 5);
}

// CPython #70: dropping the iterator after the first result cancels what has not started; the running
// task finishes.
#[test]
fn dropping_the_iterator_after_a_result_cancels_the_rest() {
    let pool = ThreadPoolExecutor::new(1).unwrap();
    let gate = Gate::default();
    let open = gate.guard();
    let (started_tx, started) = mpsc::channel();
    let ran = Arc::new(Mutex::new(Vec::new()));
    let (g, log) = (gate.clone(), ran.clone());
    let map = pool
        .map(
            move |n: u32| {
                if n == 1 {
                    started_tx.send(()).unwrap();
                    g.wait();
                }
                log.lock().unwrap().push(n);
                n
            },
            0..6,
        )
        .unwrap();
    let mut it = map.into_iter();
    assert_eq!(it.next().unwrap().unwrap(), 0);
    started.recv_timeout(LONG).unwrap();
    drop(it);
    drop(open);
    pool.shutdown(Queued::Run);
    assert_eq!(*ran.lock().unwrap(), [0, 1]);
    assert_eq!(pool.metrics().cancelled, 4);
}

// CPython #70 for the Stream: polled once (still waiting), then dropped.
#[tokio::test]
async fn dropping_a_polled_stream_cancels_tasks_not_started() {
    let pool = ThreadPoolExecutor::new(1).unwrap();
    let (_, busy) = occupy(&pool);
    let ran = Arc::new(AtomicUsize::new(0));
    let counter = ran.clone();
    let mut map = pool
        .map(
            move |_: u32| {
                counter.fetch_add(1, Ordering::SeqCst);
            },
            0..5,
        )
        .unwrap();
    assert!(futures::poll!(map.next()).is_pending());
    drop(map);
    drop(busy);
    pool.shutdown_async(Queued::Run).await;
    assert_eq!(ran.load(Ordering::SeqCst), 0);
    assert_eq!(pool.metrics().cancelled, 5);
}

// CPython #71: yielded results are moved out; the Map keeps no reference to them.
#[test]
fn yielded_results_are_not_kept_by_the_map() {
    let pool = ThreadPoolExecutor::new(2).unwrap();
    let shared = Arc::new(());
    let s = shared.clone();
    let map = pool.map(move |_: u32| s.clone(), 0..3).unwrap();
    let mut it = map.into_iter();
    for _ in 0..3 {
        drop(it.next().unwrap().unwrap());
    }
    assert!(it.next().is_none());
    // Every yielded value is gone, and the exhausted map has let go of the function too.
    assert_eq!(Arc::strong_count(&shared), 1);
    drop(it);
}

// CPython #72 (Python's thread pool ignores chunksize) and #80: here chunksize is honoured, and any
// chunk size, divisor or not, smaller or larger than the input, gives the same ordered results.
#[test]
fn chunksize_is_honoured_and_does_not_change_the_results() {
    let pool = ThreadPoolExecutor::new(3).unwrap();
    let expected: Vec<u64> = (0..40).map(square).collect();
    for chunksize in [1, 6, 40, 50] {
        let map = pool
            .map_with(square, 0..40, MapOptions::new().chunksize(chunksize))
            .unwrap();
        assert_eq!(collect(map).unwrap(), expected, "chunksize {chunksize}");
    }
    // 20 inputs in chunks of 5 are 4 tasks.
    let before = pool.metrics().completed;
    let map = pool
        .map_with(square, 0..20, MapOptions::new().chunksize(5))
        .unwrap();
    assert_eq!(collect(map).unwrap().len(), 20);
    pool.shutdown(Queued::Run);
    assert_eq!(pool.metrics().completed - before, 4);
}

// CPython #73: a buffer size of the wrong type is a compile error in Rust.
// CPython #74, #79: buffer 0 and chunksize 0 are rejected by the call itself, before any input is read.
// #72: Python's thread pool ignores chunksize; here both pools refuse 0 (MapOptions::chunksize).
#[test]
fn zero_buffer_or_chunksize_is_rejected_at_the_call() {
    let pool = ThreadPoolExecutor::new(1).unwrap();
    let pulled = Arc::new(AtomicUsize::new(0));
    let counting = |pulled: &Arc<AtomicUsize>| {
        let c = pulled.clone();
        (0..10u64).inspect(move |_| {
            c.fetch_add(1, Ordering::SeqCst);
        })
    };
    match pool.map_with(square, counting(&pulled), MapOptions::new().buffer(0)) {
        Err(Error::InvalidArgument(msg)) => assert_eq!(msg, "buffersize must be None or > 0"),
        other => panic!("expected InvalidArgument, got {other:?}"),
    }
    match pool.map_with(square, counting(&pulled), MapOptions::new().chunksize(0)) {
        Err(Error::InvalidArgument(msg)) => assert_eq!(msg, "chunksize must be >= 1"),
        other => panic!("expected InvalidArgument, got {other:?}"),
    }
    assert_eq!(pulled.load(Ordering::SeqCst), 0);
    assert_eq!(pool.metrics().workers, 0, "nothing was submitted");
}

// CPython #75: buffered results equal the unbuffered ones, also with zipped inputs.
#[test]
fn buffered_results_equal_unbuffered_ones() {
    let pool = ThreadPoolExecutor::new(3).unwrap();
    let n = 20;
    let expected: Vec<u64> = (0..n).map(square).collect();
    for buffer in [1, 2, n as usize, 2 * n as usize] {
        let map = pool
            .map_with(square, 0..n, MapOptions::new().buffer(buffer))
            .unwrap();
        assert_eq!(collect(map).unwrap(), expected, "buffer {buffer}");
        let zipped = (0..n).zip(0..n);
        let map = pool
            .map_with(
                |(a, b): (u64, u64)| a * b,
                zipped,
                MapOptions::new().buffer(buffer),
            )
            .unwrap();
        assert_eq!(collect(map).unwrap(), expected, "zipped, buffer {buffer}");
    }
}

// CPython #76: with a buffer, endless inputs work; an empty input yields nothing. (Python's "no iterable
// at all" is not expressible: map always takes one input sequence.)
#[test]
fn buffered_map_works_on_endless_and_empty_inputs() {
    let pool = ThreadPoolExecutor::new(2).unwrap();
    let firsts: Vec<u64> = pool
        .map_with(square, 0.., MapOptions::new().buffer(2))
        .unwrap()
        .into_iter()
        .take(10)
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(firsts, (0..10).map(square).collect::<Vec<_>>());

    let zipped = (0u64..).zip(1u64..);
    let sums: Vec<u64> = pool
        .map_with(
            |(a, b): (u64, u64)| a + b,
            zipped,
            MapOptions::new().buffer(3),
        )
        .unwrap()
        .into_iter()
        .take(4)
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(sums, [1, 3, 5, 7]);

    for opts in [MapOptions::new(), MapOptions::new().buffer(2)] {
        let map = pool.map_with(square, std::iter::empty(), opts).unwrap();
        assert!(map.into_iter().next().is_none());
    }
}

// CPython #77: with buffer(b) the call reads and submits exactly b inputs, and no more than b tasks are
// ever in flight (CPython's open PR gh-131466 notes b+1 during a next(); here it stays b).
#[test]
fn buffer_keeps_exactly_b_tasks_in_flight() {
    let b = 3;
    let pool = ThreadPoolExecutor::new(8).unwrap();
    let gate = Gate::default();
    let open = gate.guard();
    let pulled = Arc::new(AtomicUsize::new(0));
    let (running, max_running) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let (started_tx, started) = mpsc::channel();

    let c = pulled.clone();
    let inputs = (0..30u64).inspect(move |_| {
        c.fetch_add(1, Ordering::SeqCst);
    });
    let (g, r, m) = (gate.clone(), running.clone(), max_running.clone());
    let map = pool
        .map_with(
            move |n: u64| {
                let now = r.fetch_add(1, Ordering::SeqCst) + 1;
                m.fetch_max(now, Ordering::SeqCst);
                started_tx.send(()).unwrap();
                g.wait();
                r.fetch_sub(1, Ordering::SeqCst);
                n
            },
            inputs,
            MapOptions::new().buffer(b),
        )
        .unwrap();
    assert_eq!(pulled.load(Ordering::SeqCst), b);
    for _ in 0..b {
        started.recv_timeout(LONG).unwrap();
    }
    let m = pool.metrics();
    assert_eq!((m.running, m.queued), (b, 0));
    assert_eq!(pulled.load(Ordering::SeqCst), b);
    drop(open);

    let mut yielded = 0;
    for r in map {
        assert_eq!(r.unwrap(), yielded as u64);
        yielded += 1;
        assert!(
            pulled.load(Ordering::SeqCst) <= yielded + b,
            "more than {b} tasks in flight"
        );
    }
    assert_eq!(yielded, 30);
    assert_eq!(max_running.load(Ordering::SeqCst), b);
}

// CPython #77: after map(.., buffer=2) and shutdown, only 2 inputs were read. Iterating afterwards yields
// the 2 results and then the pool's refusal (Python's next() would raise from submit the same way).
#[test]
fn buffered_map_reads_only_b_inputs_before_shutdown() {
    let pool = ThreadPoolExecutor::new(2).unwrap();
    let pulled = Arc::new(AtomicUsize::new(0));
    let c = pulled.clone();
    let inputs = (0..4u32).inspect(move |_| {
        c.fetch_add(1, Ordering::SeqCst);
    });
    let map = pool
        .map_with(|n: u32| n.to_string(), inputs, MapOptions::new().buffer(2))
        .unwrap();
    pool.shutdown(Queued::Run);
    assert_eq!(pulled.load(Ordering::SeqCst), 2);
    let mut it = map.into_iter();
    assert_eq!(it.next().unwrap().unwrap(), "0");
    assert_eq!(it.next().unwrap().unwrap(), "1");
    assert!(matches!(it.next(), Some(Err(Error::Shutdown))));
    assert!(it.next().is_none());
}

// CPython #78: a buffered map holds the pool weakly. Once the pool is gone no more input is submitted,
// and the results already in flight are still delivered.
#[test]
fn buffered_map_stops_feeding_once_the_pool_is_dropped() {
    let pool = ThreadPoolExecutor::new(2).unwrap();
    let pulled = Arc::new(AtomicUsize::new(0));
    let c = pulled.clone();
    let inputs = (0..100u64).inspect(move |_| {
        c.fetch_add(1, Ordering::SeqCst);
    });
    let map = pool
        .map_with(square, inputs, MapOptions::new().buffer(2))
        .unwrap();
    drop(pool);
    assert_eq!(collect(map).unwrap(), [0, 1]);
    assert_eq!(pulled.load(Ordering::SeqCst), 2);
}

// CPython #84 for map: a map on a shut-down pool fails at the call.
#[test]
fn map_after_shutdown_fails_at_the_call() {
    let pool = ThreadPoolExecutor::new(1).unwrap();
    pool.shutdown(Queued::Run);
    assert!(matches!(pool.map(square, 0..3), Err(Error::Shutdown)));
    let empty = pool.map(square, std::iter::empty()).unwrap();
    assert!(empty.into_iter().next().is_none());
}

// The same code through the generic Executor trait (the path shared with the process pool).
#[test]
fn executor_trait_map_and_map_with() {
    fn sum_of_squares(pool: &impl Executor, opts: MapOptions) -> Result<u64, Error> {
        pool.map_with(square, 1..=10, opts)?.into_iter().sum()
    }
    let pool = ThreadPoolExecutor::new(2).unwrap();
    let plain: Vec<u64> = collect(Executor::map(&pool, square, 0..5).unwrap()).unwrap();
    assert_eq!(plain, [0, 1, 4, 9, 16]);
    assert_eq!(sum_of_squares(&pool, MapOptions::new()).unwrap(), 385);
    assert_eq!(
        sum_of_squares(&pool, MapOptions::new().chunksize(3).buffer(2)).unwrap(),
        385
    );
    Executor::shutdown(&pool, Queued::Run);
    assert!(matches!(
        Executor::map(&pool, square, 0..5),
        Err(Error::Shutdown)
    ));
}

// CPython #60 through the Stream, and a Map can move into a spawned task.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn map_is_a_stream_in_input_order() {
    fn assert_send<T: Send + 'static>(_: &T) {}
    let pool = ThreadPoolExecutor::new(4).unwrap();
    let map = pool
        .map_with(square, 0..50, MapOptions::new().chunksize(4).buffer(3))
        .unwrap();
    assert_send(&map);
    let results: Vec<u64> = tokio::spawn(map.map(Result::unwrap).collect())
        .await
        .unwrap();
    assert_eq!(results, (0..50).map(square).collect::<Vec<_>>());
    pool.shutdown_async(Queued::Run).await;
}

#[test]
fn a_chunk_that_fails_as_a_whole_yields_its_error_once_per_input() {
    let pool = ThreadPoolExecutor::new(1).unwrap();
    let (_busy, release) = occupy(&pool);
    let map = pool
        .map_with(|n: u32| n, 0..7, MapOptions::new().chunksize(3))
        .unwrap();
    // Every chunk is still queued behind the busy worker: the shutdown cancels all three.
    pool.shutdown_nowait(Queued::Cancel);
    let results: Vec<_> = map.into_iter().collect();
    assert_eq!(results.len(), 7, "one result per input, got {results:?}");
    assert!(results.iter().all(|r| matches!(r, Err(Error::Cancelled))));
    drop(release);
}
