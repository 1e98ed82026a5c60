//! Python program 7: the executor as a context manager.
//!
//! ```python
//! def task(n):
//!     print(n)
//!
//! with ThreadPoolExecutor(max_workers=2) as ex:
//!     print("main: starting")
//!     ex.submit(task, 1)
//!     ex.submit(task, 2)
//!     ex.submit(task, 3)
//!     ex.submit(task, 4)
//! print("main: done")
//! ```
//!
//! What to look for in the output: leaving the block waits for every task, so `main: done` prints
//! last, after 1..4 (whose order may vary). The futures are never looked at: the `with` block (here
//! `ThreadPoolExecutor::shutdown_after`) is what waits.
//!
//! The tasks here sleep a little before printing, so that the wait is real: without it they could
//! all be finished before the block ends anyway.
//!
//! The second half is the async form: there is no async `with`, but `shutdown_async` waits for the
//! workers without blocking a thread.
//!
//! Run with `cargo run --example p07_scope`.

use std::thread;
use std::time::Duration;

use concurrent_futures::{Error, Queued, ThreadPoolExecutor};

fn task(n: u64) {
    thread::sleep(Duration::from_millis(50 * n));
    println!("{n}");
}

fn main() -> Result<(), Error> {
    // `shutdown_after` consumes the pool, runs the body, then shuts the pool down and waits for all its work,
    // even if the body returns early with `?` or panics.
    ThreadPoolExecutor::new(2)?.shutdown_after(|ex| {
        println!("main: starting");
        for n in 1..=4 {
            // Dropping a future detaches it: the task still runs, as in Python.
            let _detached = ex.submit(task, n)?;
        }
        println!("main: end of the block, waiting for the tasks");
        Ok::<_, Error>(())
    })?;
    println!("main: done");

    println!();
    println!("main: async form");
    let ex = ThreadPoolExecutor::new(2)?;
    futures::executor::block_on(async {
        for n in 1..=4 {
            let _detached = ex.submit(task, n)?;
        }
        ex.shutdown_async(Queued::Run).await;
        Ok::<_, Error>(())
    })?;
    println!("main: done");
    Ok(())
}
