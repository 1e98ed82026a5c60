//! Scratch
use concurrent_futures::{Executor, MpiPoolExecutor, Queued};

fn square(n: u64) -> (u64, i32) {
    (n * n, std::process::id() as i32)
}

fn main() -> Result<(), concurrent_futures::Error> {
    let pool = if std::env::args().any(|a| a == "--spawn") {
        MpiPoolExecutor::new(2)?
    } else {
        MpiPoolExecutor::from_world()?
    };
    println!(
        "client pid {} ranks {}",
        std::process::id(),
        pool.max_workers()
    );
    let t = std::time::Instant::now();
    let mut f = pool.submit(square, 12)?;
    println!("result {:?} in {:?}", f.result(None)?, t.elapsed());
    let s: u64 = pool
        .map(square, 1..=100)?
        .into_iter()
        .map(|r| r.unwrap().0)
        .sum();
    println!("sum {s} {:?}", t.elapsed());
    pool.shutdown(Queued::Run);
    println!("shut down {:?}", t.elapsed());
    Ok(())
}
