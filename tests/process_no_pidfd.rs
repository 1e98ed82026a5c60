//! The process pool where pidfds are refused, as on kernels before 5.3 and in sandboxes whose
//! seccomp profile refuses `pidfd_open` (older Docker profiles say `EPERM`, gVisor and valgrind
//! `ENOSYS`). The cases run in child processes of this test binary, one per [`Refusal`] (a filter
//! cannot be removed, and one installed in this process would stack on each child's): each child
//! installs a seccomp filter on all its threads before any pool exists, and the filter is inherited
//! across `exec`, so the workers run under it too, as they would in such a sandbox. The hard cases
//! then run on the path without pidfds: a worker killed under both death policies, a worker killed
//! while a caller blocks reading its reply and a process the task forked holds the worker's channel
//! open, a worker killed while such a process holds its channel and a large task's frame is being
//! written to it, forced shutdowns, time limits, interrupts, recycling, shutdowns, and a host that
//! ignores SIGCHLD (in a child process of its own). In this process the cases do nothing.
//!
//! Every wait is bounded: a case that would hang fails instead.

mod common;

use std::process::{Command, Stdio};
use std::sync::{mpsc, Once};
use std::time::Duration;

use common::process::{
    assert_all_gone, gated_forever, gated_pid, kill, pid, shutdown_reaping, wait_idle, Gate,
};
use common::threads::spawn_bounded;
use common::LONG;
use concurrent_futures::{
    BrokenCause, ByteBlock, Error, PoolFuture, ProcessPoolExecutor, Queued, WorkerDeath, WorkerExit,
};

/// Names what a child run of this binary refuses ([`Refusal::name`]); unset in the binary's own run.
const REFUSAL_VAR: &str = "CF_TEST_PIDFD_REFUSAL";
/// Set in the child run that ignores SIGCHLD.
const SIGCHLD_VAR: &str = "CF_TEST_IGNORE_SIGCHLD";

const BOUND: Option<Duration> = Some(LONG);

/// What this run's filter refuses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Refusal {
    /// `pidfd_open`, `pidfd_send_signal` and `pidfd_getfd` fail with `ENOSYS` (an old kernel,
    /// gVisor, valgrind).
    AllEnosys,
    /// The same with `EPERM` (older Docker seccomp profiles).
    AllEperm,
    /// Only `pidfd_send_signal` fails (`EPERM`): the pool has pidfds but cannot signal through them.
    SendSignal,
}

impl Refusal {
    /// `None` in this binary's own run, which runs the cases in children.
    fn of_this_run() -> Option<Refusal> {
        Some(match std::env::var(REFUSAL_VAR).ok()?.as_str() {
            "eperm" => Refusal::AllEperm,
            "send_signal" => Refusal::SendSignal,
            _ => Refusal::AllEnosys,
        })
    }

    fn name(self) -> &'static str {
        match self {
            Refusal::AllEnosys => "enosys",
            Refusal::AllEperm => "eperm",
            Refusal::SendSignal => "send_signal",
        }
    }

    fn errno(self) -> i32 {
        match self {
            Refusal::AllEnosys => libc::ENOSYS,
            Refusal::AllEperm | Refusal::SendSignal => libc::EPERM,
        }
    }

    fn syscalls(self) -> &'static [libc::c_long] {
        match self {
            Refusal::AllEnosys | Refusal::AllEperm => &[
                libc::SYS_pidfd_open,
                libc::SYS_pidfd_send_signal,
                libc::SYS_pidfd_getfd,
            ],
            Refusal::SendSignal => &[libc::SYS_pidfd_send_signal],
        }
    }
}

