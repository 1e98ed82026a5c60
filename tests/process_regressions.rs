//! Regression tests for bugs found in review of the process pool. Each names the bug it pins down.
//! Hangs are caught by a watchdog (a bounded wait on a channel, never a sleep), so a regression fails
//! the test instead of stalling the suite.

mod common;

use std::sync::mpsc;
use std::sync::{Arc, Barrier};
use std::time::Duration;

use common::process::{assert_all_gone, gated_forever, gated_pid, kill, pid, wait_gone, Gate};
use common::LONG;
use concurrent_futures::{BrokenCause, Error, ProcessPoolExecutor, Queued, WorkerDeath};

/// Runs `body` on its own thread and fails the test if it has not returned within `limit` (a hang).
fn within<T: Send + 'static>(
    limit: Duration,
    what: &str,
    body: impl FnOnce() -> T + Send + 'static,
) -> T {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(body());
    });
    match rx.recv_timeout(limit) {
        Ok(v) => v,
        Err(_) => panic!("hang: {what} did not return within {limit:?}"),
    }
}

const HANG: Duration = Duration::from_secs(30);

/// Bug: `leave()` only notified the `exited` condvar when the *last* driver left, so a `shutdown()`
/// called from a done callback (which waits for every driver but its own) was never woken.
#[test]
fn shutdown_from_a_done_callback_returns_once_the_other_workers_exit() -> Result<(), Error> {
    let pool = ProcessPoolExecutor::new(2)?;
    let mut gate = Gate::new();
    let mut busy = pool.submit(gated_pid, gate.path())?;
    gate.wait_started();
    let (entered_tx, entered) = mpsc::channel();
    let (done_tx, done) = mpsc::channel();
    let p = pool.clone();
    let quick = pool.submit(pid, ())?;
    quick.add_done_callback(move |r| {
        let own = *r.as_ref().unwrap();
        entered_tx.send(()).unwrap();
        p.shutdown(Queued::Run);
        // Every other worker has exited; only this driver's own worker may remain.
        let left = p.worker_pids();
        done_tx.send((own, left)).unwrap();
    });
    entered.recv_timeout(HANG).expect("the callback ran");
    gate.release();
    let other = busy.result(LONG)?;
    let (own, left) = done
        .recv_timeout(HANG)
        .expect("hang: shutdown() in a done callback never returned");
    assert!(left.iter().all(|&p| p == own), "{left:?}");
    assert!(wait_gone(other, HANG));
    pool.shutdown(Queued::Run);
    assert_all_gone(&[own, other]);
    Ok(())
}

/// Bug: two done callbacks on two driver threads that both call `shutdown()` each waited for the
/// other's driver to exit: a deadlock.
#[test]
fn concurrent_shutdowns_from_done_callbacks_do_not_deadlock() -> Result<(), Error> {
    let pool = ProcessPoolExecutor::new(2)?;
    let mut gates = [Gate::new(), Gate::new()];
    let barrier = Arc::new(Barrier::new(2));
    let (tx, rx) = mpsc::channel();
    let mut futures = Vec::new();
    for gate in &mut gates {
        let f = pool.submit(gated_pid, gate.path())?;
        gate.wait_started(); // so the two tasks run on two workers, served by two drivers
        let (p, b, tx) = (pool.clone(), barrier.clone(), tx.clone());
        f.add_done_callback(move |r| {
            let own = *r.as_ref().unwrap();
            b.wait(); // both callbacks are running, each on its own driver thread
            p.shutdown(Queued::Run);
            tx.send(own).unwrap();
        });
        futures.push(f);
    }
    for gate in &mut gates {
        gate.release();
    }
    let mut pids = Vec::new();
    for _ in 0..2 {
        pids.push(
            rx.recv_timeout(HANG)
                .expect("hang: concurrent shutdowns from callbacks deadlocked"),
        );
    }
    within(HANG, "the final shutdown", move || {
        pool.shutdown(Queued::Run)
    });
    assert_all_gone(&pids);
    Ok(())
}

