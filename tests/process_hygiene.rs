//! No leaks on any error path: after each scenario (and its `shutdown`, or a drop of the pool), this
//! process has the same open descriptors and threads as before, and no child process, not even a
//! zombie. One test in its own binary, so nothing else runs meanwhile and the counts are exact.

mod common;

use std::time::{Duration, Instant};

use common::process::{gated_forever, gated_pid, kill, pid, wait_gone, Gate};
use concurrent_futures::{
    BrokenCause, Error, MapOptions, ProcessPoolExecutor, Queued, WorkerDeath,
};

fn fds() -> usize {
    std::fs::read_dir("/proc/self/fd").unwrap().count()
}

fn threads() -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir("/proc/self/task")
        .unwrap()
        .filter_map(|t| std::fs::read_to_string(t.ok()?.path().join("comm")).ok())
        .map(|s| s.trim().to_owned())
        .collect();
    v.sort();
    v
}

/// Every process whose parent is this one (zombies included: they still name us as parent).
fn children() -> Vec<String> {
    let me = std::process::id().to_string();
    std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(|e| {
            let name = e.ok()?.file_name().into_string().ok()?;
            name.parse::<u32>().ok()?;
            let stat = std::fs::read_to_string(format!("/proc/{name}/stat")).ok()?;
            let rest = stat.rsplit_once(')')?.1;
            let mut f = rest.split_whitespace();
            let state = f.next()?;
            (f.next()? == me).then(|| format!("{name} ({state})"))
        })
        .collect()
}

/// Polls `cond` until it holds or `limit` passes (threads of a dropped pool exit on their own time).
fn eventually(limit: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let end = Instant::now() + limit;
    loop {
        if cond() {
            return true;
        }
        if Instant::now() > end {
            return false;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

const LIMIT: Duration = Duration::from_secs(20);

struct Baseline {
    fds: usize,
    threads: Vec<String>,
}

impl Baseline {
    fn take() -> Baseline {
        Baseline {
            fds: fds(),
            threads: threads(),
        }
    }

    fn check(&self, scenario: &str) {
        assert!(
            eventually(LIMIT, || children().is_empty()),
            "{scenario}: child processes left: {:?}",
            children()
        );
        assert!(
            eventually(LIMIT, || threads() == self.threads),
            "{scenario}: threads {:?}, before {:?}",
            threads(),
            self.threads
        );
        assert_eq!(fds(), self.fds, "{scenario}: descriptors leaked");
    }
}

fn set_fd_limit(soft: libc::rlim_t) -> libc::rlim_t {
    let mut r = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut r) };
    let old = r.rlim_cur;
    r.rlim_cur = soft;
    assert_eq!(unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &r) }, 0);
    old
}

fn failing_init(_: ()) -> Result<(), String> {
    Err("no".into())
}

