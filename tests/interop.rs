//! Pool futures and streams with the async ecosystem's everyday tools: `join_all`/`try_join_all`,
//! `FuturesUnordered` (pushed to while draining), `tokio::time::timeout`, `StreamExt` combinators on
//! `as_completed` and `map`, a tokio `JoinSet` holding pool futures, `futures::select!`, and a tokio-util
//! `CancellationToken` in `tokio::select!` and inside running tasks.

mod common;

use std::future::Future;
use std::sync::mpsc;
use std::time::Duration;

use common::LONG;
use concurrent_futures::{as_completed, Error, MapOptions, ThreadPoolExecutor};
use futures::future::{join_all, try_join_all};
use futures::stream::{FuturesUnordered, StreamExt, TryStreamExt};
use futures::FutureExt;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

/// Awaits `f`, failing the test if it takes longer than `LONG` (a hang is the failure mode here).
async fn bounded<F: Future>(f: F) -> F::Output {
    tokio::time::timeout(LONG, f).await.expect("hung")
}

#[tokio::test]
async fn join_all_and_try_join_all() {
    let pool = ThreadPoolExecutor::new(2).unwrap();
    let futures: Vec<_> = (1..=5u64)
        .map(|n| pool.submit(|n: u64| n * n, n).unwrap())
        .collect();
    let all: Vec<Result<u64, Error>> = bounded(join_all(futures)).await;
    assert_eq!(
        all.into_iter().collect::<Result<Vec<_>, _>>().unwrap(),
        [1, 4, 9, 16, 25]
    );

    let futures: Vec<_> = (1..=3u64)
        .map(|n| pool.submit(|n: u64| n + 1, n).unwrap())
        .collect();
    assert_eq!(bounded(try_join_all(futures)).await.unwrap(), [2, 3, 4]);

    // The first error ends try_join_all.
    let futures = vec![
        pool.spawn(|| 1u8).unwrap(),
        pool.spawn(|| -> u8 { panic!("boom") }).unwrap(),
    ];
    assert!(matches!(
        bounded(try_join_all(futures)).await,
        Err(Error::Panicked(m)) if m == "boom"
    ));
}

#[tokio::test]
async fn futures_unordered_takes_new_work_while_draining() {
    let pool = ThreadPoolExecutor::new(2).unwrap();
    let mut set: FuturesUnordered<_> = (0..4u64)
        .map(|n| pool.submit(|n: u64| n, n).unwrap())
        .collect();
    let mut seen = Vec::new();
    while let Some(out) = bounded(set.next()).await {
        let n = out.unwrap();
        seen.push(n);
        // Each small result spawns a follow-up, as a crawler adds the links it finds.
        if n < 4 {
            set.push(pool.submit(|n: u64| n + 10, n).unwrap());
        }
    }
    seen.sort();
    assert_eq!(seen, [0, 1, 2, 3, 10, 11, 12, 13]);
}

#[tokio::test]
async fn tokio_timeout_leaves_the_future_usable() {
    let pool = ThreadPoolExecutor::new(1).unwrap();
    let (release, released) = mpsc::channel::<u32>();
    let mut f = pool
        .spawn(move || released.recv_timeout(LONG).unwrap())
        .unwrap();
    // Timing out a wait on `&mut f` gives the future back, still running.
    let first = tokio::time::timeout(Duration::from_millis(10), &mut f).await;
    assert!(first.is_err());
    assert!(!f.done());
    release.send(7).unwrap();
    assert_eq!(bounded(f).await.unwrap(), 7);
}

