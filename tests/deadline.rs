//! Deadlines of `wait`, `as_completed` and `map` under the runtimes a caller may have: a tokio runtime
//! with timers (real or paused clock), one built without `enable_time`, and no tokio at all.

mod common;

use std::future::IntoFuture;
use std::time::{Duration, Instant};

use concurrent_futures::{as_completed, wait, Error, MapOptions, Promise, ThreadPoolExecutor};
use futures::StreamExt;

use common::LONG;

/// The median of `n` runs of `f`, each returning the time it measured: one slow run on a loaded
/// machine does not decide it.
async fn median_of<F, Fut>(n: usize, mut f: F) -> Duration
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Duration>,
{
    let mut times = Vec::with_capacity(n);
    for _ in 0..n {
        times.push(f().await);
    }
    times.sort();
    times[n / 2]
}

// An already elapsed or zero timeout is answered by the clock, not by tokio's timer, whose next tick
// can be a millisecond away.
#[tokio::test(flavor = "current_thread")]
async fn zero_timeout_under_tokio_returns_at_once() {
    let (_p, pending) = Promise::<u32>::new();
    let median = median_of(9, || async {
        let start = Instant::now();
        let done = wait([&pending]).timeout(Duration::ZERO).await;
        let took = start.elapsed();
        assert_eq!((done.done.len(), done.not_done.len()), (0, 1));
        took
    })
    .await;
    assert!(
        median < Duration::from_micros(100),
        "wait with a zero timeout took {median:?}"
    );

    let median = median_of(9, || async {
        let start = Instant::now();
        let mut s = as_completed([&pending]).timeout(Duration::ZERO);
        let item = s.next().await;
        let took = start.elapsed();
        assert!(matches!(item, Some(Err(Error::Unfinished { .. }))));
        took
    })
    .await;
    assert!(
        median < Duration::from_micros(100),
        "as_completed with a zero timeout took {median:?}"
    );
}

// A deadline that passed before the first poll (the caller was busy elsewhere) is seen elapsed at
// once. Only the await is timed.
#[tokio::test(flavor = "current_thread")]
async fn elapsed_timeout_under_tokio_returns_at_once() {
    let (_p, pending) = Promise::<u32>::new();
    let median = median_of(5, || async {
        let mut s = as_completed([&pending]).timeout(Duration::from_millis(1));
        std::thread::sleep(Duration::from_millis(2));
        let start = Instant::now();
        let item = s.next().await;
        let took = start.elapsed();
        assert!(matches!(item, Some(Err(Error::Unfinished { .. }))));
        took
    })
    .await;
    assert!(
        median < Duration::from_micros(100),
        "as_completed with an elapsed timeout took {median:?}"
    );
}

// On a paused clock a zero timeout returns without the runtime advancing its clock to a timer tick.
#[tokio::test(start_paused = true)]
async fn zero_timeout_on_a_paused_clock_does_not_advance_it() {
    let (_p, pending) = Promise::<u32>::new();
    let start = tokio::time::Instant::now();
    let done = wait([&pending]).timeout(Duration::ZERO).await;
    assert_eq!(done.not_done.len(), 1);
    let mut s = as_completed([&pending]).timeout(Duration::ZERO);
    assert!(matches!(
        s.next().await,
        Some(Err(Error::Unfinished { .. }))
    ));
    assert_eq!(tokio::time::Instant::now(), start, "the paused clock moved");
}

// A long timeout on a paused clock still follows tokio's clock (auto-advance), not real time.
#[tokio::test(start_paused = true)]
async fn long_timeout_on_a_paused_clock_follows_the_paused_clock() {
    let (_p, pending) = Promise::<u32>::new();
    let real = Instant::now();
    let start = tokio::time::Instant::now();
    let done = wait([&pending]).timeout(Duration::from_secs(3600)).await;
    assert_eq!(done.not_done.len(), 1);
    assert!(tokio::time::Instant::now() - start >= Duration::from_secs(3600));
    assert!(real.elapsed() < LONG, "waited in real time");
}

/// Documented on `wait`: a paused clock jumps while the runtime awaits pool work, so a long timeout
/// passes at once with the task still running (where tokio's own `spawn_blocking` holds the clock).
#[tokio::test(start_paused = true)]
async fn a_paused_clock_does_not_wait_for_a_running_pool_task() {
    let pool = ThreadPoolExecutor::new(1).unwrap();
    let (release, gate) = std::sync::mpsc::channel::<()>();
    let (started_tx, started) = std::sync::mpsc::channel();
    let running = pool
        .spawn(move || {
            started_tx.send(()).unwrap();
            gate.recv().unwrap();
        })
        .unwrap();
    started.recv().unwrap();
    let done = wait([&running]).timeout(Duration::from_secs(3600)).await;
    assert_eq!(done.not_done.len(), 1);
    assert!(running.running(), "timed out while the task still runs");
    release.send(()).unwrap();
    running.await.unwrap();
}

fn runtime_without_timers(multi_thread: bool) -> tokio::runtime::Runtime {
    let mut b = if multi_thread {
        let mut b = tokio::runtime::Builder::new_multi_thread();
        b.worker_threads(1);
        b
    } else {
        tokio::runtime::Builder::new_current_thread()
    };
    b.enable_io().build().unwrap()
}

