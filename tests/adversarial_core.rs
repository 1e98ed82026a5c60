//! Attacks on the thread pool, `PoolFuture` and the combinators the way a demanding async user makes
//! them: other executors (`futures::executor::block_on`, a hand-written executor that hands in a new
//! waker on every poll, one whose waker polls the future again right on the waking thread), the
//! `futures` wrappers (`Shared`, `FuturesUnordered`), polls after the end, callbacks that reach back
//! into their pool, a bounded queue's waiting submitters given up on, and builder extremes.
//!
//! Every wait that a bug would turn into a hang is bounded by [`common::LONG`], so the test fails
//! instead of hanging.

mod common;

use std::future::{Future, IntoFuture};
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Barrier, Mutex};
use std::task::{Context, Poll, Wake, Waker};
use std::time::Duration;

use common::threads::hold;
use common::LONG;
use concurrent_futures::{
    as_completed, wait, CompletionSet, Error, MapOptions, PoolFuture, Promise, Queued, ReturnWhen,
    ThreadPoolExecutor,
};
use futures::{FutureExt, Stream, StreamExt};

// ---------------------------------------------------------------------------------------------------
// Helpers

use common::wakers::{counting, Counting};

/// A one-worker pool whose worker is held by a task until `release` is sent to; returns once the
/// worker runs it.
fn held_pool(capacity: Option<usize>) -> (ThreadPoolExecutor, mpsc::Sender<()>, PoolFuture<()>) {
    let mut b = ThreadPoolExecutor::builder().max_workers(1);
    if let Some(c) = capacity {
        b = b.queue_capacity(c);
    }
    let pool = b.build().unwrap();
    let (release, busy) = hold(&pool);
    (pool, release, busy)
}

/// Polls `fut` with a brand-new waker `n` times (each poll's waker differs from the last one), and
/// returns the wakers' counters: an executor that rebuilds its waker on every poll.
fn poll_with_new_wakers<F: Future + Unpin>(fut: &mut F, n: usize) -> Vec<Arc<Counting>> {
    poll_fn_with_new_wakers(n, |cx| Pin::new(&mut *fut).poll(cx).is_pending())
}

/// [`poll_with_new_wakers`] for a stream's `poll_next`.
fn poll_next_with_new_wakers<S: Stream + Unpin>(s: &mut S, n: usize) -> Vec<Arc<Counting>> {
    poll_fn_with_new_wakers(n, |cx| s.poll_next_unpin(cx).is_pending())
}