/// In a child run: installs the filter once, before any pool of this process exists (every case
/// calls it first), checks that it works, and returns `true`. In this binary's own run, or on an
/// architecture the filter is not written for: `false` (the case is for the child runs).
fn no_pidfds() -> bool {
    static INSTALL: Once = Once::new();
    let (Some(refusal), Some(arch)) = (Refusal::of_this_run(), seccomp::ARCH) else {
        return false;
    };
    INSTALL.call_once(|| seccomp::refuse(arch, refusal.syscalls(), refusal.errno()));
    // SAFETY: pidfd_send_signal(2) on no descriptor (-1) with a null `siginfo` reads no memory.
    let r = unsafe {
        libc::syscall(
            libc::SYS_pidfd_send_signal,
            -1,
            0,
            std::ptr::null::<libc::siginfo_t>(),
            0,
        )
    };
    assert_eq!(r, -1);
    // Refused before the kernel looks at the descriptor (which would be EBADF).
    assert_eq!(
        std::io::Error::last_os_error().raw_os_error(),
        Some(refusal.errno())
    );
    true
}

/// A seccomp filter for the pidfd system calls, in classic BPF.
mod seccomp {
    /// `AUDIT_ARCH_*` of the architecture this test is built for: the filter lets calls of any
    /// other (a 32-bit call on a 64-bit kernel, whose numbers differ) through. `None` where this
    /// test does not know it: the cases are skipped there.
    #[cfg(target_arch = "x86_64")]
    pub const ARCH: Option<u32> = Some(0xC000_003E); // AUDIT_ARCH_X86_64
    #[cfg(target_arch = "aarch64")]
    pub const ARCH: Option<u32> = Some(0xC000_00B7); // AUDIT_ARCH_AARCH64
    #[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
    pub const ARCH: Option<u32> = None;

    // Offsets in `struct seccomp_data`.
    const NR: u32 = 0;
    const ARCH_OFFSET: u32 = 4;

    const LD_W_ABS: u16 = (libc::BPF_LD | libc::BPF_W | libc::BPF_ABS) as u16;
    const JEQ_K: u16 = (libc::BPF_JMP | libc::BPF_JEQ | libc::BPF_K) as u16;
    const RET_K: u16 = (libc::BPF_RET | libc::BPF_K) as u16;

    fn stmt(code: u16, k: u32) -> libc::sock_filter {
        libc::sock_filter {
            code,
            jt: 0,
            jf: 0,
            k,
        }
    }

    fn jump(code: u16, k: u32, jt: u8, jf: u8) -> libc::sock_filter {
        libc::sock_filter { code, jt, jf, k }
    }

    /// Makes the system calls `refused` of architecture `arch` ([`ARCH`]) fail with `errno` in
    /// every thread of this process (`SECCOMP_FILTER_FLAG_TSYNC`: the test harness runs tests on
    /// several) and in every process it starts from now on.
    pub fn refuse(arch: u32, refused: &[libc::c_long], errno: i32) {
        let errno_ret = libc::SECCOMP_RET_ERRNO | (errno as u32 & libc::SECCOMP_RET_DATA);
        let mut prog = vec![
            stmt(LD_W_ABS, ARCH_OFFSET),
            jump(JEQ_K, arch, 1, 0),
            stmt(RET_K, libc::SECCOMP_RET_ALLOW),
            stmt(LD_W_ABS, NR),
        ];
        for (i, nr) in refused.iter().enumerate() {
            // To the `errno` return after the last check and its `allow`.
            let to_refusal = (refused.len() - i) as u8;
            prog.push(jump(JEQ_K, *nr as u32, to_refusal, 0));
        }
        prog.push(stmt(RET_K, libc::SECCOMP_RET_ALLOW));
        prog.push(stmt(RET_K, errno_ret));
        let fprog = libc::sock_fprog {
            len: prog.len() as u16,
            filter: prog.as_mut_ptr(),
        };
        // SAFETY: prctl(PR_SET_NO_NEW_PRIVS) takes integers only. It lets an unprivileged process
        // install a filter; TSYNC below sets it on the other threads too.
        let r = unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) };
        assert_eq!(
            r,
            0,
            "PR_SET_NO_NEW_PRIVS: {}",
            std::io::Error::last_os_error()
        );
        // SAFETY: `fprog` points at `prog`, `prog.len()` valid instructions, both alive for the
        // call; the kernel copies the program.
        let r = unsafe {
            libc::syscall(
                libc::SYS_seccomp,
                libc::SECCOMP_SET_MODE_FILTER,
                libc::SECCOMP_FILTER_FLAG_TSYNC,
                &fprog as *const libc::sock_fprog,
            )
        };
        assert_eq!(r, 0, "seccomp: {}", std::io::Error::last_os_error());
    }
}

