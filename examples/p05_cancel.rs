//! Python program 5: cancelling futures.
//!
//! ```python
//! def task(n):
//!     print(f"{n}: sleeping")
//!     time.sleep(0.5)
//!     print(f"{n}: done")
//!     return n / 10
//!
//! def done(fn):
//!     if fn.cancelled():
//!         print(f"{fn.arg}: canceled")
//!     elif fn.done():
//!         print(f"{fn.arg}: not canceled")
//!
//! ex = ThreadPoolExecutor(max_workers=2)
//! print("main: starting")
//! tasks = []
//! for i in range(10, 0, -1):
//!     print(f"main: submitting {i}")
//!     f = ex.submit(task, i)
//!     f.arg = i
//!     f.add_done_callback(done)
//!     tasks.append((i, f))
//! for i, t in reversed(tasks):
//!     if not t.cancel():
//!         print(f"main: did not cancel {i}")
//! ex.shutdown()
//! ```
//!
//! What to look for in the output:
//! - tasks 10 and 9 start at once (2 workers); 8..1 wait in the queue;
//! - cancelling in reverse order, 1..8 succeed: their callbacks print `canceled` right away, on the
//!   thread that cancels (main);
//! - `main: did not cancel 9` and `... 10`: a running task cannot be cancelled;
//! - `shutdown` waits for 10 and 9, which finish and print `not canceled` from their callbacks.
//!
//! Python relies on `sleep(0.5)` being long enough for 10 and 9 to be running, and still running,
//! when `main` cancels. This example makes that certain instead: each task reports that it started,
//! and then waits at a barrier that `main` passes only after its cancel loop.
//!
//! Run with `cargo run --example p05_cancel`.

use std::sync::{mpsc, Arc, Barrier};

use concurrent_futures::{Error, Queued, ThreadPoolExecutor};

/// Python's `task`, with the barrier standing in for `time.sleep(0.5)`.
fn task(n: u32, hold: &Barrier) -> f64 {
    println!("{n}: sleeping");
    hold.wait();
    println!("{n}: done");
    f64::from(n) / 10.0
}

fn done(arg: u32, outcome: &Result<f64, Error>) {
    match outcome {
        Err(Error::Cancelled) => println!("{arg}: canceled"),
        _ => println!("{arg}: not canceled"),
    }
}

fn main() -> Result<(), Error> {
    let ex = ThreadPoolExecutor::new(2)?;
    // Met by main and the two tasks that get a worker (10 and 9); the cancelled ones never get here.
    let hold = Arc::new(Barrier::new(3));
    let (started_tx, started) = mpsc::channel();

    println!("main: starting");
    let mut tasks = Vec::new();
    for i in (1..=10).rev() {
        println!("main: submitting {i}");
        let (started_tx, hold) = (started_tx.clone(), hold.clone());
        let f = ex.spawn(move || {
            let _ = started_tx.send(i);
            task(i, &hold)
        })?;
        // Python sets `f.arg = i`; the closure captures `i` instead.
        f.add_done_callback(move |outcome| done(i, outcome));
        tasks.push((i, f));
    }
    // Wait until both workers are busy (with 10 and 9). Dropping our sender first means that, should
    // the tasks die instead, the iterator ends rather than waiting forever.
    drop(started_tx);
    for i in started.iter().take(2) {
        println!("main: {i} is running");
    }

    for (i, t) in tasks.iter().rev() {
        if !t.cancel() {
            println!("main: did not cancel {i}");
        }
    }

    // Let 10 and 9 finish, then wait for the pool to wind down (Python's `ex.shutdown()`).
    hold.wait();
    ex.shutdown(Queued::Run);

    println!("main: final states:");
    for (i, t) in &tasks {
        println!("  {i:>2}: {t:?}");
    }
    Ok(())
}
