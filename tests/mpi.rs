//! The MPI pool under `mpirun`, in static and spawn mode.
//!
//! Each `case::*` test is a program: the driver tests below start this very test binary under
//! `mpirun` with `--exact case::<name>` and `CF_MPI_CASE=<name>` in the environment, and assert on
//! its exit status and output. Run directly (no `CF_MPI_CASE`), a case returns at once. Every
//! `mpirun` is bounded by a timeout, so a hang fails the test instead of hanging CI.
//!
//! The transport is TCP on loopback (`OMPI_MCA_btl=tcp,self`), the network path a multi-host job
//! takes. Open MPI's settings for CI (running as root, more ranks than cores) come from the
//! environment (see `.ci/run`); the driver only fills in what is missing, so the tests also run by
//! hand.
#![cfg(feature = "mpi")]

use std::io::Read;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const CASE_ENV: &str = "CF_MPI_CASE";

/// How long one `mpirun` may take before the driver kills it and fails.
const RUN_LIMIT: Duration = Duration::from_secs(120);

struct Run {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

impl Run {
    /// For the jobs where a rank dies: `mpirun`'s exit status then depends on Open MPI (a surviving
    /// rank may be ended by its watchdog), so only the client's verdict counts, and that the job
    /// ended at all (`mpirun` checks that).
    fn assert_client_passed(&self, case: &str) {
        assert!(
            self.stdout.contains(&format!("CASE PASSED {case}")),
            "case {case} failed: exit {:?}\n--- stdout\n{}\n--- stderr\n{}",
            self.code,
            self.stdout,
            self.stderr
        );
    }

    fn assert_passed(&self, case: &str) {
        assert!(
            self.code == Some(0) && self.stdout.contains(&format!("CASE PASSED {case}")),
            "case {case} failed: exit {:?}\n--- stdout\n{}\n--- stderr\n{}",
            self.code,
            self.stdout,
            self.stderr
        );
    }
}

/// Runs `case` on `ranks` ranks (`mpirun -n <ranks>`), which must pass.
fn passes(ranks: u32, case: &str) {
    mpirun(&["-n", &ranks.to_string()], case, &[]).assert_passed(case);
}

/// [`passes`] for a job where a rank dies: only the client's verdict counts
/// ([`Run::assert_client_passed`]).
fn client_passes(ranks: u32, case: &str) {
    mpirun(&["-n", &ranks.to_string()], case, &[]).assert_client_passed(case);
}

/// Runs `mpirun <layout> <this test binary> --exact case::<case>`, bounded by [`RUN_LIMIT`].
fn mpirun(layout: &[&str], case: &str, extra: &[&str]) -> Run {
    mpirun_with(layout, case, extra, &[])
}

/// [`mpirun`] with some of Open MPI's settings in the environment replaced.
fn mpirun_with(layout: &[&str], case: &str, extra: &[&str], settings: &[(&str, &str)]) -> Run {
    let exe = std::env::current_exe().expect("the test binary's path");
    // No layout: the program alone, an MPI singleton (how a spawn-mode program is usually run).
    let mut cmd = if layout.is_empty() {
        Command::new(&exe)
    } else {
        let mut cmd = Command::new("mpirun");
        cmd.args(layout).arg(&exe);
        cmd
    };
    cmd.args([
        "--exact",
        &format!("case::{case}"),
        "--nocapture",
        "--test-threads=1",
    ])
    .args(extra)
    .env(CASE_ENV, case)
    .stdin(Stdio::null())
    .stdout(Stdio::piped())
    .stderr(Stdio::piped());
    for (key, value) in [
        ("OMPI_MCA_btl", "tcp,self"),
        // A killed rank must not take the job down with it (`mpirun --enable-recovery`).
        ("OMPI_MCA_orte_enable_recovery", "1"),
        ("OMPI_MCA_rmaps_base_oversubscribe", "1"),
        ("OMPI_ALLOW_RUN_AS_ROOT", "1"),
        ("OMPI_ALLOW_RUN_AS_ROOT_CONFIRM", "1"),
    ] {
        if std::env::var_os(key).is_none() {
            cmd.env(key, value);
        }
    }
    for (key, value) in settings {
        cmd.env(key, value);
    }
    let mut child = cmd
        .spawn()
        .expect("mpirun (Open MPI's openmpi-bin) is installed");
    let mut out = child.stdout.take().unwrap();
    let mut err = child.stderr.take().unwrap();
    let out = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = out.read_to_string(&mut s);
        s
    });
    let err = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = err.read_to_string(&mut s);
        s
    });
    let deadline = Instant::now() + RUN_LIMIT;
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break Some(status);
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let run = Run {
        code: status.and_then(|s| s.code()),
        stdout: out.join().unwrap(),
        stderr: err.join().unwrap(),
    };
    assert!(
        status.is_some(),
        "mpirun of case {case} did not end within {RUN_LIMIT:?}: a hang\n--- stdout\n{}\n--- stderr\n{}",
        run.stdout,
        run.stderr
    );
    run
}