/// Runs this test binary again, with `env` set and these test-harness `args`, and asserts it
/// passes; it fails (killing the run) if the run does not end within a bound. Its output goes to a
/// file, not a pipe: a process a failing case leaves behind would hold a pipe open.
fn run_child(env: (&str, &str), args: &[&str], bound: Duration) {
    let out_path =
        std::env::temp_dir().join(format!("cf-no-pidfd-{}-{}.out", std::process::id(), env.1));
    let out = std::fs::File::create(&out_path).unwrap();
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args(args)
        .args(["--test-threads", "2"])
        .env(env.0, env.1)
        .stdout(Stdio::from(out.try_clone().unwrap()))
        .stderr(Stdio::from(out))
        .spawn()
        .unwrap();
    let child_pid = child.id();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait());
    });
    let status = rx.recv_timeout(bound);
    if status.is_err() {
        kill(child_pid, libc::SIGKILL);
    }
    let output = std::fs::read_to_string(&out_path).unwrap_or_default();
    let _ = std::fs::remove_file(&out_path);
    let passed = matches!(&status, Ok(Ok(s)) if s.success());
    assert!(
        passed && output.contains("test result: ok"),
        "the run with {env:?} failed ({status:?}):\n{output}"
    );
}

fn square(x: u64) -> u64 {
    x * x
}

/// The worker's signal, from a worker death's error.
fn killed_by(e: &Error) -> Option<i32> {
    match e {
        Error::BrokenProcessPool(b) => b.worker_exit().and_then(|x| x.signal()),
        Error::WorkerDied(exit) => WorkerExit::signal(exit),
        _ => None,
    }
}

/// A pool of `n` workers, started.
fn warm(builder: concurrent_futures::ProcessPoolBuilder, n: usize) -> ProcessPoolExecutor {
    let pool = builder.max_workers(n).build().unwrap();
    let futs: Vec<_> = (0..n).map(|_| pool.submit(pid, ()).unwrap()).collect();
    for mut f in futs {
        f.result(BOUND).unwrap();
    }
    pool
}

/// Submits `task` (gated) to a pool of one worker and waits until it runs. Returns its gate (opened,
/// not yet released), its future and the worker's pid.
fn running_on_only_worker(
    pool: &ProcessPoolExecutor,
    task: fn(String) -> u32,
) -> (Gate, PoolFuture<u32>, u32) {
    let mut gate = Gate::new();
    let fut = pool.submit(task, gate.path()).unwrap();
    gate.wait_started();
    (gate, fut, pool.worker_pids()[0])
}

/// Submits `task` ([`fork_then_wait`] or [`fork_then_return`]). Returns its gate, its future and the
/// pid of the process it forked.
fn submit_forking(
    pool: &ProcessPoolExecutor,
    task: fn(String) -> u32,
) -> (Gate, PoolFuture<u32>, u32) {
    let gate = Gate::new();
    let fut = pool.submit(task, gate.path()).unwrap();
    let forked = gate.receive().trim().parse().unwrap();
    (gate, fut, forked)
}

/// Runs a task on the pool and asserts it ran on another worker than `dead`; returns that worker's pid.
fn runs_on_a_new_worker(pool: &ProcessPoolExecutor, dead: u32) -> u32 {
    let next = pool.submit(pid, ()).unwrap().result(BOUND).unwrap();
    assert_ne!(next, dead);
    next
}

