//! Program 15: results from a process pool through callbacks. Worker processes cannot touch the
//! parent's memory; the done callback runs in the parent and appends to a list there.

use std::sync::{Arc, Mutex};

use concurrent_futures::{Error, ProcessPoolExecutor, Queued};

fn square(n: u64) -> (u64, u64, u32) {
    (n, n * n, std::process::id())
}

fn main() -> Result<(), Error> {
    let collected = Arc::new(Mutex::new(Vec::new()));
    let pool = ProcessPoolExecutor::new(2)?;
    for n in 1..=6 {
        let collected = collected.clone();
        pool.submit(square, n)?.add_done_callback(move |outcome| {
            let (n, sq, worker) = *outcome.as_ref().expect("task ran");
            println!(
                "callback in parent {}: {n}² = {sq} (computed by {worker})",
                std::process::id()
            );
            collected.lock().unwrap().push(sq);
        });
    }
    pool.shutdown(Queued::Run);
    let mut all = collected.lock().unwrap().clone();
    all.sort();
    println!("collected in the parent: {all:?}");
    Ok(())
}
