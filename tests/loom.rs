//! loom models of the races the concurrency core must decide correctly: the future state machine
//! (src/future/state.rs), blocking waits (src/future/park.rs), `wait`/`as_completed`/`CompletionSet`
//! (src/watch.rs, src/completion_set.rs), the lock bits in a future's id word (src/future/word.rs),
//! the thread pool's hand-off of tasks and wake-up credits (src/thread_pool/worker.rs, whose
//! threads are loom threads under `--cfg loom`), and a queued task's closure slot, which has no lock of
//! its own (src/thread_pool/task.rs; a loom `UnsafeCell` under `--cfg loom`), and a task's reference
//! counts (src/future/raw.rs), whose last drop reads the slot without the lock.
//!
//! Run with (a separate target dir keeps the normal build's artefacts intact):
//!
//! ```text
//! RUSTFLAGS="--cfg loom" CARGO_TARGET_DIR=target/loom cargo test --release --test loom
//! ```
//!
//! The two-thread models (one future; a one-worker pool and its caller) are explored exhaustively; the
//! three-thread `wait`, `as_completed` and two-worker pool models are bounded to 3 preemptions.
//! `LOOM_MAX_PREEMPTIONS` overrides both.
#![cfg(loom)]

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex as StdMutex};
use std::time::Duration;

use concurrent_futures::{
    as_completed, wait, CompletionSet, Error, LoomTask, LoomWake, LoomWordLock, PoolFuture,
    Promise, Queued, ReturnWhen, ThreadPoolExecutor,
};
use loom::future::block_on;
use loom::thread;

/// Runs `f` under loom, exploring every interleaving (unless `LOOM_MAX_PREEMPTIONS` sets a bound).
/// For the two-thread models of one future, which are small enough to check exhaustively.
fn model<F>(f: F)
where
    F: Fn() + Sync + Send + 'static,
{
    check(loom::model::Builder::new(), f);
}

/// Runs `f` under loom with at most 3 preemptions (unless `LOOM_MAX_PREEMPTIONS` says otherwise): for
/// the three-thread `wait`/`as_completed` models, whose full state space is too large to finish fast.
fn model_bounded<F>(f: F)
where
    F: Fn() + Sync + Send + 'static,
{
    let mut builder = loom::model::Builder::new();
    if builder.preemption_bound.is_none() {
        builder.preemption_bound = Some(3);
    }
    check(builder, f);
}

/// Reports how many interleavings were explored (shown with `--nocapture`).
fn check<F>(builder: loom::model::Builder, f: F)
where
    F: Fn() + Sync + Send + 'static,
{
    let runs = Arc::new(AtomicUsize::new(0));
    let counter = runs.clone();
    builder.check(move || {
        counter.fetch_add(1, Ordering::Relaxed);
        f();
    });
    let name = std::thread::current().name().unwrap_or("model").to_owned();
    eprintln!("{name}: {} interleavings", runs.load(Ordering::Relaxed));
}

/// What a done callback saw, in the order callbacks ran. A std mutex is fine here: nothing inside the
/// critical section is a loom operation, so loom never switches threads while it is held.
type Log = Arc<StdMutex<Vec<(u8, Result<u32, String>)>>>;

fn recorder(log: &Log, tag: u8) -> impl FnOnce(&Result<u32, Error>) + Send + 'static {
    let log = log.clone();
    move |outcome| {
        let seen = match outcome {
            Ok(v) => Ok(*v),
            Err(e) => Err(format!("{e:?}")),
        };
        log.lock().unwrap().push((tag, seen));
    }
}

fn entries(log: &Log) -> Vec<(u8, Result<u32, String>)> {
    log.lock().unwrap().clone()
}

// ---------------------------------------------------------------------------------------------------
// 1. cancel() vs set_running(): exactly one wins.

#[test]
fn cancel_vs_set_running() {
    model(|| {
        let (promise, mut fut) = Promise::<u32>::new();
        let worker = thread::spawn(move || {
            let started = promise.set_running();
            if started {
                promise
                    .set_result(7)
                    .expect("a running future accepts its result");
            } else {
                // Cancelled: the work must not run, and a result is refused.
                assert!(matches!(promise.set_result(7), Err(Error::InvalidState(_))));
            }
            started
            // the promise drops here: Abandoned is refused either way, the first outcome stays
        });
        let cancelled = fut.cancel();
        if cancelled {
            // The winner's view is immediate and stable.
            assert!(fut.cancelled() && fut.done());
        }
        let started = worker.join().unwrap();
        assert_ne!(cancelled, started, "exactly one of cancel/set_running wins");
        assert!(fut.done());
        assert_eq!(fut.cancelled(), cancelled);
        match fut.result(None) {
            Ok(v) => assert!(started && v == 7),
            Err(Error::Cancelled) => assert!(cancelled),
            Err(e) => panic!("unexpected outcome {e:?}"),
        }
    });
}

// ---------------------------------------------------------------------------------------------------
// 2. set_result on one thread vs the owner waiting on another: no lost wake-up.

