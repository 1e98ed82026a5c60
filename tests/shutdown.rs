//! Shutting a thread pool down: CPython's conformance group 9 (items 89–101). Python's
//! `shutdown(wait, cancel_futures)` is `shutdown(Queued::…)` (waits), `shutdown_nowait(Queued::…)` and
//! `shutdown_async(Queued::…)`; the `with` block is `shutdown_after`; dropping the last handle shuts down without
//! blocking.

mod common;

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Barrier};
use std::time::Duration;

use common::threads::{
    arm_exit_probe, current_tid, occupy_n, spawn_exit_probed, wait_until_asleep, Gate,
};
use common::LONG;
use concurrent_futures::{
    as_completed, wait, Error, PoolFuture, Queued, ReturnWhen, ThreadPoolExecutor,
};

fn queue_counters(
    pool: &ThreadPoolExecutor,
    n: usize,
) -> (Vec<PoolFuture<usize>>, Arc<AtomicUsize>) {
    let ran = Arc::new(AtomicUsize::new(0));
    let futures = (0..n)
        .map(|i| {
            let ran = ran.clone();
            pool.spawn(move || {
                ran.fetch_add(1, Ordering::SeqCst);
                i
            })
            .unwrap()
        })
        .collect();
    (futures, ran)
}

// CPython #89: shutdown waits for every queued and running task; all results are then available.
#[test]
fn shutdown_waits_for_queued_and_running_tasks() {
    let pool = ThreadPoolExecutor::new(5).unwrap();
    let futures: Vec<_> = (0..50u64)
        .map(|i| {
            pool.spawn(move || {
                std::thread::sleep(Duration::from_millis(1));
                i * 2
            })
            .unwrap()
        })
        .collect();
    pool.shutdown(Queued::Run);
    assert!(
        futures.iter().all(PoolFuture::done),
        "shutdown returned early"
    );
    for (i, mut f) in futures.into_iter().enumerate() {
        assert_eq!(f.result(Duration::ZERO).unwrap(), i as u64 * 2);
    }
    assert_eq!(pool.metrics().workers, 0);
    assert_eq!(pool.metrics().completed, 50);
}

// CPython #90: shutdown can be called again, in any form.
#[tokio::test]
async fn shutdown_is_idempotent() {
    let pool = ThreadPoolExecutor::new(2).unwrap();
    pool.spawn(|| 1).unwrap().await.unwrap();
    pool.shutdown(Queued::Run);
    pool.shutdown(Queued::Run);
    pool.shutdown_nowait(Queued::Cancel);
    pool.shutdown(Queued::Cancel);
    pool.shutdown_async(Queued::Run).await;
    assert!(matches!(pool.spawn(|| 1), Err(Error::Shutdown)));
    assert_eq!(pool.metrics().workers, 0);

    // On a pool that never started a thread, too.
    let idle = ThreadPoolExecutor::new(2).unwrap();
    idle.shutdown(Queued::Cancel);
    idle.shutdown(Queued::Run);
    idle.shutdown_async(Queued::Cancel).await;
}

// CPython #91 and #101 (DIVERGE): shutdown(Queued::Cancel) cancels what has not started, lets the
// running tasks finish normally, and the cancelled futures wake their waiters at once.
#[test]
fn shutdown_cancel_cancels_queued_tasks_only() {
    let pool = ThreadPoolExecutor::new(2).unwrap();
    let (running, open) = occupy_n(&pool, 2);
    let (queued, ran) = queue_counters(&pool, 10);

    let shutdown = {
        let pool = pool.clone();
        std::thread::spawn(move || pool.shutdown(Queued::Cancel))
    };
    // Waiting on the cancelled futures returns while the running tasks still run (CPython's
    // gh-109934 would block here forever).
    let done = wait(&queued).timeout(LONG).blocking();
    assert_eq!(done.done.len(), 10);
    assert!(done.not_done.is_empty());
    assert!(queued.iter().all(PoolFuture::cancelled));
    assert!(running.iter().all(PoolFuture::running));

    drop(open);
    shutdown.join().unwrap();
    for f in &running {
        assert!(f.done() && !f.cancelled());
        assert!(matches!(f.exception(Duration::ZERO), Ok(None)));
    }
    for mut f in queued {
        assert!(matches!(f.result(Duration::ZERO), Err(Error::Cancelled)));
    }
    assert_eq!(ran.load(Ordering::SeqCst), 0);
    let m = pool.metrics();
    assert_eq!((m.cancelled, m.completed, m.workers), (10, 2, 0));
}

