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
        unwind_safe::<concurrent_futures::TaskHandle>();
        unwind_safe::<concurrent_futures::CompletionSet<std::cell::Cell<u8>>>();
        send_sync::<PoolFuture<std::cell::Cell<u8>>>();
        send_sync::<Error>();
        send_sync::<concurrent_futures::TaskHandle>();
        send_sync::<concurrent_futures::Rejected<Box<dyn FnOnce() + Send + Sync>>>();
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

// ---- CompletionSet ----

use concurrent_futures::{CompletionSet, Promise};

#[test]
fn a_completion_set_yields_in_completion_order_as_promises_end() {
    let mut set = CompletionSet::new();
    let mut promises = Vec::new();
    let mut ids = Vec::new();
    for _ in 0..1000 {
        let (p, f) = Promise::<usize>::new();
        ids.push(set.push(f));
        promises.push(p);
    }
    assert_eq!(set.len(), 1000);
    // Complete them in a scrambled order; each completion happens before the next look.
    let order: Vec<usize> = (0..1000).map(|i| (i * 7919) % 1000).collect();
    for &i in &order {
        promises[i].set_result(i).unwrap();
        let (id, outcome) = set.next_blocking(LONG).unwrap().unwrap();
        assert_eq!((id, outcome.unwrap()), (ids[i], i));
    }
    assert!(set.is_empty());
    assert!(set.next_blocking(LONG).unwrap().is_none());
}

#[test]
fn work_pushed_while_draining_is_yielded_and_the_set_ends_when_empty() {
    let pool = ThreadPoolExecutor::new(2).unwrap();
    let mut set = CompletionSet::new();
    set.push(pool.submit(|n: u32| n, 1).unwrap());
    let mut seen = Vec::new();
    futures::executor::block_on(async {
        while let Some(outcome) = set.join_next().await {
            let n = outcome.unwrap();
            seen.push(n);
            if n < 5 {
                set.push(pool.submit(|n: u32| n + 1, n).unwrap());
                set.push(pool.submit(|n: u32| n + 100, n).unwrap());
            }
        }
    });
    seen.sort();
    assert_eq!(seen, [1, 2, 3, 4, 5, 101, 102, 103, 104]);
    assert!(set.is_terminated());
    // Empty is not the end for good: pushing again makes it yield again.
    set.push(pool.submit(|n: u32| n, 7).unwrap());
    assert!(!set.is_terminated());
    let (_, outcome) = set.next_blocking(LONG).unwrap().unwrap();
    assert_eq!(outcome.unwrap(), 7);
}

#[test]
fn next_blocking_times_out_without_losing_anything() {
    let (p, f) = Promise::<u8>::new();
    let mut set = CompletionSet::new();
    set.push(f);
    assert!(matches!(
        set.next_blocking(std::time::Duration::ZERO),
        Err(Error::Timeout)
    ));
    assert!(matches!(
        set.next_blocking(std::time::Duration::from_millis(5)),
        Err(Error::Timeout)
    ));
    p.set_result(4).unwrap();
    assert_eq!(set.next_blocking(LONG).unwrap().unwrap().1.unwrap(), 4);
}

#[test]
fn cancel_all_cancels_queued_tasks_which_are_still_yielded() {
    let pool = ThreadPoolExecutor::new(1).unwrap();
    let (mut busy, open) = common::threads::occupy(&pool);
    let mut set: CompletionSet<u32> = (0..3)
        .map(|n| pool.submit(|n: u32| n, n).unwrap())
        .collect();
    assert_eq!(set.cancel_all(), 3);
    drop(open);
    busy.result(LONG).unwrap();
    let mut cancelled = 0;
    while let Some((_, outcome)) = set.next_blocking(LONG).unwrap() {
        assert!(matches!(outcome, Err(Error::Cancelled)));
        cancelled += 1;
    }
    assert_eq!(cancelled, 3);
}

#[test]
fn interrupt_all_stops_running_tasks_and_cancels_queued_ones() {
    let pool = ThreadPoolExecutor::new(1).unwrap();
    let (started_tx, started) = mpsc::channel();
    let mut set = CompletionSet::new();
    set.push(
        pool.spawn_cancellable(move |token| {
            started_tx.send(()).unwrap();
            while !token.is_cancelled() {
                std::thread::yield_now();
            }
            Err(Error::Interrupted)
        })
        .unwrap(),
    );
    set.push(pool.spawn(|| ()).unwrap());
    started.recv_timeout(LONG).unwrap();
    assert_eq!(set.interrupt_all(), 2);
    let mut outcomes = Vec::new();
    while let Some((_, outcome)) = set.next_blocking(LONG).unwrap() {
        outcomes.push(outcome.unwrap_err().to_string());
    }
    outcomes.sort();
    assert_eq!(
        outcomes,
        [
            "the future was cancelled",
            "the running task was interrupted"
        ]
    );
}

