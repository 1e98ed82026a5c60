//! Soak test (not part of `cargo test`): both pools under a mixed load of submits, maps, cancels,
//! timeouts, panics, interrupts, time limits, worker kills and shutdowns, for a given time.
//!
//! ```text
//! cargo run --release --example soak -- --minutes 10
//! ```
//!
//! It ends with the accounting line `submitted = ok + failed + cancelled` and the process's
//! resources, and exits non-zero if
//! - a future did not end within [`SETTLE`] of the moment it was awaited (it is reported as *lost*),
//!   or a `map` did not yield exactly one item per input;
//! - the outcomes seen through done callbacks differ from those read with `result` (each future
//!   ends exactly once, with one outcome);
//! - the accounting does not balance;
//! - after every pool is shut down, this process has child processes (zombies included), a different
//!   set of threads (but for the crate's one timer thread, see [`TIMER_THREAD`]) or a different number
//!   of open descriptors (but for the files in [`KEPT_FILES`]) than at the start, or a resident set
//!   more than [`RSS_SLACK`] above the one after the first (warm-up) round. The warm-up baseline is
//!   there because the allocator's arenas and the pools' reusable buffers grow once and are kept by
//!   design; a leak grows with the number of rounds, which this bound catches over a long run.
//!
//! Each round builds fresh pools: a thread pool; a process pool with the resilient policy
//! ([`WorkerDeath::Respawn`], recycling after a few tasks) whose workers are interrupted, timed out and
//! SIGKILLed; a process pool with the default policy that a SIGKILL breaks (and the next round
//! rebuilds); one torn down with `kill_workers` / `terminate_workers`; and an async part on a tokio
//! runtime. Submits refused by a shut-down or broken pool give no future and are counted apart
//! (`rejected`).

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration, Instant};

use concurrent_futures::{
    Error, MapOptions, PoolFuture, ProcessPoolExecutor, Queued, ThreadPoolExecutor, WorkerDeath,
};

/// The longest wait for one future (or one `map` item) before it is declared lost. Far above any
/// task's own duration here (the longest legitimate wait is a worker respawn on a loaded machine).
const SETTLE: Duration = Duration::from_secs(60);
/// How far the resident set may end above its post-warm-up value.
const RSS_SLACK: u64 = 16 << 20;
/// How long threads and child processes get to go away after the last shutdown (a thread pool's
/// threads and a dropped pool's drivers exit on their own time).
const QUIESCE: Duration = Duration::from_secs(20);

// ---- tasks (process-pool tasks are plain functions) ----

fn square(n: u64) -> u64 {
    n * n
}

fn boom(n: u64) -> u64 {
    // A panic without the panic hook's report: thousands of them would bury the output.
    std::panic::resume_unwind(Box::new(format!("soak panic {n}")))
}

fn square_or_boom(n: u64) -> u64 {
    if n % 7 == 3 {
        boom(n)
    } else {
        square(n)
    }
}

fn parse(s: String) -> Result<u32, std::num::ParseIntError> {
    s.parse()
}

fn nap(ms: u64) -> u64 {
    std::thread::sleep(Duration::from_millis(ms));
    ms
}

// ---- accounting ----

/// Outcome tallies from done callbacks, which run on pool threads.
#[derive(Default)]
struct Seen {
    ok: AtomicU64,
    failed: AtomicU64,
    cancelled: AtomicU64,
}

impl Seen {
    fn record<T>(&self, outcome: &Result<T, Error>) {
        match outcome {
            Ok(_) => &self.ok,
            Err(Error::Cancelled) => &self.cancelled,
            Err(_) => &self.failed,
        }
        .fetch_add(1, Relaxed);
    }
}

#[derive(Default)]
struct Ledger {
    /// Futures created (and map inputs submitted).
    submitted: u64,
    ok: u64,
    failed: u64,
    cancelled: u64,
    /// Futures not ended within `SETTLE`, map items never yielded.
    lost: u64,
    /// Submits refused with an error (no future was created).
    rejected: u64,
    /// `result(timeout)` / `tokio::time::timeout` that gave up on a future still running (not an
    /// outcome: the future is accounted when it ends).
    timeouts: u64,
    /// Futures whose outcome was not the one the scenario guarantees.
    wrong: u64,
    seen: Arc<Seen>,
    /// Callback tallies of map elements are not visible (a `Map` has no callbacks): subtracted.
    map_ok: u64,
    map_failed: u64,
    /// Includes inputs never run because the map's own deadline passed (`map` cancels them).
    map_cancelled: u64,
}