// CPython #92: shutdown_nowait returns at once; the queued work still runs and its results stay
// readable; the workers exit afterwards.
#[test]
fn shutdown_nowait_returns_at_once_and_queued_work_still_runs() {
    let pool = ThreadPoolExecutor::new(1).unwrap();
    let (running, open) = occupy_n(&pool, 1);
    let (queued, ran) = queue_counters(&pool, 5);
    // The only worker is blocked: returning here proves the call does not wait.
    pool.shutdown_nowait(Queued::Run);
    assert!(matches!(pool.spawn(|| 0), Err(Error::Shutdown)));
    assert_eq!(pool.metrics().queued, 5);
    drop(open);
    for (i, mut f) in queued.into_iter().enumerate() {
        assert_eq!(f.result(LONG).unwrap(), i);
    }
    assert_eq!(ran.load(Ordering::SeqCst), 5);
    drop(running);
    pool.shutdown(Queued::Run);
    assert_eq!(pool.metrics().workers, 0);
}

// CPython #92 with cancel_futures: shutdown_nowait(Queued::Cancel) cancels the queue without waiting.
#[test]
fn shutdown_nowait_cancel_cancels_the_queue_without_waiting() {
    let pool = ThreadPoolExecutor::new(1).unwrap();
    let (mut running, open) = occupy_n(&pool, 1);
    let (queued, ran) = queue_counters(&pool, 5);
    pool.shutdown_nowait(Queued::Cancel);
    assert!(queued.iter().all(PoolFuture::cancelled));
    assert_eq!(pool.metrics().queued, 0);
    drop(open);
    running[0].result(LONG).unwrap();
    pool.shutdown(Queued::Run);
    assert_eq!(ran.load(Ordering::SeqCst), 0);
}

// CPython #93 and #107: after shutdown every worker thread has exited (joined, thread-locals destroyed).
#[test]
fn shutdown_joins_every_worker_thread() {
    let workers = 3;
    let pool = ThreadPoolExecutor::new(workers).unwrap();
    // A barrier of `workers` tasks forces `workers` distinct threads.
    let (tasks, exited) = spawn_exit_probed(&pool, workers);
    pool.shutdown(Queued::Run);
    assert!(tasks.iter().all(PoolFuture::done));
    // No waiting: shutdown has joined them.
    let mut names: Vec<String> = exited.try_iter().collect();
    names.sort();
    assert_eq!(names.len(), workers, "workers still alive: {names:?}");
    assert_eq!(pool.metrics().workers, 0);
}

// CPython #94: shutdown_after (Python's with-block) returns the body's value after shutting down and waiting.
// The body's tasks hold their workers until the body has returned and the block's thread is blocked
// (in the shutdown, waiting for them): a block that did not wait would reach the assertions first.
#[test]
fn shutdown_after_shuts_down_and_waits_after_the_body() {
    struct SendOnDrop(mpsc::Sender<()>);
    impl Drop for SendOnDrop {
        fn drop(&mut self) {
            let _ = self.0.send(());
        }
    }

    let pool = ThreadPoolExecutor::new(2).unwrap();
    let outside = pool.clone();
    let ran = Arc::new(AtomicUsize::new(0));
    let block_thread = current_tid();
    let results = pool.shutdown_after(|pool| {
        let results = pool
            .map(|n: u32| n * n, 0..5)
            .unwrap()
            .into_iter()
            .collect::<Result<Vec<_>, _>>()
            .unwrap();
        let (returned_tx, returned) = mpsc::channel();
        let returned = Arc::new(std::sync::Mutex::new(returned));
        for _ in 0..2 {
            let (ran, returned) = (ran.clone(), returned.clone());
            drop(pool.spawn(move || {
                // Either task may take the one message; the other sees the sender dropped.
                let _ = returned.lock().unwrap().recv_timeout(LONG);
                assert!(wait_until_asleep(block_thread));
                ran.fetch_add(1, Ordering::SeqCst);
            }));
        }
        let _returning = SendOnDrop(returned_tx);
        results
    });
    assert_eq!(results, [0, 1, 4, 9, 16]);
    assert_eq!(
        ran.load(Ordering::SeqCst),
        2,
        "shutdown_after returned before its work"
    );
    assert_eq!(
        outside.metrics().workers,
        0,
        "workers joined after the block"
    );
    assert!(matches!(outside.spawn(|| ()), Err(Error::Shutdown)));
}