#[test]
fn set_result_vs_await() {
    model(|| {
        let (promise, fut) = Promise::<String>::new();
        let producer = thread::spawn(move || {
            assert!(promise.set_running());
            promise.set_result("value".to_owned()).unwrap();
        });
        assert_eq!(block_on(fut).unwrap(), "value");
        producer.join().unwrap();
    });
}

#[test]
fn set_result_vs_blocking_result() {
    model(|| {
        let (promise, mut fut) = Promise::<u32>::new();
        let producer = thread::spawn(move || {
            promise.set_result(42).unwrap();
        });
        assert_eq!(fut.result(None).unwrap(), 42);
        // The value was moved out: asking again is InvalidState, not a hang.
        assert!(matches!(fut.result(None), Err(Error::InvalidState(_))));
        producer.join().unwrap();
    });
}

#[test]
fn abandoned_promise_vs_await() {
    model(|| {
        let (promise, fut) = Promise::<u32>::new();
        let producer = thread::spawn(move || drop(promise));
        assert!(matches!(block_on(fut), Err(Error::Abandoned)));
        producer.join().unwrap();
    });
}

#[test]
fn set_error_vs_blocking_exception_then_result() {
    model(|| {
        let (promise, mut fut) = Promise::<u32>::new();
        let producer = thread::spawn(move || {
            promise.set_error(Error::Interrupted).unwrap();
        });
        // exception() waits without taking; the error then stays to be read again by result().
        assert!(matches!(fut.exception(None), Ok(Some(Error::Interrupted))));
        assert!(matches!(fut.result(None), Err(Error::Interrupted)));
        producer.join().unwrap();
    });
}

#[test]
fn two_blocking_exception_waiters_vs_set_error() {
    // exception() takes &self, so several threads can block in it at once: each must be woken (they
    // once shared the owner's single waker slot and only the last registered was woken).
    model(|| {
        let (promise, fut) = Promise::<u32>::new();
        let fut = Arc::new(fut);
        let other = {
            let fut = fut.clone();
            thread::spawn(move || {
                assert!(matches!(fut.exception(None), Ok(Some(Error::Interrupted))))
            })
        };
        let producer = thread::spawn(move || promise.set_error(Error::Interrupted).unwrap());
        assert!(matches!(fut.exception(None), Ok(Some(Error::Interrupted))));
        other.join().unwrap();
        producer.join().unwrap();
    });
}

/// A waker whose clones are counted by the `Arc`'s strong count.
struct Counted;

impl std::task::Wake for Counted {
    fn wake(self: Arc<Self>) {}
}

#[test]
fn dropped_future_vs_set_result() {
    // The owner polls, then drops its handle while the producer completes: the drop's release of the
    // registered waker and publication's taking of it never both get it, and neither leaves it behind.
    // (That a drop releases it at once, long before the task ends, is checked in
    // tests/core_regressions.rs: here publication would release it soon after anyway.)
    model(|| {
        use std::future::Future;
        let (promise, mut fut) = Promise::<u32>::new();
        let counted = Arc::new(Counted);
        let waker = std::task::Waker::from(counted.clone());
        let producer = thread::spawn(move || promise.set_result(1).unwrap());
        let polled = std::pin::Pin::new(&mut fut).poll(&mut std::task::Context::from_waker(&waker));
        drop(fut);
        drop(waker);
        producer.join().unwrap();
        assert_eq!(Arc::strong_count(&counted), 1, "polled: {polled:?}");
    });
}

// ---------------------------------------------------------------------------------------------------
// 3. add_done_callback racing completion: each callback runs exactly once, in order, with the outcome.

#[test]
fn callbacks_vs_set_result() {
    model(|| {
        let log: Log = Arc::default();
        let (promise, mut fut) = Promise::<u32>::new();
        let producer = thread::spawn(move || {
            promise.set_result(5).unwrap();
        });
        fut.add_done_callback(recorder(&log, 1));
        fut.add_done_callback(recorder(&log, 2));
        // The owner taking the value concurrently with the callbacks: they still see it by reference.
        assert_eq!(fut.result(None).unwrap(), 5);
        // result() returned, so the future is Done and every callback has run.
        assert_eq!(entries(&log), vec![(1, Ok(5)), (2, Ok(5))]);
        producer.join().unwrap();
        // Added after the value was taken: runs at once, told the result is gone.
        fut.add_done_callback(recorder(&log, 3));
        let all = entries(&log);
        assert_eq!(all.len(), 3);
        assert!(matches!(&all[2], (3, Err(e)) if e.starts_with("InvalidState")));
    });
}

#[test]
fn callbacks_from_two_threads_vs_abandon() {
    model(|| {
        let log: Log = Arc::default();
        let (promise, fut) = Promise::<u32>::new();
        let fut = Arc::new(fut);
        let adder = {
            let (fut, log) = (fut.clone(), log.clone());
            thread::spawn(move || fut.add_done_callback(recorder(&log, 2)))
        };
        let producer = thread::spawn(move || drop(promise));
        fut.add_done_callback(recorder(&log, 1));
        adder.join().unwrap();
        producer.join().unwrap();
        // Both ran exactly once, whichever thread ran them, with the Abandoned outcome.
        let mut all = entries(&log);
        all.sort_by_key(|(tag, _)| *tag);
        let abandoned = Err(format!("{:?}", Error::Abandoned));
        assert_eq!(all, vec![(1, abandoned.clone()), (2, abandoned)]);
        assert!(fut.done() && !fut.cancelled());
    });
}