fn poll_fn_with_new_wakers(
    n: usize,
    mut pending: impl FnMut(&mut Context<'_>) -> bool,
) -> Vec<Arc<Counting>> {
    (0..n)
        .map(|_| {
            let (c, w) = counting();
            assert!(pending(&mut Context::from_waker(&w)));
            c
        })
        .collect()
}

/// Asserts that only the last waker is still held by whoever was polled (the caller's `Arc` plus
/// one clone), and none of the earlier ones.
fn assert_only_last_waker_kept(counters: &[Arc<Counting>]) {
    let (last, earlier) = counters.split_last().unwrap();
    for (i, c) in earlier.iter().enumerate() {
        assert_eq!(
            Arc::strong_count(c),
            1,
            "the waker of poll {i} is still held after {} later polls",
            earlier.len() - i
        );
    }
    assert_eq!(Arc::strong_count(last), 2, "the last poll's waker is kept");
}

// ---------------------------------------------------------------------------------------------------
// Other executors: waker replacement on every poll

#[test]
fn a_pool_future_polled_with_a_new_waker_each_time_keeps_and_wakes_only_the_last() {
    let (pool, release, _busy) = held_pool(None);
    let mut f = pool.spawn(|| 5u32).unwrap();
    let counters = poll_with_new_wakers(&mut f, 200);
    assert_only_last_waker_kept(&counters);
    release.send(()).unwrap();
    assert_eq!(f.result(LONG).unwrap(), 5);
}

#[test]
fn as_completed_polled_with_a_new_waker_each_time_keeps_only_the_last() {
    let (promises, futures): (Vec<_>, Vec<_>) = (0..3).map(|_| Promise::<u32>::new()).unzip();
    let mut stream = as_completed(futures);
    let counters = poll_next_with_new_wakers(&mut stream, 200);
    assert_only_last_waker_kept(&counters);
    promises.into_iter().next().unwrap().set_result(1).unwrap();
    let last = counters.last().unwrap();
    assert_eq!(last.0.load(Ordering::SeqCst), 1, "the last waker is woken");
    for c in &counters[..counters.len() - 1] {
        assert_eq!(c.0.load(Ordering::SeqCst), 0);
    }
}

#[test]
fn a_wait_polled_with_a_new_waker_each_time_keeps_only_the_last() {
    let (promise, f) = Promise::<u32>::new();
    let (_other_promise, g) = Promise::<u32>::new();
    let mut w = Box::pin(
        wait([&f, &g])
            .return_when(ReturnWhen::FirstCompleted)
            .into_future(),
    );
    let counters = poll_with_new_wakers(&mut w, 200);
    assert_only_last_waker_kept(&counters);
    promise.set_result(3).unwrap();
    assert_eq!(counters.last().unwrap().0.load(Ordering::SeqCst), 1);
    let (_, waker) = counting();
    match w.as_mut().poll(&mut Context::from_waker(&waker)) {
        Poll::Ready(done) => assert_eq!(done.done.len(), 1),
        Poll::Pending => panic!("the wait must see its future done"),
    }
}

#[test]
fn a_completion_set_polled_with_a_new_waker_each_time_keeps_only_the_last() {
    let (promise, f) = Promise::<u32>::new();
    let mut set = CompletionSet::new();
    set.push(f);
    let mut next = Box::pin(set.join_next());
    let counters = poll_with_new_wakers(&mut next, 200);
    assert_only_last_waker_kept(&counters);
    promise.set_result(9).unwrap();
    assert_eq!(counters.last().unwrap().0.load(Ordering::SeqCst), 1);
}

#[test]
fn a_map_polled_with_a_new_waker_each_time_keeps_only_the_last() {
    let (pool, release, _busy) = held_pool(None);
    let mut map = pool
        .map_with(|x: u32| x + 1, 0..4u32, MapOptions::new().buffer(2))
        .unwrap();
    let counters = poll_next_with_new_wakers(&mut map, 200);
    assert_only_last_waker_kept(&counters);
    release.send(()).unwrap();
    let got: Vec<u32> = futures::executor::block_on(map.map(Result::unwrap).collect());
    assert_eq!(got, [1, 2, 3, 4]);
}

// ---------------------------------------------------------------------------------------------------
// Other executors: a waker that polls again right on the thread that wakes it

/// An inline executor: waking it polls the held future at once, on the waking thread, with the
/// same waker, and records the outcome once it is ready.
struct Inline<F: Future> {
    fut: Mutex<Option<Pin<Box<F>>>>,
    out: Mutex<Option<mpsc::Sender<F::Output>>>,
}

impl<F: Future + Send + 'static> Inline<F>
where
    F::Output: Send,
{
    fn start(fut: F) -> mpsc::Receiver<F::Output> {
        let (tx, rx) = mpsc::channel();
        let me = Arc::new(Inline {
            fut: Mutex::new(Some(Box::pin(fut))),
            out: Mutex::new(Some(tx)),
        });
        me.clone().poll_now();
        rx
    }

    fn poll_now(self: Arc<Self>) {
        let waker = Waker::from(self.clone());
        let mut slot = self.fut.lock().unwrap();
        let Some(fut) = slot.as_mut() else { return };
        if let Poll::Ready(v) = fut.as_mut().poll(&mut Context::from_waker(&waker)) {
            *slot = None;
            if let Some(tx) = self.out.lock().unwrap().take() {
                let _ = tx.send(v);
            }
        }
    }
}

impl<F: Future + Send + 'static> Wake for Inline<F>
where
    F::Output: Send,
{
    fn wake(self: Arc<Self>) {
        self.poll_now();
    }
}

#[test]
fn an_inline_executor_repolling_on_the_worker_sees_the_value() {
    // The wake-up comes from the worker that ran the task: if it came before the outcome were
    // readable, the inline poll would find it pending and register again, and nothing would wake
    // it a second time.
    let pool = ThreadPoolExecutor::new(1).unwrap();
    for i in 0..200u32 {
        let f = pool.submit(|x: u32| x * 2, i).unwrap();
        let rx = Inline::start(f);
        assert_eq!(rx.recv_timeout(LONG).unwrap().unwrap(), i * 2);
    }
}

#[test]
fn an_inline_executor_repolling_a_wait_and_as_completed_sees_the_end() {
    let pool = ThreadPoolExecutor::new(2).unwrap();
    for i in 0..100u32 {
        let a = pool.submit(|x: u32| x, i).unwrap();
        let b = pool.submit(|x: u32| x, i).unwrap();
        let rx = Inline::start(wait([a, b]).into_future());
        let done = rx.recv_timeout(LONG).unwrap();
        assert_eq!((done.done.len(), done.not_done.len()), (2, 0));

        let fs: Vec<_> = (0..3)
            .map(|_| pool.submit(|x: u32| x, i).unwrap())
            .collect();
        let rx = Inline::start(as_completed(fs).map(|f| f.unwrap()).collect::<Vec<_>>());
        assert_eq!(rx.recv_timeout(LONG).unwrap().len(), 3);
    }
}

#[test]
fn an_inline_executor_repolling_a_cancelled_future_sees_cancelled() {
    let (_pool, release, _busy) = {
        let (p, r, b) = held_pool(None);
        (p, r, b)
    };
    let queued = _pool.spawn(|| 1u8).unwrap();
    let handle = queued.handle();
    let rx = Inline::start(queued);
    assert!(handle.cancel());
    assert!(matches!(
        rx.recv_timeout(LONG).unwrap(),
        Err(Error::Cancelled)
    ));
    release.send(()).unwrap();
}

// ---------------------------------------------------------------------------------------------------
// The `futures` wrappers and polls after the end

#[test]
fn a_shared_pool_future_gives_every_clone_the_outcome() {
    let pool = ThreadPoolExecutor::new(2).unwrap();
    let (release, gate) = mpsc::channel::<()>();
    let shared = pool
        .spawn(move || gate.recv().map(|()| 11u32).unwrap())
        .unwrap()
        .shared();
    let threads: Vec<_> = (0..4)
        .map(|_| {
            let s = shared.clone();
            std::thread::spawn(move || futures::executor::block_on(s))
        })
        .collect();
    release.send(()).unwrap();
    for t in threads {
        assert_eq!(t.join().unwrap().unwrap(), 11);
    }
    assert_eq!(futures::executor::block_on(shared).unwrap(), 11);
}

#[test]
fn futures_unordered_of_pool_futures_under_block_on() {
    let pool = ThreadPoolExecutor::new(2).unwrap();
    let mut all: futures::stream::FuturesUnordered<_> = (0..500u64)
        .map(|i| pool.submit(|x: u64| x * x, i).unwrap())
        .collect();
    let sum = futures::executor::block_on(async {
        let mut sum = 0;
        while let Some(r) = all.next().await {
            sum += r.unwrap();
        }
        sum
    });
    assert_eq!(sum, (0..500u64).map(|i| i * i).sum::<u64>());
}

#[test]
fn polls_after_the_end_are_answered_not_panicked() {
    let pool = ThreadPoolExecutor::new(1).unwrap();
    let (_, waker) = counting();
    let mut cx = Context::from_waker(&waker);

    // A future: the value once, then InvalidState.
    let mut f = pool.spawn(|| 1u8).unwrap();
    assert_eq!(futures::executor::block_on(&mut f).unwrap(), 1);
    assert!(matches!(
        Pin::new(&mut f).poll(&mut cx),
        Poll::Ready(Err(Error::InvalidState(_)))
    ));

    // as_completed, a map and a completion set: `None` again after `None`.
    let mut ac = as_completed(vec![pool.spawn(|| 1u8).unwrap()]);
    let got = futures::executor::block_on(ac.by_ref().collect::<Vec<_>>());
    assert_eq!(got.len(), 1);
    for _ in 0..3 {
        assert!(matches!(
            Pin::new(&mut ac).poll_next(&mut cx),
            Poll::Ready(None)
        ));
    }
    let mut map = pool.map(|x: u8| x, [1u8, 2]).unwrap();
    assert_eq!(
        futures::executor::block_on(map.by_ref().collect::<Vec<_>>()).len(),
        2
    );
    for _ in 0..3 {
        assert!(matches!(
            Pin::new(&mut map).poll_next(&mut cx),
            Poll::Ready(None)
        ));
    }
    let mut set = CompletionSet::new();
    set.push(pool.spawn(|| 1u8).unwrap());
    assert!(futures::executor::block_on(set.join_next()).is_some());
    for _ in 0..3 {
        assert!(futures::executor::block_on(set.join_next()).is_none());
    }
}

// ---------------------------------------------------------------------------------------------------
// Timeouts outside any runtime, and a deadline whose runtime went away

#[test]
fn result_with_a_timeout_outside_any_runtime_times_out_then_succeeds() {
    let (_pool, release, mut busy) = held_pool(None);
    assert!(matches!(
        busy.result(Duration::from_millis(20)),
        Err(Error::Timeout)
    ));
    release.send(()).unwrap();
    busy.result(LONG).unwrap();
}

#[test]
fn result_on_a_current_thread_runtime_thread_returns_the_value() {
    // Blocking the runtime's only thread is the caller's choice (documented: `.await` instead); the
    // pool's own threads still end the task, so it returns rather than deadlocks.
    let pool = ThreadPoolExecutor::new(1).unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let got = rt.block_on(async {
        let mut f = pool.spawn(|| 4u8).unwrap();
        f.result(LONG)
    });
    assert_eq!(got.unwrap(), 4);
}

// ---------------------------------------------------------------------------------------------------
// Callbacks reaching back into their pool

#[test]
fn a_long_chain_of_callbacks_adding_callbacks_runs_without_overflowing() {
    // Each callback adds the next while the callbacks run: a chain a recursive runner would
    // overflow a worker's stack with.
    let pool = ThreadPoolExecutor::builder()
        .max_workers(1)
        .stack_size(256 * 1024)
        .build()
        .unwrap();
    let (release, gate) = mpsc::channel::<()>();
    let f = Arc::new(pool.spawn(move || gate.recv().unwrap()).unwrap());
    let ran = Arc::new(AtomicUsize::new(0));
    const N: usize = 20_000;
    fn link(f: Arc<PoolFuture<()>>, ran: Arc<AtomicUsize>, left: usize) {
        let g = f.clone();
        f.add_done_callback(move |_| {
            ran.fetch_add(1, Ordering::SeqCst);
            if left > 0 {
                link(g, ran, left - 1);
            }
        });
    }
    link(f.clone(), ran.clone(), N - 1);
    release.send(()).unwrap();
    let mut f = Arc::try_unwrap(loop {
        // The chain's callbacks hold clones of `f`; they are gone once the last one ran.
        if Arc::strong_count(&f) == 1 {
            break f;
        }
        std::thread::yield_now();
    })
    .unwrap();
    f.result(LONG).unwrap();
    assert_eq!(ran.load(Ordering::SeqCst), N);
}

#[test]
fn a_callback_dropping_the_last_pool_handle_lets_the_queue_finish() {
    let (pool, release, busy) = held_pool(None);
    let queued: Vec<_> = (0..5u32)
        .map(|i| pool.submit(|x: u32| x, i).unwrap())
        .collect();
    let last = pool.clone();
    busy.add_done_callback(move |_| drop(last));
    drop(pool);
    release.send(()).unwrap();
    let rx = Inline::start(wait(queued).into_future());
    let done = rx.recv_timeout(LONG).unwrap();
    assert_eq!(done.done.len(), 5);
    for mut f in done.done {
        f.result(Duration::ZERO).unwrap();
    }
}

#[test]
fn a_callback_cancelling_the_shutdown_on_a_pool_of_one_ends_every_future() {
    let (pool, release, busy) = held_pool(None);
    let queued: Vec<_> = (0..5u32)
        .map(|i| pool.submit(|x: u32| x, i).unwrap())
        .collect();
    let own = pool.clone();
    busy.add_done_callback(move |_| own.shutdown(Queued::Cancel));
    release.send(()).unwrap();
    let done = wait(&queued).timeout(LONG).blocking();
    assert_eq!(done.done.len(), 5, "every queued future ends");
    assert!(queued.iter().all(|f| f.cancelled()));
    pool.shutdown(Queued::Run);
    assert!(matches!(pool.spawn(|| ()), Err(Error::Shutdown)));
}

#[test]
fn a_callback_on_a_pool_of_one_waiting_for_a_task_of_that_pool_times_out_rather_than_hangs() {
    // Documented: the worker takes its next task only after the callbacks return, so a one-worker
    // pool cannot run a task its own callback waits for. A bounded wait says so; it does not hang.
    let (pool, release, busy) = held_pool(None);
    let own = pool.clone();
    let (tx, rx) = mpsc::channel();
    busy.add_done_callback(move |_| {
        let mut inner = own.spawn(|| 1u8).unwrap();
        let first = inner.result(Duration::from_millis(50));
        let _ = tx.send((first.map_err(|e| e.to_string()), inner));
    });
    release.send(()).unwrap();
    let (first, mut inner) = rx.recv_timeout(LONG).unwrap();
    assert_eq!(first, Err(Error::Timeout.to_string()));
    assert_eq!(
        inner.result(LONG).unwrap(),
        1,
        "it runs once the callback returned"
    );
}

#[test]
fn cancel_from_many_threads_at_once_cancels_once_and_runs_callbacks_once() {
    for _ in 0..50 {
        let (_pool, release, _busy) = held_pool(None);
        let f = _pool.spawn(|| ()).unwrap();
        let ran = Arc::new(AtomicUsize::new(0));
        let r = ran.clone();
        f.add_done_callback(move |o| {
            assert!(matches!(o, Err(Error::Cancelled)));
            r.fetch_add(1, Ordering::SeqCst);
        });
        let f = Arc::new(f);
        let go = Arc::new(Barrier::new(4));
        let threads: Vec<_> = (0..4)
            .map(|_| {
                let (f, go) = (f.clone(), go.clone());
                std::thread::spawn(move || {
                    go.wait();
                    f.cancel()
                })
            })
            .collect();
        let answers: Vec<bool> = threads.into_iter().map(|t| t.join().unwrap()).collect();
        assert!(
            answers.iter().all(|&a| a),
            "cancel of a never-run task: {answers:?}"
        );
        assert_eq!(ran.load(Ordering::SeqCst), 1);
        assert!(f.cancelled() && f.done());
        release.send(()).unwrap();
    }
}

// ---------------------------------------------------------------------------------------------------
// Dropped pools and bounded queues

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropping_the_pool_while_its_queued_tasks_are_awaited_from_tokio() {
    let (pool, release, busy) = held_pool(None);
    let queued: Vec<_> = (0..20u32)
        .map(|i| pool.submit(|x: u32| x + 1, i).unwrap())
        .collect();
    drop(pool);
    let waiters: Vec<_> = queued.into_iter().map(tokio::spawn).collect();
    release.send(()).unwrap();
    for (i, w) in waiters.into_iter().enumerate() {
        let got = tokio::time::timeout(LONG, w)
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        assert_eq!(got, i as u32 + 1);
    }
    busy.await.unwrap();
}

#[tokio::test]
async fn a_dropped_waiting_submit_does_not_take_the_room_from_the_next_one() {
    let (pool, release, _busy) = held_pool(Some(1));
    let _fill = pool.try_spawn(|| 0u8).map_err(|_| "room for one").unwrap();
    // Two submitters wait for room; the first is given up on while it waits.
    let mut first = Box::pin(pool.spawn_async(|| 1u8));
    let mut second = Box::pin(pool.spawn_async(|| 2u8));
    assert!(futures::poll!(first.as_mut()).is_pending());
    assert!(futures::poll!(second.as_mut()).is_pending());
    drop(first);
    release.send(()).unwrap();
    let f = tokio::time::timeout(LONG, second)
        .await
        .expect("the room made went to the dropped submitter")
        .unwrap();
    assert_eq!(f.await.unwrap(), 2);
}

#[tokio::test]
async fn a_submit_waiting_for_room_when_a_callback_shuts_the_pool_down_ends_with_shutdown() {
    let (pool, release, busy) = held_pool(Some(1));
    let _fill = pool.try_spawn(|| 0u8).map_err(|_| "room for one").unwrap();
    let own = pool.clone();
    busy.add_done_callback(move |_| own.shutdown_nowait(Queued::Cancel));
    let mut waiting = Box::pin(pool.spawn_async(|| 1u8));
    assert!(futures::poll!(waiting.as_mut()).is_pending());
    release.send(()).unwrap();
    let got = tokio::time::timeout(LONG, waiting).await.unwrap();
    assert!(matches!(got, Err(Error::Shutdown)), "{got:?}");
}

#[test]
fn a_huge_max_workers_starts_threads_lazily() {
    let pool = ThreadPoolExecutor::new(usize::MAX).unwrap();
    let fs: Vec<_> = (0..8u32)
        .map(|i| pool.submit(|x: u32| x, i).unwrap())
        .collect();
    for (i, mut f) in fs.into_iter().enumerate() {
        assert_eq!(f.result(LONG).unwrap(), i as u32);
    }
    assert!(pool.metrics().workers <= 8);
    pool.shutdown(Queued::Run);
}

#[test]
fn a_zero_queue_capacity_is_refused_at_build() {
    let e = ThreadPoolExecutor::builder()
        .queue_capacity(0)
        .build()
        .unwrap_err();
    assert!(matches!(e, Error::InvalidArgument(_)), "{e:?}");
}

#[test]
fn a_stack_size_no_thread_can_have_fails_the_task_not_the_caller() {
    let pool = ThreadPoolExecutor::builder()
        .max_workers(1)
        .stack_size(usize::MAX / 2)
        .build()
        .unwrap();
    match pool.spawn(|| 1u8) {
        Err(e) => panic!("submit itself failed: {e:?}"),
        Ok(mut f) => {
            let got = f.result(LONG);
            assert!(matches!(got, Err(Error::BrokenThreadPool(_))), "{got:?}");
        }
    }
    pool.shutdown(Queued::Run);
}

// ---------------------------------------------------------------------------------------------------
// Wakers and callbacks that reach back into the future that woke or called them

/// A waker that, when woken, drops what it holds (an executor dropping a task it was told to poll):
/// on the thread that ends the future, possibly the last reference to it but the worker's own.
struct DropOnWake(Mutex<Option<Box<dyn Send>>>, mpsc::Sender<()>);

impl Wake for DropOnWake {
    fn wake(self: Arc<Self>) {
        let held = self.0.lock().unwrap().take();
        drop(held);
        let _ = self.1.send(());
    }
}

/// Polls `fut` with a waker that owns it from then on: the future keeps the waker, the waker keeps
/// the future, until the wake-up drops the future on the waking thread. Returns when that happened.
fn poll_and_hand_to_its_waker<F: Future + Send + Unpin + 'static>(
    mut fut: F,
) -> mpsc::Receiver<()> {
    let (tx, rx) = mpsc::channel();
    let w = Arc::new(DropOnWake(Mutex::new(None), tx));
    let waker = Waker::from(w.clone());
    assert!(Pin::new(&mut fut)
        .poll(&mut Context::from_waker(&waker))
        .is_pending());
    *w.0.lock().unwrap() = Some(Box::new(fut));
    rx
}

