//! A process pool drops the user's values too: a task's result in the worker process once its reply
//! is encoded, and a detached task's result in the parent, decoded by the thread that read the reply.
//! A panicking `Drop` in either place must not take that process or thread down.

mod common;

use std::sync::OnceLock;

use common::process::{task_wait, Gate};
use common::LONG;
use concurrent_futures::{ProcessPoolExecutor, Queued};
use serde::{Deserialize, Serialize};

/// Set in the test's own process only: worker processes start with it unset.
static PARENT: OnceLock<()> = OnceLock::new();

/// Panics when dropped in a worker process.
#[derive(Serialize, Deserialize, Debug)]
struct WorkerBomb(u8);

impl Drop for WorkerBomb {
    fn drop(&mut self) {
        if PARENT.get().is_none() && !std::thread::panicking() {
            panic!("a WorkerBomb was dropped in the worker");
        }
    }
}

fn worker_bomb(n: u8) -> WorkerBomb {
    WorkerBomb(n)
}

#[test]
fn a_result_whose_drop_panics_in_the_worker_still_comes_back() {
    PARENT.get_or_init(|| ());
    let pool = ProcessPoolExecutor::new(1).unwrap();
    let mut f = pool.submit(worker_bomb, 7).unwrap();
    assert_eq!(f.result(LONG).unwrap().0, 7);
    let mut g = pool.submit(worker_bomb, 8).unwrap();
    assert_eq!(g.result(LONG).unwrap().0, 8, "the worker did not survive");
    pool.shutdown(Queued::Run);
}

/// Panics when dropped in the test's own process.
#[derive(Serialize, Deserialize)]
struct ParentBomb;

impl Drop for ParentBomb {
    fn drop(&mut self) {
        if PARENT.get().is_some() && !std::thread::panicking() {
            panic!("a ParentBomb was dropped in the parent");
        }
    }
}

fn gated_bomb(path: String) -> ParentBomb {
    task_wait(&path);
    ParentBomb
}

fn seven(_: ()) -> u8 {
    7
}

#[test]
fn a_detached_value_whose_drop_panics_in_the_parent_does_not_break_the_pool() {
    PARENT.get_or_init(|| ());
    let pool = ProcessPoolExecutor::new(1).unwrap();
    let mut gate = Gate::new();
    let bomb = pool.submit(gated_bomb, gate.path()).unwrap();
    gate.wait_started();
    drop(bomb);
    let mut behind = pool.submit(seven, ()).unwrap();
    gate.release();
    assert_eq!(behind.result(LONG).unwrap(), 7);
    pool.shutdown(Queued::Run);
}
