//! A process that carries the worker marker but runs `main` (the worker entry did not run) must refuse
//! to start workers: no recursion, no fork bomb. Its own test binary, as it changes the environment.

use std::time::Duration;

use concurrent_futures::{Error, ProcessPoolExecutor};

/// Long enough never to expire; a hang fails the test instead of the suite.
const LONG: Duration = Duration::from_secs(30);

#[test]
fn a_stray_worker_marker_refuses_to_build_a_pool() {
    std::env::set_var("CONCURRENT_FUTURES_PROCESS_WORKER", "1:1:1024");
    match ProcessPoolExecutor::new(1) {
        Err(Error::ProcessSetup(m)) => assert!(m.contains("fork bomb"), "{m}"),
        other => panic!("expected ProcessSetup, got {other:?}"),
    }
    std::env::remove_var("CONCURRENT_FUTURES_PROCESS_WORKER");
    let pool = ProcessPoolExecutor::new(1).unwrap();
    assert_eq!(
        pool.submit(|n: u8| n + 1, 1).unwrap().result(LONG).unwrap(),
        2
    );
    pool.shutdown(concurrent_futures::Queued::Run);
}