#[test]
fn wakers_that_drop_their_future_or_combinator_when_woken() {
    let pool = ThreadPoolExecutor::new(2).unwrap();
    for i in 0..100u32 {
        let (release, gate) = mpsc::channel::<()>();
        let gate = Arc::new(Mutex::new(gate));
        let gated = |pool: &ThreadPoolExecutor| {
            let gate = gate.clone();
            pool.spawn(move || {
                let _ = gate.lock().unwrap().recv();
                vec![i; 8]
            })
            .unwrap()
        };
        let dropped = [
            poll_and_hand_to_its_waker(gated(&pool)),
            poll_and_hand_to_its_waker(wait([gated(&pool)]).into_future()),
            poll_and_hand_to_its_waker(Box::pin(as_completed([gated(&pool)]).into_future())),
            poll_and_hand_to_its_waker({
                let mut set = CompletionSet::new();
                set.push(gated(&pool));
                Box::pin(async move { set.join_next().await })
            }),
        ];
        for _ in 0..4 {
            release.send(()).unwrap();
        }
        for rx in dropped {
            rx.recv_timeout(LONG)
                .expect("woken, and the future dropped");
        }
        assert_eq!(pool.submit(|x: u32| x, i).unwrap().result(LONG).unwrap(), i);
    }
}

