//! Attacks on `map`, `wait` and `as_completed` the way a demanding user makes them: a panicking element
//! in the middle of a chunk read both ways, an input iterator that panics in `next()`, a lazy endless
//! input, a deadline that has passed before the first poll, futures of a thread pool, a process pool
//! and a promise in one set, the same future many times, and streams dropped while completions land
//! on other threads.
//!
//! Every wait that a bug would turn into a hang is bounded by [`common::LONG`], so the test fails
//! instead of hanging.

mod common;

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Barrier};
use std::time::Duration;

use common::threads::hold;
use common::{within, LONG};
use concurrent_futures::{
    as_completed, wait, Error, MapOptions, PoolFuture, ProcessPoolExecutor, Promise, Queued,
    ReturnWhen, ThreadPoolExecutor,
};
use futures::StreamExt;

// ---------------------------------------------------------------------------------------------------
// Helpers

/// A one-worker pool whose worker is held by a task until `release` is sent to; returns once the
/// worker runs it.
fn held_pool() -> (ThreadPoolExecutor, mpsc::Sender<()>, PoolFuture<()>) {
    let pool = ThreadPoolExecutor::new(1).unwrap();
    let (release, busy) = hold(&pool);
    (pool, release, busy)
}

/// Ten times the input, except for 6, which panics.
fn tenfold_but_six(n: u32) -> u32 {
    if n == 6 {
        panic!("six");
    }
    n * 10
}

fn assert_tenfold_but_six(results: &[Result<u32, Error>], len: usize) {
    assert_eq!(results.len(), len);
    for (i, r) in results.iter().enumerate() {
        match r {
            Ok(v) => assert_eq!(*v, i as u32 * 10, "result {i} out of place"),
            Err(Error::Panicked(m)) => assert!(i == 6 && m == "six", "{i}: {m}"),
            Err(e) => panic!("{i}: {e}"),
        }
    }
}

// ---------------------------------------------------------------------------------------------------
// map

#[test]
fn a_panic_mid_chunk_with_a_buffer_fails_one_element_and_both_forms_agree() {
    let pool = ThreadPoolExecutor::new(2).unwrap();
    let opts = MapOptions::new().chunksize(4).buffer(2);
    let blocking: Vec<_> = pool
        .map_with(tenfold_but_six, 0..23, opts)
        .unwrap()
        .into_iter()
        .collect();
    assert_tenfold_but_six(&blocking, 23);
    let streamed: Vec<_> = futures::executor::block_on(
        pool.map_with(tenfold_but_six, 0..23, opts)
            .unwrap()
            .collect::<Vec<_>>(),
    );
    assert_tenfold_but_six(&streamed, 23);
}

/// An input iterator that yields `0..n` and then panics.
struct PanicsAfter {
    next: u32,
    n: u32,
}

impl Iterator for PanicsAfter {
    type Item = u32;
    fn next(&mut self) -> Option<u32> {
        if self.next == self.n {
            panic!("input {} cannot be read", self.n);
        }
        self.next += 1;
        Some(self.next - 1)
    }
}

#[test]
fn an_input_panicking_at_the_call_cancels_the_tasks_it_submitted() {
    let (pool, release, busy) = held_pool();
    let caught = catch_unwind(AssertUnwindSafe(|| {
        pool.map(|n: u32| n, PanicsAfter { next: 0, n: 3 })
    }));
    assert!(caught.is_err(), "the input's panic reaches the caller");
    // The three inputs read before the panic were submitted; the map that held them was dropped by
    // the unwinding, which cancels what has not started.
    release.send(()).unwrap();
    let mut busy = busy;
    busy.result(LONG).unwrap();
    let p = pool.clone();
    within("the call", move || p.shutdown(Queued::Run));
    let m = pool.metrics();
    assert_eq!((m.completed, m.cancelled), (1, 3));
}

#[test]
fn an_input_panicking_mid_stream_reaches_the_reader_and_the_map_still_drops_cleanly() {
    let pool = ThreadPoolExecutor::new(2).unwrap();
    let mut it = pool
        .map_with(
            |n: u32| n + 1,
            PanicsAfter { next: 0, n: 5 },
            MapOptions::new().buffer(2).chunksize(2),
        )
        .unwrap()
        .into_iter();
    let mut got = Vec::new();
    let caught = catch_unwind(AssertUnwindSafe(|| {
        for r in it.by_ref() {
            got.push(r.unwrap());
        }
    }));
    assert!(caught.is_err(), "the input's panic reaches the reader");
    // Inputs 0..4 went out in two chunks before the fifth read panicked.
    assert!(got.len() <= 4 && got.iter().enumerate().all(|(i, v)| *v == i as u32 + 1));
    drop(it);
    within("the call", move || pool.shutdown(Queued::Run));
}

