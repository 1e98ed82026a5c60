//! Two copies of the crate linked into one program (two major versions pulled in by different
//! dependencies) each find their own workers: each copy's constructor reacts only to its own marker.
//! The second copy is `tests/fixtures/copy`, the same sources under another package name.

use std::time::Duration;

use concurrent_futures as one;
use concurrent_futures_copy as two;

fn square(n: u64) -> (u32, u64) {
    (std::process::id(), n * n)
}

fn cube(n: u64) -> (u32, u64) {
    (std::process::id(), n * n * n)
}

const LIMIT: Option<Duration> = Some(Duration::from_secs(60));

#[test]
fn both_copies_run_process_tasks_side_by_side() {
    let a = one::ProcessPoolExecutor::new(2).unwrap();
    let b = two::ProcessPoolExecutor::new(2).unwrap();
    let fa: Vec<_> = (0..6).map(|n| a.submit(square, n).unwrap()).collect();
    let fb: Vec<_> = (0..6).map(|n| b.submit(cube, n).unwrap()).collect();
    let me = std::process::id();
    for (n, (mut fa, mut fb)) in fa.into_iter().zip(fb).enumerate() {
        let n = n as u64;
        let (pa, sq) = fa.result(LIMIT).unwrap();
        let (pb, cu) = fb.result(LIMIT).unwrap();
        assert_eq!((sq, cu), (n * n, n * n * n));
        assert!(pa != me && pb != me && pa != pb, "{pa} {pb} {me}");
    }
    let squares: Vec<u64> = a
        .map(square, 1..=4)
        .unwrap()
        .into_iter()
        .map(|r| r.unwrap().1)
        .collect();
    let cubes: Vec<u64> = b
        .map(cube, 1..=4)
        .unwrap()
        .into_iter()
        .map(|r| r.unwrap().1)
        .collect();
    assert_eq!((squares, cubes), (vec![1, 4, 9, 16], vec![1, 8, 27, 64]));
    a.shutdown(one::Queued::Run);
    b.shutdown(two::Queued::Run);
}

/// A task of one copy's worker starts a pool of the other copy: that worker's constructor, too, must
/// leave the marker it does not own to the copy that does.
#[test]
fn a_worker_of_one_copy_can_use_a_pool_of_the_other() {
    fn nested(n: u64) -> u64 {
        let pool = two::ProcessPoolExecutor::new(1).unwrap();
        let r = pool.submit(cube, n).unwrap().result(LIMIT).unwrap().1;
        pool.shutdown(two::Queued::Run);
        r
    }
    let a = one::ProcessPoolExecutor::new(1).unwrap();
    assert_eq!(a.submit(nested, 3).unwrap().result(LIMIT).unwrap(), 27);
    a.shutdown(one::Queued::Run);
}
