//! Timeouts under an executor other than tokio cost no thread per deadline. This file holds one test
//! on purpose: the test harness runs the tests of one file on threads of their own, which would blur
//! the thread count it checks.

mod common;

use std::future::IntoFuture;
use std::pin::pin;
use std::task::Poll;
use std::time::Duration;

use common::threads::thread_count;
use concurrent_futures::{as_completed, wait, Promise};
use futures::{FutureExt, StreamExt};

// Each wait arms its 60 s deadline (first poll pending), then returns because its future completes.
// The shared timer thread is started by the first deadline of the process, so the count is taken
// after one warm-up wait; 200 more must not add a thread, nor leave one sleeping out its timeout.
#[test]
fn many_long_timeouts_under_block_on_add_no_threads() {
    fn one_wait() {
        let (p, f) = Promise::<u32>::new();
        futures::executor::block_on(async {
            let mut w = pin!(wait([&f]).timeout(Duration::from_secs(60)).into_future());
            assert!(matches!(futures::poll!(&mut w), Poll::Pending), "armed");
            p.set_result(7).unwrap();
            let done = w.await;
            assert_eq!((done.done.len(), done.not_done.len()), (1, 0));
        });
    }
    fn one_as_completed() {
        let (p, f) = Promise::<u32>::new();
        futures::executor::block_on(async {
            let mut s = as_completed([&f]).timeout(Duration::from_secs(60));
            assert!(s.next().now_or_never().is_none(), "armed");
            p.set_result(7).unwrap();
            assert!(s.next().await.unwrap().is_ok());
        });
    }

    one_wait();
    let before = thread_count();
    for _ in 0..100 {
        one_wait();
        one_as_completed();
    }
    let after = thread_count();
    assert_eq!(
        after, before,
        "200 deadlines of 60 s must leave the thread count unchanged"
    );
}