/// Inputs `0..n` that count how many were read.
fn counted(n: u32) -> (Arc<AtomicUsize>, impl Iterator<Item = u32> + Send + 'static) {
    let read = Arc::new(AtomicUsize::new(0));
    let counter = read.clone();
    let inputs = (0..n).inspect(move |_| {
        counter.fetch_add(1, Ordering::SeqCst);
    });
    (read, inputs)
}

// `MapOptions::buffer`: "one more each time a result is taken". The task taken is replaced while its
// result goes to the reader, so the pool works on the next input while the reader handles this one
// (Python 3.14's buffered map also has b tasks in flight between two `next()` calls).
#[test]
fn a_buffered_map_submits_the_next_input_as_a_result_is_taken() {
    let pool = ThreadPoolExecutor::new(2).unwrap();
    let (read, inputs) = counted(5);
    let (ran_tx, ran) = mpsc::channel();
    let mut it = pool
        .map_with(
            move |n: u32| {
                ran_tx.send(n).unwrap();
                n
            },
            inputs,
            MapOptions::new().buffer(1),
        )
        .unwrap()
        .into_iter();
    assert_eq!(read.load(Ordering::SeqCst), 1);
    assert_eq!(it.next().unwrap().unwrap(), 0);
    assert_eq!(
        read.load(Ordering::SeqCst),
        2,
        "input 1 not read when result 0 was taken"
    );
    // Input 1's task runs while the reader holds result 0.
    assert_eq!(ran.recv_timeout(LONG).unwrap(), 0);
    assert_eq!(ran.recv_timeout(LONG).unwrap(), 1);
    assert_eq!(it.map(Result::unwrap).collect::<Vec<_>>(), [1, 2, 3, 4]);

    // With chunks: taking the first result of a chunk submits the next chunk.
    let (read, inputs) = counted(9);
    let mut it = pool
        .map_with(|n: u32| n, inputs, MapOptions::new().buffer(1).chunksize(3))
        .unwrap()
        .into_iter();
    assert_eq!(read.load(Ordering::SeqCst), 3);
    assert_eq!(it.next().unwrap().unwrap(), 0);
    assert_eq!(read.load(Ordering::SeqCst), 6);
}

// An input that panics in `next()` ends the reading of inputs: its panic reaches the reader once, the
// results of the tasks already in flight still come, in order, and the map then ends, without ever
// calling the panicked iterator again.
#[test]
fn after_an_input_panics_the_tasks_in_flight_are_still_delivered() {
    let pool = ThreadPoolExecutor::new(2).unwrap();
    let mut it = pool
        .map_with(
            |n: u32| n * 2,
            PanicsAfter { next: 0, n: 3 },
            MapOptions::new().buffer(2),
        )
        .unwrap()
        .into_iter();
    let mut got = Vec::new();
    let mut panics = 0;
    loop {
        match catch_unwind(AssertUnwindSafe(|| it.next())) {
            Ok(Some(r)) => got.push(r.unwrap()),
            Ok(None) => break,
            Err(_) => {
                panics += 1;
                assert!(panics < 2, "the panicked input was read again");
            }
        }
    }
    assert_eq!(panics, 1);
    assert_eq!(got, [0, 2, 4], "a result in flight was lost");
}

#[test]
fn an_endless_lazy_input_is_read_only_as_far_as_the_buffer_needs() {
    let pool = ThreadPoolExecutor::new(2).unwrap();
    let read = Arc::new(AtomicUsize::new(0));
    let counter = read.clone();
    let inputs = (0u64..).inspect(move |_| {
        counter.fetch_add(1, Ordering::SeqCst);
    });
    let map = pool
        .map_with(
            |n: u64| n * 3,
            inputs,
            MapOptions::new().chunksize(5).buffer(3),
        )
        .unwrap();
    // At the call: three chunks of five.
    assert_eq!(read.load(Ordering::SeqCst), 15);
    let first: Vec<u64> = map.into_iter().take(12).collect::<Result<_, _>>().unwrap();
    assert_eq!(first, (0..12).map(|n| n * 3).collect::<Vec<_>>());
    // Results 0..12 came from chunks 0, 1 and 2 (chunk 2's last three still wait to be read): each
    // chunk taken was replaced by one more, and nothing else was read.
    assert_eq!(read.load(Ordering::SeqCst), 30);
}

