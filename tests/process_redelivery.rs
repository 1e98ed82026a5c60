//! A task is never failed (nor held up) by the death of a process worker that got none of it.
//!
//! The worker's end of the channel is made to refuse a frame at a chosen point, with the worker still
//! alive: a task (or the initializer) shuts its channel for reading, which makes the parent's next
//! write fail with `EPIPE` before its first byte, exactly as a write to a worker that has just died
//! does. The worker then reads end-of-file and exits; [`refuse_further_tasks`] also keeps it alive,
//! its channel open, at its exit until the test lets it go, so the parent's checks of the worker (its
//! pidfd, its socket) still see it alive when it writes the task.

mod common;

use std::sync::OnceLock;

use common::process::{gated_pid, pid, shut_channel_for_reading, task_wait, wait_idle, Gate};
use common::{eventually, LONG};
use concurrent_futures::{Error, ProcessPoolBuilder, ProcessPoolExecutor, WorkerDeath};

static EXIT_GATE: OnceLock<String> = OnceLock::new();

extern "C" fn wait_at_exit() {
    if let Some(gate) = EXIT_GATE.get() {
        task_wait(gate);
    }
}

/// A task: waits at `go`, then makes its worker refuse every later frame, and keeps the worker alive
/// at its exit (which follows its reply) until the test opens and releases `exit`. Returns the
/// worker's pid.
fn refuse_further_tasks((go, exit): (String, String)) -> u32 {
    task_wait(&go);
    let _ = EXIT_GATE.set(exit);
    // SAFETY: registers a plain `extern "C"` function that takes no arguments.
    assert_eq!(unsafe { libc::atexit(wait_at_exit) }, 0);
    let fd = shut_channel_for_reading();
    // The worker closes its descriptors of the channel when its loop ends; a copy kept until the
    // process exits keeps its parent from seeing the channel end (and killing it) before.
    // SAFETY: duplicates a descriptor this process owns; the copy is never closed on purpose.
    assert!(unsafe { libc::dup(fd) } >= 0);
    std::process::id()
}

/// An initializer: the first worker to remove `marker` refuses every frame after the handshake.
fn first_worker_refuses_tasks(marker: String) {
    if std::fs::remove_file(&marker).is_ok() {
        let _ = shut_channel_for_reading();
    }
}

/// An initializer: the first worker to remove `marker` dies while it starts.
fn first_worker_dies_starting(marker: String) {
    if std::fs::remove_file(&marker).is_ok() {
        std::process::exit(70);
    }
}

/// A marker file for one of the initializers above, unique to this test process and `name`.
fn marker(name: &str) -> String {
    let path = std::env::temp_dir().join(format!("cf-{name}-{}", std::process::id()));
    std::fs::write(&path, b"").unwrap();
    path.to_str().unwrap().to_owned()
}

/// A pool of one worker from `builder` whose first worker runs `initializer` on [`marker`]`(name)`:
/// the outcome of a task submitted at once, and the pool.
fn first_task_after(
    builder: ProcessPoolBuilder,
    initializer: fn(String),
    name: &str,
) -> Result<(Result<u32, Error>, ProcessPoolExecutor), Error> {
    let marker = marker(name);
    let pool = builder
        .max_workers(1)
        .initializer(initializer, marker.clone())
        .build()?;
    let outcome = pool.submit(pid, ())?.result(LONG);
    assert!(
        !std::path::Path::new(&marker).exists(),
        "no worker ran the initializer"
    );
    Ok((outcome, pool))
}

/// A queued task the driver hands to its worker after the worker's reply, whose write the worker's end
/// refuses: the worker dies with none of the task. Returns the worker's pid and the task's outcome.
fn handed_after_a_reply(policy: WorkerDeath) -> Result<(u32, Result<u32, Error>), Error> {
    let pool = ProcessPoolExecutor::builder()
        .max_workers(1)
        .on_worker_death(policy)
        .build()?;
    let (mut go, mut exit) = (Gate::new(), Gate::new());
    let mut first = pool.submit(refuse_further_tasks, (go.path(), exit.path()))?;
    go.wait_started();
    let mut next = pool.submit(pid, ())?; // queued: the only worker is busy
    go.release();
    // RUNNING once the driver (or a caller) handed it to the worker after the reply; the worker
    // is alive then, so nothing keeps it from being handed the task.
    eventually("the queued task is handed to the worker", || {
        next.running() || next.done()
    });
    exit.wait_started();
    exit.release();
    let dead = first.result(LONG)?;
    let outcome = next.result(LONG);
    pool.shutdown(concurrent_futures::Queued::Run);
    Ok((dead, outcome))
}

