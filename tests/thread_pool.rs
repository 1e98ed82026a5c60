//! Thread-pool specifics: CPython's conformance group 10 (items 102–109), a task submitting to its own
//! pool (#85), stopping a running task cooperatively, and the `metrics()` counters.

mod common;

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc, Barrier, Mutex};
use std::time::{Duration, Instant};

use common::threads::{occupy, spawn_exit_probed, Gate};
use common::LONG;
use concurrent_futures::{Error, Metrics, PoolFuture, Queued, ThreadPoolExecutor};

fn thread_name() -> String {
    std::thread::current()
        .name()
        .unwrap_or("<unnamed>")
        .to_owned()
}

/// Runs `n` tasks that meet at a barrier, so that they run on `n` distinct threads; returns their names.
fn names_of_n_workers(pool: &ThreadPoolExecutor, n: usize) -> BTreeSet<String> {
    let barrier = Arc::new(Barrier::new(n));
    let futures: Vec<_> = (0..n)
        .map(|_| {
            let barrier = barrier.clone();
            pool.spawn(move || {
                barrier.wait();
                thread_name()
            })
            .unwrap()
        })
        .collect();
    futures
        .into_iter()
        .map(|mut f| f.result(LONG).unwrap())
        .collect()
}

// CPython #102
#[test]
fn default_max_workers_is_min_32_and_cpus_plus_4() {
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    let expected = (cpus + 4).min(32);
    assert_eq!(
        ThreadPoolExecutor::builder().build().unwrap().max_workers(),
        expected
    );
    assert_eq!(ThreadPoolExecutor::new(3).unwrap().max_workers(), 3);
}

// CPython #103: no thread starts before the first submit, and one starts per submit that finds no
// idle thread.
#[test]
fn threads_start_lazily() {
    let pool = ThreadPoolExecutor::new(4).unwrap();
    assert_eq!(
        pool.metrics(),
        Metrics::default(),
        "nothing started at build"
    );
    let gate = Gate::default();
    let _open = gate.guard();
    let futures: Vec<_> = (1..=3)
        .map(|n| {
            let gate = gate.clone();
            let f = pool.spawn(move || gate.wait()).unwrap();
            assert_eq!(pool.metrics().workers, n);
            f
        })
        .collect();
    drop(_open);
    for mut f in futures {
        f.result(LONG).unwrap();
    }
}

// CPython #103: with 15 × max_workers blocked tasks there are exactly max_workers threads.
#[test]
fn saturation_starts_exactly_max_workers_threads() {
    let max = 4;
    let pool = ThreadPoolExecutor::new(max).unwrap();
    let gate = Gate::default();
    let open = gate.guard();
    let (started_tx, started) = mpsc::channel();
    let futures: Vec<_> = (0..15 * max)
        .map(|_| {
            let (gate, started_tx) = (gate.clone(), started_tx.clone());
            pool.spawn(move || {
                started_tx.send(()).unwrap();
                gate.wait();
                thread_name()
            })
            .unwrap()
        })
        .collect();
    assert_eq!(pool.metrics().workers, max);
    for _ in 0..max {
        started.recv_timeout(LONG).unwrap();
    }
    let m = pool.metrics();
    assert_eq!((m.workers, m.running, m.queued), (max, max, 14 * max));
    drop(open);
    let names: BTreeSet<String> = futures
        .into_iter()
        .map(|mut f| f.result(LONG).unwrap())
        .collect();
    assert_eq!(names.len(), max, "every thread ran a task: {names:?}");
    assert_eq!(pool.metrics().workers, max);
}

// CPython #104: submit-then-result in sequence reuses the one idle thread. Deterministic here: a worker
// declares itself idle before it publishes its result.
#[test]
fn sequential_submits_reuse_one_idle_thread() {
    let pool = ThreadPoolExecutor::new(8).unwrap();
    let mut names = BTreeSet::new();
    for _ in 0..3 {
        names.insert(pool.spawn(thread_name).unwrap().result(LONG).unwrap());
    }
    assert_eq!(pool.metrics().workers, 1);
    assert_eq!(names.len(), 1);
    // Also when awaited.
    futures::executor::block_on(async {
        for _ in 0..20 {
            pool.spawn(|| ()).unwrap().await.unwrap();
        }
    });
    assert_eq!(pool.metrics().workers, 1);
}