// A runtime built without `enable_time` has no tokio timer; the deadline falls back to the shared
// timer thread instead of panicking.
#[test]
fn a_runtime_without_timers_gets_working_timeouts() {
    for multi_thread in [false, true] {
        let rt = runtime_without_timers(multi_thread);
        let (_p, pending) = Promise::<u32>::new();
        let timeout = Duration::from_millis(20);
        let start = Instant::now();
        let done = rt.block_on(async { wait([&pending]).timeout(timeout).await });
        assert_eq!(done.not_done.len(), 1);
        assert!(start.elapsed() >= timeout, "returned before its deadline");

        let items = rt.block_on(async {
            let s = as_completed([&pending]).timeout(timeout);
            s.collect::<Vec<_>>().await
        });
        assert!(matches!(items[..], [Err(Error::Unfinished { .. })]));

        let pool = ThreadPoolExecutor::new(1).unwrap();
        let (release, gate) = std::sync::mpsc::channel::<()>();
        let gate = std::sync::Mutex::new(gate);
        let items: Vec<_> = rt.block_on(async {
            let opts = MapOptions::new().timeout(timeout);
            let m = pool
                .map_with(
                    move |i: u32| {
                        let _ = gate.lock().unwrap().recv_timeout(LONG);
                        i
                    },
                    [1, 2],
                    opts,
                )
                .unwrap();
            m.collect::<Vec<_>>().await
        });
        assert!(matches!(items[..], [Err(Error::Timeout)]), "{items:?}");
        drop(release);
    }
}

// Under a non-tokio executor, a timeout fires (on the shared timer thread) and a completion before it
// wins.
#[test]
fn timeouts_under_block_on_fire_and_are_beaten_by_completion() {
    let (_p, pending) = Promise::<u32>::new();
    let timeout = Duration::from_millis(20);
    let start = Instant::now();
    let done = futures::executor::block_on(wait([&pending]).timeout(timeout).into_future());
    assert_eq!(done.not_done.len(), 1);
    assert!(start.elapsed() >= timeout);

    let (p, f) = Promise::<u32>::new();
    let setter = std::thread::spawn(move || p.set_result(3).unwrap());
    let done = futures::executor::block_on(wait([&f]).timeout(LONG).into_future());
    assert_eq!(done.done.len(), 1);
    setter.join().unwrap();
}

// ---------------------------------------------------------------------------------------------------
// A deadline that outlives the runtime whose timer it first chose, polled on under another executor:
// tokio's `Sleep` panics once its runtime has shut down.

/// Runs `body` on a tokio runtime with timers, then shuts that runtime down.
fn in_a_runtime_then_gone(body: impl std::future::Future) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap();
    rt.block_on(body);
}

#[test]
fn a_wait_first_polled_in_a_runtime_that_is_gone_still_ends_under_block_on() {
    let (promise, f) = Promise::<u32>::new();
    let mut w = Box::pin(wait([&f]).timeout(Duration::from_secs(3600)).into_future());
    in_a_runtime_then_gone(async {
        assert!(futures::poll!(w.as_mut()).is_pending());
    });
    promise.set_result(1).unwrap();
    let done = futures::executor::block_on(w);
    assert_eq!(done.done.len(), 1);
}

#[test]
fn a_timed_wait_first_polled_in_a_runtime_that_is_gone_still_times_out_under_block_on() {
    let (_promise, f) = Promise::<u32>::new();
    let mut w = Box::pin(wait([&f]).timeout(Duration::from_millis(50)).into_future());
    in_a_runtime_then_gone(async {
        assert!(futures::poll!(w.as_mut()).is_pending());
    });
    let done = futures::executor::block_on(w);
    assert_eq!(done.not_done.len(), 1);
}

#[test]
fn a_timed_as_completed_first_polled_in_a_runtime_that_is_gone_still_times_out() {
    let (_promise, f) = Promise::<u32>::new();
    let mut s = as_completed([&f]).timeout(Duration::from_millis(50));
    in_a_runtime_then_gone(async {
        assert!(futures::poll!(s.next()).is_pending());
    });
    let got = futures::executor::block_on(s.next());
    assert!(
        matches!(got, Some(Err(Error::Unfinished { pending: 1, .. }))),
        "{got:?}"
    );
}

#[test]
fn a_timed_map_first_polled_in_a_runtime_that_is_gone_still_times_out() {
    let pool = ThreadPoolExecutor::new(1).unwrap();
    let (release, gate) = std::sync::mpsc::channel::<()>();
    let gate = std::sync::Mutex::new(gate);
    let mut map = pool
        .map_with(
            move |()| {
                let _ = gate.lock().unwrap().recv();
            },
            [()],
            MapOptions::new().timeout(Duration::from_millis(50)),
        )
        .unwrap();
    in_a_runtime_then_gone(async {
        assert!(futures::poll!(map.next()).is_pending());
    });
    let got = futures::executor::block_on(map.next());
    assert!(matches!(got, Some(Err(Error::Timeout))), "{got:?}");
    release.send(()).unwrap();
}
