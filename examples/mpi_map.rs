//! A `map` over many inputs on MPI ranks, with progress as results complete: the length of the
//! Collatz sequence of every number below 300,000, in chunks of 3,000 numbers per task, each chunk a
//! future; `as_completed` reports progress in completion order, and the longest sequence is found
//! at the end.
//!
//! ```text
//! cargo build --release --features mpi --example mpi_map
//! mpirun -n 3 target/release/examples/mpi_map   # static mode
//! target/release/examples/mpi_map 2             # spawn mode, 2 workers
//! ```

use concurrent_futures::{as_completed, Error, MpiPoolExecutor, Queued};

const LIMIT: u64 = 300_000;
const CHUNK: u64 = 3_000;

fn collatz_len(mut n: u64) -> u32 {
    let mut len = 1;
    while n != 1 {
        n = if n % 2 == 0 { n / 2 } else { 3 * n + 1 };
        len += 1;
    }
    len
}

/// The longest sequence that starts in `[from, to)`: `(start, length)`.
fn longest((from, to): (u64, u64)) -> (u64, u32) {
    (from..to)
        .map(|n| (n, collatz_len(n)))
        .max_by_key(|&(_, len)| len)
        .expect("a chunk is not empty")
}

fn main() -> Result<(), Error> {
    let world: usize = std::env::var("OMPI_COMM_WORLD_SIZE")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1);
    let pool = if world > 1 {
        MpiPoolExecutor::from_world()?
    } else {
        MpiPoolExecutor::new(
            std::env::args()
                .nth(1)
                .and_then(|a| a.parse().ok())
                .unwrap_or(2),
        )?
    };

    let chunks: Vec<(u64, u64)> = (1..LIMIT)
        .step_by(CHUNK as usize)
        .map(|from| (from, (from + CHUNK).min(LIMIT)))
        .collect();
    let futures = chunks
        .iter()
        .map(|&c| pool.submit(longest, c))
        .collect::<Result<Vec<_>, _>>()?;
    let total = futures.len();

    let mut best = (0, 0);
    for (done, f) in as_completed(futures).into_iter().enumerate() {
        let (n, len) = f?.result(None)?;
        if len > best.1 {
            best = (n, len);
        }
        if (done + 1) % (total / 10) == 0 || done + 1 == total {
            println!(
                "{:>3}% ({}/{total} chunks), longest so far: {} ({} steps)",
                (done + 1) * 100 / total,
                done + 1,
                best.0,
                best.1
            );
        }
    }
    println!(
        "below {LIMIT}, {} has the longest Collatz sequence: {} numbers",
        best.0, best.1
    );
    // The ordered form of the same work: `map` yields results in input order.
    let first: Vec<(u64, u32)> = pool
        .map(longest, chunks.into_iter().take(3))?
        .into_iter()
        .collect::<Result<_, _>>()?;
    println!("first three chunks, in order: {first:?}");
    pool.shutdown(Queued::Run);
    Ok(())
}
