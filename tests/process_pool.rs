//! Process pool basics and CPython's group 11 (process pool specifics), through the `Executor` trait
//! where the behaviour is shared with the thread pool. Every test ends with its futures resolved and
//! its worker processes reaped (checked by pid).

mod common;

use std::collections::HashSet;
use std::time::Duration;

use common::process::{assert_all_gone, gated_pid, pid, shutdown_bounded, Gate, Unencodable};
use common::LONG;
use concurrent_futures::{
    as_completed, wait, ByteBlock, Error, Executor, MapOptions, ProcessPoolExecutor, Queued,
    ReturnWhen, ThreadPoolExecutor,
};
use serde::{Deserialize, Serialize};

fn pow((base, exp): (u64, u32)) -> u64 {
    base.pow(exp)
}

/// Shared behaviour, run against both pools (item 82, 60, 63/65).
fn basics(pool: &impl Executor) -> Result<(), Error> {
    assert_eq!(pool.submit(pow, (2, 8))?.result(LONG)?, 256);
    let squares: Vec<u64> = pool
        .map(|n: u64| n * n, 0..10)?
        .into_iter()
        .collect::<Result<_, _>>()?;
    assert_eq!(squares, (0..10).map(|n| n * n).collect::<Vec<_>>());
    let r: Vec<Result<u32, Error>> = pool
        .map_with(
            |n: u32| if n == 4 { panic!("no 4") } else { n },
            0..7,
            MapOptions::new().chunksize(3),
        )?
        .into_iter()
        .collect();
    assert_eq!(r.len(), 7);
    for (i, x) in r.iter().enumerate() {
        match x {
            Ok(v) => assert_eq!(*v as usize, i),
            Err(Error::Panicked(m)) => assert!(i == 4 && m == "no 4", "{i} {m}"),
            Err(e) => panic!("{e}"),
        }
    }
    let f = pool.submit_fallible(|s: String| s.parse::<u8>(), "x".into())?;
    assert!(matches!(f.exception(LONG)?, Some(Error::Failed(_))));
    Ok(())
}

#[test]
fn same_code_runs_on_threads_and_processes() -> Result<(), Error> {
    let threads = ThreadPoolExecutor::new(2)?;
    basics(&threads)?;
    Executor::shutdown(&threads, Queued::Run);
    let procs = ProcessPoolExecutor::new(2)?;
    basics(&procs)?;
    let pids = procs.worker_pids();
    assert!(!pids.is_empty());
    Executor::shutdown(&procs, Queued::Run);
    assert_all_gone(&pids);
    Ok(())
}

#[test]
fn runs_in_another_process_and_panics_keep_the_worker() -> Result<(), Error> {
    let pool = ProcessPoolExecutor::new(1)?;
    let first = pool.submit(pid, ())?.result(LONG)?;
    assert_ne!(first, std::process::id());
    let p = pool
        .submit(|(): ()| -> u8 { panic!("the value 5 is no good") }, ())?
        .result(LONG);
    assert!(
        matches!(&p, Err(Error::Panicked(m)) if m == "the value 5 is no good"
            && m.location().is_some_and(|at| at.starts_with("tests/process_pool.rs:"))),
        "{p:?}"
    );
    assert_eq!(
        pool.submit(pid, ())?.result(LONG)?,
        first,
        "item 20: the worker survived"
    );
    pool.shutdown(Queued::Run);
    assert_all_gone(&[first]);
    Ok(())
}

/// Panics with its own line number in the message, so the test can find the report of that line.
fn panics_in_the_worker(_: ()) -> u8 {
    panic!("remote failure at line {}", line!())
}

/// Run in a fresh copy of this test binary, whose stderr the test reads: one panicking task.
#[test]
#[ignore = "helper for a_workers_panic_keeps_its_message_and_reports_where_it_happened"]
fn helper_one_remote_panic() {
    if std::env::var_os("CF_TEST_REMOTE_PANIC").is_none() {
        return;
    }
    let pool = ProcessPoolExecutor::new(1).unwrap();
    match pool.submit(panics_in_the_worker, ()).unwrap().result(LONG) {
        Err(Error::Panicked(p)) => {
            println!("message: {p}");
            println!("location: {}", p.location().unwrap_or("none"));
            let bt = p.backtrace().unwrap_or("");
            println!(
                "backtrace names the function: {}",
                bt.contains("panics_in_the_worker")
            );
        }
        other => panic!("expected Panicked, got {other:?}"),
    }
    pool.shutdown(Queued::Run);
}

