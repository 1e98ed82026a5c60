//! How the process pool fails without hanging: CPython's crash and deadlock scenarios D1-D16 that apply
//! (D1, D3, D9-D12 are in `process_pool.rs`), group 12, the two death policies, stopping running tasks
//! by killing their worker, and no orphans. Every test ends with each future resolved and every
//! worker (and grandchild) gone.

mod common;

use std::time::Duration;

use common::process::{
    assert_all_gone, gated_forever, gated_pid, is_dead, kill, pid, shutdown_bounded, wait_gone,
    Gate, Unencodable,
};
use common::threads::{current_tid, wait_until_asleep};
use common::LONG;
use concurrent_futures::{
    BrokenCause, Error, MapOptions, ProcessPoolExecutor, Queued, WorkerDeath,
};
use serde::{Deserialize, Serialize};

fn abort_task(_: ()) -> u8 {
    std::process::abort()
}

fn exit_99(_: ()) -> u8 {
    std::process::exit(99)
}

/// Asserts the per-future broken error of a worker death, with the given exit code or signal.
fn assert_broken_by(
    r: Result<impl std::fmt::Debug, Error>,
    code: Option<i32>,
    signal: Option<i32>,
) {
    let e = match r {
        Err(Error::BrokenProcessPool(b)) => b,
        other => panic!("expected BrokenProcessPool, got {other:?}"),
    };
    let exit = e.worker_exit().expect("a worker death");
    assert_eq!(exit.code(), code, "{e}");
    assert_eq!(exit.signal(), signal, "{e}");
    assert!(
        e.to_string().starts_with(
            "a process in the process pool was terminated abruptly while the future was running or pending"
        ),
        "{e}"
    );
}

fn assert_submit_refused_broken(pool: &ProcessPoolExecutor) {
    match pool.submit(pid, ()) {
        Err(e @ Error::BrokenProcessPool(_)) => {
            assert!(e.is_broken() && e.is_rejected());
            assert!(e.to_string().starts_with(
                "a child process terminated abruptly, the process pool is not usable anymore"
            ));
        }
        other => panic!("expected a refused submit, got {other:?}"),
    }
}

#[test]
fn d5_abort_in_task_breaks_the_pool() -> Result<(), Error> {
    let pool = ProcessPoolExecutor::new(2)?;
    let worker = pool.submit(pid, ())?.result(LONG)?;
    let mut f = pool.submit(abort_task, ())?;
    assert_broken_by(f.result(LONG), None, Some(libc::SIGABRT));
    assert_submit_refused_broken(&pool);
    shutdown_bounded(&pool);
    assert_all_gone(&[worker]);
    Ok(())
}

#[test]
fn exit_code_is_reported() -> Result<(), Error> {
    // Item 112: `process::exit(99)` in a task (D6's Rust analogue is a panic; a real exit is a crash).
    let pool = ProcessPoolExecutor::new(1)?;
    let mut f = pool.submit(exit_99, ())?;
    let r = f.result(LONG);
    assert_broken_by(r, Some(99), None);
    assert!(f
        .exception(LONG)?
        .unwrap()
        .to_string()
        .contains("exit code 99"));
    shutdown_bounded(&pool);
    Ok(())
}

/// Exits the worker while the argument is decoded (D2) or aborts it (D4).
#[derive(Debug)]
struct DiesOnDecode(bool);
impl Serialize for DiesOnDecode {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_bool(self.0)
    }
}
impl<'de> Deserialize<'de> for DiesOnDecode {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        if bool::deserialize(d)? {
            std::process::exit(1)
        } else {
            std::process::abort()
        }
    }
}

/// Aborts the worker while the result is encoded (D8).
#[derive(Debug)]
struct DiesOnEncode;
impl Serialize for DiesOnEncode {
    fn serialize<S: serde::Serializer>(&self, _: S) -> Result<S::Ok, S::Error> {
        std::process::abort()
    }
}
impl<'de> Deserialize<'de> for DiesOnEncode {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        <()>::deserialize(d).map(|_| DiesOnEncode)
    }
}

