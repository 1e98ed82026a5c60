//! For the thread-pool tests: a gate tasks block on, workers held busy until the test lets them go,
//! and a probe that reports when a worker thread exits.

use std::cell::RefCell;
use std::sync::{mpsc, Arc, Barrier, Condvar, Mutex};

use concurrent_futures::{PoolFuture, ThreadPoolExecutor};

use super::LONG;

/// A gate tasks block on until the test opens it; see `guard`.
#[derive(Clone, Default)]
pub struct Gate(Arc<(Mutex<bool>, Condvar)>);

impl Gate {
    pub fn open(&self) {
        *self.0 .0.lock().unwrap() = true;
        self.0 .1.notify_all();
    }

    pub fn wait(&self) {
        let mut open = self.0 .0.lock().unwrap();
        while !*open {
            open = self.0 .1.wait(open).unwrap();
        }
    }

    /// Opens the gate when dropped, so a failing test never leaves a worker blocked.
    pub fn guard(&self) -> OpenOnDrop {
        OpenOnDrop(self.clone())
    }
}

pub struct OpenOnDrop(Gate);

impl Drop for OpenOnDrop {
    fn drop(&mut self) {
        self.0.open();
    }
}

/// Occupies one worker of `pool` until the returned guard is dropped; returns once the task runs.
pub fn occupy(pool: &ThreadPoolExecutor) -> (PoolFuture<()>, OpenOnDrop) {
    let (mut busy, guard) = occupy_n(pool, 1);
    (busy.pop().unwrap(), guard)
}

/// Holds one worker of `pool` with a task until `release` (the returned sender) is sent to or
/// dropped; returns once the task runs.
pub fn hold(pool: &ThreadPoolExecutor) -> (mpsc::Sender<()>, PoolFuture<()>) {
    let (release, gate) = mpsc::channel::<()>();
    let (started_tx, started) = mpsc::channel();
    let busy = pool
        .spawn(move || {
            started_tx.send(()).unwrap();
            let _ = gate.recv();
        })
        .unwrap();
    started.recv_timeout(LONG).unwrap();
    (release, busy)
}

/// Starts `n` tasks that each hold a worker until the gate opens, and returns once all of them run.
pub fn occupy_n(pool: &ThreadPoolExecutor, n: usize) -> (Vec<PoolFuture<()>>, OpenOnDrop) {
    let gate = Gate::default();
    let guard = gate.guard();
    let (started_tx, started) = mpsc::channel();
    let busy = (0..n)
        .map(|_| {
            let (gate, started_tx) = (gate.clone(), started_tx.clone());
            pool.spawn(move || {
                started_tx.send(()).unwrap();
                gate.wait();
            })
            .unwrap()
        })
        .collect();
    for _ in 0..n {
        started.recv_timeout(LONG).unwrap();
    }
    (busy, guard)
}

/// Sends the worker's name when the worker thread exits (its thread-locals are destroyed).
struct ExitProbe(mpsc::Sender<String>, String);

impl Drop for ExitProbe {
    fn drop(&mut self) {
        let _ = self.0.send(std::mem::take(&mut self.1));
    }
}

thread_local! {
    static EXIT_PROBE: RefCell<Option<ExitProbe>> = const { RefCell::new(None) };
}

/// Called inside a task: reports through `tx` when this worker thread exits.
pub fn arm_exit_probe(tx: mpsc::Sender<String>) {
    let name = std::thread::current().name().unwrap_or("?").to_owned();
    EXIT_PROBE.with(|p| *p.borrow_mut() = Some(ExitProbe(tx, name)));
}

/// Starts `n` tasks that meet at a barrier, so that they run on `n` distinct workers, and that each arm
/// an exit probe; returns their futures and the receiver of the probes' reports.
pub fn spawn_exit_probed(
    pool: &ThreadPoolExecutor,
    n: usize,
) -> (Vec<PoolFuture<()>>, mpsc::Receiver<String>) {
    let (exited_tx, exited) = mpsc::channel();
    let barrier = Arc::new(Barrier::new(n));
    let futures = (0..n)
        .map(|_| {
            let (barrier, tx) = (barrier.clone(), exited_tx.clone());
            pool.spawn(move || {
                arm_exit_probe(tx);
                barrier.wait();
            })
            .unwrap()
        })
        .collect();
    (futures, exited)
}

/// How many threads this process has now (Linux: the entries of `/proc/self/task`).
pub fn thread_count() -> usize {
    std::fs::read_dir("/proc/self/task")
        .expect("/proc/self/task")
        .count()
}

/// This thread's kernel id, to hand to [`wait_until_asleep`] from another thread.
pub fn current_tid() -> i32 {
    // SAFETY: gettid has no arguments and cannot fail.
    unsafe { libc::syscall(libc::SYS_gettid) as i32 }
}

/// Waits (up to [`LONG`]) until thread `tid` of this process sleeps in the kernel (state `S` or `D`:
/// blocked on a lock, a condition variable, a channel); false if it exits or never blocks. A thread
/// that is running or preempted is `R`, so when this returns true the thread was, at that instant, blocked
/// where it was headed, not merely slow to get there.
pub fn wait_until_asleep(tid: i32) -> bool {
    let path = format!("/proc/self/task/{tid}/stat");
    let end = std::time::Instant::now() + LONG;
    while std::time::Instant::now() < end {
        let Ok(stat) = std::fs::read_to_string(&path) else {
            return false; // the thread has exited
        };
        let state = stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.trim_start().chars().next());
        match state {
            Some('S' | 'D') => return true,
            Some('Z' | 'X') | None => return false,
            _ => std::thread::sleep(std::time::Duration::from_micros(200)),
        }
    }
    false
}

/// A thread whose end the test waits for at most [`LONG`]: where a hang is the failure, the test
/// fails with that message instead of hanging.
pub struct Bounded<R> {
    result: mpsc::Receiver<R>,
    handle: std::thread::JoinHandle<()>,
}

/// Runs `f` on a new thread; [`Bounded::join`] gives its result.
pub fn spawn_bounded<R: Send + 'static>(f: impl FnOnce() -> R + Send + 'static) -> Bounded<R> {
    let (tx, result) = mpsc::channel();
    let handle = std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    Bounded { result, handle }
}

impl<R> Bounded<R> {
    /// The thread's result, or a panic: its own (passed on), or a hang (it did not end within
    /// [`LONG`]).
    pub fn join(self) -> R {
        match self.result.recv_timeout(LONG) {
            Ok(r) => {
                let _ = self.handle.join();
                r
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => match self.handle.join() {
                Err(panic) => std::panic::resume_unwind(panic),
                Ok(()) => unreachable!("the thread sends its result before it ends"),
            },
            Err(mpsc::RecvTimeoutError::Timeout) => {
                panic!("the thread did not end within {LONG:?}: it hangs")
            }
        }
    }
}
