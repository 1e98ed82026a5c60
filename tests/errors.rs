//! The error type and its messages: CPython's conformance group 14 (items 144–147). Python's exception
//! hierarchy is one `Error` enum here, with `is_broken()`, `is_rejected()` and `is_timeout()` as the
//! groupings Python gets from subclassing.

mod common;

use std::error::Error as _;
use std::sync::mpsc;
use std::time::Duration;

use common::LONG;
use concurrent_futures::{as_completed, Error, MapOptions, Promise, Queued, ThreadPoolExecutor};
use futures::StreamExt;

fn assert_error_traits<E: std::error::Error + Clone + Send + Sync + 'static>() {}

/// (is_broken, is_rejected, is_timeout)
fn groups(e: &Error) -> (bool, bool, bool) {
    (e.is_broken(), e.is_rejected(), e.is_timeout())
}

fn broken_pool() -> ThreadPoolExecutor {
    let pool = ThreadPoolExecutor::builder()
        .max_workers(1)
        .initializer(|| Err::<(), _>("error in initializer"))
        .build()
        .unwrap();
    if let Ok(mut f) = pool.spawn(|| ()) {
        assert!(f.result(LONG).unwrap_err().is_broken());
    }
    pool
}

// CPython #144: one error type, usable as a std error from any thread, cloneable so a failed future can
// hand it out on every call.
#[test]
fn error_is_a_cloneable_thread_safe_std_error() {
    assert_error_traits::<Error>();
    let boxed: Box<dyn std::error::Error + Send + Sync> = Box::new(Error::Shutdown);
    assert_eq!(
        boxed.to_string(),
        "cannot schedule new futures after shutdown"
    );
}

// CPython #144: Python's RuntimeError umbrella ("after shutdown" and "broken") is is_rejected();
// BrokenExecutor is is_broken(); TimeoutError is is_timeout(). Each checked on an error the pool made.
#[test]
fn error_groupings_match_pythons_hierarchy() {
    let pool = ThreadPoolExecutor::new(1).unwrap();
    let (release, hold) = mpsc::channel::<()>();
    let mut slow = pool.spawn(move || hold.recv().ok()).unwrap();
    let timeout = slow.result(Duration::ZERO).unwrap_err();
    assert!(matches!(timeout, Error::Timeout));
    assert_eq!(groups(&timeout), (false, false, true));

    let queued = pool.spawn(|| None::<()>).unwrap();
    assert!(queued.cancel());
    let cancelled = queued.exception(Duration::ZERO).unwrap_err();
    assert!(matches!(cancelled, Error::Cancelled));
    assert_eq!(groups(&cancelled), (false, false, false));

    let mut panicked = pool.spawn(|| -> u8 { panic!("boom") }).unwrap();
    drop(release);
    slow.result(LONG).unwrap();
    let panic = panicked.result(LONG).unwrap_err();
    assert_eq!(groups(&panic), (false, false, false));

    pool.shutdown(Queued::Run);
    let shutdown = pool.spawn(|| ()).unwrap_err();
    assert!(matches!(shutdown, Error::Shutdown));
    assert_eq!(groups(&shutdown), (false, true, false));

    let broken = broken_pool().spawn(|| ()).unwrap_err();
    assert!(matches!(broken, Error::BrokenThreadPool(_)));
    assert_eq!(groups(&broken), (true, true, false));

    let unfinished = Error::Unfinished {
        pending: 2,
        total: 4,
    };
    assert_eq!(groups(&unfinished), (false, false, true));
    // A full queue is a transient refusal, not a closed executor.
    assert_eq!(groups(&Error::Full), (false, false, false));
}

// CPython #144: a task's own error (Python: the exception it raised) is kept, reachable through
// source() and downcast, and is none of the pool's groupings.
#[test]
fn a_failed_tasks_error_is_kept_as_its_source() {
    #[derive(Debug)]
    struct ValueError(&'static str);
    impl std::fmt::Display for ValueError {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            write!(f, "ValueError: {}", self.0)
        }
    }
    impl std::error::Error for ValueError {}

    let pool = ThreadPoolExecutor::new(1).unwrap();
    let mut f = pool
        .spawn_fallible(|| Err::<(), _>(ValueError("bad")))
        .unwrap();
    let e = f.result(LONG).unwrap_err();
    assert_eq!(groups(&e), (false, false, false));
    assert_eq!(e.to_string(), "the task failed: ValueError: bad");
    assert_eq!(e.source().unwrap().to_string(), "ValueError: bad");
    let Error::Failed(task) = &e else {
        panic!("expected Failed, got {e:?}")
    };
    assert_eq!(task.downcast_ref::<ValueError>().unwrap().0, "bad");
    // The same error, every time it is asked for (Python re-raises the same object).
    let again = f.result(LONG).unwrap_err();
    assert_eq!(again.to_string(), e.to_string());
}

