//! Python program 11: `wait` for all, then sum; 2 workers against 10.
//!
//! ```python
//! def task(i):
//!     time.sleep(1)
//!     return i * i
//!
//! for n in (2, 10):
//!     start = time.perf_counter()
//!     with ThreadPoolExecutor(n) as ex:
//!         fs = [ex.submit(task, i) for i in range(10)]
//!         done, not_done = wait(fs)
//!         total = sum(f.result() for f in done)
//!     print(n, "threads:", total, "in", time.perf_counter() - start, "s")
//! ```
//!
//! What to look for in the output: the sum is 285 both times; with 2 workers the ten tasks run in 5
//! rounds (about 5 × the sleep), with 10 workers in one round (about 1 × the sleep). The sleep is
//! 100 ms here instead of 1 s, so expect about 0.5 s and 0.1 s.
//!
//! The last line does the same wait from async code: `wait(..)` is awaitable.
//!
//! Run with `cargo run --example p11_wait_sum`.

use std::thread;
use std::time::{Duration, Instant};

use concurrent_futures::{wait, Done, Error, ThreadPoolExecutor};

const SLEEP: Duration = Duration::from_millis(100);

fn task(i: u64) -> u64 {
    thread::sleep(SLEEP);
    i * i
}

/// Runs the ten tasks on `workers` threads; returns the sum and how long it took.
fn run(workers: usize) -> Result<(u64, Duration), Error> {
    let start = Instant::now();
    // `shutdown_after` is Python's `with`: it shuts the pool down (and waits) at the end.
    let total = ThreadPoolExecutor::new(workers)?.shutdown_after(|ex| {
        let fs = (0..10)
            .map(|i| ex.submit(task, i))
            .collect::<Result<Vec<_>, _>>()?;
        // `wait` gives back the futures, split into (done, not_done); with the default
        // `ReturnWhen::AllCompleted` and no timeout, not_done is empty.
        let Done { done, not_done } = wait(fs).blocking();
        debug_assert!(not_done.is_empty());
        done.into_iter()
            .map(|mut f| f.result(None))
            .sum::<Result<u64, Error>>()
    })?;
    Ok((total, start.elapsed()))
}

fn main() -> Result<(), Error> {
    for workers in [2, 10] {
        let (total, took) = run(workers)?;
        let rounds = 10_usize.div_ceil(workers);
        println!(
            "{workers:>2} threads: sum {total} in {:.2} s (expected about {rounds} x {:.1} s)",
            took.as_secs_f64(),
            SLEEP.as_secs_f64()
        );
    }

    // The same with 10 workers, awaited: no thread blocks while the tasks run.
    let ex = ThreadPoolExecutor::new(10)?;
    let start = Instant::now();
    let total = futures::executor::block_on(async {
        let fs = (0..10)
            .map(|i| ex.submit(task, i))
            .collect::<Result<Vec<_>, _>>()?;
        let Done { done, .. } = wait(fs).await;
        let mut total = 0;
        for f in done {
            total += f.await?;
        }
        Ok::<_, Error>(total)
    })?;
    println!(
        "10 threads, awaited: sum {total} in {:.2} s",
        start.elapsed().as_secs_f64()
    );
    Ok(())
}