#[test]
fn late_callback_vs_blocking_result() {
    // A callback added after the future ended runs at once on the adding thread, which borrows the
    // value meanwhile; the future stays done and readable on the other thread throughout.
    model(|| {
        let log: Log = Arc::default();
        let (promise, fut) = Promise::<u32>::new();
        promise.set_result(3).unwrap();
        let fut = Arc::new(fut);
        let adder = {
            let (fut, log) = (fut.clone(), log.clone());
            thread::spawn(move || fut.add_done_callback(recorder(&log, 1)))
        };
        // exception() only needs &self, and never waits on a published future.
        assert!(fut.done());
        assert!(matches!(fut.exception(Duration::ZERO), Ok(None)));
        assert!(matches!(fut.exception(None), Ok(None)));
        adder.join().unwrap();
        assert_eq!(entries(&log), vec![(1, Ok(3))]);
        let mut fut = Arc::try_unwrap(fut).expect("the adder is gone");
        assert_eq!(fut.result(Duration::ZERO).unwrap(), 3);
        drop(promise);
    });
}

#[test]
fn done_implies_readable_vs_set_result_with_callbacks() {
    // The outcome is published after the callbacks: whenever done() is true, they have all run and
    // the value can be taken without waiting.
    model(|| {
        let log: Log = Arc::default();
        let (promise, mut fut) = Promise::<u32>::new();
        fut.add_done_callback(recorder(&log, 1));
        let producer = thread::spawn(move || promise.set_result(8).unwrap());
        if fut.done() {
            assert_eq!(entries(&log), vec![(1, Ok(8))]);
            assert_eq!(fut.result(Duration::ZERO).unwrap(), 8);
        } else {
            assert_eq!(fut.result(None).unwrap(), 8);
        }
        producer.join().unwrap();
    });
}

// ---------------------------------------------------------------------------------------------------
// 4. cancel() vs set_result(): exactly one outcome sticks.

#[test]
fn cancel_vs_set_result() {
    model(|| {
        let log: Log = Arc::default();
        let (promise, mut fut) = Promise::<u32>::new();
        fut.add_done_callback(recorder(&log, 1));
        let producer = thread::spawn(move || promise.set_result(9));
        let cancelled = fut.cancel();
        let set = producer.join().unwrap();
        match (cancelled, set) {
            (true, Err(Error::InvalidState(_))) => {
                assert!(fut.cancelled());
                assert!(matches!(fut.result(None), Err(Error::Cancelled)));
                let cancelled_err = Err(format!("{:?}", Error::Cancelled));
                assert_eq!(entries(&log), vec![(1, cancelled_err)]);
            }
            (false, Ok(())) => {
                assert!(!fut.cancelled());
                assert_eq!(fut.result(None).unwrap(), 9);
                assert_eq!(entries(&log), vec![(1, Ok(9))]);
            }
            (c, s) => panic!("both or neither won: cancel={c}, set_result={s:?}"),
        }
        assert!(fut.done());
    });
}

#[test]
fn cancel_vs_blocking_exception() {
    // A successful cancel wakes the owner blocked on the outcome.
    model(|| {
        let (promise, fut) = Promise::<u32>::new();
        let fut = Arc::new(fut);
        let canceller = {
            let fut = fut.clone();
            thread::spawn(move || fut.cancel())
        };
        assert!(matches!(fut.exception(None), Err(Error::Cancelled)));
        assert!(canceller.join().unwrap());
        assert!(!promise.set_running());
    });
}

#[test]
fn two_cancels() {
    // Both callers see the future cancelled; the callbacks run once.
    model(|| {
        let log: Log = Arc::default();
        let (promise, fut) = Promise::<u32>::new();
        fut.add_done_callback(recorder(&log, 1));
        let fut = Arc::new(fut);
        let other = {
            let fut = fut.clone();
            thread::spawn(move || fut.cancel())
        };
        assert!(fut.cancel());
        assert!(other.join().unwrap());
        assert_eq!(
            entries(&log),
            vec![(1, Err(format!("{:?}", Error::Cancelled)))]
        );
        assert!(!promise.set_running());
    });
}

// ---------------------------------------------------------------------------------------------------
// 5. wait / as_completed over two promises completed from two threads.
//
// The producers are not joined: a watch set's wakers all unpark the one waiting thread, so a producer
// can still be unparking it after `wait` has seen both futures done and returned. With std that is a
// harmless stray unpark token (every park loop polls again), but loom 0.7 aborts when an unpark reaches
// a thread blocked in `JoinHandle::join` ("assertion failed: state.notified", tokio-rs/loom#249). loom
// runs every spawned thread to completion anyway, and the futures' own outcomes (read with the
// stray-unpark-proof `result`) show the producers finished.