// CPython #94: the body's panic propagates, after the pool has waited for its work. The task is still
// running when the body unwinds (it waits for that), and ends only once the block's thread is blocked
// (in the shutdown, waiting for it): a block that did not wait would reach the assertion first.
#[test]
fn shutdown_after_waits_even_if_the_body_panics() {
    struct SendOnDrop(mpsc::Sender<()>);
    impl Drop for SendOnDrop {
        fn drop(&mut self) {
            let _ = self.0.send(());
        }
    }

    let pool = ThreadPoolExecutor::new(2).unwrap();
    let outside = pool.clone();
    let finished = Arc::new(AtomicBool::new(false));
    let flag = finished.clone();
    let block_thread = current_tid();
    let outcome = catch_unwind(AssertUnwindSafe(|| {
        pool.shutdown_after(|pool| {
            let (unwound_tx, unwound) = mpsc::channel();
            let _unwinding = SendOnDrop(unwound_tx);
            drop(pool.spawn(move || {
                unwound.recv_timeout(LONG).unwrap();
                assert!(wait_until_asleep(block_thread));
                flag.store(true, Ordering::SeqCst);
            }));
            panic!("the body failed");
        })
    }));
    let payload = outcome.expect_err("the panic propagates");
    assert_eq!(payload.downcast_ref::<&str>(), Some(&"the body failed"));
    assert!(
        finished.load(Ordering::SeqCst),
        "shutdown_after did not wait"
    );
    assert_eq!(outside.metrics().workers, 0);
}

// CPython #89 and #91 for async code: shutdown_async resolves once every worker has exited.
#[tokio::test]
async fn shutdown_async_waits_without_blocking_the_runtime() {
    let pool = ThreadPoolExecutor::new(2).unwrap();
    let (running, open) = occupy_n(&pool, 2);
    let (queued, ran) = queue_counters(&pool, 4);
    let shutdown = pool.shutdown_async(Queued::Run);
    tokio::pin!(shutdown);
    assert!(futures::poll!(shutdown.as_mut()).is_pending());
    // The runtime is free meanwhile: another task makes progress.
    assert_eq!(tokio::spawn(async { 7 }).await.unwrap(), 7);
    drop(open);
    tokio::time::timeout(LONG, shutdown)
        .await
        .expect("shut down");
    assert_eq!(pool.metrics().workers, 0);
    assert_eq!(ran.load(Ordering::SeqCst), 4);
    for (i, f) in queued.into_iter().enumerate() {
        assert_eq!(f.await.unwrap(), i);
    }
    for f in running {
        f.await.unwrap();
    }
}

// CPython #91 and #101 for async code.
#[tokio::test]
async fn shutdown_async_cancel_wakes_waiters_of_cancelled_futures() {
    let pool = ThreadPoolExecutor::new(1).unwrap();
    let (running, open) = occupy_n(&pool, 1);
    let (queued, ran) = queue_counters(&pool, 4);
    let shutdown = pool.shutdown_async(Queued::Cancel);
    tokio::pin!(shutdown);
    assert!(futures::poll!(shutdown.as_mut()).is_pending());
    let done = tokio::time::timeout(LONG, wait(&queued))
        .await
        .expect("woken");
    assert_eq!(done.done.len(), 4);
    drop(open);
    tokio::time::timeout(LONG, shutdown)
        .await
        .expect("shut down");
    assert_eq!(ran.load(Ordering::SeqCst), 0);
    drop(running);
}

// CPython #95 (and the Rust analogue of #99/#100): dropping the last handle never blocks, and the work
// already submitted, queued included, still completes.
#[test]
fn dropping_the_pool_does_not_block_and_queued_work_completes() {
    let pool = ThreadPoolExecutor::new(1).unwrap();
    let (running, open) = occupy_n(&pool, 1);
    let (queued, ran) = queue_counters(&pool, 5);
    // The only worker is blocked: returning here proves the drop does not wait.
    drop(pool);
    drop(open);
    for (i, mut f) in queued.into_iter().enumerate() {
        assert_eq!(f.result(LONG).unwrap(), i);
    }
    assert_eq!(ran.load(Ordering::SeqCst), 5);
    drop(running);
}

