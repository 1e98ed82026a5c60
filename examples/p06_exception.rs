//! Python program 6: an exception raised in a task.
//!
//! ```python
//! def task(n):
//!     print(f"{n}: starting")
//!     raise ValueError(f"the value {n} is no good")
//!
//! ex = ThreadPoolExecutor(max_workers=2)
//! print("main: starting")
//! f = ex.submit(task, 5)
//! error = f.exception()
//! print(f"main: error: {error}")
//! try:
//!     result = f.result()
//! except ValueError as e:
//!     print(f'main: saw error "{e}" when accessing result')
//! ```
//!
//! What to look for in the output: `exception()` hands back the task's error without failing, and
//! `result()` then fails with that same error in the caller (Python re-raises it).
//!
//! In Rust a task "raises" in one of two ways, and both are shown:
//! - it returns `Err` (submitted with `submit_fallible`): the future ends with `Error::Failed`, which
//!   keeps the task's own error type (here `ValueError`) for `downcast_ref`;
//! - it panics (Rust's uncaught exception): the future ends with `Error::Panicked` and the message.
//!   The worker thread survives either way.
//!
//! Run with `cargo run --example p06_exception`.

use std::fmt;

use concurrent_futures::{Error, ThreadPoolExecutor};

/// Python's `ValueError`, as a Rust error type.
#[derive(Debug)]
struct ValueError(String);

impl fmt::Display for ValueError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ValueError {}

fn task(n: u32) -> Result<f64, ValueError> {
    println!("{n}: starting");
    Err(ValueError(format!("the value {n} is no good")))
}

fn panicking_task(n: u32) -> f64 {
    println!("{n}: starting");
    panic!("the value {n} is no good");
}

fn main() -> Result<(), Error> {
    let ex = ThreadPoolExecutor::new(2)?;

    println!("main: starting");
    let mut f = ex.submit_fallible(task, 5)?;
    // `exception` waits for the end; `Ok(Some(e))` is "the task failed with e" (`?` only propagates
    // a cancellation or a timeout here).
    let error = f.exception(None)?;
    if let Some(Error::Failed(e)) = &error {
        println!("main: error: {e}");
        // The task's own error type is kept, as Python keeps the exception object.
        if let Some(value_error) = e.downcast_ref::<ValueError>() {
            println!("main: it is a ValueError: {value_error:?}");
        }
    }
    match f.result(None) {
        Ok(result) => println!("main: result: {result}"),
        Err(e) => println!("main: saw error \"{e}\" when accessing result"),
    }

    println!();
    println!("main: the same task, awaited: the error comes out of `.await`");
    let outcome = futures::executor::block_on(ex.submit_fallible(task, 6)?);
    if let Err(e) = outcome {
        println!("main: saw error \"{e}\" when awaiting");
    }

    println!();
    println!("main: a task that panics instead");
    // The default panic hook would print the panic and a backtrace hint to stderr as it happens; the
    // future carries the message anyway, so this demo silences the hook while the task runs.
    let default_hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {}));
    let mut g = ex.submit(panicking_task, 7)?;
    let error = g.exception(None)?;
    std::panic::set_hook(default_hook);
    if let Some(e) = &error {
        println!("main: error: {e}");
    }
    match g.result(None) {
        Ok(result) => println!("main: result: {result}"),
        Err(Error::Panicked(message)) => println!("main: the task panicked with \"{message}\""),
        Err(e) => println!("main: saw error \"{e}\""),
    }

    // The worker that ran the panicking task is still there.
    let mut h = ex.submit(|n: u32| n * 2, 21)?;
    println!("main: the pool still works: {}", h.result(None)?);
    println!("main: metrics: {:?}", ex.metrics());
    Ok(())
}