fn two_producers() -> (PoolFuture<u32>, PoolFuture<u32>) {
    let (pa, a) = Promise::<u32>::new();
    let (pb, b) = Promise::<u32>::new();
    thread::spawn(move || pa.set_result(1).unwrap());
    thread::spawn(move || pb.set_result(2).unwrap());
    (a, b)
}

#[test]
fn wait_all_completed_two_producers() {
    model_bounded(|| {
        let (mut a, mut b) = two_producers();
        let done = wait([&a, &b]).blocking();
        assert_eq!(done.done.len(), 2);
        assert!(done.not_done.is_empty());
        assert!(a.done() && b.done());
        drop(done);
        assert_eq!(a.result(Duration::ZERO).unwrap(), 1);
        assert_eq!(b.result(Duration::ZERO).unwrap(), 2);
    });
}

#[test]
fn wait_all_completed_awaited() {
    model_bounded(|| {
        let (mut a, mut b) = two_producers();
        let done = block_on(async { wait([&a, &b]).await });
        assert_eq!(done.done.len(), 2);
        assert!(done.not_done.is_empty());
        drop(done);
        assert_eq!(a.result(Duration::ZERO).unwrap(), 1);
        assert_eq!(b.result(Duration::ZERO).unwrap(), 2);
    });
}

#[test]
fn wait_first_completed_two_producers_then_drop() {
    // wait returns after the first completion; dropping it unregisters its wakers while the other
    // producer may be completing (and firing them) at the same moment.
    model_bounded(|| {
        let (mut a, mut b) = two_producers();
        let done = wait([&a, &b])
            .return_when(ReturnWhen::FirstCompleted)
            .blocking();
        assert!(!done.done.is_empty());
        assert_eq!(done.done.len() + done.not_done.len(), 2);
        for f in &done.done {
            assert!(f.done());
        }
        drop(done);
        assert_eq!(a.result(None).unwrap() + b.result(None).unwrap(), 3);
    });
}

#[test]
fn wait_first_completed_vs_cancel() {
    model(|| {
        let (pa, a) = Promise::<u32>::new();
        let (_pb, b) = Promise::<u32>::new();
        let a = Arc::new(a);
        {
            let a = a.clone();
            thread::spawn(move || assert!(a.cancel()));
        }
        let done = wait([&*a, &b])
            .return_when(ReturnWhen::FirstCompleted)
            .blocking();
        // A cancelled future is done, and wakes its waiters.
        assert_eq!(done.done.len(), 1);
        assert_eq!(done.done[0].id(), a.id());
        assert_eq!(done.not_done.len(), 1);
        drop(done);
        assert!(a.cancelled() && !b.done());
        assert!(!pa.set_running());
    });
}

#[test]
fn as_completed_two_producers() {
    model_bounded(|| {
        let (a, b) = two_producers();
        let (ida, idb) = (a.id(), b.id());
        let mut seen = Vec::new();
        for f in as_completed([a, b]) {
            let mut f = f.unwrap();
            seen.push((f.id(), f.result(Duration::ZERO).unwrap()));
        }
        seen.sort();
        assert_eq!(seen, vec![(ida, 1), (idb, 2)]);
    });
}

#[test]
fn as_completed_stream_two_producers() {
    use futures::StreamExt;
    model_bounded(|| {
        let (a, b) = two_producers();
        let sum = block_on(async {
            let mut stream = as_completed([a, b]);
            let mut sum = 0;
            while let Some(f) = stream.next().await {
                sum += f.unwrap().await.unwrap();
            }
            sum
        });
        assert_eq!(sum, 3);
    });
}

#[test]
fn completion_set_two_producers_blocking() {
    // The same ready queue as `as_completed`, filled as the set grows: no completion is lost whichever
    // side moves first.
    model_bounded(|| {
        let (a, b) = two_producers();
        let mut set: CompletionSet<u32> = [a, b].into_iter().collect();
        let mut sum = 0;
        while let Some((_, outcome)) = set.next_blocking(None).unwrap() {
            sum += outcome.unwrap();
        }
        assert_eq!(sum, 3);
        assert!(set.is_empty());
    });
}

#[test]
fn completion_set_push_while_draining() {
    // A future pushed after the set has registered with the first one, and completed on another thread
    // meanwhile, is still yielded.
    model_bounded(|| {
        let (pa, a) = Promise::<u32>::new();
        let (pb, b) = Promise::<u32>::new();
        thread::spawn(move || pa.set_result(1).unwrap());
        let mut set = CompletionSet::new();
        set.push(a);
        let first = block_on(async { set.join_next().await });
        assert_eq!(first.unwrap().unwrap(), 1);
        thread::spawn(move || pb.set_result(2).unwrap());
        set.push(b);
        let second = block_on(async { set.join_next().await });
        assert_eq!(second.unwrap().unwrap(), 2);
        assert!(block_on(async { set.join_next().await }).is_none());
    });
}