#[test]
fn a_callback_asking_its_own_future_through_a_handle_neither_deadlocks_nor_cancels_it() {
    let (pool, release, busy) = held_pool(None);
    let f = pool.spawn(|| 3u8).unwrap();
    let h = f.handle();
    let (tx, rx) = mpsc::channel();
    f.add_done_callback(move |o| {
        let seen = (
            h.cancel(),
            h.interrupt(),
            h.done(),
            h.cancelled(),
            o.is_ok(),
        );
        let _ = tx.send(seen);
    });
    release.send(()).unwrap();
    let mut busy = busy;
    busy.result(LONG).unwrap();
    // While its callbacks run, the future is not done yet and can no longer be cancelled.
    assert_eq!(
        rx.recv_timeout(LONG).unwrap(),
        (false, false, false, false, true)
    );
    let mut f = f;
    assert_eq!(f.result(LONG).unwrap(), 3);
}

#[test]
fn a_callback_of_a_cancelled_future_cancelling_it_again_through_a_handle() {
    let (pool, release, _busy) = held_pool(None);
    let f = pool.spawn(|| 3u8).unwrap();
    let h = f.handle();
    let (tx, rx) = mpsc::channel();
    f.add_done_callback(move |o| {
        let _ = tx.send((h.cancel(), h.done(), matches!(o, Err(Error::Cancelled))));
    });
    assert!(f.cancel());
    // A second cancel racing the callbacks says the task will never run (documented on `cancel`).
    assert_eq!(rx.recv_timeout(LONG).unwrap(), (true, false, true));
    assert!(f.cancelled());
    release.send(()).unwrap();
}

