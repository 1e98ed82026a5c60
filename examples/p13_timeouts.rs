//! Python program 13: timeouts, and the three ways `wait` can return.
//!
//! ```python
//! f = ex.submit(slow)
//! f.result(timeout=0.05)                        # TimeoutError; f keeps running
//!
//! for r in ex.map(task, [1, 2, 3, 4], timeout=0.1):
//!     print(r)                                  # 10, 20, then TimeoutError (3 is slow)
//!
//! for f in as_completed([quick1, quick2, slow], timeout=0.1):
//!     print(f.result())                         # two results, then
//!                                               # TimeoutError: 1 (of 3) futures unfinished
//!
//! done, not_done = wait(fs, return_when=FIRST_COMPLETED)
//! done, not_done = wait(fs, return_when=FIRST_EXCEPTION)
//! done, not_done = wait(fs, timeout=0.1, return_when=ALL_COMPLETED)
//! ```
//!
//! What to look for in the output:
//! - `result(timeout)`, `map(timeout)` and `as_completed(timeout)` fail with a timeout error
//!   (`Error::Timeout`, and `Error::Unfinished` with Python's "1 (of 3) futures unfinished") where
//!   the deadline passes; the results that were ready before it still come out;
//! - a timeout never cancels a running task: the slow future still ends with its value later;
//! - `wait` never fails: it returns the `(done, not_done)` pair when its condition holds or its
//!   timeout passes: FIRST_COMPLETED → the one quick future; FIRST_EXCEPTION → up to the failed
//!   one; ALL_COMPLETED with a timeout → whatever finished in time.
//!
//! "Slow" tasks here wait at a gate that `main` opens once it has shown the timeout, so what each
//! step demonstrates does not depend on the speed of the machine.
//!
//! The last part is the async form: `tokio::time::timeout` works on any `PoolFuture`, and an awaited
//! `wait` takes its timeout on tokio's clock.
//!
//! Run with `cargo run --example p13_timeouts`.

use std::collections::HashMap;
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::time::Duration;

use concurrent_futures::{
    as_completed, wait, Done, Error, FutureId, MapOptions, PoolFuture, Queued, ReturnWhen,
    ThreadPoolExecutor,
};

/// Deadlines in this example: long enough for the quick tasks (which return at once) on any
/// machine, short enough to keep the run short.
const TIMEOUT: Duration = Duration::from_millis(100);

/// A latch: tasks `wait` until `main` calls `open`, then all pass.
#[derive(Clone, Default)]
struct Gate(Arc<(Mutex<bool>, Condvar)>);

impl Gate {
    fn wait(&self) {
        let (open, opened) = &*self.0;
        let guard = open.lock().unwrap_or_else(PoisonError::into_inner);
        let _open = opened
            .wait_while(guard, |open| !*open)
            .unwrap_or_else(PoisonError::into_inner);
    }

