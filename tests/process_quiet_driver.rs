//! `submit().result()` round trips leave the worker's driver thread asleep: the caller reads each
//! reply itself, and the socket is out of the driver's wait set from the dispatch on, so a reply
//! that arrives before the caller gets to its read does not wake the driver (it did for about half
//! of the round trips on two CPUs, which cost the parent twice the raw socketpair's CPU per task).
//!
//! A count, not a timing: the kernel's count of the driver thread's sleeps
//! (`/proc/self/task/<tid>/status`, `voluntary_ctxt_switches`). Alone in its test binary, so the
//! only pool driver is this test's.

use concurrent_futures::ProcessPoolExecutor;

fn inc(x: u64) -> u64 {
    x + 1
}

/// The sleeps so far of every thread named like a process-pool driver (`comm` is cut to 15 bytes).
fn driver_sleeps() -> Option<u64> {
    let mut found = None;
    for entry in std::fs::read_dir("/proc/self/task").ok()? {
        let path = entry.ok()?.path();
        let comm = std::fs::read_to_string(path.join("comm")).ok()?;
        if !comm.starts_with("process-pool-dr") {
            continue;
        }
        let status = std::fs::read_to_string(path.join("status")).ok()?;
        let n: u64 = status
            .lines()
            .find_map(|l| l.strip_prefix("voluntary_ctxt_switches:"))?
            .trim()
            .parse()
            .ok()?;
        *found.get_or_insert(0) += n;
    }
    found
}

#[test]
fn blocking_round_trips_do_not_wake_the_driver() {
    let pool = ProcessPoolExecutor::new(1).unwrap();
    assert_eq!(pool.submit(inc, 0).unwrap().result(None).unwrap(), 1);
    let before = driver_sleeps().expect("the driver thread's counters");
    const N: u64 = 1000;
    for i in 0..N {
        assert_eq!(pool.submit(inc, i).unwrap().result(None).unwrap(), i + 1);
    }
    let woken = driver_sleeps().expect("the driver thread's counters") - before;
    // Nothing should wake it; a few are tolerated for whatever the kernel does to a sleeping thread.
    assert!(
        woken <= N / 50,
        "the driver slept (so was woken) {woken} times in {N} round trips"
    );
}