// CPython #105: threads are named `<prefix>_<i>`, i in 0..max_workers.
#[test]
fn threads_are_named_with_the_prefix_and_an_index() {
    let pool = ThreadPoolExecutor::builder()
        .max_workers(5)
        .thread_name_prefix("SpecialPool")
        .build()
        .unwrap();
    let names = names_of_n_workers(&pool, 5);
    let expected: BTreeSet<String> = (0..5).map(|i| format!("SpecialPool_{i}")).collect();
    assert_eq!(names, expected);
}

/// Splits `ThreadPoolExecutor-<k>_<i>` into (k, i).
fn parse_default_name(name: &str) -> (usize, usize) {
    let rest = name
        .strip_prefix("ThreadPoolExecutor-")
        .unwrap_or_else(|| panic!("unexpected thread name {name:?}"));
    let (k, i) = rest
        .split_once('_')
        .unwrap_or_else(|| panic!("unexpected thread name {name:?}"));
    (k.parse().unwrap(), i.parse().unwrap())
}

// CPython #106: without a prefix, threads are named `ThreadPoolExecutor-<k>_<i>` with k counted per
// pool across the process.
#[test]
fn default_thread_names_count_pools_and_workers() {
    let first = ThreadPoolExecutor::new(2).unwrap();
    let second = ThreadPoolExecutor::new(2).unwrap();
    let a: Vec<_> = names_of_n_workers(&first, 2)
        .iter()
        .map(|n| parse_default_name(n))
        .collect();
    let b: Vec<_> = names_of_n_workers(&second, 2)
        .iter()
        .map(|n| parse_default_name(n))
        .collect();
    // One k per pool, distinct between pools; i runs 0..max_workers.
    assert_eq!(a[0].0, a[1].0);
    assert_eq!(b[0].0, b[1].0);
    assert!(b[0].0 > a[0].0, "pool counter {a:?} then {b:?}");
    assert_eq!(a.iter().map(|x| x.1).collect::<Vec<_>>(), [0, 1]);
    assert_eq!(b.iter().map(|x| x.1).collect::<Vec<_>>(), [0, 1]);
}

/// Sends when the worker thread exits (its thread-locals are destroyed).
// CPython #107: idle workers exit when the pool is dropped (the weakref-callback wake-up in Python).
#[test]
fn idle_workers_exit_when_the_pool_is_dropped() {
    let pool = ThreadPoolExecutor::new(2).unwrap();
    let (futures, exited) = spawn_exit_probed(&pool, 2);
    for mut f in futures {
        f.result(LONG).unwrap();
    }
    assert_eq!(pool.metrics().idle, 2);
    drop(pool);
    exited.recv_timeout(LONG).unwrap();
    exited.recv_timeout(LONG).unwrap();
}

// CPython #108 (and #20): a worker survives any panic of a task and goes on to the next one.
#[test]
fn a_worker_survives_panicking_tasks() {
    let pool = ThreadPoolExecutor::new(1).unwrap();
    let worker = pool.spawn(thread_name).unwrap().result(LONG).unwrap();

    let mut f = pool.spawn(|| -> u32 { panic!("boom") }).unwrap();
    assert!(matches!(f.result(LONG), Err(Error::Panicked(m)) if m == "boom"));
    let mut f = pool
        .submit(|n: u32| -> u32 { panic!("bad value {n}") }, 4)
        .unwrap();
    assert!(matches!(f.result(LONG), Err(Error::Panicked(m)) if m == "bad value 4"));
    let mut f = pool
        .spawn(|| -> u32 { std::panic::panic_any(42_i32) })
        .unwrap();
    assert!(matches!(f.result(LONG), Err(Error::Panicked(_))));

    // Python's int('4') after SystemExit: the next task runs, on the same thread.
    let mut next = pool
        .spawn(|| ("4".parse::<u32>().unwrap(), thread_name()))
        .unwrap();
    assert_eq!(next.result(LONG).unwrap(), (4, worker));
    let m = pool.metrics();
    assert_eq!((m.workers, m.panicked, m.completed), (1, 3, 5));
}

// CPython #109: tasks start in FIFO order.
#[test]
fn tasks_start_in_submission_order() {
    let pool = ThreadPoolExecutor::new(1).unwrap();
    let (busy, open) = occupy(&pool);
    let order = Arc::new(Mutex::new(Vec::new()));
    let futures: Vec<_> = (0..20)
        .map(|i| {
            let order = order.clone();
            pool.spawn(move || order.lock().unwrap().push(i)).unwrap()
        })
        .collect();
    drop(open);
    pool.shutdown(Queued::Run);
    assert!(futures.iter().chain([&busy]).all(PoolFuture::done));
    assert_eq!(*order.lock().unwrap(), (0..20).collect::<Vec<_>>());
}

