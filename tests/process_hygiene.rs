//! No leaks on any error path: after each scenario (and its `shutdown`, or a drop of the pool), the
//! process has the same open descriptors and threads as before, and no child process, not even a
//! zombie. Each scenario is its own test, and runs in a fresh copy of this test binary where it is the
//! only test (see [`run_alone`]), so nothing else runs meanwhile and the counts are exact.

mod common;

use std::process::{Command, Stdio};
use std::time::Duration;

use common::census::{children, fds, thread_names};
use common::holds_within;
use common::process::{gated_forever, gated_pid, kill, pid, wait_gone, Gate};
use concurrent_futures::{
    BrokenCause, Error, MapOptions, ProcessPoolExecutor, Queued, WorkerDeath,
};

const LIMIT: Duration = Duration::from_secs(20);

struct Baseline {
    fds: usize,
    threads: Vec<String>,
}

impl Baseline {
    /// The process's resources once the warm-up pool's threads are gone: a thread that `shutdown`
    /// joined can still be listed in `/proc/self/task` for a moment while the kernel finishes its
    /// exit, and must not be counted as part of the baseline.
    fn take() -> Baseline {
        assert!(
            holds_within(LIMIT, || !thread_names()
                .iter()
                .any(|t| t.starts_with("process-pool"))),
            "the warm-up pool's threads outlived its shutdown: {:?}",
            thread_names()
        );
        Baseline {
            fds: fds(),
            threads: thread_names(),
        }
    }

