//! Pools made and dropped by the hundred, as a program that makes one per request or per job does:
//! nothing may pile up. After the loop (and a bounded wait for the drivers of dropped pools to end
//! on their own), this process has the descriptors, threads and child processes (zombies included)
//! it had before. Some pools never start a worker; the others are dropped, without a shutdown, from
//! inside a tokio runtime while their futures are still pending and then awaited there.
//!
//! Alone in its test binary, so the counts are exact.

mod common;

use common::census::{children, fds};
use common::threads::thread_count;
use common::{holds_within, LONG};
use concurrent_futures::{Error, ProcessPoolExecutor, Queued};

fn inc(n: u64) -> u64 {
    n + 1
}

#[test]
fn hundreds_of_pools_made_and_dropped_leave_nothing_behind() -> Result<(), Error> {
    // Process-wide one-time state (identity, code image, the runtime below) before the baseline.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let warm = ProcessPoolExecutor::new(1)?;
    warm.submit(inc, 0)?.result(LONG)?;
    warm.shutdown(Queued::Run);
    let (fd0, th0) = (fds(), thread_count());
    assert!(children().is_empty(), "{:?}", children());

    for _ in 0..1000 {
        let pool = ProcessPoolExecutor::builder().max_workers(4).build()?;
        let _ = pool.metrics();
        drop(pool);
    }
    let sum = rt.block_on(async {
        let mut sum = 0;
        for round in 0..100u64 {
            let pool = ProcessPoolExecutor::new(2)?;
            let futures = [pool.submit(inc, round)?, pool.submit(inc, round + 1)?];
            // Dropped with its futures pending, on the runtime's only thread: must not block.
            drop(pool);
            for f in futures {
                sum += f.await?;
            }
        }
        Ok::<_, Error>(sum)
    })?;
    assert_eq!(sum, (0..100u64).map(|r| 2 * r + 3).sum::<u64>());

    assert!(
        holds_within(LONG, || children().is_empty()),
        "children left: {:?}",
        children()
    );
    assert!(
        holds_within(LONG, || thread_count() == th0),
        "threads: {} before, {} after",
        th0,
        thread_count()
    );
    assert!(
        holds_within(LONG, || fds() == fd0),
        "descriptors: {} before, {} after",
        fd0,
        fds()
    );
    Ok(())
}