#[test]
fn a_workers_panic_keeps_its_message_and_reports_where_it_happened() {
    // Item 21: the error keeps the worker's panic message exactly, and the worker's report of the panic
    // (the source line, and the backtrace of the worker's thread when RUST_BACKTRACE asks for one)
    // reaches the parent's stderr, as printing a child's exception shows its remote traceback in
    // Python. The error itself carries the message, the location and the worker's backtrace too.
    let child = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "helper_one_remote_panic",
            "--ignored",
            "--nocapture",
        ])
        .env("CF_TEST_REMOTE_PANIC", "1")
        .env("RUST_BACKTRACE", "1")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let id = child.id();
    let (out_tx, out) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = out_tx.send(child.wait_with_output());
    });
    let Ok(output) = out.recv_timeout(LONG) else {
        common::process::kill(id, libc::SIGKILL);
        panic!("the helper did not end");
    };
    let output = output.unwrap();
    let (stdout, stderr) = (
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr),
    );
    assert!(output.status.success(), "{stdout}\n{stderr}");
    let message = stdout
        .lines()
        .find_map(|l| l.strip_prefix("message: "))
        .unwrap_or_else(|| panic!("no message:\n{stdout}"));
    let line: u32 = message
        .strip_prefix("remote failure at line ")
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("the message was not kept exactly: {message:?}"));
    assert!(
        stdout.contains(&format!("location: tests/process_pool.rs:{line}:")),
        "{stdout}"
    );
    assert!(
        stdout.contains("backtrace names the function: true"),
        "{stdout}"
    );
    let report = stderr
        .find(&format!("panicked at tests/process_pool.rs:{line}:"))
        .map(|at| &stderr[at..])
        .unwrap_or_else(|| panic!("no report of line {line} on stderr:\n{stderr}"));
    assert!(report.contains(message), "{report}");
    assert!(report.contains("stack backtrace"), "{report}");
    assert!(report.contains("panics_in_the_worker"), "{report}");
}

#[test]
fn fallible_error_text_crosses() -> Result<(), Error> {
    let pool = ProcessPoolExecutor::new(1)?;
    let f = pool.submit_fallible(|s: String| s.parse::<u32>(), "five".into())?;
    let Some(Error::Failed(e)) = f.exception(LONG)? else {
        panic!("expected Failed")
    };
    assert_eq!(e.to_string(), "invalid digit found in string");
    pool.shutdown(Queued::Run);
    Ok(())
}

#[test]
fn map_chunksizes_and_validation() -> Result<(), Error> {
    // Items 79, 80.
    let pool = ProcessPoolExecutor::new(2)?;
    let want: Vec<u64> = (0..40).map(|n| n * 3).collect();
    for chunk in [1, 6, 40, 50] {
        let got: Vec<u64> = pool
            .map_with(|n: u64| n * 3, 0..40, MapOptions::new().chunksize(chunk))?
            .into_iter()
            .collect::<Result<_, _>>()?;
        assert_eq!(got, want, "chunksize {chunk}");
    }
    let e = pool
        .map_with(|n: u64| n, 0..3, MapOptions::new().chunksize(0))
        .unwrap_err();
    assert_eq!(e.to_string(), "chunksize must be >= 1");
    let pids = pool.worker_pids();
    pool.shutdown(Queued::Run);
    assert_all_gone(&pids);
    Ok(())
}

#[test]
fn submit_after_shutdown_and_bad_max_workers() -> Result<(), Error> {
    // Items 84, 87, 90.
    let pool = ProcessPoolExecutor::new(1)?;
    pool.shutdown(Queued::Run);
    pool.shutdown(Queued::Run);
    let e = pool.submit(pid, ()).unwrap_err();
    assert!(matches!(e, Error::Shutdown) && e.is_rejected());
    assert_eq!(e.to_string(), "cannot schedule new futures after shutdown");
    let e = ProcessPoolExecutor::new(0).unwrap_err();
    assert_eq!(e.to_string(), "max_workers must be greater than 0");
    Ok(())
}

