//! The process pool offers what the thread pool does for pools in general: a bounded queue
//! (`queue_capacity`, `try_submit`, `submit_async`, a blocking `submit`), `map` with a bound on
//! in-flight work, and `metrics()` (with respawn counts). Submitting never writes to a worker on the
//! caller's thread.
#![cfg(all(target_os = "linux", not(loom)))]

mod common;

use std::sync::mpsc;
use std::time::Instant;

use common::process::{gated_forever, gated_pid, Gate};
use common::LONG;
use concurrent_futures::{ByteBlock, Error, MapOptions, ProcessPoolExecutor, Queued, WorkerDeath};

fn double(n: u32) -> u32 {
    n * 2
}

fn fails(n: u32) -> Result<u32, String> {
    Err(format!("no {n}"))
}

fn panics(_: ()) {
    panic!("on purpose");
}

fn exit_now(code: i32) {
    std::process::exit(code)
}

fn len_of(data: ByteBlock) -> usize {
    data.len()
}

/// A one-worker pool with a queue of `capacity`, its worker held at a gate by a running task.
fn held_pool(
    capacity: usize,
) -> (
    ProcessPoolExecutor,
    Gate,
    concurrent_futures::PoolFuture<u32>,
) {
    let pool = ProcessPoolExecutor::builder()
        .max_workers(1)
        .queue_capacity(capacity)
        .build()
        .unwrap();
    let mut gate = Gate::new();
    let running = pool.submit(gated_pid, gate.path()).unwrap();
    gate.wait_started(); // the task runs: the queue is empty
    (pool, gate, running)
}

#[test]
fn a_zero_queue_capacity_is_refused() {
    let e = ProcessPoolExecutor::builder()
        .queue_capacity(0)
        .build()
        .unwrap_err();
    assert!(matches!(e, Error::InvalidArgument(_)), "{e}");
}

#[test]
fn try_submit_says_full_and_the_queue_drains() {
    let (pool, mut gate, mut running) = held_pool(2);
    let mut queued: Vec<_> = (0..2)
        .map(|n| pool.try_submit(double, n).unwrap())
        .collect();
    let rejected = pool.try_submit(double, 9).unwrap_err();
    assert!(matches!(rejected.error(), Error::Full), "{rejected:?}");
    assert_eq!(rejected.into_inner().1, 9, "the work comes back");
    assert_eq!(pool.metrics().queued, 2);
    // `map` bounds itself (`MapOptions::buffer`), so it is not refused by a full queue.
    let map = pool
        .map_with(double, 10..13, MapOptions::new().buffer(2))
        .unwrap();
    gate.release();
    running.result(Some(LONG)).unwrap();
    for (n, f) in queued.iter_mut().enumerate() {
        assert_eq!(f.result(Some(LONG)).unwrap(), 2 * n as u32);
    }
    let mapped: Vec<u32> = map.into_iter().collect::<Result<_, _>>().unwrap();
    assert_eq!(mapped, [20, 22, 24]);
    // Room again.
    assert_eq!(
        pool.try_submit(double, 4)
            .unwrap()
            .result(Some(LONG))
            .unwrap(),
        8
    );
    common::process::shutdown_bounded(&pool);
}

#[test]
fn a_blocked_submit_goes_in_when_a_worker_takes_a_task() {
    let (pool, mut gate, mut running) = held_pool(1);
    let mut first = pool.submit(double, 1).unwrap(); // fills the queue
    let (tx, rx) = mpsc::channel();
    let p = pool.clone();
    std::thread::spawn(move || {
        let _ = tx.send(p.submit(double, 2).map(|mut f| f.result(Some(LONG))));
    });
    // Not in while the queue is full: the blocked submitter cannot have returned before the release.
    assert!(rx.try_recv().is_err());
    gate.release();
    running.result(Some(LONG)).unwrap();
    assert_eq!(first.result(Some(LONG)).unwrap(), 2);
    let second = rx.recv_timeout(LONG).expect("the blocked submit returned");
    assert_eq!(second.unwrap().unwrap(), 4);
    common::process::shutdown_bounded(&pool);
}