// CPython #95: the last handle may be dropped by one of the pool's own tasks.
#[test]
fn the_last_handle_dropped_inside_a_task_shuts_the_pool_down() {
    let pool = ThreadPoolExecutor::new(1).unwrap();
    let gate = Gate::default();
    let open = gate.guard();
    let (exited_tx, exited) = mpsc::channel();
    let own = pool.clone();
    let mut f = pool
        .spawn(move || {
            arm_exit_probe(exited_tx);
            gate.wait();
            drop(own);
            5
        })
        .unwrap();
    drop(pool);
    drop(open);
    assert_eq!(f.result(LONG).unwrap(), 5);
    // The worker exits once the pool is gone.
    assert!(exited.recv_timeout(LONG).is_ok());
}

// CPython #96: a task cancelled right after submit does not make shutdown hang.
#[test]
fn shutdown_after_cancelling_a_queued_task_returns() {
    let pool = ThreadPoolExecutor::new(1).unwrap();
    let (running, open) = occupy_n(&pool, 1);
    let mut f = pool.spawn(|| 1).unwrap();
    assert!(f.cancel());
    drop(open);
    pool.shutdown(Queued::Run);
    assert!(matches!(f.result(Duration::ZERO), Err(Error::Cancelled)));
    assert_eq!(pool.metrics().cancelled, 1);
    drop(running);

    // As in CPython, with no control over whether the cancel wins.
    let pool = ThreadPoolExecutor::new(1).unwrap();
    let f = pool.spawn(|| 1).unwrap();
    let _ = f.cancel();
    pool.shutdown(Queued::Run);
    assert!(f.done());
}

// CPython #97: shutdown with more work queued than workers (a map of workers + 1 items) finishes it all.
#[test]
fn shutdown_with_a_full_queue_does_not_deadlock() {
    let pool = ThreadPoolExecutor::new(2).unwrap();
    let map = pool.map(|n: u32| n * 2, 0..3).unwrap();
    pool.shutdown(Queued::Run);
    let results: Vec<u32> = map.into_iter().collect::<Result<_, _>>().unwrap();
    assert_eq!(results, [0, 2, 4]);
}

// CPython #98 is about the process pool's max_tasks_per_child: not applicable to threads.
// CPython #99/#100 (interpreter exit): Rust has no atexit and returning from main ends all threads;
// the analogue is that Drop never blocks (above), that shutdown_after/shutdown give an explicit join, and that
// a program ending right after shutdown_nowait ends promptly and quietly (below).

/// Names the case [`helper_exit_right_after_shutdown_nowait`] runs.
const EXIT_CASE: &str = "CF_TEST_EXIT_CASE";

/// Run in a fresh copy of this test binary: a pool with a task that never ends and tasks queued,
/// `shutdown_nowait`, then the end of the program (this test returns and the harness exits).
#[test]
#[ignore = "helper for the_program_ends_promptly_after_shutdown_nowait"]
fn helper_exit_right_after_shutdown_nowait() {
    let Ok(case) = std::env::var(EXIT_CASE) else {
        return;
    };
    let queued = if case.ends_with("cancel") {
        Queued::Cancel
    } else {
        Queued::Run
    };
    if case.starts_with("thread") {
        let pool = ThreadPoolExecutor::new(2).unwrap();
        let (never_tx, never) = mpsc::channel::<()>();
        std::mem::forget(never_tx);
        let (started_tx, started) = mpsc::channel();
        drop(pool.spawn(move || {
            started_tx.send(()).unwrap();
            let _ = never.recv();
        }));
        started.recv_timeout(LONG).unwrap();
        for i in 0..5u32 {
            drop(pool.spawn(move || i));
        }
        pool.shutdown_nowait(queued);
    } else {
        let pool = concurrent_futures::ProcessPoolExecutor::new(2).unwrap();
        let mut gate = common::process::Gate::new();
        drop(
            pool.submit(common::process::gated_forever, gate.path())
                .unwrap(),
        );
        gate.wait_started();
        std::mem::forget(gate); // its writer stays open: the task never ends
        for _ in 0..5 {
            drop(pool.submit(common::process::pid, ()).unwrap());
        }
        let pids: Vec<String> = pool.worker_pids().iter().map(u32::to_string).collect();
        println!("workers: {}", pids.join(" "));
        pool.shutdown_nowait(queued);
    }
}

