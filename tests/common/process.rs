//! For the process-pool tests: gates that synchronise with a task running in a worker (named pipes, no
//! sleeps), checks that processes are gone, and a value that refuses to serialize.

use std::ffi::CString;
use std::fs::{File, OpenOptions};
use std::io::Read;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// A named pipe between the test and a task. The task opens it for reading (`task_wait`), which blocks
/// until the test opens it for writing ([`Gate::wait_started`]); so when `wait_started` returns the task
/// is executing. Dropping the writer ([`Gate::release`]) lets the task read end-of-file and go on.
pub struct Gate {
    path: PathBuf,
    writer: Option<File>,
}

static NEXT: AtomicUsize = AtomicUsize::new(0);

impl Gate {
    pub fn new() -> Gate {
        let path = std::env::temp_dir().join(format!(
            "cf-gate-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_file(&path);
        let c = CString::new(path.to_str().unwrap()).unwrap();
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0, "mkfifo");
        Gate { path, writer: None }
    }

    pub fn path(&self) -> String {
        self.path.to_str().unwrap().to_owned()
    }

    /// Blocks until the task has opened the gate; panics if it has not within [`LONG`](super::LONG)
    /// (a task that never runs, as when no worker can start, must fail the test, not hang it).
    pub fn wait_started(&mut self) {
        use std::os::unix::fs::OpenOptionsExt;
        let end = std::time::Instant::now() + super::LONG;
        // Opening a FIFO for writing without blocking fails with ENXIO until a reader has it open.
        let writer = loop {
            match OpenOptions::new()
                .write(true)
                .custom_flags(libc::O_NONBLOCK)
                .open(&self.path)
            {
                Ok(w) => break w,
                Err(e) if e.raw_os_error() == Some(libc::ENXIO) => {
                    assert!(
                        std::time::Instant::now() < end,
                        "the task never opened its gate"
                    );
                    std::thread::sleep(Duration::from_millis(1));
                }
                Err(e) => panic!("opening the gate: {e}"),
            }
        };
        self.writer = Some(writer);
    }

    pub fn release(&mut self) {
        self.writer = None;
    }

    /// Reads what a task wrote into the gate (the task opens it for writing with [`task_send`]).
    pub fn receive(&self) -> String {
        let mut s = String::new();
        File::open(&self.path)
            .unwrap()
            .read_to_string(&mut s)
            .unwrap();
        s
    }
}

impl Drop for Gate {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// In a task: blocks until the test opened the gate, then until it released it.
pub fn task_wait(path: &str) {
    let mut s = String::new();
    File::open(path).unwrap().read_to_string(&mut s).unwrap();
}

/// In a task: sends a line to the test through the gate.
pub fn task_send(path: &str, text: &str) {
    std::fs::write(path, text).unwrap();
}

/// In a task: forks a child that keeps every descriptor (no exec), so the worker's end of its channel
/// outlives the worker, and sends the child's pid through the gate. The child sleeps, then exits.
pub fn fork_keeping_descriptors(path: &str) {
    // SAFETY: the child makes only async-signal-safe calls (sleep, _exit).
    let child = unsafe { libc::fork() };
    if child == 0 {
        // SAFETY: as above.
        unsafe {
            libc::sleep(1000);
            libc::_exit(0)
        }
    }
    task_send(path, &child.to_string());
}

/// A task that waits at the gate, then returns its worker's pid.
pub fn gated_pid(path: String) -> u32 {
    task_wait(&path);
    std::process::id()
}

/// A task that waits at the gate forever (it only ends by its worker dying).
pub fn gated_forever(path: String) -> u32 {
    task_wait(&path);
    loop {
        std::thread::park();
    }
}

pub fn pid(_: ()) -> u32 {
    std::process::id()
}

/// Waits (up to `limit`) for process `pid` to exit, without polling: a pidfd turns readable when the
/// process ends. A process already reaped (or never ours) counts as gone. Returns whether it is gone.
/// Where pidfds are refused (`tests/process_no_pidfd.rs`), it looks at `/proc` every millisecond.
pub fn wait_gone(pid: u32, limit: Duration) -> bool {
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid as libc::pid_t, 0) };
    if fd < 0 {
        if std::io::Error::last_os_error().raw_os_error() == Some(libc::ESRCH) {
            return true; // no such process
        }
        let end = std::time::Instant::now() + limit;
        while !is_dead(pid) {
            if std::time::Instant::now() >= end {
                return false;
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        return true;
    }
    let fd = fd as i32;
    let mut p = libc::pollfd {
        fd,
        events: libc::POLLIN,
        revents: 0,
    };
    let n = unsafe { libc::poll(&mut p, 1, limit.as_millis() as i32) };
    unsafe { libc::close(fd) };
    n == 1
}

/// Whether a pid names no live process (missing, or a zombie awaiting its reaper).
pub fn is_dead(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        Ok(stat) => stat
            .rsplit_once(')')
            .is_some_and(|(_, rest)| rest.trim_start().starts_with('Z')),
    }
}

/// Asserts that none of `pids` is alive (call after a waiting shutdown: the pool reaped them).
pub fn assert_all_gone(pids: &[u32]) {
    for &p in pids {
        assert!(
            wait_gone(p, Duration::from_secs(10)) && is_dead(p),
            "worker {p} is still alive"
        );
    }
}

pub fn kill(pid: u32, signal: i32) {
    unsafe {
        libc::kill(pid as i32, signal);
    }
}

/// Fails to serialize (its error says "refusing to encode"); deserializes from a unit.
#[derive(Debug)]
pub struct Unencodable;

impl Serialize for Unencodable {
    fn serialize<S: serde::Serializer>(&self, _: S) -> Result<S::Ok, S::Error> {
        Err(serde::ser::Error::custom("refusing to encode"))
    }
}

impl<'de> Deserialize<'de> for Unencodable {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        <()>::deserialize(d).map(|_| Unencodable)
    }
}

