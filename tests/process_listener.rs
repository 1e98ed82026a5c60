//! Who reads a process task's reply. A caller blocked in `result()` reads it itself and the worker's
//! driver sleeps through it; anything else that waits for the task has the driver read it: a poll, a
//! `wait`, a done callback, a dropped future, a look at its state (`done`, `running`, `cancelled`,
//! a handle's), a `result` or `exception` whose timeout passes, a task queued behind it, a shutdown,
//! the pool's metrics.
//!
//! Each test hands the reply to the driver through one of those alone, then watches for the reply
//! being read without looking at the future again: the result's `Deserialize` counts its reads
//! ([`Seen`]). A missing hand-off fails the test after [`LONG`] instead of hanging it.

mod common;

use std::future::Future as _;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::task::Context;
use std::time::{Duration, Instant};

use common::LONG;
use concurrent_futures::{wait, Error, PoolFuture, ProcessPoolExecutor, Queued, ReturnWhen};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Reads of a [`Seen`] reply in this process, by the `u32` it carries (one per test).
static READS: [AtomicUsize; 16] = [const { AtomicUsize::new(0) }; 16];

/// A result whose decoding in the parent is counted: the reply was read, by someone.
#[derive(Debug, PartialEq)]
struct Seen(u32);

impl Serialize for Seen {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.0.serialize(s)
    }
}

impl<'de> Deserialize<'de> for Seen {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let id = u32::deserialize(d)?;
        READS[id as usize].fetch_add(1, Ordering::SeqCst);
        Ok(Seen(id))
    }
}

fn seen(id: u32) -> Seen {
    Seen(id)
}

fn echo(x: u32) -> u32 {
    x
}

/// Whether the reply of the task `seen(id)` was read within [`LONG`], looking only at the count.
fn read_within(id: u32) -> bool {
    let end = Instant::now() + LONG;
    while Instant::now() < end {
        if READS[id as usize].load(Ordering::SeqCst) > 0 {
            return true;
        }
        std::thread::yield_now();
    }
    false
}

/// A one-worker pool whose worker is up, after blocking round trips: once a blocking caller has read
/// a reply itself, the next task's reply is left to its caller until something hands it to the
/// driver. (The first task may be read by the driver: it is queued while the worker starts, and
/// its blocked caller attends to it. A later one may be too, if its reply arrives before its caller
/// takes the socket, but ten in a row hardly are.)
fn pool() -> ProcessPoolExecutor {
    let pool = ProcessPoolExecutor::new(1).unwrap();
    for i in 0..10 {
        assert_eq!(pool.submit(echo, i).unwrap().result(None).unwrap(), i);
    }
    // A reply the driver read is published before the driver lists the worker idle: wait for
    // that, so the next task goes to the worker at its submit instead of to the queue.
    let end = Instant::now() + LONG;
    while pool.metrics().idle != 1 {
        assert!(Instant::now() < end, "the worker never went idle");
        std::thread::yield_now();
    }
    pool
}

/// Submits `seen(id)` to the idle worker of `pool`: its reply is left to its caller.
fn unread(pool: &ProcessPoolExecutor, id: u32) -> PoolFuture<Seen> {
    pool.submit(seen, id).unwrap()
}

#[test]
fn a_future_looked_at_once_by_done_is_read_by_the_driver() {
    let pool = pool();
    let mut f = unread(&pool, 0);
    let _ = f.done();
    assert!(
        read_within(0),
        "done() did not hand the reply to the driver"
    );
    // Decoded, then published: the outcome follows at once.
    assert_eq!(f.result(LONG).unwrap(), Seen(0));
}

#[test]
fn a_future_looked_at_once_by_running_is_read_by_the_driver() {
    let pool = pool();
    let mut f = unread(&pool, 1);
    let _ = f.running();
    assert!(
        read_within(1),
        "running() did not hand the reply to the driver"
    );
    assert!(!f.cancelled());
    assert_eq!(f.result(LONG).unwrap(), Seen(1));
}

#[test]
fn a_dropped_future_s_reply_is_read_by_the_driver() {
    let pool = pool();
    drop(unread(&pool, 2));
    assert!(
        read_within(2),
        "dropping the future did not hand the reply to the driver"
    );
}

