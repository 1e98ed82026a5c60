//! Blocking on a future while the thread is exiting: a thread-local's destructor that waits for the
//! result of a task it kept. The crate's own thread-locals may be gone by then; the wait must still
//! work. (A panic in a thread-local's destructor aborts the process, so the scenario runs in a child
//! process of this test binary.)

mod common;

use std::cell::RefCell;
use std::process::Command;
use std::sync::mpsc;

use concurrent_futures::{PoolFuture, ThreadPoolExecutor};

const SCENARIO: &str = "CF_THREAD_EXIT_SCENARIO";

/// Waits for its future's result when the thread's locals are destroyed, and reports it.
struct WaitOnExit(Option<(PoolFuture<u32>, mpsc::Sender<u32>)>);

impl Drop for WaitOnExit {
    fn drop(&mut self) {
        if let Some((mut f, tx)) = self.0.take() {
            let _ = tx.send(f.result(common::LONG).unwrap_or(0));
        }
    }
}

thread_local! {
    static KEPT: RefCell<WaitOnExit> = const { RefCell::new(WaitOnExit(None)) };
}

#[test]
#[ignore = "run by a_thread_local_destructor_can_wait_for_a_result, in its own process"]
fn helper_wait_in_a_thread_local_destructor() {
    if std::env::var(SCENARIO).is_err() {
        return;
    }
    let pool = ThreadPoolExecutor::new(1).unwrap();
    let (tx, rx) = mpsc::channel();
    let (release, gate) = mpsc::channel::<()>();
    let kept = pool.spawn(move || gate.recv().map_or(0, |()| 7)).unwrap();
    std::thread::spawn(move || {
        // This thread's local is set up first, so it is destroyed after the crate's, which the
        // blocking wait below sets up.
        KEPT.with(|k| k.borrow_mut().0 = Some((kept, tx)));
        let mut first = ThreadPoolExecutor::new(1).unwrap().spawn(|| 1).unwrap();
        assert_eq!(first.result(common::LONG).unwrap(), 1);
    });
    release.send(()).unwrap();
    assert_eq!(rx.recv_timeout(common::LONG), Ok(7));
}

#[test]
fn a_thread_local_destructor_can_wait_for_a_result() {
    let out = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "helper_wait_in_a_thread_local_destructor",
            "--ignored",
            "--nocapture",
        ])
        .env(SCENARIO, "1")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "the child failed ({}):\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
}