#[test]
fn wait_block_wakers_are_all_given_back() {
    // A watch set's wakers share one count of their block (src/watch.rs, `WakerBlock`): the set hands
    // each pending future an owned waker, counted in bulk, and takes back in bulk those the futures
    // return. Here a producer publishes `a` (taking its waker out and waking it by value, after the
    // lock) while the waiting thread polls, returns, unwatches `b` and drops the set. Whatever the
    // order, every count must come back exactly once: the block, which holds our waker (its ready
    // queue's parent), is freed, and nothing is freed while a waker still uses it. The parent waker
    // wakes nothing, so the waiting thread spins (with loom's yield) instead of parking, and the
    // producer can be joined.
    struct Quiet;
    impl std::task::Wake for Quiet {
        fn wake(self: Arc<Self>) {}
    }
    model(|| {
        let (pa, a) = Promise::<u32>::new();
        let (_pb, b) = Promise::<u32>::new();
        let producer = thread::spawn(move || pa.set_result(1).unwrap());
        let quiet = Arc::new(Quiet);
        let waker = std::task::Waker::from(quiet.clone());
        let mut cx = std::task::Context::from_waker(&waker);
        let mut w = std::pin::pin!(std::future::IntoFuture::into_future(
            wait([&a, &b]).return_when(ReturnWhen::FirstCompleted)
        ));
        let done = loop {
            match std::future::Future::poll(w.as_mut(), &mut cx) {
                std::task::Poll::Ready(done) => break done,
                std::task::Poll::Pending => thread::yield_now(),
            }
        };
        assert_eq!(done.done.len(), 1);
        assert_eq!(done.done[0].id(), a.id());
        assert_eq!(done.not_done.len(), 1);
        drop(done);
        producer.join().unwrap();
        drop(w);
        drop(waker);
        assert_eq!(
            Arc::strong_count(&quiet),
            1,
            "a count of the wait's waker block was not given back"
        );
    });
}

// ---------------------------------------------------------------------------------------------------
// 6. The thread pool: a worker hands itself over (callbacks, booking, idle credit, publication) while
// the caller submits and cancels. The pool's worker is a loom thread here; the pool is dropped at the
// end of each model (a shutdown that does not wait), and loom runs the worker until it exits. No model
// joins a thread, for the reason given in section 5.

#[test]
fn pool_submit_after_a_result_reuses_the_worker() {
    // The worker counts itself idle after the callbacks and before publishing: a submit right after
    // the result hands it a wake-up credit (never lost, whichever side moves first) instead of
    // starting a second thread.
    model(|| {
        let pool = ThreadPoolExecutor::new(2).unwrap();
        let log: Log = Arc::default();
        let mut a = pool.submit(|n: u32| n + 1, 1).unwrap();
        a.add_done_callback(recorder(&log, 1));
        assert_eq!(a.result(None).unwrap(), 2);
        assert_eq!(entries(&log), vec![(1, Ok(2))]);
        let mut b = pool.submit(|n: u32| n * 2, 2).unwrap();
        assert_eq!(pool.metrics().workers, 1);
        assert_eq!(b.result(None).unwrap(), 4);
        let m = pool.metrics();
        assert_eq!((m.workers, m.running, m.completed), (1, 0, 2));
    });
}

#[test]
fn pool_cancelling_shutdown_vs_the_worker_taking_the_next_task() {
    // A task leaves the queue only to start, in one locked section: a cancelling shutdown finds each
    // task queued (and cancels it) or started, never taken and waiting to start.
    model(|| {
        let pool = ThreadPoolExecutor::new(1).unwrap();
        let mut a = pool.submit(|n: u32| n, 1).unwrap();
        let mut b = pool.submit(|n: u32| n, 2).unwrap();
        pool.shutdown_nowait(Queued::Cancel);
        for (f, value) in [(&mut a, 1), (&mut b, 2)] {
            assert!(f.cancelled() || f.running() || f.done());
            let cancelled = f.cancelled();
            match f.result(None) {
                Ok(v) => assert!(!cancelled && v == value),
                Err(Error::Cancelled) => assert!(cancelled),
                Err(e) => panic!("unexpected outcome {e:?}"),
            }
        }
        let m = pool.metrics();
        assert_eq!(m.running, 0);
        assert_eq!(m.completed + m.cancelled, 2);
    });
}

#[test]
fn pool_callback_cancelling_the_queue() {
    // A done callback that shuts the pool down with Queued::Cancel runs before its worker takes
    // another task: whatever was queued behind by then is cancelled, never left unstarted.
    model(|| {
        let pool = ThreadPoolExecutor::new(1).unwrap();
        let handle = pool.clone();
        let (promise, gate) = Promise::<()>::new();
        let mut a = pool
            .spawn(move || {
                let mut gate = gate;
                gate.result(None).unwrap();
                1u32
            })
            .unwrap();
        a.add_done_callback(move |_| handle.shutdown_nowait(Queued::Cancel));
        let mut b = pool.submit(|n: u32| n, 2).unwrap();
        promise.set_result(()).unwrap();
        assert_eq!(a.result(None).unwrap(), 1);
        assert!(matches!(b.result(None), Err(Error::Cancelled)));
    });
}

