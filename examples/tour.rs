//! A guided tour of `concurrent-futures`: Python's `concurrent.futures`, where every future is also a
//! Rust `Future`.
//!
//! Run with `cargo run --release --example tour` (about one second). Each step prints a heading,
//! the call it makes, and what came back:
//!
//! 1. `submit` and a future's states;       6. `cancel` (only before a task starts);
//! 2. `map` (results in input order);       7. stopping a *running* task (beyond Python);
//! 3. `as_completed` (completion order);    8. `shutdown`;
//! 4. `wait` and its `(done, not_done)`;    9. blocking and async, side by side;
//! 5. done callbacks;                      10. processes: submit, map, a worker's death, shutdown.
//!
//! Where an ordering matters to the point being made, the tasks wait on channels that the tour
//! releases, so the output does not depend on the machine's speed.

use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use concurrent_futures::{
    as_completed, wait, Error, Executor, MapOptions, PoolFuture, ProcessPoolExecutor, Queued,
    ReturnWhen, ThreadPoolExecutor, WorkerDeath,
};
use futures::StreamExt;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!(
        "concurrent-futures: Python's concurrent.futures for Rust, with futures you can .await"
    );

    let pool = ThreadPoolExecutor::new(4)?;
    submit(&pool)?;
    map(&pool)?;
    completed(&pool)?;
    waiting(&pool)?;
    callbacks(&pool)?;
    cancel()?;
    interrupt(&pool)?;
    shutdown()?;

    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()?;
    runtime.block_on(side_by_side(&pool))?;
    processes()?;

    heading("the end");
    // Waits for every task, including the job left running by `select!` above.
    pool.shutdown(Queued::Run);
    let m = pool.metrics();
    println!(
        "   pool.shutdown(Queued::Run): {} tasks completed, {} of them failed (the interrupted ones)",
        m.completed, m.failed
    );
    println!(
        "   see examples/p01_map.rs ... p15_process_callbacks.rs for Python's classic programs"
    );
    Ok(())
}

fn heading(title: &str) {
    let rule = "─".repeat(72_usize.saturating_sub(title.chars().count()));
    println!("\n── {title} {rule}");
}

/// The n-th Fibonacci number: a little CPU work.
fn fib(n: u32) -> u64 {
    let (mut a, mut b) = (0u64, 1u64);
    for _ in 0..n {
        (a, b) = (b, a.wrapping_add(b));
    }
    a
}

/// Sleeps `ms` milliseconds and returns it: a stand-in for blocking I/O.
fn sleep_ms(ms: u64) -> u64 {
    thread::sleep(Duration::from_millis(ms));
    ms
}

fn submit(pool: &ThreadPoolExecutor) -> Result<(), Error> {
    heading("1. submit: one task, one future");
    let (started_tx, started) = mpsc::channel();
    let (release, wait_for_release) = mpsc::channel::<()>();
    let mut f = pool.spawn(move || {
        let _ = started_tx.send(());
        let _ = wait_for_release.recv();
        fib(90)
    })?;
    let _ = started.recv();
    println!("   pool.spawn(|| fib(90))   -> {f:?}");
    println!("   f.running() = {}, f.done() = {}", f.running(), f.done());
    let _ = release.send(());
    println!("   f.result(None)           -> {}", f.result(None)?);
    println!("   afterwards               -> {f:?}");
    Ok(())
}

fn map(pool: &ThreadPoolExecutor) -> Result<(), Error> {
    heading("2. map: results in input order");
    let start = Instant::now();
    let results = pool.map(sleep_ms, [150, 50, 100])?;
    println!("   pool.map(sleep_ms, [150, 50, 100]) returns at once: {results:?}");
    let results = results.into_iter().collect::<Result<Vec<_>, _>>()?;
    println!(
        "   collected after {:>3} ms: {results:?}  (input order, though 50 finished first)",
        start.elapsed().as_millis()
    );
    Ok(())
}