impl Ledger {
    /// Counts a new future and watches its outcome through a done callback.
    fn track<T: Send + 'static>(&mut self, f: PoolFuture<T>) -> PoolFuture<T> {
        self.submitted += 1;
        let seen = self.seen.clone();
        f.add_done_callback(move |outcome| seen.record(outcome));
        f
    }

    /// A submit's result: a future to track, or a refusal.
    fn submitted<T: Send + 'static>(
        &mut self,
        r: Result<PoolFuture<T>, Error>,
    ) -> Option<PoolFuture<T>> {
        match r {
            Ok(f) => Some(self.track(f)),
            Err(_) => {
                self.rejected += 1;
                None
            }
        }
    }

    /// Waits (bounded) for a future's outcome and counts it once.
    fn settle<T>(&mut self, mut f: PoolFuture<T>, what: &str) -> Option<Result<T, Error>> {
        match f.result(SETTLE) {
            Err(Error::Timeout) => {
                self.lost += 1;
                eprintln!("LOST: {what} future {} not done after {SETTLE:?}", f.id());
                None
            }
            outcome => {
                self.count(&outcome);
                Some(outcome)
            }
        }
    }

    fn count<T>(&mut self, outcome: &Result<T, Error>) {
        match outcome {
            Ok(_) => self.ok += 1,
            Err(Error::Cancelled) => self.cancelled += 1,
            Err(_) => self.failed += 1,
        }
    }

    /// Settles a future whose outcome the scenario determines.
    fn expect<T>(&mut self, f: PoolFuture<T>, what: &str, ok: impl Fn(&Result<T, Error>) -> bool)
    where
        T: std::fmt::Debug,
    {
        if let Some(outcome) = self.settle(f, what) {
            if !ok(&outcome) {
                self.wrong += 1;
                eprintln!("WRONG: {what}: {outcome:?}");
            }
        }
    }

    fn settle_all<T>(&mut self, fs: impl IntoIterator<Item = PoolFuture<T>>, what: &str) {
        for f in fs {
            self.settle(f, what);
        }
    }

    /// Drains a `map` of `n` inputs; with `deadline`, the map's own timeout may end it early.
    fn drain_map<R>(&mut self, map: concurrent_futures::Map<R>, n: u64, deadline: bool) {
        self.submitted += n;
        let mut yielded = 0;
        let mut timed_out = false;
        for item in map {
            yielded += 1;
            match &item {
                Err(Error::Timeout) if !deadline => {
                    // The map's safety deadline (`SETTLE`), not the scenario's: an element hung.
                    self.lost += 1;
                    eprintln!("LOST: a map element not done after {SETTLE:?}");
                    timed_out = true;
                    continue;
                }
                Err(Error::Timeout) => timed_out = true,
                _ => {}
            }
            self.count(&item);
            match item {
                Ok(_) => self.map_ok += 1,
                Err(Error::Cancelled) => self.map_cancelled += 1,
                Err(_) => self.map_failed += 1,
            }
        }
        if yielded > n || (!timed_out && yielded != n) {
            eprintln!("LOST: a map of {n} inputs yielded {yielded} items");
            self.lost += n.abs_diff(yielded);
        } else if timed_out && deadline {
            // The rest were cancelled by the map when its deadline passed.
            self.cancelled += n - yielded;
            self.map_cancelled += n - yielded;
        } else if timed_out {
            self.lost += n - yielded;
        }
    }

    fn balanced(&self) -> bool {
        self.submitted == self.ok + self.failed + self.cancelled
    }

    /// Whether the done callbacks saw the same outcomes as the reads (maps excluded: no callbacks).
    fn callbacks_agree(&self) -> bool {
        let s = &self.seen;
        s.ok.load(Relaxed) + self.map_ok == self.ok
            && s.failed.load(Relaxed) + self.map_failed == self.failed
            && s.cancelled.load(Relaxed) + self.map_cancelled == self.cancelled
    }

    fn line(&self) -> String {
        format!(
            "submitted {} = ok {} + failed {} + cancelled {} ({}); lost {}, wrong {}, rejected submits {}, \
             timeouts while running {}",
            self.submitted,
            self.ok,
            self.failed,
            self.cancelled,
            if self.balanced() { "balanced" } else { "NOT BALANCED" },
            self.lost,
            self.wrong,
            self.rejected,
            self.timeouts,
        )
    }
}