#[tokio::test(start_paused = true)]
async fn a_deadline_passed_before_the_first_poll_times_out_at_once_and_cancels_every_chunk() {
    let (pool, release, _busy) = held_pool();
    let mut map = pool
        .map_with(
            |n: u32| n,
            0..9,
            MapOptions::new()
                .timeout(Duration::from_secs(5))
                .chunksize(3),
        )
        .unwrap();
    tokio::time::advance(Duration::from_secs(6)).await;
    assert!(matches!(map.next().await, Some(Err(Error::Timeout))));
    assert!(map.next().await.is_none());
    release.send(()).unwrap();
    let p = pool.clone();
    tokio::task::spawn_blocking(move || p.shutdown(Queued::Run))
        .await
        .unwrap();
    let m = pool.metrics();
    assert_eq!(
        (m.completed, m.cancelled),
        (1, 3),
        "every queued chunk cancelled"
    );
}

#[test]
fn the_blocking_form_times_out_from_the_call_too() {
    let (pool, release, _busy) = held_pool();
    let map = pool
        .map_with(
            |n: u32| n,
            0..4,
            MapOptions::new().timeout(Duration::from_millis(1)),
        )
        .unwrap();
    // The deadline is behind us by the time the iteration starts: one Timeout, then the end.
    std::thread::sleep(Duration::from_millis(5));
    let got: Vec<_> = map.into_iter().collect();
    assert_eq!(got.len(), 1);
    assert!(matches!(got[0], Err(Error::Timeout)));
    release.send(()).unwrap();
}

#[test]
fn a_map_over_a_pool_whose_last_handle_is_dropped_mid_stream_yields_what_was_in_flight() {
    let (pool, release, _busy) = held_pool();
    let map = pool
        .map_with(|n: u32| n * 2, 0..100, MapOptions::new().buffer(3))
        .unwrap();
    drop(pool);
    release.send(()).unwrap();
    let got: Vec<u32> = within("the call", move || {
        map.into_iter().collect::<Result<_, _>>().unwrap()
    });
    assert_eq!(got, [0, 2, 4]);
}

#[test]
fn a_map_cancelled_by_a_shutdown_mid_stream_yields_an_error_per_input_then_ends() {
    let (pool, release, _busy) = held_pool();
    let map = pool
        .map_with(|n: u32| n, 0..7, MapOptions::new().chunksize(3))
        .unwrap();
    pool.shutdown_nowait(Queued::Cancel);
    release.send(()).unwrap();
    let got: Vec<_> = within("the call", move || map.into_iter().collect::<Vec<_>>());
    assert_eq!(got.len(), 7);
    assert!(got.iter().all(|r| matches!(r, Err(Error::Cancelled))));
}

// ---------------------------------------------------------------------------------------------------
// wait and as_completed

fn fails(s: String) -> Result<u8, std::num::ParseIntError> {
    s.parse()
}

fn forty_two(_: ()) -> u32 {
    42
}

#[test]
fn futures_of_a_thread_pool_a_process_pool_and_a_promise_mix_in_one_set() {
    let threads = ThreadPoolExecutor::new(1).unwrap();
    let procs = ProcessPoolExecutor::new(1).unwrap();
    let (promise, promised) = Promise::<u32>::new();
    let (release, gate) = mpsc::channel::<()>();
    let held = threads
        .spawn(move || {
            let _ = gate.recv();
            7u32
        })
        .unwrap();
    let from_procs = procs.submit(forty_two, ()).unwrap();
    let futures = vec![held, from_procs, promised];

    // FirstCompleted: the process pool's task (or nothing else) ends first.
    let done = wait(&futures)
        .return_when(ReturnWhen::FirstCompleted)
        .timeout(LONG)
        .blocking();
    assert_eq!(done.done.len(), 1);
    assert_eq!(done.done[0].id(), futures[1].id());

    promise.set_result(3).unwrap();
    release.send(()).unwrap();
    let mut values: Vec<u32> = as_completed(futures)
        .timeout(LONG)
        .into_iter()
        .map(|f| f.unwrap().result(None).unwrap())
        .collect();
    values.sort_unstable();
    assert_eq!(values, [3, 7, 42]);
    procs.shutdown(Queued::Run);
}

