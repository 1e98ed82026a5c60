//! CPython's group 13 (initializer) for the process pool.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};

use common::process::assert_all_gone;
use common::LONG;
use concurrent_futures::{BrokenCause, Error, ProcessPoolExecutor, Queued};

static INIT_RUNS: AtomicUsize = AtomicUsize::new(0);

fn init(tag: String) {
    INIT_RUNS.fetch_add(1, Ordering::SeqCst);
    std::env::set_var("CF_INIT_TAG", tag);
}

fn report(_: ()) -> (u32, usize, String) {
    (
        std::process::id(),
        INIT_RUNS.load(Ordering::SeqCst),
        std::env::var("CF_INIT_TAG").unwrap_or_default(),
    )
}

#[test]
fn initializer_runs_once_in_each_worker_before_its_tasks() -> Result<(), Error> {
    // Item 137.
    let pool = ProcessPoolExecutor::builder()
        .max_workers(2)
        .initializer(init, "initialized".to_string())
        .build()?;
    let seen: Vec<_> = (0..8)
        .map(|_| pool.submit(report, ()))
        .collect::<Result<Vec<_>, _>>()?
        .into_iter()
        .map(|mut f| f.result(LONG))
        .collect::<Result<_, _>>()?;
    for (_, runs, tag) in &seen {
        assert_eq!(*runs, 1);
        assert_eq!(tag, "initialized");
    }
    assert_eq!(
        INIT_RUNS.load(Ordering::SeqCst),
        0,
        "it ran in the workers, not here"
    );
    let pids: Vec<u32> = seen.iter().map(|s| s.0).collect();
    pool.shutdown(Queued::Run);
    assert_all_gone(&pids);
    Ok(())
}

fn failing_init(code: u32) -> Result<(), String> {
    Err(format!("error in initializer {code}"))
}

fn panicking_init(_: ()) {
    panic!("initializer exploded")
}

fn check_broken_by_initializer(pool: ProcessPoolExecutor, needle: &str) {
    // Items 138, 140, 141: the queued futures fail, every later submit is refused.
    let futures: Vec<_> = (0..3).map(|_| pool.submit(|n: u8| n, 1)).collect();
    for f in futures {
        let r = match f {
            Ok(mut f) => f.result(LONG),
            Err(e) => Err(e),
        };
        match r {
            Err(Error::BrokenProcessPool(b)) => match b.cause() {
                BrokenCause::InitializerFailed(m) => assert!(m.contains(needle), "{m}"),
                other => panic!("unexpected cause {other:?}"),
            },
            other => panic!("expected BrokenProcessPool, got {other:?}"),
        }
    }
    let e = pool.submit(|n: u8| n, 1).unwrap_err();
    assert!(e.is_broken() && e.to_string().contains(needle), "{e}");
    pool.shutdown(Queued::Run);
    // Item 142: nothing is left running.
    assert!(pool.worker_pids().is_empty());
}

#[test]
fn a_failing_initializer_breaks_the_pool() -> Result<(), Error> {
    let pool = ProcessPoolExecutor::builder()
        .max_workers(2)
        .initializer(failing_init, 7)
        .build()?;
    check_broken_by_initializer(pool, "error in initializer 7");
    Ok(())
}

#[test]
fn a_panicking_initializer_breaks_the_pool() -> Result<(), Error> {
    let pool = ProcessPoolExecutor::builder()
        .max_workers(1)
        .initializer(panicking_init, ())
        .build()?;
    check_broken_by_initializer(pool, "initializer exploded");
    Ok(())
}