#[test]
fn a_result_that_times_out_leaves_the_reply_to_the_driver() {
    let pool = pool();
    let mut f = unread(&pool, 3);
    // The call hands the reply over before its last look, which the driver may just beat.
    match f.result(Duration::ZERO) {
        Err(Error::Timeout) => {
            assert!(
                read_within(3),
                "a timed-out result() did not hand the reply to the driver"
            );
            assert_eq!(f.result(LONG).unwrap(), Seen(3));
        }
        other => assert_eq!(other.unwrap(), Seen(3)),
    }
}

#[test]
fn an_exception_that_times_out_leaves_the_reply_to_the_driver() {
    let pool = pool();
    let f = unread(&pool, 4);
    match f.exception(Duration::ZERO) {
        Err(Error::Timeout) => assert!(
            read_within(4),
            "a timed-out exception() did not hand the reply to the driver"
        ),
        other => assert!(matches!(other, Ok(None)), "{other:?}"),
    }
}

#[test]
fn a_done_callback_is_run_by_the_driver() {
    let pool = pool();
    let f = unread(&pool, 5);
    let (tx, rx) = mpsc::channel();
    f.add_done_callback(move |r| tx.send(r.as_ref().ok().map(|s| s.0)).unwrap());
    assert_eq!(rx.recv_timeout(LONG), Ok(Some(5)));
}

#[test]
fn a_future_polled_once_is_read_by_the_driver() {
    let pool = pool();
    let mut f = unread(&pool, 6);
    let (tx, rx) = mpsc::channel::<()>();
    let waker = waker_fn(move || {
        let _ = tx.send(());
    });
    if std::pin::Pin::new(&mut f)
        .poll(&mut Context::from_waker(&waker))
        .is_pending()
    {
        rx.recv_timeout(LONG)
            .expect("the poll's waker was never woken");
    }
    assert!(READS[6].load(Ordering::SeqCst) > 0);
}

#[test]
fn a_handle_looked_at_once_hands_the_reply_to_the_driver() {
    let pool = pool();
    let f = unread(&pool, 7);
    let _ = f.handle().done();
    assert!(
        read_within(7),
        "a handle's done() did not hand the reply to the driver"
    );
}

#[test]
fn a_wait_on_the_future_hands_the_reply_to_the_driver() {
    let pool = pool();
    let f = unread(&pool, 8);
    let done = wait([&f])
        .return_when(ReturnWhen::AllCompleted)
        .timeout(LONG)
        .blocking();
    assert_eq!(done.done.len(), 1, "wait() timed out");
}

#[test]
fn a_task_queued_behind_an_unread_reply_runs() {
    let pool = pool();
    let first = unread(&pool, 9);
    // The only worker is busy until its reply is read: this one waits in the queue, and its
    // caller cannot read the first task's reply.
    let mut second = pool.submit(echo, 2).unwrap();
    assert_eq!(second.result(LONG).unwrap(), 2);
    assert!(READS[9].load(Ordering::SeqCst) > 0);
    drop(first);
}

#[test]
fn a_shutdown_reads_an_unread_reply() {
    let pool = pool();
    let mut f = unread(&pool, 10);
    common::process::shutdown_bounded(&pool);
    assert_eq!(f.result(Duration::ZERO).unwrap(), Seen(10));
}

#[test]
fn a_shutdown_that_cancels_the_queue_reads_an_unread_reply() {
    let pool = pool();
    let f = unread(&pool, 11);
    let (tx, rx) = mpsc::channel();
    let closer = pool.clone();
    std::thread::spawn(move || {
        closer.shutdown(Queued::Cancel);
        tx.send(()).unwrap();
    });
    rx.recv_timeout(LONG).expect("shutdown did not return");
    assert!(READS[11].load(Ordering::SeqCst) > 0);
    drop(f);
}

#[test]
fn the_pool_s_metrics_read_an_unread_reply() {
    let pool = pool();
    let f = unread(&pool, 12);
    let _ = pool.metrics();
    assert!(
        read_within(12),
        "metrics() did not hand the reply to the driver"
    );
    drop(f);
}

/// A waker that calls `f`.
fn waker_fn(f: impl Fn() + Send + Sync + 'static) -> std::task::Waker {
    struct W<F>(F);
    impl<F: Fn() + Send + Sync + 'static> std::task::Wake for W<F> {
        fn wake(self: std::sync::Arc<Self>) {
            (self.0)()
        }
    }
    std::task::Waker::from(std::sync::Arc::new(W(f)))
}
