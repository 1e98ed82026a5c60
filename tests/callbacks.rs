//! CPython conformance, group 4: done callbacks (items 29–38 of `cpython-conformance.md`).
//!
//! This test binary installs a capturing `log` logger, so callback panics are reported there (at error
//! level, target `concurrent_futures`) and can be checked. The panic hook is wrapped to keep the
//! intentional panics of these tests out of the output.

mod common;

use std::io;
use std::panic;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex, Once};
use std::thread;
use std::time::Duration;

use common::fixtures::os_error;
use common::logs;
use concurrent_futures::{Error, PoolFuture, Promise, Queued, ThreadPoolExecutor};

// ---------------------------------------------------------------------------------------------------
// Log capture
// ---------------------------------------------------------------------------------------------------

/// Marks the panics these tests cause on purpose.
const BOOM: &str = "intentional callback panic";

fn setup() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        logs::capture();
        let default_hook = panic::take_hook();
        panic::set_hook(Box::new(move |info| {
            let payload = info.payload();
            let msg = payload
                .downcast_ref::<&str>()
                .copied()
                .or_else(|| payload.downcast_ref::<String>().map(String::as_str));
            let intentional = match msg {
                Some(m) => m.contains(BOOM),
                None => payload.downcast_ref::<NotAString>().is_some(),
            };
            if !intentional {
                default_hook(info);
            }
        }));
    });
}

/// The error-level records about `future`'s callbacks.
fn callback_reports<T>(future: &PoolFuture<T>) -> Vec<String> {
    let needle = format!("exception calling callback for future {}:", future.id());
    logs::records()
        .iter()
        .filter(|(level, target, msg)| {
            *level == log::Level::Error
                && target == "concurrent_futures"
                && msg.starts_with(&needle)
        })
        .map(|(_, _, msg)| msg.clone())
        .collect()
}

/// A panic payload that is not a string.
struct NotAString;

// ---------------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------------

/// Records what each callback saw, in call order.
#[derive(Clone, Default)]
struct Journal(Arc<Mutex<Vec<String>>>);

impl Journal {
    fn push(&self, s: impl Into<String>) {
        self.0.lock().unwrap().push(s.into());
    }
    fn entries(&self) -> Vec<String> {
        self.0.lock().unwrap().clone()
    }
}

fn describe(outcome: &Result<i32, Error>) -> String {
    match outcome {
        Ok(v) => format!("ok {v}"),
        Err(Error::Cancelled) => "cancelled".into(),
        Err(Error::Failed(e)) => format!("failed {e}"),
        Err(e) => format!("other {e:?}"),
    }
}

fn record(journal: &Journal, tag: &'static str) -> impl FnOnce(&Result<i32, Error>) + Send {
    let journal = journal.clone();
    move |outcome| journal.push(format!("{tag}: {}", describe(outcome)))
}

// ---------------------------------------------------------------------------------------------------
// Tests
// ---------------------------------------------------------------------------------------------------

// CPython #29: a callback added before completion runs once, when set_result runs, and sees the value.
#[test]
fn callback_added_before_set_result_runs_once_with_value() {
    setup();
    let (p, mut f) = Promise::new();
    let journal = Journal::default();
    f.add_done_callback(record(&journal, "cb"));
    assert!(journal.entries().is_empty(), "not before completion");
    p.set_result(5).unwrap();
    assert_eq!(journal.entries(), ["cb: ok 5"]);
    // The owner can still take the value: the callback only saw it by reference.
    assert_eq!(f.result(Duration::ZERO).unwrap(), 5);
    drop(p);
    assert_eq!(journal.entries(), ["cb: ok 5"], "exactly once");
}

// CPython #30: the same for set_error; the callback sees the error.
#[test]
fn callback_added_before_set_error_sees_the_error() {
    setup();
    let (p, f) = Promise::new();
    let journal = Journal::default();
    f.add_done_callback(record(&journal, "cb"));
    p.set_error(os_error()).unwrap();
    assert_eq!(journal.entries(), ["cb: failed OSError"]);
    assert!(f.exception(Duration::ZERO).unwrap().is_some());
}

