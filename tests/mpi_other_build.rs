//! A second program linking the MPI pool, for tests/mpi.rs: a rank of another build, which the
//! client must refuse before it sends a single task. Run directly, it does nothing.
#![cfg(feature = "mpi")]

#[test]
fn other_build_worker() {
    if std::env::var("CF_MPI_CASE").is_ok_and(|c| c == "other_build") {
        // Rank 1 of the job: serves (or is refused) inside `from_world`, and exits there.
        let _ = concurrent_futures::MpiPoolExecutor::from_world();
        unreachable!("a worker rank does not return from from_world");
    }
}
