//! Attacks on the thread pool's edges: the scoped pool against a broken pool and panics, an
//! initializer that fails on the second worker only, shutdowns awaited from several tasks, a cancelling
//! shutdown with submitters waiting for room, tokens observed after a cancel or a time limit, the
//! cancel-on-drop guard, and code generic over `Executor` run on both pools.
//!
//! Every wait that a bug would turn into a hang is bounded by [`common::LONG`], so the test fails
//! instead of hanging.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::threads::hold;
use common::{within, LONG};
use concurrent_futures::{
    Error, Executor, MapOptions, PoolFuture, ProcessPoolExecutor, Queued, ThreadPoolExecutor,
};

// ---------------------------------------------------------------------------------------------------
// The scoped pool

#[test]
fn a_scope_on_a_pool_whose_initializer_fails_returns_with_every_task_failed() {
    let pool = ThreadPoolExecutor::builder()
        .max_workers(2)
        .initializer(|| Err("no".to_string()))
        .build()
        .unwrap();
    let mut data = [0u32; 4];
    let outcomes = within("the call", move || {
        let outcomes: Vec<Result<(), Error>> = pool.scope(|s| {
            let handles: Vec<_> = data.iter_mut().map(|x| s.spawn(move || *x += 1)).collect();
            handles
                .into_iter()
                .map(|h| h.and_then(|h| h.join()))
                .collect()
        });
        (outcomes, data)
    });
    let (outcomes, data) = outcomes;
    assert_eq!(data, [0; 4], "no task ran");
    assert!(outcomes
        .iter()
        .all(|o| matches!(o, Err(Error::BrokenThreadPool(_)))));
}

#[test]
fn a_panic_in_one_scoped_task_leaves_its_siblings_to_finish_and_propagates_once() {
    let pool = ThreadPoolExecutor::new(2).unwrap();
    let count = AtomicUsize::new(0);
    let caught = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        pool.scope(|s| {
            for i in 0..16 {
                let count = &count;
                s.spawn(move || {
                    if i == 5 {
                        panic!("task five");
                    }
                    count.fetch_add(1, Ordering::SeqCst);
                })
                .unwrap();
            }
        })
    }));
    let payload = caught.expect_err("the task's panic propagates");
    // The task's own payload, not a copy of its message.
    assert_eq!(payload.downcast_ref::<&str>(), Some(&"task five"));
    assert_eq!(count.load(Ordering::SeqCst), 15);
    // The pool lives on.
    assert_eq!(pool.spawn(|| 1).unwrap().result(LONG).unwrap(), 1);
}

#[test]
fn a_scoped_task_spawning_as_the_body_ends_is_still_joined() {
    let pool = ThreadPoolExecutor::new(2).unwrap();
    let late = AtomicUsize::new(0);
    for _ in 0..200 {
        pool.scope(|s| {
            let late = &late;
            s.spawn(move || {
                // Races the body's return: the scope's end must still wait for this one.
                s.spawn(move || late.fetch_add(1, Ordering::SeqCst))
                    .unwrap();
            })
            .unwrap();
        });
    }
    assert_eq!(late.load(Ordering::SeqCst), 200);
}

#[test]
fn a_scope_whose_pool_is_shut_down_with_cancel_from_a_task_ends() {
    let pool = ThreadPoolExecutor::new(1).unwrap();
    let ran = AtomicUsize::new(0);
    let p = pool.clone();
    within("the call", move || {
        let outcome: Vec<Result<usize, Error>> = p.scope(|s| {
            let ran = &ran;
            let p2 = p.clone();
            let first = s
                .spawn(move || {
                    p2.shutdown_nowait(Queued::Cancel);
                    ran.fetch_add(1, Ordering::SeqCst)
                })
                .unwrap();
            let rest: Vec<_> = (0..4)
                .map(|_| s.spawn(move || ran.fetch_add(1, Ordering::SeqCst)))
                .collect();
            std::iter::once(first.join())
                .chain(rest.into_iter().map(|h| h.and_then(|h| h.join())))
                .collect()
        });
        assert!(matches!(outcome[0], Ok(0)));
        for o in &outcome[1..] {
            assert!(
                matches!(o, Err(Error::Cancelled) | Err(Error::Shutdown) | Ok(_)),
                "{o:?}"
            );
        }
    });
    drop(pool);
}