#[test]
fn dropping_a_set_detaches_unless_asked_to_cancel() {
    let pool = ThreadPoolExecutor::new(1).unwrap();
    let (mut busy, open) = common::threads::occupy(&pool);
    let (ran_tx, ran) = mpsc::channel();
    let detached = {
        let ran_tx = ran_tx.clone();
        pool.spawn(move || ran_tx.send("detached").unwrap())
            .unwrap()
    };
    let cancelled = pool
        .spawn(move || ran_tx.send("cancelled").unwrap())
        .unwrap();
    let (h_detached, h_cancelled) = (detached.handle(), cancelled.handle());
    let mut plain = CompletionSet::new();
    plain.push(detached);
    let mut cancelling = CompletionSet::new().cancel_on_drop();
    cancelling.push(cancelled);
    drop(plain);
    drop(cancelling);
    assert!(h_cancelled.cancelled());
    assert!(!h_detached.done());
    drop(open);
    busy.result(LONG).unwrap();
    assert_eq!(ran.recv_timeout(LONG).unwrap(), "detached");
    pool.shutdown(concurrent_futures::Queued::Run);
    assert!(ran.try_recv().is_err(), "the cancelled task never ran");
    assert!(h_detached.done());
}

#[test]
fn a_completion_set_in_select_beside_a_ticker() {
    let pool = ThreadPoolExecutor::new(2).unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap();
    rt.block_on(async {
        let mut set = CompletionSet::new();
        let mut ticker = tokio::time::interval(std::time::Duration::from_millis(1));
        let mut got = 0;
        let mut next = 0u32;
        loop {
            tokio::select! {
                Some((_, outcome)) = set.next() => got += outcome.unwrap(),
                _ = ticker.tick() => {
                    if next < 5 {
                        set.push(pool.submit(|n: u32| n, next).unwrap());
                        next += 1;
                    } else if set.is_empty() {
                        break;
                    }
                }
            }
        }
        assert_eq!(got, 10);
    });
}

// ---- TaskHandle ----

#[test]
fn task_handles_cancel_and_interrupt_from_another_thread() {
    let pool = ThreadPoolExecutor::new(1).unwrap();
    let (started_tx, started) = mpsc::channel();
    let mut running = pool
        .spawn_cancellable(move |token| {
            started_tx.send(()).unwrap();
            while !token.is_cancelled() {
                std::thread::yield_now();
            }
            Err::<(), _>(Error::Interrupted)
        })
        .unwrap();
    let mut queued = pool.spawn(|| 1).unwrap();
    let handles = [running.handle(), queued.handle()];
    assert_eq!(handles[0].id(), running.id());
    assert_eq!(handles[1].id(), queued.id());
    started.recv_timeout(LONG).unwrap();
    assert!(handles[0].running() && !handles[0].done());
    let remote = handles.clone();
    std::thread::spawn(move || {
        assert!(!remote[0].cancel(), "running: cancel is too late");
        assert!(remote[1].cancel());
        assert!(remote[0].interrupt());
    })
    .join()
    .unwrap();
    assert!(matches!(queued.result(LONG), Err(Error::Cancelled)));
    assert!(matches!(running.result(LONG), Err(Error::Interrupted)));
    assert!(handles.iter().all(|h| h.done()));
    assert!(handles[1].cancelled() && !handles[0].cancelled());
    assert!(!handles[0].interrupt(), "already ended");
    assert!(
        handles[1].cancel(),
        "as Python's cancel(): true for a cancelled future"
    );
}

#[test]
fn a_task_handle_does_not_keep_the_result_alive() {
    let pool = ThreadPoolExecutor::new(1).unwrap();
    let value = std::sync::Arc::new(());
    let v = value.clone();
    let mut f = pool.spawn(move || v).unwrap();
    let handle = f.handle();
    f.result(LONG).map(drop).unwrap();
    drop(f);
    assert_eq!(std::sync::Arc::strong_count(&value), 1);
    assert!(handle.done() && !handle.cancel() && !handle.interrupt());
    assert!(format!("{handle:?}").contains("finished"));
}

#[cfg(target_os = "linux")]
#[test]
fn a_task_handle_interrupts_a_process_pool_task_by_killing_its_worker() {
    use common::process::{gated_forever, pid, shutdown_bounded, wait_gone, Gate as ProcGate};
    let pool = concurrent_futures::ProcessPoolExecutor::new(1).unwrap();
    let mut gate = ProcGate::new();
    let mut f = pool.submit(gated_forever, gate.path()).unwrap();
    gate.wait_started();
    let victim = pool.worker_pids()[0];
    let handle = f.handle();
    std::thread::spawn(move || assert!(handle.interrupt()))
        .join()
        .unwrap();
    assert!(matches!(f.result(LONG), Err(Error::Interrupted)));
    assert!(wait_gone(victim, std::time::Duration::from_secs(10)));
    assert_ne!(pool.submit(pid, ()).unwrap().result(LONG).unwrap(), victim);
    shutdown_bounded(&pool);
}

// ---- tokio-util's CancellationToken ----

use tokio_util::sync::CancellationToken;