#[test]
fn d2_d4_d8_deaths_while_decoding_or_encoding_break_the_pool() -> Result<(), Error> {
    let pool = ProcessPoolExecutor::new(1)?;
    let r = pool
        .submit(|_: DiesOnDecode| 0u8, DiesOnDecode(true))?
        .result(LONG);
    assert_broken_by(r, Some(1), None);
    shutdown_bounded(&pool);

    let pool = ProcessPoolExecutor::new(1)?;
    let r = pool
        .submit(|_: DiesOnDecode| 0u8, DiesOnDecode(false))?
        .result(LONG);
    assert_broken_by(r, None, Some(libc::SIGABRT));
    shutdown_bounded(&pool);

    let pool = ProcessPoolExecutor::new(1)?;
    let r = pool.submit(|(): ()| DiesOnEncode, ())?.result(LONG);
    assert_broken_by(r, None, Some(libc::SIGABRT));
    shutdown_bounded(&pool);
    Ok(())
}

#[test]
fn killing_an_idle_worker_fails_the_running_and_pending_futures() -> Result<(), Error> {
    // Item 111: the busy worker's task fails because the *idle* one died.
    let pool = ProcessPoolExecutor::new(2)?;
    let mut gate = Gate::new();
    let mut running = pool.submit(gated_forever, gate.path())?;
    gate.wait_started();
    let idle = pool.submit(pid, ())?.result(LONG)?;
    let pids = pool.worker_pids();
    assert_eq!(pids.len(), 2);
    kill(idle, libc::SIGKILL);
    let r = running.result(LONG);
    assert_broken_by(r, None, Some(libc::SIGKILL));
    // Depending on whether the death was seen before this submit, it is refused or fails.
    match pool.submit(pid, ()) {
        Err(e) => assert!(e.is_broken()),
        Ok(mut f) => assert!(f.result(LONG).unwrap_err().is_broken()),
    }
    shutdown_bounded(&pool);
    assert_all_gone(&pids);
    Ok(())
}

fn gated_abort(path: String) -> u8 {
    common::process::task_wait(&path);
    std::process::abort()
}

// D13: a worker dies while a waiting `shutdown` is in progress; the shutdown still returns and the
// running task's future fails. The pool is closed (`shutdown_nowait`) before the crash, and the crash
// is released only once the waiting `shutdown` is blocked, so the death always lands during it.
#[test]
fn d13_crash_during_shutdown_lets_shutdown_return() -> Result<(), Error> {
    let pool = ProcessPoolExecutor::new(2)?;
    let mut gate = Gate::new();
    let mut f = pool.submit(gated_abort, gate.path())?;
    gate.wait_started();
    let pids = pool.worker_pids();
    pool.shutdown_nowait(Queued::Run);
    assert!(matches!(pool.submit(pid, ()), Err(Error::Shutdown)));
    let (tid_tx, tid) = std::sync::mpsc::channel();
    let (returned_tx, returned) = std::sync::mpsc::channel();
    let p2 = pool.clone();
    std::thread::spawn(move || {
        tid_tx.send(current_tid()).unwrap();
        p2.shutdown(Queued::Run);
        returned_tx.send(()).unwrap();
    });
    let waiter = tid.recv_timeout(LONG).unwrap();
    assert!(wait_until_asleep(waiter), "shutdown did not block");
    assert!(
        returned.try_recv().is_err(),
        "shutdown returned with a task running"
    );
    gate.release(); // the task aborts now, while shutdown waits
    returned
        .recv_timeout(LONG)
        .expect("shutdown returns after the crash");
    assert_broken_by(f.result(LONG), None, Some(libc::SIGABRT));
    assert_all_gone(&pids);
    Ok(())
}

#[test]
fn d14_encode_error_then_shutdown_nowait() -> Result<(), Error> {
    let pool = ProcessPoolExecutor::new(2)?;
    let warm = pool.submit(pid, ())?.result(LONG)?;
    let mut f = pool.submit(|_: Unencodable| 0u8, Unencodable)?;
    pool.shutdown_nowait(Queued::Run);
    assert!(matches!(f.result(LONG), Err(Error::Serialization(_))));
    shutdown_bounded(&pool);
    assert_all_gone(&[warm]);
    Ok(())
}

