//! A caller blocked in `result()` on a process task reads its worker's reply itself (one wake-up per
//! task instead of the driver's and then the caller's), and every way a task can end while a caller
//! reads still resolves its future exactly once: the reply, a timeout, an interrupt (the worker is
//! killed), a worker killed from outside, several callers at once, and a done callback that shuts the
//! pool down from the reading caller's thread, and a worker that dies while a process it forked keeps
//! its channel open.
//!
//! The tests hold the task at a gate (a named pipe) until the caller is seen blocked reading: no
//! sleeps.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc};
use std::thread;
use std::time::Duration;

use common::process::{assert_all_gone, gated_forever, gated_pid, kill, pid, Gate};
use common::threads::{current_tid, spawn_bounded, wait_until_asleep, Bounded};
use common::LONG;
use concurrent_futures::{Error, PoolFuture, ProcessPoolExecutor, Queued, WorkerDeath};

/// Waits (up to [`LONG`]) until thread `tid` is blocked reading a worker's reply itself: in a
/// blocking `recvfrom` (no flags), which is where a caller that helps with no deadline waits (a
/// caller parked on the future sleeps in `futex` instead, and the driver reads only with
/// `MSG_DONTWAIT`). On other architectures it only waits until the thread sleeps.
fn wait_until_reading(tid: i32) -> bool {
    if !cfg!(target_arch = "x86_64") {
        return wait_until_asleep(tid);
    }
    let path = format!("/proc/self/task/{tid}/syscall");
    let end = std::time::Instant::now() + LONG;
    while std::time::Instant::now() < end {
        let Ok(line) = std::fs::read_to_string(&path) else {
            return false;
        };
        // `number arg1 arg2 …`: recvfrom(2) is 45 on x86_64; its args are (fd, buf, len, flags,
        // addr, addrlen).
        let f: Vec<&str> = line.split_whitespace().collect();
        if f.len() > 4 && f[0] == "45" && f[4] == "0x0" {
            return true;
        }
        thread::sleep(Duration::from_micros(200));
    }
    false
}

/// Blocks a new thread in `fut.result(None)` on a task held at `gate`, and waits until that thread
/// reads the worker's reply itself. Returns the thread and its id.
fn reading_caller(mut fut: PoolFuture<u32>, gate: &mut Gate) -> (Bounded<Result<u32, Error>>, i32) {
    let (tid_tx, tid) = mpsc::channel();
    let caller = spawn_bounded(move || {
        tid_tx.send(current_tid()).unwrap();
        fut.result(None)
    });
    let tid = tid.recv_timeout(LONG).unwrap();
    gate.wait_started();
    assert!(
        wait_until_reading(tid),
        "the caller never read the reply itself"
    );
    (caller, tid)
}

/// A pool of one worker, started and idle.
fn warm_pool() -> ProcessPoolExecutor {
    let pool = ProcessPoolExecutor::new(1).unwrap();
    pool.submit(pid, ()).unwrap().result(None).unwrap();
    wait_idle(&pool);
    pool
}

/// Waits (up to [`LONG`]) until the pool's only worker is idle. The future of the task before ends
/// before its worker is handed back (its done callbacks come first), so a submit right after
/// `result()` can still find the worker busy and queue the task: a caller then waits on a queued
/// task, which it cannot help with. Here every submit must find the worker idle.
fn wait_idle(pool: &ProcessPoolExecutor) {
    common::process::wait_idle(pool, 1);
}

#[test]
fn a_blocked_caller_handles_the_reply_itself() {
    let pool = warm_pool();
    let mut gate = Gate::new();
    let fut = pool.submit(gated_pid, gate.path()).unwrap();
    let (ran_on_tx, ran_on) = mpsc::channel();
    fut.add_done_callback(move |r| {
        assert!(r.is_ok());
        ran_on_tx.send(current_tid()).unwrap();
    });
    let (caller, tid) = reading_caller(fut, &mut gate);
    gate.release();
    let worker = caller.join().unwrap();
    assert_ne!(worker, std::process::id());
    // The caller, not the driver, completed the future: its callback ran there.
    assert_eq!(ran_on.recv_timeout(LONG).unwrap(), tid);
    // And the worker was handed back: the next task runs on it.
    assert_eq!(pool.submit(pid, ()).unwrap().result(None).unwrap(), worker);
    pool.shutdown(Queued::Run);
}

