//! A host program that ignores SIGCHLD: the kernel reaps every exited child at once, so a worker's
//! pid can be reused while the pool still holds it. The pool must keep working (tasks, time limits,
//! interrupts, worker deaths, shutdown) and signal workers only through their pidfds. Its own test
//! binary, as the disposition is process-wide.

use std::time::Duration;

use concurrent_futures::{Error, ProcessPoolExecutor, Queued, WorkerDeath};

const LIMIT: Option<Duration> = Some(Duration::from_secs(60));

fn ignore_sigchld() {
    // SAFETY: setting a disposition to SIG_IGN installs no handler code.
    #[allow(unsafe_code)]
    unsafe {
        libc::signal(libc::SIGCHLD, libc::SIG_IGN);
    }
}

fn sleep_ms(ms: u64) -> u64 {
    std::thread::sleep(Duration::from_millis(ms));
    ms
}

fn exit_now(_: ()) -> u8 {
    std::process::exit(3)
}

#[test]
fn a_pool_in_a_host_that_ignores_sigchld_still_works_and_stops_its_tasks() {
    ignore_sigchld();
    let pool = ProcessPoolExecutor::builder()
        .max_workers(2)
        .on_worker_death(WorkerDeath::Respawn)
        .build()
        .unwrap();
    assert_eq!(pool.submit(sleep_ms, 1).unwrap().result(LIMIT).unwrap(), 1);

    let mut slow = pool
        .submit_with_time_limit(Duration::from_millis(200), sleep_ms, 60_000)
        .unwrap();
    assert!(matches!(slow.result(LIMIT), Err(Error::TimeLimit(_))));

    let mut running = pool.submit(sleep_ms, 60_000).unwrap();
    while !running.running() {
        std::thread::sleep(Duration::from_millis(5));
    }
    assert!(running.interrupt());
    assert!(matches!(running.result(LIMIT), Err(Error::Interrupted)));

    // A worker that exits on its own is reaped by the kernel before its driver can.
    assert!(matches!(
        pool.submit(exit_now, ()).unwrap().result(LIMIT),
        Err(Error::WorkerDied(_))
    ));
    assert_eq!(pool.submit(sleep_ms, 2).unwrap().result(LIMIT).unwrap(), 2);
    pool.kill_workers();
    pool.shutdown(Queued::Cancel);
}
