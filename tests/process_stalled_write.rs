//! A task's frame too large for the worker's socket buffer is written in the parent while the
//! worker reads it. If the worker dies meanwhile and a process an earlier task forked (no exec)
//! still holds the worker's end of the channel, the socket stays open and its buffer full: a write
//! waiting for room would wait for as long as that process lives, and with it the task's future,
//! the driver and, for a caller writing the rest itself, the caller. The write must end at the
//! worker's exit, and the task fail with the death.
//!
//! The worker is stopped (SIGSTOP) before the frame is submitted, so the write cannot finish
//! whatever the timing, then killed from outside (SIGKILL to the worker alone, as the OOM killer
//! would), which leaves the forked process holding the channel.

mod common;

use std::sync::mpsc;

use common::process::{assert_all_gone, kill, Gate};
use common::LONG;
use concurrent_futures::{ByteBlock, Error, ProcessPoolExecutor, WorkerDeath};

/// Far more than a socket buffer takes.
const FRAME: usize = 16 << 20;

/// Forks a child that keeps every descriptor (the worker's channel among them) and reports its
/// pid through the gate, then returns the worker's pid.
fn fork_then_return(path: String) -> u32 {
    common::process::fork_keeping_descriptors(&path);
    std::process::id()
}

fn length(data: ByteBlock) -> usize {
    data.len()
}

/// How the test waits for the large task's result.
#[derive(Clone, Copy, Debug)]
enum Wait {
    /// `result(Some(_))`: the rest of the frame is the driver's to write.
    Bounded,
    /// `result(None)` on another thread: that caller may write the rest itself.
    Blocking,
}

fn a_death_during_the_write(policy: WorkerDeath, wait: Wait) {
    let pool = ProcessPoolExecutor::builder()
        .max_workers(1)
        .on_worker_death(policy)
        .build()
        .unwrap();
    let gate = Gate::new();
    let mut forking = pool.submit(fork_then_return, gate.path()).unwrap();
    let forked: u32 = gate.receive().trim().parse().unwrap();
    let worker = forking.result(LONG).unwrap();

    kill(worker, libc::SIGSTOP);
    let mut big = pool
        .submit(length, ByteBlock::from(vec![1u8; FRAME]))
        .unwrap();
    kill(worker, libc::SIGKILL);
    let outcome = match wait {
        Wait::Bounded => Some(big.result(LONG)),
        Wait::Blocking => {
            let (tx, rx) = mpsc::channel();
            std::thread::spawn(move || tx.send(big.result(None)));
            // `None`: it hangs (checked below, once the forked process is killed).
            rx.recv_timeout(LONG).ok()
        }
    };
    // Whatever the outcome, the forked process must not outlive the test (it holds the channel).
    kill(forked, libc::SIGKILL);
    match outcome {
        Some(Err(Error::BrokenProcessPool(_) | Error::WorkerDied(_))) => {}
        other => panic!("{policy:?}, {wait:?}: expected the worker's death, got {other:?}"),
    }
    common::process::shutdown_bounded(&pool);
    assert_all_gone(&[worker, forked]);
}

#[test]
fn a_worker_dying_while_its_task_is_written_fails_the_task_with_a_bounded_wait() {
    for policy in [WorkerDeath::BreakPool, WorkerDeath::Respawn] {
        a_death_during_the_write(policy, Wait::Bounded);
    }
}

#[test]
fn a_worker_dying_while_its_task_is_written_fails_the_task_with_a_blocking_wait() {
    for policy in [WorkerDeath::BreakPool, WorkerDeath::Respawn] {
        a_death_during_the_write(policy, Wait::Blocking);
    }
}