#[test]
fn tasks_round_trip() {
    if !no_pidfds() {
        return;
    }
    let pool = ProcessPoolExecutor::new(2).unwrap();
    let worker = pool.submit(pid, ()).unwrap().result(BOUND).unwrap();
    assert_ne!(worker, std::process::id());
    let squares: Vec<u64> = pool
        .map(square, 1..=20)
        .unwrap()
        .into_iter()
        .map(|r| r.unwrap())
        .collect();
    assert_eq!(squares, (1..=20).map(square).collect::<Vec<_>>());
    let pids = pool.worker_pids();
    shutdown_reaping(&pool, &pids);
}

/// `result(None)` of a task whose worker is killed from outside: the pool breaks (default policy),
/// with the worker's signal, and later submits fail at once.
#[test]
fn a_killed_worker_breaks_the_pool() {
    if !no_pidfds() {
        return;
    }
    let pool = ProcessPoolExecutor::new(1).unwrap();
    let (_gate, mut fut, worker) = running_on_only_worker(&pool, gated_pid);
    let waiter = spawn_bounded(move || fut.result(None));
    kill(worker, libc::SIGKILL);
    let e = waiter.join().unwrap_err();
    assert!(matches!(e, Error::BrokenProcessPool(_)), "{e:?}");
    assert_eq!(killed_by(&e), Some(libc::SIGKILL));
    assert!(matches!(
        pool.submit(pid, ()).map(|mut f| f.result(BOUND)),
        Err(Error::BrokenProcessPool(_)) | Ok(Err(Error::BrokenProcessPool(_)))
    ));
    shutdown_reaping(&pool, &[worker]);
}

/// The same under the resilient policy: only that task fails, and a new worker takes the next.
#[test]
fn a_killed_worker_is_replaced_under_the_resilient_policy() {
    if !no_pidfds() {
        return;
    }
    let pool = ProcessPoolExecutor::builder()
        .max_workers(1)
        .on_worker_death(WorkerDeath::Respawn)
        .build()
        .unwrap();
    let (_gate, mut fut, worker) = running_on_only_worker(&pool, gated_pid);
    let waiter = spawn_bounded(move || fut.result(None));
    kill(worker, libc::SIGKILL);
    let e = waiter.join().unwrap_err();
    assert!(matches!(e, Error::WorkerDied(_)), "{e:?}");
    assert_eq!(killed_by(&e), Some(libc::SIGKILL));
    let next = runs_on_a_new_worker(&pool, worker);
    shutdown_reaping(&pool, &[worker, next]);
}

/// Forks a child that keeps every descriptor (no exec) and reports its pid, then waits at the gate
/// (forever): the worker's end of its channel outlives the worker.
fn fork_then_wait(path: String) -> u32 {
    common::process::fork_keeping_descriptors(&path);
    gated_forever(path)
}

/// Forks a child that keeps every descriptor and reports its pid, then returns: the worker goes idle
/// with the forked child holding its channel.
fn fork_then_return(path: String) -> u32 {
    common::process::fork_keeping_descriptors(&path);
    std::process::id()
}

/// A worker killed while a caller blocks in `result(None)` on its task, and a process the task
/// forked still holds the worker's end of the channel: no end-of-file comes, yet the caller wakes
/// with the death, and the forked process dies with the worker's group.
#[test]
fn a_worker_killed_while_a_forked_child_holds_its_channel_ends_the_blocked_caller() {
    if !no_pidfds() {
        return;
    }
    for policy in [WorkerDeath::BreakPool, WorkerDeath::Respawn] {
        let pool = warm(ProcessPoolExecutor::builder().on_worker_death(policy), 1);
        wait_idle(&pool, 1);
        let worker = pool.worker_pids()[0];
        let (mut gate, mut fut, grandchild) = submit_forking(&pool, fork_then_wait);
        let caller = spawn_bounded(move || fut.result(None));
        gate.wait_started();
        kill(worker, libc::SIGKILL);
        let e = caller.join().unwrap_err();
        assert_eq!(killed_by(&e), Some(libc::SIGKILL), "{policy:?}: {e:?}");
        shutdown_reaping(&pool, &[worker, grandchild]);
    }
}

