//! The process pool used the way a busy program outside a quiet test run uses it: cancels racing
//! dispatch and recycling, shutdowns racing submits from other threads, the last handle of a pool
//! dropped in a done callback (on the pool's own driver thread), a worker stopped by SIGSTOP (as a
//! debugger, job control or a cgroup freezer stops it) meeting a time limit, an interrupt or a
//! forced shutdown, a task that starts a pool of its own, a task that closes its worker's channel,
//! a program whose file is replaced on disk while it runs (a deploy), and a fork (no exec) of the
//! program that goes on using or dropping the pool it inherited.
//!
//! Every wait is bounded by [`LONG`]: a hang fails the test instead of stalling the suite.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Barrier};
use std::time::Duration;

use common::process::{gated_pid, is_dead, kill, wait_gone, Gate};
use common::{within, LONG};
use concurrent_futures::{Error, PoolFuture, ProcessPoolExecutor, Queued};

/// A fresh, empty scratch directory for this test.
fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("cf-adv-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// A task that leaves a file behind: proof that it ran.
fn mark(path: String) -> u32 {
    std::fs::write(&path, b"ran").unwrap();
    std::process::id()
}

/// Submits `n` marking tasks while another thread cancels them (so cancels meet tasks still
/// queued, being dispatched, running and done), then checks CPython's contract for each:
/// `cancel()` said `true` exactly when the task never ran and its future ended `Cancelled`.
fn cancels_race_dispatch(pool: ProcessPoolExecutor, n: usize, dir: &Path) {
    // Workers started and idle first (submits that find none idle start one each), so the first
    // tasks are dispatched at their submit and the rest meet the cancels while queued.
    let warm: Vec<_> = (0..4).map(|_| pool.submit(double, 0).unwrap()).collect();
    for mut f in warm {
        f.result(LONG).unwrap();
    }
    let (tx, rx) = mpsc::channel::<(usize, PoolFuture<u32>)>();
    let canceller = std::thread::spawn(move || {
        // Every other task is cancelled as soon as it is submitted, the rest oldest first after
        // the last submit: where the workers take tasks from the queue. `won` is whether any
        // `cancel()` of the task said `true`.
        let mut seen = Vec::new();
        for (i, f) in rx {
            let won = i % 2 == 0 && f.cancel();
            seen.push((i, won, f));
        }
        // Once a task a quarter of the way in (odd: not cancelled above, so it runs) has ended,
        // the workers are taking tasks from where the cancels below begin.
        if let Some((_, _, f)) = seen.get((seen.len() / 4) | 1) {
            let end = std::time::Instant::now() + LONG;
            while !f.done() && std::time::Instant::now() < end {
                std::thread::yield_now();
            }
        }
        for (_, won, f) in seen.iter_mut() {
            *won |= f.cancel();
        }
        seen
    });
    for i in 0..n {
        let path = dir.join(i.to_string()).to_str().unwrap().to_owned();
        tx.send((i, pool.submit(mark, path).unwrap())).unwrap();
    }
    drop(tx);
    let outcomes = canceller.join().unwrap();
    within("a shutdown after racing cancels", move || {
        pool.shutdown(Queued::Run)
    });
    let (mut cancelled, mut ran_count) = (0, 0);
    for (i, won, mut f) in outcomes {
        let ran = dir.join(i.to_string()).exists();
        match f.result(LONG) {
            Err(Error::Cancelled) => {
                assert!(won, "task {i} ended cancelled, but no cancel() said so");
                assert!(!ran, "task {i} ran although its future was cancelled");
                assert!(f.cancelled());
                cancelled += 1;
            }
            Ok(_) => {
                assert!(ran, "task {i} has a value but never ran");
                assert!(!won, "cancel() said true for task {i}, which ran");
                ran_count += 1;
            }
            Err(e) => panic!("task {i}: {e:?}"),
        }
    }
    // How many ran depends on the timing (a worker may not be listed idle again yet when the
    // first submits come), so it is reported, not asserted.
    eprintln!("{cancelled} of {n} cancelled, {ran_count} ran");
}

#[test]
fn cancels_racing_dispatch_never_cancel_a_task_that_runs() {
    let dir = scratch("cancel-race");
    cancels_race_dispatch(ProcessPoolExecutor::new(2).unwrap(), 200, &dir);
}

#[test]
fn cancels_racing_recycling_never_cancel_a_task_that_runs() {
    let dir = scratch("cancel-recycle");
    let pool = ProcessPoolExecutor::builder()
        .max_workers(2)
        .max_tasks_per_child(1)
        .build()
        .unwrap();
    cancels_race_dispatch(pool, 40, &dir);
}

fn double(n: u64) -> u64 {
    n * 2
}

/// Threads submit while another shuts the pool down: every submit is either refused with
/// `Shutdown` or returns a future that ends (with its value, or `Cancelled` if the shutdown cancels
/// the queue), and the shutdown returns.
fn shutdown_races_submits(queued: Queued) {
    const THREADS: usize = 3;
    const EACH: u64 = 40;
    let pool = ProcessPoolExecutor::new(2).unwrap();
    let start = Arc::new(Barrier::new(THREADS + 1));
    let submitters: Vec<_> = (0..THREADS)
        .map(|_| {
            let (pool, start) = (pool.clone(), start.clone());
            std::thread::spawn(move || {
                start.wait();
                (0..EACH)
                    .map(|n| (n, pool.submit(double, n)))
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    start.wait();
    let p = pool.clone();
    within("a shutdown racing submits", move || p.shutdown(queued));
    let (mut accepted, mut refused) = (0, 0);
    for s in submitters {
        for (n, submitted) in s.join().unwrap() {
            match submitted {
                Err(Error::Shutdown) => refused += 1,
                Err(e) => panic!("submit failed with {e:?}"),
                Ok(mut f) => {
                    accepted += 1;
                    match (f.result(LONG), queued) {
                        (Ok(v), _) => assert_eq!(v, n * 2),
                        (Err(Error::Cancelled), Queued::Cancel) => {}
                        (Err(e), _) => panic!("task {n} after a racing shutdown: {e:?}"),
                    }
                }
            }
        }
    }
    assert_eq!(accepted + refused, THREADS as u64 * EACH);
    assert!(pool.worker_pids().is_empty());
}

#[test]
fn a_shutdown_racing_submits_resolves_every_accepted_future() {
    shutdown_races_submits(Queued::Run);
}

#[test]
fn a_cancelling_shutdown_racing_submits_resolves_every_accepted_future() {
    shutdown_races_submits(Queued::Cancel);
}

/// The last handle of the pool dropped inside a done callback, which the pool's own driver thread
/// runs: the drop must not wait for that driver (itself), queued work still runs, and the workers
/// exit.
#[test]
fn the_last_handle_dropped_in_a_done_callback_on_the_driver() {
    let pool = ProcessPoolExecutor::new(1).unwrap();
    let mut gate = Gate::new();
    let first = pool.submit(gated_pid, gate.path()).unwrap();
    gate.wait_started();
    let worker = pool.worker_pids();
    let mut queued = pool.submit(double, 21).unwrap();
    let (dropped_tx, dropped) = mpsc::channel();
    let last = pool.clone();
    first.add_done_callback(move |r| {
        let on = std::thread::current().name().map(str::to_owned);
        drop(last);
        dropped_tx.send((r.is_ok(), on)).unwrap();
    });
    drop(first);
    drop(pool);
    gate.release();
    let (ok, on) = dropped
        .recv_timeout(LONG)
        .expect("hang: dropping the last handle in a done callback");
    assert!(ok, "the gated task failed");
    eprintln!("the callback ran on thread {on:?}");
    assert_eq!(queued.result(LONG).unwrap(), 42);
    for p in worker {
        assert!(wait_gone(p, LONG), "worker {p} outlived its pool");
    }
}

/// A task that stops its own worker with SIGSTOP once the test holds its gate.
fn stop_self(path: String) -> u32 {
    common::process::task_wait(&path);
    // SAFETY: raise takes a signal number only.
    unsafe { libc::raise(libc::SIGSTOP) };
    std::process::id()
}

/// Whether process `pid` is stopped (`T` in `/proc/<pid>/stat`), waited for up to [`LONG`].
fn stopped(pid: u32) -> bool {
    let end = std::time::Instant::now() + LONG;
    loop {
        let state = std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .ok()
            .and_then(|s| s.rsplit_once(')')?.1.trim_start().chars().next());
        if state == Some('T') {
            return true;
        }
        if std::time::Instant::now() > end {
            return false;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// A worker stopped in the middle of its task, with the pool's next task working on a new worker.
fn a_stopped_worker(pool: &ProcessPoolExecutor) -> (PoolFuture<u32>, u32) {
    let mut gate = Gate::new();
    let f = pool.submit(stop_self, gate.path()).unwrap();
    gate.wait_started();
    let worker = pool.worker_pids()[0];
    gate.release();
    assert!(stopped(worker), "the worker never stopped");
    (f, worker)
}

#[test]
fn an_interrupt_ends_the_task_of_a_stopped_worker() {
    let pool = ProcessPoolExecutor::new(1).unwrap();
    let (mut f, worker) = a_stopped_worker(&pool);
    assert!(f.interrupt());
    assert!(matches!(f.result(LONG), Err(Error::Interrupted)));
    assert!(wait_gone(worker, LONG));
    assert_eq!(pool.submit(double, 4).unwrap().result(LONG).unwrap(), 8);
    within("a shutdown", move || pool.shutdown(Queued::Run));
}

#[test]
fn a_time_limit_ends_the_task_of_a_stopped_worker() {
    let pool = ProcessPoolExecutor::new(1).unwrap();
    let mut gate = Gate::new();
    let mut f = pool
        .submit_with_time_limit(Duration::from_millis(300), stop_self, gate.path())
        .unwrap();
    gate.wait_started();
    let worker = pool.worker_pids()[0];
    gate.release();
    // Stopped or already killed by the limit: either way the limit must end the task.
    assert!(matches!(f.result(LONG), Err(Error::TimeLimit(_))));
    assert!(wait_gone(worker, LONG));
    assert_eq!(pool.submit(double, 4).unwrap().result(LONG).unwrap(), 8);
    within("a shutdown", move || pool.shutdown(Queued::Run));
}

/// `terminate_workers` on a stopped worker: SIGTERM stays pending on a stopped process until it is
/// continued, so without a SIGCONT the worker never exits and the `shutdown` that follows (as the
/// docs advise, to reap the workers) never returns.
#[test]
fn terminate_workers_ends_a_stopped_worker() {
    let pool = ProcessPoolExecutor::new(2).unwrap();
    let (mut f, worker) = a_stopped_worker(&pool);
    pool.terminate_workers();
    assert!(matches!(f.result(LONG), Err(Error::BrokenProcessPool(_))));
    within(
        "a shutdown after terminate_workers on a stopped worker",
        move || pool.shutdown(Queued::Run),
    );
    assert!(wait_gone(worker, LONG) && is_dead(worker));
}

#[test]
fn kill_workers_ends_a_stopped_worker() {
    let pool = ProcessPoolExecutor::new(2).unwrap();
    let (mut f, worker) = a_stopped_worker(&pool);
    pool.kill_workers();
    assert!(matches!(f.result(LONG), Err(Error::BrokenProcessPool(_))));
    within(
        "a shutdown after kill_workers on a stopped worker",
        move || pool.shutdown(Queued::Run),
    );
    assert!(wait_gone(worker, LONG) && is_dead(worker));
}

/// A task that runs a process pool of its own (a library the task calls may use one).
fn nested(n: u64) -> (u32, u32, u64) {
    let pool = ProcessPoolExecutor::new(1).unwrap();
    let (inner, v) = pool
        .submit(|n: u64| (std::process::id(), n * n), n)
        .unwrap()
        .result(LONG)
        .unwrap();
    pool.shutdown(Queued::Run);
    (std::process::id(), inner, v)
}

#[test]
fn a_task_can_run_a_process_pool_of_its_own() {
    let pool = ProcessPoolExecutor::new(1).unwrap();
    let (outer, inner, v) = pool.submit(nested, 7).unwrap().result(LONG).unwrap();
    assert_eq!(v, 49);
    assert_ne!(outer, std::process::id());
    assert_ne!(inner, outer);
    within("a shutdown", move || pool.shutdown(Queued::Run));
}

/// Names the helper's scratch directory; set only in the copy [`the_program_file_replaced_on_disk`]
/// starts.
const REPLACED: &str = "CF_ADV_REPLACED_DIR";

/// The helper: a copy of this test binary whose file is replaced, then deleted, while it runs a
/// pool that starts a new worker for every task. Each worker is `/proc/self/exe`, the running
/// file, not whatever the path names now.
#[test]
#[ignore = "run by the_program_file_replaced_on_disk, in a copy of this binary"]
fn helper_whose_file_is_replaced() {
    let Some(dir) = std::env::var_os(REPLACED) else {
        return;
    };
    let dir = PathBuf::from(dir);
    let exe = std::env::current_exe().unwrap();
    let pool = ProcessPoolExecutor::builder()
        .max_workers(1)
        .max_tasks_per_child(1)
        .build()
        .unwrap();
    let square = |n: u64| n * n;
    assert_eq!(pool.submit(square, 3).unwrap().result(LONG).unwrap(), 9);
    // A deploy: the new build is written beside and renamed over the old path.
    let next = dir.join("next");
    std::fs::write(&next, b"#!/bin/sh\necho a newer build\n").unwrap();
    std::fs::rename(&next, &exe).unwrap();
    assert_eq!(pool.submit(square, 4).unwrap().result(LONG).unwrap(), 16);
    std::fs::remove_file(&exe).unwrap();
    assert_eq!(pool.submit(square, 5).unwrap().result(LONG).unwrap(), 25);
    pool.shutdown(Queued::Run);
    println!("helper passed");
}

#[test]
fn the_program_file_replaced_on_disk() {
    let dir = scratch("replaced");
    let copy = dir.join("program");
    std::fs::copy(std::env::current_exe().unwrap(), &copy).unwrap();
    let child = Command::new(&copy)
        .args([
            "--exact",
            "helper_whose_file_is_replaced",
            "--ignored",
            "--nocapture",
        ])
        .env(REPLACED, &dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let id = child.id();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    let Ok(output) = rx.recv_timeout(LONG) else {
        kill(id, libc::SIGKILL);
        panic!("hang: the helper whose file is replaced");
    };
    let output = output.unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success() && stdout.contains("helper passed"),
        "{}\n{stdout}\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// Forks this process (no exec) with the pool warm, and in the child runs `in_child` and exits
/// with its code; returns the child's exit code (or panics if it is not done within [`LONG`]).
///
/// The child of a threaded program may only make async-signal-safe calls before an exec, in
/// principle; in practice programs fork and go on (pre-fork servers, a daemonizing library, a
/// harness), and glibc's `malloc` survives it. What the child does with the pool it inherited must
/// at least leave the parent's pool alone.
fn in_a_fork(in_child: impl FnOnce() -> i32) -> i32 {
    // SAFETY: the child runs `in_child` and leaves with `_exit`, never returning into the harness.
    let child = unsafe { libc::fork() };
    assert!(child >= 0, "fork");
    if child == 0 {
        let code = std::panic::catch_unwind(std::panic::AssertUnwindSafe(in_child)).unwrap_or(99);
        // SAFETY: ends the forked child without running the harness's exit handlers.
        unsafe { libc::_exit(code) };
    }
    exit_code_of(child)
}

/// Waits (up to [`LONG`]) for the forked `child` to exit, and returns its exit code; fails the test
/// if it hangs or dies.
fn exit_code_of(child: libc::pid_t) -> i32 {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut status = 0;
        // SAFETY: waits for our own child.
        unsafe { libc::waitpid(child, &mut status, 0) };
        let _ = tx.send(status);
    });
    let Ok(status) = rx.recv_timeout(LONG) else {
        kill(child as u32, libc::SIGKILL);
        panic!("hang: the forked child did not exit");
    };
    assert!(
        libc::WIFEXITED(status),
        "the forked child died: {status:#x}"
    );
    libc::WEXITSTATUS(status)
}

/// A one-worker pool whose worker has run a task, and that worker's pid: what a fork inherits.
fn pool_with_a_worker() -> (ProcessPoolExecutor, Vec<u32>) {
    let pool = ProcessPoolExecutor::new(1).unwrap();
    assert_eq!(pool.submit(double, 1).unwrap().result(LONG).unwrap(), 2);
    let worker = pool.worker_pids();
    (pool, worker)
}

/// After the forked child is done: the parent's pool still runs tasks on its own `worker`, and
/// shuts down.
fn assert_the_parent_s_pool_untouched(pool: ProcessPoolExecutor, worker: &[u32]) {
    assert_eq!(pool.submit(double, 21).unwrap().result(LONG).unwrap(), 42);
    assert_eq!(
        pool.worker_pids(),
        worker,
        "the parent's worker was replaced"
    );
    within("a shutdown", move || pool.shutdown(Queued::Run));
}

/// A forked child drops its copy of the pool (it returns from the scope that held it): the
/// parent's workers, whose channels the child shares, must keep serving the parent.
#[test]
fn a_forked_child_dropping_the_pool_leaves_the_parent_s_workers_alone() {
    let (pool, worker) = pool_with_a_worker();
    let mut slot = Some(pool);
    // In the child only: its copy of the one handle goes, so its pool shuts down.
    let code = in_a_fork(|| {
        slot.take();
        0
    });
    assert_eq!(code, 0);
    assert_the_parent_s_pool_untouched(slot.unwrap(), &worker);
}

/// A forked child that goes on using the pool it inherited: its submits are refused with a clear
/// error (its frames would run on the parent's worker, and the parent's driver would take their
/// replies for its own tasks'), and its shutdowns and forced shutdowns neither wait for drivers it
/// does not have nor touch the parent's workers.
#[test]
fn a_forked_child_using_the_pool_is_refused_and_leaves_the_parent_alone() {
    let (pool, worker) = pool_with_a_worker();
    let code = in_a_fork(|| {
        match pool.submit(double, 1000) {
            Err(Error::ProcessSetup(m)) if m.contains("fork") => {}
            Err(e) => {
                eprintln!("the child's submit: {e:?}");
                return 3;
            }
            Ok(_) => return 2,
        }
        pool.terminate_workers();
        pool.kill_workers();
        pool.shutdown(Queued::Cancel);
        0
    });
    assert_eq!(code, 0, "the child's submit was not refused as a fork's");
    assert_the_parent_s_pool_untouched(pool, &worker);
}

/// A forked child that runs its inherited pool in a `shutdown_after` block (Python's `with`): the
/// block's shutdown returns, as the child's other shutdowns do, rather than waiting for the drivers
/// that only the parent has.
#[test]
fn a_forked_child_s_shutdown_after_returns_and_leaves_the_parent_alone() {
    let (pool, worker) = pool_with_a_worker();
    let inherited = pool.clone();
    let mut slot = Some(inherited);
    let code = in_a_fork(|| {
        let refused = slot.take().unwrap().shutdown_after(|pool| {
            matches!(pool.submit(double, 1000), Err(Error::ProcessSetup(_)))
        });
        if refused {
            0
        } else {
            2
        }
    });
    assert_eq!(code, 0, "the child's submit in the block was not refused");
    assert_the_parent_s_pool_untouched(pool, &worker);
}

/// A forked child that waits on a future it inherited, whose task is running in the parent's
/// worker: the reply is the parent's. The child's wait must not read it (it would leave the
/// parent's future pending forever); there it times out.
#[test]
fn a_forked_child_waiting_on_an_inherited_future_leaves_its_reply_to_the_parent() {
    let pool = ProcessPoolExecutor::new(1).unwrap();
    let mut gate = Gate::new();
    let mut fut = pool.submit(gated_pid, gate.path()).unwrap();
    gate.wait_started();
    let worker = pool.worker_pids();
    // SAFETY: the child waits on the future and leaves with `_exit`, never returning into the
    // harness.
    let child = unsafe { libc::fork() };
    assert!(child >= 0, "fork");
    if child == 0 {
        // The task ends once every copy of the gate's writer is closed: the child's first.
        gate.release();
        let code = match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            fut.result(Duration::from_secs(3))
        })) {
            Ok(Err(Error::Timeout)) => 0,
            Ok(Ok(_)) => 2,
            Ok(Err(_)) => 3,
            Err(_) => 99,
        };
        // SAFETY: ends the forked child without running the harness's exit handlers.
        unsafe { libc::_exit(code) };
    }
    gate.release();
    let code = exit_code_of(child);
    let outcome = fut.result(LONG);
    assert!(
        matches!(outcome, Ok(pid) if worker == [pid]),
        "the parent's wait: {outcome:?} (the child's: exit code {code})"
    );
    assert_eq!(code, 0, "the child's wait took the parent's reply");
    within("a shutdown", move || pool.shutdown(Queued::Run));
}

/// A forked child that interrupts a future it inherited, whose task runs in the parent's worker:
/// the worker is the parent's, and the child must leave it alone.
#[test]
fn a_forked_child_interrupting_an_inherited_future_leaves_the_parent_s_worker_alone() {
    let pool = ProcessPoolExecutor::new(1).unwrap();
    let mut gate = Gate::new();
    let mut fut = pool.submit(gated_pid, gate.path()).unwrap();
    gate.wait_started();
    let worker = pool.worker_pids();
    let code = in_a_fork(|| if fut.interrupt() { 2 } else { 0 });
    gate.release();
    let outcome = fut.result(LONG);
    assert!(
        matches!(outcome, Ok(pid) if worker == [pid]),
        "the parent's task: {outcome:?}"
    );
    assert_eq!(code, 0, "the child's interrupt said it stopped the task");
    within("a shutdown", move || pool.shutdown(Queued::Run));
}

/// A task that closes every descriptor above stderr, as a daemonizing library does: its worker's
/// channel among them.
fn close_all_fds(_: ()) -> u8 {
    for fd in 3..4096 {
        // SAFETY: closing a descriptor this process may hold; nothing here uses them afterwards.
        unsafe { libc::close(fd) };
    }
    7
}

/// The worker loses its channel in the middle of a task: its future fails with the worker's
/// death (it cannot reply), and the pool goes on with a new worker.
#[test]
fn a_task_that_closes_its_worker_s_channel_fails_cleanly() {
    let pool = ProcessPoolExecutor::builder()
        .max_workers(1)
        .on_worker_death(concurrent_futures::WorkerDeath::Respawn)
        .build()
        .unwrap();
    match pool.submit(close_all_fds, ()).unwrap().result(LONG) {
        Err(Error::WorkerDied(exit)) => assert!(exit.pid > 0),
        other => panic!("a task that closed its channel: {other:?}"),
    }
    assert_eq!(pool.submit(double, 5).unwrap().result(LONG).unwrap(), 10);
    within("a shutdown", move || pool.shutdown(Queued::Run));
}