fn completed(pool: &ThreadPoolExecutor) -> Result<(), Error> {
    heading("3. as_completed: results in completion order");
    let start = Instant::now();
    let fs = [150, 50, 100]
        .into_iter()
        .map(|ms| pool.submit(sleep_ms, ms))
        .collect::<Result<Vec<_>, _>>()?;
    println!("   submitted sleep_ms(150), sleep_ms(50), sleep_ms(100)");
    for f in as_completed(fs) {
        let ms = f?.result(None)?;
        println!(
            "   +{:>3} ms  sleep_ms({ms}) completed",
            start.elapsed().as_millis()
        );
    }
    Ok(())
}

fn waiting(pool: &ThreadPoolExecutor) -> Result<(), Error> {
    heading("4. wait: (done, not_done)");
    let (release, wait_for_release) = mpsc::channel::<()>();
    let slow = pool.spawn(move || {
        let _ = wait_for_release.recv();
        "slow"
    })?;
    let fast = pool.spawn(|| "fast")?;
    let name = |f: &PoolFuture<&str>| if f.id() == fast.id() { "fast" } else { "slow" };
    let names = |fs: &[&PoolFuture<&str>]| fs.iter().map(|f| name(f)).collect::<Vec<_>>();

    let done = wait([&slow, &fast])
        .return_when(ReturnWhen::FirstCompleted)
        .blocking();
    println!(
        "   FIRST_COMPLETED               -> done {:?}, not_done {:?}",
        names(&done.done),
        names(&done.not_done)
    );
    let done = wait([&slow, &fast])
        .timeout(Duration::from_millis(50))
        .blocking();
    println!(
        "   ALL_COMPLETED, timeout 50 ms  -> done {:?}, not_done {:?}  (no error: a timeout just returns)",
        names(&done.done),
        names(&done.not_done)
    );
    let _ = release.send(());
    let done = wait([&slow, &fast]).blocking();
    println!(
        "   ALL_COMPLETED, after release  -> done {:?}, not_done {:?}",
        names(&done.done),
        names(&done.not_done)
    );
    Ok(())
}

fn callbacks(pool: &ThreadPoolExecutor) -> Result<(), Error> {
    heading("5. done callbacks: run as the future ends, on the thread that ends it");
    // The callback reports through a channel, capturing extra data (Python: functools.partial).
    fn report(job: &'static str, tx: mpsc::Sender<String>) -> impl FnOnce(&Result<u64, Error>) {
        move |outcome| {
            let on = thread::current().name().unwrap_or("?").to_owned();
            let _ = tx.send(format!("{job}: {outcome:?}, callback ran on {on}"));
        }
    }
    let (tx, rx) = mpsc::channel();
    let (release, wait_for_release) = mpsc::channel::<()>();
    let f = pool.spawn(move || {
        let _ = wait_for_release.recv(); // hold the task until its callback is in place
        fib(50)
    })?;
    f.add_done_callback(report("fib(50)", tx.clone()));
    let _ = release.send(());
    if let Ok(line) = rx.recv() {
        println!("   added while running:  {line}");
    }
    // `exception` waits until the future has ended and its callbacks have run, without taking the
    // value. A callback added after that runs at once, right here.
    f.exception(None)?;
    f.add_done_callback(report("fib(50)", tx));
    if let Ok(line) = rx.recv() {
        println!("   added after the end:  {line}");
    }
    Ok(())
}

