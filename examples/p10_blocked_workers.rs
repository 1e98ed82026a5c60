//! Python program 10: tasks that never end block the pool.
//!
//! ```python
//! def task(n):
//!     while True:
//!         print(f"task {n} running")
//!         time.sleep(1)
//!
//! with ThreadPoolExecutor(max_workers=5) as ex:
//!     for n in range(1, 11):
//!         ex.submit(task, n)
//! ```
//!
//! What the Python program shows: tasks 1-5 take all five workers and never give them back; tasks
//! 6-10 wait in the queue forever, and the program never ends (leaving the `with` block, and even
//! interpreter exit, joins the workers). A pool is not for work that never ends: a running task
//! holds its worker until it returns, and nothing preempts it.
//!
//! What to look for in the output:
//! 1. The problem. Only tasks 1-5 start; the metrics show 5 running and 5 queued. `cancel()` fails
//!    for 1-5 (running) and succeeds for 6-10 (queued). Nothing can stop 1-5: their threads are
//!    lost to this program. (Unlike Python, dropping a Rust pool never blocks, so the program can
//!    still exit; the five threads end with the process.)
//! 2. The remedy, `spawn_cancellable` + `PoolFuture::interrupt()`: each task checks a `CancelToken`.
//!    Interrupting 1-5 frees their workers, 6-10 start at once, and interrupting those ends them too.
//! 3. The remedy, `spawn_with_time_limit`: each task gets 100 ms from the moment it starts; ten
//!    never-ending tasks run in two waves of five and are all over in about 200 ms.
//!
//! Run with `cargo run --example p10_blocked_workers`.

use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use concurrent_futures::{CancelToken, Error, PoolFuture, Queued, ThreadPoolExecutor};

/// Says that task `n` is running (once, to keep the output short: Python prints every second), and
/// tells `main`, which waits for it.
fn announce(n: u32, started: &mpsc::Sender<u32>) {
    println!("  task {n} running");
    let _ = started.send(n);
}

/// Python's task: works forever.
fn endless_task() {
    loop {
        thread::sleep(Duration::from_millis(20));
    }
}

/// The same endless work, written to stop when asked: the token is checked on every round.
fn stoppable_task(token: &CancelToken) -> Result<(), Error> {
    loop {
        token.check()?; // Err(Error::Interrupted) once interrupted or past its time limit
        thread::sleep(Duration::from_millis(5));
    }
}

fn main() -> Result<(), Error> {
    the_problem()?;
    remedy_interrupt()?;
    remedy_time_limit()?;
    Ok(())
}

fn the_problem() -> Result<(), Error> {
    println!("1. Ten never-ending tasks on five workers");
    let ex = ThreadPoolExecutor::new(5)?;
    let (started_tx, started) = mpsc::channel();
    let mut futures = Vec::new();
    for n in 1..=10 {
        let started_tx = started_tx.clone();
        futures.push(ex.spawn(move || {
            announce(n, &started_tx);
            endless_task()
        })?);
    }
    // Wait until five tasks hold the five workers.
    drop(started_tx);
    let mut running: Vec<u32> = started.iter().take(5).collect();
    running.sort_unstable();
    println!("  started: {running:?}");
    // Give the queued tasks a chance to start, if the pool could start them (it cannot).
    thread::sleep(Duration::from_millis(100));
    let m = ex.metrics();
    println!(
        "  after 100 ms: {} running, {} queued, {} idle workers",
        m.running, m.queued, m.idle
    );

    for (n, f) in (1..).zip(&futures) {
        let verdict = if f.cancel() {
            "cancelled (it was still queued)"
        } else {
            "NOT cancelled: it is running, and nothing can stop it"
        };
        println!("  cancel task {n:>2}: {verdict}");
    }
    // `shutdown(..)` would wait for the endless tasks forever. Dropping the pool does not wait: the
    // five threads go on spinning until the process exits.
    drop(ex);
    println!("  the five workers are lost to this program");
    println!();
    Ok(())
}

fn remedy_interrupt() -> Result<(), Error> {
    println!("2. The remedy: spawn_cancellable + interrupt()");
    let ex = ThreadPoolExecutor::new(5)?;
    let (started_tx, started) = mpsc::channel();
    let mut futures = Vec::new();
    for n in 1..=10 {
        let started_tx = started_tx.clone();
        futures.push(ex.spawn_cancellable(move |token| {
            announce(n, &started_tx);
            stoppable_task(token)
        })?);
    }
    drop(started_tx);

    // The same picture as before: 1-5 run, 6-10 wait.
    let mut first_wave: Vec<u32> = started.iter().take(5).collect();
    first_wave.sort_unstable();
    let waiting: Vec<u32> = (1..)
        .zip(&futures)
        .filter(|(_, f)| !f.running())
        .map(|(n, _)| n)
        .collect();
    println!("  running: {first_wave:?}, waiting: {waiting:?}");

    println!("  interrupting tasks 1-5");
    let (first, second) = futures.split_at_mut(5);
    end_all(first);
    // Their workers are free again: 6-10 start.
    let mut second_wave: Vec<u32> = started.iter().take(5).collect();
    second_wave.sort_unstable();
    println!("  now running: {second_wave:?}");

    println!("  interrupting tasks 6-10");
    end_all(second);
    // Every task has returned, so shutdown completes at once.
    ex.shutdown(Queued::Run);
    println!("  pool shut down");
    println!();
    Ok(())
}

/// Interrupts every future, then waits for each to end (with `Error::Interrupted`, as each task's
/// `token.check()?` returns it).
fn end_all(futures: &mut [PoolFuture<()>]) {
    for f in futures.iter() {
        f.interrupt();
    }
    let interrupted = futures
        .iter_mut()
        .map(|f| f.result(None))
        .filter(|outcome| matches!(outcome, Err(Error::Interrupted)))
        .count();
    println!(
        "  {interrupted} of {} ended with Error::Interrupted",
        futures.len()
    );
}

fn remedy_time_limit() -> Result<(), Error> {
    println!("3. The remedy: spawn_with_time_limit (100 ms each, counted from its start)");
    let ex = ThreadPoolExecutor::new(5)?;
    let start = Instant::now();
    let limit = Duration::from_millis(100);
    let futures = (1..=10)
        .map(|_| ex.spawn_with_time_limit(limit, stoppable_task))
        .collect::<Result<Vec<_>, _>>()?;
    for (n, mut f) in (1..).zip(futures) {
        let outcome = f.result(None);
        println!(
            "  task {n:>2}: {outcome:?} at {:>3} ms",
            start.elapsed().as_millis()
        );
    }
    ex.shutdown(Queued::Run);
    println!(
        "  all ten ended in {:.2} s: two waves of five",
        start.elapsed().as_secs_f64()
    );
    Ok(())
}
