//! 5,000 tasks while workers are SIGKILLed at random moments: no future is lost. Each ends with its
//! value or a clear error (WorkerDied under the resilient policy, BrokenProcessPool under the default
//! one), and no worker is left behind.

mod common;

use std::collections::HashSet;
use std::sync::{Arc, Condvar, Mutex};

use common::process::{assert_all_gone, kill};
use common::LONG;
use concurrent_futures::{Error, ProcessPoolExecutor, Queued, WorkerDeath};

const TASKS: u64 = 5_000;
const KILLS: usize = 12;

/// Completed-future counter the killer waits on (no sleeps: it wakes on progress).
#[derive(Default)]
struct Progress {
    done: Mutex<u64>,
    cv: Condvar,
}

fn work(n: u64) -> u64 {
    n.wrapping_mul(2654435761) % 1_000_003
}

/// Deterministic "random" moments: thresholds spread over the run by an LCG.
fn kill_moments(seed: u64) -> Vec<u64> {
    let mut x = seed;
    let mut v: Vec<u64> = (0..KILLS)
        .map(|_| {
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (x >> 33) % (TASKS - 500)
        })
        .collect();
    v.sort();
    v
}

fn run(policy: WorkerDeath, seed: u64) -> (usize, usize, HashSet<u32>) {
    let pool = ProcessPoolExecutor::builder()
        .max_workers(2)
        .on_worker_death(policy)
        .build()
        .unwrap();
    let progress = Arc::new(Progress::default());
    let killed = Arc::new(Mutex::new(HashSet::new()));
    let killer = {
        let pool = pool.clone();
        let progress = progress.clone();
        let killed = killed.clone();
        std::thread::spawn(move || {
            let mut x = seed;
            for moment in kill_moments(seed) {
                let mut done = progress.done.lock().unwrap();
                while *done < moment {
                    done = progress.cv.wait(done).unwrap();
                }
                drop(done);
                let pids = pool.worker_pids();
                if pids.is_empty() {
                    continue;
                }
                x = x.wrapping_mul(6364136223846793005).wrapping_add(1);
                let victim = pids[(x >> 40) as usize % pids.len()];
                kill(victim, libc::SIGKILL);
                killed.lock().unwrap().insert(victim);
            }
        })
    };
    let mut futures = Vec::new();
    for n in 0..TASKS {
        match pool.submit(work, n) {
            Ok(f) => {
                let progress = progress.clone();
                f.add_done_callback(move |_| {
                    *progress.done.lock().unwrap() += 1;
                    progress.cv.notify_all();
                });
                futures.push((n, Ok(f)));
            }
            Err(e) => {
                // Refused (the pool broke): counts as resolved.
                *progress.done.lock().unwrap() += 1;
                progress.cv.notify_all();
                futures.push((n, Err(e)));
            }
        }
    }
    let (mut ok, mut failed) = (0, 0);
    for (n, f) in futures {
        let outcome = match f {
            Ok(mut f) => f.result(LONG),
            Err(e) => Err(e),
        };
        match outcome {
            Ok(v) => {
                assert_eq!(v, work(n));
                ok += 1;
            }
            Err(Error::WorkerDied(exit)) => {
                assert_eq!(policy, WorkerDeath::Respawn);
                assert_eq!(exit.signal(), Some(libc::SIGKILL));
                failed += 1;
            }
            Err(e @ Error::BrokenProcessPool(_)) => {
                assert_eq!(policy, WorkerDeath::BreakPool, "{e}");
                failed += 1;
            }
            Err(e) => panic!("task {n}: unexpected error {e:?}"),
        }
    }
    killer.join().unwrap();
    let mut pids: HashSet<u32> = pool.worker_pids().into_iter().collect();
    pool.shutdown(Queued::Run);
    pids.extend(killed.lock().unwrap().iter());
    assert_all_gone(&pids.iter().copied().collect::<Vec<_>>());
    (ok, failed, pids)
}

#[test]
fn resilient_policy_loses_no_future_under_random_kills() {
    let (ok, failed, pids) = run(WorkerDeath::Respawn, 0x5eed);
    eprintln!(
        "resilient: {ok} ok, {failed} failed, {} worker pids seen",
        pids.len()
    );
    assert!(pids.len() > 2, "workers were killed and replaced");
    assert_eq!(ok + failed, TASKS as usize);
    // Each kill fails at most the one task its worker was running.
    assert!(failed <= KILLS, "{failed} failures for {KILLS} kills");
    assert!(ok >= TASKS as usize - KILLS);
}

#[test]
fn default_policy_resolves_every_future_under_random_kills() {
    let (ok, failed, _) = run(WorkerDeath::BreakPool, 0xfeed);
    eprintln!("default: {ok} ok, {failed} failed");
    assert!(failed > 0, "the kills broke the pool");
    assert_eq!(ok + failed, TASKS as usize);
}