#[tokio::test]
async fn stream_combinators_on_as_completed_and_map() {
    let pool = ThreadPoolExecutor::new(2).unwrap();
    let futures: Vec<_> = (1..=6u64)
        .map(|n| pool.submit(|n: u64| n * 10, n).unwrap())
        .collect();
    // Each yielded future is itself awaited: `then` chains them, `try_collect` stops at an error.
    let mut values: Vec<u64> = bounded(
        as_completed(futures)
            .then(|f| async move { f?.await })
            .try_collect::<Vec<u64>>(),
    )
    .await
    .unwrap();
    values.sort();
    assert_eq!(values, [10, 20, 30, 40, 50, 60]);

    // `map` is an ordered stream: filter, take and fold over it directly.
    let evens: Vec<u64> = bounded(
        pool.map_with(|n: u64| n * n, 0.., MapOptions::new().buffer(4))
            .unwrap()
            .map(Result::unwrap)
            .filter(|n| std::future::ready(n % 2 == 0))
            .take(5)
            .collect::<Vec<_>>(),
    )
    .await;
    assert_eq!(evens, [0, 4, 16, 36, 64]);

    let sum = bounded(
        pool.map(|n: u64| n + 1, 0..10)
            .unwrap()
            .try_fold(0, |acc, n| std::future::ready(Ok::<_, Error>(acc + n))),
    )
    .await
    .unwrap();
    assert_eq!(sum, 55);
}

#[tokio::test]
async fn a_join_set_holds_pool_futures() {
    let pool = ThreadPoolExecutor::new(2).unwrap();
    let mut set = JoinSet::new();
    for n in 0..4u64 {
        // A PoolFuture is Send + 'static: the JoinSet's task just awaits it.
        set.spawn(pool.submit(|n: u64| n * 3, n).unwrap());
    }
    let mut out = Vec::new();
    while let Some(joined) = bounded(set.join_next()).await {
        out.push(joined.expect("the awaiting task").expect("the pool task"));
    }
    out.sort();
    assert_eq!(out, [0, 3, 6, 9]);
}

#[tokio::test]
async fn futures_select_takes_a_pool_future_without_fuse() {
    // `PoolFuture` is a `FusedFuture` itself; only the plain `ready` future needs `.fuse()`.
    let pool = ThreadPoolExecutor::new(1).unwrap();
    let (release, released) = mpsc::channel::<()>();
    let mut slow = pool
        .spawn(move || released.recv_timeout(LONG).map(|_| 1))
        .unwrap();
    let mut fast = futures::future::ready(2).fuse();
    let first = futures::select! {
        s = slow => s.unwrap().unwrap(),
        f = fast => f,
    };
    assert_eq!(first, 2);
    release.send(()).unwrap();
    assert_eq!(bounded(slow).await.unwrap().unwrap(), 1);
}

/// A request's token (a child of the service's) in `tokio::select!` against a pool future: when it
/// fires, the running task is interrupted and ends with `Error::Interrupted`.
#[tokio::test]
async fn a_cancellation_token_interrupts_a_running_task() {
    let pool = ThreadPoolExecutor::new(1).unwrap();
    let service = CancellationToken::new();
    let request = service.child_token();
    let (started_tx, started) = tokio::sync::oneshot::channel();
    let mut f = pool
        .spawn_cancellable(move |token| -> Result<(), Error> {
            let _ = started_tx.send(());
            loop {
                token.check()?;
                std::thread::yield_now();
            }
        })
        .unwrap();
    bounded(started).await.unwrap();
    let canceller = service.clone();
    tokio::spawn(async move { canceller.cancel() });
    let outcome = tokio::select! {
        out = &mut f => out,
        _ = request.cancelled() => {
            assert!(f.interrupt());
            bounded(&mut f).await
        }
    };
    assert!(matches!(outcome, Err(Error::Interrupted)));
}

/// A task that polls a tokio-util token itself: cancelling the token stops every running task that
/// holds it.
#[tokio::test]
async fn a_cancellation_token_stops_tasks_that_poll_it() {
    let pool = ThreadPoolExecutor::new(2).unwrap();
    let token = CancellationToken::new();
    let (started_tx, started) = std::sync::mpsc::channel();
    let futures: Vec<_> = (0..2)
        .map(|_| {
            let (token, started_tx) = (token.clone(), started_tx.clone());
            pool.spawn(move || {
                started_tx.send(()).unwrap();
                let mut spins = 0u64;
                while !token.is_cancelled() {
                    spins += 1;
                    std::thread::yield_now();
                }
                spins
            })
            .unwrap()
        })
        .collect();
    for _ in 0..2 {
        started.recv_timeout(LONG).unwrap();
    }
    token.cancel();
    let stopped = bounded(try_join_all(futures)).await.unwrap();
    assert_eq!(stopped.len(), 2);
}
