//! Who is woken when a future ends, and whose wakers a future keeps: its owner's (`.await`,
//! `result()`) and its watchers' (`wait`, `as_completed`, `exception()`). The first of them to register
//! is kept in the future itself, the others in a list; these tests cover each side of that split.

mod common;

use std::future::{Future, IntoFuture};
use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};
use std::time::Duration;

use concurrent_futures::{as_completed, wait, Promise, ReturnWhen, ThreadPoolExecutor};
use futures::StreamExt;

use common::wakers::{counting, Counting};

fn woken(c: &Counting) -> usize {
    c.0.load(Ordering::SeqCst)
}

#[test]
fn the_owner_and_a_watcher_registered_after_it_are_both_woken() {
    let (promise, mut f) = Promise::<u32>::new();
    let (owner, owner_waker) = counting();
    assert!(Pin::new(&mut f)
        .poll(&mut Context::from_waker(&owner_waker))
        .is_pending());
    let (watcher, watcher_waker) = counting();
    {
        let mut w = Box::pin(
            wait([&f])
                .return_when(ReturnWhen::FirstCompleted)
                .into_future(),
        );
        assert!(w
            .as_mut()
            .poll(&mut Context::from_waker(&watcher_waker))
            .is_pending());
        promise.set_result(7).unwrap();
        assert_eq!((woken(&owner), woken(&watcher)), (1, 1));
        match w.as_mut().poll(&mut Context::from_waker(&watcher_waker)) {
            Poll::Ready(done) => assert_eq!(done.done.len(), 1),
            Poll::Pending => panic!("the wait must see its future done"),
        }
    }
    assert_eq!(futures::executor::block_on(f).unwrap(), 7);
}

#[test]
fn a_watcher_that_never_unregisters_does_not_keep_the_owner_from_being_woken() {
    // A forgotten wait leaves its waker in the future (in the slot the owner would otherwise use):
    // the owner's registration goes to the list instead, and both are woken at the end.
    let (promise, mut f) = Promise::<u32>::new();
    let (watcher, watcher_waker) = counting();
    let mut w = Box::pin(wait([&f]).into_future());
    assert!(w
        .as_mut()
        .poll(&mut Context::from_waker(&watcher_waker))
        .is_pending());
    std::mem::forget(w);
    let (owner, owner_waker) = counting();
    assert!(Pin::new(&mut f)
        .poll(&mut Context::from_waker(&owner_waker))
        .is_pending());
    promise.set_result(3).unwrap();
    assert_eq!((woken(&owner), woken(&watcher)), (1, 1));
    assert_eq!(futures::executor::block_on(f).unwrap(), 3);
}

#[test]
fn dropping_a_future_drops_its_owners_waker_wherever_it_was_kept() {
    // Detaching must not keep the owner's waker (and what it would wake) alive until the task ends:
    // whether the waker sits in the future's own slot or, a watcher holding that, in the list.
    for watcher_first in [false, true] {
        let (promise, mut f) = Promise::<u32>::new();
        let (_watcher, watcher_waker) = counting();
        if watcher_first {
            let mut w = Box::pin(wait([&f]).into_future());
            let _ = w.as_mut().poll(&mut Context::from_waker(&watcher_waker));
            std::mem::forget(w);
        }
        let (owner, owner_waker) = counting();
        assert!(Pin::new(&mut f)
            .poll(&mut Context::from_waker(&owner_waker))
            .is_pending());
        drop(owner_waker);
        assert_eq!(Arc::strong_count(&owner), 2, "the future keeps one clone");
        drop(f);
        assert_eq!(
            Arc::strong_count(&owner),
            1,
            "watcher first: {watcher_first}"
        );
        drop(promise);
    }
}

#[test]
fn a_finished_wait_leaves_no_waker_in_its_futures() {
    // 100 futures watched by two waits at once (one in each future's own slot, one in its list),
    // one of which ends: the rest hold none of their wakers afterwards.
    let pairs: Vec<_> = (0..100).map(|_| Promise::<u32>::new()).collect();
    let futures: Vec<_> = pairs.iter().map(|(_, f)| f).collect();
    let (first, first_waker) = counting();
    let (second, second_waker) = counting();
    let mut a = Box::pin(
        wait(futures.iter().copied())
            .return_when(ReturnWhen::FirstCompleted)
            .into_future(),
    );
    let mut b = Box::pin(
        wait(futures.iter().copied())
            .return_when(ReturnWhen::FirstCompleted)
            .into_future(),
    );
    assert!(a
        .as_mut()
        .poll(&mut Context::from_waker(&first_waker))
        .is_pending());
    assert!(b
        .as_mut()
        .poll(&mut Context::from_waker(&second_waker))
        .is_pending());
    pairs[42].0.set_result(42).unwrap();
    for (w, waker) in [(&mut a, &first_waker), (&mut b, &second_waker)] {
        match w.as_mut().poll(&mut Context::from_waker(waker)) {
            Poll::Ready(done) => assert_eq!(done.done.len(), 1),
            Poll::Pending => panic!("both waits must see the finished future"),
        }
    }
    drop((a, b, first_waker, second_waker));
    assert_eq!(
        (Arc::strong_count(&first), Arc::strong_count(&second)),
        (1, 1)
    );
}