/// Bug: under the resilient policy, a task a driver handed to its worker after the worker's reply,
/// when the worker died before reading a byte of it, failed with `WorkerDied` (the driver ignored the
/// refused write and settled the death with the task as the worker's). It runs on the new worker.
#[test]
fn resilient_policy_runs_a_task_handed_after_a_reply_to_a_worker_that_died() -> Result<(), Error> {
    let (dead, outcome) = handed_after_a_reply(WorkerDeath::Respawn)?;
    assert!(matches!(outcome, Ok(p) if p != dead), "{outcome:?}");
    Ok(())
}

/// Under the default policy the same death breaks the pool, and the task fails as every pending task
/// does, with the dead worker's exit in the error.
#[test]
fn default_policy_fails_a_task_handed_after_a_reply_with_the_broken_pool() -> Result<(), Error> {
    let (dead, outcome) = handed_after_a_reply(WorkerDeath::BreakPool)?;
    match outcome {
        Err(Error::BrokenProcessPool(b)) => {
            assert_eq!(b.worker_exit().map(|e| e.pid), Some(dead), "{b:?}")
        }
        other => panic!("expected BrokenProcessPool, got {other:?}"),
    }
    Ok(())
}

/// Bug: under the resilient policy, a task queued while the pool's only worker started, whose write
/// that worker refused right after its handshake, failed with `WorkerDied`. It runs on the next one.
#[test]
fn resilient_policy_runs_a_task_handed_after_a_handshake_to_a_worker_that_died() -> Result<(), Error>
{
    let (outcome, pool) = first_task_after(
        ProcessPoolExecutor::builder().on_worker_death(WorkerDeath::Respawn),
        first_worker_refuses_tasks,
        "refuse",
    )?;
    assert!(outcome.is_ok(), "{outcome:?}");
    assert_eq!(pool.metrics().workers_respawned, 1);
    pool.shutdown(concurrent_futures::Queued::Run);
    Ok(())
}

/// Bug: a task handed back because its worker died before reading a byte of it waited in the queue
/// for that worker's replacement, though another worker was idle. It goes to the idle one at once
/// (here the dead worker is kept from exiting, so no replacement could ever take it).
#[test]
fn a_task_handed_back_goes_to_an_idle_worker() -> Result<(), Error> {
    let pool = ProcessPoolExecutor::builder()
        .max_workers(2)
        .on_worker_death(WorkerDeath::Respawn)
        .build()?;
    let mut gate = Gate::new();
    let mut other = pool.submit(gated_pid, gate.path())?;
    gate.wait_started();
    let (mut go, mut exit) = (Gate::new(), Gate::new());
    let mut refusing = pool.submit(refuse_further_tasks, (go.path(), exit.path()))?;
    go.wait_started();
    // The other worker goes idle first, the refusing one last: a submit claims the last one.
    gate.release();
    let idle = other.result(LONG)?;
    wait_idle(&pool, 1);
    go.release();
    let refused_by = refusing.result(LONG)?;
    wait_idle(&pool, 2);
    let outcome = pool.submit(pid, ())?.result(LONG);
    exit.wait_started();
    exit.release();
    assert!(
        matches!(outcome, Ok(p) if p == idle),
        "ran on {outcome:?}; idle worker {idle}, refusing worker {refused_by}"
    );
    pool.shutdown(concurrent_futures::Queued::Run);
    Ok(())
}

/// A worker that dies while it starts, with a task queued for it, fails nothing under the resilient
/// policy: the driver starts another worker, which runs the task.
#[test]
fn resilient_policy_runs_a_task_queued_for_a_worker_that_died_starting() -> Result<(), Error> {
    let (outcome, pool) = first_task_after(
        ProcessPoolExecutor::builder().on_worker_death(WorkerDeath::Respawn),
        first_worker_dies_starting,
        "die-starting",
    )?;
    assert!(outcome.is_ok(), "{outcome:?}");
    pool.shutdown(concurrent_futures::Queued::Run);
    Ok(())
}

/// Under the default policy the same death breaks the pool (a worker that cannot start), and the
/// queued task fails with it.
#[test]
fn default_policy_fails_a_task_queued_for_a_worker_that_died_starting() -> Result<(), Error> {
    let (outcome, _pool) = first_task_after(
        ProcessPoolExecutor::builder(),
        first_worker_dies_starting,
        "die-starting-default",
    )?;
    assert!(
        matches!(outcome, Err(Error::BrokenProcessPool(_))),
        "{outcome:?}"
    );
    Ok(())
}