// CPython #100: after shutdown_nowait (with or without cancelling the queue), with a task that never
// ends, the program still ends at once, without any panic or error output.
#[test]
fn the_program_ends_promptly_after_shutdown_nowait() {
    exit_right_after_shutdown_nowait(&["thread-run", "thread-cancel"]);
}

// CPython #100 for the process pool (which CPython skips because it hangs, gh-83386): the program ends
// at once and quietly, and its workers end with it.
#[test]
fn the_program_ends_promptly_and_quietly_after_a_process_pool_shutdown_nowait() {
    exit_right_after_shutdown_nowait(&["process-run", "process-cancel"]);
}

/// Runs each case of [`helper_exit_right_after_shutdown_nowait`] in its own process and checks that
/// it ends in time, successfully, with nothing on stderr from a panic or from the crate, and that its
/// workers (if any) are gone.
fn exit_right_after_shutdown_nowait(cases: &[&str]) {
    for &case in cases {
        let child = std::process::Command::new(std::env::current_exe().unwrap())
            .args([
                "--exact",
                "helper_exit_right_after_shutdown_nowait",
                "--ignored",
                "--nocapture",
            ])
            .env(EXIT_CASE, case)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let id = child.id();
        let (out_tx, out) = mpsc::channel();
        std::thread::spawn(move || {
            let _ = out_tx.send(child.wait_with_output());
        });
        let Ok(output) = out.recv_timeout(LONG) else {
            common::process::kill(id, libc::SIGKILL);
            panic!("{case}: the program did not end");
        };
        let output = output.unwrap();
        let (stdout, stderr) = (
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr),
        );
        assert!(
            output.status.success(),
            "{case}: {}\n{stdout}\n{stderr}",
            output.status
        );
        assert!(
            stdout.contains("1 passed"),
            "{case}: the helper did not run:\n{stdout}"
        );
        assert!(
            !stderr.contains("panicked") && !stderr.contains("concurrent_futures:"),
            "{case}: output at exit:\n{stderr}"
        );
        if let Some(line) = stdout.lines().find(|l| l.starts_with("workers: ")) {
            for pid in line["workers: ".len()..].split_whitespace() {
                let pid: u32 = pid.parse().unwrap();
                assert!(
                    common::process::wait_gone(pid, LONG),
                    "{case}: worker {pid} outlived the program"
                );
            }
        } else {
            assert!(
                case.starts_with("thread"),
                "{case}: no worker pids:\n{stdout}"
            );
        }
    }
}

// CPython #101 (DIVERGE): after shutdown(Queued::Cancel), wait(ALL) and as_completed on the cancelled
// futures return at once, with them done.
#[test]
fn wait_and_as_completed_return_after_shutdown_cancel() {
    let pool = ThreadPoolExecutor::new(1).unwrap();
    let (running, open) = occupy_n(&pool, 1);
    let (queued, _ran) = queue_counters(&pool, 3);
    pool.shutdown_nowait(Queued::Cancel);

    let done = wait(&queued)
        .return_when(ReturnWhen::AllCompleted)
        .timeout(LONG)
        .blocking();
    assert_eq!(done.done.len(), 3);
    assert!(done.not_done.is_empty());

    let yielded: Vec<_> = as_completed(&queued)
        .timeout(LONG)
        .into_iter()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(yielded.len(), 3);
    assert!(yielded.iter().all(|f| f.cancelled()));

    drop(open);
    drop(running);
    pool.shutdown(Queued::Run);
}