#[test]
fn a_callback_on_the_reading_caller_can_shut_the_pool_down() {
    let pool = warm_pool();
    let mut gate = Gate::new();
    let fut = pool.submit(gated_pid, gate.path()).unwrap();
    let (done_tx, done) = mpsc::channel();
    let inner = pool.clone();
    fut.add_done_callback(move |_| {
        // Waits for the other workers only: this one cannot retire before the callback returns.
        inner.shutdown(Queued::Run);
        done_tx.send(current_tid()).unwrap();
    });
    let (caller, tid) = reading_caller(fut, &mut gate);
    gate.release();
    assert_eq!(done.recv_timeout(LONG).unwrap(), tid);
    caller.join().unwrap();
    assert!(matches!(pool.submit(pid, ()), Err(Error::Shutdown)));
    pool.shutdown(Queued::Run);
}

#[test]
fn a_timeout_while_reading_leaves_the_future_usable() {
    let pool = warm_pool();
    let mut gate = Gate::new();
    let mut fut = pool.submit(gated_pid, gate.path()).unwrap();
    gate.wait_started();
    // The task cannot end before the gate is released, so this times out whoever reads.
    assert!(matches!(
        fut.result(Duration::from_millis(20)),
        Err(Error::Timeout)
    ));
    assert!(fut.running());
    gate.release();
    let worker = fut.result(None).unwrap();
    assert_eq!(pool.submit(pid, ()).unwrap().result(None).unwrap(), worker);
    pool.shutdown(Queued::Run);
}

#[test]
fn an_interrupt_while_the_caller_reads_ends_the_future_once() {
    let pool = warm_pool();
    let mut gate = Gate::new();
    let fut = pool.submit(gated_forever, gate.path()).unwrap();
    let handle = fut.handle();
    let calls = Arc::new(AtomicUsize::new(0));
    let counted = calls.clone();
    fut.add_done_callback(move |_| {
        counted.fetch_add(1, Ordering::SeqCst);
    });
    let (caller, _) = reading_caller(fut, &mut gate);
    assert!(handle.interrupt());
    assert!(matches!(caller.join(), Err(Error::Interrupted)));
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    // A new worker takes the next task.
    pool.submit(pid, ()).unwrap().result(None).unwrap();
    assert_eq!(pool.metrics().workers_respawned, 1);
    pool.shutdown(Queued::Run);
}

#[test]
fn a_worker_killed_while_the_caller_reads_fails_its_future() {
    for policy in [WorkerDeath::BreakPool, WorkerDeath::Respawn] {
        let pool = ProcessPoolExecutor::builder()
            .max_workers(1)
            .on_worker_death(policy)
            .build()
            .unwrap();
        let worker = pool.submit(pid, ()).unwrap().result(None).unwrap();
        wait_idle(&pool);
        let mut gate = Gate::new();
        let fut = pool.submit(gated_forever, gate.path()).unwrap();
        let (caller, _) = reading_caller(fut, &mut gate);
        kill(worker, libc::SIGKILL);
        match (policy, caller.join()) {
            (WorkerDeath::BreakPool, Err(Error::BrokenProcessPool(b))) => {
                assert_eq!(b.worker_exit().unwrap().signal(), Some(libc::SIGKILL));
            }
            (WorkerDeath::Respawn, Err(Error::WorkerDied(exit))) => {
                assert_eq!(exit.signal(), Some(libc::SIGKILL));
                pool.submit(pid, ()).unwrap().result(None).unwrap();
            }
            (policy, other) => panic!("{policy:?}: {other:?}"),
        }
        pool.shutdown(Queued::Run);
    }
}

#[test]
fn many_callers_at_once_each_future_ends_once() {
    let pool = ProcessPoolExecutor::new(2).unwrap();
    let ends = Arc::new(AtomicUsize::new(0));
    let callers: Vec<_> = (0..4)
        .map(|_| {
            let (pool, ends) = (pool.clone(), ends.clone());
            spawn_bounded(move || {
                for _ in 0..50 {
                    let mut fut = pool.submit(pid, ()).unwrap();
                    let ends = ends.clone();
                    fut.add_done_callback(move |_| {
                        ends.fetch_add(1, Ordering::SeqCst);
                    });
                    assert_ne!(fut.result(None).unwrap(), std::process::id());
                }
            })
        })
        .collect();
    for c in callers {
        c.join();
    }
    pool.shutdown(Queued::Run);
    assert_eq!(ends.load(Ordering::SeqCst), 200);
    assert_eq!(pool.metrics().completed, 200);
}