#[test]
fn as_completed_over_pool_tasks_yields_each_once() {
    let pool = ThreadPoolExecutor::new(2).unwrap();
    let futures: Vec<_> = (0..1000u64)
        .map(|i| pool.submit(|i: u64| i, i).unwrap())
        .collect();
    let mut seen: Vec<u64> = futures::executor::block_on(async {
        as_completed(futures)
            .then(|f| async move { f.unwrap().await.unwrap() })
            .collect()
            .await
    });
    seen.sort_unstable();
    assert_eq!(seen, (0..1000).collect::<Vec<_>>());
}

/// A waker that panics when woken: the caller's code, run by whichever thread ends the future.
struct Panicking;

impl Wake for Panicking {
    fn wake(self: Arc<Self>) {
        panic!("a waker that panics");
    }
}

#[test]
fn a_panicking_waker_neither_unwinds_into_the_settler_nor_stops_the_other_wake_ups() {
    let (promise, mut f) = Promise::<u32>::new();
    let panicking = Waker::from(Arc::new(Panicking));
    assert!(Pin::new(&mut f)
        .poll(&mut Context::from_waker(&panicking))
        .is_pending());
    let (watcher, watcher_waker) = counting();
    let mut w = Box::pin(
        wait([&f])
            .return_when(ReturnWhen::FirstCompleted)
            .into_future(),
    );
    assert!(w
        .as_mut()
        .poll(&mut Context::from_waker(&watcher_waker))
        .is_pending());
    // Before: the owner's waker unwound out of set_result, and the watcher was never woken.
    promise.set_result(7).unwrap();
    assert_eq!(woken(&watcher), 1);
    drop(w);
    assert_eq!(futures::executor::block_on(f).unwrap(), 7);
}

#[test]
fn a_panicking_waker_does_not_take_the_worker_down() {
    let pool = ThreadPoolExecutor::new(1).unwrap();
    let (release, gate) = std::sync::mpsc::channel::<()>();
    let mut first = pool
        .spawn(move || {
            gate.recv().unwrap();
            1
        })
        .unwrap();
    let panicking = Waker::from(Arc::new(Panicking));
    assert!(Pin::new(&mut first)
        .poll(&mut Context::from_waker(&panicking))
        .is_pending());
    release.send(()).unwrap();
    assert_eq!(first.result(None).unwrap(), 1);
    // The one worker woke the panicking waker; it must still be there to run the next task.
    let mut second = pool.spawn(|| 2).unwrap();
    assert_eq!(
        second.result(std::time::Duration::from_secs(30)).unwrap(),
        2
    );
    assert_eq!(pool.metrics().workers, 1);
}

/// A waker that asks its own future's state when the last clone of it goes, as a task that holds the
/// future does when its final waker is dropped.
struct AsksOnDrop(concurrent_futures::TaskHandle);

impl Wake for AsksOnDrop {
    fn wake(self: Arc<Self>) {}
}

impl Drop for AsksOnDrop {
    fn drop(&mut self) {
        let _ = self.0.running();
    }
}

/// A poll with a new waker replaces the owner's old one; the old waker's drop may run code that
/// reaches the same future, so the future drops it only after releasing its lock (or the thread
/// deadlocks on itself).
#[test]
fn a_replaced_waker_is_dropped_after_the_future_lets_go_of_its_lock() {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let (promise, mut f) = Promise::<u32>::new();
        let asks = Waker::from(Arc::new(AsksOnDrop(f.handle())));
        let mut cx = Context::from_waker(&asks);
        assert!(Pin::new(&mut f).poll(&mut cx).is_pending());
        drop(asks); // the future holds the only clone now
        let (_, other) = counting();
        let mut cx = Context::from_waker(&other);
        assert!(Pin::new(&mut f).poll(&mut cx).is_pending());
        promise.set_result(7).unwrap();
        let _ = tx.send(());
    });
    rx.recv_timeout(std::time::Duration::from_secs(30))
        .expect("the poll that replaced the waker deadlocked on the future's lock");
}

/// Runs its closure (once) on the thread that wakes it: an inline executor's waker, which resumes the
/// waiting code right there.
struct RunOnWake(std::sync::Mutex<Option<Box<dyn FnOnce() + Send>>>);

impl Wake for RunOnWake {
    fn wake(self: Arc<Self>) {
        let run = self.0.lock().unwrap().take();
        if let Some(run) = run {
            run();
        }
    }
}

#[test]
fn a_waker_that_submits_to_the_same_pool_and_waits_gets_another_worker() {
    let pool = ThreadPoolExecutor::new(2).unwrap();
    let (release, gate) = std::sync::mpsc::channel::<()>();
    let mut first = pool.spawn(move || gate.recv().map(|()| 1)).unwrap();
    let (got_tx, got) = std::sync::mpsc::channel();
    let own = pool.clone();
    let resume: Box<dyn FnOnce() + Send> = Box::new(move || {
        // Woken on the worker that ran `first`, after it published: it must not count on that
        // worker for the task it submits now.
        let second = own
            .spawn(|| 2)
            .and_then(|mut f| f.result(Duration::from_secs(30)));
        let _ = got_tx.send(second.map_err(|e| e.to_string()));
    });
    let waker = Waker::from(Arc::new(RunOnWake(std::sync::Mutex::new(Some(resume)))));
    assert!(Pin::new(&mut first)
        .poll(&mut Context::from_waker(&waker))
        .is_pending());
    release.send(()).unwrap();
    assert_eq!(got.recv().unwrap(), Ok(2));
    assert_eq!(first.result(Duration::from_secs(30)).unwrap().unwrap(), 1);
}
