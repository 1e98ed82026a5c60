//! The handles behave as the async ecosystem expects: fused futures and streams for `futures::select!`,
//! unwind safety, panics that can be re-raised, rejected work handed back, a dynamic completion set, and
//! cloneable task handles.

mod common;

use std::panic::{RefUnwindSafe, UnwindSafe};
use std::sync::mpsc;

use common::threads::Gate;
use common::LONG;
use concurrent_futures::{as_completed, CancelOnDrop, Error, PoolFuture, ThreadPoolExecutor};
use futures::future::FusedFuture;
use futures::stream::FusedStream;
use futures::StreamExt;

// Compile-time: these hold for every `T`, even one that is neither `UnwindSafe` nor `Sync`.
const _: () = {
    fn unwind_safe<X: UnwindSafe + RefUnwindSafe>() {}
    fn send_sync<X: Send + Sync>() {}
    fn check() {
        unwind_safe::<PoolFuture<std::cell::Cell<u8>>>();
        unwind_safe::<PoolFuture<std::rc::Rc<u8>>>();
        unwind_safe::<CancelOnDrop<std::cell::Cell<u8>>>();
        unwind_safe::<Error>();
        send_sync::<PoolFuture<std::cell::Cell<u8>>>();
        send_sync::<Error>();
    }
    let _ = check;
};

#[test]
fn a_pool_future_is_usable_inside_catch_unwind() {
    let pool = ThreadPoolExecutor::new(1).unwrap();
    let mut f = pool.submit(|n: u32| n + 1, 1).unwrap();
    // No AssertUnwindSafe needed.
    let got = std::panic::catch_unwind(move || f.result(LONG).unwrap()).unwrap();
    assert_eq!(got, 2);
}

#[test]
fn select_takes_pool_futures_without_fuse_and_skips_finished_branches() {
    let pool = ThreadPoolExecutor::new(2).unwrap();
    let gate = Gate::default();
    let _open = gate.guard();
    let g = gate.clone();
    let mut slow = pool
        .spawn(move || {
            g.wait();
            "slow"
        })
        .unwrap();
    let mut fast = pool.spawn(|| "fast").unwrap();
    assert!(!fast.is_terminated());
    let mut order = Vec::new();
    futures::executor::block_on(async {
        loop {
            futures::select! {
                s = slow => order.push(s.unwrap()),
                f = fast => {
                    order.push(f.unwrap());
                    // Only now may the slow one finish: its branch must come second.
                    gate.open();
                }
                complete => break,
            }
        }
    });
    assert_eq!(order, ["fast", "slow"]);
    assert!(fast.is_terminated() && slow.is_terminated());
}

#[test]
fn a_result_taken_by_blocking_terminates_the_future_but_a_timeout_does_not() {
    let pool = ThreadPoolExecutor::new(1).unwrap();
    let (tx, rx) = mpsc::channel::<u8>();
    let mut f = pool.spawn(move || rx.recv().unwrap()).unwrap();
    assert!(matches!(
        f.result(std::time::Duration::ZERO),
        Err(Error::Timeout)
    ));
    assert!(!f.is_terminated());
    tx.send(3).unwrap();
    assert_eq!(f.result(LONG).unwrap(), 3);
    assert!(f.is_terminated());
}

#[test]
fn select_takes_as_completed_and_map_streams_without_fuse() {
    let pool = ThreadPoolExecutor::new(2).unwrap();
    let futures: Vec<_> = (1..=3u32)
        .map(|i| pool.submit(|i: u32| i * 10, i).unwrap())
        .collect();
    let mut completed = as_completed(futures);
    let mut mapped = pool.map(|n: u32| n + 1, 0..4).unwrap();
    let (mut from_completed, mut from_map) = (0, Vec::new());
    futures::executor::block_on(async {
        loop {
            futures::select! {
                f = completed.next() => match f {
                    Some(f) => from_completed += f.unwrap().await.unwrap(),
                    None => assert!(completed.is_terminated()),
                },
                r = mapped.next() => match r {
                    Some(r) => from_map.push(r.unwrap()),
                    None => assert!(mapped.is_terminated()),
                },
                complete => break,
            }
        }
    });
    assert_eq!(from_completed, 60);
    assert_eq!(from_map, [1, 2, 3, 4]);
}

