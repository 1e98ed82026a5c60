//! Python program 4: a done callback.
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
//!         error = fn.exception()
//!         if error:
//!             print(f"{fn.arg}: error returned: {error}")
//!         else:
//!             print(f"{fn.arg}: value returned: {fn.result()}")
//!
//! ex = ThreadPoolExecutor(max_workers=2)
//! print("main: starting")
//! f = ex.submit(task, 5)
//! f.arg = 5
//! f.add_done_callback(done)
//! result = f.result()
//! ```
//!
//! What to look for in the output: `5: sleeping`, `5: done`, then the callback's
//! `5: value returned: 0.5`, run on the worker thread before `main` gets the result. A second
//! future shows that a callback added after the end runs at once, on the thread that adds it.
//!
//! Two Rust differences, both simplifications:
//! - the callback receives the outcome (`&Result<T, Error>`), so cancelled / error / value is one
//!   `match` instead of three questions to the future;
//! - Python attaches user data to the future (`f.arg = 5`); a Rust closure captures it instead.
//!
//! Run with `cargo run --example p04_done_callback`.

use std::thread;
use std::time::Duration;

use concurrent_futures::{Error, ThreadPoolExecutor};

fn task(n: u32) -> f64 {
    println!("{n}: sleeping");
    thread::sleep(Duration::from_millis(200));
    println!("{n}: done");
    f64::from(n) / 10.0
}

/// Python's `done(fn)`, with the data Python hung on the future (`fn.arg`) passed in. It also says
/// which thread it runs on.
fn done(arg: u32, outcome: &Result<f64, Error>) {
    let me = thread::current();
    let on = me.name().unwrap_or("unnamed thread");
    match outcome {
        Err(Error::Cancelled) => println!("{arg}: canceled   [callback on {on}]"),
        Err(error) => println!("{arg}: error returned: {error}   [callback on {on}]"),
        Ok(value) => println!("{arg}: value returned: {value}   [callback on {on}]"),
    }
}

fn main() -> Result<(), Error> {
    let ex = ThreadPoolExecutor::new(2)?;

    println!("main: starting");
    let mut f = ex.submit(task, 5)?;
    let arg = 5;
    // The future is still running, so the callback will run on the worker thread that finishes it.
    f.add_done_callback(move |outcome| done(arg, outcome));
    // `result` returns only after the callbacks have run, so the callback's line comes first.
    let result = f.result(None)?;
    println!("main: result: {result}");

    println!();
    println!("main: a callback added to a future that has already ended runs at once, here");
    let mut g = ex.submit(task, 6)?;
    // Python's `g.exception()`: waits for the end without taking the value out.
    g.exception(None)?;
    g.add_done_callback(move |outcome| done(6, outcome));
    println!("main: result: {}", g.result(None)?);
    Ok(())
}