#[test]
fn static_mode_submit_map_as_completed_wait_panic() {
    passes(3, "basics_static");
}

#[test]
fn spawn_mode_submit_map_as_completed_wait_panic() {
    passes(1, "basics_spawn");
}

#[test]
fn spawn_mode_more_workers_than_slots_is_an_error_not_an_abort() {
    // Without oversubscription, 64 workers do not fit this machine's slots: the pool's constructor
    // must return the error (MPI's default handler would abort the whole program). Run alone, not
    // under `mpirun`: Open MPI 4.1's `mpirun` itself never exits after a failed spawn.
    mpirun_with(
        &[],
        "spawn_too_many",
        &[],
        &[("OMPI_MCA_rmaps_base_oversubscribe", "0")],
    )
    .assert_client_passed("spawn_too_many");
}

#[test]
fn static_mode_a_queued_task_cancels_and_shutdown_cancels_the_queue() {
    passes(3, "shutdown_static");
}

#[test]
fn spawn_mode_a_queued_task_cancels_and_shutdown_cancels_the_queue() {
    passes(1, "shutdown_spawn");
}

#[test]
fn static_mode_a_bounded_queue_refuses_blocks_and_waits_for_room() {
    passes(3, "capacity_static");
}

/// Tasks cancelled while queued give their places back: `try_submit`, a blocking `submit` and
/// `submit_async` on a full queue of them get in at once, with both ranks held.
#[test]
fn static_mode_cancelled_queued_tasks_make_room_in_a_bounded_queue() {
    passes(3, "capacity_cancel_static");
}

/// A done callback runs on the pool's owner thread, the one that takes tasks out of the queue: its
/// submits (blocking and async) to a full queue queue past the bound. Hangs (until `RUN_LIMIT`) if
/// they wait for room.
#[test]
fn static_mode_a_done_callback_submitting_to_a_full_queue_queues_past_it() {
    passes(3, "capacity_callback_static");
}

#[test]
fn spawn_mode_shutdown_with_queued_run_runs_the_queue() {
    passes(1, "shutdown_runs_queue_spawn");
}

#[test]
fn static_mode_shutdown_with_queued_run_runs_the_queue() {
    passes(3, "shutdown_runs_queue_static");
}

#[test]
fn static_mode_a_rank_killed_mid_task_breaks_the_pool_naming_it() {
    client_passes(3, "killed_rank_static");
}

#[test]
fn spawn_mode_a_worker_killed_mid_task_breaks_the_pool_naming_it() {
    client_passes(1, "killed_rank_spawn");
}

#[test]
fn a_task_past_its_deadline_breaks_the_pool_naming_the_rank() {
    passes(2, "task_deadline");
}