#[test]
fn saturation_starts_exactly_max_workers() -> Result<(), Error> {
    // Item 115: with 15 x max_workers tasks, the pool runs exactly max_workers processes. The first
    // three hold their workers until released, so every other task waits in the queue meanwhile.
    let pool = ProcessPoolExecutor::new(3)?;
    let mut gates = [Gate::new(), Gate::new(), Gate::new()];
    let mut held: Vec<_> = gates
        .iter()
        .map(|g| pool.submit(gated_pid, g.path()))
        .collect::<Result<_, _>>()?;
    let queued: Vec<_> = (0..42)
        .map(|_| pool.submit(pid, ()))
        .collect::<Result<_, _>>()?;
    for g in &mut gates {
        g.wait_started();
    }
    assert_eq!(pool.worker_pids().len(), 3);
    assert_eq!(pool.workers_started(), 3, "a worker beyond max_workers");
    assert!(queued.iter().all(|f| !f.done()));
    for g in &mut gates {
        g.release();
    }
    let pids: HashSet<u32> = held
        .iter_mut()
        .map(|f| f.result(LONG))
        .chain(queued.into_iter().map(|mut f| f.result(LONG)))
        .collect::<Result<_, _>>()?;
    assert_eq!(pids.len(), 3, "{pids:?}");
    assert_eq!(pool.workers_started(), 3);
    pool.shutdown(Queued::Run);
    assert_all_gone(&pids.into_iter().collect::<Vec<_>>());
    Ok(())
}

#[test]
fn idle_worker_is_reused() -> Result<(), Error> {
    // Item 116: three sequential calls use one process.
    let pool = ProcessPoolExecutor::new(4)?;
    let a = pool.submit(pid, ())?.result(LONG)?;
    let b = pool.submit(pid, ())?.result(LONG)?;
    let c = pool.submit(pid, ())?.result(LONG)?;
    assert!(a == b && b == c);
    assert_eq!(pool.workers_started(), 1);
    pool.shutdown(Queued::Run);
    assert_all_gone(&[a]);
    Ok(())
}

#[test]
fn interleaved_waits_reuse_idle_workers() -> Result<(), Error> {
    // Item 116 (CPython's test_idle_process_reuse_multiple): a waited call, an unwaited one, and so on.
    // At each submit at most one earlier task can still be running, so at most 3 workers start.
    let pool = ProcessPoolExecutor::new(4)?;
    let mul = |(a, b): (u32, u32)| a * b;
    assert_eq!(pool.submit(mul, (12, 7))?.result(LONG)?, 84);
    let mut b = pool.submit(mul, (33, 25))?;
    assert_eq!(pool.submit(mul, (25, 26))?.result(LONG)?, 650);
    let mut d = pool.submit(mul, (18, 29))?;
    assert_eq!(pool.submit(mul, (1, 2))?.result(LONG)?, 2);
    let mut f = pool.submit(mul, (0, 9))?;
    assert!(pool.workers_started() <= 3, "{}", pool.workers_started());
    assert_eq!(
        (b.result(LONG)?, d.result(LONG)?, f.result(LONG)?),
        (825, 522, 0)
    );
    let pids = pool.worker_pids();
    pool.shutdown(Queued::Run);
    assert_all_gone(&pids);
    Ok(())
}

#[test]
fn max_tasks_per_child_must_be_at_least_one() -> Result<(), Error> {
    // Item 119: only the numeric check applies (a usize cannot be negative or of another type).
    match ProcessPoolExecutor::builder()
        .max_tasks_per_child(0)
        .build()
    {
        Err(e @ Error::InvalidArgument(_)) => {
            assert_eq!(e.to_string(), "max_tasks_per_child must be >= 1")
        }
        other => panic!("expected InvalidArgument, got {other:?}"),
    }
    let pool = ProcessPoolExecutor::builder()
        .max_workers(1)
        .max_tasks_per_child(1)
        .build()?;
    let a = pool.submit(pid, ())?.result(LONG)?;
    let b = pool.submit(pid, ())?.result(LONG)?;
    assert_ne!(a, b, "one task per child");
    pool.shutdown(Queued::Run);
    assert_all_gone(&[a, b]);
    Ok(())
}