#[test]
fn a_callback_completing_its_own_promise_again_is_refused_not_deadlocked() {
    let (promise, mut f) = Promise::<u32>::new();
    let promise = Arc::new(promise);
    let again = promise.clone();
    let (tx, rx) = mpsc::channel();
    f.add_done_callback(move |o| {
        let second = again.set_result(2).map_err(|e| e.to_string());
        let running = again.set_running();
        let error = again.set_error(Error::Timeout).is_err();
        let _ = tx.send((*o.as_ref().unwrap(), second.is_err(), running, error));
    });
    let setter = {
        let p = promise.clone();
        std::thread::spawn(move || p.set_result(1))
    };
    assert_eq!(rx.recv_timeout(LONG).unwrap(), (1, true, false, true));
    setter.join().unwrap().unwrap();
    assert_eq!(f.result(LONG).unwrap(), 1);
}

#[test]
fn debug_formatting_from_inside_callbacks_and_wakers_does_not_deadlock() {
    let (pool, release, busy) = held_pool(None);
    let f = Arc::new(pool.spawn(|| 1u8).unwrap());
    let h = f.handle();
    let (tx, rx) = mpsc::channel();
    f.add_done_callback(move |_| {
        let _ = tx.send(format!("{h:?}"));
    });
    // The waker formats the pool (its metrics lock) on the worker that ends the task.
    let own = pool.clone();
    let (wtx, wrx) = mpsc::channel();
    let waker = Waker::from(Arc::new(RunOnWakeOnce(Mutex::new(Some(Box::new(
        move || {
            let _ = wtx.send(format!("{own:?}"));
        },
    ))))));
    let mut g = pool.spawn(|| 2u8).unwrap();
    assert!(Pin::new(&mut g)
        .poll(&mut Context::from_waker(&waker))
        .is_pending());
    release.send(()).unwrap();
    assert!(!rx.recv_timeout(LONG).unwrap().is_empty());
    assert!(wrx
        .recv_timeout(LONG)
        .unwrap()
        .contains("ThreadPoolExecutor"));
    drop(busy);
    assert_eq!(g.result(LONG).unwrap(), 2);
}

