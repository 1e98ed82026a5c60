//! Python program 2: `submit` one task and look at its future.
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
//! f = ex.submit(task, 5)
//! print(f"main: future: {f}")
//! print("main: waiting for results")
//! result = f.result()
//! print(f"main: result: {result}")
//! print(f"main: future after result: {f}")
//! ```
//!
//! What to look for in the output:
//! - while the task runs, the future shows `state: running` (Python: `state=running`);
//! - `result(None)` blocks until the task returns and gives `0.5`;
//! - afterwards the future shows `state: finished returned f64` (Python: `state=finished returned
//!   float`).
//!
//! The second half does the same with `.await` instead of the blocking `result()`: a `PoolFuture` is
//! a `std::future::Future`.
//!
//! Run with `cargo run --example p02_submit`.

use std::sync::mpsc;
use std::thread;
use std::time::Duration;

use concurrent_futures::{Error, ThreadPoolExecutor};

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
    // Python's output shows `state=running` because its worker has usually started by the time of the
    // print. We make sure of it: the task reports that it started before `main` prints the future.
    let (started_tx, started) = mpsc::channel();
    let mut f = ex.spawn(move || {
        let _ = started_tx.send(());
        task(5)
    })?;
    let _ = started.recv();
    println!("main: future: {f:?}");
    println!("main: waiting for results");
    let result = f.result(None)?;
    println!("main: result: {result}");
    println!("main: future after result: {f:?}");

    println!();
    println!("main: the same, awaited");
    let mut f = ex.submit(task, 5)?;
    let result = futures::executor::block_on(async {
        // `PoolFuture` is `Unpin`, so `&mut f` is a future too: awaiting it leaves `f` to look at.
        (&mut f).await
    })?;
    println!("main: result: {result}");
    println!("main: future after await: {f:?}");
    Ok(())
}
