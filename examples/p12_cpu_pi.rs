//! Program 12: CPU-bound work in processes. Each task computes sqrt(6 · Σ 1/i²), an approximation of
//! π; with 2 processes on 2 cores the batch takes about half the time of 1 process.

use std::time::Instant;

use concurrent_futures::{Error, ProcessPoolExecutor, Queued};

fn pi(n: u64) -> f64 {
    let s: f64 = (1..=n).map(|i| 1.0 / (i as f64 * i as f64)).sum();
    (6.0 * s).sqrt()
}

fn run(workers: usize, inputs: &[u64]) -> Result<(f64, f64), Error> {
    let pool = ProcessPoolExecutor::new(workers)?;
    pool.submit(pi, 1)?.result(None)?; // start the workers before timing
    if workers > 1 {
        let warm: Vec<_> = (0..workers)
            .map(|_| pool.submit(pi, 1_000_000))
            .collect::<Result<_, _>>()?;
        for mut f in warm {
            f.result(None)?;
        }
    }
    let t = Instant::now();
    let results = pool.map(pi, inputs.to_vec())?;
    let last = results.into_iter().last().expect("inputs")?;
    let secs = t.elapsed().as_secs_f64();
    pool.shutdown(Queued::Run);
    Ok((secs, last))
}

fn main() -> Result<(), Error> {
    let inputs: Vec<u64> = (0..8).map(|k| 20_000_000 + 1_000 * k).collect();
    let (one, pi1) = run(1, &inputs)?;
    println!("1 worker:  {one:.2} s  (pi ≈ {pi1:.10})");
    let (two, pi2) = run(2, &inputs)?;
    println!("2 workers: {two:.2} s  (pi ≈ {pi2:.10})");
    println!(
        "speed-up: {:.2}x on {} cores",
        one / two,
        std::thread::available_parallelism().map_or(1, |n| n.get())
    );
    Ok(())
}