/// Runs its closure (once) on the thread that wakes it.
struct RunOnWakeOnce(Mutex<Option<Box<dyn FnOnce() + Send>>>);

impl Wake for RunOnWakeOnce {
    fn wake(self: Arc<Self>) {
        let run = self.0.lock().unwrap().take();
        if let Some(run) = run {
            run();
        }
    }
}

#[test]
fn wait_first_exception_ignores_cancelled_futures_as_cpython_does() {
    let (_pool, release, _busy) = held_pool(None);
    let cancelled = _pool.spawn(|| 1u8).unwrap();
    assert!(cancelled.cancel());
    let (_p, pending) = Promise::<u8>::new();
    let done = wait([&cancelled, &pending])
        .return_when(ReturnWhen::FirstException)
        .timeout(Duration::ZERO)
        .blocking();
    assert_eq!((done.done.len(), done.not_done.len()), (1, 1));
    // With a zero timeout it returned at once; without one it would wait for `pending`.
    let mut w = Box::pin(
        wait([&cancelled, &pending])
            .return_when(ReturnWhen::FirstException)
            .into_future(),
    );
    assert!(w
        .as_mut()
        .poll(&mut Context::from_waker(futures::task::noop_waker_ref()))
        .is_pending());
    release.send(()).unwrap();
}

