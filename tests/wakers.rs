//! Who is woken when a future ends, and whose wakers a future keeps: its owner's (`.await`,
//! `result()`) and its watchers' (`wait`, `as_completed`, `exception()`). The first of them to register
//! is kept in the future itself, the others in a list; these tests cover each side of that split.

use std::future::{Future, IntoFuture};
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};

use concurrent_futures::{as_completed, wait, Promise, ReturnWhen, ThreadPoolExecutor};
use futures::StreamExt;

/// Counts its wake-ups; its `Arc`'s strong count tells how many clones of it a future keeps.
#[derive(Default)]
struct Counting(AtomicUsize);

impl Wake for Counting {
    fn wake(self: Arc<Self>) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

fn counting() -> (Arc<Counting>, Waker) {
    let c = Arc::new(Counting::default());
    (c.clone(), Waker::from(c))
}

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