#[test]
fn pool_two_workers_two_tasks_then_a_third() {
    // Two workers handing credits back and forth while tasks are submitted: every task runs, no
    // credit is lost (loom reports a deadlock if a worker sleeps on queued work), and the counters add up.
    model_bounded(|| {
        let pool = ThreadPoolExecutor::new(2).unwrap();
        let mut a = pool.submit(|n: u32| n, 1).unwrap();
        let mut b = pool.submit(|n: u32| n, 2).unwrap();
        assert_eq!(a.result(None).unwrap(), 1);
        let mut c = pool.submit(|n: u32| n, 3).unwrap();
        assert_eq!(b.result(None).unwrap() + c.result(None).unwrap(), 5);
        let m = pool.metrics();
        assert!(m.workers <= 2);
        assert_eq!((m.running, m.queued, m.completed), (0, 0, 3));
    });
}

#[test]
fn pool_two_idle_workers_two_credits_back_to_back() {
    // Both workers idle (asleep, or on their way to sleep), then two submits in a row: the second
    // credit may come while the worker signalled for the first has not taken the lock yet. A submit
    // signals only a sleeper no signal is on its way to (src/thread_pool/shared.rs,
    // `signal_sleeper`): neither task may be left queued with its worker asleep (loom reports the
    // deadlock), and both run.
    model_bounded(|| {
        let pool = ThreadPoolExecutor::new(2).unwrap();
        let mut a = pool.submit(|n: u32| n, 1).unwrap();
        let mut b = pool.submit(|n: u32| n, 2).unwrap();
        assert_eq!(a.result(None).unwrap() + b.result(None).unwrap(), 3);
        let mut c = pool.submit(|n: u32| n, 3).unwrap();
        let mut d = pool.submit(|n: u32| n, 4).unwrap();
        assert_eq!(c.result(None).unwrap() + d.result(None).unwrap(), 7);
        let m = pool.metrics();
        assert!(m.workers <= 2);
        assert_eq!((m.running, m.queued, m.completed), (0, 0, 4));
    });
}

/// Counts the closures of scoped tasks that are gone, run or dropped unrun.
struct Gone<'a>(&'a AtomicUsize);

impl Drop for Gone<'_> {
    fn drop(&mut self) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

#[test]
fn scope_returns_after_its_tasks_ran_or_were_cancelled() {
    // The join count that the lifetime erasure of scoped tasks relies on (src/thread_pool/scope.rs):
    // `scope` returns only once the closure of every task is gone, whether the worker ran it or a
    // cancelling shutdown, racing the worker, dropped it unrun. (Bounded: the waiting shutdown at the
    // end makes the full state space too large to finish fast.)
    model_bounded(|| {
        let pool = ThreadPoolExecutor::new(1).unwrap();
        let gone = AtomicUsize::new(0);
        let mut ran = [false; 2];
        pool.scope(|s| {
            for slot in ran.iter_mut() {
                let guard = Gone(&gone);
                s.spawn(move || {
                    let _guard = guard;
                    *slot = true;
                })
                .unwrap();
            }
            pool.shutdown_nowait(Queued::Cancel);
        });
        assert_eq!(gone.load(Ordering::SeqCst), 2);
        // The worker books a task after its closure is gone: wait for it before reading the counters.
        pool.shutdown(Queued::Run);
        let m = pool.metrics();
        let ran = ran.iter().filter(|r| **r).count() as u64;
        assert_eq!((m.completed, m.completed + m.cancelled), (ran, 2));
    });
}

#[test]
fn scope_inside_a_task_of_a_one_worker_pool_helps() {
    // The only worker opens a scope and waits at its end: it must run its own queued task itself
    // (loom reports a deadlock otherwise), and the scope still returns only after the task is gone.
    model(|| {
        let pool = ThreadPoolExecutor::new(1).unwrap();
        let inner = pool.clone();
        let mut f = pool
            .spawn(move || {
                let gone = AtomicUsize::new(0);
                let mut value = 0u32;
                inner.scope(|s| {
                    let guard = Gone(&gone);
                    s.spawn(|| {
                        let _guard = guard;
                        value = 7;
                    })
                    .unwrap();
                });
                (gone.load(Ordering::SeqCst), value)
            })
            .unwrap();
        assert_eq!(f.result(None).unwrap(), (1, 7));
    });
}

#[test]
fn scope_with_two_workers_joins_both_tasks() {
    // Two workers finishing scoped tasks while the scope's thread waits: no token is lost.
    model_bounded(|| {
        let pool = ThreadPoolExecutor::new(2).unwrap();
        let gone = AtomicUsize::new(0);
        let mut values = [0u32; 2];
        pool.scope(|s| {
            for (i, slot) in values.iter_mut().enumerate() {
                let guard = Gone(&gone);
                s.spawn(move || {
                    let _guard = guard;
                    *slot = i as u32 + 1;
                })
                .unwrap();
            }
        });
        assert_eq!(gone.load(Ordering::SeqCst), 2);
        assert_eq!(values, [1, 2]);
    });
}