#[test]
fn zero_timeouts_over_futures_all_done_report_no_timeout() {
    let pool = ThreadPoolExecutor::new(2).unwrap();
    let fs: Vec<_> = (0..4u8)
        .map(|i| pool.submit(|x: u8| x, i).unwrap())
        .collect();
    let done = wait(&fs).blocking();
    assert_eq!(done.done.len(), 4);
    let all: Vec<_> = as_completed(&fs)
        .timeout(Duration::ZERO)
        .into_iter()
        .collect();
    assert_eq!(all.len(), 4);
    assert!(
        all.iter().all(Result::is_ok),
        "no timeout error when nothing is pending"
    );
    let all = futures::executor::block_on(
        as_completed(&fs)
            .timeout(Duration::ZERO)
            .collect::<Vec<_>>(),
    );
    assert!(all.len() == 4 && all.iter().all(Result::is_ok));
    let done = futures::executor::block_on(wait(&fs).timeout(Duration::ZERO).into_future());
    assert_eq!(done.done.len(), 4);
}

#[test]
fn exception_after_the_value_was_taken_reports_no_failure() {
    let pool = ThreadPoolExecutor::new(1).unwrap();
    let mut f = pool.spawn(|| 1u8).unwrap();
    assert_eq!(f.result(LONG).unwrap(), 1);
    let e = f.exception(Duration::ZERO);
    assert!(matches!(e, Ok(None)), "{e:?}");
    assert!(f.done() && !f.cancelled());
}

/// Counts its drops.
struct Dropped(Arc<AtomicUsize>);

