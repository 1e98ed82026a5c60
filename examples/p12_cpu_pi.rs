//! Program 12: CPU-bound work in processes. Each task computes sqrt(6 · Σ 1/i², i = 1..n), an
//! approximation of π, for n = 5,000,000, 5,001,000, 5,002,000 and 5,003,000. The batch is timed as
//! Python times its `with ProcessPoolExecutor(n)` block (the pool's start, the work, the shutdown) with
//! 1 process, 2 processes, as many as the machine has cores, and twice that. With 2 processes on 2
//! cores the batch takes about half the time of 1; more processes than cores bring no further gain.
//! The verdicts printed are computed from the measured times.
//!
//! Python spends seconds on these four tasks; compiled Rust needs milliseconds, less than starting a
//! worker process, so the timing would show process start-up rather than the work. The batch therefore
//! computes each of the four values several times, as many as make the serial batch last about a
//! second on this machine (measured first, in this process).

use std::time::Instant;

use concurrent_futures::{Error, ProcessPoolExecutor, Queued};

const INPUTS: [u64; 4] = [5_000_000, 5_001_000, 5_002_000, 5_003_000];

fn pi(n: u64) -> f64 {
    let s: f64 = (1..=n).map(|i| 1.0 / (i as f64 * i as f64)).sum();
    (6.0 * s).sqrt()
}

/// Seconds for the whole batch on a fresh pool of `workers` processes, and the results.
fn run(workers: usize, batch: &[u64]) -> Result<(f64, Vec<f64>), Error> {
    let start = Instant::now();
    let pool = ProcessPoolExecutor::new(workers)?;
    let results = pool
        .map(pi, batch.to_vec())?
        .into_iter()
        .collect::<Result<Vec<f64>, _>>()?;
    pool.shutdown(Queued::Run);
    Ok((start.elapsed().as_secs_f64(), results))
}

fn main() -> Result<(), Error> {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let mut counts = vec![1, 2, cores, 2 * cores];
    counts.sort_unstable();
    counts.dedup();

    let one = Instant::now();
    std::hint::black_box(pi(std::hint::black_box(INPUTS[0])));
    let per_task = one.elapsed().as_secs_f64();
    let rounds = (1.0 / (per_task * INPUTS.len() as f64))
        .ceil()
        .clamp(1.0, 200.0) as usize;
    let batch: Vec<u64> = (0..rounds).flat_map(|_| INPUTS).collect();
    println!(
        "one task takes {:.1} ms here: each value is computed {rounds} times ({} tasks)",
        per_task * 1e3,
        batch.len()
    );

    let mut times: Vec<(usize, f64)> = Vec::new();
    for &workers in &counts {
        let (secs, results) = run(workers, &batch)?;
        if workers == 1 {
            for (n, v) in INPUTS.iter().zip(&results) {
                println!(
                    "pi({n}) ≈ {v:.12}  (error {:.1e})",
                    (v - std::f64::consts::PI).abs()
                );
            }
        }
        let serial = times.first().map_or(secs, |&(_, t)| t);
        let label = if workers == 1 { "process" } else { "processes" };
        print!(
            "{workers:>3} {label:<9}: {secs:6.2} s  {:4.2}x",
            serial / secs
        );
        if workers > cores {
            // Compared with the largest count that does not exceed the cores.
            let (at, best) = times
                .iter()
                .rev()
                .find(|&&(w, _)| w <= cores)
                .copied()
                .expect("1 <= cores");
            let verdict = if secs < best * 0.85 {
                "a further gain"
            } else {
                "no further gain"
            };
            print!("  ({workers} processes on {cores} cores: {verdict} over {at})");
        }
        println!();
        times.push((workers, secs));
    }
    Ok(())
}