fn init_at_gate(path: String) {
    common::process::task_wait(&path);
}

/// Bug: `terminate_workers()` while a worker was starting (here: inside its initializer) was taken
/// for a start-up failure: the shut-down pool turned Broken (submits then got `BrokenProcessPool`
/// instead of `Shutdown`), and under the resilient policy the driver started a *new* worker after
/// the forced shutdown (which then blocked in its initializer: `shutdown()` hung).
#[test]
fn terminate_while_a_worker_is_starting_neither_breaks_nor_respawns() -> Result<(), Error> {
    for policy in [WorkerDeath::BreakPool, WorkerDeath::Respawn] {
        let mut gate = Gate::new();
        let pool = ProcessPoolExecutor::builder()
            .max_workers(1)
            .on_worker_death(policy)
            .initializer(init_at_gate, gate.path())
            .build()?;
        let queued = pool.submit(pid, ())?;
        gate.wait_started(); // the worker is in its initializer: its driver is still starting
        let starting = pool.worker_pids();
        assert_eq!(starting.len(), 1);
        pool.terminate_workers();
        assert!(queued.cancelled());
        let p = pool.clone();
        within(HANG, "shutdown after terminate_workers", move || {
            p.shutdown(Queued::Run)
        });
        assert!(
            matches!(pool.submit(pid, ()), Err(Error::Shutdown)),
            "{policy:?}: a forced shutdown is not a broken pool"
        );
        assert_eq!(
            pool.workers_started(),
            1,
            "{policy:?}: no worker after the kill"
        );
        gate.release();
        assert_all_gone(&starting);
    }
    Ok(())
}

/// Ignores SIGTERM (as a task with its own signal handling might), then blocks.
fn ignores_sigterm(path: String) -> u32 {
    unsafe {
        libc::signal(libc::SIGTERM, libc::SIG_IGN);
    }
    gated_forever(path)
}

/// Bug: `Proc::kill` refused every signal after the first, so `kill_workers()` after a
/// `terminate_workers()` whose SIGTERM was ignored did nothing, and the task (and `shutdown()`) hung.
#[test]
fn kill_workers_escalates_after_an_ignored_terminate() -> Result<(), Error> {
    let pool = ProcessPoolExecutor::new(1)?;
    let mut gate = Gate::new();
    let running = pool.submit(ignores_sigterm, gate.path())?;
    gate.wait_started(); // SIGTERM is ignored from here on
    let pids = pool.worker_pids();
    pool.terminate_workers();
    pool.kill_workers();
    let r = within(HANG, "a task after kill_workers", move || {
        let mut running = running;
        running.result(LONG)
    });
    match r {
        Err(Error::BrokenProcessPool(b)) => assert_eq!(b.cause(), &BrokenCause::ForcedShutdown),
        other => panic!("expected a forced-shutdown error, got {other:?}"),
    }
    pool.shutdown(Queued::Run);
    assert_all_gone(&pids);
    Ok(())
}

/// Bug: under the resilient policy, a submit right after an idle worker died (before its driver had
/// seen the end-of-file) was written to the dead worker and failed with `WorkerDied`, though the task
/// never ran and "an idle worker's death fails nothing". And the death can stay invisible on the
/// socket: a child spawned at the same moment by another driver inherits the new worker's channel end
/// until its own exec. A second pool keeps spawning workers meanwhile to exercise that.
#[test]
fn resilient_policy_never_hands_a_task_to_an_idle_worker_known_dead() -> Result<(), Error> {
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let churn = {
        let stop = stop.clone();
        std::thread::spawn(move || -> Result<Vec<u32>, Error> {
            let p = ProcessPoolExecutor::builder()
                .max_workers(2)
                .max_tasks_per_child(1)
                .build()?;
            let mut seen = Vec::new();
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                seen.push(p.submit(pid, ())?.result(LONG)?);
            }
            p.shutdown(Queued::Run);
            Ok(seen)
        })
    };
    let pool = ProcessPoolExecutor::builder()
        .max_workers(1)
        .on_worker_death(WorkerDeath::Respawn)
        .build()?;
    let mut seen = Vec::new();
    for i in 0..200 {
        let idle = pool.submit(pid, ())?.result(LONG)?;
        seen.push(idle);
        kill(idle, libc::SIGKILL);
        assert!(wait_gone(idle, HANG)); // it has exited, maybe not yet been reaped
        let next = pool.submit(pid, ())?.result(LONG);
        assert!(matches!(next, Ok(p) if p != idle), "try {i}: {next:?}");
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    seen.extend(churn.join().unwrap()?);
    pool.shutdown(Queued::Run);
    assert_all_gone(&seen);
    Ok(())
}

