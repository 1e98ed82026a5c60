//! Program 9: a broken process pool. Get a worker's pid through `submit`, kill that process with a
//! signal, and read the result of a task submitted to the pool: it fails with `BrokenProcessPool`,
//! raised when the result is read, not by `submit`. Once the pool knows it is broken, `submit` itself
//! refuses, with its own message.
//!
//! Python's program submits its second task right after the kill and wins the race against the pool's
//! manager thread. Here the driver sees a death as soon as the kernel reports it, so that race would
//! go either way; the second task is instead queued behind a task that holds the only worker, so it is
//! certainly still pending when the worker dies. Where each error surfaced is read from the error.

use concurrent_futures::{BrokenSeenBy, Error, ProcessPoolExecutor, Queued};

fn pid(_: ()) -> u32 {
    std::process::id()
}

/// Holds its worker until the worker is killed.
fn hold(_: ()) -> u32 {
    loop {
        std::thread::park();
    }
}

/// Where a broken pool's error surfaced, from the error itself.
fn surfaced(e: &Error) -> &'static str {
    match e {
        Error::BrokenProcessPool(b) if b.seen() == BrokenSeenBy::Submit => "raised by submit()",
        Error::BrokenProcessPool(_) => "raised by result()",
        _ => "not a broken pool",
    }
}

fn main() -> Result<(), Error> {
    let pool = ProcessPoolExecutor::new(1)?;
    println!("getting the pid for one worker");
    let worker = pool.submit(pid, ())?.result(None)?;
    let _held = pool.submit(hold, ())?;

    println!("submitting another task");
    let mut f2 = pool.submit(pid, ())?;
    println!("submit() accepted it: {f2:?}");

    println!("killing process {worker}");
    // SAFETY: kill(2) with the pid of a worker this program's pool started, and a valid signal.
    assert_eq!(unsafe { libc::kill(worker as i32, libc::SIGHUP) }, 0);

    match f2.result(None) {
        Err(e @ Error::BrokenProcessPool(_)) => {
            println!("could not start new tasks ({}): {e}", surfaced(&e))
        }
        other => println!("unexpected: {other:?}"),
    }

    println!("submitting once more, now that the pool knows it is broken");
    match pool.submit(pid, ()) {
        Err(e @ Error::BrokenProcessPool(_)) => println!("{}: {e}", surfaced(&e)),
        Ok(mut f) => println!("unexpected: accepted, then {:?}", f.result(None)),
        Err(e) => println!("unexpected: {e}"),
    }
    pool.shutdown(Queued::Run);
    Ok(())
}