/// The same with the caller waiting with a deadline (it polls instead of reading) and the driver
/// reading the death.
#[test]
fn a_worker_killed_while_a_forked_child_holds_its_channel_fails_a_bounded_wait() {
    if !no_pidfds() {
        return;
    }
    let pool = ProcessPoolExecutor::new(1).unwrap();
    let (mut gate, mut fut, grandchild) = submit_forking(&pool, fork_then_wait);
    gate.wait_started();
    let worker = pool.worker_pids()[0];
    kill(worker, libc::SIGKILL);
    let e = fut.result(BOUND).unwrap_err();
    assert!(matches!(e, Error::BrokenProcessPool(_)), "{e:?}");
    assert_eq!(killed_by(&e), Some(libc::SIGKILL));
    shutdown_reaping(&pool, &[worker, grandchild]);
}

/// An idle worker killed while a process its last task forked holds its channel: its driver must
/// still see the death (the pool breaks), so a submit after it fails instead of writing to a
/// channel nobody reads.
#[test]
fn an_idle_worker_killed_while_a_forked_child_holds_its_channel_breaks_the_pool() {
    if !no_pidfds() {
        return;
    }
    let pool = ProcessPoolExecutor::new(1).unwrap();
    let (_gate, mut fut, grandchild) = submit_forking(&pool, fork_then_return);
    let worker = fut.result(BOUND).unwrap();
    wait_idle(&pool, 1);
    kill(worker, libc::SIGKILL);
    // Whether the submit comes before or after the driver saw the death, it fails with it.
    match pool.submit(pid, ()) {
        Err(e) => assert!(matches!(e, Error::BrokenProcessPool(_)), "{e:?}"),
        Ok(mut f) => {
            let e = f.result(BOUND).unwrap_err();
            assert!(matches!(e, Error::BrokenProcessPool(_)), "{e:?}");
        }
    }
    shutdown_reaping(&pool, &[worker, grandchild]);
}

fn length(data: ByteBlock) -> usize {
    data.len()
}

/// A task's frame, far larger than the socket buffer, is being written when its worker dies (it
/// was stopped, so it read next to nothing, then killed from outside) while a process its last
/// task forked holds the worker's channel open: the write, waiting for room that never comes, ends
/// at the worker's exit, and the task fails with the death.
#[test]
fn a_worker_killed_while_its_task_is_written_fails_the_task() {
    if !no_pidfds() {
        return;
    }
    let pool = ProcessPoolExecutor::new(1).unwrap();
    let (_gate, mut fut, grandchild) = submit_forking(&pool, fork_then_return);
    let worker = fut.result(BOUND).unwrap();
    kill(worker, libc::SIGSTOP);
    let mut big = pool
        .submit(length, ByteBlock::from(vec![1u8; 16 << 20]))
        .unwrap();
    kill(worker, libc::SIGKILL);
    let outcome = big.result(BOUND);
    // Whatever the outcome, the forked process must not outlive the test.
    kill(grandchild, libc::SIGKILL);
    assert!(
        matches!(outcome, Err(Error::BrokenProcessPool(_))),
        "{outcome:?}"
    );
    shutdown_reaping(&pool, &[worker, grandchild]);
}

/// `terminate_workers` and `kill_workers` stop running tasks (a task that ignores SIGTERM too) and
/// their futures fail with the forced shutdown.
#[test]
fn forced_shutdowns_stop_running_tasks() {
    if !no_pidfds() {
        return;
    }
    for kill_them in [false, true] {
        let pool = ProcessPoolExecutor::new(2).unwrap();
        let mut gates = [Gate::new(), Gate::new()];
        let mut futs: Vec<_> = gates
            .iter()
            .map(|g| pool.submit(gated_forever, g.path()).unwrap())
            .collect();
        for g in &mut gates {
            g.wait_started();
        }
        let pids = pool.worker_pids();
        if kill_them {
            pool.kill_workers();
        } else {
            pool.terminate_workers();
        }
        for f in &mut futs {
            match f.result(BOUND) {
                Err(Error::BrokenProcessPool(b)) => {
                    assert!(matches!(b.cause(), BrokenCause::ForcedShutdown), "{b:?}")
                }
                other => panic!("expected the forced shutdown, got {other:?}"),
            }
        }
        shutdown_reaping(&pool, &pids);
    }
}

