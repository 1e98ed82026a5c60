//! Program 9: a broken process pool. Get a worker's pid through `submit`, kill that process with a
//! signal, submit again: the new future fails with BrokenProcessPool, raised when the result is read.

use concurrent_futures::{Error, ProcessPoolExecutor, Queued};

fn pid(_: ()) -> u32 {
    std::process::id()
}

fn main() -> Result<(), Error> {
    let pool = ProcessPoolExecutor::new(1)?;
    let worker = pool.submit(pid, ())?.result(None)?;
    println!("killing worker {worker}");
    std::process::Command::new("kill")
        .args(["-9", &worker.to_string()])
        .status()
        .expect("kill(1)");
    // The death is noticed at once; depending on the race, submit itself is refused or the future fails.
    let outcome = match pool.submit(pid, ()) {
        Ok(mut f) => f.result(None),
        Err(e) => Err(e),
    };
    match outcome {
        Err(e @ Error::BrokenProcessPool(_)) => println!("could not start new tasks: {e}"),
        other => println!("unexpected: {other:?}"),
    }
    pool.shutdown(Queued::Run);
    Ok(())
}
