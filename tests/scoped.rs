//! `ThreadPoolExecutor::scope`: tasks that borrow from the caller's stack, joined when the scope ends,
//! their panics propagated; helping (a scope waiting on a worker runs its own queued tasks) so that a
//! scope inside a task of a one-worker pool does not deadlock.

mod common;

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Barrier};

use common::LONG;
use concurrent_futures::{Error, Queued, Scope, ThreadPoolExecutor};

/// Runs `f` on its own thread and gives its value, failing the test if it takes longer than `LONG`
/// (a deadlock is the failure these tests look for).
fn bounded<R: Send + 'static>(f: impl FnOnce() -> R + Send + 'static) -> R {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let outcome = catch_unwind(AssertUnwindSafe(f));
        let _ = tx.send(outcome);
    });
    match rx.recv_timeout(LONG) {
        Ok(Ok(value)) => value,
        Ok(Err(panic)) => std::panic::resume_unwind(panic),
        Err(_) => panic!("hung: still running after {LONG:?}"),
    }
}

#[test]
fn tasks_mutate_a_borrowed_vec_in_chunks() {
    bounded(|| {
        let pool = ThreadPoolExecutor::new(4).unwrap();
        let mut data: Vec<u64> = (0..10_000).collect();
        let factor = 3; // borrowed by every task
        pool.scope(|s| {
            for chunk in data.chunks_mut(512) {
                s.spawn(|| chunk.iter_mut().for_each(|x| *x *= factor))
                    .unwrap();
            }
        });
        // The scope has ended: every task has run, and `data` is ours again.
        assert!(data.iter().enumerate().all(|(i, &x)| x == 3 * i as u64));
    });
}

#[test]
fn join_gives_values_that_borrow_from_the_scope() {
    bounded(|| {
        let pool = ThreadPoolExecutor::new(2).unwrap();
        let text = String::from("alpha beta gamma");
        let words: Vec<&str> = pool.scope(|s| {
            let h = s.spawn(|| text.split(' ').collect::<Vec<&str>>()).unwrap();
            h.join().unwrap()
        });
        assert_eq!(words, ["alpha", "beta", "gamma"]);
    });
}

#[test]
fn a_task_panic_propagates_after_every_task_ended() {
    bounded(|| {
        let pool = ThreadPoolExecutor::new(2).unwrap();
        let finished = AtomicUsize::new(0);
        let (release, released) = mpsc::channel::<()>();
        let outcome = catch_unwind(AssertUnwindSafe(|| {
            pool.scope(|s| {
                s.spawn(|| panic!("task failed")).unwrap();
                // Still running when the body returns: released by the body's last act.
                let finished = &finished;
                s.spawn(move || {
                    released.recv_timeout(LONG).unwrap();
                    finished.fetch_add(1, Ordering::SeqCst);
                })
                .unwrap();
                release.send(()).unwrap();
            })
        }));
        let payload = outcome.expect_err("the task's panic propagates");
        assert_eq!(payload.downcast_ref::<&str>(), Some(&"task failed"));
        assert_eq!(
            finished.load(Ordering::SeqCst),
            1,
            "the scope ended before its tasks"
        );
        // The pool lives on.
        assert_eq!(pool.spawn(|| 5).unwrap().result(LONG).unwrap(), 5);
    });
}

#[test]
fn a_joined_panic_is_handed_over_not_propagated() {
    bounded(|| {
        let pool = ThreadPoolExecutor::new(2).unwrap();
        let outcome = pool.scope(|s| s.spawn(|| -> u8 { panic!("caught") }).unwrap().join());
        assert!(matches!(outcome, Err(Error::Panicked(m)) if m == "caught"));
        assert_eq!(pool.metrics().panicked, 1);
    });
}

#[test]
fn a_body_panic_propagates_after_every_task_ended() {
    bounded(|| {
        let pool = ThreadPoolExecutor::new(2).unwrap();
        let finished = AtomicUsize::new(0);
        let (release, released) = mpsc::channel::<()>();
        let outcome = catch_unwind(AssertUnwindSafe(|| {
            pool.scope(|s| {
                // A task panicking too: the body's panic wins, as in std.
                s.spawn(|| panic!("task failed")).unwrap();
                let finished = &finished;
                s.spawn(move || {
                    released.recv_timeout(LONG).unwrap();
                    finished.fetch_add(1, Ordering::SeqCst);
                })
                .unwrap();
                release.send(()).unwrap();
                panic!("body failed");
            })
        }));
        let payload = outcome.expect_err("the body's panic propagates");
        assert_eq!(payload.downcast_ref::<&str>(), Some(&"body failed"));
        assert_eq!(finished.load(Ordering::SeqCst), 1);
    });
}