// ---- resources ----

fn rss() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map_or(0, |kb| kb * 1024)
}

/// Files the crate opens once, at first use, and keeps for the life of the process (not leaks; a second
/// one would be): `/proc/loadavg`, which the spin policy reads to see whether a CPU is free.
const KEPT_FILES: &[&str] = &["/proc/loadavg"];

/// Open descriptors, one of each of [`KEPT_FILES`] left out.
fn fds() -> usize {
    let mut targets: Vec<std::path::PathBuf> = std::fs::read_dir("/proc/self/fd")
        .into_iter()
        .flatten()
        .filter_map(|e| std::fs::read_link(e.ok()?.path()).ok())
        .collect();
    for kept in KEPT_FILES {
        if let Some(i) = targets.iter().position(|t| t.as_os_str() == *kept) {
            targets.remove(i);
        }
    }
    targets.len()
}

/// What each open descriptor is (for the report of a leak).
fn fd_targets() -> Vec<String> {
    std::fs::read_dir("/proc/self/fd")
        .into_iter()
        .flatten()
        .filter_map(|e| {
            let e = e.ok()?;
            let target = std::fs::read_link(e.path()).ok()?;
            Some(format!("{:?} -> {}", e.file_name(), target.display()))
        })
        .collect()
}

/// The crate's one process-wide timer thread (it serves the deadlines no tokio timer serves). It starts
/// at the first such deadline and then stays, parked, for the life of the process, like tokio's or
/// async-io's timer threads: not a leak. Thread sets are compared without it; a second one would be.
const TIMER_THREAD: &str = "cf-timer";

/// This process's threads by name, sorted, the one timer thread left out (a second one stays in).
fn threads() -> Vec<String> {
    let mut v = all_threads();
    if let Some(i) = v.iter().position(|t| t == TIMER_THREAD) {
        v.remove(i);
    }
    v
}

fn all_threads() -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir("/proc/self/task")
        .into_iter()
        .flatten()
        .filter_map(|t| std::fs::read_to_string(t.ok()?.path().join("comm")).ok())
        .map(|s| s.trim().to_owned())
        .collect();
    v.sort();
    v
}

/// Every process whose parent is this one, zombies included.
fn children() -> Vec<String> {
    let me = std::process::id().to_string();
    std::fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .filter_map(|e| {
            let name = e.ok()?.file_name().into_string().ok()?;
            name.parse::<u32>().ok()?;
            let stat = std::fs::read_to_string(format!("/proc/{name}/stat")).ok()?;
            let mut f = stat.rsplit_once(')')?.1.split_whitespace();
            let state = f.next()?;
            (f.next()? == me).then(|| format!("{name} ({state})"))
        })
        .collect()
}

fn mib(bytes: u64) -> String {
    format!("{:.1} MiB", bytes as f64 / (1 << 20) as f64)
}