// ---------------------------------------------------------------------------------------------------
// Initializer, keep-alive

#[test]
fn an_initializer_failing_on_the_second_worker_only_breaks_the_pool() {
    let calls = Arc::new(AtomicUsize::new(0));
    let c = calls.clone();
    let pool = ThreadPoolExecutor::builder()
        .max_workers(2)
        .initializer(move || match c.fetch_add(1, Ordering::SeqCst) {
            0 => Ok(()),
            _ => Err("second worker".to_string()),
        })
        .build()
        .unwrap();
    let (release, mut busy) = hold(&pool);
    // The first worker is busy: this submit starts the second, whose initializer fails.
    let mut second = pool.spawn(|| 2).unwrap();
    assert!(matches!(
        second.result(LONG),
        Err(Error::BrokenThreadPool(m)) if m.contains("second worker")
    ));
    assert!(matches!(
        pool.spawn(|| 3).map(drop),
        Err(Error::BrokenThreadPool(_))
    ));
    // The task already running on the first worker finishes normally.
    release.send(()).unwrap();
    busy.result(LONG).unwrap();
    within("the call", move || pool.shutdown(Queued::Run));
    assert_eq!(calls.load(Ordering::SeqCst), 2);
}

#[test]
fn submits_racing_keep_alive_retirement_all_run() {
    let pool = ThreadPoolExecutor::builder()
        .max_workers(3)
        .keep_alive(Duration::from_micros(50))
        .build()
        .unwrap();
    for i in 0..2000u32 {
        let mut f = pool.submit(|n: u32| n + 1, i).unwrap();
        assert_eq!(f.result(LONG).unwrap(), i + 1);
        if i % 7 == 0 {
            // Give the workers a chance to retire in between.
            std::thread::yield_now();
        }
    }
    within("the call", move || pool.shutdown(Queued::Run));
}