#[test]
fn an_expired_as_completed_is_terminated_only_after_it_returned_none() {
    let pool = ThreadPoolExecutor::new(1).unwrap();
    let gate = Gate::default();
    let _open = gate.guard();
    let g = gate.clone();
    let stuck = pool.spawn(move || g.wait()).unwrap();
    let mut completed = as_completed([&stuck]).timeout(std::time::Duration::from_millis(1));
    futures::executor::block_on(async {
        assert!(matches!(
            completed.next().await,
            Some(Err(Error::Unfinished { .. }))
        ));
        assert!(!completed.is_terminated());
        assert!(completed.next().await.is_none());
        assert!(completed.is_terminated());
    });
}

#[derive(Debug, PartialEq)]
struct Oops(u32);

fn panic_of<T: std::fmt::Debug>(outcome: Result<T, Error>) -> concurrent_futures::Panic {
    match outcome {
        Err(Error::Panicked(p)) => p,
        other => panic!("expected a panic, got {other:?}"),
    }
}

#[test]
fn a_panic_keeps_message_location_and_backtrace_as_asked() {
    let pool = ThreadPoolExecutor::new(1).unwrap();
    let line = line!() + 1;
    let mut f = pool.spawn(|| -> u8 { panic!("no {}", 5) }).unwrap();
    let p = panic_of(f.result(LONG));
    assert_eq!(p, "no 5");
    assert_eq!(p.to_string(), "no 5");
    assert_eq!(p.location(), Some(&*format!("tests/handles.rs:{line}:39")));
    let asked =
        std::backtrace::Backtrace::capture().status() == std::backtrace::BacktraceStatus::Captured;
    assert_eq!(p.backtrace().is_some(), asked);
    if let Some(bt) = p.backtrace() {
        assert!(bt.contains("handles"), "{bt}");
    }
    let e = Error::Panicked(p);
    assert_eq!(
        e.to_string(),
        format!("the task panicked at tests/handles.rs:{line}:39: no 5")
    );
    assert_eq!(format!("{e:#}").contains("stack backtrace:"), asked);
}

#[test]
fn the_first_taker_gets_the_original_payload_and_later_ones_the_message() {
    let pool = ThreadPoolExecutor::new(1).unwrap();
    let mut f = pool
        .spawn(|| -> u8 { std::panic::panic_any(Oops(7)) })
        .unwrap();
    let p = panic_of(f.result(LONG));
    assert_eq!(p.message(), "Box<dyn Any>");
    let copy = p.clone();
    assert_eq!(*p.into_panic().downcast::<Oops>().unwrap(), Oops(7));
    // The payload went to the first taker; a clone gets the message as a String.
    let again = copy.into_panic().downcast::<String>().unwrap();
    assert_eq!(*again, "Box<dyn Any>");
    // The future keeps its error; asking again gives the same (shared) panic, payload gone.
    let later = panic_of(f.result(LONG));
    assert!(later.into_panic().downcast::<Oops>().is_err());
}

#[test]
fn resume_unwind_re_raises_the_original_payload() {
    let pool = ThreadPoolExecutor::new(1).unwrap();
    let mut f = pool
        .spawn(|| -> u8 { std::panic::panic_any(Oops(9)) })
        .unwrap();
    let caught = std::panic::catch_unwind(move || match f.result(LONG) {
        Err(Error::Panicked(p)) => p.resume_unwind(),
        other => other,
    });
    assert_eq!(*caught.unwrap_err().downcast::<Oops>().unwrap(), Oops(9));
}

#[test]
fn a_map_elements_panic_has_its_own_location() {
    let pool = ThreadPoolExecutor::new(1).unwrap();
    let opts = concurrent_futures::MapOptions::new().chunksize(4);
    let line = line!() + 2;
    let results: Vec<_> = pool
        .map_with(|n: u32| if n == 2 { panic!("two") } else { n }, 0..4, opts)
        .unwrap()
        .into_iter()
        .collect();
    let p = panic_of(results[2].clone());
    assert_eq!(p, "two");
    assert!(
        p.location()
            .unwrap()
            .starts_with(&format!("tests/handles.rs:{line}:")),
        "{p:?}"
    );
    assert_eq!(results[3].as_ref().unwrap(), &3);
}