#[test]
fn running_means_dispatched_and_cancel_wins_only_before() -> Result<(), Error> {
    // Item 27 (documented divergence: no extra queued call) and items 22-26.
    let pool = ProcessPoolExecutor::new(1)?;
    let mut gate = Gate::new();
    let mut busy = pool.submit(gated_pid, gate.path())?;
    gate.wait_started();
    let queued: Vec<_> = (0..4)
        .map(|_| pool.submit(pid, ()))
        .collect::<Result<_, _>>()?;
    assert!(busy.running());
    let cancels: Vec<bool> = std::iter::once(busy.cancel())
        .chain(queued.iter().map(|f| f.cancel()))
        .collect();
    assert_eq!(cancels, [false, true, true, true, true]);
    assert!(queued.iter().all(|f| f.cancelled() && f.done()));
    gate.release();
    let worker = busy.result(LONG)?;
    pool.shutdown(Queued::Run);
    assert_all_gone(&[worker]);
    Ok(())
}

#[test]
fn callbacks_run_in_the_parent() -> Result<(), Error> {
    // Program 15: results reach the parent's memory through callbacks.
    let pool = ProcessPoolExecutor::new(2)?;
    let (tx, rx) = std::sync::mpsc::channel();
    for n in 0..5u64 {
        let tx = tx.clone();
        pool.submit(|n: u64| n * 10, n)?
            .add_done_callback(move |r| tx.send(*r.as_ref().unwrap()).unwrap());
    }
    drop(tx);
    let mut got: Vec<u64> = rx.iter().collect();
    got.sort();
    assert_eq!(got, [0, 10, 20, 30, 40]);
    pool.shutdown(Queued::Run);
    Ok(())
}

#[test]
fn wait_and_as_completed_mix_pools() -> Result<(), Error> {
    // Item 49: futures from a thread pool and a process pool in one wait.
    let procs = ProcessPoolExecutor::new(2)?;
    let threads = ThreadPoolExecutor::new(1)?;
    let fs = vec![
        procs.submit(|n: u32| n + 1, 1)?,
        threads.submit(|n: u32| n + 2, 1)?,
        procs.submit(|n: u32| n + 3, 1)?,
    ];
    let done = wait(&fs).return_when(ReturnWhen::AllCompleted).blocking();
    assert_eq!(done.done.len(), 3);
    let mut total = 0;
    for f in as_completed(fs) {
        total += f?.result(LONG)?;
    }
    assert_eq!(total, 2 + 3 + 4);
    let pids = procs.worker_pids();
    procs.shutdown(Queued::Run);
    threads.shutdown(Queued::Run);
    assert_all_gone(&pids);
    Ok(())
}

#[test]
fn shutdown_cancel_futures_wakes_waiters() -> Result<(), Error> {
    // Items 91 and 101 (divergence: cancelled futures are done and wake `wait`).
    let pool = ProcessPoolExecutor::new(1)?;
    let mut gate = Gate::new();
    let running = pool.submit(gated_pid, gate.path())?;
    gate.wait_started();
    let queued: Vec<_> = (0..5)
        .map(|_| pool.submit(pid, ()))
        .collect::<Result<_, _>>()?;
    pool.shutdown_nowait(Queued::Cancel);
    assert!(queued.iter().all(|f| f.cancelled()));
    // The running task is not cancelled; release it only now, so it ends normally.
    gate.release();
    let w = wait(queued.iter().chain([&running])).blocking();
    assert_eq!(w.done.len(), 6);
    assert!(running.exception(LONG)?.is_none());
    let pids = pool.worker_pids();
    pool.shutdown(Queued::Run);
    assert_all_gone(&pids);
    Ok(())
}

#[test]
fn shutdown_nowait_still_runs_queued_work() -> Result<(), Error> {
    // Items 92, 93.
    let pool = ProcessPoolExecutor::new(1)?;
    let mut gate = Gate::new();
    let first = pool.submit(gated_pid, gate.path())?;
    gate.wait_started();
    let rest: Vec<_> = (0..3u64)
        .map(|n| pool.submit(|n: u64| n * 2, n))
        .collect::<Result<_, _>>()?;
    pool.shutdown_nowait(Queued::Run);
    gate.release();
    let mut got = Vec::new();
    for mut f in rest {
        got.push(f.result(LONG)?);
    }
    assert_eq!(got, [0, 2, 4]);
    let worker = { first }.result(LONG)?;
    pool.shutdown(Queued::Run);
    assert_all_gone(&[worker]);
    Ok(())
}