// A task may shut its own pool down: it waits for the other workers only.
#[test]
fn shutdown_from_inside_a_task_waits_for_the_other_workers() {
    let pool = ThreadPoolExecutor::new(2).unwrap();
    let (mut running, open) = occupy_n(&pool, 1);
    let own = pool.clone();
    let mut closer = pool
        .spawn(move || {
            own.shutdown(Queued::Run);
            own.metrics().workers
        })
        .unwrap();
    // The closer waits for the other worker, which is blocked.
    assert!(matches!(closer.result(Duration::ZERO), Err(Error::Timeout)));
    drop(open);
    running[0].result(LONG).unwrap();
    assert_eq!(
        closer.result(LONG).unwrap(),
        1,
        "only the closer's own worker left"
    );
    pool.shutdown(Queued::Run);
    assert_eq!(pool.metrics().workers, 0);
}

#[test]
fn two_tasks_shutting_down_their_own_pool_do_not_deadlock() {
    let pool = ThreadPoolExecutor::new(2).unwrap();
    let barrier = Arc::new(Barrier::new(2));
    let closers: Vec<_> = (0..2)
        .map(|_| {
            let own = pool.clone();
            let barrier = barrier.clone();
            pool.spawn(move || {
                // Both workers are inside a task before either shuts the pool down.
                barrier.wait();
                own.shutdown(Queued::Run);
            })
            .unwrap()
        })
        .collect();
    for mut c in closers {
        c.result(LONG).unwrap();
    }
    pool.shutdown(Queued::Run);
    assert_eq!(pool.metrics().workers, 0);
}

#[test]
fn shutdown_async_driven_inside_a_task_waits_for_the_other_workers() {
    let pool = ThreadPoolExecutor::new(2).unwrap();
    let (mut running, open) = occupy_n(&pool, 1);
    let own = pool.clone();
    let mut closer = pool
        .spawn(move || {
            futures::executor::block_on(own.shutdown_async(Queued::Run));
            own.metrics().workers
        })
        .unwrap();
    assert!(matches!(closer.result(Duration::ZERO), Err(Error::Timeout)));
    drop(open);
    running[0].result(LONG).unwrap();
    assert_eq!(
        closer.result(LONG).unwrap(),
        1,
        "the async shutdown waited for its own worker to leave"
    );
    pool.shutdown(Queued::Run);
    assert_eq!(pool.metrics().workers, 0);
}

#[test]
fn a_sync_and_an_async_shutdown_inside_two_tasks_do_not_deadlock() {
    let pool = ThreadPoolExecutor::new(2).unwrap();
    let barrier = Arc::new(Barrier::new(2));
    let closers: Vec<_> = [false, true]
        .into_iter()
        .map(|is_async| {
            let own = pool.clone();
            let barrier = barrier.clone();
            pool.spawn(move || {
                barrier.wait();
                if is_async {
                    futures::executor::block_on(own.shutdown_async(Queued::Run));
                } else {
                    own.shutdown(Queued::Run);
                }
            })
            .unwrap()
        })
        .collect();
    for mut c in closers {
        c.result(LONG).unwrap();
    }
    pool.shutdown(Queued::Run);
    assert_eq!(pool.metrics().workers, 0);
}

#[test]
fn a_waiting_shutdown_in_a_done_callback_does_not_wait_for_a_task_awaiting_that_future() {
    for form in ["blocking", "async", "shutdown_after"] {
        let outcome = common::threads::spawn_bounded(move || {
            let pool = ThreadPoolExecutor::new(2).unwrap();
            let gate = Gate::default();
            let g = gate.clone();
            let first = pool
                .spawn(move || {
                    g.wait();
                    1
                })
                .unwrap();
            let own = pool.clone();
            first.add_done_callback(move |_| match form {
                "blocking" => own.shutdown(Queued::Run),
                "async" => futures::executor::block_on(own.shutdown_async(Queued::Run)),
                _ => own.shutdown_after(|_| ()),
            });
            // The other worker waits for `first`'s outcome, published after the callback returns.
            let mut second = pool
                .spawn(move || {
                    let mut first = first;
                    first.result(LONG).is_ok()
                })
                .unwrap();
            gate.open();
            let waited = second.result(LONG).unwrap();
            let refused = matches!(pool.spawn(|| 0), Err(Error::Shutdown));
            pool.shutdown(Queued::Run);
            (waited, refused, pool.metrics().workers)
        })
        .join();
        assert_eq!(
            outcome,
            (true, true, 0),
            "{form}: (the waiting task saw the outcome, the pool was closed, no worker left)"
        );
    }
}