// CPython #31: the same for a successful cancel(); the callback sees the cancellation.
#[test]
fn callback_added_before_cancel_sees_cancelled() {
    setup();
    let (_p, f) = Promise::<i32>::new();
    let journal = Journal::default();
    f.add_done_callback(record(&journal, "cb"));
    assert!(f.cancel());
    assert_eq!(journal.entries(), ["cb: cancelled"]);
}

// CPython #29–31 on a thread pool: success, failure and cancellation each reach the callback.
#[test]
fn pool_callbacks_see_value_error_and_cancellation() {
    setup();
    let pool = ThreadPoolExecutor::new(1).unwrap();
    let (release, release_rx) = mpsc::channel::<()>();
    let (started_tx, started) = mpsc::channel();
    let journal = Journal::default();
    let ok = pool
        .spawn(move || {
            started_tx.send(()).unwrap();
            let _ = release_rx.recv();
            7
        })
        .unwrap();
    let failed = pool
        .spawn_fallible(|| Err::<i32, _>(io::Error::other("nope")))
        .unwrap();
    let cancelled = pool.spawn(|| 9).unwrap();
    started.recv().unwrap();
    ok.add_done_callback(record(&journal, "ok"));
    failed.add_done_callback(record(&journal, "failed"));
    cancelled.add_done_callback(record(&journal, "cancelled"));
    assert!(cancelled.cancel());
    drop(release);
    pool.shutdown(Queued::Run);
    assert_eq!(
        journal.entries(),
        ["cancelled: cancelled", "ok: ok 7", "failed: failed nope"]
    );
}

// CPython #32: a panicking callback is reported (log, error level, "exception calling callback for
// future #N"); the callbacks after it still run and set_result itself succeeds.
#[test]
fn panicking_callback_is_reported_and_others_still_run() {
    setup();
    let (p, f) = Promise::new();
    let journal = Journal::default();
    f.add_done_callback(record(&journal, "first"));
    f.add_done_callback(|_| panic!("{BOOM} in the middle"));
    f.add_done_callback(record(&journal, "last"));
    assert!(p.set_result(1).is_ok(), "set_result does not fail");
    assert_eq!(journal.entries(), ["first: ok 1", "last: ok 1"]);
    let reports = callback_reports(&f);
    assert_eq!(reports.len(), 1, "{reports:?}");
    assert!(
        reports[0].contains(&format!("{BOOM} in the middle")),
        "{reports:?}"
    );
}

// CPython #32: a panicking callback on a pool future neither kills the worker nor stops the other
// callbacks, and the future keeps its value.
#[test]
fn panicking_callback_does_not_kill_the_worker() {
    setup();
    let pool = ThreadPoolExecutor::new(1).unwrap();
    let (release, release_rx) = mpsc::channel::<()>();
    let (started_tx, started) = mpsc::channel();
    let mut f = pool
        .spawn(move || {
            started_tx.send(()).unwrap();
            let _ = release_rx.recv();
            (3, thread::current().id())
        })
        .unwrap();
    started.recv().unwrap();
    let after = Arc::new(AtomicUsize::new(0));
    f.add_done_callback(|_| panic!("{BOOM} on a worker"));
    let a = after.clone();
    f.add_done_callback(move |_| {
        a.fetch_add(1, Ordering::SeqCst);
    });
    drop(release);
    let (value, worker) = f.result(None).unwrap();
    assert_eq!(value, 3);
    assert_eq!(after.load(Ordering::SeqCst), 1);
    assert_eq!(callback_reports(&f).len(), 1);

    // The same worker runs later tasks.
    let mut later = pool.spawn(|| thread::current().id()).unwrap();
    assert_eq!(later.result(None).unwrap(), worker);
    let m = pool.metrics();
    assert_eq!(m.workers, 1);
    assert_eq!(m.panicked, 0, "a callback panic is not a task panic");
}

// CPython #33: a callback added to an already successful, failed or cancelled future runs at once,
// synchronously, on the caller's thread.
#[test]
fn callback_on_finished_future_runs_at_once_on_caller_thread() {
    setup();
    let me = thread::current().id();
    let (p_ok, ok) = Promise::new();
    p_ok.set_result(42).unwrap();
    let (p_err, failed) = Promise::new();
    p_err.set_error(os_error()).unwrap();
    let (_p_cancel, cancelled) = Promise::new();
    assert!(cancelled.cancel());
    let cases = [
        ("ok 42", ok),
        ("failed OSError", failed),
        ("cancelled", cancelled),
    ];
    for (expected, f) in cases {
        let seen = Arc::new(Mutex::new(None));
        let s = seen.clone();
        f.add_done_callback(move |outcome| {
            *s.lock().unwrap() = Some((thread::current().id(), describe(outcome)));
        });
        // Ran before add_done_callback returned.
        assert_eq!(*seen.lock().unwrap(), Some((me, expected.to_string())));
    }
}

