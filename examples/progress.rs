//! A large batch with an indicatif progress bar (rate and ETA), on both pools: the thread pool's futures
//! consumed with `as_completed` (completion order), then the process pool's `map` (input order, in
//! chunks: one round trip per 64 inputs).
//!
//! indicatif draws only on a terminal; elsewhere (CI, a pipe) the bar stays silent and the summary lines
//! still print.
//!
//! Run with `cargo run --release --example progress`.

use std::time::Instant;

use concurrent_futures::{
    as_completed, Error, MapOptions, ProcessPoolExecutor, ThreadPoolExecutor,
};
use indicatif::{ProgressBar, ProgressState, ProgressStyle};

/// The work: how many primes lie below `n`, by trial division (about 200 µs for the inputs below).
fn primes_below(n: u64) -> u64 {
    (2..n)
        .filter(|&k| (2..).take_while(|d| d * d <= k).all(|d| k % d != 0))
        .count() as u64
}

fn bar(len: usize, what: &str) -> ProgressBar {
    let bar = ProgressBar::new(len as u64);
    bar.set_style(
        ProgressStyle::with_template("{prefix:>9} [{bar:40}] {pos}/{len} {rate:>9} ETA {eta}")
            .expect("a valid template")
            .with_key(
                "rate",
                |state: &ProgressState, w: &mut dyn std::fmt::Write| {
                    let _ = write!(w, "{:.0}/s", state.per_sec());
                },
            )
            .progress_chars("=> "),
    );
    bar.set_prefix(what.to_owned());
    bar
}

const ITEMS: u64 = 10_000;

fn input(i: u64) -> u64 {
    3_000 + i % 2_000
}

fn main() -> Result<(), Error> {
    // Threads: every task submitted at once, results as they complete.
    let start = Instant::now();
    let pool =
        ThreadPoolExecutor::new(std::thread::available_parallelism().map_or(2, |n| n.get()))?;
    let futures = (0..ITEMS)
        .map(|i| pool.submit(primes_below, input(i)))
        .collect::<Result<Vec<_>, _>>()?;
    let progress = bar(futures.len(), "threads");
    let mut total = 0;
    for f in as_completed(futures) {
        total += f?.result(None)?;
        progress.inc(1);
    }
    progress.finish();
    let expected = total;
    println!(
        "threads:   {ITEMS} tasks in {:.2?} (sum {total})",
        start.elapsed()
    );

    // Processes: `map` in chunks, with a bound on the chunks in flight; results in input order.
    let start = Instant::now();
    let pool = ProcessPoolExecutor::new(2)?;
    let results = pool.map_with(
        primes_below,
        (0..ITEMS).map(input),
        MapOptions::new().chunksize(64).buffer(4),
    )?;
    let progress = bar(ITEMS as usize, "processes");
    let mut total = 0;
    for r in results {
        total += r?;
        progress.inc(1);
    }
    progress.finish();
    assert_eq!(total, expected);
    println!(
        "processes: {ITEMS} inputs in {:.2?} (sum {total})",
        start.elapsed()
    );
    pool.shutdown(concurrent_futures::Queued::Run);
    Ok(())
}