#[test]
fn d15_crash_with_big_payloads_in_flight() -> Result<(), Error> {
    let pool = ProcessPoolExecutor::new(2)?;
    let big: Vec<String> = (0..10).map(|i| "x".repeat((1 << 20) + i)).collect();
    let results: Vec<_> = pool
        .map_with(
            |_: String| -> u8 { std::process::abort() },
            big,
            MapOptions::new(),
        )?
        .into_iter()
        .collect();
    // Each submitted chunk fails; a submit refused once the pool broke is reported once, then the map
    // ends (as Python's map raises BrokenProcessPool): no hang, no success.
    assert!((1..=10).contains(&results.len()));
    assert!(
        results.iter().all(|r| matches!(r, Err(e) if e.is_broken())),
        "{results:?}"
    );
    let pids = pool.worker_pids();
    shutdown_bounded(&pool);
    assert_all_gone(&pids);
    Ok(())
}

// D16: submitting never waits for the pool's own threads to drain anything. CPython's case is a
// wake-up pipe that fills while its manager thread is not reading; here every worker is held busy, so
// nothing is taken off the queue while a burst of submits (and a map of 100) goes in. All of it must
// be accepted at once, then complete once the workers are let go.
#[test]
fn d16_many_submits_at_once() -> Result<(), Error> {
    let pool = ProcessPoolExecutor::new(2)?;
    let mut gates = [Gate::new(), Gate::new()];
    let mut held: Vec<_> = gates
        .iter()
        .map(|g| pool.submit(gated_pid, g.path()))
        .collect::<Result<_, _>>()?;
    for g in &mut gates {
        g.wait_started();
    }
    let (submitted_tx, submitted) = std::sync::mpsc::channel();
    let p2 = pool.clone();
    std::thread::spawn(move || {
        let burst: Result<Vec<_>, Error> =
            (0..1000u32).map(|n| p2.submit(|n: u32| n * 2, n)).collect();
        let map = p2.map(|n: u32| n.to_string(), 0..100);
        let _ = submitted_tx.send((burst, map));
    });
    let (burst, map) = submitted
        .recv_timeout(LONG)
        .expect("submitting blocked while the workers were busy");
    let (burst, map) = (burst?, map?);
    assert_eq!(held.iter().filter(|f| f.done()).count(), 0, "still held");
    for g in &mut gates {
        g.release();
    }
    for f in &mut held {
        f.result(LONG)?;
    }
    let sum: u64 = burst
        .into_iter()
        .map(|mut f| f.result(LONG).map(u64::from))
        .sum::<Result<_, _>>()?;
    assert_eq!(sum, (0..1000u64).map(|n| n * 2).sum::<u64>());
    let got: Vec<String> = map.into_iter().collect::<Result<_, _>>()?;
    assert_eq!(got, (0..100).map(|n| n.to_string()).collect::<Vec<_>>());
    let pids = pool.worker_pids();
    shutdown_bounded(&pool);
    assert_all_gone(&pids);
    Ok(())
}

#[test]
fn respawn_policy_fails_only_the_dead_workers_task() -> Result<(), Error> {
    let pool = ProcessPoolExecutor::builder()
        .max_workers(2)
        .on_worker_death(WorkerDeath::Respawn)
        .build()?;
    let mut gate = Gate::new();
    let mut running = pool.submit(gated_pid, gate.path())?;
    gate.wait_started();
    // An idle worker's death fails nothing.
    let idle = pool.submit(pid, ())?.result(LONG)?;
    kill(idle, libc::SIGKILL);
    assert!(wait_gone(idle, Duration::from_secs(10)));
    // A task's death fails only that task, with its worker's status.
    match pool.submit(abort_task, ())?.result(LONG) {
        Err(Error::WorkerDied(exit)) => assert_eq!(exit.signal(), Some(libc::SIGABRT)),
        other => panic!("expected WorkerDied, got {other:?}"),
    }
    let after: Vec<u32> = (0..4)
        .map(|_| pool.submit(pid, ())?.result(LONG))
        .collect::<Result<_, _>>()?;
    assert!(!after.contains(&idle));
    gate.release();
    let busy = running.result(LONG)?;
    let pids = pool.worker_pids();
    shutdown_bounded(&pool);
    assert_all_gone(&pids);
    assert_all_gone(&[idle, busy]);
    Ok(())
}