#[test]
fn first_exception_fires_for_a_process_pool_task_returning_err() {
    let threads = ThreadPoolExecutor::new(1).unwrap();
    let procs = ProcessPoolExecutor::new(1).unwrap();
    let (release, gate) = mpsc::channel::<()>();
    let held = threads
        .spawn(move || {
            let _ = gate.recv();
            0u8
        })
        .unwrap();
    let failing = procs.submit_fallible(fails, "x".to_string()).unwrap();
    let futures = [held, failing];
    let done = wait(&futures)
        .return_when(ReturnWhen::FirstException)
        .timeout(LONG)
        .blocking();
    assert_eq!(done.done.len(), 1);
    assert!(matches!(
        done.done[0].exception(None),
        Ok(Some(Error::Failed(_)))
    ));
    assert_eq!(done.not_done.len(), 1);
    release.send(()).unwrap();
    procs.shutdown(Queued::Run);
}

#[test]
fn the_same_future_a_thousand_times_is_one_future() {
    let pool = ThreadPoolExecutor::new(1).unwrap();
    let f = pool.spawn(|| 1u8).unwrap();
    let refs: Vec<&PoolFuture<u8>> = std::iter::repeat(&f).take(1000).collect();
    let done = wait(refs.iter().copied()).timeout(LONG).blocking();
    assert_eq!(done.done.len(), 1);
    let yielded: Vec<_> = as_completed(refs).timeout(LONG).into_iter().collect();
    assert_eq!(yielded.len(), 1);
    assert!(yielded[0].is_ok());
}

#[test]
fn streams_dropped_while_completions_land_on_other_threads() {
    let pool = ThreadPoolExecutor::new(2).unwrap();
    for round in 0..200 {
        let start = Arc::new(Barrier::new(3));
        let futures: Vec<_> = (0..64u32)
            .map(|i| {
                let start = start.clone();
                pool.spawn(move || {
                    if i < 2 {
                        start.wait();
                    }
                    i
                })
                .unwrap()
            })
            .collect();
        let mut stream = as_completed(futures);
        start.wait();
        // Take a few (round decides how many), then drop the stream while the rest complete.
        let take = round % 5;
        for _ in 0..take {
            let f = futures::executor::block_on(stream.next());
            assert!(f.is_some());
        }
        drop(stream);
        let futures: Vec<_> = (0..16u32).map(|i| pool.spawn(move || i).unwrap()).collect();
        let mut w = wait(&futures).return_when(ReturnWhen::FirstCompleted);
        if round % 2 == 0 {
            w = w.timeout(Duration::ZERO);
        }
        drop(w.blocking());
    }
    within("the call", move || pool.shutdown(Queued::Run));
}

#[test]
fn a_future_completing_while_wait_registers_is_never_missed() {
    let pool = ThreadPoolExecutor::new(2).unwrap();
    for _ in 0..500 {
        let go = Arc::new(Barrier::new(2));
        let g = go.clone();
        let f = pool
            .spawn(move || {
                g.wait();
            })
            .unwrap();
        let slow = {
            let (tx, rx) = mpsc::channel::<()>();
            (
                pool.spawn(move || {
                    let _ = rx.recv();
                })
                .unwrap(),
                tx,
            )
        };
        let futures = [&f, &slow.0];
        go.wait();
        let done = wait(futures)
            .return_when(ReturnWhen::FirstCompleted)
            .timeout(LONG)
            .blocking();
        assert_eq!(done.done.len(), 1, "the finished task was missed");
        drop(slow.1);
    }
}

#[test]
fn as_completed_over_a_hundred_thousand_promises_completed_from_another_thread() {
    let (promises, futures): (Vec<_>, Vec<_>) = (0..100_000u32).map(|_| Promise::new()).unzip();
    let stream = as_completed(futures).timeout(LONG);
    let setter = std::thread::spawn(move || {
        for (i, p) in promises.into_iter().enumerate().rev() {
            p.set_result(i as u32).unwrap();
        }
    });
    let mut seen = vec![false; 100_000];
    let mut count = 0;
    for f in stream {
        let v = f.unwrap().result(None).unwrap() as usize;
        assert!(!seen[v], "{v} twice");
        seen[v] = true;
        count += 1;
    }
    assert_eq!(count, 100_000);
    setter.join().unwrap();
}