    fn check(&self, scenario: &str) {
        assert!(
            holds_within(LIMIT, || children().is_empty()),
            "{scenario}: child processes left: {:?}",
            children()
        );
        assert!(
            holds_within(LIMIT, || thread_names() == self.threads),
            "{scenario}: threads {:?}, before {:?}",
            thread_names(),
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

/// Names the scenario the copy of this binary started by [`run_alone`] runs.
const SCENARIO: &str = "CF_HYGIENE_SCENARIO";

/// Runs scenario `name` in a fresh copy of this test binary, as its only test ([`alone`]), and fails
/// with the copy's output if the scenario fails or does not end in time.
fn run_alone(name: &str) {
    let child = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "alone",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(SCENARIO, name)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let id = child.id();
    let (out_tx, out) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = out_tx.send(child.wait_with_output());
    });
    let Ok(output) = out.recv_timeout(LIMIT * 4) else {
        kill(id, libc::SIGKILL);
        panic!("scenario {name} did not end");
    };
    let output = output.unwrap();
    assert!(
        output.status.success(),
        "scenario {name} failed ({}):\n{}\n{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        stdout.contains(&format!("scenario {name} passed")),
        "the scenario did not run:\n{stdout}"
    );
}

/// Runs the scenario [`run_alone`] names, between a baseline and a check of this process's resources.
#[test]
#[ignore = "run by the other tests of this file, each in its own process"]
fn alone() -> Result<(), Error> {
    let Ok(name) = std::env::var(SCENARIO) else {
        return Ok(());
    };
    // Warm up the process-wide one-time state (identity, code image) before the baseline.
    let pool = ProcessPoolExecutor::new(1)?;
    pool.submit(pid, ())?.result(LIMIT)?;
    pool.shutdown(Queued::Run);
    let base = Baseline::take();
    base.check("warm-up");
    match name.as_str() {
        "plain" => plain()?,
        "broken" => broken()?,
        "resilient" => resilient()?,
        "terminate" => terminate()?,
        "initializer" => initializer()?,
        "oversize" => oversize()?,
        "failed respawn" => failed_respawn()?,
        "dropped with work pending" => dropped_with_work_pending()?,
        "timer without drivers" => timer_without_drivers()?,
        other => panic!("no scenario {other}"),
    }
    base.check(&name);
    println!("scenario {name} passed");
    Ok(())
}

#[test]
fn plain_work_then_shutdown() {
    run_alone("plain");
}

/// Plain work, then a waiting shutdown.
fn plain() -> Result<(), Error> {
    let pool = ProcessPoolExecutor::new(2)?;
    let n = pool.map(|n: u64| n + 1, 0..50)?.into_iter().count();
    assert_eq!(n, 50);
    pool.shutdown(Queued::Run);
    Ok(())
}

#[test]
fn a_crash_with_a_big_payload_half_written() {
    run_alone("broken");
}

/// A crash breaks the pool (D5), with a big payload half-written to the other worker (D15).
fn broken() -> Result<(), Error> {
    let pool = ProcessPoolExecutor::new(2)?;
    let r: Vec<_> = pool
        .map_with(
            |_: String| -> u8 { std::process::abort() },
            (0..4).map(|_| "x".repeat(4 << 20)),
            MapOptions::new().timeout(LIMIT),
        )?
        .into_iter()
        .collect();
    assert!(
        r.iter().all(|r| matches!(r, Err(e) if e.is_broken())),
        "{r:?}"
    );
    pool.shutdown(Queued::Run);
    Ok(())
}

#[test]
fn resilient_policy_interrupt_time_limit_and_an_idle_worker_killed() {
    run_alone("resilient");
}

/// Resilient policy: interrupt, time limit, an idle worker killed from outside.
fn resilient() -> Result<(), Error> {
    let pool = ProcessPoolExecutor::builder()
        .max_workers(2)
        .on_worker_death(WorkerDeath::Respawn)
        .build()?;
    let mut gate = Gate::new();
    let mut f = pool.submit(gated_forever, gate.path())?;
    gate.wait_started();
    assert!(f.interrupt());
    assert!(matches!(f.result(LIMIT), Err(Error::Interrupted)));
    let never = Gate::new();
    let mut f =
        pool.submit_with_time_limit(Duration::from_millis(20), gated_forever, never.path())?;
    assert!(matches!(f.result(LIMIT), Err(Error::TimeLimit(_))));
    let idle = pool.submit(pid, ())?.result(LIMIT)?;
    kill(idle, libc::SIGKILL);
    assert!(wait_gone(idle, LIMIT));
    assert!(pool.submit(pid, ())?.result(LIMIT).is_ok());
    pool.shutdown(Queued::Run);
    drop((gate, never));
    Ok(())
}

#[test]
fn terminate_workers_with_a_task_running_and_one_queued() {
    run_alone("terminate");
}

fn terminate() -> Result<(), Error> {
    let pool = ProcessPoolExecutor::new(2)?;
    let mut gate = Gate::new();
    let mut running = pool.submit(gated_forever, gate.path())?;
    gate.wait_started();
    let queued = pool.submit(pid, ())?;
    pool.terminate_workers();
    assert!(running.result(LIMIT).unwrap_err().is_broken());
    assert!(queued.cancelled());
    pool.shutdown(Queued::Run);
    drop(gate);
    Ok(())
}

#[test]
fn a_failing_initializer() {
    run_alone("initializer");
}

/// A failing initializer (item 142).
fn initializer() -> Result<(), Error> {
    let pool = ProcessPoolExecutor::builder()
        .max_workers(2)
        .initializer(failing_init, ())
        .build()?;
    if let Ok(mut f) = pool.submit(pid, ()) {
        assert!(f.result(LIMIT).unwrap_err().is_broken());
    }
    pool.shutdown(Queued::Run);
    Ok(())
}

#[test]
fn oversized_frames_both_ways() {
    run_alone("oversize");
}

fn oversize() -> Result<(), Error> {
    let pool = ProcessPoolExecutor::builder()
        .max_workers(1)
        .max_frame_bytes(1 << 16)
        .build()?;
    assert!(matches!(
        pool.submit(|v: Vec<u8>| v.len(), vec![0; 1 << 17])?
            .result(LIMIT),
        Err(Error::Serialization(_))
    ));
    assert!(matches!(
        pool.submit(|n: usize| vec![7u8; n], 1 << 17)?.result(LIMIT),
        Err(Error::Serialization(_))
    ));
    pool.shutdown(Queued::Run);
    Ok(())
}

#[test]
fn a_failed_respawn() {
    run_alone("failed respawn");
}

/// A failed respawn: the recycled worker cannot be replaced (no descriptor left for its channel), so
/// the pool breaks and the queued task fails; nothing leaks.
fn failed_respawn() -> Result<(), Error> {
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
    let first = first.result(LIMIT);
    let second = second.result(LIMIT);
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
    Ok(())
}

#[test]
fn the_pool_dropped_with_work_pending_and_workers_recycled() {
    run_alone("dropped with work pending");
}

/// The pool dropped (not shut down) with work pending and workers being recycled (item 123).
fn dropped_with_work_pending() -> Result<(), Error> {
    let pool = ProcessPoolExecutor::builder()
        .max_workers(2)
        .max_tasks_per_child(1)
        .build()?;
    let fs: Vec<_> = (0..6u64)
        .map(|n| pool.submit(|n: u64| n * 2, n))
        .collect::<Result<_, _>>()?;
    drop(pool);
    let sum: u64 = fs.into_iter().map(|mut f| f.result(LIMIT).unwrap()).sum();
    assert_eq!(sum, 30);
    Ok(())
}

#[test]
fn the_timer_of_a_pool_with_no_driver_left() {
    run_alone("timer without drivers");
}

/// A time limit starts the timer thread; every driver leaves while the pool is open (its only worker
/// is recycled); then the pool is dropped. Its timer thread must end too.
fn timer_without_drivers() -> Result<(), Error> {
    let pool = ProcessPoolExecutor::builder()
        .max_workers(1)
        .max_tasks_per_child(1)
        .build()?;
    let v = pool
        .submit_with_time_limit(Duration::from_secs(60), |n: u8| n, 4)?
        .result(LIMIT)?;
    assert_eq!(v, 4);
    assert!(holds_within(LIMIT, || format!("{pool:?}").contains("drivers: 0")));
    drop(pool);
    Ok(())
}