    fn open(&self) {
        let (open, opened) = &*self.0;
        *open.lock().unwrap_or_else(PoisonError::into_inner) = true;
        opened.notify_all();
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // Enough workers that the gated tasks never keep a quick one from starting.
    let ex = ThreadPoolExecutor::new(8)?;
    result_timeout(&ex)?;
    map_timeout(&ex)?;
    as_completed_timeout(&ex)?;
    wait_first_completed(&ex)?;
    wait_first_exception()?;
    wait_all_completed(&ex)?;

    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()?;
    runtime.block_on(async_timeouts(&ex))?;
    ex.shutdown(Queued::Run);
    Ok(())
}

fn result_timeout(ex: &ThreadPoolExecutor) -> Result<(), Error> {
    println!("1. f.result(timeout)");
    let gate = Gate::default();
    let held = gate.clone();
    let mut f = ex.spawn(move || {
        held.wait();
        "the slow value"
    })?;
    match f.result(TIMEOUT) {
        Err(e @ Error::Timeout) => println!("   result(100 ms) -> {e:?}: {e}"),
        other => println!("   unexpected: {other:?}"),
    }
    // Timing out changed nothing: the task goes on, and the same future can be asked again.
    println!("   the task goes on: done() = {}", f.done());
    gate.open();
    println!("   gate opened; result(None) -> {:?}", f.result(None)?);
    println!();
    Ok(())
}

fn map_timeout(ex: &ThreadPoolExecutor) -> Result<(), Error> {
    println!("2. map(task, [1, 2, 3, 4], timeout=100 ms), where 3 is slow");
    let gate = Gate::default();
    let held = gate.clone();
    let task = move |n: u32| {
        if n == 3 {
            held.wait();
        }
        n * 10
    };
    // The timeout is one deadline for the whole iteration, counted from the `map` call.
    let results = ex.map_with(task, 1..=4, MapOptions::new().timeout(TIMEOUT))?;
    for r in results {
        match r {
            Ok(v) => println!("   {v}"),
            // After a timeout the iteration ends, and tasks that had not started are cancelled.
            Err(e) => println!("   {e:?}: {e}  (and the iteration ends)"),
        }
    }
    gate.open();
    println!();
    Ok(())
}

fn as_completed_timeout(ex: &ThreadPoolExecutor) -> Result<(), Error> {
    println!("3. as_completed([quick 1, quick 2, slow 3], timeout=100 ms)");
    let gate = Gate::default();
    let held = gate.clone();
    let fs = vec![
        ex.spawn(|| 1)?,
        ex.spawn(|| 2)?,
        ex.spawn(move || {
            held.wait();
            3
        })?,
    ];
    for f in as_completed(fs).timeout(TIMEOUT) {
        match f {
            Ok(mut f) => println!("   completed: {}", f.result(None)?),
            Err(e) => println!("   {e:?}: \"{e}\""),
        }
    }
    gate.open();
    println!();
    Ok(())
}

/// Names futures by their id, to print the `done` / `not_done` sets.
struct Names(HashMap<FutureId, &'static str>);

impl Names {
    fn new<T, const N: usize>(futures: &[PoolFuture<T>], names: [&'static str; N]) -> Self {
        Names(futures.iter().map(PoolFuture::id).zip(names).collect())
    }

    fn of<T>(&self, f: &PoolFuture<T>) -> &'static str {
        self.0[&f.id()]
    }

    fn print<T>(&self, done: &Done<PoolFuture<T>>) {
        let names = |fs: &[PoolFuture<T>]| fs.iter().map(|f| self.of(f)).collect::<Vec<_>>();
        println!("   done:     {:?}", names(&done.done));
        println!("   not_done: {:?}", names(&done.not_done));
    }
}

fn wait_first_completed(ex: &ThreadPoolExecutor) -> Result<(), Error> {
    println!("4. wait([slow A, quick B, slow C], return_when=FIRST_COMPLETED)");
    let gate = Gate::default();
    let slow = |gate: &Gate| {
        let held = gate.clone();
        move || held.wait()
    };
    let fs = vec![
        ex.spawn(slow(&gate))?,
        ex.spawn(|| ())?,
        ex.spawn(slow(&gate))?,
    ];
    let names = Names::new(&fs, ["A", "B", "C"]);
    let done = wait(fs).return_when(ReturnWhen::FirstCompleted).blocking();
    names.print(&done);
    gate.open();
    println!();
    Ok(())
}

fn wait_first_exception() -> Result<(), Error> {
    println!("5. wait([ok, failing, slow], return_when=FIRST_EXCEPTION)");
    // One worker runs the three in order, so `ok` has surely finished when `failing` fails.
    let ex = ThreadPoolExecutor::new(1)?;
    let gate = Gate::default();
    let held = gate.clone();
    let fs = vec![
        ex.spawn_fallible(|| Ok::<_, String>(()))?,
        ex.spawn_fallible(|| Err::<(), _>(String::from("the value 5 is no good")))?,
        ex.spawn_fallible(move || {
            held.wait();
            Ok::<_, String>(())
        })?,
    ];
    let names = Names::new(&fs, ["ok", "failing", "slow"]);
    let done = wait(fs).return_when(ReturnWhen::FirstException).blocking();
    names.print(&done);
    if let Some(failing) = done.done.iter().find(|f| names.of(f) == "failing") {
        println!("   failing.exception() -> {:?}", failing.exception(None)?);
    }
    gate.open();
    ex.shutdown(Queued::Run);
    println!();
    Ok(())
}

fn wait_all_completed(ex: &ThreadPoolExecutor) -> Result<(), Error> {
    println!("6. wait([quick, slow], timeout=100 ms, return_when=ALL_COMPLETED)");
    let gate = Gate::default();
    let held = gate.clone();
    let fs = vec![ex.spawn(|| ())?, ex.spawn(move || held.wait())?];
    let names = Names::new(&fs, ["quick", "slow"]);
    // A timeout is not an error for `wait`: it returns what is done by then.
    let done = wait(fs).timeout(TIMEOUT).blocking();
    names.print(&done);
    gate.open();
    println!("   gate opened; waiting again on not_done, without a timeout");
    let done = wait(done.not_done).blocking();
    names.print(&done);
    println!();
    Ok(())
}

async fn async_timeouts(ex: &ThreadPoolExecutor) -> Result<(), Error> {
    println!("7. The same from async code");
    let gate = Gate::default();
    let held = gate.clone();
    let mut slow = ex.spawn(move || {
        held.wait();
        "the slow value"
    })?;
    // Any runtime's timeout wraps a PoolFuture; running out drops only the wait, not the task.
    match tokio::time::timeout(TIMEOUT, &mut slow).await {
        Err(elapsed) => println!("   tokio::time::timeout -> {elapsed}"),
        Ok(outcome) => println!("   unexpected: {outcome:?}"),
    }
    let quick = ex.spawn(|| "the quick value")?;
    let fs = vec![slow, quick];
    let names = Names::new(&fs, ["slow", "quick"]);
    // An awaited `wait` takes its timeout on tokio's clock.
    let done = wait(fs).timeout(TIMEOUT).await;
    names.print(&done);
    gate.open();
    println!("   gate opened");
    // `wait` gave the futures back: await each for its value.
    for f in done.done.into_iter().chain(done.not_done) {
        let name = names.of(&f);
        println!("   {name}.await -> {:?}", f.await?);
    }
    Ok(())
}