// CPython #85: a task may submit more work to its own live pool, even with one worker (it returns the
// inner future rather than waiting on it).
#[test]
fn a_task_can_submit_to_its_own_pool() {
    let pool = ThreadPoolExecutor::new(1).unwrap();
    let own = pool.clone();
    let mut outer = pool.spawn(move || own.submit(|n: u32| n + 1, 41)).unwrap();
    let mut inner = outer.result(LONG).unwrap().unwrap();
    assert_eq!(inner.result(LONG).unwrap(), 42);

    // With two workers a task may also wait for the work it submitted.
    let pool = ThreadPoolExecutor::new(2).unwrap();
    let own = pool.clone();
    let mut outer = pool
        .spawn(move || own.spawn(|| 6 * 7).unwrap().result(LONG))
        .unwrap();
    assert_eq!(outer.result(LONG).unwrap().unwrap(), 42);
}

// CPython #110 (fork from a pool thread) does not apply: this crate never forks.

/// Starts a cancellable task that loops on its token; returns once it runs.
fn start_cancellable_loop(pool: &ThreadPoolExecutor) -> PoolFuture<u32> {
    let (started_tx, started) = mpsc::channel();
    let f = pool
        .spawn_cancellable(move |token| {
            assert!(token.deadline().is_none());
            started_tx.send(()).unwrap();
            loop {
                token.check()?;
                std::thread::yield_now();
            }
        })
        .unwrap();
    started.recv_timeout(LONG).unwrap();
    f
}

// Beyond Python: interrupt() stops a running cancellable task at its next check.
#[test]
fn interrupt_stops_a_running_cancellable_task() {
    let pool = ThreadPoolExecutor::new(2).unwrap();
    let mut f = start_cancellable_loop(&pool);
    assert!(f.running());
    assert!(!f.cancel(), "cancel() never stops a running task");
    assert!(f.interrupt());
    assert!(matches!(f.result(LONG), Err(Error::Interrupted)));
    assert!(!f.cancelled());
    assert!(!f.interrupt(), "nothing to interrupt once finished");
}

// Beyond Python: interrupt() on a queued task cancels it; on a running plain task it does nothing.
#[test]
fn interrupt_cancels_a_queued_task_and_cannot_stop_a_plain_one() {
    let pool = ThreadPoolExecutor::new(1).unwrap();
    let (mut busy, open) = occupy(&pool);
    let ran = Arc::new(AtomicBool::new(false));
    let flag = ran.clone();
    let mut queued = pool
        .spawn_cancellable(move |_| {
            flag.store(true, Ordering::SeqCst);
            Ok(())
        })
        .unwrap();
    assert!(queued.interrupt());
    assert!(queued.cancelled());
    assert!(matches!(queued.result(LONG), Err(Error::Cancelled)));
    // `busy` was started with spawn: it has no token, so it cannot be asked to stop.
    assert!(!busy.interrupt());
    assert!(busy.running());
    drop(open);
    busy.result(LONG).unwrap();
    pool.shutdown(Queued::Run);
    assert!(!ran.load(Ordering::SeqCst));
}

// Beyond Python: a cancellable task sees its token through is_cancelled() as well, and may finish with
// its own outcome after noticing: the future gets the task's value, not Interrupted.
#[test]
fn a_cancellable_task_may_end_its_own_way_when_asked_to_stop() {
    let pool = ThreadPoolExecutor::new(1).unwrap();
    let (started_tx, started) = mpsc::channel();
    let (asked_tx, asked) = mpsc::channel::<()>();
    let mut f = pool
        .spawn_cancellable(move |token| {
            let before = token.is_cancelled();
            started_tx.send(()).unwrap();
            // The test interrupts, then says so.
            asked.recv_timeout(LONG).unwrap();
            let after = token.is_cancelled();
            Ok(format!("stopped on my own terms ({before} then {after})"))
        })
        .unwrap();
    started.recv_timeout(LONG).unwrap();
    assert!(f.interrupt());
    assert!(f.running(), "asking does not end the task");
    asked_tx.send(()).unwrap();
    assert_eq!(
        f.result(LONG).unwrap(),
        "stopped on my own terms (false then true)"
    );
}