impl Drop for Dropped {
    fn drop(&mut self) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

#[tokio::test]
async fn a_waiting_submit_dropped_in_a_select_drops_its_closure_and_never_runs_it() {
    let (pool, release, busy) = held_pool(Some(1));
    let _fill = pool.try_spawn(|| ()).map_err(|_| "room for one").unwrap();
    let (drops, ran) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let (d, r) = (Dropped(drops.clone()), ran.clone());
    let submit = pool.spawn_async(move || {
        let _d = d;
        r.fetch_add(1, Ordering::SeqCst);
    });
    tokio::select! {
        biased;
        _ = submit => panic!("the queue is full"),
        () = std::future::ready(()) => {}
    }
    assert_eq!(drops.load(Ordering::SeqCst), 1, "dropped with the submit");
    release.send(()).unwrap();
    busy.await.unwrap();
    pool.shutdown_async(Queued::Run).await;
    assert_eq!(ran.load(Ordering::SeqCst), 0);
    assert_eq!(pool.metrics().queued, 0);
}

// ---------------------------------------------------------------------------------------------------
// Races: a cancelling shutdown against the workers' claims, retirement against a submit's credit

#[test]
fn a_cancelling_shutdown_racing_the_workers_ends_every_future_once_and_truthfully() {
    for _ in 0..100 {
        let pool = ThreadPoolExecutor::new(2).unwrap();
        let ran: Arc<Vec<AtomicUsize>> = Arc::new((0..16).map(|_| AtomicUsize::new(0)).collect());
        let go = Arc::new(Barrier::new(2));
        let fs: Vec<_> = (0..16usize)
            .map(|i| {
                let (ran, go) = (ran.clone(), go.clone());
                pool.spawn(move || {
                    if i == 0 {
                        go.wait();
                    }
                    ran[i].fetch_add(1, Ordering::SeqCst);
                })
                .unwrap()
            })
            .collect();
        let closer = {
            let (pool, go) = (pool.clone(), go.clone());
            std::thread::spawn(move || {
                go.wait();
                pool.shutdown(Queued::Cancel);
            })
        };
        let done = wait(&fs).timeout(LONG).blocking();
        assert_eq!(done.not_done.len(), 0, "every future ends");
        closer.join().unwrap();
        for (i, f) in fs.iter().enumerate() {
            let runs = ran[i].load(Ordering::SeqCst);
            if f.cancelled() {
                assert_eq!(runs, 0, "task {i} reported cancelled but ran");
            } else {
                assert_eq!(runs, 1, "task {i} reported finished but ran {runs} times");
            }
        }
    }
}

#[test]
fn a_nanosecond_keep_alive_loses_no_credit_to_a_retiring_worker() {
    let pool = ThreadPoolExecutor::builder()
        .max_workers(2)
        .keep_alive(Duration::from_nanos(1))
        .build()
        .unwrap();
    for i in 0..3000u32 {
        let mut f = pool.submit(|x: u32| x, i).unwrap();
        assert_eq!(f.result(LONG).unwrap(), i);
        if i % 3 == 0 {
            // Two at once, so a second thread comes and goes too.
            let a = pool.submit(|x: u32| x, i).unwrap();
            let b = pool.submit(|x: u32| x + 1, i).unwrap();
            let done = wait([a, b]).timeout(LONG).blocking();
            assert_eq!(done.done.len(), 2);
        }
    }
    pool.shutdown(Queued::Run);
}

// ---------------------------------------------------------------------------------------------------
// A bounded queue's room and the tasks cancelled in it

#[test]
fn cancelling_a_queued_task_makes_room_for_the_next_submit() {
    let (pool, release, busy) = held_pool(Some(2));
    let a = pool.try_spawn(|| 1u8).map_err(|_| "room").unwrap();
    let b = pool.try_spawn(|| 2u8).map_err(|_| "room").unwrap();
    assert!(pool.try_spawn(|| 3u8).is_err(), "full");
    // Load shedding: the queued work is given up on, so the queue waits for nothing.
    assert!(a.cancel() && b.cancel());
    let mut c = pool
        .try_spawn(|| 3u8)
        .map_err(|r| r.error().to_string())
        .expect("a cancelled task still took room in the queue");
    let mut d = pool.try_spawn(|| 4u8).map_err(|_| "room").unwrap();
    assert!(pool.try_spawn(|| 5u8).is_err(), "full again");
    let m = pool.metrics();
    assert_eq!((m.queued, m.cancelled), (2, 2));
    release.send(()).unwrap();
    assert_eq!((c.result(LONG).unwrap(), d.result(LONG).unwrap()), (3, 4));
    drop(busy);
}

#[test]
fn a_blocking_submit_on_a_full_queue_of_cancelled_tasks_does_not_wait() {
    let (pool, release, busy) = held_pool(Some(1));
    let a = pool.try_spawn(|| 1u8).map_err(|_| "room").unwrap();
    assert!(a.cancel());
    // The worker is held until the submit returns: a submit waiting for it to take a task would
    // wait forever, so run it on a thread and bound the wait.
    let (tx, rx) = mpsc::channel();
    let p = pool.clone();
    std::thread::spawn(move || {
        let _ = tx.send(p.spawn(|| 2u8).map(|_| ()).map_err(|e| e.to_string()));
    });
    let got = rx.recv_timeout(Duration::from_secs(5));
    release.send(()).unwrap();
    assert_eq!(got, Ok(Ok(())), "submit waited behind a cancelled task");
    drop(busy);
}

#[tokio::test]
async fn an_async_submit_on_a_full_queue_of_cancelled_tasks_gets_in_at_once() {
    let (pool, release, busy) = held_pool(Some(1));
    let a = pool.try_spawn(|| 1u8).map_err(|_| "room").unwrap();
    assert!(a.cancel());
    let mut submit = Box::pin(pool.spawn_async(|| 2u8));
    let got = futures::poll!(submit.as_mut());
    release.send(()).unwrap();
    match got {
        Poll::Ready(f) => assert_eq!(f.unwrap().await.unwrap(), 2),
        Poll::Pending => panic!("the submit waited behind a cancelled task"),
    }
    busy.await.unwrap();
}