/// A task past its time limit is stopped (its worker killed) and the pool carries on.
#[test]
fn a_time_limit_stops_a_running_task() {
    if !no_pidfds() {
        return;
    }
    let pool = ProcessPoolExecutor::new(1).unwrap();
    let mut gate = Gate::new();
    let mut fut = pool
        .submit_with_time_limit(Duration::from_millis(100), gated_forever, gate.path())
        .unwrap();
    gate.wait_started();
    let worker = pool.worker_pids()[0];
    let r = spawn_bounded(move || fut.result(None)).join();
    assert!(matches!(r, Err(Error::TimeLimit(_))), "{r:?}");
    let next = runs_on_a_new_worker(&pool, worker);
    shutdown_reaping(&pool, &[worker, next]);
}

/// `interrupt()` of a running task kills its worker; the future ends with `Interrupted` and a new
/// worker takes the next task.
#[test]
fn interrupting_a_running_task_ends_it() {
    if !no_pidfds() {
        return;
    }
    let pool = ProcessPoolExecutor::new(1).unwrap();
    let (_gate, mut fut, worker) = running_on_only_worker(&pool, gated_forever);
    assert!(!fut.cancel(), "a running task cannot be cancelled");
    let (started_tx, started) = mpsc::channel();
    let interrupter = fut.handle();
    let caller = spawn_bounded(move || {
        started_tx.send(()).unwrap();
        fut.result(None)
    });
    started.recv().unwrap();
    assert!(interrupter.interrupt());
    assert!(matches!(caller.join(), Err(Error::Interrupted)));
    let next = runs_on_a_new_worker(&pool, worker);
    shutdown_reaping(&pool, &[worker, next]);
}

/// `max_tasks_per_child(1)`: every task runs in a new worker, and the retired ones are reaped.
#[test]
fn recycled_workers_are_replaced_and_reaped() {
    if !no_pidfds() {
        return;
    }
    let pool = ProcessPoolExecutor::builder()
        .max_workers(1)
        .max_tasks_per_child(1)
        .build()
        .unwrap();
    let pids: Vec<u32> = (0..4)
        .map(|_| pool.submit(pid, ()).unwrap().result(BOUND).unwrap())
        .collect();
    let mut distinct = pids.clone();
    distinct.dedup();
    assert_eq!(distinct.len(), 4, "{pids:?}");
    shutdown_reaping(&pool, &pids);
}

/// A waiting shutdown runs what is queued and reaps every worker; one without waiting cancels the
/// queue, and the running task still completes.
#[test]
fn shutdown_with_and_without_waiting() {
    if !no_pidfds() {
        return;
    }
    let pool = ProcessPoolExecutor::new(2).unwrap();
    let futs: Vec<_> = (0..8u64).map(|x| pool.submit(square, x).unwrap()).collect();
    common::process::shutdown_bounded(&pool);
    for (x, mut f) in (0..8u64).zip(futs) {
        assert_eq!(f.result(BOUND).unwrap(), x * x);
    }
    assert!(pool.worker_pids().is_empty());

    let pool = ProcessPoolExecutor::new(1).unwrap();
    let (mut gate, mut running, worker) = running_on_only_worker(&pool, gated_pid);
    let mut queued = pool.submit(square, 3).unwrap();
    pool.shutdown_nowait(Queued::Cancel);
    assert!(matches!(queued.result(BOUND), Err(Error::Cancelled)));
    gate.release();
    assert_eq!(running.result(BOUND).unwrap(), worker);
    assert_all_gone(&[worker]);
}

/// The parent pid of `pid`, from `/proc`.
fn parent_of(pid: u32) -> Option<u32> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let (_, rest) = stat.rsplit_once(')')?;
    rest.split_whitespace().nth(1)?.parse().ok()
}