#[test]
fn shutdown_wakes_a_blocked_submit_with_an_error() {
    let (pool, mut gate, mut running) = held_pool(1);
    let mut queued = pool.submit(double, 1).unwrap();
    let (tx, rx) = mpsc::channel();
    let (about_tx, about) = mpsc::channel();
    let p = pool.clone();
    std::thread::spawn(move || {
        about_tx.send(()).unwrap();
        let _ = tx.send(p.submit(double, 2).err());
    });
    // Usually the submit is blocked by the time the shutdown comes; if not, it is refused the same
    // way: either way it must return `Shutdown`, never hang.
    about.recv_timeout(LONG).unwrap();
    pool.shutdown_nowait(Queued::Cancel);
    let e = rx.recv_timeout(LONG).expect("the blocked submit returned");
    assert!(matches!(e, Some(Error::Shutdown)), "{e:?}");
    assert!(queued.result(Some(LONG)).is_err() && queued.cancelled());
    gate.release();
    running.result(Some(LONG)).unwrap();
    assert_eq!(pool.metrics().cancelled, 1);
    common::process::shutdown_bounded(&pool);
}

#[test]
fn submit_async_waits_for_room_without_blocking_its_thread() {
    let (pool, mut gate, mut running) = held_pool(1);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap();
    rt.block_on(async {
        let mut first = pool.submit_async(double, 1).await.unwrap(); // fills the queue
        let p = pool.clone();
        let second = tokio::spawn(async move { p.submit_async(double, 2).await });
        // The runtime has one thread: if submit_async blocked it, this would never run.
        tokio::task::yield_now().await;
        assert!(!second.is_finished());
        gate.release();
        running.result(Some(LONG)).unwrap();
        assert_eq!(first.result(Some(LONG)).unwrap(), 2);
        let second = tokio::time::timeout(LONG, second)
            .await
            .expect("woken when the queue had room")
            .unwrap()
            .unwrap();
        assert_eq!(second.await.unwrap(), 4);
    });
    common::process::shutdown_bounded(&pool);
}

#[test]
fn submit_async_gets_shutdown_and_serialization_errors() {
    let pool = ProcessPoolExecutor::new(1).unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap();
    rt.block_on(async {
        let f = pool
            .submit_async(
                |_: common::process::Unencodable| (),
                common::process::Unencodable,
            )
            .await
            .unwrap();
        let e = f.await.unwrap_err();
        assert!(e.to_string().contains("refusing to encode"), "{e}");
        pool.shutdown_async(Queued::Run).await;
        assert!(matches!(
            pool.submit_async(double, 1).await,
            Err(Error::Shutdown)
        ));
    });
}

#[test]
fn metrics_count_outcomes_and_respawns() {
    let pool = ProcessPoolExecutor::builder()
        .max_workers(1)
        .on_worker_death(WorkerDeath::Respawn)
        .build()
        .unwrap();
    assert_eq!(pool.metrics(), Default::default());
    assert_eq!(
        pool.submit(double, 1).unwrap().result(Some(LONG)).unwrap(),
        2
    );
    assert!(pool
        .submit_fallible(fails, 1)
        .unwrap()
        .result(Some(LONG))
        .is_err());
    assert!(pool.submit(panics, ()).unwrap().result(Some(LONG)).is_err());
    let m = pool.metrics();
    assert_eq!((m.completed, m.failed, m.panicked), (3, 1, 1), "{m:?}");
    assert_eq!((m.workers, m.running, m.queued), (1, 0, 0), "{m:?}");
    assert_eq!(m.workers_respawned, 0);

    let e = pool
        .submit(exit_now, 3)
        .unwrap()
        .result(Some(LONG))
        .unwrap_err();
    assert!(matches!(e, Error::WorkerDied(_)), "{e}");
    assert_eq!(
        pool.submit(double, 2).unwrap().result(Some(LONG)).unwrap(),
        4
    );
    let m = pool.metrics();
    assert_eq!(m.workers_respawned, 1, "{m:?}");
    assert_eq!(m.completed, 4, "a death is not a completion: {m:?}");

    let mut gate = Gate::new();
    let running = pool.submit(gated_forever, gate.path()).unwrap();
    gate.wait_started();
    let m = pool.metrics();
    assert_eq!((m.running, m.idle), (1, 0), "{m:?}");
    assert!(running.interrupt());
    drop(gate);
    common::process::shutdown_bounded(&pool);
}