#[test]
fn a_scope_on_a_shut_down_pool_fails_to_spawn() {
    bounded(|| {
        let pool = ThreadPoolExecutor::new(1).unwrap();
        pool.shutdown(Queued::Run);
        let spawned = pool.scope(|s| s.spawn(|| 1).map(|h| h.join()));
        assert!(matches!(spawned, Err(Error::Shutdown)));
    });
}

#[test]
fn tasks_cancelled_by_shutdown_count_as_joined() {
    bounded(|| {
        let pool = ThreadPoolExecutor::new(1).unwrap();
        let ran = AtomicUsize::new(0);
        let (started_tx, started) = mpsc::channel();
        let (release, released) = mpsc::channel::<()>();
        let outcomes = pool.scope(|s| {
            let busy = s
                .spawn(move || {
                    started_tx.send(()).unwrap();
                    released.recv_timeout(LONG).unwrap();
                })
                .unwrap();
            started.recv_timeout(LONG).unwrap();
            let queued: Vec<_> = (0..3)
                .map(|_| s.spawn(|| ran.fetch_add(1, Ordering::SeqCst)).unwrap())
                .collect();
            let dropped = s.spawn(|| ran.fetch_add(1, Ordering::SeqCst)).unwrap();
            drop(dropped); // its handle gone: the scope still joins it
            pool.shutdown_nowait(Queued::Cancel);
            release.send(()).unwrap();
            busy.join().unwrap();
            queued.into_iter().map(|h| h.join()).collect::<Vec<_>>()
        });
        assert!(outcomes.iter().all(|o| matches!(o, Err(Error::Cancelled))));
        assert_eq!(ran.load(Ordering::SeqCst), 0);
    });
}

#[test]
fn cancel_through_the_handle() {
    bounded(|| {
        let pool = ThreadPoolExecutor::new(1).unwrap();
        let (started_tx, started) = mpsc::channel();
        let (release, released) = mpsc::channel::<()>();
        let ran = AtomicUsize::new(0);
        pool.scope(|s| {
            let _busy = s.spawn(move || {
                started_tx.send(()).unwrap();
                released.recv_timeout(LONG).unwrap();
            });
            started.recv_timeout(LONG).unwrap();
            let queued = s.spawn(|| ran.fetch_add(1, Ordering::SeqCst)).unwrap();
            assert!(queued.cancel());
            assert!(queued.is_finished());
            assert!(matches!(queued.join(), Err(Error::Cancelled)));
            release.send(()).unwrap();
        });
        assert_eq!(ran.load(Ordering::SeqCst), 0);
    });
}

/// The worker's task opens a scope and waits at its end: with one worker, only the waiting scope can
/// run its own tasks.
#[test]
fn a_scope_inside_a_task_of_a_one_worker_pool_helps() {
    bounded(|| {
        let pool = ThreadPoolExecutor::new(1).unwrap();
        let inner = pool.clone();
        let sum = pool
            .spawn(move || {
                let data = vec![1u64; 100];
                inner.scope(|s| {
                    let handles: Vec<_> = data
                        .chunks(10)
                        .map(|c| s.spawn(move || c.iter().sum::<u64>()).unwrap())
                        .collect();
                    // Joining on the worker runs the queued task here.
                    let first = handles.into_iter().next().unwrap().join().unwrap();
                    first + 90 // the others are joined (run here) at the scope's end
                })
            })
            .unwrap()
            .result(LONG)
            .unwrap();
        assert_eq!(sum, 100);
    });
}

#[test]
fn nested_scopes_on_one_worker() {
    bounded(|| {
        let pool = ThreadPoolExecutor::new(1).unwrap();
        let mut grid = vec![vec![0u32; 8]; 8];
        pool.scope(|s| {
            for (i, row) in grid.iter_mut().enumerate() {
                let pool = &pool;
                s.spawn(move || {
                    // A scope inside a scoped task: it runs on the pool's only worker, and helps.
                    pool.scope(|inner| {
                        for (j, cell) in row.iter_mut().enumerate() {
                            inner.spawn(move || *cell = (i * 8 + j) as u32).unwrap();
                        }
                    });
                })
                .unwrap();
            }
        });
        let flat: Vec<u32> = grid.into_iter().flatten().collect();
        assert_eq!(flat, (0..64).collect::<Vec<u32>>());
    });
}