#[test]
fn pool_retiring_worker_vs_submit() {
    // With a zero keep-alive the worker retires whenever it finds no credit: a submit racing its
    // retirement either hands it a credit before it decides (it stays) or finds it gone from `idle`
    // and `threads` in the same locked section (the submit starts a thread). The task runs either way.
    model(|| {
        let pool = ThreadPoolExecutor::builder()
            .max_workers(1)
            .keep_alive(Duration::ZERO)
            .build()
            .unwrap();
        let mut a = pool.submit(|n: u32| n + 1, 1).unwrap();
        assert_eq!(a.result(None).unwrap(), 2);
        let mut b = pool.submit(|n: u32| n * 2, 2).unwrap();
        assert_eq!(b.result(None).unwrap(), 4);
        let m = pool.metrics();
        assert!(m.workers <= 1);
        assert_eq!((m.running, m.queued, m.completed), (0, 0, 2));
    });
}

#[test]
fn pool_two_retiring_workers_two_tasks_then_a_third() {
    // The credit hand-off of `pool_two_workers_two_tasks_then_a_third` with workers that retire as
    // soon as they are idle: no credit or queued task is lost to a retiring thread.
    model_bounded(|| {
        let pool = ThreadPoolExecutor::builder()
            .max_workers(2)
            .keep_alive(Duration::ZERO)
            .build()
            .unwrap();
        let mut a = pool.submit(|n: u32| n, 1).unwrap();
        let mut b = pool.submit(|n: u32| n, 2).unwrap();
        assert_eq!(a.result(None).unwrap(), 1);
        let mut c = pool.submit(|n: u32| n, 3).unwrap();
        assert_eq!(b.result(None).unwrap() + c.result(None).unwrap(), 5);
        let m = pool.metrics();
        assert!(m.workers <= 2);
        assert_eq!((m.running, m.queued, m.completed), (0, 0, 3));
    });
}

/// `workers` idle workers (each has run a task) woken as `wake` says, from another thread (not
/// joined: section 5), while one more submit hands out a credit and signals one of them: the task
/// still runs, by a worker that took the credit or by one the submit started, never with more
/// threads than `workers`, and the idle counts, checked at each change under loom, agree
/// throughout.
fn idle_workers_woken_vs_a_submit(workers: u32, wake: LoomWake) {
    model_bounded(move || {
        let pool = ThreadPoolExecutor::new(workers as usize).unwrap();
        let mut first: Vec<_> = (1..=workers)
            .map(|n| pool.submit(|n: u32| n, n).unwrap())
            .collect();
        let sum: u32 = first.iter_mut().map(|f| f.result(None).unwrap()).sum();
        assert_eq!(sum, workers * (workers + 1) / 2);
        let waker = pool.clone();
        thread::spawn(move || waker.loom_wake_idle_workers(wake));
        let mut last = pool.submit(|n: u32| n, 100).unwrap();
        assert_eq!(last.result(None).unwrap(), 100);
        let m = pool.metrics();
        assert!(m.workers <= workers as usize);
        let completed = u64::from(workers) + 1;
        assert_eq!((m.running, m.queued, m.completed), (0, 0, completed));
    });
}

#[test]
fn pool_spurious_wake_up_vs_a_credit() {
    // std's `Condvar` may wake a sleeper with no notify at all (loom's never does): here a wake-up
    // with neither a credit nor a signal behind it reaches both idle workers while a submit hands
    // out a credit. A worker back from it cannot tell, and counts a signal still on its way as its
    // own: no credit may then wait while its worker sleeps with no signal coming (loom reports the
    // deadlock). (One submit after the two results: a second one makes the bounded model run for
    // more than ten minutes.)
    idle_workers_woken_vs_a_submit(2, LoomWake::Spurious);
}

#[test]
fn pool_keep_alive_running_out_vs_a_submit() {
    // An idle worker's keep-alive runs out (loom's timed waits never time out: the model's other
    // thread says when, and wakes it) while a submit hands it a credit and signals it. Back with the
    // lock, the worker counts the signal as its own and either takes the credit, or, finding none,
    // retires in the locked section that leaves `idle` and `threads`, so the submit starts another
    // thread. Never a task queued with no worker coming for it.
    idle_workers_woken_vs_a_submit(1, LoomWake::KeepAliveRanOut);
}

#[test]
fn pool_keep_alive_running_out_vs_two_submits_to_two_workers() {
    // Two idle workers, the keep-alive running out for both while a submit hands out a credit and
    // signals one of them: the one that times out may count the signal meant for the other, take the
    // credit, or retire. (One submit after the time-out starts at most one thread: the model stays
    // within loom's five.)
    idle_workers_woken_vs_a_submit(2, LoomWake::KeepAliveRanOut);
}

/// Counts the drops of a pool task's closure (its captures go with it, run or not).
struct Dropped(Arc<AtomicUsize>);

