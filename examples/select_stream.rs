//! `tokio::select!` over three things at once: an `as_completed` stream of pool futures, a ticker, and a
//! shutdown signal (a tokio-util `CancellationToken`, as services pass shutdown around).
//!
//! Ten tasks go to a pool of two workers. Results print as they complete, the ticker prints progress,
//! and after four results an "operator" fires the shutdown token. Then the remaining work is stopped
//! and reported: tasks still queued are cancelled (`shutdown_nowait(Queued::Cancel)`: they never
//! start), and the running ones are interrupted (they poll the shutdown token and stop with
//! `Error::Interrupted`). The stream is drained to the end, so every task is accounted for.
//!
//! Run with `cargo run --example select_stream`.

use std::time::Duration;

use concurrent_futures::{as_completed, Error, Queued, ThreadPoolExecutor};
use futures::StreamExt;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// A task that works for `slices` × 10 ms, checking the shutdown token between slices.
fn work(id: u32, slices: u32, shutdown: &CancellationToken) -> Result<u32, Error> {
    for _ in 0..slices {
        if shutdown.is_cancelled() {
            return Err(Error::Interrupted);
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    Ok(id * 100)
}

#[tokio::main]
async fn main() -> Result<(), Error> {
    let pool = ThreadPoolExecutor::new(2)?;
    let shutdown = CancellationToken::new();

    let futures = (0..10u32)
        .map(|id| {
            let token = shutdown.clone();
            // `spawn_cancellable` hands the task the pool's own token too (fired by
            // `PoolFuture::interrupt`); this task also listens to the service's shutdown token.
            pool.spawn_cancellable(move |own| {
                if own.is_cancelled() {
                    return Err(Error::Interrupted);
                }
                work(id, 3 + id % 4, &token)
            })
        })
        .collect::<Result<Vec<_>, _>>()?;

    // The operator: fires the shutdown token after four results.
    let (completed_tx, mut completed_rx) = mpsc::unbounded_channel::<()>();
    let operator = {
        let shutdown = shutdown.clone();
        tokio::spawn(async move {
            for _ in 0..4 {
                if completed_rx.recv().await.is_none() {
                    return;
                }
            }
            println!("operator: shutdown!");
            shutdown.cancel();
        })
    };

    let mut stream = as_completed(futures);
    let mut ticker = tokio::time::interval(Duration::from_millis(25));
    let mut done = 0;
    loop {
        tokio::select! {
            next = stream.next() => {
                let Some(f) = next else { break };
                match f?.await {
                    Ok(value) => {
                        done += 1;
                        println!("result: {value}");
                        let _ = completed_tx.send(());
                    }
                    Err(e) => println!("unexpected failure: {e}"),
                }
            }
            _ = ticker.tick() => {
                println!("tick: {done} done, {} still to come", stream.remaining());
            }
            _ = shutdown.cancelled() => {
                println!("shutting down with {} tasks unfinished", stream.remaining());
                break;
            }
        }
    }

    // Stop what is left: queued tasks are cancelled, running ones see the token and stop.
    pool.shutdown_nowait(Queued::Cancel);
    let (mut cancelled, mut interrupted, mut finished) = (0, 0, 0);
    while let Some(f) = stream.next().await {
        let mut f = f?;
        let id = f.id();
        match f.result(Duration::ZERO) {
            Err(Error::Cancelled) => cancelled += 1,
            Err(Error::Interrupted) => interrupted += 1,
            // Finished between the shutdown and the interrupt.
            Ok(_) => finished += 1,
            Err(e) => println!("{id}: {e}"),
        }
    }
    println!(
        "after shutdown: {cancelled} cancelled in the queue, {interrupted} interrupted while running, \
         {finished} finished anyway"
    );
    assert_eq!(done + cancelled + interrupted + finished, 10);
    pool.shutdown_async(Queued::Run).await;
    let _ = operator.await;
    Ok(())
}