// CPython #33 (Rust side): a callback added after the value was taken still runs at once; it is told
// the value is gone.
#[test]
fn callback_after_value_taken_runs_at_once() {
    setup();
    let (p, mut f) = Promise::new();
    p.set_result(1).unwrap();
    assert_eq!(f.result(Duration::ZERO).unwrap(), 1);
    let journal = Journal::default();
    f.add_done_callback(record(&journal, "late"));
    let entries = journal.entries();
    assert_eq!(entries.len(), 1);
    assert!(
        entries[0].starts_with("late: other InvalidState"),
        "{entries:?}"
    );
}

// CPython #34: a callback that panics when run immediately is reported, not propagated out of
// add_done_callback.
#[test]
fn panicking_immediate_callback_is_not_propagated() {
    setup();
    let (p, f) = Promise::<i32>::new();
    p.set_result(1).unwrap();
    f.add_done_callback(|_| panic!("{BOOM} at once"));
    let journal = Journal::default();
    f.add_done_callback(record(&journal, "next"));
    assert_eq!(journal.entries(), ["next: ok 1"]);
    let reports = callback_reports(&f);
    assert_eq!(reports.len(), 1, "{reports:?}");
    assert!(reports[0].contains(&format!("{BOOM} at once")));
}

// CPython #35: callbacks run in the order they were added, also when added to a finished future.
#[test]
fn callbacks_run_in_order_added() {
    setup();
    let (p, f) = Promise::new();
    let order = Arc::new(Mutex::new(Vec::new()));
    for i in 0..20 {
        let o = order.clone();
        f.add_done_callback(move |_| o.lock().unwrap().push(i));
    }
    p.set_result(0).unwrap();
    for i in 20..25 {
        let o = order.clone();
        f.add_done_callback(move |_| o.lock().unwrap().push(i));
    }
    assert_eq!(*order.lock().unwrap(), (0..25).collect::<Vec<_>>());
}

// CPython #35: a callback added while the callbacks are running (from inside one) runs after the
// others, exactly once, on the same thread.
#[test]
fn callback_added_during_notification_runs_once_after_the_others() {
    setup();
    let (p, f) = Promise::new();
    let f = Arc::new(f);
    let journal = Journal::default();
    let (inner_f, j) = (f.clone(), journal.clone());
    f.add_done_callback(move |outcome| {
        j.push(format!("outer: {}", describe(outcome)));
        // The future is not yet done while its callbacks run: it is published when they return
        // (#36 DIVERGE: CPython sets the state first; here done() implies the outcome is readable).
        j.push(format!("done inside: {}", inner_f.done()));
        inner_f.add_done_callback(record(&j, "added inside"));
    });
    f.add_done_callback(record(&journal, "second"));
    p.set_result(4).unwrap();
    assert_eq!(
        journal.entries(),
        [
            "outer: ok 4",
            "done inside: false",
            "second: ok 4",
            "added inside: ok 4"
        ]
    );
}

// CPython #36: a callback registered before completion runs on the thread that completes the future:
// the pool's worker thread.
#[test]
fn callback_runs_on_the_completing_worker_thread() {
    setup();
    let pool = ThreadPoolExecutor::builder()
        .max_workers(1)
        .thread_name_prefix("cbworker")
        .build()
        .unwrap();
    let (release, release_rx) = mpsc::channel::<()>();
    let (started_tx, started) = mpsc::channel();
    let f = pool
        .spawn(move || {
            started_tx.send(()).unwrap();
            let _ = release_rx.recv();
            thread::current().id()
        })
        .unwrap();
    started.recv().unwrap();
    let (tx, rx) = mpsc::channel();
    f.add_done_callback(move |outcome| {
        let task_thread = *outcome.as_ref().unwrap();
        let here = thread::current();
        tx.send((task_thread, here.id(), here.name().map(str::to_owned)))
            .unwrap();
    });
    drop(release);
    let (task_thread, callback_thread, name) = rx.recv().unwrap();
    assert_eq!(task_thread, callback_thread);
    assert_ne!(callback_thread, thread::current().id());
    assert_eq!(name.as_deref(), Some("cbworker_0"));
    pool.shutdown(Queued::Run);
}