/// Tasks spawn more tasks into the same scope (borrowing the `Scope`); the scope waits for them all.
fn spawn_tree<'scope>(s: &'scope Scope<'scope, '_>, count: &'scope AtomicUsize, depth: u32) {
    count.fetch_add(1, Ordering::Relaxed);
    if depth > 0 {
        for _ in 0..2 {
            s.spawn(move || spawn_tree(s, count, depth - 1)).unwrap();
        }
    }
}

#[test]
fn tasks_spawning_into_their_own_scope_are_all_joined() {
    bounded(|| {
        for workers in [1, 2, 3] {
            let pool = ThreadPoolExecutor::new(workers).unwrap();
            let count = AtomicUsize::new(0);
            pool.scope(|s| spawn_tree(s, &count, 6));
            assert_eq!(count.load(Ordering::Relaxed), (1 << 7) - 1);
        }
    });
}

/// The join count under contention: many short tasks on several workers, each scope checked to have
/// seen every task end before it returned (the borrowed counter is read right after), many times.
#[test]
fn stress_join_counting() {
    bounded(|| {
        let pool = ThreadPoolExecutor::new(4).unwrap();
        for round in 0..300 {
            let tasks = 1 + round % 40;
            let count = AtomicUsize::new(0);
            let start = Barrier::new(2);
            pool.scope(|s| {
                // One task waits for the body to finish spawning, so the end of the scope races the
                // ends of tasks, not a finished batch.
                s.spawn(|| {
                    start.wait();
                    count.fetch_add(1, Ordering::SeqCst);
                })
                .unwrap();
                for _ in 1..tasks {
                    s.spawn(|| count.fetch_add(1, Ordering::SeqCst)).unwrap();
                }
                start.wait();
            });
            assert_eq!(count.load(Ordering::SeqCst), tasks, "round {round}");
        }
    });
}

/// A scope on a worker, with the bounded queue full, runs the task it cannot queue itself instead of
/// waiting for room that only it could make.
#[test]
fn a_full_queue_on_a_worker_runs_the_task_in_place() {
    bounded(|| {
        let pool = ThreadPoolExecutor::builder()
            .max_workers(1)
            .queue_capacity(1)
            .build()
            .unwrap();
        let inner = pool.clone();
        let total = pool
            .spawn(move || {
                let values: Vec<u64> = (1..=10).collect();
                inner.scope(|s| {
                    let handles: Vec<_> = values
                        .iter()
                        .map(|v| s.spawn(move || *v * 2).unwrap())
                        .collect();
                    handles.into_iter().map(|h| h.join().unwrap()).sum::<u64>()
                })
            })
            .unwrap()
            .result(LONG)
            .unwrap();
        assert_eq!(total, 110);
    });
}

/// Opened from outside the pool, scoped tasks run on the pool's threads, not the caller's.
#[test]
fn tasks_run_on_the_pool_threads() {
    bounded(|| {
        let pool = ThreadPoolExecutor::builder()
            .max_workers(2)
            .thread_name_prefix("scoped")
            .build()
            .unwrap();
        let names = pool.scope(|s| {
            let hs: Vec<_> = (0..8)
                .map(|_| {
                    s.spawn(|| std::thread::current().name().unwrap_or("").to_owned())
                        .unwrap()
                })
                .collect();
            hs.into_iter()
                .map(|h| h.join().unwrap())
                .collect::<Vec<_>>()
        });
        assert!(names.iter().all(|n| n.starts_with("scoped")), "{names:?}");
        // The pool lives on.
        assert_eq!(pool.spawn(|| 2).unwrap().result(LONG).unwrap(), 2);
    });
}

/// A scope opened from outside the pool, whose task spawns into it on the pool's only worker with the
/// queue full: that spawn runs the task in place (as `Scope::spawn` says of any spawn on a worker),
/// rather than wait for room only that worker could make.
#[test]
fn a_task_spawning_into_an_outside_scope_with_the_queue_full_runs_it_in_place() {
    bounded(|| {
        let pool = ThreadPoolExecutor::builder()
            .max_workers(1)
            .queue_capacity(1)
            .build()
            .unwrap();
        let ran = AtomicUsize::new(0);
        pool.scope(|s| {
            s.spawn(|| {
                for _ in 0..3 {
                    s.spawn(|| ran.fetch_add(1, Ordering::SeqCst)).unwrap();
                }
            })
            .unwrap();
        });
        assert_eq!(ran.into_inner(), 3);
    });
}
