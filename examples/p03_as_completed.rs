//! Python program 3: `as_completed`.
//!
//! ```python
//! def task(n):
//!     time.sleep(random.random())
//!     return (n, n / 10)
//!
//! ex = ThreadPoolExecutor(max_workers=5)
//! print("main: starting")
//! wait_for = [ex.submit(task, i) for i in range(5, 0, -1)]
//! for f in as_completed(wait_for):
//!     print(f"main: result: {f.result()}")
//! ```
//!
//! What to look for in the output: the results print in *completion* order (shortest sleep first, the
//! sleep is printed alongside), not in submission order, and that order changes from run to run.
//!
//! The second half is what Rust adds: `as_completed` is also a `Stream`, so an async program can race
//! it against timers in `tokio::select!` — here a progress tick every 100 ms and an overall deadline
//! — without blocking a thread.
//!
//! Run with `cargo run --example p03_as_completed`.

use std::collections::hash_map::RandomState;
use std::hash::BuildHasher;
use std::thread;
use std::time::Duration;

use concurrent_futures::{as_completed, Error, Queued, ThreadPoolExecutor};
use futures::StreamExt;

/// A random sleep of up to 500 ms (Python sleeps up to 1 s). std has no random number generator, but
/// every `RandomState` is freshly keyed, which is random enough to shuffle a demo.
fn random_sleep(n: u64) -> Duration {
    Duration::from_millis(RandomState::new().hash_one(n) % 500)
}

/// Sleeps a random time and returns `(n, n / 10)`; the sleep is returned too so the output can show
/// that the order is by duration.
fn task(n: u64) -> (u64, f64, Duration) {
    let pause = random_sleep(n);
    thread::sleep(pause);
    (n, n as f64 / 10.0, pause)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let ex = ThreadPoolExecutor::new(5)?;

    println!("main: starting");
    let wait_for = (1..=5)
        .rev()
        .map(|i| ex.submit(task, i))
        .collect::<Result<Vec<_>, _>>()?;
    // The blocking iterator: each step waits until some future finishes. It yields `Result`s because
    // an `as_completed` with a timeout yields one timeout error; without a timeout none comes.
    for f in as_completed(wait_for) {
        let (n, tenth, slept) = f?.result(None)?;
        println!("main: result: ({n}, {tenth})   slept {slept:?}");
    }

    println!();
    println!("main: the same, as a Stream raced against timers in tokio::select!");
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()?;
    runtime.block_on(async {
        consume_async(&ex).await?;
        // The async form of `shutdown`: waits for the workers to exit without blocking the runtime.
        ex.shutdown_async(Queued::Run).await;
        Ok::<_, Error>(())
    })?;
    Ok(())
}

async fn consume_async(ex: &ThreadPoolExecutor) -> Result<(), Error> {
    let futures = (1..=5)
        .rev()
        .map(|i| ex.submit(task, i))
        .collect::<Result<Vec<_>, _>>()?;
    let mut completed = as_completed(futures);
    let period = Duration::from_millis(100);
    let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
    // Far longer than the tasks take: it is there to show how a deadline fits in.
    let deadline = tokio::time::sleep(Duration::from_secs(3));
    tokio::pin!(deadline);

    loop {
        tokio::select! {
            next = completed.next() => match next {
                // A yielded future is done: awaiting it returns at once.
                Some(f) => {
                    let (n, tenth, slept) = f?.await?;
                    println!("main: result: ({n}, {tenth})   slept {slept:?}");
                }
                None => break,
            },
            _ = tick.tick() => println!("main: tick, {} still running", completed.remaining()),
            () = &mut deadline => {
                println!("main: deadline passed with {} unfinished", completed.remaining());
                break;
            }
        }
    }
    Ok(())
}
