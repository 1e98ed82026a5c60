//! Pools made and dropped by the hundred, as a program that makes one per request or per job does:
//! nothing may pile up. After the loop (and a bounded wait for the drivers of dropped pools to end
//! on their own), this process has the descriptors, threads and child processes (zombies included)
//! it had before. Some pools never start a worker; the others are dropped, without a shutdown, from
//! inside a tokio runtime while their futures are still pending and then awaited there.
//!
//! Alone in its test binary, so the counts are exact.

mod common;

use std::time::{Duration, Instant};

use common::LONG;
use concurrent_futures::{Error, ProcessPoolExecutor, Queued};

fn fds() -> usize {
    std::fs::read_dir("/proc/self/fd").unwrap().count()
}

fn threads() -> usize {
    std::fs::read_dir("/proc/self/task").unwrap().count()
}

/// Every process whose parent is this one (zombies included: they still name us as parent).
fn children() -> Vec<String> {
    let me = std::process::id().to_string();
    std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(|e| {
            let name = e.ok()?.file_name().into_string().ok()?;
            name.parse::<u32>().ok()?;
            let stat = std::fs::read_to_string(format!("/proc/{name}/stat")).ok()?;
            let rest = stat.rsplit_once(')')?.1;
            let mut f = rest.split_whitespace();
            let state = f.next()?;
            (f.next()? == me).then(|| format!("{name} ({state})"))
        })
        .collect()
}

/// Polls `cond` until it holds or [`LONG`] passes: the drivers of dropped pools end on their own
/// time, and this is only a bound on that.
fn eventually(mut cond: impl FnMut() -> bool) -> bool {
    let end = Instant::now() + LONG;
    loop {
        if cond() {
            return true;
        }
        if Instant::now() > end {
            return false;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

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
    let (fd0, th0) = (fds(), threads());
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
        eventually(|| children().is_empty()),
        "children left: {:?}",
        children()
    );
    assert!(
        eventually(|| threads() == th0),
        "threads: {} before, {} after",
        th0,
        threads()
    );
    assert!(
        eventually(|| fds() == fd0),
        "descriptors: {} before, {} after",
        fd0,
        fds()
    );
    Ok(())
}