#[test]
fn dropping_the_pool_does_not_block_and_work_completes() -> Result<(), Error> {
    // Item 95.
    let pool = ProcessPoolExecutor::new(2)?;
    let fs: Vec<_> = (0..6u64)
        .map(|n| pool.submit(|n: u64| n + 100, n))
        .collect::<Result<_, _>>()?;
    let pids_probe = pool.submit(pid, ())?;
    drop(pool);
    let mut sum = 0;
    for mut f in fs {
        sum += f.result(LONG)?;
    }
    assert_eq!(sum, 615);
    let worker = { pids_probe }.result(LONG)?;
    assert!(common::process::wait_gone(worker, Duration::from_secs(10)));
    Ok(())
}

#[test]
fn awaitable_without_blocking_the_runtime() -> Result<(), Error> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let pool = ProcessPoolExecutor::new(2)?;
        let a = pool.submit(pow, (3, 4))?;
        let b = pool.submit(pow, (2, 10))?;
        assert_eq!(a.await? + b.await?, 81 + 1024);
        let pids = pool.worker_pids();
        pool.shutdown_async(Queued::Run).await;
        assert_all_gone(&pids);
        Ok(())
    })
}

// --- Serialization failures: only that future fails; the pool carries on (D1, D3, D9-D12). ---

/// Encodes fine, fails to deserialize (D3, D11).
#[derive(Debug)]
struct Undecodable;
impl Serialize for Undecodable {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u8(7)
    }
}
impl<'de> Deserialize<'de> for Undecodable {
    fn deserialize<D: serde::Deserializer<'de>>(_: D) -> Result<Self, D::Error> {
        Err(serde::de::Error::custom("refusing to decode"))
    }
}

/// Panics while deserializing (D12 in the parent).
#[derive(Debug)]
struct PanicsOnDecode;
impl Serialize for PanicsOnDecode {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u8(1)
    }
}
impl<'de> Deserialize<'de> for PanicsOnDecode {
    fn deserialize<D: serde::Deserializer<'de>>(_: D) -> Result<Self, D::Error> {
        panic!("decode panic")
    }
}

/// Panics while serializing (D9 in the worker).
#[derive(Debug)]
struct PanicsOnEncode;
impl Serialize for PanicsOnEncode {
    fn serialize<S: serde::Serializer>(&self, _: S) -> Result<S::Ok, S::Error> {
        panic!("encode panic")
    }
}
impl<'de> Deserialize<'de> for PanicsOnEncode {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        <()>::deserialize(d).map(|_| PanicsOnEncode)
    }
}

fn assert_serialization<T: std::fmt::Debug>(r: Result<T, Error>, needle: &str) {
    match r {
        Err(Error::Serialization(m)) => assert!(m.contains(needle), "{m}"),
        other => panic!("expected a serialization error with {needle:?}, got {other:?}"),
    }
}