#[test]
fn submit_returns_while_a_stopped_worker_cannot_read_a_large_argument() {
    let pool = ProcessPoolExecutor::new(1).unwrap();
    assert_eq!(
        pool.submit(double, 0).unwrap().result(Some(LONG)).unwrap(),
        0
    ); // worker up, idle
    let worker = pool.worker_pids()[0];
    // A stopped worker reads nothing: a submit that wrote the frame itself would block until
    // SIGCONT. It must return anyway (the driver finishes the write later).
    common::process::kill(worker, libc::SIGSTOP);
    let (tx, rx) = mpsc::channel();
    let p = pool.clone();
    std::thread::spawn(move || {
        let data = ByteBlock::from(vec![7u8; 64 << 20]);
        let start = Instant::now();
        let f = p.submit(len_of, data);
        let _ = tx.send((f, start.elapsed()));
    });
    let returned = rx.recv_timeout(LONG);
    common::process::kill(worker, libc::SIGCONT);
    let (f, took) = returned.expect("submit returned while the worker was stopped");
    // For the record (run with --nocapture); not asserted.
    println!("64 MiB argument, worker stopped: submit returned after {took:?}");
    assert_eq!(f.unwrap().result(Some(LONG)).unwrap(), 64 << 20);
    // And a large argument to a running worker, timed the same way.
    let data = ByteBlock::from(vec![7u8; 16 << 20]);
    let start = Instant::now();
    let mut f = pool.submit(len_of, data).unwrap();
    let took = start.elapsed();
    assert_eq!(f.result(Some(LONG)).unwrap(), 16 << 20);
    println!(
        "16 MiB argument: submit returned after {took:?}, the result after {:?}",
        start.elapsed()
    );
    common::process::shutdown_bounded(&pool);
}

#[test]
fn a_worker_killed_while_its_frame_is_written_fails_only_that_task() {
    let pool = ProcessPoolExecutor::builder()
        .max_workers(1)
        .on_worker_death(WorkerDeath::Respawn)
        .build()
        .unwrap();
    assert_eq!(
        pool.submit(double, 0).unwrap().result(Some(LONG)).unwrap(),
        0
    );
    for _ in 0..3 {
        let mut f = pool
            .submit(len_of, ByteBlock::from(vec![1u8; 64 << 20]))
            .unwrap();
        // Most likely while the driver is still writing (64 MiB); whenever it lands, the future
        // ends and the pool carries on.
        for pid in pool.worker_pids() {
            common::process::kill(pid, libc::SIGKILL);
        }
        match f.result(Some(LONG)) {
            Ok(n) => assert_eq!(n, 64 << 20),
            Err(e) => assert!(matches!(e, Error::WorkerDied(_)), "{e}"),
        }
        assert_eq!(
            pool.submit(double, 3).unwrap().result(Some(LONG)).unwrap(),
            6
        );
    }
    common::process::shutdown_bounded(&pool);
}

#[test]
fn a_done_callback_that_submits_to_a_full_queue_does_not_deadlock() {
    let (pool, mut gate, running) = held_pool(1);
    let mut queued = pool.submit(double, 1).unwrap(); // fills the queue
    let (tx, rx) = mpsc::channel();
    let p = pool.clone();
    queued.add_done_callback(move |_| {
        // Runs on a driver thread, the only one: waiting for room here would wait forever.
        let _ = tx.send(p.submit(double, 5));
    });
    let p = pool.clone();
    let (q_tx, q_rx) = mpsc::channel();
    std::thread::spawn(move || {
        // Blocks until the queue has room.
        let _ = q_tx.send(p.submit(double, 2).map(|mut f| f.result(Some(LONG))));
    });
    gate.release();
    drop(running);
    assert_eq!(queued.result(Some(LONG)).unwrap(), 2);
    let q = q_rx
        .recv_timeout(LONG)
        .expect("the blocked submit returned");
    assert_eq!(q.unwrap().unwrap(), 4);
    let from_callback = rx
        .recv_timeout(LONG)
        .expect("the callback's submit returned");
    assert_eq!(from_callback.unwrap().result(Some(LONG)).unwrap(), 10);
    common::process::shutdown_bounded(&pool);
}