#[test]
fn interrupt_kills_the_running_task_and_the_pool_carries_on() -> Result<(), Error> {
    // Default policy: a deliberate kill does not break the pool.
    let pool = ProcessPoolExecutor::new(1)?;
    let mut gate = Gate::new();
    let mut f = pool.submit(gated_forever, gate.path())?;
    gate.wait_started();
    let victim = pool.worker_pids()[0];
    let queued = pool.submit(pid, ())?;
    assert!(f.interrupt());
    assert!(matches!(f.result(LONG), Err(Error::Interrupted)));
    let next = { queued }.result(LONG)?;
    assert_ne!(next, victim, "a new worker took over");
    assert!(wait_gone(victim, Duration::from_secs(10)));
    assert!(!f.interrupt(), "already ended");
    shutdown_bounded(&pool);
    assert_all_gone(&[victim, next]);
    Ok(())
}

#[test]
fn time_limit_kills_the_task_with_a_distinct_error() -> Result<(), Error> {
    let pool = ProcessPoolExecutor::new(1)?;
    let gate = Gate::new(); // never opened by the test: the task blocks until killed
    let mut f =
        pool.submit_with_time_limit(Duration::from_millis(50), gated_forever, gate.path())?;
    match f.result(LONG) {
        Err(e @ Error::TimeLimit(_)) => assert!(e.to_string().contains("time limit")),
        other => panic!("expected TimeLimit, got {other:?}"),
    }
    // A limit that is not reached changes nothing.
    let ok = pool.submit_with_time_limit(Duration::from_secs(60), |n: u8| n * 2, 21)?;
    assert_eq!({ ok }.result(LONG)?, 42);
    let pids = pool.worker_pids();
    shutdown_bounded(&pool);
    assert_all_gone(&pids);
    Ok(())
}

/// Starts a grandchild (`sleep`), reports its pid through the gate, then blocks forever.
#[allow(clippy::zombie_processes)] // the point: the worker's group kill must take it down
fn spawn_grandchild(path: String) -> u8 {
    let child = std::process::Command::new("sleep")
        .arg("1000")
        .spawn()
        .unwrap();
    common::process::task_send(&path, &child.id().to_string());
    loop {
        std::thread::park();
    }
}

#[test]
fn no_orphans_a_killed_workers_children_die_with_it() -> Result<(), Error> {
    let pool = ProcessPoolExecutor::new(1)?;
    let gate = Gate::new();
    let mut f = pool.submit(spawn_grandchild, gate.path())?;
    let grandchild: u32 = gate.receive().trim().parse().unwrap();
    let worker = pool.worker_pids()[0];
    assert!(!is_dead(grandchild));
    assert!(f.interrupt());
    assert!(matches!(f.result(LONG), Err(Error::Interrupted)));
    assert!(
        wait_gone(grandchild, Duration::from_secs(10)),
        "the grandchild survived"
    );
    shutdown_bounded(&pool);
    assert_all_gone(&[worker, grandchild]);
    Ok(())
}

#[test]
fn no_orphans_after_shutdown_either() -> Result<(), Error> {
    // A task that leaves a child behind and returns: shutdown's reap kills the worker's group.
    fn leave_child(_: ()) -> u32 {
        let child = std::process::Command::new("sleep")
            .arg("1000")
            .spawn()
            .unwrap();
        let id = child.id();
        std::mem::forget(child);
        id
    }
    let pool = ProcessPoolExecutor::new(1)?;
    let grandchild = pool.submit(leave_child, ())?.result(LONG)?;
    let worker = pool.worker_pids()[0];
    shutdown_bounded(&pool);
    assert_all_gone(&[worker, grandchild]);
    Ok(())
}