// CPython #145, #55: as_completed's timeout says exactly '<pending> (of <total>) futures unfinished'.
#[tokio::test(start_paused = true)]
async fn as_completed_timeout_message_is_exact() {
    let pool = ThreadPoolExecutor::new(2).unwrap();
    let (release, hold) = mpsc::channel::<()>();
    let hold = std::sync::Arc::new(std::sync::Mutex::new(hold));
    let mut futures = Vec::new();
    for i in 0..2u32 {
        let f = pool.spawn(move || i).unwrap();
        // Finished before as_completed starts (exception() waits without taking the value).
        assert!(f.exception(LONG).unwrap().is_none());
        futures.push(f);
    }
    for _ in 0..2 {
        let hold = hold.clone();
        futures.push(
            pool.spawn(move || {
                let _ = hold.lock().unwrap().recv();
                9
            })
            .unwrap(),
        );
    }
    let mut stream = as_completed(&futures).timeout(Duration::from_secs(5));
    assert!(stream.next().await.unwrap().is_ok());
    assert!(stream.next().await.unwrap().is_ok());
    let err = stream.next().await.unwrap().unwrap_err();
    assert!(matches!(
        err,
        Error::Unfinished {
            pending: 2,
            total: 4
        }
    ));
    assert_eq!(err.to_string(), "2 (of 4) futures unfinished");
    assert!(stream.next().await.is_none());
    drop(release);
}

// CPython #146: an invalid-state message begins with the state name, then ': '.
#[test]
fn invalid_state_messages_begin_with_the_state() {
    let (promise, mut fut) = Promise::new();
    promise.set_result(1).unwrap();
    match promise.set_result(2) {
        Err(Error::InvalidState(msg)) => assert!(msg.starts_with("FINISHED: "), "{msg:?}"),
        other => panic!("expected InvalidState, got {other:?}"),
    }
    assert_eq!(
        fut.result(Duration::ZERO).unwrap(),
        1,
        "the first outcome is kept"
    );

    let (promise, fut) = Promise::<u8>::new();
    assert!(fut.cancel());
    match promise.set_error(Error::Panicked("late".into())) {
        Err(Error::InvalidState(msg)) => assert!(msg.starts_with("CANCELLED: "), "{msg:?}"),
        other => panic!("expected InvalidState, got {other:?}"),
    }
}

// CPython #147 and the message table: the texts Python users search for. The thread pool's broken text
// is the same from submit and on each queued future (as in CPython; the distinct per-future text is the
// process pool's), followed here by the initializer's own error.
#[test]
fn messages_match_pythons() {
    let broken_pool = broken_pool();
    let from_submit = broken_pool.spawn(|| ()).unwrap_err().to_string();
    assert_eq!(
        from_submit,
        "a thread initializer failed, the thread pool is not usable anymore: error in initializer"
    );

    // On a queued future: the worker is started by the first submit, so the queued one is that one.
    let pool = ThreadPoolExecutor::builder()
        .max_workers(1)
        .initializer(|| Err::<(), _>("error in initializer"))
        .build()
        .unwrap();
    if let Ok(mut f) = pool.spawn(|| ()) {
        assert_eq!(f.result(LONG).unwrap_err().to_string(), from_submit);
    }

    let shutdown = ThreadPoolExecutor::new(1).unwrap();
    shutdown.shutdown(Queued::Run);
    assert_eq!(
        shutdown.spawn(|| ()).unwrap_err().to_string(),
        "cannot schedule new futures after shutdown"
    );
    assert_eq!(
        ThreadPoolExecutor::new(0).unwrap_err().to_string(),
        "max_workers must be greater than 0"
    );
    let pool = ThreadPoolExecutor::new(1).unwrap();
    assert_eq!(
        pool.map_with(|n: u8| n, 0..1, MapOptions::new().chunksize(0))
            .unwrap_err()
            .to_string(),
        "chunksize must be >= 1"
    );
    assert_eq!(
        pool.map_with(|n: u8| n, 0..1, MapOptions::new().buffer(0))
            .unwrap_err()
            .to_string(),
        "buffersize must be None or > 0"
    );
    assert_eq!(
        Error::Unfinished {
            pending: 1,
            total: 3
        }
        .to_string(),
        "1 (of 3) futures unfinished"
    );
    let line = line!() + 2;
    let mut f = pool
        .spawn(|| -> u8 { panic!("the value 5 is no good") })
        .unwrap();
    assert_eq!(
        f.result(LONG).unwrap_err().to_string(),
        format!("the task panicked at tests/errors.rs:{line}:27: the value 5 is no good")
    );
}