#[test]
fn no_descriptor_thread_or_process_is_left_behind() -> Result<(), Error> {
    // Warm up the process-wide one-time state (identity, code image) before the baseline.
    let pool = ProcessPoolExecutor::new(1)?;
    pool.submit(pid, ())?.result(None)?;
    pool.shutdown(Queued::Run);
    let base = Baseline::take();
    base.check("warm-up");

    // Plain work, then a waiting shutdown.
    let pool = ProcessPoolExecutor::new(2)?;
    let n = pool.map(|n: u64| n + 1, 0..50)?.into_iter().count();
    assert_eq!(n, 50);
    pool.shutdown(Queued::Run);
    base.check("plain");

    // A crash breaks the pool (D5), with a big payload half-written to the other worker (D15).
    let pool = ProcessPoolExecutor::new(2)?;
    let r: Vec<_> = pool
        .map_with(
            |_: String| -> u8 { std::process::abort() },
            (0..4).map(|_| "x".repeat(4 << 20)),
            MapOptions::new(),
        )?
        .into_iter()
        .collect();
    assert!(r.iter().all(|r| matches!(r, Err(e) if e.is_broken())));
    pool.shutdown(Queued::Run);
    base.check("broken");

    // Resilient policy: interrupt, time limit, an idle worker killed from outside.
    let pool = ProcessPoolExecutor::builder()
        .max_workers(2)
        .on_worker_death(WorkerDeath::Respawn)
        .build()?;
    let mut gate = Gate::new();
    let mut f = pool.submit(gated_forever, gate.path())?;
    gate.wait_started();
    assert!(f.interrupt());
    assert!(matches!(f.result(None), Err(Error::Interrupted)));
    let never = Gate::new();
    let mut f =
        pool.submit_with_time_limit(Duration::from_millis(20), gated_forever, never.path())?;
    assert!(matches!(f.result(None), Err(Error::TimeLimit(_))));
    let idle = pool.submit(pid, ())?.result(None)?;
    kill(idle, libc::SIGKILL);
    assert!(wait_gone(idle, LIMIT));
    assert!(pool.submit(pid, ())?.result(None).is_ok());
    pool.shutdown(Queued::Run);
    drop((gate, never));
    base.check("resilient");

    // terminate_workers with a task running and one queued.
    let pool = ProcessPoolExecutor::new(2)?;
    let mut gate = Gate::new();
    let mut running = pool.submit(gated_forever, gate.path())?;
    gate.wait_started();
    let queued = pool.submit(pid, ())?;
    pool.terminate_workers();
    assert!(running.result(None).unwrap_err().is_broken());
    assert!(queued.cancelled());
    pool.shutdown(Queued::Run);
    drop(gate);
    base.check("terminate");

    // A failing initializer (item 142).
    let pool = ProcessPoolExecutor::builder()
        .max_workers(2)
        .initializer(failing_init, ())
        .build()?;
    if let Ok(mut f) = pool.submit(pid, ()) {
        assert!(f.result(None).unwrap_err().is_broken());
    }
    pool.shutdown(Queued::Run);
    base.check("initializer");

    // Oversized frames both ways.
    let pool = ProcessPoolExecutor::builder()
        .max_workers(1)
        .max_frame_bytes(1 << 16)
        .build()?;
    assert!(matches!(
        pool.submit(|v: Vec<u8>| v.len(), vec![0; 1 << 17])?
            .result(None),
        Err(Error::Serialization(_))
    ));
    assert!(matches!(
        pool.submit(|n: usize| vec![7u8; n], 1 << 17)?.result(None),
        Err(Error::Serialization(_))
    ));
    pool.shutdown(Queued::Run);
    base.check("oversize");

    // A failed respawn: the recycled worker cannot be replaced (no descriptor left for its channel),
    // so the pool breaks and the queued task fails; nothing leaks.
    let pool = ProcessPoolExecutor::builder()
        .max_workers(1)
        .max_tasks_per_child(1)
        .build()?;
    let mut gate = Gate::new();
    let mut first = pool.submit(gated_pid, gate.path())?;
    gate.wait_started();
    let mut second = pool.submit(pid, ())?; // queued behind the only worker
    let old = set_fd_limit(3); // no new descriptor from here on
    gate.release();
    let first = first.result(None);
    let second = second.result(None);
    set_fd_limit(old);
    assert!(first.is_ok(), "{first:?}");
    match second {
        Err(Error::BrokenProcessPool(b)) => {
            assert!(matches!(b.cause(), BrokenCause::StartFailed(_)), "{b}")
        }
        other => panic!("expected a failed respawn, got {other:?}"),
    }
    pool.shutdown(Queued::Run);
    drop(gate);
    base.check("failed respawn");

    // The pool dropped (not shut down) with work pending and workers being recycled (item 123).
    let pool = ProcessPoolExecutor::builder()
        .max_workers(2)
        .max_tasks_per_child(1)
        .build()?;
    let fs: Vec<_> = (0..6u64)
        .map(|n| pool.submit(|n: u64| n * 2, n))
        .collect::<Result<_, _>>()?;
    drop(pool);
    let sum: u64 = fs.into_iter().map(|mut f| f.result(None).unwrap()).sum();
    assert_eq!(sum, 30);
    base.check("dropped with work pending");

    // A time limit starts the timer thread; every driver leaves while the pool is open (its only
    // worker is recycled); then the pool is dropped. Its timer thread must end too.
    let pool = ProcessPoolExecutor::builder()
        .max_workers(1)
        .max_tasks_per_child(1)
        .build()?;
    let v = pool
        .submit_with_time_limit(Duration::from_secs(60), |n: u8| n, 4)?
        .result(None)?;
    assert_eq!(v, 4);
    assert!(eventually(LIMIT, || format!("{pool:?}").contains("drivers: 0")));
    drop(pool);
    base.check("timer of a pool with no driver left");
    Ok(())
}
