//! Python program 14: a done callback with extra arguments.
//!
//! ```python
//! from functools import partial
//!
//! def task(n):
//!     time.sleep(0.1 * n)
//!     return n * n
//!
//! def when_finished(future, id):
//!     print(f"task {id} finished: {future.result()}")
//!
//! with ThreadPoolExecutor(3) as ex:
//!     for i in range(1, 4):
//!         f = ex.submit(task, i)
//!         f.add_done_callback(partial(when_finished, id=i))
//! ```
//!
//! What to look for in the output: each callback knows which task it belongs to (`task 1 finished:
//! 1`, ...). Python binds the extra argument with `functools.partial`; in Rust the callback is a
//! closure that captures it — any number of values, of any type, moved or shared. The second part
//! captures a label (a `String`) and a channel sender, and collects the results in `main`.
//!
//! Run with `cargo run --example p14_callback_args`.

use std::sync::mpsc;
use std::thread;
use std::time::Duration;

use concurrent_futures::{Error, ThreadPoolExecutor};

fn task(n: u64) -> u64 {
    thread::sleep(Duration::from_millis(50 * n));
    n * n
}

/// Python's `when_finished(future, id)`: the outcome plus one extra argument.
fn when_finished(outcome: &Result<u64, Error>, id: u64) {
    match outcome {
        Ok(value) => println!("task {id} finished: {value}"),
        Err(e) => println!("task {id} failed: {e}"),
    }
}

fn main() -> Result<(), Error> {
    ThreadPoolExecutor::new(3)?.shutdown_after(|ex| {
        for i in 1..=3 {
            let f = ex.submit(task, i)?;
            // `partial(when_finished, id=i)` is a closure that captures `i`.
            f.add_done_callback(move |outcome| when_finished(outcome, i));
        }
        Ok::<_, Error>(())
    })?;

    println!();
    println!("Capturing more: a label and a channel to send results back to main");
    let ex = ThreadPoolExecutor::new(3)?;
    let (results_tx, results) = mpsc::channel();
    for (i, label) in (1..=3).zip(["small", "medium", "large"]) {
        let f = ex.submit(task, i)?;
        let label = format!("{label} job #{i}");
        let results_tx = results_tx.clone();
        // The closure owns `label` and its sender; both are dropped once it has run.
        f.add_done_callback(move |outcome| {
            if let Ok(value) = outcome {
                let _ = results_tx.send((label, *value));
            }
        });
    }
    // Once every callback has run and dropped its sender, the channel ends the loop.
    drop(results_tx);
    for (label, value) in results {
        println!("{label}: {value}");
    }
    Ok(())
}
