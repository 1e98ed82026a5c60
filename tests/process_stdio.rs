//! A process-pool task's stdout and stderr reach the parent's (issue: "A task's stdout/stderr reach the
//! parent's"). The check runs a copy of this test binary as the parent, with its stdout and stderr
//! captured, so what the workers print can be read back.

use std::io::Write as _;
use std::process::Command;

use concurrent_futures::{ProcessPoolExecutor, Queued};

fn shout(n: u32) -> u32 {
    // One write per line: two workers share the parent's streams, and `eprintln!` on unbuffered
    // stderr writes each formatted piece separately, so their pieces could interleave.
    let _ = std::io::stdout().write_all(format!("cf-stdout-marker {n}\n").as_bytes());
    let _ = std::io::stdout().flush();
    let _ = std::io::stderr().write_all(format!("cf-stderr-marker {n}\n").as_bytes());
    n
}

/// Run in a separate copy of this binary: a parent whose workers print.
#[test]
#[ignore = "helper for task_output_reaches_the_parents_stdout_and_stderr"]
fn helper_parent_whose_tasks_print() {
    if std::env::var_os("CF_TEST_STDIO_PARENT").is_none() {
        return;
    }
    let pool = ProcessPoolExecutor::new(2).unwrap();
    let results: Vec<u32> = pool
        .map(shout, [1, 2, 3])
        .unwrap()
        .into_iter()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(results, [1, 2, 3]);
    pool.shutdown(Queued::Run);
}

#[test]
fn task_output_reaches_the_parents_stdout_and_stderr() {
    let out = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "helper_parent_whose_tasks_print",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
            "-q",
        ])
        .env("CF_TEST_STDIO_PARENT", "1")
        .output()
        .unwrap();
    assert!(out.status.success(), "the parent copy failed: {out:?}");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    for n in 1..=3 {
        assert!(
            stdout.contains(&format!("cf-stdout-marker {n}")),
            "task {n}'s stdout is missing from the parent's: {stdout}"
        );
        assert!(
            stderr.contains(&format!("cf-stderr-marker {n}")),
            "task {n}'s stderr is missing from the parent's: {stderr}"
        );
    }
    // Nothing the tasks printed went to the wrong stream.
    assert!(!stdout.contains("cf-stderr-marker"));
    assert!(!stderr.contains("cf-stdout-marker"));
}