/// A done callback (run on the one driver thread, or on a caller reading the reply in its place)
/// filling the bounded queue and then submitting, blocking and async: only the drivers take tasks out
/// of the queue, and the only one is busy with this callback, so the queue stays full; both queue
/// past the bound instead of waiting for room that could never come.
#[test]
fn a_done_callback_submitting_to_a_full_queue_queues_past_it_blocking_or_async() {
    let sum = common::threads::spawn_bounded(|| {
        let (pool, mut gate, mut running) = held_pool(1);
        let (tx, rx) = mpsc::channel();
        let p = pool.clone();
        running.add_done_callback(move |_| {
            let mut futures = Vec::new();
            while let Ok(f) = p.try_submit(double, 1) {
                futures.push(f);
            }
            let awaited = futures::executor::block_on(p.submit_async(double, 10));
            futures.push(awaited.unwrap());
            futures.push(p.submit(double, 100).unwrap());
            let _ = tx.send(futures);
        });
        gate.release();
        running.result(Some(LONG)).unwrap();
        let futures = rx
            .recv_timeout(LONG)
            .expect("the callback's submits returned");
        let sum: u32 = futures
            .into_iter()
            .map(|mut f| f.result(Some(LONG)).unwrap())
            .sum();
        common::process::shutdown_bounded(&pool);
        sum
    })
    .join();
    assert_eq!(sum, 222);
}

#[test]
fn waiting_submitters_see_a_broken_pool() {
    let (pool, _gate, running) = held_pool(1);
    let mut queued = pool.submit(double, 1).unwrap();
    let (tx, rx) = mpsc::channel();
    let p = pool.clone();
    std::thread::spawn(move || {
        let _ = tx.send(p.submit(double, 2).err());
    });
    for pid in pool.worker_pids() {
        common::process::kill(pid, libc::SIGKILL); // default policy: the pool breaks
    }
    let e = rx.recv_timeout(LONG).expect("the blocked submit returned");
    assert!(matches!(e, Some(Error::BrokenProcessPool(_))), "{e:?}");
    assert!(matches!(
        queued.result(Some(LONG)),
        Err(Error::BrokenProcessPool(_))
    ));
    drop(running);
    common::process::shutdown_bounded(&pool);
}

/// Serializes only when it is not 0, and deserializes only a 7: both refusals say why.
#[derive(Debug)]
struct Picky(u8);

impl serde::Serialize for Picky {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        if self.0 == 0 {
            return Err(serde::ser::Error::custom("my reason: zero"));
        }
        s.serialize_u8(self.0)
    }
}

impl<'de> serde::Deserialize<'de> for Picky {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        match <u8 as serde::Deserialize>::deserialize(d)? {
            7 => Ok(Picky(7)),
            n => Err(serde::de::Error::custom(format!("my reason: {n} is not 7"))),
        }
    }
}

fn picky_len(p: Vec<Picky>) -> usize {
    p.len()
}

fn make_picky(n: u8) -> (u32, Option<Picky>) {
    (1, Some(Picky(n)))
}

#[test]
fn a_custom_serde_error_keeps_its_message_both_ways() {
    let pool = ProcessPoolExecutor::new(1).unwrap();
    fn text<T: std::fmt::Debug>(r: Result<T, Error>) -> String {
        match r {
            Err(e @ Error::Serialization(_)) => e.to_string(),
            other => panic!("not a serialization error: {other:?}"),
        }
    }
    // The argument, encoded in the parent: refused.
    let e = text(
        pool.submit(picky_len, vec![Picky(7), Picky(0)])
            .unwrap()
            .result(Some(LONG)),
    );
    assert!(e.contains("my reason: zero"), "{e}");
    // The argument, decoded in the worker: refused.
    let e = text(
        pool.submit(picky_len, vec![Picky(7), Picky(3)])
            .unwrap()
            .result(Some(LONG)),
    );
    assert!(e.contains("my reason: 3 is not 7"), "{e}");
    // The result, encoded in the worker, then decoded in the parent.
    let e = text(pool.submit(make_picky, 0).unwrap().result(Some(LONG)));
    assert!(e.contains("my reason: zero"), "{e}");
    let e = text(pool.submit(make_picky, 5).unwrap().result(Some(LONG)));
    assert!(e.contains("my reason: 5 is not 7"), "{e}");
    let (one, picky) = pool
        .submit(make_picky, 7)
        .unwrap()
        .result(Some(LONG))
        .unwrap();
    assert_eq!((one, picky.map(|p| p.0)), (1, Some(7)));
    common::process::shutdown_bounded(&pool);
}