fn cancel() -> Result<(), Error> {
    heading("6. cancel: succeeds only before the task starts");
    let pool = ThreadPoolExecutor::new(1)?;
    let (started_tx, started) = mpsc::channel();
    let (release, wait_for_release) = mpsc::channel::<()>();
    let mut running = pool.spawn(move || {
        let _ = started_tx.send(());
        let _ = wait_for_release.recv();
        "ran"
    })?;
    let mut queued = pool.spawn(|| "never runs")?;
    let _ = started.recv(); // the single worker is now busy with `running`
    println!("   running.cancel() -> {}   (too late)", running.cancel());
    println!(
        "   queued.cancel()  -> {}    (it will never run)",
        queued.cancel()
    );
    let _ = release.send(());
    println!("   running.result() -> {:?}", running.result(None));
    println!("   queued.result()  -> {:?}", queued.result(None));
    pool.shutdown(Queued::Run);
    Ok(())
}

fn interrupt(pool: &ThreadPoolExecutor) -> Result<(), Error> {
    heading("7. beyond Python: stop a running task (it checks a CancelToken)");
    let (started_tx, started) = mpsc::channel();
    let mut endless = pool.spawn_cancellable(move |token| {
        let _ = started_tx.send(());
        loop {
            token.check()?; // Err(Error::Interrupted) once asked to stop
            thread::sleep(Duration::from_millis(1));
        }
    })?;
    let _ = started.recv();
    println!(
        "   endless.cancel()    -> {}  (running: cancel cannot stop it)",
        endless.cancel()
    );
    println!("   endless.interrupt() -> {}", endless.interrupt());
    let outcome: Result<(), Error> = endless.result(None);
    println!("   endless.result()    -> {outcome:?}");

    let start = Instant::now();
    let mut limited = pool.spawn_with_time_limit(Duration::from_millis(50), |token| loop {
        token.check()?;
        thread::sleep(Duration::from_millis(1));
    })?;
    let outcome: Result<(), Error> = limited.result(None);
    println!(
        "   spawn_with_time_limit(50 ms, endless) -> {outcome:?} after {} ms",
        start.elapsed().as_millis()
    );
    Ok(())
}

fn shutdown() -> Result<(), Error> {
    heading("8. shutdown");
    let pool = ThreadPoolExecutor::new(1)?;
    let (started_tx, started) = mpsc::channel();
    let (release, wait_for_release) = mpsc::channel::<()>();
    let mut running = pool.spawn(move || {
        let _ = started_tx.send(());
        let _ = wait_for_release.recv();
        "finished"
    })?;
    let queued = pool.spawn(|| "never runs")?;
    let _ = started.recv();
    pool.shutdown_nowait(Queued::Cancel);
    println!("   shutdown_nowait(Queued::Cancel): the queued task -> {queued:?}");
    match pool.spawn(|| ()) {
        Err(e) => println!("   submitting afterwards -> Err({e:?}): \"{e}\""),
        Ok(_) => println!("   unexpected: the pool took new work"),
    }
    let _ = release.send(());
    println!(
        "   the running task still ends normally -> {:?}",
        running.result(None)
    );
    pool.shutdown(Queued::Run);
    println!("   shutdown(Queued::Run) returned: every worker has exited");
    println!(
        "   (ThreadPoolExecutor::shutdown_after is Python's `with` block: it waits like this at its end)"
    );
    Ok(())
}

/// Prints a blocking call and its async counterpart, with what each gave.
fn side_by_side_row(
    blocking: &str,
    b: impl std::fmt::Debug,
    asynchronous: &str,
    a: impl std::fmt::Debug,
) {
    println!("   blocking  {blocking:<36} -> {b:?}");
    println!("   async     {asynchronous:<36} -> {a:?}");
}