fn exit_now(_: ()) -> u8 {
    std::process::exit(3)
}

/// A host that ignores SIGCHLD (the kernel reaps exited workers itself, and their pids can be
/// reused at once): tasks, time limits, interrupts, deaths and shutdown still work. In a child run
/// of this binary, as the disposition is process-wide.
#[test]
fn a_host_that_ignores_sigchld() {
    if !no_pidfds() {
        return;
    }
    if std::env::var_os(SIGCHLD_VAR).is_none() {
        let this = "a_host_that_ignores_sigchld";
        run_child((SIGCHLD_VAR, "1"), &["--exact", this], LONG * 5);
        return;
    }
    // SAFETY: setting a disposition to SIG_IGN installs no handler code.
    unsafe {
        libc::signal(libc::SIGCHLD, libc::SIG_IGN);
    }
    let pool = ProcessPoolExecutor::builder()
        .max_workers(2)
        .on_worker_death(WorkerDeath::Respawn)
        .build()
        .unwrap();
    assert_eq!(pool.submit(square, 3).unwrap().result(BOUND).unwrap(), 9);

    let mut gate = Gate::new();
    let mut slow = pool
        .submit_with_time_limit(Duration::from_millis(100), gated_forever, gate.path())
        .unwrap();
    gate.wait_started();
    assert!(matches!(slow.result(BOUND), Err(Error::TimeLimit(_))));

    let mut gate = Gate::new();
    let mut running = pool.submit(gated_forever, gate.path()).unwrap();
    gate.wait_started();
    assert!(running.interrupt());
    assert!(matches!(running.result(BOUND), Err(Error::Interrupted)));

    let died = pool.submit(exit_now, ()).unwrap().result(BOUND);
    assert!(matches!(died, Err(Error::WorkerDied(_))), "{died:?}");

    let (mut gate, mut fut, grandchild) = submit_forking(&pool, fork_then_wait);
    gate.wait_started();
    let worker = pool
        .worker_pids()
        .into_iter()
        .find(|&w| parent_of(grandchild) == Some(w))
        .expect("the forked child's worker");
    kill(worker, libc::SIGKILL);
    let e = fut.result(BOUND).unwrap_err();
    assert!(matches!(e, Error::WorkerDied(_)), "{e:?}");

    assert_eq!(pool.submit(square, 4).unwrap().result(BOUND).unwrap(), 16);
    let pids = pool.worker_pids();
    pool.kill_workers();
    shutdown_reaping(&pool, &pids);
    // With pidfds, the group of a worker the kernel reaped already is not signalled (the pool
    // cannot tell its number from a reused one), so the forked child outlives its worker here.
    // Without them, the group is signalled on the pool's own bookkeeping, which takes it down.
    if Refusal::of_this_run() == Some(Refusal::SendSignal) {
        kill(grandchild, libc::SIGKILL);
    }
    assert_all_gone(&[grandchild]);
}

/// Runs every case in a child process that refuses pidfds as `refusal` says.
fn run_cases(refusal: Refusal) {
    if Refusal::of_this_run().is_some() {
        return; // a child run: its cases run here, not this
    }
    if seccomp::ARCH.is_none() {
        eprintln!("skipped: no seccomp filter is written for this architecture");
        return;
    }
    let args = ["--skip", "cases_run_where"];
    run_child((REFUSAL_VAR, refusal.name()), &args, LONG * 10);
}

#[test]
fn cases_run_where_pidfd_calls_fail_with_enosys() {
    run_cases(Refusal::AllEnosys);
}

/// What older Docker seccomp profiles answer.
#[test]
fn cases_run_where_pidfd_calls_fail_with_eperm() {
    run_cases(Refusal::AllEperm);
}

/// The pool gets pidfds but cannot signal through them, and must still stop workers.
#[test]
fn cases_run_where_only_pidfd_send_signal_fails() {
    run_cases(Refusal::SendSignal);
}