#[test]
fn a_rank_of_another_build_is_refused_before_any_task() {
    // MPMD: rank 0 is this test binary, rank 1 another program built from the same crate.
    let other = other_build();
    let other = other.to_str().unwrap();
    let run = mpirun(
        &["-n", "1"],
        "other_build",
        &[
            ":",
            "-n",
            "1",
            other,
            "--exact",
            "other_build_worker",
            "--test-threads=1",
        ],
    );
    run.assert_passed("other_build");
}

/// Another test binary of this package that links the MPI pool: tests/mpi_other_build.rs.
fn other_build() -> PathBuf {
    let deps = std::env::current_exe()
        .unwrap()
        .parent()
        .unwrap()
        .to_path_buf();
    let found = std::fs::read_dir(&deps)
        .unwrap()
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            let name = p.file_name().unwrap().to_string_lossy().into_owned();
            name.starts_with("mpi_other_build-") && p.extension().is_none()
        })
        .max_by_key(|p| p.metadata().and_then(|m| m.modified()).ok());
    found.expect(
        "the test binary of tests/mpi_other_build.rs: build it with this one \
         (`cargo test --features mpi`, or `--test mpi --test mpi_other_build`)",
    )
}

/// The programs the driver runs. Rank 0 (or the spawning client) runs the body; the other ranks
/// serve inside `from_world` and exit there.
mod case {
    use std::path::{Path, PathBuf};
    use std::time::{Duration, Instant};

    use concurrent_futures::{
        as_completed, wait, BrokenCause, Error, Executor, MapOptions, MpiPoolExecutor, PoolFuture,
        Queued, RankSilence, ReturnWhen,
    };