/// A task that reports it started, then runs until its token fires.
fn until_cancelled(
    started: mpsc::Sender<()>,
) -> impl FnOnce(&concurrent_futures::CancelToken) -> Result<(), Error> + Send + 'static {
    move |token| {
        started.send(()).unwrap();
        futures::executor::block_on(token.cancelled());
        assert!(token.is_cancelled());
        Err(Error::Interrupted)
    }
}

#[test]
fn a_request_token_interrupts_the_running_task_and_cancels_the_queued_one() {
    let pool = ThreadPoolExecutor::new(1).unwrap();
    let service = CancellationToken::new();
    let request = service.child_token();
    let other_request = service.child_token();
    let (started_tx, started) = mpsc::channel();
    let (saw_tx, saw) = mpsc::channel();
    // The running task holds its worker until the test has seen `cancel()` return: the token's waiters
    // are woken one by one, so a worker freed at once could take the queued task before its waiter
    // ran (it would then start with its token fired; see `spawn_cancellable_with`).
    let gate = Gate::default();
    let _open = gate.guard();
    let g = gate.clone();
    let mut running = pool
        .spawn_cancellable_with(request.clone(), move |token| {
            started_tx.send(()).unwrap();
            futures::executor::block_on(token.cancelled());
            saw_tx.send(()).unwrap();
            g.wait();
            Err::<(), _>(Error::Interrupted)
        })
        .unwrap();
    let mut queued = pool
        .spawn_cancellable_with(request.clone(), |_| Ok(()))
        .unwrap();
    let mut unrelated = pool
        .spawn_cancellable_with(other_request.clone(), |_| Ok(5))
        .unwrap();
    started.recv_timeout(LONG).unwrap();
    request.cancel();
    assert!(queued.cancelled(), "cancelled by the time cancel() returns");
    saw.recv_timeout(LONG).unwrap();
    gate.open();
    assert!(matches!(running.result(LONG), Err(Error::Interrupted)));
    assert!(matches!(queued.result(LONG), Err(Error::Cancelled)));
    assert_eq!(
        unrelated.result(LONG).unwrap(),
        5,
        "a sibling request is untouched"
    );
    assert!(!service.is_cancelled() && !other_request.is_cancelled());
}

#[test]
fn interrupting_a_task_does_not_cancel_the_callers_token() {
    let pool = ThreadPoolExecutor::new(1).unwrap();
    let request = CancellationToken::new();
    let (started_tx, started) = mpsc::channel();
    let mut f = pool
        .spawn_cancellable_with(request.clone(), until_cancelled(started_tx))
        .unwrap();
    started.recv_timeout(LONG).unwrap();
    assert!(f.interrupt());
    assert!(matches!(f.result(LONG), Err(Error::Interrupted)));
    assert!(!request.is_cancelled());
}

#[test]
fn an_already_cancelled_token_cancels_at_once() {
    let pool = ThreadPoolExecutor::new(1).unwrap();
    let (mut busy, open) = common::threads::occupy(&pool);
    let request = CancellationToken::new();
    request.cancel();
    let f = pool.submit(|n: u8| n, 1).unwrap();
    f.interrupt_on_cancel(&request);
    assert!(f.cancelled());
    drop(open);
    busy.result(LONG).unwrap();
}

#[test]
fn the_task_token_is_a_cancellation_token_for_async_code_inside_the_task() {
    let pool = ThreadPoolExecutor::new(1).unwrap();
    let (started_tx, started) = mpsc::channel();
    let mut f = pool
        .spawn_cancellable(move |token| {
            let child = token.cancellation_token().child_token();
            started_tx.send(()).unwrap();
            futures::executor::block_on(child.cancelled());
            Ok("the child saw it")
        })
        .unwrap();
    started.recv_timeout(LONG).unwrap();
    f.handle().interrupt();
    assert_eq!(f.result(LONG).unwrap(), "the child saw it");
}

#[test]
fn a_time_limit_fires_the_awaitable_token() {
    let pool = ThreadPoolExecutor::new(1).unwrap();
    let mut f = pool
        .spawn_with_time_limit(std::time::Duration::from_millis(5), |token| {
            let deadline = token.deadline().expect("set when the task started");
            futures::executor::block_on(token.cancellation_token().cancelled());
            assert!(std::time::Instant::now() >= deadline);
            Ok(())
        })
        .unwrap();
    f.result(LONG).unwrap();
}

#[cfg(target_os = "linux")]
#[test]
fn a_token_interrupts_a_process_pool_task() {
    use common::process::{gated_forever, shutdown_bounded, wait_gone, Gate as ProcGate};
    let pool = concurrent_futures::ProcessPoolExecutor::new(1).unwrap();
    let request = CancellationToken::new();
    let mut gate = ProcGate::new();
    let mut f = pool.submit(gated_forever, gate.path()).unwrap();
    f.interrupt_on_cancel(&request);
    gate.wait_started();
    let victim = pool.worker_pids()[0];
    request.cancel();
    assert!(matches!(f.result(LONG), Err(Error::Interrupted)));
    assert!(wait_gone(victim, std::time::Duration::from_secs(10)));
    shutdown_bounded(&pool);
}