async fn side_by_side(pool: &ThreadPoolExecutor) -> Result<(), Error> {
    heading("9. blocking and async, side by side");
    let submit_three = || {
        (1..=3)
            .map(|n| pool.submit(fib, n * 10))
            .collect::<Result<Vec<_>, _>>()
    };

    let blocking = pool.submit(fib, 80)?.result(None)?;
    let awaited = pool.submit(fib, 80)?.await?;
    side_by_side_row("f.result(None)", blocking, "f.await", awaited);

    let blocking = wait(submit_three()?).blocking().done.len();
    let awaited = wait(submit_three()?).await.done.len();
    side_by_side_row(
        "wait(fs).blocking().done.len()",
        blocking,
        "wait(fs).await.done.len()",
        awaited,
    );

    let mut blocking = 0;
    for f in as_completed(submit_three()?) {
        blocking += f?.result(None)?;
    }
    let mut awaited = 0;
    let mut stream = as_completed(submit_three()?);
    while let Some(f) = stream.next().await {
        awaited += f?.await?;
    }
    side_by_side_row(
        "sum over as_completed(fs)",
        blocking,
        "sum over as_completed(fs) as Stream",
        awaited,
    );

    // Only in async: race a pool job against a timer. The losing job is not stopped (a dropped
    // future detaches), so a long one would be given a CancelToken; this one just sleeps briefly.
    let job = pool.submit(sleep_ms, 200)?;
    tokio::select! {
        done = job => println!("   select!   the job won -> {:?}", done?),
        () = tokio::time::sleep(Duration::from_millis(50)) => {
            println!("   select!   the 50 ms timer beat a 200 ms job; the job runs on, detached");
        }
    }
    Ok(())
}

/// Runs in a worker process: its pid and the square, so the output shows where it ran.
fn pid_and_square(n: u64) -> (u32, u64) {
    (std::process::id(), n * n)
}

/// Runs in a worker process and ends it at once, as a crash or `abort` in native code would.
fn crash(code: i32) -> u64 {
    std::process::exit(code)
}

/// Sums the inputs with `map` on any pool: the same code for threads and processes.
fn sum_of_squares(pool: &impl Executor, n: u64) -> Result<u64, Error> {
    pool.map(fib_square, 1..=n)?.into_iter().sum()
}

fn fib_square(n: u64) -> u64 {
    n * n
}

fn processes() -> Result<(), Error> {
    heading("10. processes: the same API, one type changed");
    // Workers are this program re-executed: no setup line, no fork of a threaded process.
    // One worker, so the respawn below is easy to see.
    let pool = ProcessPoolExecutor::builder()
        .max_workers(1)
        .on_worker_death(WorkerDeath::Respawn)
        .build()?;
    let (pid, square) = pool.submit(pid_and_square, 12)?.result(None)?;
    println!(
        "   pool.submit(pid_and_square, 12) -> ({pid}, {square})  (this program is pid {})",
        std::process::id()
    );
    let squares: Vec<u64> = pool
        .map_with(pid_and_square, 1..=6, MapOptions::new().chunksize(3))?
        .into_iter()
        .map(|r| r.map(|(_, sq)| sq))
        .collect::<Result<_, _>>()?;
    println!("   pool.map_with(pid_and_square, 1..=6, chunksize 3) -> {squares:?}");
    let threads = ThreadPoolExecutor::new(2)?;
    println!(
        "   sum_of_squares(&threads, 10) = {}, sum_of_squares(&processes, 10) = {}",
        sum_of_squares(&threads, 10)?,
        sum_of_squares(&pool, 10)?
    );
    threads.shutdown(Queued::Run);

    let mut died = pool.submit(crash, 3)?;
    match died.result(None) {
        Err(e) => println!("   a worker that exits mid-task -> Err: \"{e}\""),
        Ok(v) => println!("   unexpected: {v}"),
    }
    let (pid, _) = pool.submit(pid_and_square, 2)?.result(None)?;
    println!(
        "   WorkerDeath::Respawn: only that task failed; the next ran in a new worker, pid {pid} \
         (metrics: {} respawned)",
        pool.metrics().workers_respawned
    );
    println!("   (the default, WorkerDeath::BreakPool, fails every pending future with BrokenProcessPool, as Python)");

    let pids = pool.worker_pids();
    pool.shutdown(Queued::Run);
    println!("   pool.shutdown(Queued::Run): workers {pids:?} have exited and been reaped");
    Ok(())
}