#[test]
fn serialization_failures_fail_only_their_future() -> Result<(), Error> {
    let pool = ProcessPoolExecutor::builder()
        .max_workers(1)
        .max_frame_bytes(1 << 20)
        .build()?;
    let worker = pool.submit(pid, ())?.result(LONG)?;
    // D1: the argument does not encode (parent).
    assert_serialization(
        pool.submit(|_: Unencodable| 1u8, Unencodable)?.result(LONG),
        "could not serialize the argument",
    );
    // D3 (diverges from CPython: the pool stays usable): the argument does not decode (worker).
    assert_serialization(
        pool.submit(|_: Undecodable| 1u8, Undecodable)?.result(LONG),
        "could not deserialize the argument",
    );
    // D10: the result does not encode (worker).
    assert_serialization(
        pool.submit(|(): ()| Unencodable, ())?.result(LONG),
        "could not serialize the result",
    );
    // D11 (diverges): the result does not decode (parent).
    assert_serialization(
        pool.submit(|(): ()| Undecodable, ())?.result(LONG),
        "could not deserialize the result",
    );
    // D9: encoding the result panics in the worker.
    let r = pool.submit(|(): ()| PanicsOnEncode, ())?.result(LONG);
    assert!(
        matches!(&r, Err(Error::Panicked(m)) if m.message().contains("encode panic")),
        "{r:?}"
    );
    // D12: decoding the result panics in the parent's driver: the future fails, the driver lives.
    let r = pool.submit(|(): ()| PanicsOnDecode, ())?.result(LONG);
    assert!(
        matches!(&r, Err(Error::Panicked(m)) if m.message().contains("decode panic")),
        "{r:?}"
    );
    // The size cap, both ways.
    assert_serialization(
        pool.submit(|v: Vec<u8>| v.len(), vec![1; 2 << 20])?
            .result(LONG),
        "cap",
    );
    assert_serialization(
        pool.submit(|n: usize| "x".repeat(n), 2 << 20)?.result(LONG),
        "cap",
    );
    // A chunk whose inputs fail: one error per element.
    let r: Vec<_> = pool
        .map_with(
            |_: Undecodable| 0u8,
            vec![Undecodable, Undecodable],
            MapOptions::new().chunksize(2),
        )?
        .into_iter()
        .collect();
    assert!(r.len() == 2 && r.iter().all(|x| matches!(x, Err(Error::Serialization(_)))));
    // Same worker all along: nothing broke.
    assert_eq!(pool.submit(pid, ())?.result(LONG)?, worker);
    pool.shutdown(Queued::Run);
    assert_all_gone(&[worker]);
    Ok(())
}

// --- max_tasks_per_child (items 118, 120-122) ---

#[test]
fn max_tasks_per_child_recycles_workers() -> Result<(), Error> {
    // Item 118.
    let pool = ProcessPoolExecutor::builder()
        .max_workers(1)
        .max_tasks_per_child(3)
        .build()?;
    let pids: Vec<u32> = (0..4)
        .map(|_| pool.submit(pid, ())?.result(LONG))
        .collect::<Result<_, _>>()?;
    assert!(
        pids[0] == pids[1] && pids[1] == pids[2] && pids[3] != pids[0],
        "{pids:?}"
    );
    assert_eq!(pool.workers_started(), 2);
    assert!(pool.worker_pids().len() <= 1);
    pool.shutdown(Queued::Run);
    assert_all_gone(&pids);
    Ok(())
}

#[test]
fn max_tasks_per_child_with_a_backlog_never_hangs() -> Result<(), Error> {
    // Item 121 (CPython gh-115634): 1 worker, 2 tasks per child, a backlog of 6; and 2/2/8.
    for (workers, per_child, n) in [(1, 2, 6), (2, 2, 8)] {
        let pool = ProcessPoolExecutor::builder()
            .max_workers(workers)
            .max_tasks_per_child(per_child)
            .build()?;
        let fs: Vec<_> = (0..n)
            .map(|_| pool.submit(pid, ()))
            .collect::<Result<_, _>>()?;
        let pids: Vec<u32> = fs
            .into_iter()
            .map(|mut f| f.result(LONG))
            .collect::<Result<_, _>>()?;
        let distinct: HashSet<_> = pids.iter().collect();
        assert!(distinct.len() >= n / per_child, "{pids:?}");
        pool.shutdown(Queued::Run);
        assert_all_gone(&pids);
    }
    Ok(())
}

#[test]
fn recycling_during_shutdown_runs_the_queue() -> Result<(), Error> {
    // Items 120, 122.
    let pool = ProcessPoolExecutor::builder()
        .max_workers(3)
        .max_tasks_per_child(1)
        .build()?;
    let fs: Vec<_> = (0..6u64)
        .map(|n| pool.submit(|n: u64| n * n, n))
        .collect::<Result<_, _>>()?;
    pool.shutdown(Queued::Run);
    let got: Vec<u64> = fs
        .into_iter()
        .map(|mut f| f.result(LONG))
        .collect::<Result<_, _>>()?;
    assert_eq!(got, [0, 1, 4, 9, 16, 25]);

    let pool = ProcessPoolExecutor::builder()
        .max_workers(1)
        .max_tasks_per_child(1)
        .build()?;
    let fs: Vec<_> = (1..=2u8)
        .map(|n| pool.submit(|n: u8| n, n))
        .collect::<Result<_, _>>()?;
    pool.shutdown_nowait(Queued::Run);
    let got: Vec<u8> = fs
        .into_iter()
        .map(|mut f| f.result(LONG))
        .collect::<Result<_, _>>()?;
    assert_eq!(got, [1, 2]);
    pool.shutdown(Queued::Run);
    assert!(pool.worker_pids().is_empty());
    Ok(())
}