    /// The case the driver asked this run for: says it passed when it goes, unless the case
    /// panicked.
    struct Case(&'static str);

    impl Case {
        /// `Some` if the driver asked for `name` (run directly, a case returns at once).
        fn asked(name: &'static str) -> Option<Case> {
            std::env::var(super::CASE_ENV)
                .is_ok_and(|c| c == name)
                .then_some(Case(name))
        }
    }

    impl Drop for Case {
        fn drop(&mut self) {
            if !std::thread::panicking() {
                println!("CASE PASSED {}", self.0);
            }
        }
    }

    fn square(n: u64) -> u64 {
        n * n
    }

    fn triple(n: u32) -> u32 {
        n * 3
    }

    fn pid((): ()) -> u32 {
        std::process::id()
    }

    fn boom(n: u32) -> u32 {
        panic!("boom {n}")
    }

    fn parse(s: String) -> Result<u32, std::num::ParseIntError> {
        s.parse()
    }

    /// Runs until `path` exists (a file the test creates to release it), at most a minute.
    fn hold(path: PathBuf) -> u32 {
        let until = Instant::now() + Duration::from_secs(60);
        while !path.exists() && Instant::now() < until {
            std::thread::sleep(Duration::from_millis(1));
        }
        7
    }

    fn die((): ()) -> u32 {
        // SAFETY: `kill` of our own pid has no memory-safety preconditions.
        unsafe { libc::kill(libc::getpid(), libc::SIGKILL) };
        unreachable!()
    }

    /// A fresh path for `hold`; shared by the ranks (one host).
    fn gate(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("cf-mpi-{}-{name}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let gate = dir.join("open");
        let _ = std::fs::remove_file(&gate);
        gate
    }

    fn open(gate: &Path) {
        std::fs::write(gate, b"").unwrap();
    }

    /// Waits until every rank shook hands, so dispatch order is rank order.
    fn all_ranks_up(pool: &MpiPoolExecutor) {
        while pool.metrics().workers < pool.max_workers() {
            std::thread::yield_now();
        }
    }

    fn wait_running<T>(f: &concurrent_futures::PoolFuture<T>) {
        while !f.running() {
            std::thread::yield_now();
        }
    }

    fn basics(pool: MpiPoolExecutor) {
        // submit / result, in another process
        let mut f = pool.submit(square, 12).unwrap();
        assert_eq!(f.result(None).unwrap(), 144);
        let mut p = pool.submit(pid, ()).unwrap();
        assert_ne!(p.result(None).unwrap(), std::process::id());

        // map: input order, with chunks and a timeout and an in-flight bound; via the trait
        fn generic(pool: &impl Executor) -> Vec<u64> {
            pool.map_with(
                square,
                0..50,
                MapOptions::new()
                    .chunksize(4)
                    .buffer(6)
                    .timeout(Duration::from_secs(60)),
            )
            .unwrap()
            .into_iter()
            .map(Result::unwrap)
            .collect()
        }
        assert_eq!(generic(&pool), (0..50).map(|n| n * n).collect::<Vec<_>>());

        // as_completed: every future once
        let fs: Vec<_> = (0..10).map(|n| pool.submit(square, n).unwrap()).collect();
        let mut got: Vec<u64> = as_completed(fs)
            .into_iter()
            .map(|f| f.unwrap().result(None).unwrap())
            .collect();
        got.sort();
        assert_eq!(got, (0..10).map(|n| n * n).collect::<Vec<_>>());

        // a panic and an Err fail their own futures; the ranks live on
        let mut bad = pool.submit(boom, 5).unwrap();
        match bad.result(None) {
            Err(Error::Panicked(p)) => assert_eq!(p.message(), "boom 5"),
            other => panic!("expected a panic, got {other:?}"),
        }
        let failed = pool.submit_fallible(parse, "five".into()).unwrap();
        assert!(matches!(failed.exception(None), Ok(Some(Error::Failed(_)))));

        // wait: FIRST_EXCEPTION fires on the panic
        let fs = vec![
            pool.submit(boom, 1).unwrap(),
            pool.submit(triple, 3).unwrap(),
        ];
        let done = wait(fs)
            .return_when(ReturnWhen::FirstException)
            .timeout(Duration::from_secs(60))
            .blocking();
        assert!(!done.done.is_empty());
        assert_eq!(pool.submit(square, 9).unwrap().result(None).unwrap(), 81);

        // awaitable from any executor
        let g = pool.submit(square, 4).unwrap();
        assert_eq!(futures::executor::block_on(g).unwrap(), 16);

        let m = pool.metrics();
        assert!(
            m.completed >= 25 && m.panicked >= 2 && m.failed >= 1,
            "{m:?}"
        );
        pool.shutdown(Queued::Run);
        assert!(matches!(pool.submit(square, 1), Err(Error::Shutdown)));
    }

    #[test]
    fn basics_static() {
        let Some(_case) = Case::asked("basics_static") else {
            return;
        };
        basics(MpiPoolExecutor::from_world().unwrap());
    }

    #[test]
    fn basics_spawn() {
        let Some(_case) = Case::asked("basics_spawn") else {
            return;
        };
        basics(MpiPoolExecutor::new(2).unwrap());
    }

    #[test]
    fn spawn_too_many() {
        let Some(_case) = Case::asked("spawn_too_many") else {
            return;
        };
        match MpiPoolExecutor::new(64) {
            Err(Error::ProcessSetup(msg)) => assert!(
                msg.contains("MPI_Comm_spawn of 64 workers failed"),
                "unexpected message: {msg}"
            ),
            Err(e) => panic!("expected ProcessSetup, got {e:?}"),
            Ok(_) => panic!("64 workers must not fit without oversubscription"),
        }
    }

    /// One task per rank: a task that finds both ranks busy stays queued (cancellable).
    fn one_task_per_rank() -> concurrent_futures::MpiPoolBuilder {
        MpiPoolExecutor::builder().tasks_per_rank(1)
    }

    fn cancel_and_shutdown(pool: MpiPoolExecutor) {
        all_ranks_up(&pool);

        // Both ranks held: a third task stays queued, and cancels.
        let g = gate("cancel");
        let held: Vec<_> = (0..2)
            .map(|_| pool.submit(hold, g.clone()).unwrap())
            .collect();
        held.iter().for_each(wait_running);
        let queued = pool.submit(square, 3).unwrap();
        assert!(queued.cancel());
        assert!(queued.cancelled());
        open(&g);
        for mut f in held {
            assert_eq!(f.result(None).unwrap(), 7);
        }

        // Shutdown with Queued::Cancel: the queue is cancelled, the running tasks finish.
        let g = gate("shutdown-cancel");
        let held: Vec<_> = (0..2)
            .map(|_| pool.submit(hold, g.clone()).unwrap())
            .collect();
        held.iter().for_each(wait_running);
        let queued: Vec<_> = (0..3).map(|n| pool.submit(square, n).unwrap()).collect();
        pool.shutdown_nowait(Queued::Cancel);
        assert!(queued.iter().all(|f| f.cancelled()));
        open(&g);
        for mut f in held {
            assert_eq!(f.result(None).unwrap(), 7);
        }
        pool.shutdown(Queued::Cancel);
    }

    fn shutdown_runs_queue(pool: MpiPoolExecutor) {
        all_ranks_up(&pool);
        let g = gate("shutdown-run");
        let held: Vec<_> = (0..2)
            .map(|_| pool.submit(hold, g.clone()).unwrap())
            .collect();
        held.iter().for_each(wait_running);
        let queued: Vec<_> = (0..5).map(|n| pool.submit(square, n).unwrap()).collect();
        pool.shutdown_nowait(Queued::Run);
        assert!(matches!(pool.submit(square, 1), Err(Error::Shutdown)));
        open(&g);
        pool.shutdown(Queued::Run);
        for (n, mut f) in queued.into_iter().enumerate() {
            assert_eq!(f.result(None).unwrap(), (n * n) as u64);
        }
        for mut f in held {
            assert_eq!(f.result(None).unwrap(), 7);
        }
    }

    #[test]
    fn capacity_static() {
        let Some(_case) = Case::asked("capacity_static") else {
            return;
        };
        assert!(matches!(
            MpiPoolExecutor::builder().queue_capacity(0).from_world(),
            Err(Error::InvalidArgument(_))
        ));
        let pool = one_task_per_rank().queue_capacity(1).from_world().unwrap();
        all_ranks_up(&pool);
        let g = gate("capacity");
        let held: Vec<_> = (0..2)
            .map(|_| pool.submit(hold, g.clone()).unwrap())
            .collect();
        held.iter().for_each(wait_running);
        // Both ranks held: one task fills the queue, the next is refused with the work handed back.
        let mut queued = pool.submit(square, 3).unwrap();
        let refused = pool.try_submit(square, 4).unwrap_err();
        assert!(matches!(refused.error(), Error::Full));
        assert_eq!(refused.into_inner().1, 4);
        // A blocking submit and an async one wait for room, and get in once the ranks take work.
        let blocked = {
            let pool = pool.clone();
            std::thread::spawn(move || pool.submit(square, 5).unwrap().result(None).unwrap())
        };
        let waiting = {
            let pool = pool.clone();
            std::thread::spawn(move || {
                futures::executor::block_on(async {
                    pool.submit_async(square, 6).await.unwrap().await.unwrap()
                })
            })
        };
        open(&g);
        assert_eq!(queued.result(None).unwrap(), 9);
        assert_eq!(blocked.join().unwrap(), 25);
        assert_eq!(waiting.join().unwrap(), 36);
        for mut f in held {
            assert_eq!(f.result(None).unwrap(), 7);
        }
        pool.shutdown(Queued::Run);
    }

    #[test]
    fn capacity_cancel_static() {
        let Some(_case) = Case::asked("capacity_cancel_static") else {
            return;
        };
        let pool = one_task_per_rank().queue_capacity(1).from_world().unwrap();
        all_ranks_up(&pool);
        let g = gate("capacity-cancel");
        let held: Vec<_> = (0..2)
            .map(|_| pool.submit(hold, g.clone()).unwrap())
            .collect();
        held.iter().for_each(wait_running);
        // try_submit: the cancelled task's place goes to the next submit.
        let a = pool.submit(square, 1).unwrap();
        assert!(pool.try_submit(square, 2).is_err(), "full");
        assert!(a.cancel());
        let b = pool
            .try_submit(square, 2)
            .map_err(|r| r.error().to_string())
            .expect("a cancelled task still took room in the queue");
        assert!(pool.try_submit(square, 3).is_err(), "full again");
        let m = pool.metrics();
        assert_eq!((m.queued, m.cancelled), (1, 1));
        // A blocking submit: the ranks are held until it returns, so bound the wait.
        assert!(b.cancel());
        let (tx, rx) = std::sync::mpsc::channel();
        let p = pool.clone();
        std::thread::spawn(move || {
            let _ = tx.send(p.submit(square, 4).map_err(|e| e.to_string()));
        });
        let blocked = rx.recv_timeout(Duration::from_secs(60));
        let Ok(Ok(mut c)) = blocked else {
            open(&g);
            panic!("the submit waited behind a cancelled task: {blocked:?}");
        };
        // An async submit gets in at its first poll.
        assert!(c.cancel());
        let got = futures::executor::block_on(async {
            let mut submit = Box::pin(pool.submit_async(square, 5));
            futures::poll!(submit.as_mut())
        });
        open(&g);
        match got {
            std::task::Poll::Ready(d) => assert_eq!(d.unwrap().result(None).unwrap(), 25),
            std::task::Poll::Pending => panic!("the submit waited behind a cancelled task"),
        }
        assert!(c.result(None).is_err(), "cancelled");
        for mut f in held {
            assert_eq!(f.result(None).unwrap(), 7);
        }
        pool.shutdown(Queued::Run);
    }

    #[test]
    fn capacity_callback_static() {
        let Some(_case) = Case::asked("capacity_callback_static") else {
            return;
        };
        let pool = one_task_per_rank().queue_capacity(1).from_world().unwrap();
        all_ranks_up(&pool);
        let g = gate("capacity-callback");
        let mut held: Vec<_> = (0..2)
            .map(|_| pool.submit(hold, g.clone()).unwrap())
            .collect();
        held.iter().for_each(wait_running);
        let (tx, rx) = std::sync::mpsc::channel();
        let own = pool.clone();
        held[0].add_done_callback(move |_| {
            // Only the owner thread, busy here, takes tasks out: once full, the queue stays full.
            let mut fillers = Vec::new();
            while let Ok(f) = own.try_submit(square, 1) {
                fillers.push(f);
            }
            let awaited = futures::executor::block_on(own.submit_async(square, 3)).unwrap();
            let blocking = own.submit(square, 10).unwrap();
            let _ = tx.send((fillers, awaited, blocking));
        });
        open(&g);
        let (fillers, mut awaited, mut blocking) = rx
            .recv_timeout(Duration::from_secs(60))
            .expect("the callback's submits returned");
        for mut f in fillers {
            assert_eq!(f.result(None).unwrap(), 1);
        }
        assert_eq!(awaited.result(None).unwrap(), 9);
        assert_eq!(blocking.result(None).unwrap(), 100);
        for f in &mut held {
            assert_eq!(f.result(None).unwrap(), 7);
        }
        pool.shutdown(Queued::Run);
    }

    #[test]
    fn shutdown_static() {
        let Some(_case) = Case::asked("shutdown_static") else {
            return;
        };
        cancel_and_shutdown(one_task_per_rank().from_world().unwrap());
    }

    #[test]
    fn shutdown_runs_queue_static() {
        let Some(_case) = Case::asked("shutdown_runs_queue_static") else {
            return;
        };
        shutdown_runs_queue(one_task_per_rank().from_world().unwrap());
    }

    #[test]
    fn shutdown_spawn() {
        let Some(_case) = Case::asked("shutdown_spawn") else {
            return;
        };
        cancel_and_shutdown(one_task_per_rank().workers(2).build().unwrap());
    }

    #[test]
    fn shutdown_runs_queue_spawn() {
        let Some(_case) = Case::asked("shutdown_runs_queue_spawn") else {
            return;
        };
        shutdown_runs_queue(one_task_per_rank().workers(2).build().unwrap());
    }

    fn killed(pool: MpiPoolExecutor, victim: i32) {
        all_ranks_up(&pool);
        let start = Instant::now();
        let g = gate("killed");
        // Dispatch goes to idle ranks in rank order: `hold` to the first, `die` to the second.
        let held = pool.submit(hold, g.clone()).unwrap();
        wait_running(&held);
        let dying = pool.submit(die, ()).unwrap();
        let pending: Vec<_> = (0..3).map(|n| pool.submit(square, n).unwrap()).collect();
        expect_lost(dying, victim);
        expect_lost(held, victim);
        for f in pending {
            expect_lost(f, victim);
        }
        assert!(matches!(
            pool.submit(square, 1),
            Err(Error::BrokenProcessPool(_))
        ));
        open(&g);
        pool.shutdown(Queued::Run);
        println!("broken and shut down in {:?}", start.elapsed());
    }

    /// The future ends, in bounded time, with the broken-pool error naming `victim`.
    fn expect_lost<T: std::fmt::Debug>(mut f: PoolFuture<T>, victim: i32) {
        match f.result(Some(Duration::from_secs(60))) {
            Err(Error::BrokenProcessPool(b)) => match b.cause() {
                BrokenCause::RankLost(lost) => {
                    assert_eq!(lost.rank, victim, "{b}");
                    assert!(matches!(lost.why, RankSilence::Heartbeat(_)), "{b}");
                    assert!(b.to_string().contains(&format!("MPI rank {victim}")), "{b}");
                }
                other => panic!("expected a lost rank, got {other:?}"),
            },
            other => panic!("expected the broken-pool error, got {other:?}"),
        }
    }

    fn quick_heartbeat() -> concurrent_futures::MpiPoolBuilder {
        MpiPoolExecutor::builder().heartbeat(Duration::from_millis(100), Duration::from_secs(2))
    }

    #[test]
    fn killed_rank_static() {
        let Some(_case) = Case::asked("killed_rank_static") else {
            return;
        };
        killed(quick_heartbeat().from_world().unwrap(), 2);
    }

    #[test]
    fn killed_rank_spawn() {
        let Some(_case) = Case::asked("killed_rank_spawn") else {
            return;
        };
        killed(quick_heartbeat().workers(2).build().unwrap(), 1);
    }

    #[test]
    fn task_deadline() {
        let Some(_case) = Case::asked("task_deadline") else {
            return;
        };
        let pool = quick_heartbeat()
            .task_deadline(Duration::from_millis(300))
            .from_world()
            .unwrap();
        let g = gate("deadline");
        let mut f = pool.submit(hold, g.clone()).unwrap();
        match f.result(Some(Duration::from_secs(60))) {
            Err(Error::BrokenProcessPool(b)) => {
                assert!(
                    matches!(b.cause(), BrokenCause::RankLost(l) if l.rank == 1 && matches!(l.why, RankSilence::TaskDeadline(_))),
                    "{b}"
                );
            }
            other => panic!("expected the broken-pool error, got {other:?}"),
        }
        open(&g);
        pool.shutdown(Queued::Run);
    }

    #[test]
    fn other_build() {
        let Some(_case) = Case::asked("other_build") else {
            return;
        };
        let pool = MpiPoolExecutor::from_world().unwrap();
        let mut f = pool.submit(square, 2).unwrap();
        match f.result(Some(Duration::from_secs(60))) {
            Err(Error::BrokenProcessPool(b)) => match b.cause() {
                BrokenCause::StartFailed(why) => {
                    assert!(why.contains("MPI rank 1 is not the same build"), "{why}")
                }
                other => panic!("expected a refused start, got {other:?}"),
            },
            other => panic!("expected the broken-pool error, got {other:?}"),
        }
        pool.shutdown(Queued::Run);
    }
}