// CPython #126/#127: before any worker has started, terminate and kill signal nothing and start
// nothing; the pool is then shut down like after a forced shutdown.
#[test]
fn terminate_or_kill_before_any_worker_started() {
    for terminate in [true, false] {
        let pool = ProcessPoolExecutor::new(2).unwrap();
        if terminate {
            pool.terminate_workers();
        } else {
            pool.kill_workers();
        }
        assert!(pool.worker_pids().is_empty());
        assert_eq!(
            pool.workers_started(),
            0,
            "no worker was started to be signalled"
        );
        assert!(matches!(pool.submit(pid, ()), Err(Error::Shutdown)));
        shutdown_bounded(&pool);
        assert_eq!(pool.workers_started(), 0);
    }
}

// CPython #126/#127: terminate or kill with a task running and one queued: the running one fails with
// the forced-shutdown error, the queued one is cancelled, submit is refused, and a second call is
// harmless.
#[test]
fn terminate_and_kill_workers() -> Result<(), Error> {
    for terminate in [true, false] {
        // One worker, so `queued` stays queued: with two, the second worker could start and take it
        // before `terminate_workers()` (a race under load). Terminating a worker that is still
        // starting is covered in process_regressions.rs.
        let pool = ProcessPoolExecutor::new(1)?;
        let mut gate = Gate::new();
        let mut running = pool.submit(gated_forever, gate.path())?;
        gate.wait_started();
        let queued = pool.submit(pid, ())?;
        let pids = pool.worker_pids();
        if terminate {
            pool.terminate_workers();
        } else {
            pool.kill_workers();
        }
        match running.result(LONG) {
            Err(Error::BrokenProcessPool(b)) => {
                assert_eq!(b.cause(), &BrokenCause::ForcedShutdown);
                assert!(b.to_string().contains("forcefully shut down"));
            }
            other => panic!("expected a forced-shutdown error, got {other:?}"),
        }
        assert!(queued.cancelled());
        assert!(matches!(pool.submit(pid, ()), Err(Error::Shutdown)));
        pool.terminate_workers(); // again: harmless
        pool.kill_workers();
        shutdown_bounded(&pool);
        assert_all_gone(&pids);
    }
    Ok(())
}

// CPython #127: on a pool already broken by a worker's death, terminate and kill neither panic nor
// change the futures' outcome: they keep the death that broke the pool.
#[test]
fn terminate_and_kill_on_a_broken_pool_change_nothing() -> Result<(), Error> {
    for terminate in [true, false] {
        let pool = ProcessPoolExecutor::new(1)?;
        let worker = pool.submit(pid, ())?.result(LONG)?;
        let mut f = pool.submit(abort_task, ())?;
        assert_broken_by(f.result(LONG), None, Some(libc::SIGABRT));
        if terminate {
            pool.terminate_workers();
        } else {
            pool.kill_workers();
        }
        assert_broken_by(f.result(LONG), None, Some(libc::SIGABRT));
        assert_submit_refused_broken(&pool);
        shutdown_bounded(&pool);
        assert_all_gone(&[worker]);
    }
    Ok(())
}

/// Helper run in a separate copy of this test binary: builds a pool, reports its worker's pid, blocks.
#[test]
#[ignore = "helper for no_orphans_when_the_parent_dies"]
fn helper_parent_holding_a_pool() {
    let Ok(path) = std::env::var("CF_TEST_PARENT_GATE") else {
        return;
    };
    let pool = ProcessPoolExecutor::new(1).unwrap();
    let worker = pool.submit(pid, ()).unwrap().result(LONG).unwrap();
    common::process::task_send(&path, &worker.to_string());
    loop {
        std::thread::park();
    }
}

#[test]
fn no_orphans_when_the_parent_dies() {
    let gate = Gate::new();
    let mut parent = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "helper_parent_holding_a_pool",
            "--ignored",
            "--nocapture",
            "-q",
        ])
        .env("CF_TEST_PARENT_GATE", gate.path())
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let worker: u32 = gate.receive().trim().parse().unwrap();
    assert!(!is_dead(worker));
    parent.kill().unwrap();
    parent.wait().unwrap();
    assert!(
        wait_gone(worker, Duration::from_secs(10)),
        "the worker outlived its parent"
    );
}