/// Code generic over the pool uses the bounded-queue calls and the metrics the same way.
fn through_the_trait(pool: &impl concurrent_futures::Executor) -> (u32, u32, u64) {
    let mut a = pool.try_submit(double, 1).unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let b = rt.block_on(async { pool.submit_async(double, 2).await.unwrap().await.unwrap() });
    let a = a.result(Some(LONG)).unwrap();
    (a, b, pool.metrics().completed)
}

#[test]
fn the_executor_trait_has_the_bounded_queue_and_metrics() {
    let threads = concurrent_futures::ThreadPoolExecutor::builder()
        .max_workers(1)
        .queue_capacity(4)
        .build()
        .unwrap();
    let processes = ProcessPoolExecutor::builder()
        .max_workers(1)
        .queue_capacity(4)
        .build()
        .unwrap();
    assert_eq!(through_the_trait(&threads), (2, 4, 2));
    assert_eq!(through_the_trait(&processes), (2, 4, 2));
    threads.shutdown(Queued::Run);
    common::process::shutdown_bounded(&processes);
}

#[test]
fn cancelling_a_queued_task_makes_room_for_the_next_submit() {
    let (pool, mut gate, mut running) = held_pool(2);
    let a = pool.try_submit(double, 1).unwrap();
    let b = pool.try_submit(double, 2).unwrap();
    assert!(pool.try_submit(double, 3).is_err(), "full");
    // Load shedding: the queued work is given up on, so the queue waits for nothing.
    assert!(a.cancel() && b.cancel());
    let mut c = pool
        .try_submit(double, 3)
        .map_err(|r| r.error().to_string())
        .expect("a cancelled task still took room in the queue");
    let mut d = pool.try_submit(double, 4).unwrap();
    assert!(pool.try_submit(double, 5).is_err(), "full again");
    let m = pool.metrics();
    assert_eq!((m.queued, m.cancelled), (2, 2));
    gate.release();
    running.result(Some(LONG)).unwrap();
    assert_eq!(
        (c.result(Some(LONG)).unwrap(), d.result(Some(LONG)).unwrap()),
        (6, 8)
    );
    common::process::shutdown_bounded(&pool);
}

#[test]
fn a_blocking_submit_on_a_full_queue_of_cancelled_tasks_does_not_wait() {
    let (pool, mut gate, mut running) = held_pool(1);
    let a = pool.try_submit(double, 1).unwrap();
    assert!(a.cancel());
    // The worker is held until the submit returns: a submit waiting for it to take a task would
    // wait forever, so run it on a thread and bound the wait.
    let (tx, rx) = mpsc::channel();
    let p = pool.clone();
    std::thread::spawn(move || {
        let _ = tx.send(p.submit(double, 2).map(|_| ()).map_err(|e| e.to_string()));
    });
    let got = rx.recv_timeout(LONG);
    gate.release();
    running.result(Some(LONG)).unwrap();
    assert_eq!(got, Ok(Ok(())), "submit waited behind a cancelled task");
    common::process::shutdown_bounded(&pool);
}

#[test]
fn an_async_submit_on_a_full_queue_of_cancelled_tasks_gets_in_at_once() {
    let (pool, mut gate, mut running) = held_pool(1);
    let a = pool.try_submit(double, 1).unwrap();
    assert!(a.cancel());
    let got = futures::executor::block_on(async {
        let mut submit = Box::pin(pool.submit_async(double, 2));
        futures::poll!(submit.as_mut())
    });
    gate.release();
    running.result(Some(LONG)).unwrap();
    match got {
        std::task::Poll::Ready(f) => assert_eq!(f.unwrap().result(Some(LONG)).unwrap(), 4),
        std::task::Poll::Pending => panic!("the submit waited behind a cancelled task"),
    }
    common::process::shutdown_bounded(&pool);
}