// CPython #36: by the time waiters wake, the callbacks have run (this crate runs callbacks before it
// wakes waiters; CPython notifies first, so there a waiter may see done() before the callbacks).
#[test]
fn owner_wakes_after_callbacks_ran() {
    setup();
    let pool = ThreadPoolExecutor::new(1).unwrap();
    let (release, release_rx) = mpsc::channel::<()>();
    let mut f = pool
        .spawn(move || {
            let _ = release_rx.recv();
            1
        })
        .unwrap();
    let ran = Arc::new(AtomicUsize::new(0));
    let r = ran.clone();
    f.add_done_callback(move |_| {
        r.fetch_add(1, Ordering::SeqCst);
    });
    drop(release);
    assert_eq!(f.result(None).unwrap(), 1);
    assert_eq!(ran.load(Ordering::SeqCst), 1);
}

// CPython #37 (DIVERGE): every callback panic is caught, whatever the payload (Python lets a
// BaseException escape and skips the remaining callbacks).
#[test]
fn non_string_panic_payload_is_caught_too() {
    setup();
    let (p, f) = Promise::new();
    let journal = Journal::default();
    f.add_done_callback(|_| panic::panic_any(NotAString));
    f.add_done_callback(|_| panic::resume_unwind(Box::new(NotAString)));
    f.add_done_callback(record(&journal, "after"));
    p.set_result(2).unwrap();
    assert_eq!(journal.entries(), ["after: ok 2"]);
    assert_eq!(callback_reports(&f).len(), 2);

    // The same through cancel(), which also runs callbacks.
    let (_p, g) = Promise::<i32>::new();
    g.add_done_callback(|_| panic::panic_any(NotAString));
    g.add_done_callback(record(&journal, "after cancel"));
    assert!(g.cancel());
    assert_eq!(
        journal.entries(),
        ["after: ok 2", "after cancel: cancelled"]
    );
    assert_eq!(callback_reports(&g).len(), 1);
}

// CPython #38: each callback runs exactly once, even when cancel() is followed by the executor's
// set_running (set_running_or_notify_cancel) and by further completion attempts.
#[test]
fn callbacks_run_once_through_cancel_then_set_running() {
    setup();
    let (p, f) = Promise::<i32>::new();
    let calls = Arc::new(AtomicUsize::new(0));
    for _ in 0..3 {
        let c = calls.clone();
        f.add_done_callback(move |_| {
            c.fetch_add(1, Ordering::SeqCst);
        });
    }
    assert!(f.cancel());
    assert_eq!(calls.load(Ordering::SeqCst), 3);
    assert!(!p.set_running());
    assert!(f.cancel());
    assert!(p.set_result(1).is_err());
    drop(p);
    assert_eq!(calls.load(Ordering::SeqCst), 3);
}

// CPython #38 on a pool: a queued task cancelled, then dequeued (skipped) by the worker, runs each
// callback once.
#[test]
fn pool_cancelled_task_callbacks_run_once_after_worker_skips_it() {
    setup();
    let pool = ThreadPoolExecutor::new(1).unwrap();
    let (release, release_rx) = mpsc::channel::<()>();
    let (started_tx, started) = mpsc::channel();
    let _busy = pool
        .spawn(move || {
            started_tx.send(()).unwrap();
            let _ = release_rx.recv();
        })
        .unwrap();
    started.recv().unwrap();
    let queued = pool.spawn(|| 1).unwrap();
    let calls = Arc::new(AtomicUsize::new(0));
    let c = calls.clone();
    queued.add_done_callback(move |_| {
        c.fetch_add(1, Ordering::SeqCst);
    });
    assert!(queued.cancel());
    drop(release);
    pool.shutdown(Queued::Run);
    assert_eq!(pool.metrics().cancelled, 1, "the worker saw and skipped it");
    assert_eq!(calls.load(Ordering::SeqCst), 1);
}