/// `pool.shutdown(Queued::Run)`, failing the test instead of hanging it if the shutdown does not
/// return within [`LONG`](super::LONG).
#[cfg(not(loom))] // no process pool in loom builds
pub fn shutdown_bounded(pool: &concurrent_futures::ProcessPoolExecutor) {
    let (done_tx, done) = std::sync::mpsc::channel();
    let pool = pool.clone();
    std::thread::spawn(move || {
        pool.shutdown(concurrent_futures::Queued::Run);
        let _ = done_tx.send(());
    });
    done.recv_timeout(super::LONG)
        .expect("shutdown did not return");
}

/// [`shutdown_bounded`], then asserts that none of `pids` is alive.
#[cfg(not(loom))] // no process pool in loom builds
pub fn shutdown_reaping(pool: &concurrent_futures::ProcessPoolExecutor, pids: &[u32]) {
    shutdown_bounded(pool);
    assert_all_gone(pids);
}

/// Waits (up to [`LONG`](super::LONG)) until the pool has `n` idle workers.
#[cfg(not(loom))] // no process pool in loom builds
pub fn wait_idle(pool: &concurrent_futures::ProcessPoolExecutor, n: usize) {
    super::eventually("the workers go idle", || pool.metrics().idle == n);
}

/// In a worker: its end of the channel, the one socket whose peer is the parent. The crate finds
/// the peer the same way (`SO_PEERCRED`) but keeps that private; the public API offers no way to
/// reach a worker's channel, so the tests that must act on it find it themselves.
fn channel_fd() -> i32 {
    // SAFETY: no arguments, no failure.
    let parent = unsafe { libc::getppid() };
    (0..1024)
        .find(|&fd| peer_pid(fd) == Some(parent))
        .expect("the worker's channel was not found")
}

/// The pid of the process that made the other end of the unix socket `fd`, if `fd` is one.
fn peer_pid(fd: i32) -> Option<libc::pid_t> {
    let mut cred = libc::ucred {
        pid: 0,
        uid: 0,
        gid: 0,
    };
    let mut len = std::mem::size_of::<libc::ucred>() as libc::socklen_t;
    // SAFETY: `cred` is a writable `ucred` of `len` bytes; a descriptor that is not a socket only
    // makes the call fail.
    let r = unsafe {
        libc::getsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_PEERCRED,
            (&mut cred as *mut libc::ucred).cast(),
            &mut len,
        )
    };
    (r == 0).then_some(cred.pid)
}

/// In a worker: shuts its channel for reading. The parent's next write to it fails before its first
/// byte (`EPIPE`), and the worker's next read finds end-of-file, so it exits.
/// Returns the channel's descriptor.
pub fn shut_channel_for_reading() -> i32 {
    let fd = channel_fd();
    // SAFETY: a shutdown of a descriptor this process owns.
    assert_eq!(
        unsafe { libc::shutdown(fd, libc::SHUT_RD) },
        0,
        "shutdown(SHUT_RD) of the channel"
    );
    fd
}