// ---------------------------------------------------------------------------------------------------
// Shutdown

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_async_shutdown_awaited_from_two_tasks_resolves_both() {
    let pool = ThreadPoolExecutor::new(2).unwrap();
    let (release, _busy) = hold(&pool);
    let (a, b) = (pool.clone(), pool.clone());
    let first = tokio::spawn(async move { a.shutdown_async(Queued::Run).await });
    let second = tokio::spawn(async move { b.shutdown_async(Queued::Cancel).await });
    tokio::task::yield_now().await;
    assert!(!first.is_finished() && !second.is_finished());
    release.send(()).unwrap();
    tokio::time::timeout(LONG, async {
        first.await.unwrap();
        second.await.unwrap();
    })
    .await
    .expect("an awaited shutdown never resolved");
    // A third, after every worker left, resolves at once.
    tokio::time::timeout(LONG, pool.shutdown_async(Queued::Run))
        .await
        .unwrap();
    assert_eq!(pool.metrics().workers, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancelling_shutdown_ends_queued_tasks_and_waiting_submitters() {
    let pool = ThreadPoolExecutor::builder()
        .max_workers(1)
        .queue_capacity(1)
        .build()
        .unwrap();
    let (release, _busy) = hold(&pool);
    let queued = pool.spawn(|| 1).unwrap();
    // One async submitter and one blocked sync submitter, both waiting for room.
    let p = pool.clone();
    let waiting_async = tokio::spawn(async move { p.spawn_async(|| 2).await.map(drop) });
    let p = pool.clone();
    let waiting_sync = std::thread::spawn(move || p.spawn(|| 3).map(drop));
    // Neither wait can be observed from here; most runs reach the shutdown with both waiting, and
    // one that is not yet in must get the same answer from the closed pool.
    tokio::task::yield_now().await;
    assert!(
        !waiting_sync.is_finished(),
        "the queue is full: it cannot have got in"
    );
    pool.shutdown_nowait(Queued::Cancel);
    assert!(matches!(
        tokio::time::timeout(LONG, queued).await.unwrap(),
        Err(Error::Cancelled)
    ));
    let a = tokio::time::timeout(LONG, waiting_async)
        .await
        .unwrap()
        .unwrap();
    assert!(matches!(a, Err(Error::Shutdown)), "{a:?}");
    let s = waiting_sync.join().unwrap();
    assert!(matches!(s, Err(Error::Shutdown)), "{s:?}");
    release.send(()).unwrap();
}

// ---------------------------------------------------------------------------------------------------
// Tokens, time limits, cancel on drop

#[test]
fn an_interrupted_task_that_ignores_its_token_keeps_its_value() {
    let pool = ThreadPoolExecutor::new(1).unwrap();
    let (started_tx, started) = mpsc::channel();
    let (go_tx, go) = mpsc::channel::<()>();
    let mut f = pool
        .spawn_cancellable(move |token| {
            started_tx.send(()).unwrap();
            go.recv().unwrap();
            Ok(token.is_cancelled())
        })
        .unwrap();
    started.recv_timeout(LONG).unwrap();
    assert!(!f.cancel(), "running: cancel is too late");
    assert!(
        f.interrupt(),
        "running with a token: the interrupt is delivered"
    );
    assert!(!f.cancelled());
    go_tx.send(()).unwrap();
    assert!(f.result(LONG).unwrap(), "the task saw its token fired");
    // The next task on the same worker gets a fresh token.
    let mut g = pool
        .spawn_cancellable(|token| Ok(token.is_cancelled()))
        .unwrap();
    assert!(!g.result(LONG).unwrap());
}

#[test]
fn an_interrupt_before_the_task_starts_cancels_it_and_the_closure_never_runs() {
    let pool = ThreadPoolExecutor::new(1).unwrap();
    let (release, _busy) = hold(&pool);
    let ran = Arc::new(AtomicUsize::new(0));
    let r = ran.clone();
    let mut f = pool
        .spawn_cancellable(move |_| {
            r.fetch_add(1, Ordering::SeqCst);
            Ok(())
        })
        .unwrap();
    assert!(f.interrupt());
    assert!(f.cancelled());
    assert!(matches!(f.result(LONG), Err(Error::Cancelled)));
    release.send(()).unwrap();
    within("the call", move || pool.shutdown(Queued::Run));
    assert_eq!(ran.load(Ordering::SeqCst), 0);
}

#[test]
fn a_time_limit_on_a_task_that_never_checks_does_not_touch_its_value() {
    let pool = ThreadPoolExecutor::new(1).unwrap();
    let mut f = pool
        .spawn_with_time_limit(Duration::from_millis(1), |_token| {
            // Busy past the limit without ever looking at the token.
            let until = Instant::now() + Duration::from_millis(20);
            while Instant::now() < until {
                std::hint::spin_loop();
            }
            Ok(7u8)
        })
        .unwrap();
    assert_eq!(f.result(LONG).unwrap(), 7);
    // Its limit does not leak into the next token-carrying task on that worker.
    let mut g = pool
        .spawn_cancellable(|token| {
            let until = Instant::now() + Duration::from_millis(20);
            while Instant::now() < until {
                std::hint::spin_loop();
            }
            Ok(token.is_cancelled())
        })
        .unwrap();
    assert!(!g.result(LONG).unwrap());
}

#[test]
fn the_cancel_on_drop_guard_cancels_queued_and_detaches_running() {
    let pool = ThreadPoolExecutor::new(1).unwrap();
    let ran = Arc::new(AtomicUsize::new(0));
    let (release, gate) = mpsc::channel::<()>();
    let (started_tx, started) = mpsc::channel();
    let r = ran.clone();
    let running = pool
        .spawn(move || {
            started_tx.send(()).unwrap();
            let _ = gate.recv();
            r.fetch_add(1, Ordering::SeqCst);
        })
        .unwrap()
        .cancel_on_drop();
    started.recv_timeout(LONG).unwrap();
    let r = ran.clone();
    let queued = pool
        .spawn(move || {
            r.fetch_add(10, Ordering::SeqCst);
        })
        .unwrap()
        .cancel_on_drop();
    drop(queued);
    drop(running);
    release.send(()).unwrap();
    within("the call", move || {
        pool.shutdown(Queued::Run);
        pool
    });
    assert_eq!(
        ran.load(Ordering::SeqCst),
        1,
        "the running task ran, the queued one not"
    );
}

#[test]
fn a_cancel_on_drop_guard_in_wait_comes_back_and_still_guards() {
    let pool = ThreadPoolExecutor::new(1).unwrap();
    let (release, _busy) = hold(&pool);
    let ran = Arc::new(AtomicUsize::new(0));
    let r = ran.clone();
    let guard = pool
        .spawn(move || {
            r.fetch_add(1, Ordering::SeqCst);
        })
        .unwrap()
        .cancel_on_drop();
    let done = concurrent_futures::wait([guard])
        .timeout(Duration::ZERO)
        .blocking();
    assert_eq!(done.not_done.len(), 1);
    drop(done);
    release.send(()).unwrap();
    within("the call", move || pool.shutdown(Queued::Run));
    assert_eq!(ran.load(Ordering::SeqCst), 0);
}

// ---------------------------------------------------------------------------------------------------
// Code generic over the pool

fn halve(n: u64) -> Result<u64, String> {
    if n % 2 == 1 {
        Err(format!("{n} is odd"))
    } else {
        Ok(n / 2)
    }
}

fn double(n: u64) -> u64 {
    n * 2
}

/// What a user's generic helper does: a map with every option, a fallible submit, a try_submit and
/// an async submit, then a cancelling shutdown.
fn generic_exercise(pool: &impl Executor) -> Vec<String> {
    let mut log = Vec::new();
    let mapped: Vec<u64> = pool
        .map_with(
            double,
            0..10,
            MapOptions::new().chunksize(3).buffer(2).timeout(LONG),
        )
        .unwrap()
        .into_iter()
        .collect::<Result<_, _>>()
        .unwrap();
    log.push(format!("{mapped:?}"));
    let mut odd = pool.submit_fallible(halve, 3).unwrap();
    log.push(format!("{:?}", odd.result(LONG).map_err(|e| e.to_string())));
    let mut even = pool.try_submit(double, 21).unwrap();
    log.push(format!("{:?}", even.result(LONG)));
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap();
    let mut asynced = rt.block_on(pool.submit_async(double, 5)).unwrap();
    log.push(format!("{:?}", asynced.result(LONG)));
    rt.block_on(pool.shutdown_async(Queued::Cancel));
    log.push(format!("{:?}", pool.submit(double, 1).map(drop)));
    log.push(format!("{:?}", pool.map(double, [1]).map(drop)));
    log
}

#[test]
fn generic_code_behaves_the_same_on_both_pools() {
    let threads = generic_exercise(&ThreadPoolExecutor::new(2).unwrap());
    let processes = generic_exercise(&ProcessPoolExecutor::new(2).unwrap());
    assert_eq!(threads, processes);
    assert_eq!(threads[0], "[0, 2, 4, 6, 8, 10, 12, 14, 16, 18]");
}

#[test]
fn a_debug_of_a_pool_from_many_threads_while_it_works_does_not_deadlock() {
    let pool = ThreadPoolExecutor::new(2).unwrap();
    let seen = Arc::new(Mutex::new(0usize));
    let threads: Vec<_> = (0..4)
        .map(|_| {
            let pool = pool.clone();
            let seen = seen.clone();
            std::thread::spawn(move || {
                for _ in 0..200 {
                    let p = pool.clone();
                    let f = pool.spawn(move || format!("{p:?}").len()).unwrap();
                    let _ = format!("{pool:?} {f:?}");
                    *seen.lock().unwrap() += 1;
                }
            })
        })
        .collect();
    within("the call", move || {
        threads.into_iter().for_each(|t| t.join().unwrap())
    });
    assert_eq!(*seen.lock().unwrap(), 800);
}

// ---------------------------------------------------------------------------------------------------
// A retired worker and the waiting shutdown

/// What a worker's thread-local holds, set up by the initializer: its destructor (run as the thread
/// exits) runs the hook the test left in its slot, once, on the first thread to exit.
struct OnExit(&'static Mutex<Option<Hook>>);

type Hook = Box<dyn FnOnce() + Send>;

impl Drop for OnExit {
    fn drop(&mut self) {
        let hook = self.0.lock().unwrap().take();
        if let Some(hook) = hook {
            hook();
        }
    }
}

thread_local! {
    static ON_EXIT_GUARD: std::cell::RefCell<Option<OnExit>> = const { std::cell::RefCell::new(None) };
}

/// A pool of `workers` whose idle workers retire at once, each thread running `slot`'s hook (on the
/// first to exit) as it destroys its thread-locals. Each test has a slot of its own: tests run
/// side by side.
fn retiring_pool(workers: usize, slot: &'static Mutex<Option<Hook>>) -> ThreadPoolExecutor {
    ThreadPoolExecutor::builder()
        .max_workers(workers)
        .keep_alive(Duration::from_millis(1))
        .initializer(move || ON_EXIT_GUARD.with(|g| *g.borrow_mut() = Some(OnExit(slot))))
        .build()
        .unwrap()
}

/// A hook for [`retiring_pool`]: says the thread is exiting, waits for the returned sender (sent to or
/// dropped), then counts itself finished in `finished`.
fn slow_exit(
    slot: &'static Mutex<Option<Hook>>,
    finished: &'static AtomicUsize,
) -> (mpsc::Receiver<()>, mpsc::Sender<()>) {
    let (exiting_tx, exiting) = mpsc::channel();
    let (open, gate) = mpsc::channel::<()>();
    *slot.lock().unwrap() = Some(Box::new(move || {
        let _ = exiting_tx.send(());
        let _ = gate.recv_timeout(LONG);
        finished.fetch_add(1, Ordering::SeqCst);
    }));
    (exiting, open)
}

/// Shuts `pool` down from another thread and gives what `observe` sees once the shutdown returned.
/// A shutdown that waits cannot return before `release` lets the thread it waits for go; one that
/// returns meanwhile did not wait: give it a moment to show that, then release either way.
fn shutdown_then<T: Send + 'static>(
    pool: &ThreadPoolExecutor,
    observe: impl FnOnce() -> T + Send + 'static,
    release: impl FnOnce(),
) -> T {
    let (done_tx, done) = mpsc::channel();
    let p = pool.clone();
    std::thread::spawn(move || {
        p.shutdown(Queued::Run);
        done_tx.send(observe()).unwrap();
    });
    let early = done.recv_timeout(Duration::from_millis(200)).ok();
    release();
    early.unwrap_or_else(|| done.recv_timeout(LONG).unwrap())
}

/// Waits (up to [`LONG`]) until `pool` counts no worker: every one has retired.
fn wait_all_retired(pool: &ThreadPoolExecutor) {
    let deadline = Instant::now() + LONG;
    while pool.metrics().workers > 0 {
        assert!(Instant::now() < deadline, "a worker never retired");
        std::thread::yield_now();
    }
}

// `shutdown` "waits until every worker thread has exited": a worker that retired after its keep-alive
// is still exiting (its thread-locals are being destroyed: a connection closed, a file flushed) when
// the shutdown comes. The shutdown must wait for that thread as it does for the others.
#[test]
fn a_waiting_shutdown_waits_for_a_retired_worker_still_exiting() {
    static SLOT: Mutex<Option<Hook>> = Mutex::new(None);
    static FINISHED: AtomicUsize = AtomicUsize::new(0);
    let (exiting, open) = slow_exit(&SLOT, &FINISHED);
    let pool = retiring_pool(1, &SLOT);
    assert_eq!(pool.spawn(|| 1).unwrap().result(LONG).unwrap(), 1);
    // The worker retired and is destroying its thread-locals, held there by the gate.
    exiting.recv_timeout(LONG).unwrap();
    let finished = shutdown_then(
        &pool,
        || FINISHED.load(Ordering::SeqCst),
        || open.send(()).unwrap(),
    );
    assert_eq!(
        finished, 1,
        "shutdown returned while a retired worker was still exiting"
    );
}

// ---------------------------------------------------------------------------------------------------
// A caller's token

#[test]
fn a_callers_token_cancelled_cancels_every_queued_task_before_cancel_returns() {
    let pool = ThreadPoolExecutor::new(1).unwrap();
    let (release, _busy) = hold(&pool);
    let request = tokio_util::sync::CancellationToken::new();
    let ran = Arc::new(AtomicUsize::new(0));
    let futures: Vec<_> = (0..50)
        .map(|_| {
            let ran = ran.clone();
            pool.spawn_cancellable_with(request.clone(), move |_| {
                ran.fetch_add(1, Ordering::SeqCst);
                Ok(())
            })
            .unwrap()
        })
        .collect();
    request.cancel();
    assert!(futures.iter().all(PoolFuture::cancelled));
    release.send(()).unwrap();
    within("the call", move || pool.shutdown(Queued::Run));
    assert_eq!(ran.load(Ordering::SeqCst), 0);
}

// A token already cancelled when the task is submitted: the task never runs, whether or not a worker
// is idle and quick to take it. (A submit that queued the task before tying it to the token would
// let an idle worker start it in between.)
#[test]
fn a_task_submitted_with_a_cancelled_token_never_runs() {
    let pool = ThreadPoolExecutor::new(2).unwrap();
    let request = tokio_util::sync::CancellationToken::new();
    request.cancel();
    let ran = Arc::new(AtomicUsize::new(0));
    // Back-to-back submits keep the workers awake at the queue, taking each task as soon as it is in.
    let futures: Vec<_> = (0..5000)
        .map(|i| {
            let r = ran.clone();
            if i % 2 == 0 {
                pool.spawn(|| ()).map(drop).unwrap();
            }
            pool.spawn_cancellable_with(request.clone(), move |_| {
                r.fetch_add(1, Ordering::SeqCst);
                Ok(())
            })
            .unwrap()
        })
        .collect();
    for mut f in futures {
        assert!(matches!(f.result(LONG), Err(Error::Cancelled)));
    }
    assert_eq!(ran.load(Ordering::SeqCst), 0, "tasks ran despite the token");
}

// A worker retired after its keep-alive is no longer one of the pool's workers, though it has yet
// to exit. Its thread-locals' destructors shutting the pool down from there must wait for the
// workers still busy, as any thread other than a worker does. Taken for a worker, it would wait for
// the other workers not themselves in a shutdown to leave, counting itself as one in a shutdown:
// with the busy worker the only one counted, it would return at once.
#[test]
fn a_retired_worker_shutting_its_pool_down_from_a_thread_local_destructor_waits_for_the_busy_ones()
{
    static SLOT: Mutex<Option<Hook>> = Mutex::new(None);
    let pool = retiring_pool(2, &SLOT);
    let (release, busy) = hold(&pool);
    let (exiting_tx, exiting) = mpsc::channel();
    let (done_tx, done) = mpsc::channel();
    let p = pool.clone();
    *SLOT.lock().unwrap() = Some(Box::new(move || {
        exiting_tx.send(()).unwrap();
        p.shutdown(Queued::Run);
        done_tx.send(busy.done()).unwrap();
    }));
    // The other worker runs this, then retires; the busy one stays held.
    assert_eq!(pool.spawn(|| 1).unwrap().result(LONG).unwrap(), 1);
    exiting.recv_timeout(LONG).unwrap();
    // A shutdown that waits cannot return before the busy task is released. One that returns
    // meanwhile did not wait for it; give it a moment to show that, then release the task either way.
    let early = done.recv_timeout(Duration::from_millis(200)).ok();
    release.send(()).unwrap();
    let busy_done = early.unwrap_or_else(|| done.recv_timeout(LONG).unwrap());
    assert!(
        busy_done,
        "a shutdown from a retired worker's destructor returned while a worker was busy"
    );
}

// A retired worker still destroying its thread-locals has returned from its main function, which is
// all `JoinHandle::is_finished` tells. Another worker retiring meanwhile must not drop (detach) its
// handle on that ground: a waiting shutdown that comes next must still wait for it to exit.
#[test]
fn a_waiting_shutdown_waits_for_a_retired_worker_still_exiting_when_another_retired_since() {
    static SLOT: Mutex<Option<Hook>> = Mutex::new(None);
    static FINISHED: AtomicUsize = AtomicUsize::new(0);
    let (exiting, open) = slow_exit(&SLOT, &FINISHED);
    let pool = retiring_pool(2, &SLOT);
    let (release, _busy) = hold(&pool);
    // The other worker runs this, retires, and stays in its thread-locals' destructor.
    assert_eq!(pool.spawn(|| 1).unwrap().result(LONG).unwrap(), 1);
    exiting.recv_timeout(LONG).unwrap();
    // Now the held worker retires too: the pool counts no worker once it has.
    release.send(()).unwrap();
    wait_all_retired(&pool);
    let finished = shutdown_then(
        &pool,
        || FINISHED.load(Ordering::SeqCst),
        || open.send(()).unwrap(),
    );
    assert_eq!(
        finished, 1,
        "shutdown returned while a retired worker was still exiting"
    );
}

// The first retired thread, still in its thread-locals' destructors, is taken over (and joined) by
// the second as it retires. The first one's destructor then shuts the pool down and waits: joining
// the second retired thread from there would leave the two waiting for each other.
#[test]
fn a_retired_worker_taken_over_by_another_shuts_its_pool_down_from_a_destructor() {
    static SLOT: Mutex<Option<Hook>> = Mutex::new(None);
    let pool = retiring_pool(2, &SLOT);
    let (release, _busy) = hold(&pool);
    let (exiting_tx, exiting) = mpsc::channel();
    let (open, gate) = mpsc::channel::<()>();
    let (done_tx, done) = mpsc::channel();
    let p = pool.clone();
    *SLOT.lock().unwrap() = Some(Box::new(move || {
        exiting_tx.send(()).unwrap();
        let _ = gate.recv_timeout(LONG);
        p.shutdown(Queued::Run);
        done_tx.send(()).unwrap();
    }));
    // The other worker runs this, retires, and waits in its thread-locals' destructor.
    assert_eq!(pool.spawn(|| 1).unwrap().result(LONG).unwrap(), 1);
    exiting.recv_timeout(LONG).unwrap();
    release.send(()).unwrap();
    wait_all_retired(&pool);
    open.send(()).unwrap();
    done.recv_timeout(LONG).expect(
        "a retired worker's shutdown and the retired worker joining it wait for each other",
    );
}