#[test]
fn max_tasks_per_child_shutdown_nowait_after_a_failure() -> Result<(), Error> {
    // Item 98 (CPython gh-132969): one task per child, a task fails, then shutdown(wait=False): no
    // internal error, no hang, the results from before the failure intact, the queued work still run.
    // Both a panic (the worker survives it, then retires at its limit) and a crash (the pool breaks).
    let pool = ProcessPoolExecutor::builder()
        .max_workers(1)
        .max_tasks_per_child(1)
        .build()?;
    let mut before = pool.submit(|n: u8| n + 1, 1)?;
    let mut failing = pool.submit(|_: ()| -> u8 { panic!("failed on purpose") }, ())?;
    let mut after = pool.submit(|n: u8| n + 1, 2)?;
    assert!(matches!(failing.result(LONG), Err(Error::Panicked(m)) if m == "failed on purpose"));
    pool.shutdown_nowait(Queued::Run);
    assert_eq!(before.result(LONG)?, 2);
    assert_eq!(after.result(LONG)?, 3);
    shutdown_bounded(&pool);
    assert!(pool.worker_pids().is_empty());
    assert!(format!("{pool:?}").contains("drivers: 0"), "{pool:?}");

    let pool = ProcessPoolExecutor::builder()
        .max_workers(2)
        .max_tasks_per_child(1)
        .build()?;
    let before = pool.submit(|n: u8| n + 1, 1)?;
    assert!(matches!(before.exception(LONG), Ok(None)));
    let mut crashing = pool.submit(|_: ()| -> u8 { std::process::exit(3) }, ())?;
    assert!(crashing.result(LONG).unwrap_err().is_broken());
    pool.shutdown_nowait(Queued::Run);
    let mut before = before;
    assert_eq!(before.result(LONG)?, 2, "the earlier result is intact");
    shutdown_bounded(&pool);
    assert!(pool.worker_pids().is_empty());
    assert!(format!("{pool:?}").contains("drivers: 0"), "{pool:?}");
    Ok(())
}

#[test]
fn a_worker_retiring_at_its_limit_during_terminate_is_not_replaced() -> Result<(), Error> {
    // Item 124: one task per child; the first task's completion (its done callback, which runs as the
    // worker retires) terminates the pool. No replacement starts for the queued task, which ends
    // (cancelled by the forced shutdown) instead of waiting forever.
    let pool = ProcessPoolExecutor::builder()
        .max_workers(1)
        .max_tasks_per_child(1)
        .build()?;
    let mut gate = Gate::new();
    let first = pool.submit(gated_pid, gate.path())?;
    gate.wait_started();
    let mut queued = pool.submit(pid, ())?;
    let weak = pool.clone();
    let (terminated_tx, terminated) = std::sync::mpsc::channel();
    first.add_done_callback(move |_| {
        weak.terminate_workers();
        let _ = terminated_tx.send(());
    });
    gate.release();
    terminated.recv_timeout(LONG).expect("the callback ran");
    match queued.result(LONG) {
        Err(Error::Cancelled) => {}
        Err(Error::BrokenProcessPool(b)) => {
            assert!(b.to_string().contains("forcefully shut down"), "{b}")
        }
        other => panic!("expected the queued task to end with the forced shutdown, got {other:?}"),
    }
    assert!(matches!(pool.submit(pid, ()), Err(Error::Shutdown)));
    shutdown_bounded(&pool);
    assert_eq!(pool.workers_started(), 1, "the retired worker was replaced");
    assert!(pool.worker_pids().is_empty());
    Ok(())
}

/// Reports through its gate when it is dropped, if it is the copy decoded in the worker: the parent's
/// original is not armed (and must not block on the gate).
#[derive(Serialize, Deserialize)]
struct DropProbe {
    path: String,
    #[serde(skip, default = "armed")]
    armed: bool,
}