impl Drop for Dropped {
    fn drop(&mut self) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

#[test]
fn pool_two_cancels_vs_the_worker_taking_the_task() {
    // A queued task's closure has no lock of its own: the call that moves the future out of PENDING
    // (the worker's claim or the winning cancel) is the only one that touches it. loom checks every
    // access to it; the closure is dropped exactly once, and both cancels agree.
    model_bounded(|| {
        let pool = ThreadPoolExecutor::new(1).unwrap();
        let drops = Arc::new(AtomicUsize::new(0));
        let guard = Dropped(drops.clone());
        let f = Arc::new(
            pool.spawn(move || {
                drop(guard);
                1u32
            })
            .unwrap(),
        );
        let other = {
            let f = f.clone();
            thread::spawn(move || f.cancel())
        };
        let here = f.cancel();
        let there = other.join().unwrap();
        assert_eq!(here, there);
        let mut f = Arc::try_unwrap(f).unwrap();
        match f.result(None) {
            Ok(1) => assert!(!here),
            Err(Error::Cancelled) => assert!(here),
            other => panic!("unexpected outcome {other:?}"),
        }
        assert_eq!(drops.load(Ordering::SeqCst), 1);
    });
}

// ---------------------------------------------------------------------------------------------------
// 7. A future's lock is two bits of the word that holds its id and flags (src/future/word.rs): its
// holders exclude each other, a waiter that marked itself parked is let in, the flags holders set
// survive the waiters' writes to the same word, and the lock bits end clear.

#[test]
fn word_lock_three_holders_keep_the_count_and_the_flags() {
    model_bounded(|| {
        let lock = Arc::new(LoomWordLock::new());
        let others: Vec<_> = (0..2u32)
            .map(|i| {
                let lock = lock.clone();
                thread::spawn(move || lock.add_and_flag(1 << i, i))
            })
            .collect();
        lock.add_and_flag(4, 2);
        for t in others {
            t.join().unwrap();
        }
        let (counter, word) = lock.counter_and_word();
        assert_eq!(counter, 7, "an update under the lock was lost");
        assert_eq!(word, 0b111 << 2, "the flags all set, the lock bits clear");
    });
}

/// Holders that change flags with the unlock itself (`WordLock::unlock_setting`: one compare-exchange,
/// or a flag update and then the parked path's release when a waiter sleeps) beside one that sets
/// its flag before unlocking: every update and every flag change survives, a flag another holder
/// cleared stays clear, and the lock bits end clear.
#[test]
fn word_lock_flags_changed_by_the_unlock_survive() {
    model_bounded(|| {
        let lock = Arc::new(LoomWordLock::with_flag(Some(3)));
        let others: Vec<_> = [(1, 0, None, false), (2, 1, Some(3), true)]
            .into_iter()
            .map(|(n, flag, clear, at_unlock)| {
                let lock = lock.clone();
                thread::spawn(move || {
                    if at_unlock {
                        lock.add_and_flag_at_unlock(n, flag, clear);
                    } else {
                        lock.add_and_flag(n, flag);
                    }
                })
            })
            .collect();
        lock.add_and_flag_at_unlock(4, 2, None);
        for t in others {
            t.join().unwrap();
        }
        let (counter, word) = lock.counter_and_word();
        assert_eq!(counter, 7, "an update under the lock was lost");
        assert_eq!(
            word,
            0b0111 << 2,
            "flags 0-2 set, flag 3 cleared, the lock bits clear"
        );
    });
}

// ---------------------------------------------------------------------------------------------------
// 8. A task's reference counts (src/future/raw.rs): both in one word, the strong references sharing
// one weak. The job counts its drops: exactly one, after every strong use.

/// A clone and its drop on one thread race the last drop on another: the job is dropped once, by
/// whichever drop is last, and the clone (made while a strong reference is held) reads a live task.
#[test]
fn task_refs_clone_and_drop_race_the_last_drop() {
    model(|| {
        let drops = Arc::new(loom::sync::atomic::AtomicUsize::new(0));
        let task = LoomTask::new(drops.clone());
        let theirs = task.clone();
        let other = thread::spawn(move || {
            let copy = theirs.clone();
            drop(theirs);
            assert!(copy.is_pending());
            drop(copy);
        });
        assert!(task.is_pending());
        drop(task);
        other.join().unwrap();
        assert_eq!(drops.load(loom::sync::atomic::Ordering::SeqCst), 1);
    });
}

/// A weak upgrade races the last strong drop: it either fails, or keeps the task alive (its job not
/// yet dropped) until it lets go; the job is dropped once either way, and the weak reference's drop,
/// racing too, never frees what the strong side still uses.
#[test]
fn task_refs_weak_upgrade_races_the_last_strong_drop() {
    model(|| {
        let drops = Arc::new(loom::sync::atomic::AtomicUsize::new(0));
        let task = LoomTask::new(drops.clone());
        let weak = task.downgrade();
        let seen = drops.clone();
        let other = thread::spawn(move || {
            if let Some(alive) = weak.upgrade() {
                assert_eq!(seen.load(loom::sync::atomic::Ordering::SeqCst), 0);
                assert!(alive.is_pending());
            }
            drop(weak);
        });
        drop(task);
        other.join().unwrap();
        assert_eq!(drops.load(loom::sync::atomic::Ordering::SeqCst), 1);
    });
}
