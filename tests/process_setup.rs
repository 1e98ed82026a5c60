//! A process that carries the worker marker but runs `main` (the worker entry did not run) must refuse
//! to start workers: no recursion, no fork bomb. Its own test binary, as it changes the environment.

use std::time::Duration;

use concurrent_futures::{Error, ProcessPoolExecutor};

/// The marker's name (specific to this copy of the crate), from a real worker's environment.
fn marker_name() -> String {
    let pool = ProcessPoolExecutor::new(1).unwrap();
    let environ = pool
        .submit(|(): ()| std::fs::read("/proc/self/environ").unwrap(), ())
        .unwrap()
        .result(LONG)
        .unwrap();
    pool.shutdown(concurrent_futures::Queued::Run);
    let environ = String::from_utf8(environ).unwrap();
    let var = environ
        .split('\0')
        .find(|v| v.starts_with("CONCURRENT_FUTURES_PROCESS_WORKER"))
        .unwrap();
    var.split_once('=').unwrap().0.to_owned()
}

/// Long enough never to expire; a hang fails the test instead of the suite.
const LONG: Duration = Duration::from_secs(30);

#[test]
fn a_stray_worker_marker_refuses_to_build_a_pool() {
    let marker = marker_name();
    std::env::set_var(&marker, "2:1:1024");
    match ProcessPoolExecutor::new(1) {
        Err(Error::ProcessSetup(m)) => assert!(m.contains("fork bomb"), "{m}"),
        other => panic!("expected ProcessSetup, got {other:?}"),
    }
    std::env::remove_var(&marker);
    let pool = ProcessPoolExecutor::new(1).unwrap();
    assert_eq!(
        pool.submit(|n: u8| n + 1, 1).unwrap().result(LONG).unwrap(),
        2
    );
    pool.shutdown(concurrent_futures::Queued::Run);
}