/// Polls `cond` until it holds or `limit` passes.
fn eventually(limit: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let end = Instant::now() + limit;
    while !cond() {
        if Instant::now() > end {
            return false;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    true
}

/// Waits (bounded) until a future is RUNNING or done: a process-pool future turns RUNNING when its
/// frame is written to a worker.
fn until_running<T>(f: &PoolFuture<T>) -> bool {
    eventually(SETTLE, || f.running() || f.done())
}

fn sigkill(pid: u32) {
    // SAFETY: kill(2) takes no pointers; the pid is one the pool reported as a live worker.
    unsafe {
        libc::kill(pid as libc::pid_t, libc::SIGKILL);
    }
}

// ---- the rounds ----

fn thread_round(l: &mut Ledger, round: u64) -> Result<(), Error> {
    let pool = ThreadPoolExecutor::builder()
        .max_workers(3)
        .queue_capacity(64)
        .build()?;
    // Plain submits, some panicking, some fallible.
    let mut fs = Vec::new();
    for i in 0..30u64 {
        if let Some(f) = l.submitted(pool.submit(square_or_boom, i)) {
            fs.push(f);
        }
    }
    let mut fallible = Vec::new();
    for s in ["12", "twelve", "7", ""] {
        if let Some(f) = l.submitted(pool.submit_fallible(parse, s.to_owned())) {
            fallible.push(f);
        }
    }
    // Block every worker, queue more behind them, cancel half of those.
    let (tx, rx) = std::sync::mpsc::channel::<()>();
    let rx = Arc::new(std::sync::Mutex::new(rx));
    let mut blockers = Vec::new();
    for _ in 0..3 {
        let rx = rx.clone();
        let f = pool.spawn(move || {
            let _ = rx.lock().unwrap().recv_timeout(SETTLE);
        });
        if let Some(f) = l.submitted(f) {
            blockers.push(f);
        }
    }
    let mut queued = Vec::new();
    for i in 0..10u64 {
        if let Some(f) = l.submitted(pool.submit(square, i)) {
            queued.push(f);
        }
    }
    for f in queued.iter().step_by(2) {
        f.cancel();
    }
    // A blocked task is still running: a short wait gives up, the future stays usable.
    if let Some(b) = blockers.first_mut() {
        if let Err(Error::Timeout) = b.result(Duration::from_millis(1)) {
            l.timeouts += 1;
        }
    }
    for _ in 0..3 {
        let _ = tx.send(());
    }
    // Cooperative interrupts and time limits.
    let limited = pool.spawn_with_time_limit(Duration::from_millis(5), |token| loop {
        token.check()?;
        std::thread::sleep(Duration::from_millis(1));
    });
    let limited: Option<PoolFuture<()>> = l.submitted(limited);
    let cancellable = pool.spawn_cancellable(|token| loop {
        token.check()?;
        std::thread::sleep(Duration::from_millis(1));
    });
    let cancellable: Option<PoolFuture<()>> = l.submitted(cancellable);
    if let Some(c) = &cancellable {
        until_running(c);
        c.interrupt();
    }
    // Maps: one drained in full (with a panic per 7 inputs), one ended by its own deadline.
    let map = pool.map_with(square_or_boom, 0..40u64, MapOptions::new().timeout(SETTLE))?;
    l.drain_map(map, 40, false);
    let slow = pool.map_with(
        nap,
        [0u64, 0, 200, 200, 200, 200],
        MapOptions::new().timeout(Duration::from_millis(50)),
    )?;
    l.drain_map(slow, 6, true);

    l.settle_all(fs, "thread submit");
    for f in fallible {
        l.expect(f, "thread fallible", |o| {
            matches!(o, Ok(_) | Err(Error::Failed(_)))
        });
    }
    l.settle_all(blockers, "thread blocker");
    for f in queued {
        l.expect(f, "thread queued", |o| {
            matches!(o, Ok(_) | Err(Error::Cancelled))
        });
    }
    for f in limited.into_iter().chain(cancellable) {
        l.expect(f, "thread interrupted", |o| {
            matches!(o, Err(Error::Interrupted))
        });
    }
    // Shut down with work queued: cancelled or run, alternately.
    let (tx, rx) = std::sync::mpsc::channel::<()>();
    let rx = Arc::new(std::sync::Mutex::new(rx));
    let mut tail = Vec::new();
    for _ in 0..3 {
        let rx = rx.clone();
        if let Some(f) = l.submitted(pool.spawn(move || {
            let _ = rx.lock().unwrap().recv_timeout(SETTLE);
        })) {
            tail.push(f);
        }
    }
    let mut behind = Vec::new();
    for i in 0..5u64 {
        if let Some(f) = l.submitted(pool.submit(square, i)) {
            behind.push(f);
        }
    }
    let cancel = round % 2 == 0;
    pool.shutdown_nowait(if cancel { Queued::Cancel } else { Queued::Run });
    if l.submitted(pool.submit(square, 1)).is_some() {
        l.wrong += 1;
        eprintln!("WRONG: a thread-pool submit after shutdown was accepted");
    }
    for _ in 0..3 {
        let _ = tx.send(());
    }
    l.settle_all(tail, "thread tail");
    for f in behind {
        l.expect(f, "thread behind shutdown", |o| match o {
            Err(Error::Cancelled) => cancel,
            Ok(_) => true,
            _ => false,
        });
    }
    pool.shutdown(Queued::Run);
    Ok(())
}

fn respawn_round(l: &mut Ledger, round: u64) -> Result<(), Error> {
    let pool = ProcessPoolExecutor::builder()
        .max_workers(2)
        .on_worker_death(WorkerDeath::Respawn)
        .max_tasks_per_child(9)
        .build()?;
    let mut fs = Vec::new();
    for i in 0..20u64 {
        if let Some(f) = l.submitted(pool.submit(square_or_boom, i)) {
            fs.push(f);
        }
    }
    for s in ["12", "twelve"] {
        if let Some(f) = l.submitted(pool.submit_fallible(parse, s.to_owned())) {
            l.expect(f, "process fallible", |o| {
                matches!(o, Ok(12) | Err(Error::Failed(_)))
            });
        }
    }
    // A time limit kills its worker; an interrupt kills its worker.
    if let Some(f) =
        l.submitted(pool.submit_with_time_limit(Duration::from_millis(30), nap, 10_000))
    {
        l.expect(f, "process time limit", |o| {
            matches!(o, Err(Error::TimeLimit(_)))
        });
    }
    if let Some(f) = l.submitted(pool.submit(nap, 10_000)) {
        until_running(&f);
        f.interrupt();
        l.expect(f, "process interrupt", |o| {
            matches!(o, Err(Error::Interrupted))
        });
    }
    // SIGKILL the workers while both run a task: those tasks fail, the pool carries on.
    let a = l.submitted(pool.submit(nap, 10_000));
    let b = l.submitted(pool.submit(nap, 10_000));
    if let (Some(a), Some(b)) = (&a, &b) {
        until_running(a);
        until_running(b);
        if let Some(mut a2) = pool.submit(nap, 0).ok().map(|f| l.track(f)) {
            // Queued behind the two sleepers; a short wait times out while they run.
            if let Err(Error::Timeout) = a2.result(Duration::from_millis(1)) {
                l.timeouts += 1;
            }
            fs.push(a2);
        }
        for pid in pool.worker_pids() {
            sigkill(pid);
        }
    }
    for f in a.into_iter().chain(b) {
        l.expect(f, "process killed", |o| {
            matches!(o, Err(Error::WorkerDied(_)))
        });
    }
    // Cancel tasks queued behind busy workers.
    let mut queued = Vec::new();
    for ms in [300u64, 300, 0, 0, 0, 0, 0, 0] {
        if let Some(f) = l.submitted(pool.submit(nap, ms)) {
            queued.push(f);
        }
    }
    for f in queued.iter().skip(2).step_by(2) {
        f.cancel();
    }
    let map = pool.map_with(
        square_or_boom,
        0..30u64,
        MapOptions::new().chunksize(4).timeout(SETTLE),
    )?;
    l.drain_map(map, 30, false);
    let slow = pool.map_with(
        nap,
        [0u64, 0, 400, 400, 400],
        MapOptions::new().timeout(Duration::from_millis(100)),
    )?;
    l.drain_map(slow, 5, true);
    l.settle_all(fs, "process submit");
    for f in queued {
        l.expect(f, "process queued", |o| {
            matches!(o, Ok(_) | Err(Error::Cancelled))
        });
    }
    // Shut down with work queued behind two sleepers.
    let mut tail = Vec::new();
    for ms in [200u64, 200, 0, 0, 0] {
        if let Some(f) = l.submitted(pool.submit(nap, ms)) {
            tail.push(f);
        }
    }
    let cancel = round % 2 == 1;
    pool.shutdown(if cancel { Queued::Cancel } else { Queued::Run });
    if l.submitted(pool.submit(square, 2)).is_some() {
        l.wrong += 1;
        eprintln!("WRONG: a process-pool submit after shutdown was accepted");
    }
    for f in tail {
        l.expect(f, "process behind shutdown", |o| match o {
            Err(Error::Cancelled) => cancel,
            Ok(_) => true,
            _ => false,
        });
    }
    Ok(())
}

/// The default policy: one dead worker breaks the pool; every pending future fails; the next round
/// builds a new pool.
fn broken_round(l: &mut Ledger) -> Result<(), Error> {
    let pool = ProcessPoolExecutor::new(2)?;
    let mut fs = Vec::new();
    for ms in [10_000u64, 10_000, 0, 0, 0, 0] {
        if let Some(f) = l.submitted(pool.submit(nap, ms)) {
            fs.push(f);
        }
    }
    fs.first().map(until_running);
    if let Some(&pid) = pool.worker_pids().first() {
        sigkill(pid);
    }
    for f in fs {
        l.expect(f, "broken pool", |o| {
            matches!(o, Err(Error::BrokenProcessPool(_)))
        });
    }
    // Later submits are refused, or (if the break is still being published) fail on their own.
    for i in 0..3u64 {
        if let Some(f) = l.submitted(pool.submit(square, i)) {
            l.expect(f, "broken pool, later", |o| {
                matches!(o, Err(Error::BrokenProcessPool(_)))
            });
        }
    }
    pool.shutdown(Queued::Run);
    Ok(())
}

/// Python 3.14's `terminate_workers` / `kill_workers`: running futures fail, queued ones are cancelled.
fn forced_round(l: &mut Ledger, round: u64) -> Result<(), Error> {
    let pool = ProcessPoolExecutor::new(2)?;
    let mut fs = Vec::new();
    for ms in [10_000u64, 10_000, 0, 0] {
        if let Some(f) = l.submitted(pool.submit(nap, ms)) {
            fs.push(f);
        }
    }
    fs.iter().take(2).for_each(|f| {
        until_running(f);
    });
    if round % 2 == 0 {
        pool.kill_workers();
    } else {
        pool.terminate_workers();
    }
    for f in fs {
        l.expect(f, "forced shutdown", |o| {
            matches!(o, Err(Error::BrokenProcessPool(_) | Error::Cancelled))
        });
    }
    pool.shutdown(Queued::Run);
    Ok(())
}

/// The same pools from async code: `.await`, `tokio::time::timeout`, `shutdown_async`.
fn async_round(l: &mut Ledger) -> Result<(), Error> {
    // Time only: tokio's I/O driver would start its signal handling, whose socketpair is a
    // process-wide one-time allocation that would read as a descriptor leak.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .expect("a tokio runtime");
    rt.block_on(async {
        let threads = ThreadPoolExecutor::new(2)?;
        let procs = ProcessPoolExecutor::new(2)?;
        let mut fs = Vec::new();
        for i in 0..10u64 {
            if let Some(f) = l.submitted(procs.submit(square_or_boom, i)) {
                fs.push(f);
            }
            if let Some(f) = l.submitted(threads.submit(square_or_boom, i)) {
                fs.push(f);
            }
        }
        let mut slow = l.submitted(procs.submit(nap, 200));
        if let Some(s) = &mut slow {
            if tokio::time::timeout(Duration::from_millis(1), &mut *s)
                .await
                .is_err()
            {
                l.timeouts += 1;
            }
        }
        fs.extend(slow);
        for f in fs {
            match tokio::time::timeout(SETTLE, f).await {
                Ok(outcome) => l.count(&outcome),
                Err(_) => {
                    l.lost += 1;
                    eprintln!("LOST: an awaited future not done after {SETTLE:?}");
                }
            }
        }
        threads.shutdown_async(Queued::Run).await;
        procs.shutdown_async(Queued::Run).await;
        Ok::<(), Error>(())
    })
}

fn round(l: &mut Ledger, n: u64) -> Result<(), Error> {
    thread_round(l, n)?;
    respawn_round(l, n)?;
    broken_round(l)?;
    forced_round(l, n)?;
    async_round(l)
}

fn minutes() -> f64 {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.as_slice() {
        [] => 0.1,
        [flag, n] if flag == "--minutes" => match n.parse::<f64>() {
            Ok(m) if m >= 0.0 && m.is_finite() => m,
            _ => usage(),
        },
        _ => usage(),
    }
}

fn usage() -> ! {
    eprintln!("usage: soak [--minutes N]   (N may be fractional; default 0.1)");
    std::process::exit(2)
}

fn main() {
    let minutes = minutes();
    let start = Instant::now();
    let end = start + Duration::from_secs_f64(minutes * 60.0);
    let (fds0, threads0, rss0) = (fds(), threads(), rss());
    let fd_targets0 = fd_targets();
    println!(
        "soak: {minutes} min; start: rss {}, {} threads, {fds0} fds, {} children",
        mib(rss0),
        threads0.len(),
        children().len()
    );

    let mut l = Ledger::default();
    let mut rounds = 0;
    let mut warm_rss = 0;
    let mut last_report = Instant::now();
    // At least one round, however short the run.
    while rounds == 0 || Instant::now() < end {
        if let Err(e) = round(&mut l, rounds) {
            eprintln!("soak: round {rounds} could not build a pool: {e}");
            std::process::exit(1);
        }
        rounds += 1;
        if rounds == 1 {
            warm_rss = rss();
        }
        if last_report.elapsed() > Duration::from_secs(30) {
            last_report = Instant::now();
            println!(
                "[{:>4.0} s] round {rounds}: {}; rss {}, {} threads, {} fds, {} children",
                start.elapsed().as_secs_f64(),
                l.line(),
                mib(rss()),
                threads().len(),
                fds(),
                children().len()
            );
        }
    }

    // Every pool is shut down: its threads and processes must go away.
    let no_children = eventually(QUIESCE, || children().is_empty());
    let same_threads = eventually(QUIESCE, || threads() == threads0);
    let (fds1, threads1, rss1) = (fds(), threads(), rss());
    println!(
        "soak: {rounds} rounds in {:.1} s",
        start.elapsed().as_secs_f64()
    );
    println!("{}", l.line());
    println!(
        "resources: rss {} (start {}, after warm-up {}, slack {}); threads {} (start {}); \
         fds {fds1} (start {fds0}); children {:?}",
        mib(rss1),
        mib(rss0),
        mib(warm_rss),
        mib(RSS_SLACK),
        threads1.len(),
        threads0.len(),
        children()
    );

    let mut failures = Vec::new();
    if !l.balanced() {
        failures.push("the accounting does not balance".to_owned());
    }
    if l.lost > 0 {
        failures.push(format!("{} futures lost", l.lost));
    }
    if l.wrong > 0 {
        failures.push(format!("{} futures ended with the wrong outcome", l.wrong));
    }
    if !l.callbacks_agree() {
        let s = &l.seen;
        failures.push(format!(
            "done callbacks saw ok {} failed {} cancelled {} (non-map)",
            s.ok.load(Relaxed),
            s.failed.load(Relaxed),
            s.cancelled.load(Relaxed)
        ));
    }
    if !no_children {
        failures.push(format!("child processes left: {:?}", children()));
    }
    if !same_threads {
        failures.push(format!("threads {threads1:?}, at start {threads0:?}"));
    }
    if fds1 != fds0 {
        failures.push(format!(
            "{fds1} open descriptors, {fds0} at start: now {:?}, at start {fd_targets0:?}",
            fd_targets()
        ));
    }
    if rss1 > warm_rss + RSS_SLACK {
        failures.push(format!(
            "rss {} is over {} + {}",
            mib(rss1),
            mib(warm_rss),
            mib(RSS_SLACK)
        ));
    }
    if failures.is_empty() {
        println!("soak: OK");
    } else {
        for f in &failures {
            eprintln!("soak: FAILED: {f}");
        }
        std::process::exit(1);
    }
}
