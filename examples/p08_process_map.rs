//! Program 8: a process pool `map`. Results come in input order; the same 2 worker processes serve
//! all 5 tasks. (Python: `ProcessPoolExecutor(2).map(task, [5, 4, 3, 2, 1])`.)
//!
//! Each task takes a few tens of milliseconds, as in the Python demo: a trivial task would be done by
//! the first worker before the second (started on demand) had finished starting.

use concurrent_futures::{Error, ProcessPoolExecutor, Queued};

fn task(n: u64) -> (u64, u32) {
    println!("{}: processing {n}", std::process::id());
    std::thread::sleep(std::time::Duration::from_millis(20 * n));
    (n, std::process::id())
}

fn main() -> Result<(), Error> {
    println!("main process: {}", std::process::id());
    let pool = ProcessPoolExecutor::new(2)?;
    let results = pool.map(task, [5, 4, 3, 2, 1])?;
    println!("unprocessed results: {results:?}");
    let mut pids = std::collections::BTreeSet::new();
    for r in results {
        let (n, pid) = r?;
        println!("ran {n} in process {pid}");
        pids.insert(pid);
    }
    println!("worker processes used: {pids:?}");
    pool.shutdown(Queued::Run);
    Ok(())
}
