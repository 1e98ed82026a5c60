//! Program 12 (CPU-bound π) on MPI ranks: each task computes sqrt(6 · Σ 1/i², i = 1..n) for n =
//! 5,000,000 … 5,003,000, several times over, first in this process alone, then on the pool.
//!
//! Two ways to run it (Debian/Ubuntu: `apt install libopenmpi-dev openmpi-bin libclang-dev`):
//!
//! ```text
//! cargo build --release --features mpi --example mpi_pi
//! mpirun -n 3 target/release/examples/mpi_pi   # static mode: rank 0 is the client, 1 and 2 serve
//! target/release/examples/mpi_pi 2             # spawn mode: starts 2 workers with MPI_Comm_spawn
//! ```
//!
//! Under `mpirun` with more than one rank it uses static mode ([`MpiPoolExecutor::from_world`]);
//! otherwise spawn mode with the number of workers given (default 2). The workers are this same
//! program; in spawn mode they never run `main`.

use std::time::Instant;

use concurrent_futures::{Error, Executor, MpiPoolExecutor, Queued};

const INPUTS: [u64; 4] = [5_000_000, 5_001_000, 5_002_000, 5_003_000];

fn pi(n: u64) -> f64 {
    let s: f64 = (1..=n).map(|i| 1.0 / (i as f64 * i as f64)).sum();
    (6.0 * s).sqrt()
}

/// Runs the batch on any pool: the same code runs on threads, processes or MPI ranks.
fn batch_on(pool: &impl Executor, batch: &[u64]) -> Result<Vec<f64>, Error> {
    pool.map(pi, batch.to_vec())?.into_iter().collect()
}

fn main() -> Result<(), Error> {
    // Under `mpirun`, Open MPI tells each rank the size of the job.
    let world: usize = std::env::var("OMPI_COMM_WORLD_SIZE")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1);
    let pool = if world > 1 {
        MpiPoolExecutor::from_world()? // ranks other than 0 serve here and exit
    } else {
        let workers = std::env::args()
            .nth(1)
            .and_then(|a| a.parse().ok())
            .unwrap_or(2);
        MpiPoolExecutor::new(workers)?
    };
    let mode = if world > 1 { "static" } else { "spawn" };
    println!("{mode} mode: {} worker ranks", pool.max_workers());

    let one = Instant::now();
    std::hint::black_box(pi(std::hint::black_box(INPUTS[0])));
    let per_task = one.elapsed().as_secs_f64();
    let rounds = (1.0 / (per_task * INPUTS.len() as f64))
        .ceil()
        .clamp(1.0, 200.0) as usize;
    let batch: Vec<u64> = (0..rounds).flat_map(|_| INPUTS).collect();

    let start = Instant::now();
    let serial: Vec<f64> = batch.iter().map(|&n| pi(n)).collect();
    let serial_secs = start.elapsed().as_secs_f64();

    let start = Instant::now();
    let results = batch_on(&pool, &batch)?;
    let pool_secs = start.elapsed().as_secs_f64();
    assert_eq!(
        results, serial,
        "the ranks compute what this process computes"
    );

    for (n, v) in INPUTS.iter().zip(&results) {
        println!(
            "pi({n}) ≈ {v:.12}  (error {:.1e})",
            (v - std::f64::consts::PI).abs()
        );
    }
    println!(
        "{} tasks: {serial_secs:.2} s in this process, {pool_secs:.2} s on {} ranks ({:.2}x)",
        batch.len(),
        pool.max_workers(),
        serial_secs / pool_secs
    );
    // Stops the worker ranks (in static mode they exit with it) and finalizes MPI.
    pool.shutdown(Queued::Run);
    Ok(())
}