fn armed() -> bool {
    true
}

impl Drop for DropProbe {
    fn drop(&mut self) {
        if self.armed {
            common::process::task_send(&self.path, "dropped");
        }
    }
}

/// Reads the gate on a helper thread (the probe's write blocks until a reader opens it), so that a
/// probe that never reports fails the test instead of hanging it.
fn receive_in_background(gate: &Gate) -> std::sync::mpsc::Receiver<String> {
    let (tx, rx) = std::sync::mpsc::channel();
    let path = gate.path();
    std::thread::spawn(move || {
        let mut s = String::new();
        let _ = std::io::Read::read_to_string(&mut std::fs::File::open(path).unwrap(), &mut s);
        let _ = tx.send(s);
    });
    rx
}

#[test]
fn a_worker_drops_the_arguments_when_the_task_ends() -> Result<(), Error> {
    // Item 128: the decoded argument is dropped in the worker when the task returns (or panics), while
    // the worker lives on, not kept until the next task or the worker's exit.
    let pool = ProcessPoolExecutor::new(1)?;
    for panics in [false, true] {
        let gate = Gate::new();
        let report = receive_in_background(&gate);
        let mut f = pool.submit(
            |(_probe, panics): (DropProbe, bool)| -> u32 {
                assert!(!panics, "the task panics");
                std::process::id()
            },
            (
                DropProbe {
                    path: gate.path(),
                    armed: false,
                },
                panics,
            ),
        )?;
        let outcome = f.result(LONG);
        assert_eq!(outcome.is_err(), panics, "{outcome:?}");
        assert_eq!(report.recv_timeout(LONG).as_deref(), Ok("dropped"));
        let worker = pool.worker_pids();
        assert_eq!(worker.len(), 1, "the worker is still alive");
        assert!(!common::process::is_dead(worker[0]));
    }
    let pids = pool.worker_pids();
    pool.shutdown(Queued::Run);
    assert_all_gone(&pids);
    Ok(())
}

/// A 1 MiB buffer whose every byte depends on its position (a shifted or dropped byte shows).
fn pattern(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i ^ (i >> 8) ^ (i >> 16)) as u8).collect()
}

#[test]
fn a_mib_of_bytes_round_trips_intact_and_a_plain_vec_still_works() -> Result<(), Error> {
    let pool = ProcessPoolExecutor::new(1)?;
    let data = pattern(1 << 20);
    // `ByteBlock` crosses as one block both ways; the worker checks what it got and sends it back.
    let echo = |b: ByteBlock| -> (u32, usize, u64, ByteBlock) {
        let sum = b.iter().map(|&x| u64::from(x)).sum();
        (std::process::id(), b.len(), sum, b)
    };
    let sum: u64 = data.iter().map(|&x| u64::from(x)).sum();
    let (worker, len, their_sum, back) = pool
        .submit(echo, ByteBlock::from(data.clone()))?
        .result(LONG)?;
    assert_ne!(worker, std::process::id());
    assert_eq!((len, their_sum), (data.len(), sum));
    assert!(back[..] == data[..], "the echoed MiB differs");
    // Twice more on the same worker (its read buffer is reused), then an empty one and an odd size.
    for n in [1 << 20, 0, (1 << 20) + 3] {
        let d = pattern(n);
        let back: Vec<u8> = pool
            .submit(|b: ByteBlock| b, ByteBlock::from(d.clone()))?
            .result(LONG)?
            .into();
        assert!(back == d, "{n} bytes");
    }
    // A plain Vec<u8> still works (element by element, slower), and so does a mix of both.
    let back = pool.submit(|v: Vec<u8>| v, data.clone())?.result(LONG)?;
    assert!(back == data);
    let mixed = pool
        .submit(
            |(v, b): (Vec<u8>, ByteBlock)| (ByteBlock::from(v), b.into_vec()),
            (vec![1, 2], ByteBlock::from(vec![3])),
        )?
        .result(LONG)?;
    assert_eq!(mixed, (ByteBlock::from(vec![1, 2]), vec![3]));
    pool.shutdown(Queued::Run);
    Ok(())
}