// Beyond Python: spawn_with_time_limit counts its limit from the start of the run, not from submit.
#[test]
fn time_limit_counts_from_the_start_of_the_run() {
    let limit = Duration::from_millis(20);
    let pool = ThreadPoolExecutor::new(1).unwrap();
    let (busy, open) = occupy(&pool);
    let mut f = pool
        .spawn_with_time_limit(limit, |token| {
            let start = Instant::now();
            let deadline = token.deadline().expect("a time limit sets a deadline");
            let fresh = !token.is_cancelled() && deadline > start;
            loop {
                if token.check().is_err() {
                    return Ok((fresh, start.elapsed()));
                }
                std::thread::sleep(Duration::from_millis(1));
            }
        })
        .unwrap();
    // Keep it queued for longer than its limit (a real delay: this is about clocks).
    std::thread::sleep(limit * 2);
    drop(open);
    let (fresh, ran_for) = f.result(LONG).unwrap();
    assert!(fresh, "the limit had already run out when the task started");
    assert!(
        ran_for >= limit - Duration::from_millis(1),
        "stopped after {ran_for:?}"
    );
    drop(busy);
}

// Beyond Python: a task that keeps checking ends with Interrupted when its time limit passes; one that
// finishes in time keeps its value.
#[test]
fn time_limit_interrupts_a_task_that_overruns() {
    let pool = ThreadPoolExecutor::new(2).unwrap();
    let mut forever = pool
        .spawn_with_time_limit(Duration::from_millis(10), |token| -> Result<(), Error> {
            loop {
                token.check()?;
                std::thread::sleep(Duration::from_millis(1));
            }
        })
        .unwrap();
    assert!(matches!(forever.result(LONG), Err(Error::Interrupted)));
    let mut quick = pool
        .spawn_with_time_limit(LONG, |token| {
            token.check()?;
            Ok(5)
        })
        .unwrap();
    assert_eq!(quick.result(LONG).unwrap(), 5);
    assert_eq!(pool.metrics().failed, 1, "Interrupted counts as a failure");
}

// metrics(): every counter, in one scenario.
#[test]
fn metrics_count_workers_queue_and_outcomes() {
    let pool = ThreadPoolExecutor::new(1).unwrap();
    let (mut busy, open) = occupy(&pool);
    let mut ok = pool.spawn(|| 1).unwrap();
    let mut failed = pool
        .spawn_fallible(|| Err::<u32, _>(std::io::Error::other("no")))
        .unwrap();
    let mut panicked = pool.spawn(|| -> u32 { panic!("metrics") }).unwrap();
    let cancelled = pool.spawn(|| 4).unwrap();
    assert!(cancelled.cancel());
    let m = pool.metrics();
    assert_eq!(
        (m.workers, m.idle, m.running, m.queued),
        (1, 0, 1, 4),
        "the cancelled task stays queued until a worker skips it"
    );

    drop(open);
    busy.result(LONG).unwrap();
    assert_eq!(ok.result(LONG).unwrap(), 1);
    assert!(matches!(failed.result(LONG), Err(Error::Failed(_))));
    assert!(matches!(panicked.result(LONG), Err(Error::Panicked(_))));
    // Tasks run in order: once this one is back, the cancelled one was skipped, and the worker
    // declared itself idle before publishing.
    pool.spawn(|| ()).unwrap().result(LONG).unwrap();
    let m = pool.metrics();
    assert_eq!(
        (m.workers, m.idle, m.running, m.queued),
        (1, 1, 0, 0),
        "{m:?}"
    );
    assert_eq!(
        (m.completed, m.failed, m.panicked, m.cancelled),
        (5, 1, 1, 1),
        "{m:?}"
    );

    pool.shutdown(Queued::Run);
    let m = pool.metrics();
    assert_eq!((m.workers, m.idle), (0, 0));
}

// The builder's stack size is applied to the worker threads.
#[test]
fn stack_size_is_accepted() {
    let pool = ThreadPoolExecutor::builder()
        .max_workers(1)
        .stack_size(8 * 1024 * 1024)
        .build()
        .unwrap();
    // Deeper than std's default 2 MiB stack allows, well within 8 MiB.
    fn depth(n: u32) -> u32 {
        let pad = std::hint::black_box([1u8; 512]);
        if n == 0 {
            0
        } else {
            depth(n - 1) + u32::from(pad[n as usize % 512])
        }
    }
    let mut f = pool.spawn(|| depth(5000)).unwrap();
    assert_eq!(f.result(LONG).unwrap(), 5000);
}

#[test]
fn a_thread_name_prefix_with_a_nul_byte_is_refused_at_build() {
    // A thread name cannot hold a NUL byte: std panics when asked for one, which would happen at the
    // first submit.
    let built = ThreadPoolExecutor::builder()
        .max_workers(1)
        .thread_name_prefix("db\0pool")
        .build();
    assert!(
        matches!(built, Err(Error::InvalidArgument(ref m)) if m.contains("NUL")),
        "{built:?}"
    );
}