/// Forks a child that keeps every descriptor (no exec) and reports its pid, then waits at the gate
/// (forever): the worker's end of its channel outlives the worker.
fn fork_then_wait(path: String) -> u32 {
    common::process::fork_keeping_descriptors(&path);
    gated_forever(path)
}

/// A caller blocked reading the reply itself, with no deadline, must wake when the worker dies even
/// if a process the task forked holds the worker's end of the channel open (no end-of-file comes
/// from the worker): the driver, which watches the worker's pidfd whoever reads, shuts the socket's
/// read side, which ends the caller's `recv`.
#[test]
fn a_worker_killed_while_a_forked_child_holds_its_channel_ends_the_reading_caller() {
    let pool = warm_pool();
    let worker = pool.submit(pid, ()).unwrap().result(None).unwrap();
    wait_idle(&pool);
    let mut gate = Gate::new();
    let fut = pool.submit(fork_then_wait, gate.path()).unwrap();
    let grandchild: u32 = gate.receive().trim().parse().unwrap();
    let (caller, _) = reading_caller(fut, &mut gate);
    kill(worker, libc::SIGKILL);
    match caller.join() {
        Err(Error::BrokenProcessPool(b)) => {
            assert_eq!(b.worker_exit().unwrap().signal(), Some(libc::SIGKILL));
        }
        other => panic!("expected BrokenProcessPool, got {other:?}"),
    }
    pool.shutdown(Queued::Run);
    // The reap's group kill took the forked process down too.
    assert_all_gone(&[grandchild]);
}

/// A caller that reads with a deadline holds the right to read until the deadline passes; then it
/// must give the right (and the socket) back to the driver: here no caller reads the reply
/// (`exception` does not read), so only the driver can complete the future.
#[test]
fn after_a_deadline_passes_while_a_caller_reads_the_driver_reads_the_reply() {
    let pool = warm_pool();
    let mut gate = Gate::new();
    let mut fut = pool.submit(gated_pid, gate.path()).unwrap();
    gate.wait_started();
    assert!(matches!(
        fut.result(Duration::from_millis(20)),
        Err(Error::Timeout)
    ));
    let (ended_tx, ended) = mpsc::channel();
    fut.add_done_callback(move |r| ended_tx.send(r.is_ok()).unwrap());
    gate.release();
    assert_eq!(ended.recv_timeout(LONG), Ok(true));
    // Callbacks run before the outcome is published: it is there once they have returned.
    let worker = fut.result(LONG).unwrap();
    assert_eq!(pool.submit(pid, ()).unwrap().result(None).unwrap(), worker);
    pool.shutdown(Queued::Run);
}

/// Forks a child that keeps every descriptor (no exec) and reports its pid, waits at the gate, then
/// exits: the forked child keeps the worker's end of the channel open after the worker is gone.
fn fork_then_exit(path: String) -> u32 {
    common::process::fork_keeping_descriptors(&path);
    common::process::task_wait(&path);
    std::process::exit(3)
}

/// A worker that exits by itself (no kill) while the caller is blocked reading and a process the
/// task forked holds the channel: the future fails with the worker's exit status (resilient policy),
/// and the next task runs on a new worker.
#[test]
fn a_worker_exiting_while_a_forked_child_holds_its_channel_fails_the_reading_caller() {
    let pool = ProcessPoolExecutor::builder()
        .max_workers(1)
        .on_worker_death(WorkerDeath::Respawn)
        .build()
        .unwrap();
    let worker = pool.submit(pid, ()).unwrap().result(None).unwrap();
    wait_idle(&pool);
    let mut gate = Gate::new();
    let fut = pool.submit(fork_then_exit, gate.path()).unwrap();
    let grandchild: u32 = gate.receive().trim().parse().unwrap();
    let (caller, _) = reading_caller(fut, &mut gate);
    gate.release();
    match caller.join() {
        Err(Error::WorkerDied(exit)) => assert_eq!(exit.code(), Some(3)),
        other => panic!("expected WorkerDied, got {other:?}"),
    }
    assert_ne!(pool.submit(pid, ()).unwrap().result(None).unwrap(), worker);
    pool.shutdown(Queued::Run);
    assert_all_gone(&[grandchild]);
}