/// Bug: with `handshake_timeout(Duration::ZERO)` the read timeout could not be set (std refuses a
/// zero timeout; the error was ignored), so a worker that never answered was waited for forever.
#[test]
fn a_zero_handshake_timeout_is_refused() {
    let e = ProcessPoolExecutor::builder()
        .handshake_timeout(Duration::ZERO)
        .build()
        .unwrap_err();
    assert!(matches!(e, Error::InvalidArgument(_)), "{e:?}");
}

/// Bug: the "is the task function in the executable" check spanned every mapping of the executable's
/// file, and std's backtrace symbolizer maps that file a second time next to the libraries. A function
/// from a shared library could then pass, and a worker would jump to its offset: undefined behaviour.
/// The check must refuse it at submit, with a backtrace taken first.
#[test]
fn a_shared_library_function_is_refused_even_after_a_backtrace() -> Result<(), Error> {
    let _ = std::backtrace::Backtrace::force_capture().to_string();
    let pool = ProcessPoolExecutor::new(1)?;
    // SAFETY (test): never called in this process; the pool must refuse to send it anywhere.
    let from_libc: fn(i64) -> i64 =
        unsafe { std::mem::transmute(libc::labs as *const () as usize) };
    match pool.submit(from_libc, -3) {
        Err(Error::ProcessSetup(m)) => assert!(m.contains("not part of the executable"), "{m}"),
        other => panic!("expected ProcessSetup, got {other:?}"),
    }
    assert_eq!(pool.submit(|n: i64| n.abs(), -3)?.result(LONG)?, 3);
    pool.shutdown(Queued::Run);
    Ok(())
}

/// Bugs: a `max_frame_bytes` below the handshake's size (about 80 bytes) broke the pool at its first
/// worker; and a panic message over the cap was reported as an oversized *result* (a serialization
/// error) instead of a panic. The cap now has a floor (4 KiB), and long messages are cut to fit.
#[test]
fn tiny_frame_caps_and_long_panic_messages() -> Result<(), Error> {
    let pool = ProcessPoolExecutor::builder()
        .max_workers(1)
        .max_frame_bytes(40)
        .build()?;
    let worker = pool.submit(pid, ())?.result(LONG)?;
    let r = pool
        .submit(|n: usize| -> u8 { panic!("{}", "p".repeat(n)) }, 10_000)?
        .result(LONG);
    match r {
        Err(Error::Panicked(p)) => {
            let m = p.message();
            assert!(m.len() < 10_000 && m.starts_with("ppp"), "{}", m.len())
        }
        other => panic!("expected a (shortened) panic, got {other:?}"),
    }
    let r = pool.submit(|n: usize| "x".repeat(n), 10_000)?.result(LONG);
    assert!(
        matches!(&r, Err(Error::Serialization(m)) if m.contains("cap")),
        "{r:?}"
    );
    assert_eq!(
        pool.submit(pid, ())?.result(LONG)?,
        worker,
        "the worker lived on"
    );
    pool.shutdown(Queued::Run);
    assert_all_gone(&[worker]);
    Ok(())
}

