//! Python program 1: `ThreadPoolExecutor.map`.
//!
//! ```python
//! def task(n):
//!     print(f"{threading.current_thread().name}: sleeping {n}")
//!     time.sleep(n / 10)
//!     print(f"{threading.current_thread().name}: done with {n}")
//!     return n / 10
//!
//! ex = ThreadPoolExecutor(max_workers=2)
//! print("main: starting")
//! results = ex.map(task, range(5, 0, -1))
//! print(f"main: unprocessed results {results}")
//! print("main: waiting for real results")
//! print(f"main: results: {list(results)}")
//! ```
//!
//! What to look for in the output:
//! - the two workers interleave: both start at once, and each picks the next input when it is free;
//! - `map` returns at once ("unprocessed results"): every input is submitted, nothing is awaited yet;
//! - the collected results come back in *input* order, `[0.5, 0.4, 0.3, 0.2, 0.1]`, although the
//!   tasks finish in another order ("done with 4" comes first).
//!
//! The second half consumes the same `map` as a `Stream` from async code (here with
//! `futures::executor::block_on`; tokio works the same way).
//!
//! Run with `cargo run --example p01_map`.

use std::thread;
use std::time::Duration;

use concurrent_futures::{Error, ThreadPoolExecutor};
use futures::StreamExt;

/// Sleeps `n` tenths of a second and returns `n / 10`, saying which worker runs it.
fn task(n: u64) -> f64 {
    let me = thread::current();
    let name = me.name().unwrap_or("worker");
    println!("{name}: sleeping {n}");
    thread::sleep(Duration::from_millis(n * 100));
    println!("{name}: done with {n}");
    n as f64 / 10.0
}

fn main() -> Result<(), Error> {
    let ex = ThreadPoolExecutor::new(2)?;

    println!("main: starting");
    let results = ex.map(task, (1..=5).rev())?;
    // Python prints `<generator object ...>`; the Rust `Map` shows what it holds: 5 tasks in flight.
    println!("main: unprocessed results {results:?}");
    println!("main: waiting for real results");
    // Iterating blocks until each result, in input order; the first error (none here) stops `collect`.
    let real_results = results.into_iter().collect::<Result<Vec<f64>, Error>>()?;
    println!("main: results: {real_results:?}");

    println!();
    println!("main: the same map, consumed as an async Stream");
    let in_order = futures::executor::block_on(async {
        let mut results = ex.map(task, (1..=5).rev())?;
        let mut seen = Vec::new();
        // Each `.next().await` yields the next result in input order, without blocking a thread.
        while let Some(r) = results.next().await {
            let r = r?;
            println!("main: next result in input order: {r}");
            seen.push(r);
        }
        Ok::<_, Error>(seen)
    })?;
    println!("main: results: {in_order:?}");
    Ok(())
}