/// Bug: a dispatched future turned RUNNING before its worker was recorded on it, and `interrupt()`
/// (which reads that record without the pool lock) returned `false` for a running task in between.
/// A caller that waits for `running()` and then interrupts must always succeed.
#[test]
fn interrupt_right_after_running_is_seen_always_succeeds() -> Result<(), Error> {
    let pool = ProcessPoolExecutor::new(1)?;
    let never = Gate::new(); // the task blocks until its worker is killed
    for i in 0..100 {
        let mut f = pool.submit(gated_forever, never.path())?;
        // Nothing between seeing RUNNING and interrupting (not even the pool lock).
        while !f.running() {
            std::hint::spin_loop();
        }
        assert!(f.interrupt(), "try {i}: interrupt() missed a running task");
        // The driver reaps the killed worker before it fails the future.
        assert!(matches!(f.result(LONG), Err(Error::Interrupted)));
    }
    pool.shutdown(Queued::Run);
    assert!(pool.worker_pids().is_empty());
    Ok(())
}

/// Coverage: a worker killed from outside while it runs its initializer. The default policy breaks
/// the pool (the queued future fails, naming the initializer and the signal); the resilient policy
/// starts another worker, whose initializer runs, and the queued task then runs on it.
#[test]
fn a_worker_killed_during_its_initializer() -> Result<(), Error> {
    for policy in [WorkerDeath::BreakPool, WorkerDeath::Respawn] {
        let mut gate = Gate::new();
        let pool = ProcessPoolExecutor::builder()
            .max_workers(1)
            .on_worker_death(policy)
            .initializer(init_at_gate, gate.path())
            .build()?;
        let mut queued = pool.submit(pid, ())?;
        gate.wait_started(); // the first worker is in its initializer
        let first = pool.worker_pids();
        assert_eq!(first.len(), 1);
        kill(first[0], libc::SIGKILL);
        assert!(wait_gone(first[0], HANG));
        match policy {
            WorkerDeath::BreakPool => {
                match queued.result(LONG) {
                    Err(Error::BrokenProcessPool(b)) => match b.cause() {
                        BrokenCause::InitializerFailed(m) => {
                            assert!(m.contains("died while running the initializer"), "{m}")
                        }
                        other => panic!("unexpected cause {other:?}"),
                    },
                    other => panic!("expected BrokenProcessPool, got {other:?}"),
                }
                gate.release();
            }
            _ => {
                gate.wait_started(); // returns once the *new* worker's initializer opened the gate
                gate.release();
                let ran_on = queued.result(LONG)?;
                assert_ne!(ran_on, first[0]);
                assert_eq!(pool.workers_started(), 2);
            }
        }
        let pids = pool.worker_pids();
        pool.shutdown(Queued::Run);
        assert_all_gone(&pids);
    }
    Ok(())
}

/// Forks a child that keeps every descriptor (no exec) and reports its pid, then aborts the worker.
fn fork_then_abort(path: String) -> u8 {
    common::process::fork_keeping_descriptors(&path);
    std::process::abort()
}

/// Bug: a worker's death was noticed only as end-of-file on its channel, so a process that inherited
/// the worker's end (a task that forks without exec) hid the death: the future hung for as long as
/// that process lived. The driver also watches the worker process itself (a pidfd), and the reap's
/// group kill then takes the forked process down too.
#[test]
fn a_worker_death_is_seen_even_if_a_forked_child_holds_its_channel() -> Result<(), Error> {
    let pool = ProcessPoolExecutor::new(1)?;
    let gate = Gate::new();
    let f = pool.submit(fork_then_abort, gate.path())?;
    let grandchild: u32 = gate.receive().trim().parse().unwrap();
    let r = within(HANG, "the future of a worker that died", move || {
        let mut f = f;
        f.result(LONG)
    });
    match r {
        Err(Error::BrokenProcessPool(b)) => {
            assert_eq!(
                b.worker_exit().and_then(|e| e.signal()),
                Some(libc::SIGABRT)
            )
        }
        other => panic!("expected BrokenProcessPool, got {other:?}"),
    }
    pool.shutdown(Queued::Run);
    assert_all_gone(&[grandchild]);
    Ok(())
}
